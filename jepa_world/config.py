"""Typed config schemas shared by the command-line entry points.

Plain dataclasses that validate themselves in ``__post_init__`` and name the bad field in a
:class:`~jepa_world.errors.ConfigError`. The entry points register them with Hydra as schemas (so
overrides are type-checked) and turn the composed config back into these objects; library code
only ever sees the dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jepa_world.envs import ENV_IDS, GOAL_IMAGE_ID, EvalProtocol
from jepa_world.envs.exploration import POLICIES, POLICY_TASKS
from jepa_world.errors import ConfigError


def check(condition: bool, name: str, message: str) -> None:
    """Raise ``ConfigError("name: message")`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{name}: {message}")


def check_choice(value: str, choices, name: str) -> None:
    check(value in choices, name, f"{value!r} is not one of {', '.join(map(str, choices))}")


@dataclass
class EnvConfig:
    """Which task and how it is observed: one of jepa_world's own tasks (``name``), or any
    Gymnasium env adapted into a goal-image task (``id``, see
    :class:`~jepa_world.envs.goal_image.GoalImageEnv`). ``configs/env/<name>.yaml`` holds each
    task's values, its eval protocol included; commands build the env with :meth:`make`."""

    name: str = "reach"  #: short name (``reach``, or any label for an adapted env)
    id: str = ""  #: Gymnasium id to adapt (``Reacher-v5``, ``module:Name-v0``); "": own task
    kwargs: dict[str, Any] = field(default_factory=dict)  #: the adapted env's own arguments
    image_size: int = 64  #: square observation size in pixels
    frame_skip: int = 2  #: own tasks: physics steps per env step (adapted: set it in kwargs)
    goal: list[str] = field(default_factory=list)  #: adapted: goal coordinates ([]: all joints)
    proprio: list[int] = field(default_factory=list)  #: adapted: vector-observation entries
    #: proprio entries one frame shows (reach: the joint angles): the planners' proprio cost,
    #: the world model's state loss and the ``state`` probe use them
    state_dims: list[int] = field(default_factory=lambda: [0, 1])
    state_angles: bool = True  #: the state entries are angles (probes regress sin and cos)
    #: where the ``state`` / ``motion`` probes read the state: ``proprio`` (``state_dims``,
    #: ``state_angles``) or ``goal``: the task's goal vector of each frame, from its stored sim
    #: state, its angle coordinates as sines and cosines (push: the block's x, y and angle)
    probe_state: str = "proprio"
    #: the exploration policy that collects this task's data under ``policy=auto`` (the
    #: collect command's default); see :data:`jepa_world.envs.exploration.POLICIES`
    exploration: str = "correlated"
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    #: planner settings the task needs in place of the planner group's defaults (the maze:
    #: ``horizon: 10``, a lookahead of the whole budget); ``plan`` applies those the chosen
    #: planner has, and ``planner.<key>=`` on the command line still wins
    planner: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.protocol, dict):
            self.protocol = EvalProtocol(**self.protocol)
        if self.id:
            check_gym_id(self.id)
            check(bool(self.short_name), "env.name", "give the adapted env a name")
        else:
            check(self.name != "gym", "env.id",
                  "env=gym adapts a Gymnasium env: pass env.id=<its id> (e.g. Reacher-v5)")
            known = list(ENV_IDS) + list(ENV_IDS.values())
            check(self.name in known, "env.name",
                  f"unknown env {self.name!r}; known envs: {', '.join(known)}; or adapt any "
                  f"Gymnasium env with env=gym env.id=<its id>")
            check(not self.goal and not self.proprio and not self.kwargs, "env.id",
                  f"goal, proprio and kwargs describe an adapted env; {self.name} is one of "
                  f"jepa_world's own tasks")
        check_choice(self.probe_state, ("proprio", "goal"), "env.probe_state")
        check(not (self.id and self.probe_state == "goal"), "env.probe_state",
              "goal reads the sim states of jepa_world's own tasks; adapted envs use proprio")
        check_choice(self.exploration, POLICIES, "env.exploration")
        if self.planner:
            from jepa_world.planners import planner_fields

            known = planner_fields()
            for key in self.planner:
                check(key in known, f"env.planner.{key}",
                      f"no planner has this setting; known: {', '.join(sorted(known))}")
        check(8 <= self.image_size <= 1024, "env.image_size",
              f"must be between 8 and 1024 pixels, got {self.image_size}")
        check(self.frame_skip >= 1, "env.frame_skip", f"must be >= 1, got {self.frame_skip}")
        self.goal, self.proprio = [str(g) for g in self.goal], [int(i) for i in self.proprio]
        self.state_dims = [int(d) for d in self.state_dims]
        check(all(i >= 0 for i in self.proprio), "env.proprio",
              f"indices must be >= 0, got {self.proprio}")
        limit = len(self.proprio) if self.id else None
        check(all(0 <= d < (limit if limit is not None else 10**9) for d in self.state_dims),
              "env.state_dims", f"{self.state_dims} must index the proprio vector"
              + (f" of {limit} entries (env.proprio)" if limit is not None else ""))

    @property
    def env_id(self) -> str:
        """The Gymnasium id :meth:`make` builds (``jepa_world/GoalImage-v0`` when adapted)."""
        return GOAL_IMAGE_ID if self.id else ENV_IDS.get(self.name, self.name)

    @property
    def task_id(self) -> str:
        """What the task is: its own id, or the adapted env's id (world models record it)."""
        return self.id.rpartition(":")[2] if self.id else self.env_id

    @property
    def short_name(self) -> str:
        if self.id and self.name in ("", "gym"):
            return self.task_id.split("/")[-1].lower()
        return next((k for k, v in ENV_IDS.items() if v == self.env_id), self.name)

    def gym_kwargs(self) -> dict[str, Any]:
        """``gym.make(self.env_id, **gym_kwargs())`` builds the task (recorded in datasets)."""
        p, default = self.protocol, EvalProtocol()
        if self.id:
            return {"env_id": self.id, "env_kwargs": dict(self.kwargs),
                    "image_size": self.image_size, "goal": list(self.goal),
                    "proprio": list(self.proprio), "goal_offset": p.goal_offset,
                    "success_tolerance": p.success_tolerance}
        kwargs: dict[str, Any] = {"image_size": self.image_size, "frame_skip": self.frame_skip}
        # Reach's datasets predate these arguments: record them only when they differ.
        for name in ("goal_offset", "success_tolerance"):
            if getattr(p, name) != getattr(default, name):
                kwargs[name] = getattr(p, name)
        return kwargs

    def make(self, **overrides: Any) -> Any:
        """The task as a Gymnasium env; ``overrides`` go to ``gym.make`` (``max_episode_steps``,
        ``terminate_on_success``, ...)."""
        import gymnasium as gym

        import jepa_world.envs  # noqa: F401  (registers the ids)

        return gym.make(self.env_id, **{**self.gym_kwargs(), **overrides})


def check_gym_id(env_id: str) -> None:
    """Fail in one line unless ``env_id`` (``Name-v0`` or ``module:Name-v0``) is registered."""
    import difflib
    import importlib

    import gymnasium as gym

    module, _, name = env_id.rpartition(":")
    if module:
        from jepa_world.envs.rendering import configure_backend

        configure_backend()  # before the module imports MuJoCo with its own GL default
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"env.id: cannot import {module!r} for {env_id!r} ({err}); "
                              f"install the package that provides it") from None
    if name not in gym.registry:
        close = difflib.get_close_matches(name, list(gym.registry), n=5, cutoff=0.6)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ConfigError(f"env.id: {name!r} is not a registered Gymnasium env{hint}")


@dataclass
class PolicyConfig:
    """Exploration policy used to collect data (see :mod:`jepa_world.envs.exploration`)."""

    #: ``auto``: the task's own (``env.exploration``), else one of ``POLICIES``
    name: str = "auto"
    beta: float = 0.9  #: correlated: persistence of the noise per step, in [0, 1)
    sigma: float = 0.8  #: correlated: stationary std in units of half the action range

    def __post_init__(self) -> None:
        check_choice(self.name, ("auto", *POLICIES), "policy.name")
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
        if self.policy.name == "auto":  # the manifest records the policy that ran
            self.policy.name = self.env.exploration
        tasks = POLICY_TASKS.get(self.policy.name)
        check(tasks is None or self.env.env_id in tasks, "policy.name",
              f"{self.policy.name} reads the observations of {', '.join(tasks or [])} only, "
              f"not {self.env.env_id}")
        if not self.data_dir:
            self.data_dir = f"data/{self.env.short_name}_{self.env.image_size}px"
