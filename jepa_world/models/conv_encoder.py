"""A small convolutional frame encoder for world models trained end to end (PLDM style).

The V-JEPA ViT reads a frame through linear 8 x 8 patches; on push's 64 px frames it keeps the
T block's angle poorly (a grid probe on its patch tokens: about half the frames within pi/9),
while a few strided 3 x 3 convolutions trained on the same frames read it in nine of ten. This
encoder gives the world model that inductive bias with the ViT's interface: a frame becomes a
grid of tokens, one per ``patch_size`` x ``patch_size`` cell, so the poolers, the predictor and
the planners are unchanged. It has no pretrained weights: ``train_wm encoder.kind=conv`` trains
it from scratch through the world-model losses.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from jepa_world.models.positions import as_pair


class ConvEncoder(nn.Module):
    """Strided 3 x 3 convolutions (GELU) down to the token grid, a 3 x 3 convolution over the
    grid, then a 1 x 1 projection to ``embed_dim``.

    Args:
        img_size: frame size (int or (H, W)), divisible by ``patch_size``.
        patch_size: the grid's cell in pixels, a power of two: one stride-2 stage per halving.
        in_chans: input channels ``C``.
        embed_dim: token width ``D``.
        channels: width of each stride-2 stage (``log2(patch_size)`` of them).
    """

    def __init__(self, img_size: int | tuple[int, int] = 64, patch_size: int = 8,
                 in_chans: int = 3, embed_dim: int = 192,
                 channels: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        stages = int(math.log2(patch_size))
        if 2 ** stages != patch_size or len(channels) != stages:
            raise ValueError(f"patch_size must be a power of two with one channel count per "
                             f"halving; got patch_size={patch_size}, channels={tuple(channels)}")
        h, w = as_pair(img_size)
        if h % patch_size or w % patch_size:
            raise ValueError(f"img_size {h}x{w} is not divisible by patch_size {patch_size}")
        self.in_chans, self.embed_dim, self.patch_size = in_chans, embed_dim, patch_size
        layers: list[nn.Module] = []
        width = in_chans
        for c in channels:
            layers += [nn.Conv2d(width, c, 3, stride=2, padding=1), nn.GELU()]
            width = c
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, embed_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, H' W', D]`` tokens (rows, then columns)."""
        if frames.dim() != 4 or frames.shape[1] != self.in_chans:
            raise ValueError(f"expected frames [B, {self.in_chans}, H, W], got "
                             f"{tuple(frames.shape)}")
        return rearrange(self.net(frames), "b d h w -> b (h w) d")

    def encode_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Every frame on its own, as :meth:`VideoViT.encode_frames`: ``[B, C, T, H, W]`` ->
        ``[B, T * N, D]``, frames in time order."""
        if video.dim() != 5:
            raise ValueError(f"expected video [B, C, T, H, W], got {tuple(video.shape)}")
        tokens = self(rearrange(video, "b c t h w -> (b t) c h w"))
        return rearrange(tokens, "(b t) n d -> b (t n) d", b=video.shape[0])


__all__ = ["ConvEncoder"]
