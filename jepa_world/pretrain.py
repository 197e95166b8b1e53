"""``python -m jepa_world.pretrain``: V-JEPA pretraining (or its pixel baseline) on env clips or
video files. With no arguments it collects the reach dataset if needed and trains the tiny model.

Overrides: ``model=tiny|vit_l|vit_h|vit_g``, ``objective=feature|pixel``, ``steps=N``,
``batch_size=B``, ``precision=fp32|bf16``, ``run_dir=PATH`` (re-running resumes),
``data.source=video data.paths=[clips/]``, ``optim.lr=...``; see configs/pretrain.yaml.
Distributed: ``torchrun --nproc_per_node=N -m jepa_world.pretrain run_dir=runs/x``.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from jepa_world.cli import CONFIG_PATH, register_schema, run, to_dataclass, user_errors_exit
from jepa_world.training.pretrain import pretrain
from jepa_world.training.pretrain_config import PretrainConfig

register_schema("pretrain_schema", PretrainConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="pretrain")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    config = to_dataclass(cfg, PretrainConfig)
    if not config.run_dir:  # rank 0's choice is broadcast to the other ranks by pretrain()
        config.run_dir = HydraConfig.get().runtime.output_dir
    pretrain(config)


def cli() -> None:
    """The ``jepa-pretrain`` console script (same as ``python -m jepa_world.pretrain``)."""
    run(main, "pretrain", run_dir_arg=True, schema=PretrainConfig)


if __name__ == "__main__":
    cli()
