"""``python -m jepa_world.decode``: train a pixel decoder of a frozen world model's latents.

With no arguments: the shipped reach world model, the reach dataset (``data/reach_64px``,
collected if missing) and the deterministic conv decoder; the decoder goes to
``<run_dir>/decoder`` (attach it with ``WorldModel.attach_decoder(load_decoder(...))`` or copy it
into the world model's folder as ``decoder/``).

Overrides: ``decoder.kind=diffusion`` (needs ``pip install diffusers``), ``steps=N``,
``world_model=<folder>``, ``imagined_fraction=F``, ``run_dir=PATH`` (re-running resumes); see
configs/decode.yaml. The seed's masked-region view: ``decoder.kind=tokens
pretrained=<a pretraining run> env=<its task>`` decodes that run's predictor outputs for the
masked part of clips and pastes them into the visible context (``<run_dir>/decoded.png``).
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from jepa_world.cli import CONFIG_PATH, register_schema, run, to_dataclass, user_errors_exit
from jepa_world.training.decoder_config import DecodeConfig
from jepa_world.training.decoder_train import train_decoder

register_schema("decode_schema", DecodeConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="decode")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    config = to_dataclass(cfg, DecodeConfig)
    if not config.run_dir:
        config.run_dir = HydraConfig.get().runtime.output_dir
    train_decoder(config)


def cli() -> None:
    """The ``jepa-decode`` console script (same as ``python -m jepa_world.decode``)."""
    run(main, "decode", run_dir_arg=True)


if __name__ == "__main__":
    cli()
