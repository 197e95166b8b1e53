"""jepa_world: V-JEPA pretraining, latent world models and planners for MuJoCo / Gymnasium tasks.

Importing the package registers its Gymnasium environments (``jepa_world/Reach-v0``, ...) and
nothing heavier: torch-based parts are imported on first use, so env worker processes start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from jepa_world import envs as envs  # registers the Gymnasium ids

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first access.
_LAZY = {
    "load_pretrained": "jepa_world.checkpoints",
    "Pretrained": "jepa_world.checkpoints",
    "WindowDataset": "jepa_world.data.windows",
    "WorldModel": "jepa_world.world_model",
    "WorldModelConfig": "jepa_world.world_model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jepa_world' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", "envs", *_LAZY]
