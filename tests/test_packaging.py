"""A non-editable install finds its configs and assets, and puts nothing at the top level."""

from __future__ import annotations

import os
import subprocess
import zipfile

import pytest

from tests.conftest import PYTHON, REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("jepa_world-*.whl")
    return path


def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for required in ["jepa_world/configs/collect.yaml", "jepa_world/configs/env/reach.yaml",
                     "jepa_world/configs/policy/uniform.yaml", "jepa_world/envs/assets/reach.xml",
                     "jepa_world/envs/reach.py", "jepa_world/planners/__init__.py",
                     "jepa_world/configs/plan.yaml", "jepa_world/configs/planner/cem.yaml",
                     "jepa_world/pretrained/reach/config.json",
                     "jepa_world/pretrained/reach/model.safetensors",
                     "jepa_world/pretrained/reach/decoder/config.json",
                     "jepa_world/pretrained/reach/decoder/model.safetensors"]:
        assert required in names
    # Every subpackage of the source tree is installed (pyproject lists them explicitly).
    for init in (REPO / "jepa_world").rglob("__init__.py"):
        assert str(init.relative_to(REPO)) in names, f"{init.parent} missing from pyproject"
    top_level = {n.split("/")[0] for n in names if not n.startswith("jepa_world-")}
    assert top_level == {"jepa_world"}  # no bare `envs` or `planners` to collide with


def test_installed_package_runs_from_an_unrelated_directory(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([PYTHON, "-m", "pip", "install", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [PYTHON, "-c", "import jepa_world.envs, gymnasium as gym; print(jepa_world.envs.__file__);"
         "e = gym.make('jepa_world/Reach-v0', image_size=16); e.reset(seed=0); e.close()"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(site))
    proc = subprocess.run([PYTHON, "-m", "jepa_world.collect", "--cfg", "job", "env=reach"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "image_size: 64" in proc.stdout and "exploration: correlated" in proc.stdout
    assert "name: auto" in proc.stdout  # policy=auto: the env's own (reach: correlated)
    # the main job finds the shipped model inside the installed package
    proc = subprocess.run([PYTHON, "-m", "jepa_world.plan", "episodes=1", "videos=0",
                           "planner.samples=8", "planner.iterations=1", "planner.elites=2",
                           "output_dir=out", "progress=false", "tensorboard=false"],
                          cwd=elsewhere, env=dict(env, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "out" / "summary.json").is_file()
    assert str(site / "jepa_world" / "pretrained" / "reach") in (
        elsewhere / "out" / "summary.json").read_text()


COMMANDS = ("collect", "pretrain", "train_wm", "plan", "probe", "decode")


def test_console_scripts_are_declared_and_point_at_the_entry_points():
    import importlib

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {f"jepa-{c.replace('_', '-')}" for c in COMMANDS}
    for command in COMMANDS:
        target = scripts[f"jepa-{command.replace('_', '-')}"]
        module, _, attr = target.partition(":")
        assert module == f"jepa_world.{command}"  # the module `python -m` runs
        assert callable(getattr(importlib.import_module(module), attr))
