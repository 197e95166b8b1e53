"""Training loops (library side: no Hydra here). See :func:`pretrain`."""

from jepa_world.training.config import (
    DataConfig,
    EmaConfig,
    MaskConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    RegularizerConfig,
)
from jepa_world.training.distributed import ResumableSampler
from jepa_world.training.pretrain import PretrainResult, TrainingDivergedError, pretrain
from jepa_world.training.state import latest_checkpoint

__all__ = [
    "DataConfig",
    "EmaConfig",
    "MaskConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "PretrainResult",
    "RegularizerConfig",
    "ResumableSampler",
    "TrainingDivergedError",
    "latest_checkpoint",
    "pretrain",
]
