"""Window sampling: shapes, boundaries, frameskip grouping, multi-worker loading."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from jepa_world.data import WindowDataset, scan_shards, split_episodes
from jepa_world.errors import DatasetError


def raw(root, episode):
    ref = next(r for r in scan_shards(root) if r.index == episode)
    with h5py.File(ref.shard, "r") as f:
        g = f["episodes"][f"{episode:06d}"]
        return {k: g[k][()] for k in g}


def test_shapes(tiny_dataset):
    ds = WindowDataset(tiny_dataset, context=3, future=2, frameskip=2)
    item = ds[0]
    assert item["pixels"].shape == (5, 3, 32, 32) and item["pixels"].dtype == torch.uint8
    assert item["actions"].shape == (4, 4) and item["actions"].dtype == torch.float32
    assert item["proprio"].shape == (5, 4)
    assert "sim_state" not in item


@pytest.mark.parametrize("context, future, frameskip, stride", [(1, 0, 1, 1), (2, 3, 1, 1),
                                                                 (3, 2, 2, 1), (2, 1, 3, 2),
                                                                 (4, 0, 4, 1)])
def test_every_window_lies_inside_one_episode(tiny_dataset, context, future, frameskip, stride):
    ds = WindowDataset(tiny_dataset, context, future, frameskip, stride)
    length = context + future
    span = (length - 1) * frameskip
    # 5 episodes of 12 steps: windows start at 0, stride, ... up to 12 - span.
    per_episode = (12 - span) // stride + 1
    assert len(ds) == 5 * per_episode
    starts = [ds.locate(i) for i in range(len(ds))]
    assert [t0 for _, t0 in starts[:per_episode]] == list(range(0, 12 - span + 1, stride))
    assert all(t0 + span <= ref.length for ref, t0 in starts)
    assert [ref.index for ref, _ in starts] == sorted(ref.index for ref, _ in starts)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_windows_hold_the_stored_frames_and_grouped_actions(tiny_dataset):
    ds = WindowDataset(tiny_dataset, context=2, future=2, frameskip=3, fields=FIELDS_ALL)
    index = len(ds) - 1  # last window of the last episode
    ref, t0 = ds.locate(index)
    item = ds[index]
    data = raw(tiny_dataset, ref.index)
    assert (int(item["episode"]), int(item["t0"])) == (ref.index, t0)
    frames = [t0, t0 + 3, t0 + 6, t0 + 9]
    np.testing.assert_array_equal(item["pixels"].numpy(),
                                  data["pixels"][frames].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(item["proprio"].numpy(), data["proprio"][frames])
    np.testing.assert_array_equal(item["sim_state"].numpy(), data["sim_state"][frames])
    for k in range(3):  # the 3 actions between frame k and k + 1, concatenated
        np.testing.assert_array_equal(item["actions"][k].numpy(),
                                      data["actions"][t0 + 3 * k:t0 + 3 * k + 3].reshape(-1))


FIELDS_ALL = ("pixels", "actions", "proprio", "sim_state")


def test_episode_subsets_and_split(tiny_dataset):
    train, val = split_episodes(tiny_dataset, val_fraction=0.4)
    assert train == [0, 1, 2] and val == [3, 4]
    ds = WindowDataset(tiny_dataset, context=2, episodes=val)
    assert {int(ds[i]["episode"]) for i in range(len(ds))} == {3, 4}
    with pytest.raises(DatasetError, match=r"no episodes \[9\]"):
        WindowDataset(tiny_dataset, episodes=[1, 9])


def test_bad_arguments(tiny_dataset, tmp_path):
    with pytest.raises(DatasetError, match="no episode is long enough"):
        WindowDataset(tiny_dataset, context=5, future=5, frameskip=2)
    with pytest.raises(ValueError, match="context >= 1"):
        WindowDataset(tiny_dataset, context=0)
    with pytest.raises(ValueError, match="unknown fields"):
        WindowDataset(tiny_dataset, fields=("pixels", "depth"))
    with pytest.raises(DatasetError, match="not a jepa_world dataset"):
        WindowDataset(tmp_path)


@pytest.mark.parametrize("context_kind", ["fork", "spawn"])
def test_multi_worker_loader_sees_every_window_once(tiny_dataset, context_kind):
    ds = WindowDataset(tiny_dataset, context=2, future=1)
    ds[0]  # open a file handle in the parent: workers must not reuse it
    loader = DataLoader(ds, batch_size=7, num_workers=2, multiprocessing_context=context_kind)
    seen = [(int(e), int(t)) for batch in loader for e, t in zip(batch["episode"], batch["t0"],
                                                                 strict=True)]
    assert len(seen) == len(ds) == len(set(seen))
    batch = next(iter(loader))
    assert batch["pixels"].shape == (7, 3, 3, 32, 32)


def test_pickles_without_open_files(tiny_dataset):
    ds = WindowDataset(tiny_dataset, context=2)
    first = ds[3]
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[3]["pixels"], first["pixels"])
    ds.close()
