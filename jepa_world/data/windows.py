"""Fixed-length windows of collected episodes, read lazily by random access across shards.

A window of ``context + future`` frames starting at step ``t0`` with ``frameskip`` ``s`` holds the
frames ``t0, t0 + s, ..., t0 + (L - 1) s`` and, between consecutive frames, the ``s`` actions taken
in between, concatenated into one vector (action repeat / frameskip grouping). The same reader
serves pretraining (clips of ``pixels``) and world-model training (pixels, actions, proprio).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from jepa_world.data.store import EpisodeRef, Manifest, scan_shards
from jepa_world.errors import DatasetError

FIELDS = ("pixels", "actions", "proprio", "sim_state")


class WindowDataset(Dataset):
    """Every window of every (selected) episode; one item is a dict of tensors.

    Item shapes with ``L = context + future`` frames, ``s = frameskip``, action dim ``A``:

    * ``pixels``    uint8   ``[L, 3, H, W]``
    * ``actions``   float32 ``[L - 1, s * A]`` (the actions between frame k and k + 1)
    * ``proprio``   float32 ``[L, P]``
    * ``sim_state`` float64 ``[L, S]`` (only when asked for in ``fields``)
    * ``episode``, ``t0``: int64 scalars saying where the window came from

    Files are opened on first access in each process, never shared across a fork, so the dataset
    is safe in multi-worker DataLoaders (workers started by fork, spawn or forkserver).
    """

    def __init__(
        self,
        root: str | Path,
        context: int = 1,
        future: int = 0,
        frameskip: int = 1,
        stride: int = 1,
        episodes: Sequence[int] | None = None,
        fields: Sequence[str] = ("pixels", "actions", "proprio"),
    ):
        if context < 1 or future < 0 or frameskip < 1 or stride < 1:
            raise ValueError(f"need context >= 1, future >= 0, frameskip >= 1, stride >= 1; got "
                             f"context={context}, future={future}, frameskip={frameskip}, "
                             f"stride={stride}")
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; available: {', '.join(FIELDS)}")
        self.root = Path(root)
        self.manifest = Manifest.load(self.root)
        self.length = context + future
        self.context, self.future = context, future
        self.frameskip, self.stride = frameskip, stride
        self.fields = tuple(fields)

        refs = scan_shards(self.root, self.manifest)
        if episodes is not None:
            wanted = set(int(i) for i in episodes)
            missing = wanted - {r.index for r in refs}
            if missing:
                raise DatasetError(f"{self.root} has no episodes {sorted(missing)[:10]}")
            refs = [r for r in refs if r.index in wanted]
        span = (self.length - 1) * frameskip  # steps covered by one window
        counts = np.array([max(0, (r.length - span) // stride + 1) for r in refs], np.int64)
        self.episodes: list[EpisodeRef] = [r for r, c in zip(refs, counts, strict=True) if c > 0]
        counts = counts[counts > 0]
        if len(self.episodes) == 0:
            raise DatasetError(f"{self.root}: no episode is long enough for a window of "
                               f"{self.length} frames with frameskip {frameskip} ({span} steps)")
        self._ends = np.cumsum(counts)
        self._files: dict[Path, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._ends[-1])

    def locate(self, index: int) -> tuple[EpisodeRef, int]:
        """Map a flat window index to ``(episode, t0)``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        index %= len(self)
        k = int(np.searchsorted(self._ends, index, side="right"))
        before = int(self._ends[k - 1]) if k else 0
        return self.episodes[k], (index - before) * self.stride

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ref, t0 = self.locate(index)
        group = self._file(ref.shard)["episodes"][f"{ref.index:06d}"]
        s = self.frameskip
        # Read the contiguous span and subsample in numpy: HDF5 strided selections are ~100x slower.
        span = slice(t0, t0 + (self.length - 1) * s + 1)
        item: dict[str, torch.Tensor] = {
            "episode": torch.tensor(ref.index),
            "t0": torch.tensor(t0),
        }
        if "pixels" in self.fields:
            pixels = group["pixels"][span][::s]
            item["pixels"] = torch.from_numpy(rearrange(pixels, "l h w c -> l c h w"))
        if "actions" in self.fields:
            acts = group["actions"][t0:t0 + (self.length - 1) * s]
            item["actions"] = torch.from_numpy(rearrange(acts, "(l s) a -> l (s a)", s=s))
        if "proprio" in self.fields:
            item["proprio"] = torch.from_numpy(group["proprio"][span][::s])
        if "sim_state" in self.fields:
            item["sim_state"] = torch.from_numpy(group["sim_state"][span][::s])
        return item

    def _file(self, path: Path) -> h5py.File:
        if os.getpid() != self._pid:  # forked into a worker: never reuse the parent's handles
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(path)
        if f is None:
            try:
                f = self._files[path] = h5py.File(path, "r")
            except OSError as exc:
                raise DatasetError(f"cannot read shard {path} ({exc})") from exc
        return f

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}  # handles cannot be pickled; each worker opens its own
        return state

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}


def split_episodes(root: str | Path, val_fraction: float = 0.1) -> tuple[list[int], list[int]]:
    """Split a dataset's episode ids into ``(train, val)``; the last ids are held out.

    Ids are seeds, so the split is deterministic and stays put when more episodes are collected
    only if ``val_fraction`` is applied to the same episode count; pass explicit ids otherwise.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ids = sorted(ref.index for ref in scan_shards(Path(root)))
    n_val = max(1, int(round(len(ids) * val_fraction)))
    if n_val >= len(ids):
        raise DatasetError(f"{root} has {len(ids)} episodes: too few to hold out {n_val}")
    return ids[:-n_val], ids[-n_val:]
