"""Conditional diffusion decoder (V-JEPA's way of showing what features hold), on ``diffusers``.

A small ``diffusers.UNet2DModel`` (no attention; ``unet_channels`` per resolution) denoises
frames scaled to ``[-1, 1]`` and folded ``patch x patch`` pixels into channels (64 x 64 x 3 ->
16 x 16 x 48 at ``patch=4``: 16x fewer positions, affordable on a CPU). The ``N x D`` latent
tokens are read by an MLP into a vector added to the UNet's timestep embedding, which every
residual block applies as a FiLM scale and shift (``class_embed_type="identity"``,
``resnet_time_scale_shift="scale_shift"``). Trained with the DDPM epsilon objective
(:meth:`DiffusionDecoder.loss`), sampled with ``sample_steps`` deterministic DDIM steps
(:meth:`DiffusionDecoder.decode`). Needs ``pip install diffusers``.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from einops import rearrange
from torch import nn

from jepa_world.models.decoder import DecoderConfig, check_latents

SCHEDULE = "squaredcos_cap_v2"


class DiffusionDecoder(nn.Module):
    """Latents ``[B, T, N, D]`` -> sampled frames ``[B, T, 3, H, W]`` in ``[0, 1]``."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        channels = tuple(config.unet_channels)
        embed = channels[0] * 4  # UNet2DModel's timestep-embedding width
        width = config.tokens * config.latent_dim
        self.patch = config.diffusion_patch
        folded = 3 * self.patch**2
        self.condition = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed), nn.SiLU(),
                                       nn.Linear(embed, embed))
        self.unet = UNet2DModel(
            sample_size=config.image_size // self.patch, in_channels=folded,
            out_channels=folded,
            block_out_channels=channels, layers_per_block=1,
            down_block_types=("DownBlock2D",) * len(channels),
            up_block_types=("UpBlock2D",) * len(channels), add_attention=False,
            norm_num_groups=8, class_embed_type="identity",
            resnet_time_scale_shift="scale_shift")
        self.train_schedule = DDPMScheduler(num_train_timesteps=config.train_timesteps,
                                            beta_schedule=SCHEDULE)
        self.sample_schedule = DDIMScheduler(num_train_timesteps=config.train_timesteps,
                                             beta_schedule=SCHEDULE, clip_sample=True)

    def _cond(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, T, N, D]`` -> ``[(B T), E]`` FiLM conditioning vectors."""
        check_latents(self.config, latents)
        return self.condition(rearrange(latents, "b t n d -> (b t) (n d)"))

    def loss(self, latents: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """DDPM epsilon-prediction MSE for target frames ``[B, T, 3, H, W]`` in ``[0, 1]``
        (noise and timesteps from torch's global generator)."""
        x0 = rearrange(frames * 2 - 1, "b t c (h p) (w q) -> (b t) (c p q) h w", p=self.patch,
                       q=self.patch)
        noise = torch.randn_like(x0)
        steps = torch.randint(0, self.config.train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = self.train_schedule.add_noise(x0, noise, steps)
        pred = self.unet(noisy, steps, class_labels=self._cond(latents)).sample
        return (pred - noise).square().mean()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None):
        """Frames ``[B, T, 3, H, W]`` in ``[0, 1]`` by ``sample_steps`` DDIM steps (eta 0) from
        noise drawn with ``generator`` (CPU; the same generator state gives the same frames)."""
        b, t = latents.shape[:2]
        cond = self._cond(latents)
        size, fold = self.config.image_size // self.patch, 3 * self.patch**2
        x = torch.randn(cond.shape[0], fold, size, size, generator=generator).to(latents.device)
        schedule = self.sample_schedule
        schedule.set_timesteps(self.config.sample_steps, device=latents.device)
        for step in schedule.timesteps:
            eps = self.unet(x, step, class_labels=cond).sample
            x = schedule.step(eps, step, x).prev_sample
        frames = ((x + 1) / 2).clamp(0, 1)
        return rearrange(frames, "(b t) (c p q) h w -> b t c (h p) (w q)", b=b, t=t,
                         p=self.patch, q=self.patch)


__all__ = ["DiffusionDecoder"]
