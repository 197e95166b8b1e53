"""``python -m jepa_world.plan env=reach``: plan to goal images with a world model under MPC.

With no arguments it runs 50 seeded reach episodes with the shipped world model and CEM, prints
the success rate (95% CI), planning time per replan and steps to success, and writes
``summary.json``, per-episode videos and TensorBoard logs into the printed output directory.

Overrides: ``planner=cem|mppi|gradient|random`` (and ``planner.samples=...``), ``episodes=N``,
``seed=S``, ``world_model=<folder>``, ``agents=[world_model,oracle,random]`` (baselines
side by side), ``videos=K``, ``device=cuda``; see configs/plan.yaml.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from jepa_world.cli import CONFIG_PATH, register_schema, run, to_dataclass, user_errors_exit
from jepa_world.planning.config import PlanConfig, with_task_planner
from jepa_world.planning.session import SUMMARY_FILE, format_table, plan_episodes

register_schema("plan_schema", PlanConfig)


def planner_overrides(overrides: list[str]) -> set[str]:
    """The planner fields set on the command line (``planner.horizon=5`` -> ``horizon``)."""
    keys = (o.lstrip("+~").split("=", 1)[0] for o in overrides)
    return {k.removeprefix("planner.") for k in keys if k.startswith("planner.")}


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="plan")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    cfg.planner = with_task_planner(OmegaConf.to_container(cfg.planner),
                                    OmegaConf.to_container(cfg.env.planner),
                                    given=planner_overrides(HydraConfig.get().overrides.task))
    config = to_dataclass(cfg, PlanConfig)
    if not config.output_dir:
        config.output_dir = HydraConfig.get().runtime.output_dir
    report = plan_episodes(config)
    print(format_table(report))
    print(f"summary: {report['output_dir']}/{SUMMARY_FILE}")


def cli() -> None:
    """The ``jepa-plan`` console script (same as ``python -m jepa_world.plan``)."""
    run(main, "plan", schema=PlanConfig)


if __name__ == "__main__":
    cli()
