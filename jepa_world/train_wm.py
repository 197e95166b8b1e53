"""``python -m jepa_world.train_wm``: train an action-conditioned latent world model.

With no arguments it uses (or collects) the reach dataset and uses (or pretrains) the tiny V-JEPA
encoder in ``runs/pretrain_tiny``, then trains the pooler + AC predictor on the frozen encoder.

Overrides: ``env=reach``, ``encoder.path=<checkpoint>``, ``steps=N``, ``model.pooler_tokens=K``,
``model.history=H``, ``loss.rollout_steps=R``, ``run_dir=PATH`` (re-running resumes); see
configs/train_wm.yaml. Distributed: ``torchrun --nproc_per_node=N -m jepa_world.train_wm
run_dir=runs/x``.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from jepa_world.cli import CONFIG_PATH, register_schema, run, to_dataclass, user_errors_exit
from jepa_world.training.train_wm import train_world_model
from jepa_world.training.wm_config import WMTrainConfig

register_schema("train_wm_schema", WMTrainConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train_wm")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    config = to_dataclass(cfg, WMTrainConfig)
    if not config.run_dir:  # rank 0's choice is broadcast to the other ranks
        config.run_dir = HydraConfig.get().runtime.output_dir
    train_world_model(config)


def cli() -> None:
    """The ``jepa-train-wm`` console script (same as ``python -m jepa_world.train_wm``)."""
    run(main, "train_wm", run_dir_arg=True, schema=WMTrainConfig)


if __name__ == "__main__":
    cli()
