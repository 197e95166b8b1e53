"""Conditional diffusion decoder (V-JEPA's way of showing what features hold), on ``diffusers``.

The decoder is residual (as in SR3 / DiffuseVAE): a deterministic
:class:`~jepa_world.models.decoder.ConvDecoder` reads the latent into the conditional MEAN frame,
trained with its own pixel loss, and a small ``diffusers.UNet2DModel`` (no attention;
``unet_channels`` per resolution) samples what the mean cannot hold, the residual ``2 (frame -
mean)``. The UNet sees the noisy residual and the (detached) mean frame, both folded ``patch x
patch`` pixels into channels (64 x 64 x 3 -> 16 x 16 x 48 at ``patch=4``: 16x fewer positions,
affordable on a CPU); the ``N x D`` latent tokens also reach every residual block as a FiLM
scale and shift (an MLP into the timestep embedding: ``class_embed_type="identity"``,
``resnet_time_scale_shift="scale_shift"``).

Why residual: the plain version (noise -> frame, FiLM only) trained for 600 CPU steps still
sampled noise (9 dB; it had not even learned ``eps = x_t`` at the top noise level): a global
scale and shift is a slow way to tell a UNet where the arm is. Here the UNet starts from a frame
that already has the arm in place, and an undertrained UNet predicts a residual near zero.

Trained by :meth:`DiffusionDecoder.loss` = the mean's pixel loss + the DDPM MSE of ``target``
(``sample``: the clean residual, by default; ``v_prediction`` or ``epsilon``); sampled by
``sample_steps`` deterministic DDIM steps (:meth:`DiffusionDecoder.decode`). Needs
``pip install diffusers``.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from einops import rearrange
from torch import nn

from jepa_world.models.decoder import ConvDecoder, DecoderConfig, check_latents

SCHEDULE = "squaredcos_cap_v2"
RESIDUAL_SCALE = 2.0  #: the diffused residual is ``2 (frame - mean)``, in ``[-2, 2]``


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
        self.mean = ConvDecoder(config)
        self.condition = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed), nn.SiLU(),
                                       nn.Linear(embed, embed))
        self.unet = UNet2DModel(
            sample_size=config.image_size // self.patch, in_channels=2 * folded,
            out_channels=folded, block_out_channels=channels, layers_per_block=1,
            down_block_types=("DownBlock2D",) * len(channels),
            up_block_types=("UpBlock2D",) * len(channels), add_attention=False,
            norm_num_groups=8, class_embed_type="identity",
            resnet_time_scale_shift="scale_shift")
        kwargs = dict(num_train_timesteps=config.train_timesteps, beta_schedule=SCHEDULE,
                      prediction_type=config.diffusion_target)
        self.train_schedule = DDPMScheduler(**kwargs)
        self.sample_schedule = DDIMScheduler(clip_sample=True, clip_sample_range=RESIDUAL_SCALE,
                                             **kwargs)

    def set_background(self, frames: torch.Tensor) -> None:
        """The mean decoder's background (:meth:`ConvDecoder.set_background`)."""
        self.mean.set_background(frames)

    def _fold(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` -> ``[(B T), 3 p p, H / p, W / p]``."""
        return rearrange(frames, "b t c (h p) (w q) -> (b t) (c p q) h w", p=self.patch,
                         q=self.patch)

    def _conditions(self, latents: torch.Tensor):
        """``(mean frames [B, T, 3, H, W], folded mean, FiLM vectors [(B T), E])``."""
        check_latents(self.config, latents)
        mean = self.mean(latents)
        film = self.condition(rearrange(latents, "b t n d -> (b t) (n d)"))
        return mean, self._fold(mean.detach()), film

    def _denoise(self, x: torch.Tensor, steps: torch.Tensor, folded_mean: torch.Tensor,
                 film: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([x, folded_mean], dim=1), steps, class_labels=film).sample

    def loss(self, latents: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """The mean's pixel loss + the DDPM MSE of the ``target`` (clean residual, velocity or
        noise) for frames ``[B, T, 3, H, W]`` in ``[0, 1]`` (noise and timesteps from torch's
        global generator)."""
        mean, folded_mean, film = self._conditions(latents)
        mean_loss = self.mean.weighted_loss(mean, frames)
        x0 = self._fold((frames - mean.detach()) * RESIDUAL_SCALE)
        noise = torch.randn_like(x0)
        steps = torch.randint(0, self.config.train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = self.train_schedule.add_noise(x0, noise, steps)
        pred = self._denoise(noisy, steps, folded_mean, film)
        target = {"epsilon": noise, "sample": x0}.get(self.config.diffusion_target)
        if target is None:
            target = self.train_schedule.get_velocity(x0, noise, steps)
        return mean_loss + (pred - target).square().mean()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None):
        """Frames ``[B, T, 3, H, W]`` in ``[0, 1]``: the mean plus a residual sampled by
        ``sample_steps`` DDIM steps (eta 0) from noise drawn with ``generator`` (CPU; the same
        generator state gives the same frames)."""
        b, t = latents.shape[:2]
        mean, folded_mean, film = self._conditions(latents)
        x = torch.randn(folded_mean.shape, generator=generator).to(latents.device)
        schedule = self.sample_schedule
        schedule.set_timesteps(self.config.sample_steps, device=latents.device)
        for step in schedule.timesteps:
            x = schedule.step(self._denoise(x, step, folded_mean, film), step, x).prev_sample
        residual = rearrange(x, "(b t) (c p q) h w -> b t c (h p) (w q)", b=b, t=t,
                             p=self.patch, q=self.patch)
        return (mean + residual / RESIDUAL_SCALE).clamp(0, 1)


__all__ = ["DiffusionDecoder"]
