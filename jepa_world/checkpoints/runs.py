"""Training runs on disk: run folders, their ``step_N`` checkpoint folders and ``latest``.

Layout of ``<run_dir>/checkpoints/``::

    step_000100/                 one complete checkpoint
        config.json              architecture (+ the run's config), jepa_world format
        model.safetensors        the weights (pretraining: encoder / target_encoder / predictor;
                                 world-model training: a ``WorldModel.save_pretrained`` folder)
        pixel_head/              objective=pixel only: the linear pixel head (same format)
        state.pt                 optimizer, step, sampler position, RNG states
    latest                       text file naming the newest complete step folder

A step folder is written completely (each file atomically) before ``latest`` is atomically
switched to it, so a run killed at any moment leaves ``latest`` pointing at a whole checkpoint.
``jepa_world.load_pretrained(<step folder>)`` loads the models. ``state.pt`` holds only what
``torch.load(weights_only=True)`` accepts (containers, numbers, strings, tensors).
"""

from __future__ import annotations

import datetime
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from jepa_world.checkpoints.format import (
    CONFIG_FILE,
    CheckpointError,
    Pretrained,
    atomic_save_bytes,
    atomic_torch_save,
    load_model,
    load_strict,
    load_training_state,
    save_model,
    save_own,
)
from jepa_world.errors import JepaWorldError

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"  #: the pointer file next to the step folders
STATE_FILE = "state.pt"
PIXEL_HEAD_DIR = "pixel_head"
STATE_VERSION = 1


#: the folder name of a run with no ``run_dir`` (the Hydra configs' ``hydra.run.dir`` too): local
#: time to the microsecond, so two runs started in the same second do not share a folder
RUN_DIR_TIME = "%Y-%m-%d_%H-%M-%S_%f"


def default_run_dir(command: str) -> str:
    """``outputs/<command>/<local time>``: where a run goes when no ``run_dir`` is given."""
    return f"outputs/{command}/{datetime.datetime.now().strftime(RUN_DIR_TIME)}"


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def step_folder(run_dir: str | Path, step: int) -> Path:
    return checkpoint_root(run_dir) / step_dir_name(step)


def _pointed(pointer: Path, required: str, error: type[Exception]) -> Path:
    folder = pointer.parent / pointer.read_text(errors="replace").strip()
    if not (folder / required).is_file():
        raise error(f"{pointer} names {folder.name!r}, which holds no {required}: the run folder "
                    f"was modified by hand; pass a step_N folder next to it instead")
    return folder


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete (resumable) checkpoint folder of ``run_dir``, or ``None``."""
    pointer = checkpoint_root(run_dir) / LATEST_FILE
    if not pointer.is_file():
        return None
    return _pointed(pointer, STATE_FILE, JepaWorldError)


def follow_latest(path: Path) -> Path:
    """The checkpoint folder a ``latest`` pointer names, or ``path`` itself.

    ``path`` may be the pointer file, the ``checkpoints`` folder holding it, or a training run's
    folder (``run/checkpoints/latest``); anything else comes back unchanged.

    Raises:
        CheckpointError: the pointer names a folder that is gone or holds no checkpoint.
    """
    path = Path(path)
    if path.is_dir() and not (path / CONFIG_FILE).exists():
        for pointer in (path / CHECKPOINTS_DIR / LATEST_FILE, path / LATEST_FILE):
            if pointer.is_file():
                path = pointer
                break
    if not (path.is_file() and path.name == LATEST_FILE and path.stat().st_size < 256):
        return path
    return _pointed(path, CONFIG_FILE, CheckpointError)


def write_step(run_dir: str | Path, step: int, write_models: Callable[[Path], Any],
               state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step``: ``write_models(folder)``, then ``state.pt``, then point
    ``latest`` at it; keep the newest ``keep`` step folders (``keep <= 0``: all).

    Returns:
        The step folder.
    """
    root = checkpoint_root(run_dir)
    folder = root / step_dir_name(step)
    write_models(folder)
    atomic_torch_save(dict(state, version=STATE_VERSION, step=step), folder / STATE_FILE)
    atomic_save_bytes(folder.name.encode(), root / LATEST_FILE)
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def read_state(folder: str | Path) -> dict[str, Any]:
    """A step folder's training state (``state.pt``), checked for its version."""
    path = Path(folder) / STATE_FILE
    state = load_training_state(path)
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise JepaWorldError(f"{path}: not a version-{STATE_VERSION} training state")
    return state


# --------------------------------------------------------------------------- pretraining folders


def save_checkpoint(run_dir: str | Path, step: int, models: Pretrained, state: dict[str, Any],
                    pixel_head: nn.Module | None = None, keep: int = 2) -> Path:
    """A pretraining checkpoint: the three models (+ the pixel head) and the training state.

    Args:
        run_dir: the run's output folder.
        step: optimizer steps done.
        models: encoder, target encoder, predictor and their ``config`` dict.
        state: training state (see :mod:`jepa_world.training.pretrain`), ``weights_only``-safe.
        pixel_head: the pixel objective's head, stored next to the models.
        keep: number of step folders to keep (older ones are deleted).
    """

    def write_models(folder: Path) -> None:
        save_own(models, folder)
        if pixel_head is not None:
            shape = {"in_features": pixel_head.in_features,
                     "out_features": pixel_head.out_features}
            save_model(pixel_head, {"format": "jepa_world_pixel_head", **shape},
                       folder / PIXEL_HEAD_DIR)

    return write_step(run_dir, step, write_models, state, keep)


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
    state = read_state(folder)
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


__all__ = ["CHECKPOINTS_DIR", "LATEST_FILE", "PIXEL_HEAD_DIR", "RUN_DIR_TIME", "STATE_FILE",
           "checkpoint_root", "default_run_dir", "follow_latest", "latest_checkpoint",
           "load_checkpoint", "read_state", "save_checkpoint", "step_dir_name", "step_folder",
           "write_step"]
