"""Hugging Face transformers V-JEPA 2 folders (``VJEPA2Model``): read them, and write ours as them.

A transformers folder holds ``config.json`` (``"model_type": "vjepa2"``) and ``model.safetensors``
(or shards listed in ``model.safetensors.index.json``) under transformers' key names. It is the
same network as this project's RoPE ``VideoViT`` + ``MaskedPredictor`` under other names:

====================================================  ===========================================
transformers                                          this project
====================================================  ===========================================
``encoder.embeddings.patch_embeddings.proj.*``        encoder ``patch_embed.proj.*``
``encoder.layer.N.attention.{query,key,value}.*``     encoder ``blocks.N.attn.qkv.*`` (fused q,k,v)
``encoder.layer.N.attention.proj.*``                  encoder ``blocks.N.attn.proj.*``
``encoder.layer.N.{norm1,norm2,mlp.fc1,mlp.fc2}.*``   encoder ``blocks.N.{same}.*``
``encoder.layernorm.*``                               encoder ``norm.*``
``predictor.embeddings.predictor_embeddings.*``       predictor ``predictor_embed.*``
``predictor.embeddings.mask_tokens`` [n, 1, 1, Dp]    predictor ``mask_tokens.j`` [1, 1, Dp] each
``predictor.layer.N...``                              predictor ``predictor_blocks.N...``
``predictor.layernorm.*`` / ``predictor.proj.*``      predictor ``predictor_norm.*`` / ``_proj.*``
====================================================  ===========================================

One function, :func:`hf_sources`, names the transformers keys each of our keys is made of; both
directions (:func:`load_hf` and :func:`save_hf`) and the key check are built on it.

transformers' predictor sees the encoder output of the *whole* clip and keeps the context tokens
(:func:`predict_targets` does the same); V-JEPA pretraining instead encodes the context alone.
transformers places RoPE positions on the ``crop_size`` grid whatever the input size; our encoder
uses the input's own grid, so features agree at ``crop_size`` (and may differ at other sizes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from jepa_world.checkpoints.format import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    Pretrained,
    build_uninitialised,
    check_state,
    load_strict,
    save_tensors,
)
from jepa_world.models.positions import as_pair, gather_tokens, rope_chunk_dim
from jepa_world.models.presets import (
    EncoderConfig,
    PredictorConfig,
    build_encoder,
    build_predictor,
    config_from_dict,
    config_to_dict,
)

HF_FORMAT = "hf_vjepa2"  #: ``Pretrained.format`` of a loaded transformers folder
HF_MODEL_TYPE = "vjepa2"
HF_ARCHITECTURE = "VJEPA2Model"
INDEX_FILE = "model.safetensors.index.json"
MASK_TOKENS = "predictor.embeddings.mask_tokens"

#: ``VJEPA2Config`` defaults (transformers 5.x), used for keys a ``config.json`` leaves out.
HF_DEFAULTS: dict[str, Any] = {
    "crop_size": 256, "frames_per_clip": 64, "tubelet_size": 2, "patch_size": 16,
    "in_chans": 3, "hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 24,
    "mlp_ratio": 4.0, "layer_norm_eps": 1e-6, "qkv_bias": True, "hidden_act": "gelu",
    "pred_hidden_size": 384, "pred_num_attention_heads": 12, "pred_num_hidden_layers": 12,
    "pred_num_mask_tokens": 10, "pred_mlp_ratio": 4.0,
}
#: Written on export so the folder states every field; none changes inference.
_EXPORT_EXTRAS: dict[str, Any] = {
    "architectures": [HF_ARCHITECTURE], "model_type": HF_MODEL_TYPE, "dtype": "float32",
    "attention_dropout": 0.0, "attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.0,
    "initializer_range": 0.02, "num_pooler_layers": 3, "pred_zero_init_mask_tokens": True,
}
_INT_KEYS = ("crop_size", "frames_per_clip", "tubelet_size", "patch_size", "in_chans",
             "hidden_size", "num_attention_heads", "num_hidden_layers", "pred_hidden_size",
             "pred_num_attention_heads", "pred_num_hidden_layers", "pred_num_mask_tokens")

_TOP_NAMES = {
    "encoder": {"patch_embed.proj": "encoder.embeddings.patch_embeddings.proj",
                "norm": "encoder.layernorm", "blocks": "encoder.layer"},
    "predictor": {"predictor_embed": "predictor.embeddings.predictor_embeddings",
                  "predictor_norm": "predictor.layernorm", "predictor_proj": "predictor.proj",
                  "predictor_blocks": "predictor.layer"},
}
_BLOCK_NAMES = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.proj",
                "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_QKV = ("query", "key", "value")


# --------------------------------------------------------------------------- key mapping


def hf_sources(key: str, part: str) -> list[str]:
    """The transformers keys that one of our state-dict keys is made of.

    Args:
        key: a key of our ``VideoViT`` (``part="encoder"``) or ``MaskedPredictor``
            (``part="predictor"``) state dict, e.g. ``blocks.0.attn.qkv.weight``.
        part: ``"encoder"`` or ``"predictor"``.

    Returns:
        three keys (query, key, value) for a fused ``attn.qkv`` tensor, :data:`MASK_TOKENS` for
        ``mask_tokens.j``, else the one renamed key.

    Raises:
        CheckpointError: a key with no transformers counterpart (e.g. a sin-cos ``pos_embed``).
    """
    names = _TOP_NAMES[part]
    if part == "predictor" and key.startswith("mask_tokens."):
        return [MASK_TOKENS]
    head, _, rest = key.partition(".")
    module, _, leaf = key.rpartition(".")
    if head in ("blocks", "predictor_blocks"):
        index, _, inner = rest.partition(".")
        module = inner.rpartition(".")[0]
        base = f"{names[head]}.{index}"
        if module == "attn.qkv":
            return [f"{base}.attention.{name}.{leaf}" for name in _QKV]
        if module in _BLOCK_NAMES:
            return [f"{base}.{_BLOCK_NAMES[module]}.{leaf}"]
    elif module in names:
        return [f"{names[module]}.{leaf}"]
    raise CheckpointError(f"{part} tensor {key!r} has no transformers VJEPA2Model counterpart")


def to_hf(state: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """Our ``encoder`` / ``predictor`` state dict under transformers' names: qkv ``[3D, D]``
    split into three ``[D, D]`` views, mask tokens ``n x [1, 1, Dp]`` stacked to
    ``[n, 1, 1, Dp]``."""
    out: dict[str, torch.Tensor] = {}
    tokens = []
    for key, value in state.items():
        sources = hf_sources(key, part)
        if sources == [MASK_TOKENS]:
            tokens.append((int(key.split(".")[1]), value))
        elif len(sources) == len(_QKV):
            out.update(zip(sources, value.chunk(len(_QKV), dim=0), strict=True))
        else:
            out[sources[0]] = value
    if tokens:
        out[MASK_TOKENS] = torch.stack([value for _, value in sorted(tokens)])
    return out


def from_hf(state: dict[str, torch.Tensor], module: nn.Module,
            part: str) -> dict[str, torch.Tensor]:
    """The tensors of ``module`` (our ``part``) taken from a transformers state dict whose keys
    were checked against :func:`to_hf` (see :func:`load_hf`)."""
    out = {}
    for key in module.state_dict():
        sources = hf_sources(key, part)
        if sources == [MASK_TOKENS]:
            out[key] = state[MASK_TOKENS][int(key.split(".")[1])]
        elif len(sources) == len(_QKV):
            out[key] = torch.cat([state[name] for name in sources], dim=0)
        else:
            out[key] = state[sources[0]]
    return out


# --------------------------------------------------------------------------- configs


def hf_folder(path: str | Path) -> Path | None:
    """The folder of the transformers V-JEPA 2 checkpoint ``path`` names (the folder, or a
    ``.safetensors`` file beside its ``config.json``), or None when it is no such checkpoint."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent if path.suffix == ".safetensors" else None
    if folder is None or not (folder / CONFIG_FILE).is_file():
        return None
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return folder if isinstance(config, dict) and config.get("model_type") == HF_MODEL_TYPE \
        else None


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{folder / CONFIG_FILE}: unreadable JSON config ({err})") from err
    if not isinstance(config, dict) or config.get("model_type") != HF_MODEL_TYPE:
        raise CheckpointError(f"{folder / CONFIG_FILE}: not a transformers V-JEPA 2 config "
                              f"(needs \"model_type\": \"{HF_MODEL_TYPE}\")")
    archs = config.get("architectures") or [HF_ARCHITECTURE]
    if HF_ARCHITECTURE not in archs:
        raise CheckpointError(f"{folder}: architectures {archs} are not supported: only "
                              f"{HF_ARCHITECTURE} folders (encoder + predictor) load here")
    return config


def _settings(config: dict[str, Any], where: Path, notes: list[str]) -> dict[str, Any]:
    """The architecture keys of a transformers config, defaults filled in (and noted), checked
    for what our modules can express."""
    values = {}
    for key, default in HF_DEFAULTS.items():
        if key not in config:
            notes.append(f"config.json has no {key!r}: transformers' default {default!r} assumed")
        values[key] = config.get(key, default)

    def unsupported(what: str) -> CheckpointError:
        return CheckpointError(f"{where}: unsupported transformers config: {what}")

    for key in _INT_KEYS:
        if not isinstance(values[key], int) or isinstance(values[key], bool) or values[key] < 0:
            raise unsupported(f"{key}={values[key]!r}, expected a non-negative integer "
                              f"(one size for height and width)")
    if values["hidden_act"] != "gelu":
        raise unsupported(f"hidden_act={values['hidden_act']!r}; our MLP blocks use exact 'gelu'")
    if values["crop_size"] % values["patch_size"]:
        raise unsupported(f"crop_size {values['crop_size']} is not a multiple of patch_size "
                          f"{values['patch_size']}")
    if values["tubelet_size"] < 1 or values["frames_per_clip"] % values["tubelet_size"]:
        raise unsupported(f"frames_per_clip {values['frames_per_clip']} is not a multiple of "
                          f"tubelet_size {values['tubelet_size']} (the patch size in time)")
    for prefix in ("", "pred_"):
        width = values[f"{prefix}hidden_size"]
        heads = values[f"{prefix}num_attention_heads"]
        if heads < 1 or width % heads or rope_chunk_dim(width // heads) == 0:
            raise unsupported(f"{prefix}hidden_size {width} with {heads} heads: needs a head "
                              f"width that divides it and is >= 6 for 3D-RoPE")
    if values["pred_num_mask_tokens"] < 1:
        raise unsupported("pred_num_mask_tokens must be >= 1")
    return values


def our_configs(config: dict[str, Any], where: Path,
                notes: list[str]) -> tuple[EncoderConfig, PredictorConfig]:
    """Our encoder and predictor configs for a transformers ``VJEPA2Config`` dict."""
    v = _settings(config, where, notes)
    grid = dict(img_size=v["crop_size"], patch_size=v["patch_size"],
                num_frames=v["frames_per_clip"], tubelet_size=v["tubelet_size"])
    common = dict(qkv_bias=bool(v["qkv_bias"]), pos_embed="rope",
                  norm_eps=float(v["layer_norm_eps"]))
    encoder = EncoderConfig(
        **grid, **common, in_chans=v["in_chans"], embed_dim=v["hidden_size"],
        depth=v["num_hidden_layers"], num_heads=v["num_attention_heads"],
        mlp_hidden_dim=int(v["hidden_size"] * v["mlp_ratio"]))
    predictor = PredictorConfig(
        **grid, **common, embed_dim=v["hidden_size"], predictor_dim=v["pred_hidden_size"],
        depth=v["pred_num_hidden_layers"], num_heads=v["pred_num_attention_heads"],
        mlp_hidden_dim=int(v["pred_hidden_size"] * v["pred_mlp_ratio"]),
        num_mask_tokens=v["pred_num_mask_tokens"])
    return encoder, predictor


def hf_config(encoder: EncoderConfig, predictor: PredictorConfig | None) -> dict[str, Any]:
    """The transformers ``config.json`` for our RoPE encoder (+ masked predictor) configs.

    Raises:
        CheckpointError: something ``VJEPA2Config`` cannot express (sin-cos positions, no time
            positions, a non-square image, an MLP width that is no ``int(width * ratio)``, a
            predictor on another grid / LayerNorm epsilon / qkv bias than its encoder).
    """
    if encoder.pos_embed != "rope":
        raise CheckpointError(_SINCOS_MESSAGE)
    if not encoder.time_positions:
        raise CheckpointError("the encoder has no time positions (time_positions=False): "
                              "transformers' VJEPA2 always rotates by time; export an encoder "
                              "trained with them")
    height, width = as_pair(encoder.img_size)
    if height != width:
        raise CheckpointError(f"img_size {(height, width)}: transformers' VJEPA2Config has one "
                              f"square crop_size; export a square encoder")
    config = dict(_EXPORT_EXTRAS, crop_size=height, frames_per_clip=encoder.num_frames,
                  tubelet_size=encoder.tubelet_size, patch_size=encoder.patch_size,
                  in_chans=encoder.in_chans, hidden_size=encoder.embed_dim,
                  num_attention_heads=encoder.num_heads, num_hidden_layers=encoder.depth,
                  mlp_ratio=_mlp_ratio(encoder.embed_dim, encoder.mlp_hidden_dim, "encoder"),
                  layer_norm_eps=encoder.norm_eps, qkv_bias=encoder.qkv_bias, hidden_act="gelu")
    if predictor is None:
        return config
    for name in ("img_size", "patch_size", "num_frames", "tubelet_size", "embed_dim", "norm_eps",
                 "qkv_bias", "pos_embed"):
        ours, theirs = getattr(predictor, name), getattr(encoder, name)
        if name == "img_size":
            ours, theirs = as_pair(ours), as_pair(theirs)
        if ours != theirs:
            raise CheckpointError(f"predictor {name}={ours!r} but encoder {name}={theirs!r}: "
                                  f"transformers' VJEPA2Config has one value for both")
    return dict(config, pred_hidden_size=predictor.predictor_dim,
                pred_num_attention_heads=predictor.num_heads,
                pred_num_hidden_layers=predictor.depth,
                pred_num_mask_tokens=predictor.num_mask_tokens,
                pred_mlp_ratio=_mlp_ratio(predictor.predictor_dim, predictor.mlp_hidden_dim,
                                          "predictor"))


def _mlp_ratio(width: int, hidden: int, what: str) -> float:
    ratio = hidden / width
    if int(width * ratio) != hidden:
        raise CheckpointError(f"{what} MLP width {hidden} is not int({width} * ratio) for any "
                              f"float ratio, which is how transformers sizes it")
    return ratio


_SINCOS_MESSAGE = ("a sin-cos (V-JEPA 1, pos_embed='sincos') encoder has no transformers "
                   "counterpart: VJEPA2Model uses 3D-RoPE; pretrain with model.pos_embed='rope' "
                   "to export to transformers, or save it in this project's format")


# --------------------------------------------------------------------------- load / save


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of the folder: ``model.safetensors``, or the shards its index lists."""
    files = [folder / WEIGHTS_FILE]
    if not files[0].is_file() and (folder / INDEX_FILE).is_file():
        try:
            weight_map = json.loads((folder / INDEX_FILE).read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointError(f"{folder / INDEX_FILE}: unreadable shard index ({err})") from err
        if any(Path(name).name != name for name in names):
            raise CheckpointError(f"{folder / INDEX_FILE}: shard names must be plain file names")
        files = [folder / name for name in names]
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            state.update(load_file(str(file)))
        except (OSError, SafetensorError) as err:
            raise CheckpointError(f"{file}: not a readable safetensors file ({err}); a "
                                  f"transformers folder needs {WEIGHTS_FILE} or {INDEX_FILE}"
                                  ) from err
    return state


def load_hf(path: str | Path) -> Pretrained:
    """Build our RoPE ``VideoViT`` (+ ``MaskedPredictor``) from a transformers ``VJEPA2Model``
    folder (or its ``model.safetensors``) and load its weights strictly.

    Returns:
        :class:`~jepa_world.checkpoints.Pretrained` with ``format`` :data:`HF_FORMAT`, the model
        in ``encoder`` (``target_encoder`` is None), the predictor in ``predictor`` (None for a
        folder without ``predictor.*`` tensors) and the transformers config in
        ``metadata["transformers_config"]``.

    Raises:
        CheckpointError: no such folder, unreadable files, unsupported config values, or
            missing / unexpected / mis-shaped tensors (named by their transformers keys).
    """
    folder = hf_folder(path)
    if folder is None:
        raise CheckpointError(f"{path}: not a transformers V-JEPA 2 folder (needs {CONFIG_FILE} "
                              f"with \"model_type\": \"{HF_MODEL_TYPE}\" and {WEIGHTS_FILE})")
    config, notes = _read_config(folder), []
    enc_cfg, pred_cfg = our_configs(config, folder, notes)
    state = _read_weights(folder)
    if not any(key.startswith("predictor.") for key in state):
        notes.append(f"{folder}: no predictor.* tensors; the encoder alone was loaded")
        pred_cfg = None
    modules = {"encoder": build_uninitialised(build_encoder, enc_cfg),
               "predictor": None if pred_cfg is None else
               build_uninitialised(build_predictor, pred_cfg)}
    expected: dict[str, torch.Tensor] = {}
    for part, module in modules.items():
        if module is not None:
            expected.update(to_hf(module.state_dict(), part))
    check_state(expected, state, f"{folder} (transformers keys)")
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values()} - {"float32"})
    if dtypes:
        notes.append(f"{folder}: {dtypes} tensors were cast to float32")
    for part, module in modules.items():
        if module is not None:
            load_strict(module, from_hf(state, module, part), f"{folder}[{part}]", {}, notes)
    ours = {"encoder": config_to_dict(enc_cfg),
            "predictor_type": "masked" if pred_cfg is not None else None,
            "predictor": config_to_dict(pred_cfg) if pred_cfg is not None else None}
    return Pretrained(modules["encoder"], None, modules["predictor"], HF_FORMAT, ours, notes,
                      {"transformers_config": config})


def save_hf(pretrained: Pretrained, directory: str | Path) -> Path:
    """Write ``pretrained`` as a folder ``transformers.VJEPA2Model.from_pretrained`` loads.

    The ``target_encoder`` is written when there is one (V-JEPA's evaluation encoder, the one
    the probes use), else the ``encoder``; a masked predictor goes with it. Without a predictor
    the folder holds the encoder alone (transformers then starts its predictor at random and
    says so). Weights are float32 safetensors, both files written atomically.

    Raises:
        CheckpointError: a sin-cos (V-JEPA 1) encoder, an action-conditioned predictor, no
            encoder or config, or a config ``VJEPA2Config`` cannot express (see
            :func:`hf_config`).
    """
    from jepa_world.models.encoder import VideoViT
    from jepa_world.models.predictor import MaskedPredictor

    encoder = pretrained.target_encoder if pretrained.target_encoder is not None \
        else pretrained.encoder
    if not isinstance(encoder, VideoViT) or not pretrained.config.get("encoder"):
        raise CheckpointError("nothing to export: the bundle needs a VideoViT encoder and its "
                              "config['encoder']")
    if not encoder.use_rope:
        raise CheckpointError(_SINCOS_MESSAGE)
    predictor = pretrained.predictor
    if predictor is not None and not isinstance(predictor, MaskedPredictor):
        raise CheckpointError(f"a {type(predictor).__name__} has no transformers counterpart "
                              f"(VJEPA2Model has a masked predictor only); export the encoder "
                              f"alone: Pretrained(encoder, None, None, ...)")
    try:
        enc_cfg = config_from_dict(EncoderConfig, pretrained.config["encoder"])
        pred_cfg = config_from_dict(PredictorConfig, pretrained.config["predictor"]) \
            if predictor is not None else None
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"the bundle's config does not describe its modules ({err})") \
            from err
    tensors = to_hf(encoder.state_dict(), "encoder")
    if predictor is not None:
        tensors.update(to_hf(predictor.state_dict(), "predictor"))
    tensors = {k: v.float() for k, v in tensors.items()}
    return save_tensors(tensors, hf_config(enc_cfg, pred_cfg), directory,
                        metadata={"format": "pt"})


@torch.no_grad()
def predict_targets(encoder: nn.Module, predictor: nn.Module, video: torch.Tensor,
                    context_idx: torch.Tensor, target_idx: torch.Tensor,
                    mask_index: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``VJEPA2Model(pixel_values_videos, context_mask=[c], target_mask=[t])`` computes.

    Args:
        encoder: our ``VideoViT``.
        predictor: our ``MaskedPredictor``.
        video: ``[B, C, T, H, W]`` (transformers takes ``[B, T, C, H, W]``).
        context_idx: ``[B, K]`` token indices the predictor sees.
        target_idx: ``[B, M]`` token indices to predict.
        mask_index: mask token (transformers uses 1).

    Returns:
        ``(last_hidden_state [B, N, D], predictor_output [B, M, D])``: the whole clip encoded,
        then the context tokens of that output fed to the predictor (no gradients).
    """
    tokens = encoder(video)  # [B, N, D]
    context = gather_tokens(tokens, context_idx.long().to(tokens.device))  # [B, K, D]
    return tokens, predictor(context, context_idx, target_idx, mask_index=mask_index)


__all__ = ["HF_DEFAULTS", "HF_FORMAT", "from_hf", "hf_config", "hf_folder", "hf_sources",
           "load_hf", "our_configs", "predict_targets", "save_hf", "to_hf"]
