"""The fixed-budget goal-reaching evaluation protocol of a task (no MuJoCo import).

Each task's config carries its own (``env.protocol``); the defaults are reach's."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EvalProtocol:
    """The fixed-budget goal-reaching protocol (the one with published numbers).

    ``goal_offset``: steps of the exploration policy from the start to the goal;
    ``success_tolerance``: per-coordinate tolerance of success (rad for joint goals);
    ``step_budget``: environment steps per episode; ``action_repeat``: env steps each planner
    action is held for (all of them count against the budget).
    """

    goal_offset: int = 25
    success_tolerance: float = 0.05
    step_budget: int = 50
    action_repeat: int = 5

    def __post_init__(self) -> None:
        for name in ("goal_offset", "step_budget", "action_repeat"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"protocol.{name}: must be an integer >= 1, got {value!r}")
        if not self.success_tolerance > 0:
            raise ValueError(f"protocol.success_tolerance: must be > 0, got "
                             f"{self.success_tolerance!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
