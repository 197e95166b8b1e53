"""Real envs seen through the world model: latent observations and the learned reward.

:class:`LatentObservation` (one env) and :class:`LatentObservationVector` (a Gymnasium vector
env, every sub-env's frame encoded in one call) replace the frames of a goal-image task by the
world model's latents, in the goal-conditioned layout stable-baselines3 and HER expect:

* ``observation``: the env's proprio ``[P]`` (a single 0 when the task has none);
* ``achieved_goal``: the latent of the current frame, flat ``[N * D]``;
* ``desired_goal``: the latent of the goal image, flat ``[N * D]``.

The reward is the :class:`~jepa_world.rl.LatentReward` of the current latent (the planners' cost,
negated); the env's own reward and success stay in ``info["env_reward"]`` / ``info["success"]``.
Wrap the task in :class:`ActionRepeat` first (``frameskip`` env steps an action, as the model
was trained) to act on the world model's time scale.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from jepa_world.rl.reward import LatentReward
from jepa_world.world_model import WorldModel


def goal_spaces(model: WorldModel, proprio_dim: int) -> spaces.Dict:
    """The goal-conditioned observation space of latents (shared with the imagination env)."""
    width = model.tokens_per_frame * model.latent_dim
    latent = spaces.Box(-np.inf, np.inf, (width,), np.float32)
    return spaces.Dict({
        "observation": spaces.Box(-np.inf, np.inf, (max(proprio_dim, 1),), np.float32),
        "achieved_goal": latent, "desired_goal": latent})


def goal_observation(latents: torch.Tensor, goal: torch.Tensor, proprio: Any) -> dict:
    """Latents ``[B, N, D]``, goals ``[B, N, D]``, proprio ``[B, P]`` -> batched numpy dict
    (fresh arrays: nothing shares memory with the model's tensors or earlier observations)."""
    b = latents.shape[0]
    proprio = (proprio.float().cpu().numpy() if torch.is_tensor(proprio)
               else np.asarray(proprio, np.float32)).reshape(b, -1).copy()
    if proprio.shape[1] == 0:
        proprio = np.zeros((b, 1), np.float32)
    return {"observation": proprio,
            "achieved_goal": latents.reshape(b, -1).float().cpu().numpy().copy(),
            "desired_goal": goal.reshape(b, -1).float().cpu().numpy().copy()}


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Hold each action for ``repeat`` env steps (rewards summed; stops at the episode's end)."""

    def __init__(self, env: gym.Env, repeat: int) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        gym.Wrapper.__init__(self, env)
        self.repeat = int(repeat)

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class LatentObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A goal-image task observed as world-model latents, rewarded by the learned reward.

    Args:
        env: a task with ``pixels``, ``goal_pixels`` and ``proprio`` observations (one of
            jepa_world's own or a :class:`~jepa_world.envs.GoalImageEnv`).
        model: the world model (its ``check_env`` is applied: id, action and image size).
        reward: default ``LatentReward(model)``.
    """

    def __init__(self, env: gym.Env, model: WorldModel, reward: LatentReward | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, model=model, reward=reward)
        gym.Wrapper.__init__(self, env)
        model.check_env(env)
        self.model, self.reward_fn = model.eval(), reward or LatentReward(model)
        self.observation_space = goal_spaces(model, env.observation_space["proprio"].shape[0])
        self._goal: torch.Tensor | None = None
        #: the wrapped env's last observation (pixels, goal image, proprio), e.g. for a planner
        self.raw_observation: dict[str, np.ndarray] = {}

    def _wrap(self, obs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        self.raw_observation = obs
        latent = self.model.encode_images(obs["pixels"][None])  # [1, N, D]
        return {k: v[0] for k, v in goal_observation(latent, self._goal,
                                                     obs["proprio"][None]).items()}, latent

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._goal = self.model.encode_images(obs["goal_pixels"][None])
        return self._wrap(obs)[0], info

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        wrapped, latent = self._wrap(obs)
        reward = float(self.reward_fn(latent, self._goal)[0])
        return wrapped, reward, terminated, truncated, {**info, "env_reward": float(env_reward)}

    def compute_reward(self, achieved_goal, desired_goal, info=None) -> np.ndarray:
        """The learned reward of flat latents (vectorised; what HER relabels with)."""
        return self.reward_fn.compute_reward(achieved_goal, desired_goal)


class LatentObservationVector(gym.vector.VectorWrapper):
    """:class:`LatentObservation` for a vector env: all sub-envs' frames in one encoder call.

    Goals are re-encoded only for the sub-envs whose goal image changed (autoreset).
    """

    def __init__(self, env: gym.vector.VectorEnv, model: WorldModel,
                 reward: LatentReward | None = None) -> None:
        super().__init__(env)
        single = env.single_observation_space
        self.model, self.reward_fn = model.eval(), reward or LatentReward(model)
        self.single_observation_space = goal_spaces(model, single["proprio"].shape[0])
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              env.num_envs)
        self._goal: torch.Tensor | None = None
        self._goal_pixels: np.ndarray | None = None

    def _update_goals(self, goal_pixels: np.ndarray) -> None:
        if self._goal is None:
            self._goal = self.model.encode_images(goal_pixels)
        else:
            changed = np.flatnonzero((goal_pixels != self._goal_pixels).reshape(
                len(goal_pixels), -1).any(axis=1))
            if len(changed):
                self._goal[changed] = self.model.encode_images(goal_pixels[changed])
        self._goal_pixels = goal_pixels.copy()

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._goal = None
        self._update_goals(obs["goal_pixels"])
        latents = self.model.encode_images(obs["pixels"])
        return goal_observation(latents, self._goal, obs["proprio"]), info

    def step(self, actions):
        obs, env_reward, terminated, truncated, info = self.env.step(actions)
        self._update_goals(obs["goal_pixels"])
        latents = self.model.encode_images(obs["pixels"])
        rewards = self.reward_fn(latents, self._goal).float().cpu().numpy()
        info = {**info, "env_reward": np.asarray(env_reward)}
        return goal_observation(latents, self._goal, obs["proprio"]), rewards, terminated, \
            truncated, info


__all__ = ["ActionRepeat", "LatentObservation", "LatentObservationVector", "goal_observation",
           "goal_spaces"]
