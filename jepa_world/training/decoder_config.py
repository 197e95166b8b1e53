"""Typed, self-validating config of ``python -m jepa_world.decode`` (:func:`train_decoder`).

Every group validates itself and names the bad field (``decoder.kind: ...``). Library code and
tests build it directly: ``DecodeConfig(decoder=DecoderModelConfig(width=16), steps=5)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from jepa_world.config import EnvConfig, check, check_choice
from jepa_world.models.decoder import DECODER_KINDS, DIFFUSION_TARGETS
from jepa_world.training.pretrain_config import RESUME_MODES
from jepa_world.training.wm_config import WMDataConfig


@dataclass
class DecoderModelConfig:
    """Which decoder and how big (tokens, width and image size come from the world model)."""

    #: ``conv`` (deterministic, pixel loss), ``diffusion`` (needs diffusers) or ``tokens``
    #: (V-JEPA patch tokens: the masked-region view of a pretraining run)
    kind: str = "conv"
    width: int = 128  #: conv: channels of the 4 x 4 feature map, halved per x2 upsampling
    min_width: int = 16  #: conv: the narrowest feature map
    foreground_weight: float = 20.0  #: conv: loss weight of pixels unlike the median frame
    background_residual: bool = True  #: conv: decode the change from the median frame
    unet_channels: list[int] = field(default_factory=lambda: [64, 128])  #: diffusion UNet
    train_timesteps: int = 1000  #: diffusion: DDPM noise levels
    sample_steps: int = 10  #: diffusion: DDIM steps when decoding
    diffusion_patch: int = 4  #: diffusion: pixels folded into channels (the UNet sees 16 x 16)
    diffusion_target: str = "sample"  #: diffusion: what the UNet predicts (sample, v, epsilon)

    def __post_init__(self) -> None:
        check_choice(self.kind, DECODER_KINDS, "decoder.kind")
        check_choice(self.diffusion_target, DIFFUSION_TARGETS, "decoder.diffusion_target")
        for name in ("width", "min_width", "train_timesteps", "sample_steps",
                     "diffusion_patch"):
            value = getattr(self, name)
            check(value >= 1, f"decoder.{name}", f"must be >= 1, got {value}")
        check(len(self.unet_channels) >= 1 and min(self.unet_channels) >= 8
              and all(c % 8 == 0 for c in self.unet_channels), "decoder.unet_channels",
              f"must be multiples of 8, got {self.unet_channels}")


@dataclass
class DecodeConfig:
    """``python -m jepa_world.decode``: a pixel decoder of a frozen world model's latents.

    ``imagined_fraction`` of each batch decodes the world model's own PREDICTIONS (rolled out
    ``1..imagined_horizon`` steps from real history with the real actions) into the frames that
    really followed, the rest decodes encoded frames into themselves. ``decoder.kind=tokens``
    instead decodes a pretraining run's predictor outputs for the masked region of clips of
    the env's dataset (:mod:`jepa_world.training.masked_decoder`).
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    world_model: str = ""  #: a WorldModel folder; "": the shipped model of ``env.name``
    #: ``decoder.kind=tokens`` only: the V-JEPA pretraining run (or checkpoint) whose
    #: predictor's masked-region features are decoded
    pretrained: str = ""
    decoder: DecoderModelConfig = field(default_factory=DecoderModelConfig)
    data: WMDataConfig = field(default_factory=WMDataConfig)
    imagined_fraction: float = 0.5
    imagined_horizon: int = 8
    imagined_stride: int = 2  #: every k-th start frame of an episode is imagined from
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0  #: torch threads (0: torch's default)
    log_interval: int = 25
    eval_interval: int = 250  #: held-out PSNR and an image grid in TensorBoard
    checkpoint_interval: int = 500
    keep_checkpoints: int = 2
    run_dir: str = ""  #: default ``outputs/decode/<time>`` (the CLI: Hydra's output dir)
    resume: str = "auto"
    progress: bool = True
    tensorboard: bool = True
    save_dtype: str = "float16"  #: the final decoder's weights (``float16`` or ``float32``)

    def __post_init__(self) -> None:
        check_choice(self.resume, RESUME_MODES, "resume")
        check_choice(self.save_dtype, ("float16", "float32"), "save_dtype")
        for name in ("steps", "batch_size", "log_interval", "eval_interval",
                     "checkpoint_interval", "keep_checkpoints", "imagined_horizon",
                     "imagined_stride"):
            value = getattr(self, name)
            check(value >= 1, name, f"must be >= 1, got {value}")
        for name in ("seed", "warmup_steps", "threads", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            check(value >= 0, name, f"must be >= 0, got {value}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(0 <= self.imagined_fraction <= 1, "imagined_fraction",
              f"must be in [0, 1], got {self.imagined_fraction}")
        check(bool(self.pretrained) == (self.decoder.kind == "tokens"), "pretrained",
              "decoder.kind=tokens decodes a pretraining run's predictor: pass "
              "pretrained=<run dir>" if self.decoder.kind == "tokens" else
              f"is only read by decoder.kind=tokens, not {self.decoder.kind}")
        check(self.data.val_fraction > 0, "data.val_fraction",
              "must be > 0: held-out episodes measure the decoder")
        check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
              "device", f"{self.device!r} is not auto, cpu, cuda or cuda:<index>")

    def to_dict(self) -> dict:
        return asdict(self)


__all__ = ["DecodeConfig", "DecoderModelConfig"]
