"""Configuration of :class:`~jepa_world.world_model.WorldModel` and its output type."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from jepa_world.models.pooling import PoolerConfig
from jepa_world.models.positions import as_pair
from jepa_world.models.presets import ACPredictorConfig, EncoderConfig, config_from_dict

FORMAT = "jepa_world.world_model"
INPUT_NORMS = ("imagenet", "none")
COST_KINDS = ("l1", "l2")
#: How :meth:`WorldModel.rollout` imagines (``WorldModelConfig.imagination``).
IMAGINATIONS = ("sliding", "cached")


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a :class:`WorldModel` (stored as ``config.json``).

    Attributes:
        encoder: the frozen ``VideoViT``.
        predictor: the ``ACPredictor``. Its fields ``embed_dim``, ``img_size``, ``patch_size``,
            ``action_dim``, ``state_dim`` and ``use_extrinsics`` are derived from this config
            (set in ``__post_init__``); give only its own hyper-parameters (width, depth, ...).
        pooler: ``PoolerConfig`` for compact latents (``K = pooler.num_tokens`` a frame), or
            None for the encoder's patch tokens.
        action_dim: environment action size ``A``.
        proprio_dim: proprioception size ``P`` (0: none; the predictor gets a zero state).
        frameskip: environment actions per model step; a step's action is ``[frameskip * A]``.
        history_length: frames of context; also the default sliding window of ``rollout``.
        image_size: frame size ``H`` (or ``(H, W)``) ``encode`` expects; None: ``encoder``'s.
        input_norm: ``"imagenet"`` (mean/std normalisation, as V-JEPA) or ``"none"`` (frames in
            ``[0, 1]`` go straight to the encoder).
        proprio_head: add a proprio head on the mean of each frame's tokens: ``Linear(D, P)``,
            or an MLP ``D -> proprio_head_hidden -> P`` when ``proprio_head_hidden > 0``.
        proprio_head_hidden: hidden width of the proprio head (0: linear).
        env_id: Gymnasium id the model was trained on (checked by :meth:`WorldModel.check_env`).
        imagination: ``"sliding"``: every imagined step re-runs the predictor on the last
            ``history_length`` frames (a frame that leaves the window changes every later
            frame's hidden states). ``"cached"``: a frame's hidden states are computed once, when
            it arrives, from the last ``history_length`` frames' keys / values (the predictor's
            ``attention_window``, in training too), so ``rollout`` keeps a key / value cache and
            computes only the new frame each step. A model is trained in one of the two.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: ACPredictorConfig = field(default_factory=ACPredictorConfig)
    pooler: PoolerConfig | None = None
    action_dim: int = 2
    proprio_dim: int = 0
    frameskip: int = 1
    history_length: int = 3
    image_size: int | tuple[int, int] | None = None
    input_norm: str = "imagenet"
    proprio_head: bool = False
    proprio_head_hidden: int = 0
    env_id: str | None = None
    imagination: str = "sliding"

    def __post_init__(self) -> None:
        for name, cls in (("encoder", EncoderConfig), ("predictor", ACPredictorConfig),
                          ("pooler", PoolerConfig)):
            if isinstance(getattr(self, name), dict):  # read back from JSON
                setattr(self, name, config_from_dict(cls, getattr(self, name)))
        if isinstance(self.image_size, list):
            self.image_size = tuple(self.image_size)
        if self.image_size is None:
            self.image_size = self.encoder.img_size
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {self.input_norm!r}")
        if self.imagination not in IMAGINATIONS:
            raise ValueError(f"imagination must be one of {IMAGINATIONS}, got "
                             f"{self.imagination!r}")
        for name in ("action_dim", "frameskip", "history_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.proprio_dim < 0 or (self.proprio_head and self.proprio_dim == 0):
            raise ValueError(f"proprio_dim must be >= 0 (and >= 1 with proprio_head), got "
                             f"{self.proprio_dim}")
        h, w = as_pair(self.image_size)
        p = self.encoder.patch_size
        if h % p or w % p:
            raise ValueError(f"image_size {(h, w)} is not divisible by patch_size {p}")
        if self.pooler is not None:
            grid: dict[str, Any] = dict(img_size=(1, self.pooler.num_tokens), patch_size=1)
        else:
            grid = dict(img_size=self.image_size, patch_size=p)
        self.predictor = dataclasses.replace(
            self.predictor, **grid, embed_dim=self.encoder.embed_dim, use_extrinsics=False,
            action_dim=self.step_action_dim, state_dim=max(self.proprio_dim, 1),
            attention_window=self.history_length if self.imagination == "cached" else None)

    @property
    def step_action_dim(self) -> int:
        """``A' = frameskip * action_dim``: the width of one model step's action."""
        return self.frameskip * self.action_dim

    @property
    def tokens_per_frame(self) -> int:
        """``N``: pooled tokens ``K``, or patch tokens ``H' W'``."""
        return self.pooler.num_tokens if self.pooler is not None else self.patches_per_frame

    @property
    def patches_per_frame(self) -> int:
        """``H' W'``: the encoder's patch tokens of one frame."""
        h, w = as_pair(self.image_size)
        return (h // self.encoder.patch_size) * (w // self.encoder.patch_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples stay tuples; ``json`` writes them as lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldModelConfig:
        return config_from_dict(cls, data)


@dataclass
class Prediction:
    """Output of :meth:`WorldModel.predict` (``latents [B, T, N, D]``, ``proprio [B, T, P]``)
    and :meth:`WorldModel.rollout` with ``return_proprio`` (``[B, S, H, N, D]``, ``[B, S, H, P]``);
    ``proprio`` is None without a proprio head."""

    latents: torch.Tensor
    proprio: torch.Tensor | None = None
