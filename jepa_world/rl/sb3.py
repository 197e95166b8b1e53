"""stable-baselines3 glue: a batched Gymnasium vector env as one SB3 ``VecEnv``.

SB3 steps its own ``VecEnv`` type; wrapping the :class:`~jepa_world.rl.ImaginationVectorEnv`
(or any ``SAME_STEP``-autoreset Gymnasium vector env) keeps its single batched predictor call a
step, where ``DummyVecEnv`` would step ``N`` one-episode envs one after another::

    from stable_baselines3 import SAC
    from jepa_world.rl.sb3 import sb3_vec_env
    agent = SAC("MultiInputPolicy", sb3_vec_env(dream)).learn(50_000)

``compute_reward`` reaches the wrapped env through ``env_method``, as HER calls it.
Needs ``pip install jepa_world[rl]``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode


def sb3_vec_env(env: gym.vector.VectorEnv) -> Any:
    """SB3 ``VecEnv`` over a Gymnasium vector env that resets finished episodes in the same
    step (``metadata["autoreset_mode"] == SAME_STEP``, ``info["final_obs"]``)."""
    try:
        from stable_baselines3.common.vec_env.base_vec_env import VecEnv
    except ImportError as err:
        raise ImportError("stable-baselines3 is not installed: pip install "
                          "'jepa_world[rl]'") from err
    if env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise ValueError("sb3_vec_env needs a vector env with SAME_STEP autoreset (SB3 expects "
                         "the next episode's first observation with the last one in info)")

    class GymnasiumVecEnv(VecEnv):
        def __init__(self) -> None:
            super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
            self.env = env
            self._actions: np.ndarray | None = None

        def reset(self):
            seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
            obs, _ = self.env.reset(seed=seed)
            self._reset_seeds()
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self):
            obs, rewards, terminated, truncated, info = self.env.step(self._actions)
            dones = terminated | truncated
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            for key, value in info.items():
                if key.startswith("_") or key in ("final_obs", "final_info"):
                    continue
                for i in range(self.num_envs):
                    infos[i][key] = value[i]
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = info["final_obs"][i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["is_success"] = bool(info.get("success", np.zeros(len(dones)))[i])
            return obs, rewards.astype(np.float32), dones, infos

        def close(self) -> None:
            self.env.close()

        def get_attr(self, attr_name: str, indices=None) -> list[Any]:
            return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

        def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
            setattr(self.env, attr_name, value)

        def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
            result = getattr(self.env, method_name)(*args, **kwargs)
            return [result] * len(self._get_indices(indices))

        def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
            return [False] * len(self._get_indices(indices))

        def _get_indices(self, indices) -> list[int]:
            if indices is None:
                return list(range(self.num_envs))
            return [indices] if isinstance(indices, int) else list(indices)

    return GymnasiumVecEnv()


__all__ = ["sb3_vec_env"]
