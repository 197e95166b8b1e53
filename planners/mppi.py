"""Model-predictive path integral: a cost-weighted average of Gaussian perturbations."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from jepa_world.planners.base import (
    Generators,
    Objective,
    Planner,
    PlanResult,
    keep_best,
    new_stats,
    require,
    require_ints,
)


@dataclass
class MPPIConfig:
    """MPPI settings.

    ``samples``: candidates ``S`` per episode and iteration (the current mean included when
    ``keep_mean``); ``iterations``: weighted updates; ``horizon``: ``H``. ``noise_std`` is a
    fraction of half the bound range, as CEM's ``init_std``; it stays fixed. ``temperature``
    (in cost units): weights are ``softmax(-(cost - min cost) / temperature)`` per episode, so
    small values approach "take the best", large ones a plain average. ``momentum``:
    ``new mean = momentum * old + (1 - momentum) * weighted average``.
    """

    samples: int = 300
    iterations: int = 10
    horizon: int = 5
    noise_std: float = 0.5
    temperature: float = 0.1
    momentum: float = 0.1
    keep_mean: bool = True

    def __post_init__(self) -> None:
        require_ints(self, "samples", "iterations", "horizon")
        require(self, "noise_std", math.isfinite(self.noise_std) and self.noise_std > 0, "> 0")
        require(self, "temperature", math.isfinite(self.temperature) and self.temperature > 0,
                "> 0")
        require(self, "momentum", 0 <= self.momentum < 1, "in [0, 1)")
        require(self, "keep_mean", isinstance(self.keep_mean, bool), "a bool")


class MPPIPlanner(Planner):
    """MPPI over ``[B, S, H, A]`` candidates, all episodes batched.

    Each iteration perturbs the per-episode mean ``[B, H, A]`` with Gaussian noise, clamps into
    the bounds, and moves the mean to the exponentially weighted average of the candidates.
    Returns the cheapest candidate seen in any iteration.
    """

    name = "mppi"

    config: MPPIConfig

    def plan(self, objective: Objective, batch_size: int, init: torch.Tensor | None = None,
             generator: Generators = None) -> PlanResult:
        c, bounds = self.config, self.bounds
        mean = self._start(batch_size, init)                       # [B, H, A]
        std = c.noise_std * bounds.half_range
        best_actions, best_cost = mean.clone(), mean.new_full((batch_size,), math.inf)
        stats, history = new_stats(), []
        for _ in range(c.iterations):
            candidates = self._draw(mean, std, c.samples, c.keep_mean, generator)  # [B,S,H,A]
            costs = self._evaluate(objective, candidates, stats)             # [B, S]
            best_actions, best_cost = keep_best(best_actions, best_cost, candidates, costs)
            history.append(best_cost.clone())

            # inf - inf (every candidate infinite) gives NaN: those episodes average uniformly.
            shifted = (costs - costs.min(dim=1, keepdim=True).values).nan_to_num(nan=0.0)
            weights = torch.softmax(-shifted / c.temperature, dim=1)        # [B, S]
            average = torch.einsum("bs,bsha->bha", weights, candidates)
            mean = c.momentum * mean + (1 - c.momentum) * average
        info = {"best_cost": torch.stack(history), "final_mean": mean, **stats}
        return PlanResult(best_actions, best_cost, info)
