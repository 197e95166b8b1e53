"""Cross-entropy method: refit a diagonal Gaussian over action sequences to the elites."""

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
class CEMConfig:
    """Cross-entropy method settings.

    ``samples``: candidates ``S`` per episode and iteration (the current mean included when
    ``keep_mean``); ``iterations``: refits; ``elites``: best candidates the Gaussian is refit to;
    ``horizon``: ``H``. ``init_std`` and ``min_std`` are *fractions of half the bound range*
    (per action dim: ``std = init_std * (high - low) / 2``), so 1.0 spreads the first samples
    over the whole box whatever its units. ``momentum`` smooths the refit:
    ``new = momentum * old + (1 - momentum) * elite statistic``. ``keep_mean``: the current mean
    is always one of the candidates, so a warm start's cost is never lost.
    """

    samples: int = 300
    iterations: int = 30
    elites: int = 30
    horizon: int = 5
    init_std: float = 1.0
    min_std: float = 0.05
    momentum: float = 0.1
    keep_mean: bool = True

    def __post_init__(self) -> None:
        require_ints(self, "samples", "iterations", "elites", "horizon")
        require(self, "elites", self.elites <= self.samples,
                f"at most samples ({self.samples})")
        require(self, "init_std", math.isfinite(self.init_std) and self.init_std > 0, "> 0")
        require(self, "min_std", math.isfinite(self.min_std) and self.min_std >= 0,
                ">= 0")
        require(self, "momentum", 0 <= self.momentum < 1, "in [0, 1)")
        require(self, "keep_mean", isinstance(self.keep_mean, bool), "a bool")


class CEMPlanner(Planner):
    """CEM over ``[B, S, H, A]`` candidates, all episodes batched (no per-episode loop).

    Each iteration samples around the per-episode mean / std ``[B, H, A]``, clamps the samples
    into the bounds, scores them in one objective call, takes the ``elites`` cheapest per
    episode and refits mean and std (std floored at ``min_std``). Returns the cheapest
    candidate seen in any iteration, not the final mean.
    """

    name = "cem"

    config: CEMConfig

    def plan(self, objective: Objective, batch_size: int, init: torch.Tensor | None = None,
             generator: Generators = None) -> PlanResult:
        c, bounds = self.config, self.bounds
        mean = self._start(batch_size, init)                       # [B, H, A]
        std = (c.init_std * bounds.half_range).expand_as(mean).clone()
        min_std = c.min_std * bounds.half_range
        best_actions, best_cost = mean.clone(), mean.new_full((batch_size,), math.inf)
        stats, history = new_stats(), []
        batch = torch.arange(batch_size, device=mean.device)[:, None]
        for _ in range(c.iterations):
            candidates = self._draw(mean, std, c.samples, c.keep_mean, generator)  # [B,S,H,A]
            costs = self._evaluate(objective, candidates, stats)             # [B, S]
            best_actions, best_cost = keep_best(best_actions, best_cost, candidates, costs)
            history.append(best_cost.clone())

            elite_index = costs.topk(c.elites, dim=1, largest=False).indices  # [B, E]
            elites = candidates[batch, elite_index]                          # [B, E, H, A]
            mean = c.momentum * mean + (1 - c.momentum) * elites.mean(dim=1)
            elite_std = elites.std(dim=1, correction=0)
            std = torch.maximum(c.momentum * std + (1 - c.momentum) * elite_std, min_std)
        info = {"best_cost": torch.stack(history), "final_mean": mean, "final_std": std, **stats}
        return PlanResult(best_actions, best_cost, info)
