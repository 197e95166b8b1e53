"""Planners on analytic objectives: optimum, bounds, warm starts, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from jepa_world.planners import (
    PLANNERS,
    ActionBounds,
    CEMConfig,
    GradientConfig,
    MPPIConfig,
    RandomConfig,
    make_planner,
    shift_plan,
)

torch.set_num_threads(1)

B, H, A = 3, 4, 2
BOUNDS = ActionBounds([-1.0, -1.0], [1.0, 1.0])
TARGETS = torch.tensor([[0.3, -0.2], [0.7, 0.5], [-0.4, 0.1]])  # [B, A], inside the box
# Small budgets that still converge on these objectives.
FAST = {
    "cem": dict(samples=100, iterations=15, elites=10, horizon=H),
    "mppi": dict(samples=100, iterations=15, horizon=H, noise_std=0.2, temperature=0.1),
    "gradient": dict(iterations=60, lr=0.1, restarts=4, horizon=H),
    "random": dict(horizon=H),
}
OPTIMISERS = ("cem", "mppi", "gradient")


class Quadratic:
    """``[B, S, H, A] -> [B, S]``: squared distance of every step's action to the episode's
    target; records every batch of actions it is asked to score."""

    def __init__(self, targets: torch.Tensor, chunk: int | None = None) -> None:
        self.targets, self.chunk, self.seen = targets, chunk, []

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        self.seen.append(actions.detach().clone())
        if self.chunk is None:
            return self.cost(actions)
        return torch.cat([self.cost(part) for part in actions.split(self.chunk, dim=1)], dim=1)

    def cost(self, actions: torch.Tensor) -> torch.Tensor:
        target = self.targets.to(actions)[:, None, None]
        return (actions - target).square().sum(dim=(-2, -1))


def plan(name: str, objective, bounds=BOUNDS, seed: int = 0, init=None, **overrides):
    fields = {**FAST[name], **overrides}
    planner = make_planner(name, bounds, **fields)
    generator = torch.Generator(device=bounds.device).manual_seed(seed)
    return planner.plan(objective, len(TARGETS), init=init, generator=generator)


@pytest.mark.parametrize("name", OPTIMISERS)
def test_planners_reach_the_optimum(name):
    result = plan(name, Quadratic(TARGETS))
    assert result.actions.shape == (B, H, A) and result.cost.shape == (B,)
    expected = TARGETS[:, None].expand(B, H, A)
    torch.testing.assert_close(result.actions, expected, atol=0.06, rtol=0)
    torch.testing.assert_close(result.cost, Quadratic(TARGETS)(result.actions[:, None])[:, 0])
    history = result.info["best_cost"]
    assert history.shape[1] == B and (history[1:] <= history[:-1]).all()
    random = plan("random", Quadratic(TARGETS))
    assert (result.cost < random.cost).all()


@pytest.mark.parametrize("name", PLANNERS)
def test_actions_stay_in_bounds_when_the_optimum_is_outside(name):
    bounds = ActionBounds([-1.0, -0.5], [0.5, 2.0])
    targets = torch.tensor([[2.0, -3.0], [-4.0, 5.0], [0.0, 1.0]])
    objective = Quadratic(targets)
    result = plan(name, objective, bounds)
    assert objective.seen and all(bounds.contains(a) for a in objective.seen)
    assert bounds.contains(result.actions)
    if name != "random":  # the optimum is the target projected onto the box
        expected = bounds.clamp(targets)[:, None].expand(B, H, A)
        torch.testing.assert_close(result.actions, expected, atol=0.05, rtol=0)


@pytest.mark.parametrize("name", OPTIMISERS)
def test_warm_start_is_used_and_never_lost(name):
    objective = Quadratic(TARGETS)
    init = TARGETS[:, None].expand(B, H, A) + 0.01  # near the optimum
    init_cost = objective(init[:, None])[:, 0]
    tiny = dict(iterations=1) if name != "gradient" else dict(iterations=1, lr=1e-3)
    warm = plan(name, objective, init=init, **tiny)
    cold = plan(name, objective, **tiny)
    assert (warm.cost <= init_cost + 1e-6).all()
    assert (warm.cost < cold.cost).all()


def test_keep_mean_puts_the_warm_start_first():
    objective = Quadratic(TARGETS)
    init = BOUNDS.sample_uniform((B, H), torch.Generator().manual_seed(1))
    plan("cem", objective, init=init, iterations=1)
    torch.testing.assert_close(objective.seen[0][:, 0], init, atol=0, rtol=0)
    objective = Quadratic(TARGETS)
    plan("cem", objective, init=init, iterations=1, keep_mean=False)
    assert not torch.equal(objective.seen[0][:, 0], init)


@pytest.mark.parametrize("name", PLANNERS)
def test_deterministic_under_a_seeded_generator(name):
    objectives = [Quadratic(TARGETS) for _ in range(3)]
    a, b, c = (plan(name, o, seed=seed) for o, seed in zip(objectives, (5, 5, 6), strict=True))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.cost, b.cost)
    assert all(torch.equal(x, y) for x, y in zip(*(o.seen for o in objectives[:2]), strict=True))
    assert not torch.equal(objectives[0].seen[0], objectives[2].seen[0])  # the seed matters


@pytest.mark.parametrize("name", PLANNERS)
def test_chunked_objective_gives_identical_plans(name):
    whole = plan(name, Quadratic(TARGETS))
    chunked = plan(name, Quadratic(TARGETS, chunk=7))
    assert torch.equal(whole.actions, chunked.actions)
    assert torch.equal(whole.cost, chunked.cost)


@pytest.mark.parametrize("name", PLANNERS)
def test_runs_in_the_dtype_of_the_bounds(name):
    bounds = BOUNDS.to(dtype=torch.float64)
    objective = Quadratic(TARGETS)
    result = plan(name, objective, bounds)
    assert result.actions.dtype == result.cost.dtype == torch.float64
    assert all(a.dtype == torch.float64 for a in objective.seen)


def test_evaluation_counts():
    result = plan("cem", Quadratic(TARGETS), samples=20, elites=5, iterations=3)
    assert result.info["objective_calls"] == 3 and result.info["evaluations"] == 60
    assert result.info["best_cost"].shape == (3, B)
    result = plan("gradient", Quadratic(TARGETS), iterations=3, restarts=2)
    assert result.info["objective_calls"] == 4 and result.info["best_cost"].shape == (4, B)
    result = plan("random", Quadratic(TARGETS))
    assert result.info["objective_calls"] == 1


def test_nan_costs_never_win():
    def objective(actions):
        cost = Quadratic(TARGETS)(actions)
        return torch.where(actions[..., 0, 0] > 0, torch.nan, cost)

    for name in ("cem", "mppi"):
        result = plan(name, objective)
        assert torch.isfinite(result.cost).all() and (result.actions[:, 0, 0] <= 0).all()


def test_gradient_planner_refuses_a_non_differentiable_objective():
    def detached(actions):
        return Quadratic(TARGETS)(actions).detach()

    def through_numpy(actions):
        return torch.as_tensor(Quadratic(TARGETS)(actions).detach().numpy())

    for objective in (detached, through_numpy):
        with pytest.raises(ValueError, match="gradient planner needs a differentiable objective"):
            plan("gradient", objective)


def test_gradient_planner_works_under_no_grad_and_leaves_parameters_alone():
    weight = torch.nn.Parameter(torch.ones(()))

    def objective(actions):
        return weight * Quadratic(TARGETS)(actions)

    with torch.no_grad():
        result = plan("gradient", objective)
    assert (result.cost < 1e-2).all() and weight.grad is None


def test_objective_output_shape_is_checked():
    with pytest.raises(ValueError, match=r"costs \[B, S\]"):
        plan("cem", lambda a: a.sum(dim=(-2, -1)).flatten())


def test_shift_plan():
    plan_ = torch.arange(12.0).reshape(1, 4, 3)  # steps [0 1 2], [3 4 5], [6 7 8], [9 10 11]
    last = shift_plan(plan_)
    assert last.tolist() == [[[3, 4, 5], [6, 7, 8], [9, 10, 11], [9, 10, 11]]]
    zero = shift_plan(plan_, steps=2, fill="zero")
    assert zero.tolist() == [[[6, 7, 8], [9, 10, 11], [0, 0, 0], [0, 0, 0]]]
    mean = shift_plan(plan_, steps=1, fill="mean")
    assert mean[0, -1].tolist() == [4.5, 5.5, 6.5] and torch.equal(mean[:, :3], plan_[:, 1:])
    assert torch.equal(shift_plan(plan_, steps=0), plan_)
    assert shift_plan(plan_, steps=9).tolist() == [[[9, 10, 11]] * 4]
    assert shift_plan(plan_).data_ptr() != plan_.data_ptr()
    with pytest.raises(ValueError, match="fill"):
        shift_plan(plan_, fill="noise")
    with pytest.raises(ValueError, match=r"\[B, H, A\]"):
        shift_plan(plan_[0])


@pytest.mark.parametrize("config, fields, field", [
    (CEMConfig, dict(samples=0), "samples"),
    (CEMConfig, dict(samples=10, elites=11), "elites"),
    (CEMConfig, dict(horizon=2.5), "horizon"),
    (CEMConfig, dict(init_std=0.0), "init_std"),
    (CEMConfig, dict(min_std=-0.1), "min_std"),
    (CEMConfig, dict(momentum=1.0), "momentum"),
    (CEMConfig, dict(keep_mean="yes"), "keep_mean"),
    (MPPIConfig, dict(temperature=0.0), "temperature"),
    (MPPIConfig, dict(noise_std=float("nan")), "noise_std"),
    (MPPIConfig, dict(iterations=0), "iterations"),
    (GradientConfig, dict(lr=-1.0), "lr"),
    (GradientConfig, dict(restarts=0), "restarts"),
    (RandomConfig, dict(horizon=0), "horizon"),
])
def test_config_validation_names_the_field(config, fields, field):
    with pytest.raises(ValueError, match=rf"{config.__name__}\.{field} must be"):
        config(**fields)


def test_make_planner_errors():
    assert PLANNERS == ("cem", "mppi", "gradient", "random")
    with pytest.raises(ValueError, match="known planners: cem, mppi, gradient, random"):
        make_planner("bogus", BOUNDS)
    with pytest.raises(ValueError, match="unknown cem planner field.*elite_count"):
        make_planner("cem", BOUNDS, elite_count=3)
    planner = make_planner("mppi", BOUNDS, horizon=7)
    assert planner.horizon == 7 and planner.bounds is BOUNDS
    with pytest.raises(ValueError, match=r"init must be \[B, H, A\]"):
        planner.plan(Quadratic(TARGETS), B, init=torch.zeros(B, 3, A))


def test_action_bounds():
    box = spaces.Box(low=np.array([-1, -2], np.float32), high=np.array([1, 3], np.float32))
    bounds = ActionBounds.from_space(box)
    assert bounds.dim == 2 and bounds.dtype == torch.float32
    assert bounds.center.tolist() == [0.0, 0.5] and bounds.half_range.tolist() == [1.0, 2.5]
    samples = bounds.sample_uniform((50, 4), torch.Generator().manual_seed(0))
    assert samples.shape == (50, 4, 2) and bounds.contains(samples)
    assert bounds.clamp(torch.tensor([5.0, -5.0])).tolist() == [1.0, -2.0]
    assert bounds.tile(3).low.tolist() == [-1, -2] * 3
    for low, high in [([0.0], [0.0]), ([0.0, 1.0], [1.0]), ([-np.inf], [1.0])]:
        with pytest.raises(ValueError):
            ActionBounds(low, high)
