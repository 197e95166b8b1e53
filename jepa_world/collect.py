"""``python -m jepa_world.collect env=reach``: collect a trajectory dataset (resumable).

Overrides: ``episodes=N``, ``episode_length=T``, ``policy=uniform|correlated``, ``num_envs=K``,
``vectorization=sync|async``, ``env.image_size=S``, ``seed=S``, ``data_dir=PATH``. Re-running the
same command after an interruption collects only the missing episodes.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from jepa_world.cli import CONFIG_PATH, register_schema, run, to_dataclass, user_errors_exit
from jepa_world.config import CollectConfig
from jepa_world.data.collection import collect

register_schema("collect_schema", CollectConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="collect")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    config = to_dataclass(cfg, CollectConfig)
    summary = collect(config)
    print(f"dataset {summary.data_dir}: {summary.episodes_total} episodes "
          f"({summary.episodes_collected} collected now, {summary.frames_per_second:.0f} frames/s)")


def cli() -> None:
    """The ``jepa-collect`` console script (same as ``python -m jepa_world.collect``)."""
    run(main, "collect", schema=CollectConfig)


if __name__ == "__main__":
    cli()
