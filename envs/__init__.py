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
}

_ENTRY_POINTS = {
    "jepa_world/Reach-v0": "jepa_world.envs.reach:ReachEnv",
}


def register_envs() -> None:
    """Register every task with Gymnasium (idempotent)."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point,
                         max_episode_steps=EvalProtocol.step_budget)


def resolve_env_id(name: str) -> str:
    """Map a short name (``reach``) or a full id to a registered jepa_world id, or raise."""
    env_id = ENV_IDS.get(name, name)
    if env_id not in _ENTRY_POINTS:
        known = ", ".join(f"{k} ({v})" for k, v in ENV_IDS.items())
        raise KeyError(f"unknown env {name!r}; known envs: {known}")
    return env_id


register_envs()

__all__ = ["ENV_IDS", "EvalProtocol", "register_envs", "resolve_env_id"]
