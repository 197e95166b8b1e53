"""Action planners (CEM, MPPI, gradient, random) over any objective, e.g. a latent world model.

Installed as ``jepa_world.planners``. Pure tensor code: no files, loggers or Hydra. A planner
minimises ``objective(actions [B, S, H, A]) -> costs [B, S]`` for ``B`` episodes at once::

    from jepa_world.planners import ActionBounds, make_planner, shift_plan

    bounds = ActionBounds.from_space(env.action_space)
    planner = make_planner("cem", bounds, samples=300, iterations=30, horizon=5)
    result = planner.plan(objective, batch_size=B, generator=torch.Generator().manual_seed(0))
    result.actions   # [B, H, A] best plan per episode; result.cost [B]
    # model-predictive control: execute result.actions[:, 0], then warm start
    result = planner.plan(objective, B, init=shift_plan(result.actions))
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from jepa_world.planners.base import (
    ActionBounds,
    Objective,
    Planner,
    PlanResult,
    shift_plan,
)
from jepa_world.planners.cem import CEMConfig, CEMPlanner
from jepa_world.planners.gradient import GradientConfig, GradientPlanner
from jepa_world.planners.mppi import MPPIConfig, MPPIPlanner
from jepa_world.planners.random_shooting import RandomConfig, RandomPlanner

_REGISTRY: dict[str, tuple[type, type[Planner]]] = {
    "cem": (CEMConfig, CEMPlanner),
    "mppi": (MPPIConfig, MPPIPlanner),
    "gradient": (GradientConfig, GradientPlanner),
    "random": (RandomConfig, RandomPlanner),
}

#: Names :func:`make_planner` knows.
PLANNERS: tuple[str, ...] = tuple(_REGISTRY)


def planner_fields(name: str | None = None) -> set[str]:
    """The config fields of planner ``name``, or of any planner when ``name`` is None."""
    names = PLANNERS if name is None else (name,)
    return {f.name for n in names for f in fields(_REGISTRY[n][0])}


def make_planner(name: str, bounds: ActionBounds, **config_fields: Any) -> Planner:
    """Build a planner by name (one of :data:`PLANNERS`) from its config's fields.

    Raises ``ValueError`` for an unknown name or field (the known ones are listed) and for an
    invalid value (the field is named).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown planner {name!r}; known planners: {', '.join(PLANNERS)}")
    config_cls, planner_cls = _REGISTRY[name]
    known = [f.name for f in fields(config_cls)]
    unknown = sorted(set(config_fields) - set(known))
    if unknown:
        raise ValueError(f"unknown {name} planner field(s) {', '.join(unknown)}; "
                         f"known fields: {', '.join(known)}")
    return planner_cls(config_cls(**config_fields), bounds)


__all__ = [
    "PLANNERS",
    "ActionBounds",
    "CEMConfig",
    "CEMPlanner",
    "GradientConfig",
    "GradientPlanner",
    "MPPIConfig",
    "MPPIPlanner",
    "Objective",
    "PlanResult",
    "Planner",
    "RandomConfig",
    "RandomPlanner",
    "make_planner",
    "planner_fields",
    "shift_plan",
]
