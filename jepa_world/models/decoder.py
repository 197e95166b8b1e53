"""Pixel decoders of world-model latents: ``decode(latents [B, T, N, D]) -> [B, T, 3, H, W]``.

A world model predicts in latent space; a decoder trained on frozen latents renders them (and the
model's predictions of them) as images for inspection. Three kinds share :class:`DecoderConfig`
and the ``decode`` interface:

* :class:`ConvDecoder` (``kind="conv"``): deterministic and fast. The ``N`` tokens are read by a
  linear layer into a ``C x 4 x 4`` feature map, then upsampled x2 (nearest + 3x3 convs) until
  the image size; a sigmoid gives ``[0, 1]``. Trained with a pixel loss.
* ``DiffusionDecoder`` (``kind="diffusion"``, :mod:`jepa_world.models.diffusion_decoder`,
  needs the optional ``diffusers``): a conv mean plus a conditional DDPM of the residual,
  sampled with few DDIM steps.
* ``TokenDecoder`` (``kind="tokens"``, :mod:`jepa_world.models.token_decoder`): V-JEPA patch
  tokens ``[B, T', H' W', D]`` of tubelets -> their frames, for the seed's masked-region view.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from einops import rearrange
from torch import nn

DECODER_KINDS = ("conv", "diffusion", "tokens")
DIFFUSION_TARGETS = ("sample", "v_prediction", "epsilon")
DECODER_FORMAT = "jepa_world_decoder"


@dataclass
class DecoderConfig:
    """Architecture of a decoder (stored as its folder's config.json)."""

    kind: str = "conv"
    tokens: int = 1  #: N latent tokens a frame
    latent_dim: int = 192  #: D
    image_size: int = 64  #: square output size H = W (a power-of-two multiple of 4)
    width: int = 128  #: channels of the first (4 x 4) feature map; halved per upsampling
    min_width: int = 16  #: the narrowest feature map
    #: diffusion only: UNet block widths, training timesteps, DDIM sampling steps, the
    #: pixels folded into channels each side (the UNet runs at image_size / diffusion_patch)
    #: and what the UNet predicts (of the residual to the conv mean: see diffusion_decoder)
    unet_channels: list[int] = field(default_factory=lambda: [64, 128])
    train_timesteps: int = 1000
    sample_steps: int = 10
    foreground_weight: float = 20.0  #: conv: loss weight of pixels unlike the background
    #: conv: decode the change from the median frame (``sigmoid(logit(background) + head)``)
    #: rather than the frame: a static scene (walls, floor) is then exact from the first step.
    #: False here so folders written before it existed load as they were trained; training
    #: (DecoderModelConfig) turns it on.
    background_residual: bool = False
    diffusion_patch: int = 4
    diffusion_target: str = "sample"
    tubelet: int = 1  #: tokens only: frames one token spans

    def __post_init__(self) -> None:
        if self.kind not in DECODER_KINDS:
            raise ValueError(f"kind must be one of {DECODER_KINDS}, got {self.kind!r}")
        if self.diffusion_target not in DIFFUSION_TARGETS:
            raise ValueError(f"diffusion_target must be one of {DIFFUSION_TARGETS}, "
                             f"got {self.diffusion_target!r}")
        size = self.image_size
        if size < 8 or size % 4 or (size // 4) & (size // 4 - 1):
            raise ValueError(f"image_size must be 4 * 2**k >= 8, got {size}")
        for name in ("tokens", "latent_dim", "width", "min_width", "train_timesteps",
                     "sample_steps", "diffusion_patch", "tubelet"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderConfig:
        return cls(**data)


def upsample_block(c_in: int, c_out: int) -> nn.Sequential:
    """x2 nearest upsampling then two 3x3 convs: ``[B, c_in, h, w] -> [B, c_out, 2h, 2w]``."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
    )


class DeterministicDecoder(nn.Module):
    """What the deterministic decoders share: a ``background`` buffer (the median frame, for
    the foreground-weighted loss) and ``decode`` = ``forward`` without gradients."""

    def set_background(self, frames: torch.Tensor) -> None:
        """The per-pixel median of frames ``[M, 3, H, W]`` in ``[0, 1]``: what is not an object."""
        self.background.copy_(frames.median(dim=0).values)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None):
        """``forward(latents)`` (``generator`` is unused: deterministic)."""
        return self(latents)


class ConvDecoder(DeterministicDecoder):
    """Latents ``[B, T, N, D]`` -> frames ``[B, T, 3, H, W]`` in ``[0, 1]`` (deterministic)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.proj = nn.Sequential(nn.LayerNorm(config.tokens * config.latent_dim),
                                  nn.Linear(config.tokens * config.latent_dim, c * 16))
        blocks, size = [], 4
        while size < config.image_size:
            out = max(c // 2, config.min_width)
            blocks.append(upsample_block(c, out))
            c, size = out, size * 2
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c, 3, 3, padding=1)
        if config.background_residual:  # start as the background itself
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        size = config.image_size
        self.register_buffer("background", torch.zeros(3, size, size))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, T, N, D]`` -> ``[B, T, 3, H, W]`` in ``[0, 1]``."""
        check_latents(self.config, latents)
        b = latents.shape[0]
        x = self.proj(rearrange(latents, "b t n d -> (b t) (n d)"))
        x = rearrange(x, "m (c h w) -> m c h w", h=4, w=4)
        x = self.head(self.blocks(x))
        if self.config.background_residual:
            x = x + torch.logit(self.background, eps=1e-3)
        x = torch.sigmoid(x)
        return rearrange(x, "(b t) c h w -> b t c h w", b=b)

    def loss(self, latents: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """:func:`foreground_loss` of the decoded latents against frames ``[B, T, 3, H, W]``."""
        return self.weighted_loss(self(latents), frames)

    def weighted_loss(self, pred: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """:func:`foreground_loss` of decoded ``pred`` against ``frames`` (same shapes)."""
        return foreground_loss(pred, frames, self.background, self.config.foreground_weight)


def foreground_loss(pred: torch.Tensor, frames: torch.Tensor, background: torch.Tensor,
                    foreground_weight: float, region: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel L1 + L2 of ``pred`` against ``frames`` (both ``[..., 3, H, W]`` in ``[0, 1]``),
    pixels that differ from ``background`` ``[3, H, W]`` weighted ``foreground_weight`` x: on a
    small object (an arm on a plain floor) a plain pixel loss is minimised early by the
    background alone and a decoder stalls there. ``region`` (``[..., 1, H, W]`` of 0 / 1, e.g.
    the masked part of a clip) restricts the loss to its pixels."""
    fg = ((frames - background).abs().amax(dim=-3, keepdim=True) > 0.05).float()
    weight = 1 + (foreground_weight - 1) * fg
    if region is not None:
        weight = weight * region
    err = pred - frames
    return ((err.abs() + err.square()) * weight).sum() / (weight.sum() * 3).clamp_min(1e-8)


def check_latents(config: DecoderConfig, latents: torch.Tensor) -> None:
    n, d = config.tokens, config.latent_dim
    if latents.dim() != 4 or tuple(latents.shape[2:]) != (n, d):
        raise ValueError(f"latents must be [B, T, {n}, {d}], got {list(latents.shape)}")


def build_decoder(config: DecoderConfig) -> nn.Module:
    """The decoder of ``config.kind`` (``diffusion`` imports ``diffusers``)."""
    if config.kind == "tokens":
        from jepa_world.models.token_decoder import TokenDecoder

        return TokenDecoder(config)
    if config.kind == "diffusion":
        from jepa_world.models.diffusion_decoder import DiffusionDecoder

        return DiffusionDecoder(config)
    return ConvDecoder(config)


__all__ = ["DECODER_FORMAT", "DECODER_KINDS", "DIFFUSION_TARGETS", "ConvDecoder", "DecoderConfig",
           "DeterministicDecoder", "build_decoder", "check_latents", "foreground_loss"]
