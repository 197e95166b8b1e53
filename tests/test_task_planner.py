"""A task's own planner settings (``env.planner``: the maze's whole-budget lookahead) replace the
planner group's defaults, and the command line still overrides both."""

from __future__ import annotations

import json

import pytest

from jepa_world.config import EnvConfig
from jepa_world.errors import ConfigError
from jepa_world.plan import planner_overrides
from jepa_world.planning.config import with_task_planner
from tests.commands import call

CEM = {"name": "cem", "samples": 128, "horizon": 5, "iterations": 6}


def test_the_task_settings_replace_the_group_defaults_but_not_the_command_line():
    task = {"horizon": 10, "samples": 256}
    assert with_task_planner(CEM, task) == {**CEM, "horizon": 10, "samples": 256}
    assert with_task_planner(CEM, task, given={"horizon"}) == {**CEM, "samples": 256}
    assert with_task_planner(CEM, {}) == CEM


def test_settings_the_chosen_planner_lacks_are_skipped():
    gradient = {"name": "gradient", "horizon": 5, "lr": 0.1}
    assert with_task_planner(gradient, {"horizon": 8, "samples": 256}) == \
        {**gradient, "horizon": 8}


def test_command_line_planner_fields_are_read_from_hydra_overrides():
    overrides = ["env=maze", "planner=mppi", "planner.horizon=4", "++planner.samples=3",
                 "episodes=2"]
    assert planner_overrides(overrides) == {"horizon", "samples"}


def test_an_unknown_task_planner_setting_is_named():
    with pytest.raises(ConfigError, match=r"env\.planner\.horizn: no planner has"):
        EnvConfig(name="maze", planner={"horizn": 10})


@pytest.mark.parametrize("overrides, horizon", [([], 10), (["planner.horizon=4"], 4)])
def test_plan_on_the_maze_uses_its_horizon_unless_told(tmp_path, capsys, overrides, horizon):
    out = tmp_path / "plan"
    code, _, err = call("plan", "env=maze", "agents=[random]", "episodes=1", "videos=0",
                        "progress=false", "tensorboard=false", f"output_dir={out}",
                        f"hydra.run.dir={tmp_path / 'hydra'}", *overrides, capsys=capsys)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["planner"]["horizon"] == horizon
