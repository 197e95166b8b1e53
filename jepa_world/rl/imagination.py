"""Imagination envs: Gymnasium envs whose ``step`` runs the world model instead of the simulator.

:class:`ImaginationVectorEnv` is a real ``gymnasium.vector.VectorEnv`` stepping ``N`` imagined
episodes in ONE predictor call a step; :class:`ImaginationEnv` is the one-episode form. Both are
goal-conditioned, with the observation layout of :class:`~jepa_world.rl.LatentObservation`
(``observation`` = the imagined proprio, ``achieved_goal`` = the imagined latent,
``desired_goal`` = the goal image's latent), so a policy trained in imagination acts unchanged
in ``LatentObservation(ActionRepeat(env, frameskip), model)``.

An action is held for the model's ``frameskip`` env steps (one model step). Episodes start from
real observation histories (:class:`DatasetStarts`: windows of a collected dataset, the goal a
later frame of the same episode; :class:`EnvStarts`: resets of a live env), the reward is the
:class:`~jepa_world.rl.LatentReward` of the imagined latent, and episodes are truncated at the
task's budget (``step_budget / action_repeat`` model steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from einops import repeat
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from jepa_world.data.store import scan_shards
from jepa_world.rl.latent_obs import goal_observation, goal_spaces
from jepa_world.rl.reward import LatentReward
from jepa_world.training.decoder_data import encode_latents
from jepa_world.world_model import WorldModel


@dataclass
class Starts:
    """Where imagined episodes begin: ``latents [B, T, N, D]``, the step ``actions [B, T - 1,
    A']`` between them, ``proprio [B, T, P]`` and the ``goals [B, N, D]`` (latents)."""

    latents: torch.Tensor
    actions: torch.Tensor
    proprio: torch.Tensor
    goals: torch.Tensor


#: ``source(n, generator) -> Starts`` of ``n`` episodes with ``T = history_length`` frames.
StartSource = Callable[[int, torch.Generator], Starts]


class DatasetStarts:
    """Histories cut from a collected dataset (every frame encoded once, up front).

    A start is ``history_length`` frames ``frameskip`` env steps apart, with the actions and
    proprio between them; its goal is the frame ``goal_steps`` model steps after the last one in
    the same episode (reachable, as the task's own goals are; default: the protocol's
    ``goal_offset`` of 25 env steps at frameskip 5 = 5 steps). The latents are cached in
    ``<root>/features`` (shared with ``python -m jepa_world.decode``; ``cache=False``: none).
    """

    def __init__(self, model: WorldModel, root: str | Path, episodes: list[int] | None = None,
                 goal_steps: int = 5, progress: bool = False, cache: bool = True) -> None:
        if goal_steps < 1:
            raise ValueError(f"goal_steps must be >= 1, got {goal_steps}")
        if episodes is None:
            episodes = sorted(ref.index for ref in scan_shards(Path(root)))
        self.model, self.goal_steps = model, goal_steps
        self.data = encode_latents(model, root, episodes,
                                   Path(root) / "features" if cache else None, progress=progress)
        self.history = model.config.history_length

    def __call__(self, n: int, generator: torch.Generator) -> Starts:
        window = self.history + self.goal_steps
        tokens, actions, proprio = self.data.sample(n, window, self.model.config.frameskip,
                                                    generator)
        t, like = self.history, self.model.pixel_mean
        return Starts(tokens[:, :t].to(like), actions[:, :t - 1].to(like),
                      proprio[:, :t].to(like), tokens[:, -1].to(like))


class EnvStarts:
    """Histories from resets of a live env: its first frame and goal image, the first frame
    held for the rest of the history with zero actions (the system at rest, as a reset leaves
    it). Env seeds are drawn from the generator."""

    def __init__(self, model: WorldModel, env: gym.Env) -> None:
        model.check_env(env)
        self.model, self.env = model, env

    def __call__(self, n: int, generator: torch.Generator) -> Starts:
        seeds = torch.randint(2**31 - 1, (n,), generator=generator).tolist()
        frames, goals, proprio = [], [], []
        for seed in seeds:
            obs, _ = self.env.reset(seed=int(seed))
            frames.append(obs["pixels"])
            goals.append(obs["goal_pixels"])
            proprio.append(obs["proprio"])
        latents = self.model.encode_images(np.stack(frames + goals))
        c, t = self.model.config, self.model.config.history_length
        like = self.model.pixel_mean
        p = torch.as_tensor(np.stack(proprio), dtype=like.dtype, device=like.device)
        return Starts(repeat(latents[:n], "b n d -> b t n d", t=t),
                      like.new_zeros(n, t - 1, c.step_action_dim),
                      repeat(p, "b p -> b t p", t=t), latents[n:])


class ImaginationVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` goal-conditioned episodes imagined by the world model, batched.

    Args:
        model: the world model (eval mode; no gradients are recorded).
        starts: a :data:`StartSource` (:class:`DatasetStarts`, :class:`EnvStarts`).
        num_envs: episodes stepped together.
        action_space: the task's single-step action box (the planners' bounds).
        budget: model steps per episode before truncation (``step_budget / action_repeat``).
        reward: default ``LatentReward(model)``.
        terminate_on_success: end an episode where the reward's success judgement holds.
        autoreset: reset finished episodes in the same step (Gymnasium's ``SAME_STEP`` mode:
            ``info["final_obs"]`` holds their last observations); False: the caller resets.
    """

    def __init__(self, model: WorldModel, starts: StartSource, num_envs: int,
                 action_space: spaces.Box, budget: int = 10, reward: LatentReward | None = None,
                 terminate_on_success: bool = False, autoreset: bool = True) -> None:
        if num_envs < 1 or budget < 1:
            raise ValueError(f"num_envs and budget must be >= 1, got {num_envs}, {budget}")
        if action_space.shape != (model.config.action_dim,):
            raise ValueError(f"action_space must have shape ({model.config.action_dim},) (the "
                             f"model's action_dim), got {action_space.shape}")
        self.model, self.starts, self.num_envs = model.eval(), starts, int(num_envs)
        self.budget, self.terminate_on_success = int(budget), bool(terminate_on_success)
        self.reward_fn = reward or LatentReward(model)
        self.single_action_space = action_space
        self.action_space = gym.vector.utils.batch_space(action_space, self.num_envs)
        self.single_observation_space = goal_spaces(model, model.config.proprio_dim)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              self.num_envs)
        mode = AutoresetMode.SAME_STEP if autoreset else AutoresetMode.DISABLED
        self.metadata = {"autoreset_mode": mode}
        self.render_mode = None
        like = model.pixel_mean
        self._low = torch.as_tensor(action_space.low, dtype=like.dtype, device=like.device)
        self._high = torch.as_tensor(action_space.high, dtype=like.dtype, device=like.device)
        self._generator = torch.Generator()
        self._state: Starts | None = None
        self._t = np.zeros(self.num_envs, np.int64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._generator.manual_seed(int(seed))
        self._state = self.starts(self.num_envs, self._generator)
        self._t[:] = 0
        s = self._state
        return goal_observation(s.latents[:, -1], s.goals, s.proprio[:, -1].cpu()), {}

    @torch.no_grad()
    def step(self, actions):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        s, c = self._state, self.model.config
        a = torch.as_tensor(np.asarray(actions), dtype=self._low.dtype, device=self._low.device)
        if a.shape != (self.num_envs, c.action_dim):
            raise ValueError(f"actions must be [{self.num_envs}, {c.action_dim}], got "
                             f"{list(a.shape)}")
        step = repeat(torch.clamp(a, self._low, self._high), "b a -> b (f a)", f=c.frameskip)
        pred = self.model.rollout(s.latents, step[:, None, None], self._proprio_arg(s),
                                  chunk_size=self.num_envs, history_actions=s.actions,
                                  return_proprio=True)
        latent = pred.latents[:, 0, 0]
        proprio = pred.proprio[:, 0, 0] if pred.proprio is not None else s.proprio[:, -1]
        s.latents = torch.cat([s.latents[:, 1:], latent[:, None]], 1)
        s.actions = torch.cat([s.actions[:, 1:], step[:, None]], 1)
        s.proprio = torch.cat([s.proprio[:, 1:], proprio[:, None].to(s.proprio)], 1)
        self._t += 1
        reward, judged = self.reward_fn.score(latent, s.goals)
        rewards, success = reward.float().cpu().numpy(), judged.cpu().numpy()
        terminated = success & self.terminate_on_success
        truncated = (self._t >= self.budget) & ~terminated
        obs = goal_observation(latent, s.goals, proprio.cpu())
        info = {"success": success, "_success": np.ones(self.num_envs, bool)}
        done = terminated | truncated
        if done.any() and self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP:
            info.update(self._autoreset(obs, done))
        return obs, rewards, terminated, truncated, info

    def _proprio_arg(self, s: Starts) -> torch.Tensor | None:
        return s.proprio if self.model.config.proprio_dim else None

    def _autoreset(self, obs: dict[str, np.ndarray], done: np.ndarray) -> dict:
        """Restart the finished episodes in place; returns the ``final_obs`` info entries."""
        index = np.flatnonzero(done)
        final = np.empty(self.num_envs, dtype=object)
        for i in index:
            final[i] = {k: v[i].copy() for k, v in obs.items()}
        fresh = self.starts(len(index), self._generator)
        s, rows = self._state, torch.as_tensor(index)
        for name in ("latents", "actions", "proprio", "goals"):
            getattr(s, name)[rows] = getattr(fresh, name).to(getattr(s, name))
        self._t[index] = 0
        restart = goal_observation(fresh.latents[:, -1], fresh.goals, fresh.proprio[:, -1].cpu())
        for key, value in restart.items():
            obs[key][index] = value
        return {"final_obs": final, "_final_obs": done.copy()}

    def compute_reward(self, achieved_goal, desired_goal, info=None) -> np.ndarray:
        """The learned reward of flat latents (vectorised; what HER relabels with)."""
        return self.reward_fn.compute_reward(achieved_goal, desired_goal)


class ImaginationEnv(gym.Env):
    """One imagined episode at a time (:class:`ImaginationVectorEnv` with one env, reset by
    the caller), for single-env RL code and ``check_env``."""

    metadata = {"render_modes": []}

    def __init__(self, model: WorldModel, starts: StartSource, action_space: spaces.Box,
                 budget: int = 10, reward: LatentReward | None = None,
                 terminate_on_success: bool = False) -> None:
        self.vec = ImaginationVectorEnv(model, starts, 1, action_space, budget, reward,
                                        terminate_on_success, autoreset=False)
        self.action_space = action_space
        self.observation_space = self.vec.single_observation_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self.vec.reset(seed=seed if seed is not None else int(
            self.np_random.integers(2**31 - 1)))
        return {k: v[0] for k, v in obs.items()}, {}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.vec.step(np.asarray(action)[None])
        return ({k: v[0] for k, v in obs.items()}, float(reward[0]), bool(terminated[0]),
                bool(truncated[0]), {"success": bool(info["success"][0])})

    def compute_reward(self, achieved_goal, desired_goal, info=None) -> np.ndarray:
        return self.vec.compute_reward(achieved_goal, desired_goal)


__all__ = ["DatasetStarts", "EnvStarts", "ImaginationEnv", "ImaginationVectorEnv",
           "StartSource", "Starts"]
