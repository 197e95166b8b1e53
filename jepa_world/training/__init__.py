"""Training loops (library side: no Hydra here). See :func:`pretrain`."""

from jepa_world.checkpoints.runs import latest_checkpoint
from jepa_world.training.distributed import ResumableSampler
from jepa_world.training.harness import TrainingDivergedError
from jepa_world.training.pretrain import PretrainResult, pretrain
from jepa_world.training.pretrain_config import (
    DataConfig,
    EmaConfig,
    MaskConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    RegularizerConfig,
)

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
