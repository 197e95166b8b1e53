"""jepa_world: V-JEPA pretraining, latent world models and planners for MuJoCo / Gymnasium tasks.

Importing the package registers its Gymnasium environments (``jepa_world/Reach-v0``, ...).
"""

from jepa_world import envs as envs  # registers the Gymnasium ids

__version__ = "0.1.0"

__all__ = ["__version__", "envs"]
