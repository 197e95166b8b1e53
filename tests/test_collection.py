"""Collection: round trip against the simulator, resume after a killed process, bad input."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_world.config import EnvConfig, PolicyConfig
from jepa_world.data.collection import collect, shard_plan
from jepa_world.data.store import Manifest, scan_shards
from jepa_world.errors import DatasetError
from tests.conftest import PYTHON, REPO, python_env, small_config


def read_episode(ref):
    with h5py.File(ref.shard, "r") as f:
        g = f["episodes"][f"{ref.index:06d}"]
        return {k: g[k][()] for k in g} | {"seed": int(g.attrs["seed"])}


def dataset_contents(root):
    return {ref.index: read_episode(ref) for ref in scan_shards(root)}


def test_round_trip_matches_replaying_the_simulator(tiny_dataset):
    manifest = Manifest.load(tiny_dataset)
    assert manifest.env_id == "jepa_world/Reach-v0" and manifest.image_size == [32, 32]
    assert manifest.policy["name"] == "correlated" and manifest.episode_length == 12
    episodes = dataset_contents(tiny_dataset)
    assert sorted(episodes) == [0, 1, 2, 3, 4]
    ep = episodes[3]
    assert ep["seed"] == 3 + 3
    assert ep["pixels"].shape == (13, 32, 32, 3) and ep["actions"].shape == (12, 2)
    # Replaying the stored seed and actions reproduces every stored frame and state.
    env = gym.make(manifest.env_id, max_episode_steps=12, **manifest.env_kwargs)
    obs, info = env.reset(seed=ep["seed"])
    np.testing.assert_array_equal(obs["pixels"], ep["pixels"][0])
    for t, action in enumerate(ep["actions"]):
        obs, _, _, _, info = env.step(action)
        np.testing.assert_array_equal(obs["pixels"], ep["pixels"][t + 1])
        np.testing.assert_allclose(obs["proprio"], ep["proprio"][t + 1])
        np.testing.assert_array_equal(info["sim_state"], ep["sim_state"][t + 1])
    env.close()


def test_episodes_do_not_depend_on_parallelism_or_shard_size(tiny_dataset, tmp_path):
    collect(small_config(tmp_path / "other", num_envs=3, episodes_per_shard=5))
    a, b = dataset_contents(tiny_dataset), dataset_contents(tmp_path / "other")
    assert a.keys() == b.keys()
    for i in a:
        for key in a[i]:
            np.testing.assert_array_equal(a[i][key], b[i][key])


def test_rerun_is_a_no_op_and_growing_adds_only_new_episodes(tmp_path):
    root = tmp_path / "grow"
    first = collect(small_config(root, episodes=3))
    before = {p.name: p.stat().st_mtime_ns for p in root.glob("shard-*.h5")}
    again = collect(small_config(root, episodes=3))
    assert again.episodes_collected == 0 and again.episodes_total == 3
    grown = collect(small_config(root, episodes=6))
    assert first.episodes_collected == 3 and grown.episodes_collected == 3
    assert sorted(r.index for r in scan_shards(root)) == list(range(6))
    for name, mtime in before.items():  # existing shards untouched
        assert (root / name).stat().st_mtime_ns == mtime


@given(st.lists(st.integers(0, 60), unique=True).map(sorted), st.integers(1, 7))
def test_shard_plan_covers_missing_ids_in_consecutive_runs(missing, per_shard):
    runs = list(shard_plan(missing, per_shard))
    assert [i for run in runs for i in run] == missing
    for run in runs:
        assert 1 <= len(run) <= per_shard
        assert run == list(range(run[0], run[0] + len(run)))


def test_other_settings_in_the_same_directory_are_refused(tiny_dataset):
    shards = {p: p.stat().st_mtime_ns for p in tiny_dataset.glob("*")}
    with pytest.raises(DatasetError, match="image_size"):
        collect(small_config(tiny_dataset, env=EnvConfig(image_size=48)))
    with pytest.raises(DatasetError, match="policy"):
        collect(small_config(tiny_dataset, policy=PolicyConfig(name="uniform")))
    assert {p: p.stat().st_mtime_ns for p in tiny_dataset.glob("*")} == shards


def test_corrupt_shard_is_reported_and_left_alone(tmp_path):
    root = tmp_path / "corrupt"
    collect(small_config(root, episodes=4))
    shard = root / "shard-000002-000003.h5"
    shard.write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="shard-000002-000003.h5 is corrupt"):
        collect(small_config(root, episodes=4))
    assert shard.read_bytes() == b"not an hdf5 file"


COLLECT_ARGS = ["episodes=12", "episode_length=40", "episodes_per_shard=2", "num_envs=1",
                "env.image_size=32", "progress=false", "hydra.run.dir={out}/hydra"]


def run_collect(root: Path, out: Path, **kwargs):
    args = [PYTHON, "-m", "jepa_world.collect", f"data_dir={root}",
            *(a.format(out=out) for a in COLLECT_ARGS)]
    return subprocess.Popen(args, env=python_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_resume_after_a_killed_collection(tmp_path):
    root = tmp_path / "killed"
    proc = run_collect(root, tmp_path)
    deadline = time.monotonic() + 120
    while not list(root.glob("shard-*.h5")):  # wait for the first whole shard
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "collection wrote no shard in 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sorted(r.index for r in scan_shards(root))
    assert 0 < len(done_before) < 12, "the kill should land mid-collection"

    resumed = run_collect(root, tmp_path)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert not list(root.glob(".*.tmp"))
    after = dataset_contents(root)
    assert sorted(after) == list(range(12))
    assert len({ep["seed"] for ep in after.values()}) == 12  # no duplicated seeds

    # Identical to a collection that was never interrupted.
    straight = tmp_path / "straight"
    proc = run_collect(straight, tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    reference = dataset_contents(straight)
    for i in range(12):
        for key in reference[i]:
            np.testing.assert_array_equal(after[i][key], reference[i][key])
