"""Checkpoints: every format this project reads or writes, run folders and ``latest``.

* :mod:`.format` - this project's safetensors + JSON folders, atomic training state, strict
  loading (imports no other format);
* :mod:`.runs` - run folders, their ``step_N`` checkpoints, the ``latest`` pointer, pruning;
* :mod:`.official` - Meta's V-JEPA / V-JEPA 2 / 2-AC ``torch.save`` files;
* :mod:`.hf` - Hugging Face transformers ``VJEPA2Model`` folders (also importable as
  ``jepa_world.hf_vjepa2``).

The arrows point one way: ``format <- runs``, ``format <- official``, ``format <- hf``, and this
file, which chooses between them (:func:`load_pretrained`, :func:`save_pretrained`), imports all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jepa_world.checkpoints.format import (
    CONFIG_FILE,
    MODULE_NAMES,
    OWN_FORMAT,
    WEIGHTS_FILE,
    CheckpointError,
    Pretrained,
    atomic_save_bytes,
    atomic_torch_save,
    build_uninitialised,
    check_state,
    load_model,
    load_own,
    load_strict,
    load_training_state,
    save_model,
    save_own,
    save_tensors,
    short_list,
    torch_load_weights_only,
)
from jepa_world.checkpoints.hf import hf_folder, load_hf, save_hf
from jepa_world.checkpoints.official import check_overrides, load_official
from jepa_world.checkpoints.runs import LATEST_FILE, follow_latest, latest_checkpoint


def save_pretrained(pretrained: Pretrained, directory: str | Path,
                    format: str = OWN_FORMAT) -> Path:
    """Save a :class:`Pretrained` bundle in this project's format, or with ``format="hf"`` as a
    transformers ``VJEPA2Model`` folder (RoPE encoders only; see :mod:`jepa_world.hf_vjepa2`)."""
    if format == "hf":
        return save_hf(pretrained, directory)
    if format != OWN_FORMAT:
        raise ValueError(f"format must be {OWN_FORMAT!r} or 'hf', got {format!r}")
    return save_own(pretrained, directory)


def load_pretrained(
    path: str | Path, config: dict[str, Any] | str | Path | None = None, **overrides: Any
) -> Pretrained:
    """Build this project's modules from a checkpoint and load its weights strictly.

    Args:
        path: official ``.pt`` file, bare encoder state dict, a folder written by
            :func:`save_pretrained` (a pretraining checkpoint ``run/checkpoints/step_N``), a
            training run's folder or ``latest`` pointer file (``run/checkpoints/latest``): the
            newest checkpoint is loaded; or a Hugging Face transformers ``VJEPA2Model`` folder
            (or its ``model.safetensors``), see :mod:`jepa_world.hf_vjepa2`.
        config: optional official constructor arguments (dict or JSON path); see
            :mod:`jepa_world.checkpoints.official`. Ignored for this project's folders; refused
            (with the overrides) for transformers folders, whose ``config.json`` says everything.
        **overrides: ``num_heads``, ``predictor_num_heads``, ``img_size``, ``num_frames``,
            ``use_extrinsics``, ``pos_embed`` (``"rope"``/``"sincos"``, bare encoders only),
            ``norm_eps``.

    Raises:
        CheckpointError: unreadable/corrupt file, unknown layout, missing or unexpected keys,
            shape mismatches, or architecture values that cannot be determined.
    """
    check_overrides(overrides)
    path = follow_latest(Path(path))
    if hf_folder(path) is not None:
        if config is not None or overrides:
            raise TypeError(f"{path}: a transformers folder carries its whole config in "
                            f"{CONFIG_FILE}; drop config= and the overrides")
        return load_hf(path)
    if path.is_dir():
        if (path / CONFIG_FILE).exists() and (path / WEIGHTS_FILE).exists():
            return load_own(path)
        raise CheckpointError(f"{path}: folder without {CONFIG_FILE} + {WEIGHTS_FILE}")
    return load_official(path, config, **overrides)


__all__ = [
    "CONFIG_FILE",
    "LATEST_FILE",
    "MODULE_NAMES",
    "WEIGHTS_FILE",
    "CheckpointError",
    "Pretrained",
    "atomic_save_bytes",
    "atomic_torch_save",
    "build_uninitialised",
    "check_state",
    "follow_latest",
    "latest_checkpoint",
    "load_model",
    "load_pretrained",
    "load_strict",
    "load_training_state",
    "save_model",
    "save_pretrained",
    "save_tensors",
    "short_list",
    "torch_load_weights_only",
]
