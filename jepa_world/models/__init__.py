"""V-JEPA / V-JEPA 2 models: video ViT encoder, masked predictor, action-conditioned predictor."""

from jepa_world.models.ac_predictor import ACPredictor, frame_causal_mask
from jepa_world.models.attention import MLP, Attention, Block
from jepa_world.models.encoder import VideoViT
from jepa_world.models.pooling import AttentivePooler, PoolerConfig
from jepa_world.models.predictor import MaskedPredictor
from jepa_world.models.presets import (
    PRESETS,
    ACPredictorConfig,
    EncoderConfig,
    PredictorConfig,
    Preset,
    build_encoder,
    build_predictor,
    get_preset,
)

__all__ = [
    "ACPredictor",
    "ACPredictorConfig",
    "Attention",
    "AttentivePooler",
    "Block",
    "EncoderConfig",
    "MLP",
    "MaskedPredictor",
    "PRESETS",
    "PoolerConfig",
    "PredictorConfig",
    "Preset",
    "VideoViT",
    "build_encoder",
    "build_predictor",
    "frame_causal_mask",
    "get_preset",
]
