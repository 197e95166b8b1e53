"""Grid pooling: a compact latent that keeps WHERE things are in the frame.

An attentive pooler mixes patch tokens by content, so a single query struggles to say where a
thin arm lies (a linear probe read the reach arm's angles from one pooled token at R^2 0.69).
This pooler first squeezes every patch token to a few channels, then reads the whole grid at
once with an MLP, so position is part of the input: the same frozen features gave R^2 0.997
(median angle error 0.02 rad) with such a readout.

``[..., N, D] -> per-token Linear(D, c) + GELU -> flatten [N c] -> MLP -> [..., K, D]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import pack, rearrange, unpack
from torch import nn


class GridPooler(nn.Module):
    """``N`` patch tokens of width ``D`` -> ``K`` tokens of width ``D`` (position-aware).

    Args:
        embed_dim: token width ``D`` (in and out).
        num_patches: ``N``, the fixed number of patch tokens a frame.
        num_tokens: ``K`` output tokens.
        channels: ``c``, width each patch token is squeezed to before flattening.
        hidden_dim: width of the MLP on the flattened grid.
        normalize_output: layer-norm each output token without affine parameters.
    """

    def __init__(self, embed_dim: int, num_patches: int, num_tokens: int = 1, channels: int = 32,
                 hidden_dim: int = 256, normalize_output: bool = True) -> None:
        super().__init__()
        if min(embed_dim, num_patches, num_tokens, channels, hidden_dim) < 1:
            raise ValueError("GridPooler sizes must all be >= 1")
        self.embed_dim, self.num_patches, self.num_tokens = embed_dim, num_patches, num_tokens
        self.normalize_output = normalize_output
        self.norm = nn.LayerNorm(embed_dim)
        self.squeeze = nn.Linear(embed_dim, channels)
        self.hidden = nn.Linear(num_patches * channels, hidden_dim)
        self.out = nn.Linear(hidden_dim, num_tokens * embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[..., N, D]`` -> ``[..., K, D]``."""
        if tokens.dim() < 2 or tuple(tokens.shape[-2:]) != (self.num_patches, self.embed_dim):
            raise ValueError(f"tokens must be [..., {self.num_patches}, {self.embed_dim}] (N "
                             f"patch tokens of width D), got {tuple(tokens.shape)}")
        x, packed = pack([tokens], "* n d")
        x = F.gelu(self.squeeze(self.norm(x)))  # [B', N, c]
        x = self.out(F.gelu(self.hidden(rearrange(x, "b n c -> b (n c)"))))
        x = rearrange(x, "b (k d) -> b k d", k=self.num_tokens)
        if self.normalize_output:
            x = F.layer_norm(x, (self.embed_dim,))
        [x] = unpack(x, packed, "* k d")
        return x


__all__ = ["GridPooler"]
