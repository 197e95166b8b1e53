"""The learned reward: minus the planners' latent distance to the goal image, plus an optional
success bonus judged by the world model's proprio head.

It scores any latents against any goal latents, vectorised over leading dimensions, so the same
object is the reward of :class:`~jepa_world.rl.LatentObservation` (real frames),
:class:`~jepa_world.rl.ImaginationVectorEnv` (imagined ones) and HER's ``compute_reward``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from jepa_world.world_model import WorldModel


class LatentReward:
    """``reward = -cost(latents, goal) + success_bonus * success``.

    Args:
        model: the world model whose latents are scored.
        cost: ``l1`` or ``l2`` (:meth:`WorldModel.cost`: mean over tokens and dims).
        success_bonus: added where the state read from the latents by the proprio head is
            within ``success_tolerance`` of the goal's (0: no bonus, no success judgement).
        success_tolerance: per-entry tolerance of that judgement (the task's protocol).
        state_dims: proprio entries judged (those one frame shows; the task's ``state_dims``).
        angles: the state entries are angles (their error is taken modulo ``2 * pi``).
    """

    def __init__(self, model: WorldModel, cost: str = "l1", success_bonus: float = 0.0,
                 success_tolerance: float = 0.05, state_dims: Sequence[int] = (0, 1),
                 angles: bool = True) -> None:
        if success_bonus < 0 or success_tolerance <= 0:
            raise ValueError(f"success_bonus must be >= 0 and success_tolerance > 0, got "
                             f"{success_bonus}, {success_tolerance}")
        if success_bonus and model.proprio_head is None:
            raise ValueError("a success bonus needs a world model with a proprio head")
        dims = list(state_dims)
        if success_bonus and not all(0 <= d < model.config.proprio_dim for d in dims):
            raise ValueError(f"state_dims {dims} out of range for proprio_dim "
                             f"{model.config.proprio_dim}")
        self.model, self.cost, self.success_bonus = model, cost, float(success_bonus)
        self.success_tolerance, self.state_dims, self.angles = success_tolerance, dims, angles

    @torch.no_grad()
    def success(self, latents: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """``[..., N, D]`` x ``[..., N, D]`` -> bool ``[...]`` (all False without a bonus)."""
        if not self.success_bonus:
            return torch.zeros(latents.shape[:-2], dtype=torch.bool, device=latents.device)
        diff = (self.model.read_proprio(latents) - self.model.read_proprio(goal))[
            ..., self.state_dims]
        if self.angles:
            diff = torch.remainder(diff + torch.pi, 2 * torch.pi) - torch.pi
        return (diff.abs() < self.success_tolerance).all(dim=-1)

    @torch.no_grad()
    def score(self, latents: torch.Tensor, goal: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rewards [...], success [...])`` of latents ``[..., N, D]`` against goals, the
        success judged once for both."""
        success = self.success(latents, goal)
        reward = -WorldModel.cost(latents, goal, self.cost)
        if self.success_bonus:
            reward = reward + self.success_bonus * success.to(reward.dtype)
        return reward, success

    def __call__(self, latents: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Rewards ``[...]`` of latents ``[..., N, D]`` against goals ``[..., N, D]``."""
        return self.score(latents, goal)[0]

    def compute_reward(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """The same on flat numpy goals ``[..., N * D]`` (what goal-conditioned envs store)."""
        n, d = self.model.tokens_per_frame, self.model.latent_dim
        like = self.model.pixel_mean
        a = torch.as_tensor(np.asarray(achieved), dtype=like.dtype, device=like.device)
        g = torch.as_tensor(np.asarray(desired), dtype=like.dtype, device=like.device)
        rewards = self(a.reshape(*a.shape[:-1], n, d), g.reshape(*g.shape[:-1], n, d))
        return rewards.cpu().numpy().astype(np.float64)


__all__ = ["LatentReward"]
