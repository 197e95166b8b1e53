"""Typed config schemas shared by the command-line entry points.

Plain dataclasses that validate themselves in ``__post_init__`` and name the bad field in a
:class:`~jepa_world.errors.ConfigError`. The entry points register them with Hydra as schemas (so
overrides are type-checked) and turn the composed config back into these objects; library code
only ever sees the dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jepa_world.envs import ENV_IDS
from jepa_world.envs.exploration import POLICIES
from jepa_world.errors import ConfigError


def check(condition: bool, name: str, message: str) -> None:
    """Raise ``ConfigError("name: message")`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{name}: {message}")


def check_choice(value: str, choices, name: str) -> None:
    check(value in choices, name, f"{value!r} is not one of {', '.join(map(str, choices))}")


@dataclass
class EnvConfig:
    """Which task and how it is observed."""

    name: str = "reach"  #: short name (``reach``) or Gymnasium id (``jepa_world/Reach-v0``)
    image_size: int = 64  #: square observation size in pixels
    frame_skip: int = 2  #: physics steps per env step

    def __post_init__(self) -> None:
        known = list(ENV_IDS) + list(ENV_IDS.values())
        check(self.name in known, "env.name",
              f"unknown env {self.name!r}; known envs: {', '.join(known)}")
        check(8 <= self.image_size <= 1024, "env.image_size",
              f"must be between 8 and 1024 pixels, got {self.image_size}")
        check(self.frame_skip >= 1, "env.frame_skip", f"must be >= 1, got {self.frame_skip}")

    @property
    def env_id(self) -> str:
        return ENV_IDS.get(self.name, self.name)

    @property
    def short_name(self) -> str:
        return next((k for k, v in ENV_IDS.items() if v == self.env_id), self.name)


@dataclass
class PolicyConfig:
    """Exploration policy used to collect data (see :mod:`jepa_world.envs.exploration`)."""

    name: str = "correlated"
    beta: float = 0.9  #: correlated: persistence of the noise per step, in [0, 1)
    sigma: float = 0.8  #: correlated: stationary std in units of half the action range

    def __post_init__(self) -> None:
        check_choice(self.name, POLICIES, "policy.name")
        check(0.0 <= self.beta < 1.0, "policy.beta", f"must be in [0, 1), got {self.beta}")
        check(self.sigma > 0.0, "policy.sigma", f"must be > 0, got {self.sigma}")


@dataclass
class CollectConfig:
    """``python -m jepa_world.collect``: roll out an exploration policy and store episodes."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    episodes: int = 200  #: total episodes wanted in the dataset (re-running resumes to this)
    episode_length: int = 100  #: actions per episode (frames = episode_length + 1)
    num_envs: int = 2  #: environments stepped in parallel
    vectorization: str = "sync"  #: ``sync`` (one process) or ``async`` (a process per env)
    episodes_per_shard: int = 20
    seed: int = 0  #: episode ``i`` uses seed ``seed + i``
    data_dir: str = ""  #: default ``data/<env>_<size>px``
    progress: bool = True

    def __post_init__(self) -> None:
        check(self.episodes >= 1, "episodes", f"must be >= 1, got {self.episodes}")
        check(self.episode_length >= 1, "episode_length",
              f"must be >= 1, got {self.episode_length}")
        check(self.num_envs >= 1, "num_envs", f"must be >= 1, got {self.num_envs}")
        check_choice(self.vectorization, ("sync", "async"), "vectorization")
        check(self.episodes_per_shard >= 1, "episodes_per_shard",
              f"must be >= 1, got {self.episodes_per_shard}")
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        if not self.data_dir:
            self.data_dir = f"data/{self.env.short_name}_{self.env.image_size}px"
