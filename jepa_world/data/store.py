"""On-disk trajectory store: a manifest plus HDF5 shards of whole episodes.

Layout of a dataset directory::

    manifest.json                    what every episode has in common (env, sizes, policy, ...)
    shard-000000-000019.h5           episodes 0..19, written whole then renamed into place
    shard-000020-000039.h5
    ...

Inside a shard, episode ``i`` is the group ``episodes/000i`` with datasets

    pixels     uint8   [T+1, H, W, 3]   observation frames (chunked per frame, lzf-compressed)
    actions    float32 [T, A]           action taken after frame t
    proprio    float32 [T+1, P]
    sim_state  float64 [T+1, S]         full MuJoCo physics state of each frame

and attributes ``seed`` (the env's reset seed) and ``desired_goal``. A shard is written to a
temporary name and renamed when complete, so a shard name on disk always means a whole shard; the
episode ids it holds are in its name, and resuming collects only the ids no shard holds.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jepa_world.atomic import atomic_write
from jepa_world.errors import DatasetError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_SHARD_RE = re.compile(r"^shard-(\d{6})-(\d{6})\.h5$")
_PARTIAL_GLOB = ".*.tmp"  # temporary names of jepa_world.atomic.atomic_write
# Fields that must agree between a dataset on disk and a collection that would add to it.
_IDENTITY_FIELDS = ("format_version", "env_id", "env_kwargs", "image_size", "episode_length",
                    "action_low", "action_high", "policy", "seed")


@dataclass
class Manifest:
    """What every episode of a dataset shares; stored as ``manifest.json``."""

    env_id: str
    env_kwargs: dict[str, Any]
    image_size: list[int]  #: [H, W]
    episode_length: int  #: actions per episode
    action_low: list[float]
    action_high: list[float]
    proprio_dim: int
    sim_state_dim: int
    policy: dict[str, Any]
    seed: int  #: episode i was reset with seed + i
    format_version: int = FORMAT_VERSION
    library_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    def mismatches(self, other: Manifest) -> list[str]:
        """Human-readable differences in the fields that define the dataset."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: on disk {mine[k]!r}, requested {theirs[k]!r}"
                for k in _IDENTITY_FIELDS if mine[k] != theirs[k]]

    def save(self, root: Path) -> None:
        text = json.dumps(asdict(self), indent=2) + "\n"
        atomic_write(root / MANIFEST, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = Path(root) / MANIFEST
        if not path.is_file():
            raise DatasetError(f"{root} is not a jepa_world dataset (no {MANIFEST}); "
                               "create one with `python -m jepa_world.collect`")
        try:
            data = json.loads(path.read_text())
            version = data.get("format_version", 1)
            if isinstance(version, int) and version > FORMAT_VERSION:
                raise DatasetError(f"{path} has format version {version}, this jepa_world reads "
                                   f"up to {FORMAT_VERSION}; upgrade jepa_world to read it")
            return cls(**data)
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise DatasetError(f"{path} is corrupt ({exc}); delete the dataset directory and "
                               "collect again") from exc


@dataclass
class Episode:
    """One collected episode (see the module docstring for shapes)."""

    index: int
    seed: int
    pixels: np.ndarray
    actions: np.ndarray
    proprio: np.ndarray
    sim_state: np.ndarray
    desired_goal: np.ndarray


def shard_name(first: int, last: int) -> str:
    return f"shard-{first:06d}-{last:06d}.h5"


def write_shard(root: Path, episodes: list[Episode]) -> Path:
    """Write consecutive episodes as one shard, atomically (temporary file, fsync, rename)."""
    ids = [ep.index for ep in episodes]
    if not ids or ids != list(range(ids[0], ids[0] + len(ids))):
        raise ValueError(f"a shard holds consecutive episode ids, got {ids}")
    path = Path(root) / shard_name(ids[0], ids[-1])
    atomic_write(path, lambda tmp: _write_episodes(tmp, episodes))
    return path


def _write_episodes(path: str, episodes: list[Episode]) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        group = f.create_group("episodes")
        for ep in episodes:
            g = group.create_group(f"{ep.index:06d}")
            frame_chunk = (1, *ep.pixels.shape[1:])
            g.create_dataset("pixels", data=ep.pixels, chunks=frame_chunk, compression="lzf")
            g.create_dataset("actions", data=ep.actions.astype(np.float32))
            g.create_dataset("proprio", data=ep.proprio.astype(np.float32))
            g.create_dataset("sim_state", data=ep.sim_state.astype(np.float64))
            g.attrs["seed"] = ep.seed
            g.attrs["desired_goal"] = ep.desired_goal


def remove_partial_files(root: Path) -> list[Path]:
    """Delete temporary files left by an interrupted collection; return what was removed."""
    stale = sorted(Path(root).glob(_PARTIAL_GLOB))
    for path in stale:
        path.unlink()
    return stale


@dataclass(frozen=True)
class EpisodeRef:
    """Where an episode lives and how long it is (``length`` = number of actions)."""

    index: int
    shard: Path
    length: int


def scan_shards(root: Path, manifest: Manifest | None = None) -> list[EpisodeRef]:
    """List every episode of a dataset, checking each shard opens and holds what its name says.

    Raises :class:`DatasetError` naming the shard when one is unreadable or inconsistent.
    """
    root = Path(root)
    refs: list[EpisodeRef] = []
    for path in sorted(root.glob("shard-*.h5")):
        match = _SHARD_RE.match(path.name)
        if match is None:
            continue
        first, last = int(match.group(1)), int(match.group(2))
        try:
            with h5py.File(path, "r") as f:
                names = sorted(f["episodes"].keys())
                lengths = [f["episodes"][n]["actions"].shape[0] for n in names]
                frames = [f["episodes"][n]["pixels"].shape for n in names]
        except (OSError, KeyError) as exc:
            raise DatasetError(
                f"shard {path} is corrupt or unreadable ({exc}); delete it and run `python -m "
                "jepa_world.collect` with the same settings to collect its episodes again"
            ) from exc
        expected = [f"{i:06d}" for i in range(first, last + 1)]
        if names != expected:
            raise DatasetError(f"shard {path} holds episodes {names}, but its name says "
                               f"{first}..{last}; delete it and collect again")
        for name, length, shape in zip(names, lengths, frames, strict=True):
            if shape[0] != length + 1:
                raise DatasetError(f"shard {path}: episode {name} has {shape[0]} frames for "
                                   f"{length} actions (expected {length + 1})")
            if manifest is not None and list(shape[1:3]) != list(manifest.image_size):
                raise DatasetError(f"shard {path}: frames are {shape[1]}x{shape[2]} but the "
                                   f"manifest says {manifest.image_size}")
            refs.append(EpisodeRef(int(name), path, length))
    return refs
