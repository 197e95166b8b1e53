"""Model-predictive control: plan, execute the first actions, observe, replan.

::

    result = run_episode(env, agent, planner, seed=0, action_repeat=5, step_budget=50)
    results = run_episodes(envs, agents, planner, seeds, 5, 50, generators=gens)  # batched

Every replan warm-starts the planner from the previous plan shifted by the actions executed.
Each planner action is held for ``action_repeat`` env steps; all env steps count against
``step_budget``; the episode ends at the first step the env reports success.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from jepa_world.planners import Planner, shift_plan
from jepa_world.planning.agents import joint_objective, joint_observe, joint_reset


@dataclass
class EpisodeResult:
    """One MPC episode.

    ``frames``: the observed frames ``[H, W, 3]`` (start + one per env step) when recorded;
    ``plans``: per replan, the env step it started at and the chosen plan ``[H, A]``;
    ``plan_seconds``: wall time of each planner call; ``imagined``: per replan, the agent's
    imagined latents ``[H, N, D]`` of its plan (recorded episodes of agents that imagine);
    ``error``: why the env ended the episode early (a NaN action, a diverged simulation);
    ``final_goal_error``: which goal coordinates missed their tolerance at the end.
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
    #: the env's per-coordinate goal error at the end (``info["goal_error"]``), if it gives one
    final_goal_error: list[float] | None = None

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
    """Run one episode of ``env`` (reset with ``seed``) under MPC: :func:`run_episodes` of one.

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
    return run_episodes([env], [agent], planner, [seed], action_repeat, step_budget,
                        replan_every=replan_every, warm_start=warm_start,
                        generators=None if generator is None else [generator],
                        record=[record], on_replan=on_replan)[0]


def run_episodes(
    envs: Sequence[Any],
    agents: Sequence[Any],
    planner: Planner,
    seeds: Sequence[int],
    action_repeat: int,
    step_budget: int,
    replan_every: int = 1,
    warm_start: bool = True,
    generators: Sequence[torch.Generator] | None = None,
    record: Sequence[bool] | None = None,
    on_replan: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run one episode per env (``envs[i]`` reset with ``seeds[i]``, planned by ``agents[i]``)
    under MPC, all planned together: at every replan ONE planner call plans every live episode
    (:func:`~jepa_world.planning.agents.joint_objective`); finished episodes drop out. With one
    generator per episode each episode's result is the one it gets run alone (the planner draws
    each episode's samples from its own generator; only float rounding of the batched objective
    may differ). ``plan_seconds`` holds each episode's share of the calls it was planned in
    (the call's wall time / the episodes in it). Arguments as in :func:`run_episode`."""
    n = len(envs)
    if not n == len(agents) == len(seeds) or (generators is not None and len(generators) != n):
        raise ValueError("envs, agents, seeds (and generators) must have one entry per episode")
    if not 1 <= replan_every <= planner.horizon:
        raise ValueError(f"replan_every must be in [1, horizon={planner.horizon}], got "
                         f"{replan_every}")
    if action_repeat < 1 or step_budget < 1:
        raise ValueError(f"action_repeat and step_budget must be >= 1, got {action_repeat}, "
                         f"{step_budget}")
    record = list(record) if record is not None else [False] * n  # one flag per episode
    episodes = [_Episode(env, agent, int(seed), rec, step_budget)
                for env, agent, seed, rec in zip(envs, agents, seeds, record, strict=True)]
    joint_reset(list(agents), list(envs), [e.pending.pop() for e in episodes])
    while live := [e for e in episodes if not e.done]:
        init = None
        if warm_start and live[0].previous is not None:
            init = shift_plan(torch.cat([e.previous for e in live]), replan_every)
        gens = None if generators is None else [generators[episodes.index(e)] for e in live]
        started = time.perf_counter()
        with torch.no_grad():
            plan = planner.plan(joint_objective([e.agent for e in live]), len(live), init=init,
                                generator=gens)
        share = (time.perf_counter() - started) / len(live)
        for row, episode in enumerate(live):
            episode.execute(plan.actions[row:row + 1], share, replan_every, action_repeat,
                            on_replan)
        for k in range(replan_every):  # the agents see what happened, all frames at once
            seen = [e for e in live if len(e.pending) > k]
            if seen:
                joint_observe([e.agent for e in seen], [e.pending[k][0] for e in seen],
                              [e.pending[k][1] for e in seen])
        for episode in live:
            episode.pending.clear()
    return [e.result for e in episodes]


class _Episode:
    """One episode's env, agent, result and last plan inside :func:`run_episodes`."""

    def __init__(self, env: Any, agent: Any, seed: int, record: bool, budget: int) -> None:
        obs, info = env.reset(seed=seed)
        self.env, self.agent, self.record, self.budget = env, agent, record, budget
        #: what the agent is still to be told: the start observation (for its reset), then
        #: after each :meth:`execute` an ``(obs, action)`` per executed action it goes on from
        self.pending: list = [obs]
        self.result = EpisodeResult(seed=seed, success=bool(info.get("success", False)),
                                    steps=0, final_error=float(info.get("max_goal_error",
                                                                        np.nan)),
                                    goal=obs["goal_pixels"])
        if record:
            self.result.frames.append(obs["pixels"])
        self.previous: torch.Tensor | None = None
        self.ended = False  # terminated or truncated without success

    @property
    def done(self) -> bool:
        r = self.result
        return r.success or r.steps >= self.budget or self.ended

    def execute(self, actions: torch.Tensor, seconds: float, replan_every: int,
                action_repeat: int, on_replan: Callable | None) -> None:
        """Record the plan ``[1, H, A]``, then execute its first ``replan_every`` actions (the
        observations the agent must see go to :attr:`pending`)."""
        result = self.result
        result.plan_seconds.append(seconds)
        result.plans.append((result.steps, actions[0].detach().cpu()))
        self.previous = actions
        if self.record and hasattr(self.agent, "imagine"):
            result.imagined.append(self.agent.imagine(actions[0]))
        if on_replan is not None:
            on_replan(result)
        terminated = truncated = False
        for action in actions[0, :replan_every].detach().cpu().numpy():
            for _ in range(action_repeat):
                obs, _, terminated, truncated, info = self.env.step(action)
                result.steps += 1
                result.final_error = float(info["max_goal_error"])
                if "goal_error" in info:
                    result.final_goal_error = [float(e) for e in info["goal_error"]]
                result.error = info.get("error", result.error)
                if self.record:
                    result.frames.append(obs["pixels"])
                if info["success"]:
                    result.success = True
                if terminated or truncated or result.steps >= self.budget:
                    break
            if result.success or result.steps >= self.budget or terminated or truncated:
                break
            self.pending.append((obs, action))
        if (terminated or truncated) and not result.success:
            self.ended = True


__all__ = ["EpisodeResult", "run_episode", "run_episodes"]
