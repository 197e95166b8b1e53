"""Video clips ``[3, T, H, W]`` for pretraining, cut from a collected env dataset.

Thin adapter over :class:`~jepa_world.data.windows.WindowDataset` (which reads the frames lazily
from the HDF5 shards): one item is the window's ``pixels`` ``[T, 3, H, W]`` uint8 turned into a
float32 clip ``[3, T, H, W]`` in ``[0, 1]``, optionally resized and passed through an
augmentation hook. The hook receives a ``torch.Generator`` seeded from ``(seed, epoch, index)``,
so augmentations are reproducible whatever the worker count and survive a resume unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.utils.data import Dataset

from jepa_world.data.windows import WindowDataset

#: ``transform(clip [3, T, H, W] float, generator) -> clip [3, T, H', W']``
ClipTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class EnvClips(Dataset):
    """Every ``num_frames``-frame window of a collected dataset, as a float clip.

    Args:
        root: dataset folder written by :func:`jepa_world.data.collection.collect`.
        num_frames: frames per clip ``T``.
        frame_step: env steps between consecutive clip frames (``WindowDataset``'s frameskip).
        stride: env steps between the first frames of consecutive clips.
        size: output side in pixels; frames of another size are resized (bilinear). ``None``
            keeps the stored size.
        transform: optional augmentation hook ``(clip, generator) -> clip``.
        seed: seeds the generator handed to ``transform``.
        episodes: optional subset of episode ids.

    Items are float32 ``[3, T, size, size]`` in ``[0, 1]``.
    """

    def __init__(
        self,
        root: str | Path,
        num_frames: int,
        frame_step: int = 1,
        stride: int = 1,
        size: int | None = None,
        transform: ClipTransform | None = None,
        seed: int = 0,
        episodes: list[int] | None = None,
    ) -> None:
        self.windows = WindowDataset(root, context=num_frames, frameskip=frame_step,
                                     stride=stride, episodes=episodes, fields=("pixels",))
        self.num_frames = num_frames
        self.size = size
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (the sampler calls this every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> torch.Tensor:
        pixels = self.windows[index]["pixels"]  # [T, 3, H, W] uint8
        clip = rearrange(pixels, "t c h w -> c t h w").float().div_(255.0)
        if self.size is not None and clip.shape[-2:] != (self.size, self.size):
            clip = F.interpolate(clip, size=(self.size, self.size), mode="bilinear",
                                 align_corners=False, antialias=True).clamp_(0.0, 1.0)
        if self.transform is not None:
            generator = torch.Generator().manual_seed(
                (self.seed * 1_000_003 + self.epoch) * 1_000_003 + int(index))
            clip = self.transform(clip, generator)
        return clip

    def close(self) -> None:
        self.windows.close()


__all__ = ["ClipTransform", "EnvClips"]
