"""Typed, self-validating config of ``python -m jepa_world.train_wm`` (:func:`train_world_model`).

Like :mod:`jepa_world.training.pretrain_config`, every group validates itself and names the bad
field (``loss.rollout_steps: ...``). Library code and tests build it directly:
``WMTrainConfig(model=WMModelConfig(predictor_dim=32, depth=1), steps=20)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from jepa_world.config import EnvConfig, check, check_choice
from jepa_world.devices import PRECISIONS
from jepa_world.models.ac_predictor import CONDITIONINGS
from jepa_world.models.pooling import POOLER_KINDS
from jepa_world.models.presets import ENCODER_KINDS
from jepa_world.training.pretrain_config import RESUME_MODES
from jepa_world.world_model_config import COST_KINDS, IMAGINATIONS

GOAL_TARGETS = ("pose", "keypoints")


@dataclass
class EncoderSource:
    """Which frozen encoder the world model is built on.

    ``path``: a checkpoint ``jepa_world.load_pretrained`` reads (a pretraining step folder, an
    official V-JEPA file), a pretraining run folder (its latest checkpoint is used) or a world
    model folder (its frozen encoder, e.g. ``jepa_world/pretrained/reach``). Empty:
    ``pretrain_dir``'s latest checkpoint, pretrained first with ``python -m jepa_world.pretrain``'s
    defaults when there is none (``pretrain``).
    """

    path: str = ""
    #: where the default encoder is (or gets) trained; "": ``runs/pretrain_tiny`` for reach,
    #: ``runs/pretrain_tiny_<env>`` for other tasks
    pretrain_dir: str = ""
    pretrain: bool = True  #: train the default encoder when ``pretrain_dir`` has none
    use_target: bool = True  #: the EMA target encoder (V-JEPA's evaluation encoder) if present
    #: the encoder's learning rate as a fraction of ``optim.lr``. 0: frozen, every frame encoded
    #: once and cached; > 0: fine-tuned through the world-model losses (frames are encoded at
    #: every step, with gradients: several times slower on a CPU)
    lr_scale: float = 0.0
    #: ``vit``: the V-JEPA encoder above; ``conv``: a small conv encoder
    #: (:class:`~jepa_world.models.conv_encoder.ConvEncoder`, its sizes the defaults of
    #: ``EncoderConfig``) trained from scratch with the world model: set ``lr_scale`` > 0
    kind: str = "vit"

    def __post_init__(self) -> None:
        check(self.lr_scale >= 0, "encoder.lr_scale", f"must be >= 0, got {self.lr_scale}")
        check_choice(self.kind, ENCODER_KINDS, "encoder.kind")
        if self.kind == "conv":
            check(self.lr_scale > 0, "encoder.lr_scale", "encoder.kind=conv trains the encoder "
                  "from scratch: give it a learning rate (encoder.lr_scale=1)")
            check(not self.path, "encoder.path", "encoder.kind=conv has no pretrained weights "
                  "to load; leave encoder.path empty")

    @property
    def finetune(self) -> bool:
        return self.lr_scale > 0


@dataclass
class WMModelConfig:
    """Predictor, compact latent and conditioning of the world model."""

    pooler_tokens: int = 1  #: K tokens a frame (compact latent); 0: the encoder's patch tokens
    pooler: str = "grid"  #: ``grid`` (position-aware MLP over the patch grid) or ``attentive``
    pooler_heads: int = 3  #: attentive pooler only
    grid_channels: int = 32  #: grid pooler: channels each patch token is squeezed to
    grid_hidden_dim: int = 256  #: grid pooler: MLP width
    predictor_dim: int = 96
    depth: int = 3
    num_heads: int = 4
    mlp_ratio: float = 4.0
    history: int = 3  #: frames of context (velocity is not visible in one frame)
    frameskip: int = 0  #: env steps per model step; 0: the task's ``env.protocol.action_repeat``
    use_proprio: bool = True  #: proprio as the predictor's state token + a proprio head
    proprio_head_hidden: int = 256  #: MLP width of the proprio head (0: linear)
    #: ``sliding`` or ``cached`` (the predictor attends to the last ``history`` frames, so
    #: rollouts keep a key / value cache: ``WorldModelConfig.imagination``)
    imagination: str = "sliding"
    #: ``tokens`` (action and proprio tokens of their own, V-JEPA 2-AC) or ``added`` (their
    #: embeddings added to the frame's latent tokens: fewer tokens to imagine):
    #: ``ACPredictor.conditioning``
    conditioning: str = "tokens"

    def __post_init__(self) -> None:
        check_choice(self.imagination, IMAGINATIONS, "model.imagination")
        check_choice(self.conditioning, CONDITIONINGS, "model.conditioning")
        check(self.pooler_tokens >= 0, "model.pooler_tokens", f"must be >= 0, got "
              f"{self.pooler_tokens}")
        check_choice(self.pooler, POOLER_KINDS, "model.pooler")
        for name in ("pooler_heads", "grid_channels", "grid_hidden_dim", "predictor_dim", "depth",
                     "num_heads", "history"):
            value = getattr(self, name)
            check(value >= 1, f"model.{name}", f"must be >= 1, got {value}")
        check(self.frameskip >= 0, "model.frameskip", f"must be >= 0, got {self.frameskip}")
        check(self.predictor_dim % self.num_heads == 0, "model.predictor_dim",
              f"{self.predictor_dim} is not divisible by model.num_heads={self.num_heads}")
        check(self.mlp_ratio > 0, "model.mlp_ratio", f"must be > 0, got {self.mlp_ratio}")


@dataclass
class WMDataConfig:
    """The env dataset the world model learns from (collected first when missing)."""

    data_dir: str = ""  #: default ``data/<env>_<size>px`` (the pretraining dataset)
    collect: bool = True
    episodes: int = 200
    episode_length: int = 100
    val_fraction: float = 0.1  #: held-out episodes (validation loss, rollout benchmarks)
    encode_batch: int = 256  #: frames per encoder call when caching features
    cache_features: bool = True  #: keep encoded frames in ``<data_dir>/features`` for reuse

    def __post_init__(self) -> None:
        for name in ("episodes", "episode_length", "encode_batch"):
            value = getattr(self, name)
            check(value >= 1, f"data.{name}", f"must be >= 1, got {value}")
        check(0 <= self.val_fraction < 1, "data.val_fraction",
              f"must be in [0, 1), got {self.val_fraction}")


@dataclass
class WMLossConfig:
    """Teacher forcing + rollout losses on latents, proprio head, anti-collapse regulariser."""

    kind: str = "l1"  #: ``l1`` or ``l2`` distance between predicted and encoded latents
    rollout_steps: int = 2  #: autoregressive steps of the rollout loss (0: teacher forcing only)
    teacher_forcing_weight: float = 1.0
    rollout_weight: float = 1.0
    proprio_weight: float = 0.1  #: proprio head (normalised targets), needs model.use_proprio
    state_weight: float = 5.0  #: the proprio head read on ENCODED frames too (anchors latents)
    #: proprio entries the state loss uses: those visible in ONE frame (velocities are not);
    #: None: the task's ``env.state_dims`` (reach: the joint angles); empty: all
    state_dims: Optional[list[int]] = None  # noqa: UP045  (OmegaConf needs Optional)
    #: a training-only head reads the task's goal state (``env.probe_state=goal``; push: the
    #: block pose, its angle as sine and cosine) from each ENCODED frame's latent: it keeps what
    #: the goal is made of in the latent when the proprio (the pusher) does not show it
    goal_weight: float = 0.0
    #: what the goal head reads: ``pose`` (the goal vector, angles as sine and cosine) or
    #: ``keypoints`` (the goal body's points in the world, ``env.goal_keypoints``; push: the T's
    #: bar ends and stem tip, which the encoder sees where they are)
    goal_targets: str = "pose"
    #: prediction losses train the pooler through the targets too (end to end, as LeWM); the
    #: state loss and the variance / covariance terms keep the latent from collapsing
    target_grad: bool = True
    variance_weight: float = 1.0  #: VICReg-style hinge on each latent dim's batch std
    variance_target: float = 0.5  #: the std below which the hinge pushes back
    covariance_weight: float = 0.04  #: off-diagonal covariance penalty of the latents

    def __post_init__(self) -> None:
        check_choice(self.kind, COST_KINDS, "loss.kind")
        check_choice(self.goal_targets, GOAL_TARGETS, "loss.goal_targets")
        if self.state_dims is not None:
            self.state_dims = [int(d) for d in self.state_dims]
        check(all(d >= 0 for d in self.state_dims or []), "loss.state_dims",
              f"must be proprio indices >= 0, got {self.state_dims}")
        check(self.rollout_steps >= 0, "loss.rollout_steps",
              f"must be >= 0, got {self.rollout_steps}")
        for name in ("teacher_forcing_weight", "rollout_weight", "proprio_weight", "state_weight",
                     "goal_weight", "variance_weight", "variance_target", "covariance_weight"):
            value = getattr(self, name)
            check(value >= 0, f"loss.{name}", f"must be >= 0, got {value}")


@dataclass
class WMOptimConfig:
    """AdamW with warmup + cosine LR and gradient clipping."""

    lr: float = 1e-3
    start_lr: float = 1e-4
    final_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        for name in ("lr", "start_lr", "final_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            check(value >= 0, f"optim.{name}", f"must be >= 0, got {value}")
        check(self.lr > 0, "optim.lr", f"must be > 0, got {self.lr}")
        check(self.warmup_steps >= 0, "optim.warmup_steps",
              f"must be >= 0, got {self.warmup_steps}")


@dataclass
class WMTrainConfig:
    """``python -m jepa_world.train_wm``: an action-conditioned world model on a V-JEPA encoder
    (frozen unless ``encoder.lr_scale`` > 0).

    ``batch_size`` is per process (windows of ``model.history + loss.rollout_steps`` frames).
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    encoder: EncoderSource = field(default_factory=EncoderSource)
    model: WMModelConfig = field(default_factory=WMModelConfig)
    data: WMDataConfig = field(default_factory=WMDataConfig)
    loss: WMLossConfig = field(default_factory=WMLossConfig)
    optim: WMOptimConfig = field(default_factory=WMOptimConfig)
    steps: int = 4000
    batch_size: int = 32
    #: ``auto`` (bf16 autocast on CUDA and on CPUs with native bf16: AVX-512 BF16 / AMX; else
    #: fp32), ``fp32``, ``bf16``
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    log_interval: int = 25
    eval_interval: int = 250  #: steps between validation losses (held-out episodes)
    checkpoint_interval: int = 500
    keep_checkpoints: int = 2
    run_dir: str = ""  #: default ``outputs/train_wm/<time>`` (the CLI: Hydra's output dir)
    resume: str = "auto"
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.resume, RESUME_MODES, "resume")
        for name in ("steps", "batch_size", "log_interval", "eval_interval",
                     "checkpoint_interval", "keep_checkpoints"):
            value = getattr(self, name)
            check(value >= 1, name, f"must be >= 1, got {value}")
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
              "device", f"{self.device!r} is not auto, cpu, cuda or cuda:<index>")
        self.model.frameskip = self.model.frameskip or self.env.protocol.action_repeat
        if self.loss.state_dims is None:
            self.loss.state_dims = list(self.env.state_dims)
        if not self.encoder.pretrain_dir:
            name = self.env.short_name
            self.encoder.pretrain_dir = "runs/pretrain_tiny" + ("" if name == "reach" else
                                                                f"_{name}")
        if self.loss.proprio_weight > 0 and not self.model.use_proprio:
            check(False, "loss.proprio_weight", "needs model.use_proprio=true (or set it to 0)")
        check(self.loss.goal_weight == 0 or self.env.probe_state == "goal", "loss.goal_weight",
              f"{self.env.task_id} has no goal state beyond the proprio (env.probe_state="
              f"{self.env.probe_state}): the state loss covers it; leave it at 0")
        span = (self.window_frames - 1) * self.model.frameskip
        check(span <= self.data.episode_length, "model.frameskip",
              f"a window of {self.window_frames} frames at frameskip {self.model.frameskip} spans "
              f"{span} steps, more than data.episode_length={self.data.episode_length}")

    @property
    def window_frames(self) -> int:
        """Frames a training window holds: the history, then ``rollout_steps`` more (>= 2)."""
        return max(self.model.history + self.loss.rollout_steps, 2)

    def to_dict(self) -> dict:
        return asdict(self)


__all__ = ["EncoderSource", "WMDataConfig", "WMLossConfig", "WMModelConfig", "WMOptimConfig",
           "WMTrainConfig"]
