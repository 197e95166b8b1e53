"""Decoder of V-JEPA PATCH tokens (``kind="tokens"``): the seed's masked-region visualisation.

V-JEPA's predictor fills in the features of the masked tubelets of a clip. To show what it
predicted, the paper decodes ONLY those predicted features into pixels (the decoder never sees
the visible part) and pastes the result into the visible context. Our pooled world-model
latents have no spatial layout to paste, so this decoder reads the whole token grid:

``tokens [B, T', H' W', D]`` (``T'`` tubelets of ``tubelet`` frames, ``H' x W'`` patches) ->
``frames [B, T' tubelet, 3, H, W]``. Each tubelet's ``H' x W'`` tokens become a ``D``-channel map;
a 1x1 conv, two residual 3x3 blocks at the token resolution, then x2 upsampling blocks (as in
:class:`~jepa_world.models.decoder.ConvDecoder`) until the image size; a head gives the
``tubelet`` frames' pixels (sigmoid). Positions whose feature is unknown (the visible context, in
the seed's use) hold the learned :attr:`TokenDecoder.empty` token: see :func:`scatter_tokens`.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from jepa_world.models.decoder import (
    DecoderConfig,
    DeterministicDecoder,
    foreground_loss,
    upsample_block,
)


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width),
                                  nn.SiLU(), nn.Conv2d(width, width, 3, padding=1),
                                  nn.GroupNorm(8, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(x + self.body(x))


def token_grid_side(config: DecoderConfig) -> int:
    """``H' = W'``: the token grid's side (``tokens`` must be a square)."""
    side = math.isqrt(config.tokens)
    if side * side != config.tokens or config.image_size % side:
        raise ValueError(f"kind='tokens' needs a square token grid dividing image_size; got "
                         f"tokens={config.tokens}, image_size={config.image_size}")
    patch = config.image_size // side
    if patch & (patch - 1):
        raise ValueError(f"kind='tokens': the patch size {patch} must be a power of two")
    return side


class TokenDecoder(DeterministicDecoder):
    """Patch tokens ``[B, T', N, D]`` -> frames ``[B, T' tubelet, 3, H, W]`` in ``[0, 1]``."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.side = token_grid_side(config)
        c = config.width
        self.empty = nn.Parameter(torch.zeros(config.latent_dim))
        self.proj = nn.Sequential(nn.GroupNorm(1, config.latent_dim),
                                  nn.Conv2d(config.latent_dim, c, 1))
        self.mix = nn.Sequential(_Residual(c), _Residual(c))
        blocks, size = [], self.side
        while size < config.image_size:
            out = max(c // 2, config.min_width)
            blocks.append(upsample_block(c, out))
            c, size = out, size * 2
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c, 3 * config.tubelet, 3, padding=1)
        size = config.image_size
        self.register_buffer("background", torch.zeros(3, size, size))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T', N, D]`` -> ``[B, T' tubelet, 3, H, W]``."""
        n, d = self.config.tokens, self.config.latent_dim
        if tokens.dim() != 4 or tuple(tokens.shape[2:]) != (n, d):
            raise ValueError(f"tokens must be [B, T', {n}, {d}], got {list(tokens.shape)}")
        b = tokens.shape[0]
        # contiguous: GroupNorm's backward on this channels-last view of an input that needs no
        # gradient segfaults in torch 2.13 (CPU)
        x = rearrange(tokens, "b t (h w) d -> (b t) d h w", h=self.side).contiguous()
        x = self.blocks(self.mix(self.proj(x)))
        x = torch.sigmoid(self.head(x))
        return rearrange(x, "(b t) (k c) h w -> b (t k) c h w", b=b, c=3)

    def loss(self, tokens: torch.Tensor, frames: torch.Tensor,
             region: torch.Tensor | None = None) -> torch.Tensor:
        """Foreground-weighted pixel loss against ``frames`` ``[B, T, 3, H, W]``, only over
        ``region`` ``[B, T, 1, H, W]`` (the masked pixels) when given."""
        return foreground_loss(self(tokens), frames, self.background,
                               self.config.foreground_weight, region)


def scatter_tokens(empty: torch.Tensor, values: torch.Tensor, index: torch.Tensor,
                   num_tokens: int) -> torch.Tensor:
    """A full token sequence ``[B, num_tokens, D]`` holding ``values [B, M, D]`` at ``index
    [B, M]`` and the ``empty [D]`` token everywhere else."""
    b, _, d = values.shape
    out = empty.to(values.dtype).expand(b, num_tokens, d).clone()
    return out.scatter(1, index[..., None].expand(-1, -1, d), values)


__all__ = ["TokenDecoder", "scatter_tokens", "token_grid_side"]
