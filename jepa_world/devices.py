"""Device and precision choice of the configs: device names (``auto``, ``cpu``, ``cuda``,
``cuda:1``) -> ``torch.device``, and ``precision`` (``auto``, ``fp32``, ``bf16``) -> whether to
run under bf16 autocast on that device."""

from __future__ import annotations

from collections.abc import Callable

import torch

from jepa_world.config import check

#: The ``precision`` values of the commands.
PRECISIONS = ("auto", "fp32", "bf16")


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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX tiles). Measured here:
    bf16 autocast ~2.2x faster than fp32 in a ViT train step on such a Xeon, ~14x SLOWER on an
    AVX2-only EPYC (emulated), so the choice is made per machine, never from a constant."""
    cpu = torch.cpu
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def use_bf16(precision: str, device: torch.device,
             native_bf16: Callable[[], bool] = cpu_has_native_bf16) -> bool:
    """``bf16``: always; ``fp32``: never; ``auto``: on CUDA, and on a CPU with native bf16
    (``native_bf16()``, :func:`cpu_has_native_bf16`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and native_bf16())


__all__ = ["PRECISIONS", "cpu_has_native_bf16", "resolve_device", "use_bf16"]
