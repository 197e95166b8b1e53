"""Architecture presets as dataclasses, plus builders that turn them into modules.

Every config is a plain dataclass whose fields are exactly the keyword arguments of the matching
module (``VideoViT``, ``MaskedPredictor``, ``ACPredictor``), so ``dataclasses.asdict(cfg)`` is the
JSON config stored next to saved weights.

Presets:

* ``tiny``  - CPU default: 64 px, patch 8, 8 frames (4 x 8 x 8 = 256 tokens), width 192, depth 4,
  3 heads, sin-cos positions (V-JEPA); predictor width 96, depth 4; AC predictor width 192,
  depth 4. Absolute positions, not RoPE: pretraining on the reach data (a thin arm on a plain
  background, where a RoPE token's own input says nothing of where it is) only beats random init
  with them (docs/pretraining.md, "Does pretraining learn?").
* ``vit_l`` - V-JEPA ViT-L/16 (1024 / 24 / 16), 224 px, 16 frames, sin-cos positions;
  predictor 384 / 12.
* ``vit_h`` - V-JEPA ViT-H/16 (1280 / 32 / 16), same layout as ``vit_l``.
* ``vit_g`` - V-JEPA 2 ViT-g/16 (1408 / 40 / 22, MLP 6144), 256 px, 3D-RoPE; predictor 384 / 12
  with 12 heads; AC predictor 1024 / 24 / 16 (V-JEPA 2-AC).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import nn

ENCODER_KINDS = ("vit", "conv")


@dataclass
class EncoderConfig:
    """Arguments of :class:`~jepa_world.models.encoder.VideoViT` (``kind="vit"``), or with
    ``kind="conv"`` of a world model's :class:`~jepa_world.models.conv_encoder.ConvEncoder`:
    ``img_size``, ``patch_size``, ``in_chans``, ``embed_dim`` and ``conv_channels`` (the
    transformer fields are not used)."""

    kind: str = "vit"
    img_size: int | tuple[int, int] = 64
    patch_size: int = 8
    num_frames: int = 8
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 192
    depth: int = 4
    num_heads: int = 3
    mlp_hidden_dim: int = 768
    qkv_bias: bool = True
    pos_embed: str = "rope"  # "rope" (V-JEPA 2) or "sincos" (V-JEPA)
    uniform_power: bool = False
    time_positions: bool = True  #: ``False``: no time coordinate in the encoder's positions
    norm_eps: float = 1e-6
    use_activation_checkpointing: bool = False
    conv_channels: tuple[int, ...] = (32, 64, 128)  #: ``kind="conv"``: the stride-2 stages

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"EncoderConfig.kind must be one of {ENCODER_KINDS}, got "
                             f"{self.kind!r}")
        self.conv_channels = tuple(int(c) for c in self.conv_channels)


@dataclass
class PredictorConfig:
    """Arguments of :class:`~jepa_world.models.predictor.MaskedPredictor`."""

    img_size: int | tuple[int, int] = 64
    patch_size: int = 8
    num_frames: int = 8
    tubelet_size: int = 2
    embed_dim: int = 192
    predictor_dim: int = 96
    depth: int = 4
    num_heads: int = 3
    mlp_hidden_dim: int = 384
    qkv_bias: bool = True
    num_mask_tokens: int = 2
    pos_embed: str = "rope"
    uniform_power: bool = False
    norm_eps: float = 1e-6
    use_activation_checkpointing: bool = False


@dataclass
class ACPredictorConfig:
    """Arguments of :class:`~jepa_world.models.ac_predictor.ACPredictor`."""

    img_size: int | tuple[int, int] = 64
    patch_size: int = 8
    num_frames: int = 8
    tubelet_size: int = 2
    embed_dim: int = 192
    predictor_dim: int = 192
    depth: int = 4
    num_heads: int = 3
    mlp_hidden_dim: int = 768
    qkv_bias: bool = True
    action_dim: int = 7
    state_dim: int = 7
    use_extrinsics: bool = False
    extrinsics_dim: int = 6
    is_frame_causal: bool = True
    norm_eps: float = 1e-6
    use_activation_checkpointing: bool = False
    attention_window: int | None = None
    conditioning: str = "tokens"


@dataclass
class Preset:
    """An encoder with its matching masked predictor and action-conditioned predictor."""

    encoder: EncoderConfig
    predictor: PredictorConfig
    ac_predictor: ACPredictorConfig = field(default_factory=ACPredictorConfig)


def _official(
    width: int, depth: int, heads: int, mlp: int, img: int, pos: str, pred_heads: int
) -> Preset:
    grid = dict(img_size=img, patch_size=16, num_frames=16, tubelet_size=2)
    return Preset(
        encoder=EncoderConfig(
            **grid, embed_dim=width, depth=depth, num_heads=heads, mlp_hidden_dim=mlp,
            pos_embed=pos, uniform_power=True,
        ),
        predictor=PredictorConfig(
            **grid, embed_dim=width, predictor_dim=384, depth=12, num_heads=pred_heads,
            mlp_hidden_dim=1536, pos_embed=pos, uniform_power=True,
        ),
        ac_predictor=ACPredictorConfig(
            **grid, embed_dim=width, predictor_dim=1024, depth=24, num_heads=16,
            mlp_hidden_dim=4096,
        ),
    )


PRESETS: dict[str, Preset] = {
    "tiny": Preset(encoder=EncoderConfig(pos_embed="sincos"),
                   predictor=PredictorConfig(pos_embed="sincos")),
    "vit_l": _official(1024, 24, 16, 4096, 224, "sincos", pred_heads=16),
    "vit_h": _official(1280, 32, 16, 5120, 224, "sincos", pred_heads=16),
    "vit_g": _official(1408, 40, 22, 6144, 256, "rope", pred_heads=12),
}


def get_preset(name: str) -> Preset:
    """A fresh copy of preset ``name`` (``tiny``, ``vit_l``, ``vit_h``, ``vit_g``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return dataclasses.replace(
        PRESETS[name],
        encoder=dataclasses.replace(PRESETS[name].encoder),
        predictor=dataclasses.replace(PRESETS[name].predictor),
        ac_predictor=dataclasses.replace(PRESETS[name].ac_predictor),
    )


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


#: JSON types of the simple field annotations (``from __future__`` makes them strings).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
    "int | None": (int, type(None)), "float | None": (int, float, type(None)),
    "str | None": (str, type(None)),
}


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild config ``cls`` from a dict (read from JSON), rejecting unknown keys and values of
    the wrong JSON type (``"depth": "two"``, ``"encoder": 3``) with a clear message; nested
    config fields may be given as dicts."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(names)}")
    for f in dataclasses.fields(cls):
        value = data.get(f.name)
        allowed = _JSON_TYPES.get(str(f.type))
        if str(f.type).endswith("Config") or str(f.type).endswith("Config | None"):
            allowed = (dict, type(None)) if str(f.type).endswith("None") else (dict,)
            allowed += tuple(c for c in (getattr(value, "__class__", None),)
                             if dataclasses.is_dataclass(value))
        bad_bool = isinstance(value, bool) and bool not in (allowed or (bool,))
        if f.name in data and allowed and (not isinstance(value, allowed) or bad_bool):
            raise ValueError(f"{cls.__name__}.{f.name} must be {str(f.type)!r}, got {value!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    """Instantiate a :class:`VideoViT` (or, ``kind="conv"``, a :class:`ConvEncoder`) from its
    config."""
    from jepa_world.models.conv_encoder import ConvEncoder
    from jepa_world.models.encoder import VideoViT

    if cfg.kind == "conv":
        return ConvEncoder(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim,
                           cfg.conv_channels)
    kwargs = dataclasses.asdict(cfg)
    del kwargs["kind"], kwargs["conv_channels"]
    return VideoViT(**kwargs)


def build_predictor(cfg: PredictorConfig | ACPredictorConfig) -> nn.Module:
    """Instantiate a :class:`MaskedPredictor` or :class:`ACPredictor` from its config."""
    from jepa_world.models.ac_predictor import ACPredictor
    from jepa_world.models.predictor import MaskedPredictor

    if isinstance(cfg, ACPredictorConfig):
        return ACPredictor(**dataclasses.asdict(cfg))
    return MaskedPredictor(**dataclasses.asdict(cfg))
