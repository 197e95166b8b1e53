"""Device names of the configs (``auto``, ``cpu``, ``cuda``, ``cuda:1``) -> ``torch.device``."""

from __future__ import annotations

import torch

from jepa_world.config import check


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``cuda`` means
    this rank's GPU (under torchrun); a CUDA device is made current. A CUDA device without
    CUDA fails naming the ``device`` field."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        check(torch.cuda.is_available(), "device", f"{name!r} requested but CUDA is unavailable")
        torch.cuda.set_device(device)
    return device
