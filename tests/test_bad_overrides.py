"""Bad input everywhere: random bad overrides for every command (unknown keys, wrong types, NaN /
inf, negative counts, empty lists) fail in one line with exit status 2 before anything is
written; a few go through the whole command, paths that are files or missing among them."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import tempfile
from functools import cache
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig

from jepa_world import cli
from jepa_world.config import CollectConfig
from jepa_world.planning.config import PlanConfig
from jepa_world.probes import ProbeConfig
from jepa_world.training.pretrain_config import PretrainConfig
from jepa_world.training.wm_config import WMTrainConfig
from tests.commands import assert_one_line_error, call

SCHEMAS = {"collect": CollectConfig, "plan": PlanConfig, "pretrain": PretrainConfig,
           "train_wm": WMTrainConfig, "probe": ProbeConfig}
#: counts that must be >= 1 (a negative or zero one is refused)
COUNTS = {"collect": ["episodes", "episode_length", "num_envs", "episodes_per_shard"],
          "plan": ["episodes", "chunk_size", "replan_every", "planner.samples"],
          "pretrain": ["steps", "batch_size", "checkpoint_interval", "model.depth"],
          "train_wm": ["steps", "batch_size", "checkpoint_interval", "model.depth"],
          "probe": ["epochs", "batch_size"]}
#: lists that must not be empty
NON_EMPTY = {"plan": ["agents"], "probe": ["encoders", "tasks", "probes", "seeds"]}
GOOD = {"collect": ["seed=3", "progress=false"], "plan": ["seed=3", "videos=0"],
        "pretrain": ["seed=3", "progress=false"], "train_wm": ["seed=3", "progress=false"],
        "probe": ["epochs=2", "progress=false"]}


@cache
def leaves(name: str) -> tuple[tuple[str, object], ...]:
    """Every leaf of the command's composed default config: (dotted key, default)."""
    importlib.import_module(f"jepa_world.{name}")  # registers the command's schema
    with initialize_config_module("jepa_world.configs", version_base="1.3"):
        cfg = compose(name)

    def walk(node: DictConfig, prefix: str):
        for key in node:
            value = node._get_node(key)
            if isinstance(value, DictConfig):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", node[key]

    return tuple(walk(cfg, ""))


def wrong_values(default: object) -> list[str]:
    """Values of the wrong type (or not finite) for a field with this default."""
    if isinstance(default, bool):
        return ["maybe", "[true]"]
    if isinstance(default, int):
        return ["many", "1.5", "nan", "[1]"]
    if isinstance(default, float):
        return ["abc", "nan", "inf", "-inf", "1e999"]
    if isinstance(default, ListConfig):
        return ["7x", "{a: 1}"]
    return []


@st.composite
def bad_command(draw) -> tuple[str, list[str]]:
    name = draw(st.sampled_from(sorted(SCHEMAS)))
    kind = draw(st.sampled_from(["unknown", "type", "count", "empty"]))
    if kind == "count" or (kind == "empty" and name not in NON_EMPTY):
        bad = f"{draw(st.sampled_from(COUNTS[name]))}={draw(st.sampled_from(['-1', '0', '-7']))}"
    elif kind == "empty":
        bad = f"{draw(st.sampled_from(NON_EMPTY[name]))}=[]"
    elif kind == "unknown":
        group = draw(st.sampled_from(["", "env.", "optim.", "data."]))
        bad = f"{group}zz_{draw(st.from_regex(r'[a-z]{2,6}', fullmatch=True))}=1"
    else:
        typed = [(k, v) for k, v in leaves(name) if wrong_values(v)]
        key, default = draw(st.sampled_from(typed))
        bad = f"{key}={draw(st.sampled_from(wrong_values(default)))}"
    good = draw(st.lists(st.sampled_from(GOOD[name]), max_size=2, unique=True))
    position = draw(st.integers(0, len(good)))
    return name, good[:position] + [bad] + good[position:]


def check(name: str, argv: list[str]) -> tuple[int, str]:
    """What the entry point runs before Hydra makes its output folder: the group names, the
    composition, the dataclass conversion."""
    importlib.import_module(f"jepa_world.{name}")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cli.check_group_overrides(argv)
            cli.check_overrides_compose(name, argv, SCHEMAS[name])
    except SystemExit as exc:
        return exc.code, err.getvalue()
    return 0, err.getvalue()


@settings(max_examples=120, derandomize=True, deadline=None, database=None)
@given(bad_command())
def test_random_bad_overrides_fail_in_one_line_before_anything_is_written(command):
    name, argv = command
    with tempfile.TemporaryDirectory() as folder:
        before = os.getcwd()
        os.chdir(folder)
        try:
            code, err = check(name, argv)
        finally:
            os.chdir(before)
        assert os.listdir(folder) == []
    assert code == 2, (name, argv, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, argv, err)


@pytest.mark.parametrize("name, args, start", [
    ("collect", ["episodes=-1"], "error: episodes: must be >= 1"),
    ("pretrain", ["optim.lr=inf"], "error: optim.lr: must be a finite number, got inf"),
    ("train_wm", ["loss.rollout_weight=nan"], "error: loss.rollout_weight: must be a finite"),
    ("plan", ["agents=[]"], "error: agents: "),
    ("probe", ["seeds=[]"], "error: seeds: "),
])
def test_whole_commands_refuse_bad_values_and_write_nothing(tmp_path, capsys, monkeypatch,
                                                            name, args, start):
    monkeypatch.chdir(tmp_path)
    data, run = tmp_path / "data", tmp_path / "run"
    target = {"collect": f"data_dir={data}", "pretrain": f"run_dir={run}",
              "train_wm": f"run_dir={run}", "plan": f"output_dir={run}",
              "probe": f"output_dir={run}"}[name]
    code, out, err = call(name, *args, target, capsys=capsys)
    assert_one_line_error(code, err, start)
    assert os.listdir(tmp_path) == []  # no data, no run folder, no Hydra output folder


def test_paths_that_are_files_or_missing_fail_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    cases = [("plan", f"world_model={tmp_path / 'file'}", "error: world_model: "),
             ("plan", f"world_model={tmp_path / 'missing'}", "error: world_model: "),
             ("probe", f"encoders=[{tmp_path / 'missing'}]", "error: encoders[0]"),
             ("train_wm", f"encoder.path={tmp_path / 'missing'}", "error: encoder.path: "),
             ("collect", f"data_dir={tmp_path / 'file'}", "error: data_dir: ")]
    for name, arg, start in cases:
        code, _, err = call(name, arg, "data.collect=false" if name == "train_wm" else
                            "progress=false", capsys=capsys)
        assert_one_line_error(code, err, start)
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["file"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["plan", "probe"])
def test_cuda_on_a_cpu_machine_fails_in_one_line_before_any_work(tmp_path, capsys, monkeypatch,
                                                                 name):
    monkeypatch.chdir(tmp_path)
    code, _, err = call(name, "device=cuda", f"output_dir={tmp_path / 'out'}",
                        f"data.data_dir={tmp_path / 'data'}" if name == "probe" else "videos=0",
                        capsys=capsys)
    assert_one_line_error(code, err, "error: device")
    assert os.listdir(tmp_path) == []  # nothing collected, no output folder
