"""Planning with models of the task: the simulator oracle (and, next, the MPC loop).

``SimulatorObjective`` (in :mod:`jepa_world.planning.oracle`) imports MuJoCo, so it is loaded on
first access, not when this package is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"SimulatorObjective": "jepa_world.planning.oracle"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jepa_world.planning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = list(_LAZY)
