"""Figures that training commands write beside their checkpoints (PNG, atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jepa_world.atomic import atomic_write


def write_figure(path: str | Path, image: torch.Tensor, scale: int = 2) -> Path:
    """Save a ``[3, H, W]`` image in ``[0, 1]`` as a PNG, upscaled ``scale`` x (nearest)."""
    from PIL import Image

    pixels = image.clamp(0, 1).permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
    pixels = np.repeat(np.repeat(pixels, scale, 0), scale, 1)
    return atomic_write(Path(path), lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


__all__ = ["write_figure"]
