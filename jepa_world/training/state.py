"""Checkpoint folders of a pretraining run, and the resumable training state inside them.

Layout of ``<run_dir>/checkpoints/``::

    step_000100/                 one complete checkpoint
        config.json              architecture (+ the run's config), jepa_world format
        model.safetensors        encoder / target_encoder / predictor weights
        pixel_head/              objective=pixel only: the linear pixel head (same format)
        state.pt                 optimizer, step, sampler position, RNG states
    latest                       text file naming the newest complete step folder

A step folder is written completely (each file atomically) before ``latest`` is atomically
switched to it, so a run killed at any moment leaves ``latest`` pointing at a whole checkpoint.
``jepa_world.load_pretrained(<step folder>)`` loads the three models. ``state.pt`` holds only
what ``torch.load(weights_only=True)`` accepts (containers, numbers, strings, tensors).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jepa_world.checkpoints import (
    LATEST_POINTER,
    Pretrained,
    atomic_save_bytes,
    atomic_torch_save,
    load_model,
    load_strict,
    load_training_state,
    save_model,
    save_pretrained,
)
from jepa_world.errors import JepaWorldError

STATE_FILE = "state.pt"
PIXEL_HEAD_DIR = "pixel_head"
LATEST_FILE = LATEST_POINTER
CHECKPOINTS_DIR = "checkpoints"
STATE_VERSION = 1


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of ``run_dir``, or ``None`` if there is none."""
    root = checkpoint_root(run_dir)
    pointer = root / LATEST_FILE
    if not pointer.is_file():
        return None
    folder = root / pointer.read_text().strip()
    if not (folder / STATE_FILE).is_file():
        raise JepaWorldError(f"{pointer} names {folder.name}, which has no {STATE_FILE}; "
                             f"the run folder was modified by hand")
    return folder


# --------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, in ``weights_only``-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- save / load


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    models: Pretrained,
    state: dict[str, Any],
    pixel_head: nn.Module | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` and point ``latest`` at it; keep the newest ``keep`` folders.

    Args:
        run_dir: the run's output folder.
        step: optimizer steps done.
        models: encoder, target encoder, predictor and their ``config`` dict.
        state: training state (see :mod:`jepa_world.training.pretrain`), ``weights_only``-safe.
        pixel_head: the pixel objective's head, stored next to the models.
        keep: number of step folders to keep (older ones are deleted).

    Returns:
        The step folder.
    """
    root = checkpoint_root(run_dir)
    folder = root / step_dir_name(step)
    save_pretrained(models, folder)
    if pixel_head is not None:
        shape = {"in_features": pixel_head.in_features, "out_features": pixel_head.out_features}
        save_model(pixel_head, {"format": "jepa_world_pixel_head", **shape},
                   folder / PIXEL_HEAD_DIR)
    payload = dict(state, version=STATE_VERSION, step=step)
    atomic_torch_save(payload, folder / STATE_FILE)
    atomic_save_bytes(folder.name.encode(), root / LATEST_FILE)
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(
    folder: str | Path,
    modules: dict[str, nn.Module | None],
    pixel_head: nn.Module | None = None,
    validate: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Load a step folder's weights into ``modules`` (strictly) and return its training state.

    Args:
        folder: a folder written by :func:`save_checkpoint`.
        modules: ``{"encoder": ..., "target_encoder": ..., "predictor": ...}``; ``None`` entries
            are skipped.
        pixel_head: loaded from the ``pixel_head`` subfolder when given.
        validate: called with the training state before any weight is loaded (e.g. to refuse a
            checkpoint of another architecture with a clear message).
    """
    folder = Path(folder)
    state = load_training_state(folder / STATE_FILE)
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise JepaWorldError(f"{folder / STATE_FILE}: not a version-{STATE_VERSION} training "
                             f"state")
    if validate is not None:
        validate(state)
    tensors, _ = load_model(folder)
    notes: list[str] = []
    for name, module in modules.items():
        if module is None:
            continue
        prefix = f"{name}."
        part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_strict(module, part, f"{folder}[{name}]", {}, notes)
    if pixel_head is not None:
        head, _ = load_model(folder / PIXEL_HEAD_DIR)
        load_strict(pixel_head, head, f"{folder}[pixel_head]", {}, notes)
    return state


__all__ = ["CHECKPOINTS_DIR", "LATEST_FILE", "PIXEL_HEAD_DIR", "STATE_FILE", "checkpoint_root",
           "latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint",
           "set_rng_state", "step_dir_name"]
