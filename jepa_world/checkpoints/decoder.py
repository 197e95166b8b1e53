"""Pixel-decoder folders: ``config.json`` (``format: jepa_world_decoder``, the
:class:`~jepa_world.models.decoder.DecoderConfig`) + ``model.safetensors``.

A world model folder may hold its decoder in a ``decoder/`` subfolder
(:data:`DECODER_DIR`); :meth:`WorldModel.from_pretrained` attaches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from jepa_world.checkpoints.format import CheckpointError, load_strict, load_typed, save_model
from jepa_world.models.decoder import DECODER_FORMAT, DecoderConfig, build_decoder

DECODER_DIR = "decoder"


def save_decoder(decoder: nn.Module, directory: str | Path, dtype: torch.dtype | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write a decoder folder; ``extra`` (e.g. how it was trained) goes into config.json."""
    config = {"format": DECODER_FORMAT, "version": 1, "decoder": decoder.config.to_dict(),
              **(extra or {})}
    return save_model(decoder, config, directory, dtype=dtype)


def load_decoder(directory: str | Path, map_location: Any = "cpu") -> nn.Module:
    """Rebuild a decoder written by :func:`save_decoder` (strict), in eval mode.

    Raises:
        CheckpointError: not a decoder folder, or weights that do not fit its config.
    """
    tensors, cfg = load_typed(directory, DECODER_FORMAT, "decoder", DecoderConfig.from_dict,
                              "decoder")
    try:
        decoder = build_decoder(cfg)
    except ImportError as err:
        raise CheckpointError(f"{directory}: a {cfg.kind} decoder needs {err.name} "
                              f"(pip install 'jepa_world[diffusion]')") from err
    load_strict(decoder, tensors, str(directory), {}, [])
    return decoder.to(map_location).eval()


__all__ = ["DECODER_DIR", "load_decoder", "save_decoder"]
