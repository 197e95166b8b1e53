"""Simulator blow-ups: a NaN action ends the episode with ``info["error"]``, not the run, and
planners never hand the env a NaN action, whatever the objective returns."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import jepa_world.envs  # noqa: F401  (registers the envs)
from jepa_world.planners import ActionBounds, PlanResult
from jepa_world.planning.agents import BlindAgent
from jepa_world.planning.evaluate import evaluate
from tests.test_planners import BOUNDS, TARGETS, A, B, H, plan

pytestmark = pytest.mark.usefixtures("one_thread")


def all_nan(actions: torch.Tensor) -> torch.Tensor:
    """Costs that are NaN everywhere, with NaN gradients: a model that blew up."""
    return (actions * torch.nan).sum((-2, -1))


@pytest.mark.parametrize("name", ["cem", "mppi", "gradient", "random"])
def test_planners_return_valid_actions_when_every_cost_is_nan(name):
    for init in (None, torch.full((B, H, A), torch.nan)):  # and a NaN warm start
        result = plan(name, all_nan, init=init)
        assert result.actions.shape[0] == len(TARGETS)
        assert torch.isfinite(result.actions).all() and BOUNDS.contains(result.actions)


class NaNPlanner:
    """A broken policy: every action it proposes is NaN."""

    horizon = 3

    def __init__(self, bounds: ActionBounds):
        self.bounds = bounds

    def plan(self, objective, batch_size, init=None, generator=None) -> PlanResult:
        actions = torch.full((batch_size, self.horizon, self.bounds.dim), torch.nan)
        return PlanResult(actions, torch.zeros(batch_size), {})


def test_a_nan_action_ends_the_episode_with_an_error_and_the_evaluation_goes_on():
    env = gym.make("jepa_world/Reach-v0", image_size=16, max_episode_steps=20)
    try:
        planner = NaNPlanner(ActionBounds.from_space(env.action_space))
        summary = evaluate(env, BlindAgent(), planner, [0, 1], action_repeat=2, step_budget=20,
                           planner_seed=0, progress=False)
    finally:
        env.close()
    assert summary.episodes == 2 and summary.success_rate == 0.0
    for episode in summary.per_episode:
        assert episode["steps"] == 1  # the first (unsimulated) step ended it
        assert "NaN or inf" in episode["error"]
