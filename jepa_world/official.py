"""The old import path of :mod:`jepa_world.checkpoints.official` (the same module object)."""

import sys

from jepa_world.checkpoints import official

sys.modules[__name__] = official
