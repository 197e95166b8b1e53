"""jepa_world's MuJoCo tasks, registered with Gymnasium when ``jepa_world`` is imported.

Importing this package does not import MuJoCo: each env module is loaded (and the headless GL
backend chosen, see :mod:`jepa_world.envs.rendering`) only when an env is made.
"""

from __future__ import annotations

import gymnasium as gym

from jepa_world.envs.protocol import EvalProtocol

#: Short names used by the configs (``env=reach``) -> Gymnasium ids.
ENV_IDS: dict[str, str] = {
    "reach": "jepa_world/Reach-v0",
    "tworoom": "jepa_world/TwoRoom-v0",
    "maze": "jepa_world/PointMaze-v0",
    "push": "jepa_world/Push-v0",
}

_ENTRY_POINTS = {
    "jepa_world/Reach-v0": "jepa_world.envs.reach:ReachEnv",
    "jepa_world/TwoRoom-v0": "jepa_world.envs.two_room:TwoRoomEnv",
    "jepa_world/PointMaze-v0": "jepa_world.envs.point_maze:PointMazeEnv",
    "jepa_world/Push-v0": "jepa_world.envs.push:PushEnv",
}

#: Any other Gymnasium env as a goal-image task (``env_id=...``; see :mod:`.goal_image`).
GOAL_IMAGE_ID = "jepa_world/GoalImage-v0"

# Public names of the env modules, imported on first access (they import MuJoCo).
_LAZY = {"GoalImageEnv": "jepa_world.envs.goal_image"}


def register_envs() -> None:
    """Register every task with Gymnasium (idempotent). ``gym.make`` wraps each in
    :class:`~jepa_world.envs.goal_task.GoalConditioned` outside the time limit."""
    from jepa_world.envs.goal_task import GOAL_CONDITIONED_SPEC

    entry_points = {**_ENTRY_POINTS,
                    GOAL_IMAGE_ID: "jepa_world.envs.goal_image:make_goal_image_env"}
    for env_id, entry_point in entry_points.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point,
                         max_episode_steps=EvalProtocol.step_budget,
                         additional_wrappers=(GOAL_CONDITIONED_SPEC,))


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jepa_world.envs' has no attribute {name!r}")


def resolve_env_id(name: str) -> str:
    """Map a short name (``reach``) or a full id to a registered jepa_world id, or raise."""
    env_id = ENV_IDS.get(name, name)
    if env_id not in _ENTRY_POINTS:
        known = ", ".join(f"{k} ({v})" for k, v in ENV_IDS.items())
        raise KeyError(f"unknown env {name!r}; known envs: {known}")
    return env_id


register_envs()

__all__ = ["ENV_IDS", "GOAL_IMAGE_ID", "EvalProtocol", "GoalImageEnv", "register_envs",
           "resolve_env_id"]
