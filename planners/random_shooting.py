"""The random baseline: uniform actions inside the bounds."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jepa_world.planners.base import (
    Generators,
    Objective,
    Planner,
    PlanResult,
    new_stats,
    require_ints,
)


@dataclass
class RandomConfig:
    """``horizon``: ``H`` of the returned plan."""

    horizon: int = 5

    def __post_init__(self) -> None:
        require_ints(self, "horizon")


class RandomPlanner(Planner):
    """Uniformly random ``[B, H, A]`` plans; ``init`` is ignored.

    It calls the objective once, on the plan itself (``S = 1``), only to report its cost, so
    results compare with the other planners' in logs.
    """

    name = "random"

    config: RandomConfig

    def plan(self, objective: Objective, batch_size: int, init: torch.Tensor | None = None,
             generator: Generators = None) -> PlanResult:
        self._start(batch_size, init)  # validates batch_size and init's shape
        actions = self.bounds.sample_uniform((batch_size, self.horizon), generator)
        stats = new_stats()
        cost = self._evaluate(objective, actions[:, None], stats)[:, 0]
        return PlanResult(actions, cost, {"best_cost": cost[None], **stats})
