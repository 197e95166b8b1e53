"""The world model's training objective (what DDP wraps) and its held-out evaluation.

See :mod:`jepa_world.training.train_wm` for what each loss term is for.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from jepa_world.losses import latent_distance, variance_covariance
from jepa_world.training.wm_config import WMTrainConfig
from jepa_world.training.wm_data import EncodedEpisodes
from jepa_world.world_model import WorldModel

LOSS_NAMES = ("teacher_forcing", "rollout", "proprio", "state", "goal", "variance",
              "covariance")


class GoalHead(nn.Module):
    """Training-only readout of a frame's goal state from its latent: ``[..., K, D] -> [..., G]``
    (normalised targets: :meth:`set_stats` takes the training data's mean and std)."""

    def __init__(self, tokens: int, dim: int, goal_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(tokens * dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, goal_dim))
        self.register_buffer("mean", torch.zeros(goal_dim))
        self.register_buffer("std", torch.ones(goal_dim))

    def set_stats(self, goal: torch.Tensor) -> None:
        """Targets are standardised with the mean / std of ``goal [..., G]``."""
        flat = goal.reshape(-1, goal.shape[-1]).float()
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(1e-3))

    def error(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Mean absolute error (std units) of what it reads from ``z [B, W, K, D]`` vs
        ``goal [B, W, G]``."""
        read = self.net(rearrange(z, "b w k d -> b w (k d)"))
        return (read - (goal - self.mean) / self.std).abs().mean()


class WorldModelLoss(nn.Module):
    """The training objective around a :class:`WorldModel` (what DDP wraps).

    ``forward(inputs, actions [B, W-1, A'], proprio [B, W, P], goal [B, W, G])`` returns the
    weighted total and the unweighted parts ``[7]`` in :data:`LOSS_NAMES` order. ``inputs`` are
    the frozen encoder's cached patch tokens ``[B, W, N0, D]``, or with ``encoder.lr_scale`` > 0
    the frames ``[B, W, 3, H, W]`` (uint8), encoded here with gradients. ``goal`` (each frame's
    goal-state targets) only with ``goal_dim > 0`` (``loss.goal_weight``).
    """

    def __init__(self, model: WorldModel, cfg: WMTrainConfig, goal_dim: int = 0) -> None:
        super().__init__()
        self.model, self.loss, self.history = model, cfg.loss, cfg.model.history
        self.finetune = cfg.encoder.finetune
        self.goal_head = GoalHead(model.tokens_per_frame, model.latent_dim, goal_dim) \
            if goal_dim else None

    def latents(self, inputs: torch.Tensor) -> torch.Tensor:
        """The batch's latents ``[B, W, K, D]`` (see the class docstring for ``inputs``)."""
        if self.finetune:
            return self.model.pool(self.model.encode_patches(inputs, grad=True))
        return self.model.pool(inputs)

    def forward(self, inputs, actions, proprio, goal=None):
        wm, loss = self.model, self.loss
        z = self.latents(inputs)  # [B, W, K, D]
        target = z if loss.target_grad else z.detach()
        prop = proprio if wm.config.proprio_dim else None
        tf = wm.predict(z[:, :-1], actions, None if prop is None else prop[:, :-1])
        zero = z.new_zeros(())
        tf_loss = latent_distance(tf.latents, target[:, 1:], loss.kind)
        roll_loss, proprio_loss, state_loss = zero, zero, zero
        h = self.history
        if loss.rollout_steps > 0:
            roll = wm.rollout(z[:, :h], actions[:, h - 1:][:, None],
                              None if prop is None else prop[:, :h],
                              history_actions=actions[:, :h - 1], return_proprio=True,
                              chunk_size=max(1, z.shape[0]))
            roll_loss = latent_distance(roll.latents[:, 0], target[:, h:], loss.kind)
        if tf.proprio is not None:
            std = wm.proprio_std
            dims = loss.state_dims or list(range(prop.shape[-1]))
            state_err = (wm.read_proprio(z) - prop)[..., dims] / std[dims]
            state_loss = state_err.abs().mean()
            proprio_loss = ((tf.proprio - prop[:, 1:]) / std).abs().mean()
            if loss.rollout_steps > 0:
                roll_err = (roll.proprio[:, 0] - prop[:, h:]) / std
                proprio_loss = proprio_loss + roll_err.abs().mean()
        goal_loss = zero if self.goal_head is None else self.goal_head.error(z, goal)
        var, cov = variance_covariance(rearrange(z, "b w k d -> (b w) (k d)").float(),
                                       loss.variance_target)
        parts = torch.stack([tf_loss, roll_loss, proprio_loss, state_loss, goal_loss, var, cov])
        weights = parts.new_tensor([loss.teacher_forcing_weight, loss.rollout_weight,
                                    loss.proprio_weight, loss.state_weight, loss.goal_weight,
                                    loss.variance_weight, loss.covariance_weight])
        return (parts * weights).sum(), parts.detach()


def draw(episodes: EncodedEpisodes, cfg: WMTrainConfig, generator: torch.Generator,
         goal_head: GoalHead | None) -> tuple:
    """One batch of training windows: ``(inputs, actions, proprio, goal or None)``, ``inputs``
    cached patch tokens or frames (:class:`WorldModelLoss`)."""
    window, frameskip = cfg.window_frames, cfg.model.frameskip
    episode, start = episodes.sample_starts(cfg.batch_size, window, frameskip, generator)
    goal = None if goal_head is None else episodes.goal_windows(episode, start, window, frameskip)
    return (*episodes.windows(episode, start, window, frameskip), goal)


@torch.no_grad()
def evaluate(objective: WorldModelLoss, episodes: EncodedEpisodes, cfg: WMTrainConfig,
             device: torch.device, batches: int = 8) -> dict[str, float]:
    """Losses on fixed windows of held-out episodes, and the copy-the-last-frame baseline of the
    rollout (predict every future latent as the last history latent)."""
    was_training = objective.training
    objective.eval()
    sums = torch.zeros(len(LOSS_NAMES) + 1)
    gen = torch.Generator().manual_seed(12345)
    h = cfg.model.history
    for _ in range(batches):
        inputs, actions, proprio, goal = (None if t is None else t.to(device) for t in
                                          draw(episodes, cfg, gen, objective.goal_head))
        _, parts = objective(inputs, actions, proprio, goal)
        z = objective.latents(inputs)
        copy = latent_distance(z[:, h - 1:h].expand_as(z[:, h:]), z[:, h:], cfg.loss.kind) \
            if z.shape[1] > h else z.new_zeros(())
        sums += torch.cat([parts.float().cpu(), copy.float().cpu()[None]])
    objective.train(was_training)
    values = (sums / batches).tolist()
    return {**{f"val/{n}": v for n, v in zip(LOSS_NAMES, values, strict=False)
               if n != "goal" or objective.goal_head is not None},
            "val/copy_last_rollout": values[-1]}


__all__ = ["LOSS_NAMES", "GoalHead", "WorldModelLoss", "draw", "evaluate"]
