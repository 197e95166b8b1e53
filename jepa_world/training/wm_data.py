"""Episodes for world-model training, with every frame encoded ONCE by the frozen encoder.

The encoder is frozen, so its features are a pure function of the frame: caching them turns
each training step into a few small matrix products instead of a ViT forward per frame. Windows
are sampled on the fly from the cache (``[E, L, N, D]`` in float16, ~25 KB a 64-token frame).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from jepa_world.atomic import atomic_write
from jepa_world.data.windows import WindowDataset
from jepa_world.errors import DatasetError


@dataclass
class EncodedEpisodes:
    """Equal-length episodes: ``tokens [E, L, N, D]`` (float16), ``actions [E, L - 1, A]``,
    ``proprio [E, L, P]``, ``ids [E]`` (dataset episode ids), and optionally ``goal [E, L, G]``:
    each frame's goal-state targets (:func:`load_goal_states`; push: the block pose).

    For an encoder that is fine-tuned (``encoder.lr_scale`` > 0) ``tokens`` holds the frames
    themselves, ``[E, L, 3, H, W]`` uint8: :meth:`windows` gathers them as they are."""

    tokens: torch.Tensor
    actions: torch.Tensor
    proprio: torch.Tensor
    ids: list[int]
    goal: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.tokens.shape[1]

    def window_starts(self, window: int, frameskip: int) -> int:
        """Number of valid start frames of a ``window``-frame window at ``frameskip``."""
        return self.num_frames - (window - 1) * frameskip

    def windows(
        self, episode: torch.Tensor, start: torch.Tensor, window: int, frameskip: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gather windows: ``episode, start [B]`` -> tokens ``[B, W, N, D]`` (float32; uint8
        frames stay uint8), step actions ``[B, W - 1, frameskip * A]`` (the env actions between
        frames, concatenated), proprio ``[B, W, P]``."""
        frames = start[:, None] + torch.arange(window) * frameskip  # [B, W]
        tokens = self.tokens[episode[:, None], frames]
        tokens = tokens.float() if tokens.is_floating_point() else tokens
        steps = start[:, None] + torch.arange((window - 1) * frameskip)  # [B, (W-1) s]
        actions = rearrange(self.actions[episode[:, None], steps], "b (w s) a -> b w (s a)",
                            s=frameskip)
        return tokens, actions, self.proprio[episode[:, None], frames]

    def goal_windows(self, episode: torch.Tensor, start: torch.Tensor, window: int,
                     frameskip: int) -> torch.Tensor:
        """The goal-state targets ``[B, W, G]`` of the windows :meth:`windows` gathers."""
        if self.goal is None:
            raise ValueError("these episodes were encoded without goal states")
        frames = start[:, None] + torch.arange(window) * frameskip
        return self.goal[episode[:, None], frames]

    def sample_starts(self, batch: int, window: int, frameskip: int,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(episode [B], start [B])`` of ``batch`` windows drawn uniformly over episodes and
        start frames."""
        starts = self.window_starts(window, frameskip)
        if starts < 1:
            raise DatasetError(f"episodes of {self.num_frames} frames are too short for windows "
                               f"of {window} frames at frameskip {frameskip}")
        episode = torch.randint(len(self.ids), (batch,), generator=generator)
        start = torch.randint(starts, (batch,), generator=generator)
        return episode, start

    def sample(
        self, batch: int, window: int, frameskip: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``batch`` windows uniformly over episodes and start frames (see :meth:`windows`)."""
        return self.windows(*self.sample_starts(batch, window, frameskip, generator), window,
                            frameskip)


def encode_episodes(
    root: str | Path,
    episodes: Sequence[int],
    encode: Callable[[torch.Tensor], torch.Tensor],
    batch_frames: int = 256,
    progress: bool = False,
) -> EncodedEpisodes:
    """Read whole episodes of a dataset and encode their frames.

    Args:
        root: dataset folder (``python -m jepa_world.collect``).
        episodes: episode ids to load (all must have the dataset's ``episode_length``).
        encode: frozen frame encoder, uint8 ``[F, 3, H, W]`` -> ``[F, N, D]`` (kept in float16;
            an ``encode`` that returns uint8, e.g. the frames themselves, is kept as it is).
        batch_frames: frames per ``encode`` call.
        progress: show a tqdm bar.
    """
    if not episodes:
        raise DatasetError(f"{root}: no episodes selected")
    data = WindowDataset(root, context=1, episodes=episodes)
    length = data.manifest.episode_length
    full = WindowDataset(root, context=length + 1, episodes=episodes)
    if len(full) != len(episodes):
        raise DatasetError(f"{root}: every episode must have {length} steps to be encoded whole; "
                           f"{len(episodes) - len(full)} are shorter")
    tokens, actions, proprio = [], [], []
    ids = []
    bar = tqdm(range(len(full)), desc="encoding frames", unit="episode", disable=not progress)
    pending: list[torch.Tensor] = []
    for index in bar:
        item = full[index]
        ids.append(int(item["episode"]))
        actions.append(item["actions"])
        proprio.append(item["proprio"])
        pending.append(item["pixels"])
        if sum(p.shape[0] for p in pending) >= batch_frames or index == len(full) - 1:
            frames = torch.cat(pending)
            with torch.no_grad():
                out = torch.cat([encode(chunk) for chunk in frames.split(batch_frames)])
            out = out.to(torch.float16) if out.is_floating_point() else out
            tokens.extend(out.split(length + 1))
            pending = []
    full.close()
    data.close()
    return EncodedEpisodes(torch.stack(tokens), torch.stack(actions), torch.stack(proprio), ids)


def load_goal_states(root: str | Path, ids: Sequence[int], state_fn: Callable[[np.ndarray],
                     np.ndarray], angles: Sequence[bool]) -> torch.Tensor:
    """Goal-state targets ``[E, L, G']`` of whole episodes ``ids`` (in that order): ``state_fn``
    of every frame's sim state (push: the block's ``[x, y, theta]``), its angle entries as sine
    and cosine (:func:`~jepa_world.probes.tasks.state_targets`)."""
    from jepa_world.data.store import Manifest
    from jepa_world.probes.tasks import state_targets

    length = Manifest.load(Path(root)).episode_length
    full = WindowDataset(root, context=length + 1, episodes=ids, fields=("sim_state",))
    try:
        by_id = {int(item["episode"]): item["sim_state"].numpy()
                 for item in (full[i] for i in range(len(full)))}
    finally:
        full.close()
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DatasetError(f"{root}: episodes {missing[:5]} have fewer than {length} steps")
    states = np.stack([state_fn(by_id[i]) for i in ids])
    return torch.from_numpy(state_targets(states, list(angles)))


def encoder_fingerprint(encoder: torch.nn.Module, *extra: object) -> str:
    """A short hash of an encoder's weights (and anything else that changes its features)."""
    digest = hashlib.sha256(json.dumps([str(e) for e in extra]).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_encode_episodes(
    root: str | Path,
    episodes: Sequence[int],
    encode: Callable[[torch.Tensor], torch.Tensor],
    fingerprint: str,
    cache_dir: str | Path | None,
    batch_frames: int = 256,
    progress: bool = False,
) -> EncodedEpisodes:
    """:func:`encode_episodes`, stored in ``cache_dir/<fingerprint>-<episodes hash>.safetensors``
    and read back from there next time (encoding is most of a short run's time on a CPU).

    ``fingerprint`` must identify the encoder and preprocessing (:func:`encoder_fingerprint`);
    the dataset's manifest and the episode ids are added to the key here. An unreadable cache
    file is re-created, never trusted. ``cache_dir=None`` disables caching.
    """
    if cache_dir is None:
        return encode_episodes(root, episodes, encode, batch_frames, progress)
    manifest = (Path(root) / "manifest.json").read_bytes()
    key = hashlib.sha256(manifest + json.dumps(sorted(int(e) for e in episodes)).encode())
    path = Path(cache_dir) / f"{fingerprint}-{key.hexdigest()[:16]}.safetensors"
    if path.exists():
        try:
            with safe_open(str(path), "pt") as handle:
                written_by = (handle.metadata() or {}).get("fingerprint")
            if written_by != fingerprint:  # copied or renamed: never trust another's features
                print(f"feature cache {path} was written by another encoder ({written_by}); "
                      f"encoding again")
            else:
                tensors = load_file(str(path))
                return EncodedEpisodes(tensors["tokens"], tensors["actions"],
                                       tensors["proprio"], tensors["ids"].tolist())
        except (SafetensorError, KeyError, OSError) as err:
            print(f"feature cache {path} is unreadable ({err}); encoding again")
    data = encode_episodes(root, episodes, encode, batch_frames, progress)
    tensors = {"tokens": data.tokens.contiguous(), "actions": data.actions.contiguous(),
               "proprio": data.proprio.contiguous(),
               "ids": torch.tensor(data.ids, dtype=torch.int64)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"fingerprint": fingerprint}))
    return data


__all__ = ["EncodedEpisodes", "cached_encode_episodes", "encode_episodes",
           "encoder_fingerprint", "load_goal_states"]
