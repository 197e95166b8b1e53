"""This project's checkpoint format and the primitives every other format builds on.

Model weights are stored as a folder written by :func:`save_model`: ``config.json`` (the
architecture, as plain JSON) + ``model.safetensors`` (the tensors). Both files are written to a
temp file in the same folder, flushed to disk, then ``os.replace``-d over the target, so a crash
never leaves a half-written file under the final name.

Resumable training state (optimizer moments, step counters, RNG states) holds more than tensors,
so it is written with :func:`atomic_torch_save` and read back with :func:`load_training_state`,
which uses ``torch.load(weights_only=True)``: plain containers, numbers, strings and tensors load;
arbitrary pickled objects are refused rather than executed.

This module imports no other format: :mod:`.official` and :mod:`.hf` build on it, and
:mod:`jepa_world.checkpoints` (the package) chooses between them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from jepa_world.atomic import atomic_write, atomic_write_bytes
from jepa_world.errors import JepaWorldError
from jepa_world.models.presets import (
    ACPredictorConfig,
    EncoderConfig,
    PredictorConfig,
    build_encoder,
    build_predictor,
    config_from_dict,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
OWN_FORMAT = "jepa_world"
MODULE_NAMES = ("encoder", "target_encoder", "predictor")


class CheckpointError(JepaWorldError, ValueError):
    """A file is not a loadable checkpoint, or its tensors do not fit the model."""


@dataclass
class Pretrained:
    """Modules built from a checkpoint.

    Attributes:
        encoder: context encoder (``VideoViT``) or None.
        target_encoder: EMA target encoder or None.
        predictor: ``MaskedPredictor``, ``ACPredictor`` or None.
        format: ``"vjepa1"``, ``"vjepa2"``, ``"vjepa2_ac"``, ``"encoder"``, ``"jepa_world"`` or
            ``"hf_vjepa2"`` (a transformers folder).
        config: this project's config (``encoder``, ``predictor``, ``predictor_type``).
        notes: assumptions made and harmless keys skipped while loading.
        metadata: non-weight entries of the checkpoint (e.g. ``epoch``).
    """

    encoder: nn.Module | None
    target_encoder: nn.Module | None
    predictor: nn.Module | None
    format: str
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- atomic writes


def atomic_save_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + ``os.replace``).

    Readers see either the previous file or the complete new one, never a partial write.
    Parent folders are created. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    return atomic_write_bytes(path, data)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file + fsync + ``os.replace``).

    Meant for resumable training state; keep ``obj`` to what ``torch.load(weights_only=True)``
    accepts (dicts, lists, tuples, numbers, strings, tensors, ``torch.Size``...) so that
    :func:`load_training_state` can read it back. Returns ``path``.
    """
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    return path


def load_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Read a file written by :func:`atomic_torch_save` with ``torch.load(weights_only=True)``.

    Args:
        path: the file.
        map_location: where tensors are placed (default CPU; move them yourself afterwards).

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, or holds objects that are not
            allowed under ``weights_only=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such training-state file")
    return torch_load_weights_only(path, map_location)


def torch_load_weights_only(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; any failure becomes a one-line CheckpointError."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt zip, truncated pickle, disallowed globals, ...
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (torch.load with weights_only=True "
            f"failed: {type(err).__name__}: {first_line})"
        ) from err


# --------------------------------------------------------------------------- own format


def save_model(module: nn.Module, config: dict[str, Any], directory: str | Path,
               dtype: torch.dtype | None = None) -> Path:
    """Write ``module``'s state dict to ``directory/model.safetensors`` and ``config`` to
    ``directory/config.json``; each file is written to a temp file then ``os.replace``-d.
    ``dtype`` stores floating-point tensors in that type (e.g. float16 to halve the file;
    loading casts them back to the module's type)."""
    return save_tensors(module.state_dict(), config, directory, dtype)


def save_tensors(tensors: dict[str, torch.Tensor], config: dict[str, Any], directory: str | Path,
                 dtype: torch.dtype | None = None, metadata: dict[str, str] | None = None) -> Path:
    """:func:`save_model` for a plain ``{name: tensor}`` dict; ``metadata`` goes into the
    safetensors header (e.g. ``{"format": "pt"}``, which transformers expects)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata))
    text = json.dumps(config, indent=1, sort_keys=True)
    atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text))
    return directory


def load_model(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(state_dict, config)`` written by :func:`save_model`."""
    directory = Path(directory)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
        tensors = load_file(str(directory / WEIGHTS_FILE))
    except (OSError, ValueError, SafetensorError) as err:
        msg = f"{directory}: not a readable jepa_world model folder ({err})"
        raise CheckpointError(msg) from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{directory / CONFIG_FILE}: expected a JSON object")
    return tensors, config


def load_typed(directory: str | Path, fmt: str, key: str, parse: Callable[[dict], Any],
               what: str) -> tuple[dict[str, torch.Tensor], Any]:
    """:func:`load_model` of a folder whose config is ``{"format": fmt, key: {...}}``; returns
    ``(state_dict, parse(config[key]))``, a bad format or config being one CheckpointError."""
    tensors, config = load_model(directory)
    if config.get("format") != fmt or key not in config:
        raise CheckpointError(f"{directory}: not a {fmt} folder (config 'format' is "
                              f"{config.get('format')!r})")
    try:
        return tensors, parse(config[key])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{directory}: invalid {what} config ({err})") from err


def save_own(pretrained: Pretrained, directory: str | Path) -> Path:
    """Save a :class:`Pretrained` bundle in this project's format (one folder)."""
    parts = {k: getattr(pretrained, k) for k in MODULE_NAMES}
    bundle = nn.ModuleDict({k: m for k, m in parts.items() if m is not None})
    config = dict(pretrained.config, format=OWN_FORMAT, version=1,
                  has_target_encoder=pretrained.target_encoder is not None)
    return save_model(bundle, config, directory)


def load_own(directory: Path) -> Pretrained:
    tensors, config = load_model(directory)
    if config.get("format") != OWN_FORMAT:
        raise CheckpointError(f"{directory / CONFIG_FILE}: 'format' is not {OWN_FORMAT!r}")
    notes: list[str] = []
    pred_cls = ACPredictorConfig if config.get("predictor_type") == "ac" else PredictorConfig
    try:
        enc_cfg = config_from_dict(EncoderConfig, config["encoder"]) if config.get("encoder") \
            else None
        pred_cfg = config_from_dict(pred_cls, config["predictor"]) if config.get("predictor") \
            else None
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid model config ({err})") from err
    built: dict[str, nn.Module | None] = dict.fromkeys(MODULE_NAMES)
    for name in built:
        cfg = pred_cfg if name == "predictor" else enc_cfg
        prefix = f"{name}."
        if cfg is None or (name == "target_encoder" and not config.get("has_target_encoder")):
            continue
        module = build_predictor(cfg) if name == "predictor" else build_encoder(cfg)
        part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_strict(module, part, f"{directory}[{name}]", {}, notes)
        built[name] = module
    stray = [k for k in tensors if k.split(".", 1)[0] not in {n for n, m in built.items() if m}]
    if stray:
        raise CheckpointError(f"{directory}: unexpected tensors {short_list(stray)}")
    return Pretrained(**built, format=OWN_FORMAT, config=config, notes=notes)


# --------------------------------------------------------------------------- shared helpers


def build_uninitialised(build: Callable[[Any], nn.Module], cfg: Any) -> nn.Module:
    """``build(cfg)`` with uninitialised CPU storage, for a module a strict load fills next.

    The module is built on the meta device and then given empty storage, which skips the
    random initialisation every checkpoint load would overwrite (3.5 of 4 s at ViT-L size on
    one CPU thread). Modules with non-persistent buffers, which no checkpoint fills, are built
    normally.
    """
    with torch.device("meta"):
        module = build(cfg)
    stored = set(module.state_dict())
    if any(name not in stored for name, _ in module.named_buffers()):
        return build(cfg)
    return module.to_empty(device="cpu")


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], where: str,
                harmless: dict[str, str], notes: list[str]) -> None:
    """Load ``state`` into ``module``; raise listing missing/unexpected/mis-shaped keys.

    Args:
        module: the freshly built module.
        state: tensors to load (names as in ``module.state_dict()``).
        where: prefix for messages, e.g. ``"ckpt.pt[encoder]"``.
        harmless: ``{key: reason}`` for checkpoint keys the module does not have and that may be
            dropped (a note with the reason is appended to ``notes`` once).
        notes: list collecting such notes.
    """
    expected = module.state_dict()
    state = dict(state)
    for key, reason in harmless.items():
        if key in state and key not in expected:
            del state[key]
            note = f"{where}: {reason}"
            if note not in notes:
                notes.append(note)
    check_state(expected, state, where)
    module.load_state_dict(state, strict=True)


def check_state(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                where: str) -> None:
    """Raise one CheckpointError listing the keys of ``state`` that are missing, unexpected or
    mis-shaped against ``expected`` (both ``{name: tensor}``); ``where`` prefixes the message."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys {short_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {short_list(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {short_list(shapes)}")
    if problems:
        raise CheckpointError(f"{where}: " + "; ".join(problems))


def short_list(items: list[str], limit: int = 12) -> str:
    """``"['a', 'b', ...] (n)"``: the first ``limit`` items of a long list, for messages."""
    shown = ", ".join(repr(i) for i in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"


__all__ = [
    "CONFIG_FILE",
    "MODULE_NAMES",
    "OWN_FORMAT",
    "WEIGHTS_FILE",
    "CheckpointError",
    "Pretrained",
    "atomic_save_bytes",
    "atomic_torch_save",
    "build_uninitialised",
    "check_state",
    "load_model",
    "load_own",
    "load_typed",
    "load_strict",
    "load_training_state",
    "save_model",
    "save_own",
    "save_tensors",
    "short_list",
    "torch_load_weights_only",
]
