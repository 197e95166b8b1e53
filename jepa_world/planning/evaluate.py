"""Evaluation under the fixed-budget protocol: N seeded episodes, success rate with a 95%
confidence interval, planning time per replan, steps to success."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from jepa_world.planners import Planner
from jepa_world.planning.mpc import EpisodeResult, run_episodes


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well-behaved at 0 and 1, small N)."""
    if trials <= 0:
        raise ValueError(f"trials must be > 0, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class AgentSummary:
    """Aggregate of one agent's episodes (what ``summary.json`` holds per agent)."""

    agent: str
    planner: str
    episodes: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]
    plan_seconds_mean: float
    plan_seconds_median: float
    replans: int
    steps_to_success_mean: float | None
    steps_to_success_median: float | None
    final_error_median: float
    per_episode: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(agent: str, planner: str, results: Sequence[EpisodeResult]) -> AgentSummary:
    if not results:
        raise ValueError("no episodes to summarise")
    wins = [r for r in results if r.success]
    times = [t for r in results for t in r.plan_seconds]
    steps = [r.steps for r in wins]
    return AgentSummary(
        agent=agent, planner=planner, episodes=len(results), successes=len(wins),
        success_rate=len(wins) / len(results),
        success_ci95=wilson_interval(len(wins), len(results)),
        plan_seconds_mean=float(np.mean(times)) if times else 0.0,
        plan_seconds_median=float(np.median(times)) if times else 0.0,
        replans=len(times),
        steps_to_success_mean=float(np.mean(steps)) if steps else None,
        steps_to_success_median=float(np.median(steps)) if steps else None,
        final_error_median=float(np.median([r.final_error for r in results])),
        per_episode=[{"seed": r.seed, "success": r.success, "steps": r.steps,
                      "final_error": r.final_error, "replans": len(r.plan_seconds),
                      **({"final_goal_error": r.final_goal_error}
                         if r.final_goal_error is not None else {}),
                      **({"error": r.error} if r.error else {})}
                     for r in results])


def evaluate(
    env: Any,
    agent: Any,
    planner: Planner,
    seeds: Sequence[int],
    action_repeat: int,
    step_budget: int,
    replan_every: int = 1,
    warm_start: bool = True,
    planner_seed: int = 0,
    record: Callable[[int], bool] = lambda i: False,
    on_episode: Callable[[int, EpisodeResult], None] | None = None,
    progress: bool = True,
    planner_name: str = "",
) -> AgentSummary:
    """Run one MPC episode per seed and summarise; ``on_episode(i, result)`` sees each one
    (write its video there). The planner's generator is seeded per episode, so an episode's
    outcome does not depend on which episodes ran before it, or beside it.

    ``env`` and ``agent`` may be lists of equal length ``W`` (distinct envs and agents): the
    episodes then run ``W`` at a time, planned together (:func:`run_episodes`: one planner call
    per MPC step for all live episodes), with the per-episode results of one at a time."""
    envs = list(env) if isinstance(env, (list, tuple)) else [env]
    agents = list(agent) if isinstance(agent, (list, tuple)) else [agent]
    if len(envs) != len(agents) or not envs:
        raise ValueError(f"need as many agents as envs, got {len(agents)} and {len(envs)}")
    results: list[EpisodeResult] = []
    bar = tqdm(total=len(seeds), desc=f"{agents[0].name}", unit="episode",
               disable=not progress)
    on_replan = _step_counter(bar, results, step_budget) if len(envs) > 1 and progress else None
    for first in range(0, len(seeds), len(envs)):
        wave = [int(s) for s in seeds[first:first + len(envs)]]
        generators = [torch.Generator(device=planner.bounds.device).manual_seed(
            planner_seed * 100_003 + seed) for seed in wave]
        done = run_episodes(envs[:len(wave)], agents[:len(wave)], planner, wave, action_repeat,
                            step_budget, replan_every=replan_every, warm_start=warm_start,
                            generators=generators,
                            record=[record(first + k) for k in range(len(wave))],
                            on_replan=on_replan)
        for k, result in enumerate(done):
            results.append(result)
            if on_episode is not None:
                on_episode(first + k, result)
            bar.update(1)
            bar.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}")
    bar.close()
    return summarize(agents[0].name, planner_name or type(planner).__name__, results)


def _step_counter(bar: Any, results: list[EpisodeResult], budget: int,
                  every_s: float = 1.0) -> Callable[[EpisodeResult], None]:
    """An ``on_replan`` that shows a batched wave's env step in the bar's postfix (its episodes
    finish together, so the episode count alone sits still for minutes); refreshed at most
    every ``every_s`` seconds."""
    last = [0.0]

    def on_replan(result: EpisodeResult) -> None:
        now = time.monotonic()
        if now - last[0] < every_s:
            return
        last[0] = now
        wins = sum(r.success for r in results)
        bar.set_postfix_str(f"success={wins}/{len(results)}, wave step {result.steps}/{budget}")

    return on_replan


__all__ = ["AgentSummary", "evaluate", "summarize", "wilson_interval"]
