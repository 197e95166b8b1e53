"""`python -m jepa_world.collect` as a user runs it: success, and one-line errors for bad input."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import PYTHON, REPO, python_env


def run(*args, cwd=REPO, timeout=180):
    return subprocess.run([PYTHON, "-m", "jepa_world.collect", *args], env=python_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_collect_command(tmp_path):
    data = tmp_path / "ds"
    proc = run(f"data_dir={data}", "episodes=2", "episode_length=5", "env.image_size=24",
               "policy=uniform", f"hydra.run.dir={tmp_path}/out")
    assert proc.returncode == 0, proc.stderr
    assert f"dataset {data}: 2 episodes" in proc.stdout
    assert "ep/s" in proc.stderr  # the progress bar
    assert (data / "manifest.json").is_file()
    assert '"name": "uniform"' in (data / "manifest.json").read_text()


@pytest.mark.parametrize("args, message", [
    (["env=pusht"],
     "error: unknown env 'pusht'; known: gym, maze, pointmaze, push, reach, reacher, tworoom"),
    (["policy=brownian"],
     "error: unknown policy 'brownian'; known: auto, contact, correlated, doorway, uniform, walls"),
    (["episodes=-3"], "error: episodes: must be >= 1, got -3"),
    (["env.name=jepa_world/Nope-v0"], "error: env.name: unknown env 'jepa_world/Nope-v0'"),
    (["vectorization=threads"], "error: vectorization: 'threads' is not one of sync, async"),
])
def test_bad_overrides_fail_in_one_line(tmp_path, args, message):
    proc = run(*args, f"hydra.run.dir={tmp_path}/out")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["episodes=many"], "error: episodes: Value 'many' of type 'str' could not be converted"),
    (["env.image_size=big"], "error: env.image_size: Value 'big'"),
    (["nosuchkey=3"], "error: nosuchkey: Key 'nosuchkey' not in 'CollectConfig'"),
])
def test_wrong_type_or_key_names_the_field_in_one_line(tmp_path, args, message):
    proc = run(*args, f"hydra.run.dir={tmp_path}/out")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_hydra_flags_still_work():
    proc = run("--cfg", "job", "episodes=7")
    assert proc.returncode == 0, proc.stderr
    assert "episodes: 7" in proc.stdout


def test_dataset_of_another_size_and_corrupt_shards(tmp_path):
    data = tmp_path / "ds"
    common = [f"data_dir={data}", "episodes=2", "episode_length=5", "episodes_per_shard=1",
              f"hydra.run.dir={tmp_path}/out"]
    assert run(*common, "env.image_size=24").returncode == 0
    proc = run(*common, "env.image_size=32")
    assert proc.returncode == 2
    assert "image_size: on disk [24, 24], requested [32, 32]" in proc.stderr
    shard = data / "shard-000001-000001.h5"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated, as after a disk error
    proc = run(*common, "env.image_size=24")
    assert proc.returncode == 2
    assert "shard-000001-000001.h5 is corrupt" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert len(shard.read_bytes()) == 100  # left for the user to inspect or delete
