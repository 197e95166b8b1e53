"""Trajectory datasets: the shard store, collection, and window readers."""

from jepa_world.data.store import Episode, EpisodeRef, Manifest, scan_shards
from jepa_world.data.windows import WindowDataset, split_episodes

__all__ = ["Episode", "EpisodeRef", "Manifest", "WindowDataset", "scan_shards", "split_episodes"]
