"""Model-predictive control: plan, execute the first actions, observe, replan.

::

    result = run_episode(env, agent, planner, seed=0, action_repeat=5, step_budget=50)

Every replan warm-starts the planner from the previous plan shifted by the actions executed.
Each planner action is held for ``action_repeat`` env steps; all env steps count against
``step_budget``; the episode ends at the first step the env reports success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from jepa_world.planners import Planner, shift_plan


@dataclass
class EpisodeResult:
    """One MPC episode.

    ``frames``: the observed frames ``[H, W, 3]`` (start + one per env step) when recorded;
    ``plans``: per replan, the env step it started at and the chosen plan ``[H, A]``;
    ``plan_seconds``: wall time of each planner call; ``imagined``: per replan, the agent's
    imagined latents ``[H, N, D]`` of its plan (recorded episodes of agents that imagine);
    ``error``: why the env ended the episode early (a NaN action, a diverged simulation).
    """

    seed: int
    success: bool
    steps: int
    final_error: float
    plan_seconds: list[float] = field(default_factory=list)
    goal: np.ndarray | None = None
    frames: list[np.ndarray] = field(default_factory=list)
    plans: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    imagined: list[torch.Tensor] = field(default_factory=list)
    error: str | None = None  #: the env's ``info["error"]`` that ended the episode, if any

    @property
    def steps_to_success(self) -> int | None:
        return self.steps if self.success else None


def run_episode(
    env: Any,
    agent: Any,
    planner: Planner,
    seed: int,
    action_repeat: int,
    step_budget: int,
    replan_every: int = 1,
    warm_start: bool = True,
    generator: torch.Generator | None = None,
    record: bool = False,
    on_replan: Callable[[EpisodeResult], None] | None = None,
) -> EpisodeResult:
    """Run one episode of ``env`` (reset with ``seed``) under MPC.

    Args:
        env: a goal env (observations ``pixels``, ``goal_pixels``, ``proprio``; info
            ``success`` and ``max_goal_error``).
        agent: turns the current state into a planning objective (:mod:`.agents`).
        planner: any :class:`~jepa_world.planners.Planner`; its bounds must be the env's.
        seed: env reset seed (it fixes the start and the goal).
        action_repeat: env steps each planner action is held for.
        step_budget: env steps allowed.
        replan_every: planner actions executed between replans (``<= horizon``).
        warm_start: start each replan from the previous plan shifted by ``replan_every``.
        generator: the planner's random generator (seed it for reproducible episodes).
        record: keep every observed frame in the result.
        on_replan: called after each planner call (e.g. to log).
    """
    if not 1 <= replan_every <= planner.horizon:
        raise ValueError(f"replan_every must be in [1, horizon={planner.horizon}], got "
                         f"{replan_every}")
    if action_repeat < 1 or step_budget < 1:
        raise ValueError(f"action_repeat and step_budget must be >= 1, got {action_repeat}, "
                         f"{step_budget}")
    obs, info = env.reset(seed=seed)
    agent.reset(env, obs)
    result = EpisodeResult(seed=seed, success=bool(info.get("success", False)), steps=0,
                           final_error=float(info.get("max_goal_error", np.nan)),
                           goal=obs["goal_pixels"])
    if record:
        result.frames.append(obs["pixels"])
    previous = None
    while not result.success and result.steps < step_budget:
        init = shift_plan(previous, replan_every) if warm_start and previous is not None \
            else None
        started = time.perf_counter()
        with torch.no_grad():
            plan = planner.plan(agent.objective(), 1, init=init, generator=generator)
        result.plan_seconds.append(time.perf_counter() - started)
        result.plans.append((result.steps, plan.actions[0].detach().cpu()))
        previous = plan.actions
        if record and hasattr(agent, "imagine"):
            result.imagined.append(agent.imagine(plan.actions[0]))
        if on_replan is not None:
            on_replan(result)
        for action in plan.actions[0, :replan_every].detach().cpu().numpy():
            for _ in range(action_repeat):
                obs, _, terminated, truncated, info = env.step(action)
                result.steps += 1
                result.final_error = float(info["max_goal_error"])
                result.error = info.get("error", result.error)
                if record:
                    result.frames.append(obs["pixels"])
                if info["success"]:
                    result.success = True
                if terminated or truncated or result.steps >= step_budget:
                    break
            if result.success or result.steps >= step_budget or terminated or truncated:
                break
            agent.observe(obs, action)
        if (terminated or truncated) and not result.success:
            break
    return result


__all__ = ["EpisodeResult", "run_episode"]
