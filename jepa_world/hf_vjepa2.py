"""The documented import path of :mod:`jepa_world.checkpoints.hf` (the same module object)."""

import sys

from jepa_world.checkpoints import hf

sys.modules[__name__] = hf
