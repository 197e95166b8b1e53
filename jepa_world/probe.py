"""``python -m jepa_world.probe``: frozen-feature probes of encoders on the reach data.

With no arguments it compares the tiny V-JEPA model shipped with the package
(``jepa_world/pretrained/reach/``) with a random-init ``tiny`` encoder on the ``state`` and
``motion`` tasks, attentive and linear probes, 3 seeds (collecting the probe dataset if missing).

Overrides: ``encoders=[runs/x/checkpoints/latest,random:tiny]`` (spec strings, or
``{name:mine,spec:runs/x}`` entries with display names), ``tasks=[state]``,
``probes=[linear]``, ``seeds=[0,1]``, ``epochs=N``, ``lr=...``, ``data.data_dir=PATH``,
``device=cuda``, ``output_dir=PATH``; see configs/probe.yaml and
:class:`jepa_world.probes.ProbeConfig`.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from jepa_world.cli import CONFIG_PATH, register_schema, run, to_dataclass, user_errors_exit
from jepa_world.probes import ProbeConfig, format_table, run_probes

register_schema("probe_schema", ProbeConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="probe")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    config = to_dataclass(cfg, ProbeConfig)
    if not config.output_dir:
        config.output_dir = HydraConfig.get().runtime.output_dir
    report = run_probes(config)
    print(format_table(report.rows))
    print(f"results: {report.results_path} ({report.seconds:.0f} s)")


def cli() -> None:
    """The ``jepa-probe`` console script (same as ``python -m jepa_world.probe``)."""
    run(main, "probe", schema=ProbeConfig)


if __name__ == "__main__":
    cli()
