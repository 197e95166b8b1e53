"""Frozen encoders for probing, named by a spec string, and their feature extraction.

Specs:

* ``random:<preset>`` or ``random:<preset>:<seed>`` - a randomly initialised encoder of a model
  preset (``tiny``, ``vit_l``, ...; see :mod:`jepa_world.models.presets`), seeded (default 0).
* a path loadable by :func:`jepa_world.load_pretrained`: a pretraining checkpoint folder
  (``runs/x/checkpoints/step_000600``), a run folder or its ``checkpoints/latest`` pointer (the
  newest checkpoint), an official V-JEPA / V-JEPA 2 ``.pt`` file. Its ``target_encoder`` is probed
  when present, else its ``encoder``.
* a folder written by :meth:`jepa_world.WorldModel.save_pretrained`: its frozen ``encoder``, with
  the model's own input normalisation.
* ``pkg:<relative path>`` - a path inside the installed ``jepa_world`` package
  (``pkg:pretrained/reach``: the tiny V-JEPA world model shipped with the package).
* ``hf:<folder>`` - a Hugging Face transformers ``VJEPA2Model`` folder (``config.json`` with
  ``"model_type": "vjepa2"`` + ``model.safetensors``), checked to be one; its encoder is probed.
  A plain path to such a folder works too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn
from tqdm.auto import tqdm

from jepa_world.checkpoints.runs import LATEST_FILE, follow_latest
from jepa_world.errors import ConfigError, JepaWorldError
from jepa_world.models.inputs import imagenet_normalize

RANDOM_PREFIX = "random:"
PKG_PREFIX = "pkg:"
HF_PREFIX = "hf:"
KNOWN_FORMS = ("a pretrain checkpoint folder (runs/x/checkpoints/step_000600), a run folder or "
               "its checkpoints/latest, a WorldModel folder, an official V-JEPA .pt file, "
               "hf:<transformers VJEPA2Model folder>, or random:<preset>")


@dataclass
class ProbeEncoder:
    """A frozen encoder ready for :func:`extract_features`.

    Attributes:
        name: display name.
        module: the ``VideoViT``, in eval mode, without gradients.
        input_norm: ``imagenet`` (mean/std normalisation of ``[0, 1]`` pixels) or ``none``.
        source: what was loaded (e.g. ``target_encoder of runs/x/checkpoints/step_000600``).
    """

    name: str
    module: nn.Module
    input_norm: str
    source: str


def package_path(relative: str) -> Path:
    """``relative`` inside the installed ``jepa_world`` package folder."""
    import jepa_world

    return Path(jepa_world.__file__).parent / relative


def resolve_path(spec: str, where: str = "encoders") -> Path:
    """The file or folder a (non-``random:``) spec names, ``latest`` pointers followed.

    Raises:
        ConfigError: nothing there, or a folder that is no checkpoint (the message starts with
            ``where``).
    """
    if spec.startswith(PKG_PREFIX):
        path = package_path(spec[len(PKG_PREFIX):])
        if not path.exists():
            raise ConfigError(
                f"{where}: {path} is not installed (the package ships no model there yet); pass "
                f"your own encoders, e.g. encoders=[runs/x/checkpoints/latest,random:tiny], or "
                f"train one with `python -m jepa_world.pretrain`")
    elif spec.startswith(HF_PREFIX):
        return _hf_path(spec, where)
    else:
        path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"{where}: no such file or folder {spec!r}; give {KNOWN_FORMS}")
    try:
        path = follow_latest(path)
    except JepaWorldError as err:
        raise ConfigError(f"{where}: {err}") from None
    if path.is_dir() and not (path / "config.json").exists():
        raise ConfigError(f"{where}: {spec!r} is a folder without config.json or "
                          f"checkpoints/{LATEST_FILE}; give {KNOWN_FORMS}")
    return path


def _hf_path(spec: str, where: str) -> Path:
    from jepa_world.hf_vjepa2 import hf_folder

    path = Path(spec[len(HF_PREFIX):]).expanduser()
    folder = hf_folder(path)
    if folder is None:
        raise ConfigError(f"{where}: {spec!r} is not a transformers V-JEPA 2 folder: hf: needs a "
                          f"folder (or its model.safetensors) whose config.json has "
                          f"\"model_type\": \"vjepa2\"")
    return folder


def _random_encoder(spec: str, where: str) -> tuple[nn.Module, str]:
    from jepa_world.models.presets import PRESETS, build_encoder, get_preset

    preset, _, seed_text = spec[len(RANDOM_PREFIX):].partition(":")
    if preset not in PRESETS:
        raise ConfigError(f"{where}: unknown preset {preset!r} in {spec!r}; known: "
                          f"{', '.join(sorted(PRESETS))}")
    try:
        seed = int(seed_text) if seed_text else 0
    except ValueError:
        raise ConfigError(f"{where}: {spec!r}: the seed after the preset must be an integer "
                          f"(random:<preset>:<seed>)") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_encoder(get_preset(preset).encoder)
    return module, f"random init of preset {preset} (seed {seed})"


def check_spec(spec: str, where: str = "encoders") -> None:
    """Fail fast (before any work) on a spec that cannot name an encoder: an unknown preset,
    a bad seed, a missing path or a folder that is no checkpoint. Weights are not read."""
    if spec.startswith(RANDOM_PREFIX):
        from jepa_world.models.presets import PRESETS

        preset, _, seed_text = spec[len(RANDOM_PREFIX):].partition(":")
        if preset not in PRESETS or (seed_text and not seed_text.isdigit()):
            _random_encoder(spec, where)  # raises the detailed error
    else:
        resolve_path(spec, where)


def load_encoder(spec: str, name: str = "", where: str = "encoders") -> ProbeEncoder:
    """Build the frozen encoder named by ``spec`` (see the module docstring).

    Raises:
        ConfigError, CheckpointError: unknown spec, missing path, unreadable checkpoint.
    """
    name = name or spec
    input_norm = "imagenet"
    if spec.startswith(RANDOM_PREFIX):
        module, source = _random_encoder(spec, where)
    else:
        path = resolve_path(spec, where)
        config = {}
        if path.is_dir():
            try:
                config = json.loads((path / "config.json").read_text())
            except (OSError, ValueError) as err:
                raise ConfigError(f"{where}: {path / 'config.json'} is unreadable ({err})") from err
        from jepa_world.world_model_config import FORMAT as WORLD_MODEL_FORMAT

        if isinstance(config, dict) and config.get("format") == WORLD_MODEL_FORMAT:
            from jepa_world.world_model import WorldModel

            model = WorldModel.from_pretrained(path)
            module, input_norm = model.encoder, model.config.input_norm
            source = f"encoder of world model {path}"
        else:
            from jepa_world.checkpoints import CheckpointError, load_pretrained

            pre = load_pretrained(path)
            part = "target_encoder" if pre.target_encoder is not None else "encoder"
            module = getattr(pre, part)
            if module is None:
                raise CheckpointError(f"{where}: {path} holds no encoder (format {pre.format})")
            source = f"{part} of {path}"
    module.requires_grad_(False).eval()
    return ProbeEncoder(name, module, input_norm, source)


@torch.no_grad()
def extract_features(encoder: ProbeEncoder, pixels: torch.Tensor, batch_size: int = 64,
                     device: str | torch.device = "cpu", progress: bool = False,
                     desc: str = "encode") -> torch.Tensor:
    """Frozen features of frames or clips.

    Args:
        encoder: from :func:`load_encoder`.
        pixels: uint8 ``[M, L, 3, H, W]``. ``L = 1``: each frame is encoded as an image repeated
            into one tubelet (as ``VideoViT.encode_frames``), ``N = H' W'`` tokens; ``L > 1``: as
            a video clip, ``N = T' H' W'`` tokens (``T' = L / tubelet_size``).
        batch_size: items per forward pass.
        device: where the encoder runs.
        progress: show a tqdm bar.
        desc: its label.

    Returns:
        float16 ``[M, N, D]`` on the CPU.
    """
    if pixels.dim() != 5 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be [M, L, 3, H, W], got {tuple(pixels.shape)}")
    module = encoder.module.to(device).eval()
    out = []
    for start in tqdm(range(0, len(pixels), batch_size), desc=desc, disable=not progress,
                      unit="batch", leave=False, dynamic_ncols=True):
        x = pixels[start:start + batch_size].to(device).float().div_(255.0)  # [b, L, 3, H, W]
        if encoder.input_norm == "imagenet":
            x = imagenet_normalize(x, channel_dim=2)
        video = x[:, 0] if x.shape[1] == 1 else rearrange(x, "b l c h w -> b c l h w")
        try:
            tokens = module(video)  # [b, N, D]
        except ValueError as err:  # clip length / image size the encoder cannot tile
            raise ConfigError(f"encoders: {encoder.name}: {err}") from err
        out.append(tokens.to("cpu", torch.float16))
    return torch.cat(out)


__all__ = ["ProbeEncoder", "check_spec", "extract_features", "load_encoder", "package_path",
           "resolve_path"]
