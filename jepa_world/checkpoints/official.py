"""Read checkpoints saved by Meta's official V-JEPA / V-JEPA 2 / V-JEPA 2-AC code.

Those are ``torch.save`` dicts with keys ``encoder``, ``target_encoder``, ``predictor`` (weights
prefixed ``module.backbone.``, stripped here), or a bare encoder state dict. :func:`load_official`
builds this project's modules from them and loads the weights strictly; it is what
:func:`jepa_world.checkpoints.load_pretrained` calls for files.

What is read FROM THE TENSORS: encoder width, input channels, tubelet and patch size (Conv3d
kernel), depth (block count), MLP width, qkv bias; predictor width, depth, MLP width, number of
mask tokens; sin-cos vs RoPE (a predictor with ``predictor_pos_embed`` is V-JEPA, one without is
V-JEPA 2, one with ``action_encoder`` is V-JEPA 2-AC); action/state sizes; for sin-cos models
also ``uniform_power`` (by matching the stored table) and, when unambiguous, the grid.

What tensors cannot say: the number of attention heads, and the image size / clip length (a
RoPE model has no table; a sin-cos table of N tokens fits several grids). These come from, in
order: keyword overrides, a config (a dict or JSON path in the official constructor-argument
layout ``{"encoder": {...}, "predictor": {...}, "ac_predictor": {...}, "layer_norm_eps": ...}``,
or ``<checkpoint>.json`` / ``<checkpoint stem>_config.json`` next to the file), then the official
defaults (heads by width: 1024 -> 16, 1280 -> 16, 1408 -> 22, ...; 224 px for sin-cos, 256 px for
RoPE, 16 frames). Every default that was assumed is written to ``Pretrained.notes``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jepa_world.checkpoints.format import (
    MODULE_NAMES,
    CheckpointError,
    Pretrained,
    load_strict,
    short_list,
    torch_load_weights_only,
)
from jepa_world.models.positions import as_pair, sincos_3d_table
from jepa_world.models.presets import (
    ACPredictorConfig,
    EncoderConfig,
    PredictorConfig,
    build_encoder,
    build_predictor,
    config_to_dict,
)

HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 22, 1664: 26}
OVERRIDES = ("num_heads", "predictor_num_heads", "img_size", "num_frames", "use_extrinsics",
             "pos_embed", "norm_eps")


def check_overrides(overrides: dict[str, Any]) -> None:
    """Raise ``TypeError`` for keyword overrides that :func:`load_official` does not know."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"unknown overrides {unknown}; allowed: {list(OVERRIDES)}")


def load_official(
    path: str | Path, config: dict[str, Any] | str | Path | None = None, **overrides: Any
) -> Pretrained:
    """Build modules from an official V-JEPA / V-JEPA 2 / 2-AC file and load its weights strictly.

    Args:
        path: official ``.pt`` file or a bare encoder state dict saved with ``torch.save``.
        config: optional official constructor arguments (dict or JSON path), see module doc.
        **overrides: ``num_heads``, ``predictor_num_heads``, ``img_size``, ``num_frames``,
            ``use_extrinsics``, ``pos_embed`` (``"rope"``/``"sincos"``, bare encoders only),
            ``norm_eps``.

    Returns:
        :class:`~jepa_world.checkpoints.Pretrained` with ``format`` ``"vjepa1"``, ``"vjepa2"``,
        ``"vjepa2_ac"`` or ``"encoder"``.

    Raises:
        CheckpointError: missing/corrupt file, unknown layout, missing or unexpected keys, shape
            mismatches, or architecture values that cannot be determined.
        TypeError: unknown override names.
    """
    check_overrides(overrides)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    official_cfg = _read_config(path, config)
    parts, metadata = _split_checkpoint(path, torch_load_weights_only(path))
    ctx = _Context(path, official_cfg, overrides, [])
    return _build_official(ctx, parts, metadata)


# --------------------------------------------------------------------------- reading


@dataclass
class _Context:
    """One load: the file, its official config, the keyword overrides and the notes so far."""

    path: Path
    cfg: dict[str, Any]
    overrides: dict[str, Any]
    notes: list[str]

    def section(self, name: str) -> dict[str, Any]:
        value = self.cfg.get(name) or {}
        return value if isinstance(value, dict) else {}

    def pick(self, key: str, section: str, cfg_key: str | None = None) -> Any:
        if self.overrides.get(key) is not None:
            return self.overrides[key]
        return self.section(section).get(cfg_key or key)

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {message}")


def _read_config(path: Path, config: dict[str, Any] | str | Path | None) -> dict[str, Any]:
    if isinstance(config, dict):
        return config
    candidates = [Path(config)] if config is not None else [
        path.with_suffix(".json"), path.with_name(f"{path.stem}_config.json")]
    for candidate in candidates:
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except ValueError as err:
                raise CheckpointError(f"{candidate}: invalid JSON config ({err})") from err
            if not isinstance(data, dict):
                raise CheckpointError(f"{candidate}: config must be a JSON object")
            return data
    if config is not None:
        raise CheckpointError(f"{config}: config file not found")
    return {}


def _strip(state: dict[str, Any], path: Path, name: str) -> dict[str, torch.Tensor]:
    """Check every entry is a tensor; drop wrapper prefixes (``module.``, ``backbone.``)."""
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {name}[{key!r}] is not a tensor")
        out[re.sub(r"^(module\.|backbone\.)+", "", key)] = value
    return out


def _split_checkpoint(path: Path, obj: Any) -> tuple[dict[str, dict], dict[str, Any]]:
    """Detect the layout: ``({part: stripped weights}, metadata)`` or CheckpointError."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(obj).__name__}")
    names = MODULE_NAMES
    if any(isinstance(obj.get(n), dict) for n in names):
        parts = {n: _strip(obj[n], path, n) for n in names if isinstance(obj.get(n), dict)}
        metadata = {k: v for k, v in obj.items() if k not in names and not isinstance(v, dict)}
        return parts, metadata
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        flat = _strip(obj, path, "state_dict")
        if "patch_embed.proj.weight" in flat:
            return {"encoder": flat}, {}
    raise CheckpointError(
        f"{path}: not a V-JEPA checkpoint: expected 'encoder'/'target_encoder'/'predictor' "
        f"weight dicts or an encoder state dict, found keys {short_list(list(obj)[:10])}"
    )


# --------------------------------------------------------------------------- inference


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)(\.|$)")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _require(ctx: _Context, state: dict[str, torch.Tensor], key: str, part: str) -> torch.Tensor:
    if key not in state:
        raise ctx.fail(f"{part} weights lack {key!r}; keys start {short_list(list(state)[:8])}")
    return state[key]


def _heads(ctx: _Context, value: Any, width: int, what: str, fallback: int | None) -> int:
    if value is None:
        value = fallback if fallback is not None else HEADS_BY_WIDTH.get(width)
        if value is None or width % value:
            raise ctx.fail(f"cannot infer {what} heads for width {width}; pass a config or "
                           f"{'num_heads' if what == 'encoder' else 'predictor_num_heads'}=")
        ctx.notes.append(f"{what} num_heads={value} assumed (not stored in tensors)")
    if width % int(value):
        raise ctx.fail(f"{what} width {width} is not divisible by num_heads={value}")
    return int(value)


def _grid_guess(ctx: _Context, table: torch.Tensor | None, patch: int, tub: int, rope: bool):
    img, frames = ctx.pick("img_size", "encoder"), ctx.pick("num_frames", "encoder")
    if img is not None and frames is not None:
        return img, frames
    n = table.shape[1] if table is not None else None
    defaults = (256, 224, 384) if rope else (224, 256, 384)
    cand_frames = frames or 16
    for cand_img in [img] if img is not None else defaults:
        h, w = as_pair(cand_img)
        if n is None or (cand_frames // tub) * (h // patch) * (w // patch) == n:
            ctx.notes.append(f"img_size={cand_img}, num_frames={cand_frames} assumed "
                             "(official defaults); pass a config to be sure")
            return cand_img, cand_frames
    raise ctx.fail(f"cannot infer img_size/num_frames from a position table of {n} tokens; "
                   "pass config=... or img_size=..., num_frames=...")


def _uniform_power(ctx, table: torch.Tensor | None, grid: tuple[int, int, int], sec: str) -> bool:
    configured = ctx.section(sec).get("uniform_power")
    if table is None:
        return bool(configured)
    for flag in (True, False):
        ref = sincos_3d_table(table.shape[-1], *grid, uniform_power=flag)
        if ref.shape == table.shape[1:] and torch.allclose(ref, table[0].float(), atol=1e-5):
            return flag
    ctx.notes.append(f"{sec} position table is not a standard sin-cos table; loaded as stored")
    return bool(configured)


def _encoder_config(ctx: _Context, state: dict[str, torch.Tensor], rope: bool) -> EncoderConfig:
    w = _require(ctx, state, "patch_embed.proj.weight", "encoder")
    if w.dim() != 5:
        raise ctx.fail(f"patch_embed.proj.weight is {tuple(w.shape)}; only Conv3d tubelet "
                       "embeddings [D, C, t, p, p] are supported")
    if "blocks.0.mlp.fc3.weight" in state:
        raise ctx.fail("SwiGLU MLP blocks (use_silu=True) are not supported")
    width, chans, tub, patch = w.shape[0], w.shape[1], w.shape[2], w.shape[3]
    sec = ctx.section("encoder")
    for key, value in (("embed_dim", width), ("patch_size", patch), ("tubelet_size", tub),
                       ("depth", _count(state, "blocks"))):
        if sec.get(key) is not None and sec[key] != value:
            raise ctx.fail(f"config says encoder {key}={sec[key]} but the tensors give {value}")
    table = state.get("pos_embed")
    img, frames = _grid_guess(ctx, table, patch, tub, rope)
    img = tuple(img) if isinstance(img, (list, tuple)) else int(img)
    grid = (frames // tub, as_pair(img)[0] // patch, as_pair(img)[1] // patch)
    if not rope and table is not None and table.shape[1] != grid[0] * grid[1] * grid[2]:
        raise ctx.fail(f"pos_embed has {table.shape[1]} tokens, grid {grid} needs "
                       f"{grid[0] * grid[1] * grid[2]}")
    return EncoderConfig(
        img_size=img, patch_size=patch, num_frames=frames, tubelet_size=tub, in_chans=chans,
        embed_dim=width, depth=_count(state, "blocks"),
        num_heads=_heads(ctx, ctx.pick("num_heads", "encoder"), width, "encoder", None),
        mlp_hidden_dim=_require(ctx, state, "blocks.0.mlp.fc1.weight", "encoder").shape[0],
        qkv_bias="blocks.0.attn.qkv.bias" in state, pos_embed="rope" if rope else "sincos",
        uniform_power=_uniform_power(ctx, None if rope else table, grid, "encoder"),
        norm_eps=_norm_eps(ctx),
    )


def _norm_eps(ctx: _Context) -> float:
    return float(ctx.overrides.get("norm_eps") or ctx.cfg.get("layer_norm_eps") or 1e-6)


def _predictor_config(ctx, state, enc: EncoderConfig, rope: bool) -> PredictorConfig:
    embed = _require(ctx, state, "predictor_embed.weight", "predictor")
    if embed.shape[1] != enc.embed_dim:
        raise ctx.fail(f"predictor input width {embed.shape[1]} != encoder width {enc.embed_dim}")
    num_mask = _count(state, "mask_tokens")
    if num_mask == 0:
        raise ctx.fail("predictor has no mask_tokens (diffusion variant): not supported")
    dim = embed.shape[0]
    fallback = 12 if rope and dim == 384 else enc.num_heads
    heads = _heads(ctx, ctx.pick("predictor_num_heads", "predictor", "num_heads"), dim,
                   "predictor", fallback)
    grid = dict(img_size=enc.img_size, patch_size=enc.patch_size, num_frames=enc.num_frames,
                tubelet_size=enc.tubelet_size)
    img_h, img_w = as_pair(enc.img_size)
    pgrid = (enc.num_frames // enc.tubelet_size, img_h // enc.patch_size, img_w // enc.patch_size)
    return PredictorConfig(
        **grid, embed_dim=enc.embed_dim, predictor_dim=dim,
        depth=_count(state, "predictor_blocks"), num_heads=heads,
        mlp_hidden_dim=_require(ctx, state, "predictor_blocks.0.mlp.fc1.weight", "predictor")
        .shape[0], qkv_bias="predictor_blocks.0.attn.qkv.bias" in state,
        num_mask_tokens=num_mask, pos_embed="rope" if rope else "sincos",
        uniform_power=_uniform_power(ctx, state.get("predictor_pos_embed"), pgrid, "predictor"),
        norm_eps=_norm_eps(ctx),
    )


def _ac_config(ctx, state, enc: EncoderConfig) -> ACPredictorConfig:
    embed = _require(ctx, state, "predictor_embed.weight", "predictor")
    dim, sec = embed.shape[0], ctx.section("ac_predictor")
    use_ext = ctx.overrides.get("use_extrinsics")
    use_ext = bool(sec.get("use_extrinsics", False)) if use_ext is None else bool(use_ext)
    heads = ctx.overrides.get("predictor_num_heads") or sec.get("num_heads")
    ext = state.get("extrinsics_encoder.weight")
    return ACPredictorConfig(
        img_size=ctx.pick("img_size", "ac_predictor") or enc.img_size,
        patch_size=sec.get("patch_size") or enc.patch_size,
        num_frames=ctx.pick("num_frames", "ac_predictor") or enc.num_frames,
        tubelet_size=sec.get("tubelet_size") or enc.tubelet_size,
        embed_dim=embed.shape[1], predictor_dim=dim,
        depth=_count(state, "predictor_blocks"),
        num_heads=_heads(ctx, heads, dim, "AC predictor", 16 if dim == 1024 else enc.num_heads),
        mlp_hidden_dim=_require(ctx, state, "predictor_blocks.0.mlp.fc1.weight", "predictor")
        .shape[0], qkv_bias="predictor_blocks.0.attn.qkv.bias" in state,
        action_dim=state["action_encoder.weight"].shape[1],
        state_dim=_require(ctx, state, "state_encoder.weight", "predictor").shape[1],
        use_extrinsics=use_ext,
        extrinsics_dim=ext.shape[1] if ext is not None else 6,
        is_frame_causal=bool(sec.get("is_frame_causal", True)), norm_eps=_norm_eps(ctx),
    )


# --------------------------------------------------------------------------- building


def _build_official(ctx: _Context, parts: dict[str, dict], metadata: dict) -> Pretrained:
    pred_state = parts.get("predictor")
    enc_state = parts.get("encoder") or parts.get("target_encoder")
    if enc_state is None:
        raise ctx.fail("no encoder weights ('encoder' or 'target_encoder') to size the model")
    if pred_state is not None and "action_encoder.weight" in pred_state:
        fmt, rope = "vjepa2_ac", True
    elif pred_state is not None:
        rope = "predictor_pos_embed" not in pred_state
        fmt = "vjepa2" if rope else "vjepa1"
    else:
        choice = ctx.overrides.get("pos_embed")
        if choice is None:
            choice = "rope" if ctx.section("encoder").get("use_rope") else (
                "sincos" if "pos_embed" in enc_state else "rope")
            ctx.notes.append(f"encoder-only checkpoint: pos_embed={choice!r} assumed")
        fmt, rope = "encoder", choice == "rope"

    enc_cfg = _encoder_config(ctx, enc_state, rope)
    harmless = {"pos_embed": "unused pos_embed of a RoPE checkpoint ignored"} if rope else {}
    modules: dict[str, nn.Module | None] = {"encoder": None, "target_encoder": None}
    for name in modules:
        if name in parts:
            modules[name] = build_encoder(enc_cfg)
            load_strict(modules[name], parts[name], f"{ctx.path}[{name}]", harmless, ctx.notes)

    predictor, pred_cfg, pred_type = None, None, None
    if pred_state is not None:
        if fmt == "vjepa2_ac":
            pred_cfg, pred_type = _ac_config(ctx, pred_state, enc_cfg), "ac"
            harmless = {} if pred_cfg.use_extrinsics else {
                "extrinsics_encoder.weight": "unused extrinsics_encoder (use_extrinsics=False)",
                "extrinsics_encoder.bias": "unused extrinsics_encoder (use_extrinsics=False)"}
        else:
            pred_cfg, pred_type, harmless = _predictor_config(ctx, pred_state, enc_cfg, rope), \
                "masked", {}
        predictor = build_predictor(pred_cfg)
        load_strict(predictor, pred_state, f"{ctx.path}[predictor]", harmless, ctx.notes)

    config = {"encoder": config_to_dict(enc_cfg), "predictor_type": pred_type,
              "predictor": config_to_dict(pred_cfg) if pred_cfg is not None else None}
    return Pretrained(modules["encoder"], modules["target_encoder"], predictor, fmt, config,
                      ctx.notes, metadata)


__all__ = ["HEADS_BY_WIDTH", "OVERRIDES", "check_overrides", "load_official"]
