"""Clip augmentations: one spatial crop shared by every frame of a clip, then a bilinear resize.

All functions take and return videos laid out ``[C, T, H, W]`` (channels, time, height, width).
Floating-point inputs keep their dtype; integer inputs (e.g. ``uint8`` frames) come out as
``float32`` *without* rescaling, so divide by 255 yourself if you want ``[0, 1]``. Cropping happens
before any conversion, so only the cropped pixels are ever touched.

A crop box is ``(top, left, height, width)`` in pixels of the input frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from jepa_world.models.positions import as_pair

Box = tuple[int, int, int, int]
Size = int | tuple[int, int]

_CROP_TRIES = 10


def as_hw(size: Size) -> tuple[int, int]:
    """``size`` as ``(height, width)`` (:func:`~jepa_world.models.positions.as_pair`), checked
    to be positive."""
    height, width = as_pair(size)
    if height < 1 or width < 1:
        raise ValueError(f"output size must be positive, got {size}")
    return height, width


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[0, high)``."""
    return int(torch.randint(high, (), generator=generator).item())


def _check_range(name: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not 0 < low <= high:
        raise ValueError(f"{name} must satisfy 0 < low <= high, got {tuple(bounds)}")


def random_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Box:
    """A random box covering a fraction in ``scale`` of an ``height x width`` frame.

    The area fraction is uniform in ``scale`` and the aspect ratio (width / height) log-uniform in
    ``ratio``. Like torchvision's ``RandomResizedCrop``, up to 10 draws are tried; if none fits in
    the frame, the largest centered box whose aspect ratio is clamped into ``ratio`` is returned.
    Box sides are rounded to whole pixels, so the area fraction can miss ``scale`` by rounding.

    Returns ``(top, left, box_height, box_width)``.
    """
    _check_range("scale", scale)
    _check_range("ratio", ratio)
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(_CROP_TRIES):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_low, log_high, generator))
        box_w = round(math.sqrt(target_area * aspect))
        box_h = round(math.sqrt(target_area / aspect))
        if 0 < box_w <= width and 0 < box_h <= height:
            top = _randint(height - box_h + 1, generator)
            left = _randint(width - box_w + 1, generator)
            return top, left, box_h, box_w
    return fallback_crop_box(height, width, ratio)


def fallback_crop_box(height: int, width: int, ratio: tuple[float, float]) -> Box:
    """torchvision's fallback box: the whole frame, centered, its aspect clamped into ``ratio``."""
    in_ratio = width / height
    if in_ratio < ratio[0]:
        box_w, box_h = width, max(1, round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        box_w, box_h = max(1, round(height * ratio[1])), height
    else:
        box_w, box_h = width, height
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def center_crop_box(height: int, width: int, size: Size, crop_fraction: float = 1.0) -> Box:
    """The largest centered box shaped like ``size``, its sides scaled by ``crop_fraction``.

    With ``crop_fraction=1`` and a square ``size`` this is the central square of side
    ``min(height, width)``; ``crop_fraction=224/256`` gives the classic "resize 256, crop 224".
    """
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    out_h, out_w = as_hw(size)
    fit = min(height / out_h, width / out_w) * crop_fraction
    box_h = min(height, max(1, round(out_h * fit)))
    box_w = min(width, max(1, round(out_w * fit)))
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def resize(video: torch.Tensor, size: Size) -> torch.Tensor:
    """Bilinear resize of every frame: ``[C, T, H, W] -> [C, T, h, w]``, as floating point.

    Anti-aliased when shrinking (so downsampled frames don't shimmer), plain bilinear otherwise.
    ``uint8`` CPU frames are resized in ``uint8`` (torch's fast channels-last kernel, ~10x faster
    than in float32; results are rounded to whole levels) and then returned as ``float32``.
    """
    out_h, out_w = as_hw(size)
    height, width = video.shape[-2:]
    if (height, width) == (out_h, out_w):
        return video if video.is_floating_point() else video.float()
    fast_uint8 = video.dtype == torch.uint8 and video.device.type == "cpu"
    frames = rearrange(video, "c t h w -> t c h w")
    if fast_uint8:
        frames = frames.contiguous(memory_format=torch.channels_last)
    elif not frames.is_floating_point():
        frames = frames.float()
    frames = F.interpolate(frames, size=(out_h, out_w), mode="bilinear", align_corners=False,
                           antialias=height > out_h or width > out_w)
    frames = rearrange(frames, "t c h w -> c t h w")
    if fast_uint8:
        frames = frames.to(torch.float32, memory_format=torch.contiguous_format)
    return frames


def resized_crop(video: torch.Tensor, box: Box, size: Size) -> torch.Tensor:
    """Cut ``box`` out of every frame, then resize: ``[C, T, H, W] -> [C, T, h, w]``."""
    top, left, box_h, box_w = box
    return resize(video[..., top:top + box_h, left:left + box_w], size)


def random_resized_crop(
    video: torch.Tensor,
    size: Size,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random-resized-crop of a clip, the same box for all frames: ``[C, T, H, W] -> [C, T, h, w]``.

    See :func:`random_crop_box` for how the box is drawn; ``size`` is an int (square) or
    ``(h, w)``.
    """
    box = random_crop_box(video.shape[-2], video.shape[-1], scale, ratio, generator)
    return resized_crop(video, box, size)


def center_crop_resize(video: torch.Tensor, size: Size, crop_fraction: float = 1.0) -> torch.Tensor:
    """Evaluation crop: ``[C, T, H, W] -> [C, T, h, w]`` (the box is :func:`center_crop_box`)."""
    box = center_crop_box(video.shape[-2], video.shape[-1], size, crop_fraction)
    return resized_crop(video, box, size)


def horizontal_flip(video: torch.Tensor) -> torch.Tensor:
    """Mirror every frame left-right: ``[..., H, W] -> [..., H, W]``."""
    return video.flip(-1)


def random_horizontal_flip(
    video: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """With probability ``p``, mirror the whole clip (all frames together) left-right."""
    if torch.rand((), generator=generator).item() < p:
        return horizontal_flip(video)
    return video
