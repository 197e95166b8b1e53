"""Typed, self-validating config of ``python -m jepa_world.pretrain`` (:func:`pretrain`).

Every group is a plain dataclass whose ``__post_init__`` raises a
:class:`~jepa_world.errors.ConfigError` starting with the field's dotted name (``optim.lr: ...``).
The entry point registers :class:`PretrainConfig` as a Hydra schema; library code and tests build
it directly: ``PretrainConfig(model=ModelConfig(embed_dim=32, depth=1), steps=20)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from jepa_world.config import EnvConfig, check, check_choice
from jepa_world.devices import PRECISIONS
from jepa_world.masks import TRUNCATE_MODES, MaskSpec
from jepa_world.models.encoder import POS_EMBED_KINDS
from jepa_world.models.presets import PRESETS, EncoderConfig, PredictorConfig, get_preset

OBJECTIVES = ("feature", "pixel")
RESUME_MODES = ("auto", "never")
DATA_SOURCES = ("env", "video")
REGULARIZER_CENTERINGS = ("tokens", "position")
_TINY = PRESETS["tiny"]  #: the CPU default architecture


@dataclass
class ModelConfig:
    """Encoder + masked predictor architecture (Hydra group ``model=tiny|vit_l|vit_h|vit_g``).

    The clip is ``[B, 3, num_frames, img_size, img_size]``; tokens form a grid of
    ``(num_frames / tubelet_size, img_size / patch_size, img_size / patch_size)``.
    """

    name: str = "tiny"  #: label only (recorded in checkpoints)
    img_size: int = _TINY.encoder.img_size
    patch_size: int = _TINY.encoder.patch_size
    num_frames: int = _TINY.encoder.num_frames
    tubelet_size: int = _TINY.encoder.tubelet_size
    embed_dim: int = _TINY.encoder.embed_dim
    depth: int = _TINY.encoder.depth
    num_heads: int = _TINY.encoder.num_heads
    mlp_hidden_dim: int = _TINY.encoder.mlp_hidden_dim
    pos_embed: str = _TINY.encoder.pos_embed  #: ``sincos`` (V-JEPA) or ``rope`` (V-JEPA 2)
    uniform_power: bool = _TINY.encoder.uniform_power
    #: ``False``: the encoder's positions carry no time (issue 20: with them, the pretrained
    #: features tell the clip's time steps apart far more than what moved between them)
    time_positions: bool = _TINY.encoder.time_positions
    predictor_dim: int = _TINY.predictor.predictor_dim
    predictor_depth: int = _TINY.predictor.depth
    predictor_heads: int = _TINY.predictor.num_heads
    predictor_mlp_hidden_dim: int = _TINY.predictor.mlp_hidden_dim
    activation_checkpointing: bool = _TINY.encoder.use_activation_checkpointing

    @classmethod
    def from_preset(cls, name: str) -> ModelConfig:
        """The architecture of preset ``name`` (:data:`jepa_world.models.presets.PRESETS`), the
        source of these defaults (``tiny``) and of ``configs/model/<name>.yaml``."""
        enc, pred = get_preset(name).encoder, get_preset(name).predictor
        return cls(name=name, img_size=enc.img_size, patch_size=enc.patch_size,
                   num_frames=enc.num_frames, tubelet_size=enc.tubelet_size,
                   embed_dim=enc.embed_dim, depth=enc.depth, num_heads=enc.num_heads,
                   mlp_hidden_dim=enc.mlp_hidden_dim, pos_embed=enc.pos_embed,
                   uniform_power=enc.uniform_power, time_positions=enc.time_positions,
                   predictor_dim=pred.predictor_dim,
                   predictor_depth=pred.depth, predictor_heads=pred.num_heads,
                   predictor_mlp_hidden_dim=pred.mlp_hidden_dim,
                   activation_checkpointing=enc.use_activation_checkpointing)

    def __post_init__(self) -> None:
        for name in ("img_size", "patch_size", "num_frames", "tubelet_size", "embed_dim", "depth",
                     "num_heads", "mlp_hidden_dim", "predictor_dim", "predictor_depth",
                     "predictor_heads", "predictor_mlp_hidden_dim"):
            value = getattr(self, name)
            check(value >= 1, f"model.{name}", f"must be >= 1, got {value}")
        check(self.img_size % self.patch_size == 0, "model.img_size",
              f"{self.img_size} is not divisible by model.patch_size={self.patch_size}")
        check(self.num_frames % self.tubelet_size == 0, "model.num_frames",
              f"{self.num_frames} is not divisible by model.tubelet_size={self.tubelet_size}")
        check(self.embed_dim % self.num_heads == 0, "model.embed_dim",
              f"{self.embed_dim} is not divisible by model.num_heads={self.num_heads}")
        check(self.predictor_dim % self.predictor_heads == 0, "model.predictor_dim",
              f"{self.predictor_dim} is not divisible by "
              f"model.predictor_heads={self.predictor_heads}")
        check_choice(self.pos_embed, POS_EMBED_KINDS, "model.pos_embed")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')``."""
        side = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, side, side

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(
            img_size=self.img_size, patch_size=self.patch_size, num_frames=self.num_frames,
            tubelet_size=self.tubelet_size, embed_dim=self.embed_dim, depth=self.depth,
            num_heads=self.num_heads, mlp_hidden_dim=self.mlp_hidden_dim,
            pos_embed=self.pos_embed, uniform_power=self.uniform_power,
            time_positions=self.time_positions,
            use_activation_checkpointing=self.activation_checkpointing,
        )

    def predictor_config(self, num_mask_tokens: int = 2) -> PredictorConfig:
        return PredictorConfig(
            img_size=self.img_size, patch_size=self.patch_size, num_frames=self.num_frames,
            tubelet_size=self.tubelet_size, embed_dim=self.embed_dim,
            predictor_dim=self.predictor_dim, depth=self.predictor_depth,
            num_heads=self.predictor_heads, mlp_hidden_dim=self.predictor_mlp_hidden_dim,
            num_mask_tokens=num_mask_tokens, pos_embed=self.pos_embed,
            uniform_power=self.uniform_power,
            use_activation_checkpointing=self.activation_checkpointing,
        )


@dataclass
class DataConfig:
    """Where clips come from: a collected env dataset (``env``) or video files (``video``)."""

    source: str = "env"
    data_dir: str = ""  #: env: dataset folder, default ``data/<env>_<size>px``
    collect: bool = True  #: env: collect the dataset first if ``data_dir`` holds none
    episodes: int = 200  #: env: episodes to collect (when collecting)
    episode_length: int = 100  #: env: steps per collected episode (when collecting)
    frame_step: int = 1  #: stride in frames between consecutive clip frames
    window_stride: int = 1  #: env: steps between the starts of consecutive clips
    paths: list[str] = field(default_factory=list)  #: video: files and/or folders
    augment: bool = True  #: video: random resized crops
    augment_env: bool = False  #: env: random resized crops of env clips too
    crop_scale: list[float] = field(default_factory=lambda: [0.3, 1.0])  #: video: area range
    num_workers: int = 0  #: DataLoader worker processes per rank

    def __post_init__(self) -> None:
        check_choice(self.source, DATA_SOURCES, "data.source")
        for name in ("episodes", "episode_length", "frame_step", "window_stride"):
            value = getattr(self, name)
            check(value >= 1, f"data.{name}", f"must be >= 1, got {value}")
        check(self.num_workers >= 0, "data.num_workers", f"must be >= 0, got {self.num_workers}")
        self.paths = [str(p) for p in self.paths]
        self.crop_scale = [float(v) for v in self.crop_scale]
        check(len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
              "data.crop_scale", f"must be [min, max] with 0 < min <= max <= 1, "
              f"got {self.crop_scale}")
        if self.source == "video":
            check(bool(self.paths), "data.paths",
                  "data.source=video needs video files or folders, e.g. data.paths=[clips/]")


@dataclass
class OptimConfig:
    """AdamW with warmup + cosine LR, cosine weight decay and gradient clipping."""

    lr: float = 1e-3  #: peak LR, reached at the end of warmup
    start_lr: float = 2e-4
    final_lr: float = 1e-6
    warmup_steps: int = 40  #: linear warmup length (capped at the run's ``steps``)
    weight_decay: float = 0.04  #: start of the cosine weight-decay schedule
    final_weight_decay: float = 0.4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 10.0  #: max global grad norm; 0 disables clipping

    def __post_init__(self) -> None:
        for name in ("lr", "start_lr", "final_lr", "weight_decay", "final_weight_decay",
                     "grad_clip"):
            value = getattr(self, name)
            check(value >= 0, f"optim.{name}", f"must be >= 0, got {value}")
        check(self.lr > 0, "optim.lr", f"must be > 0, got {self.lr}")
        check(self.eps > 0, "optim.eps", f"must be > 0, got {self.eps}")
        check(self.warmup_steps >= 0, "optim.warmup_steps",
              f"must be >= 0, got {self.warmup_steps}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            check(0 <= value < 1, f"optim.{name}", f"must be in [0, 1), got {value}")


@dataclass
class EmaConfig:
    """Target-encoder momentum, linear ``start -> final`` over the run.

    V-JEPA uses 0.998 -> 1 over 90k steps. The 600-step CPU default keeps a constant 0.99: with a
    slower schedule the target encoder lags the context encoder too far to gain anything in so
    few steps (docs/pretraining.md, "Does pretraining learn?")."""

    start: float = 0.99
    final: float = 0.99

    def __post_init__(self) -> None:
        for name in ("start", "final"):
            value = getattr(self, name)
            check(0 <= value <= 1, f"ema.{name}", f"must be in [0, 1], got {value}")


@dataclass
class MaskConfig:
    """V-JEPA's two multi-block mask types (``jepa_world.masks``); the loss averages both."""

    short_range_blocks: int = 8
    short_range_scale: float = 0.15  #: frame area of one short-range block
    long_range_blocks: int = 2
    long_range_scale: float = 0.7
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    #: ``[min, max]`` fraction of the clip's time steps a block spans. V-JEPA: ``[1, 1]`` (every
    #: block spans the whole clip, so nothing masked is visible at another time).
    temporal_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    min_keep: int = 4  #: smallest context (tokens) a sample may have
    truncate: str = "first"  #: ``first`` (official) or ``random``
    #: > 0: the long-range mask type hides this fraction of the clip's time steps AT ITS END,
    #: whole frames (one full-frame block, ``MaskSpec.future``): the predictor must predict the
    #: future frames' features from the past ones, as a world model must. 0: V-JEPA's tubes
    future_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("short_range_blocks", "long_range_blocks", "min_keep"):
            value = getattr(self, name)
            check(value >= 1, f"masks.{name}", f"must be >= 1, got {value}")
        for name in ("short_range_scale", "long_range_scale"):
            value = getattr(self, name)
            check(0 < value <= 1, f"masks.{name}", f"must be in (0, 1], got {value}")
        self.aspect_ratio = [float(v) for v in self.aspect_ratio]
        check(len(self.aspect_ratio) == 2 and 0 < self.aspect_ratio[0] <= self.aspect_ratio[1],
              "masks.aspect_ratio", f"must be [min, max] with 0 < min <= max, "
              f"got {self.aspect_ratio}")
        self.temporal_scale = [float(v) for v in self.temporal_scale]
        check(len(self.temporal_scale) == 2
              and 0 < self.temporal_scale[0] <= self.temporal_scale[1] <= 1,
              "masks.temporal_scale", f"must be [min, max] with 0 < min <= max <= 1, "
              f"got {self.temporal_scale}")
        check_choice(self.truncate, TRUNCATE_MODES, "masks.truncate")
        check(0 <= self.future_fraction < 1, "masks.future_fraction",
              f"must be in [0, 1) (0: off), got {self.future_fraction}")

    def specs(self) -> tuple[MaskSpec, MaskSpec]:
        """``(short_range, long_range)``; the index is the predictor's ``mask_index``."""
        ratio, time = tuple(self.aspect_ratio), tuple(self.temporal_scale)
        short = MaskSpec(self.short_range_blocks, (self.short_range_scale,) * 2, ratio, time)
        if self.future_fraction > 0:  # a square full-frame block (token grids are square)
            future = (self.future_fraction,) * 2
            return short, MaskSpec(1, (1.0, 1.0), (1.0, 1.0), future, future=True)
        return short, MaskSpec(self.long_range_blocks, (self.long_range_scale,) * 2, ratio, time)


@dataclass
class RegularizerConfig:
    """VICReg terms on the context encoder's output tokens (VJ-VCR, Drozdov et al. 2024), added
    to the feature loss. The variance hinge keeps every feature dimension varying across the
    batch's tokens (std >= ``target_std``), the covariance term decorrelates dimensions; together
    they stop the target encoder from flattening what the predictor cannot predict (on the reach
    data: the arm's tokens). On by default for the CPU recipe; set both weights to 0 for plain
    V-JEPA (which has no such terms). ``objective=pixel`` ignores them (fixed pixel targets
    cannot collapse; the baseline stays VideoMAE) and says so in its first log line."""

    variance_weight: float = 1.0
    covariance_weight: float = 0.04
    target_std: float = 1.0
    #: ``tokens``: the terms see the context tokens as they are, so a token's position or time
    #: code counts as variance; ``position``: each token minus the batch mean at its position
    #: (:func:`~jepa_world.losses.center_by_position`), so only what differs between clips does
    centering: str = "tokens"

    def __post_init__(self) -> None:
        for name in ("variance_weight", "covariance_weight", "target_std"):
            value = getattr(self, name)
            check(math.isfinite(value) and value >= 0, f"regularizer.{name}",
                  f"must be a finite number >= 0, got {value}")
        check_choice(self.centering, REGULARIZER_CENTERINGS, "regularizer.centering")

    @property
    def enabled(self) -> bool:
        return self.variance_weight > 0 or self.covariance_weight > 0


@dataclass
class PretrainConfig:
    """``python -m jepa_world.pretrain``: V-JEPA (``feature``) or pixel-MAE (``pixel``) training.

    ``batch_size`` is per process; under torchrun the global batch is ``batch_size * world``.
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    objective: str = "feature"  #: ``feature`` (V-JEPA) or ``pixel`` (normalised-pixel MAE)
    steps: int = 600
    batch_size: int = 16
    #: ``auto`` (bf16 autocast on CUDA and on CPUs with native bf16: AVX-512 BF16 / AMX; else
    #: fp32), ``fp32``, ``bf16``
    precision: str = "auto"
    compile: bool = False  #: ``torch.compile`` the models
    device: str = "auto"  #: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``...
    seed: int = 0
    log_interval: int = 10  #: steps between TensorBoard scalars
    checkpoint_interval: int = 100  #: steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2  #: step folders kept on disk
    run_dir: str = ""  #: output folder; default ``outputs/pretrain/<time>`` (the CLI: Hydra's)
    resume: str = "auto"  #: ``auto``: continue from ``run_dir``'s latest checkpoint if any
    collapse_threshold: float = 0.05  #: warn when the target features' mean std falls below
    progress: bool = True  #: tqdm progress bar (rank 0)
    tensorboard: bool = True

    def __post_init__(self) -> None:
        check_choice(self.objective, OBJECTIVES, "objective")
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.resume, RESUME_MODES, "resume")
        for name in ("steps", "batch_size", "log_interval", "checkpoint_interval",
                     "keep_checkpoints"):
            value = getattr(self, name)
            check(value >= 1, name, f"must be >= 1, got {value}")
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        check(self.collapse_threshold >= 0, "collapse_threshold",
              f"must be >= 0, got {self.collapse_threshold}")
        check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
              "device", f"{self.device!r} is not auto, cpu, cuda or cuda:<index>")
        if self.data.source == "env":
            check(self.env.image_size == self.model.img_size, "env.image_size",
                  f"{self.env.image_size} differs from model.img_size={self.model.img_size}; "
                  f"collect at the model's resolution (env.image_size={self.model.img_size})")
        if self.objective == "pixel":
            pixels = self.model.tubelet_size * self.model.patch_size ** 2
            check(pixels >= 2, "model.patch_size", "the pixel objective needs >= 2 pixels a token")

    def to_dict(self) -> dict:
        """Plain-JSON copy (recorded next to checkpoints)."""
        return asdict(self)


__all__ = ["DataConfig", "EmaConfig", "MaskConfig", "ModelConfig", "OptimConfig",
           "PretrainConfig", "RegularizerConfig"]
