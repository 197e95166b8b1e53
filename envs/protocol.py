"""The fixed-budget goal-reaching evaluation protocol, shared by every task (no MuJoCo import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
