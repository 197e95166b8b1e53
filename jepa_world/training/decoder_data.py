"""Data of decoder training and evaluation: the frames of whole episodes, their world-model
latents (encoder + pooler, encoded ONCE and cached, :func:`cached_encode_episodes`) and the
latents the world model IMAGINES for them from real history frames and the real actions.

Imagination follows the planning protocol: ``history`` real frames ``frameskip`` env steps apart,
then :meth:`WorldModel.rollout` with the actions that were really taken; the frame a prediction
is compared with is the one that really followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from jepa_world.data.windows import WindowDataset
from jepa_world.errors import ConfigError
from jepa_world.training.wm_data import EncodedEpisodes, cached_encode_episodes, encoder_fingerprint
from jepa_world.world_model import WorldModel


def load_frames(root: str | Path, episodes: Sequence[int]) -> torch.Tensor:
    """Every frame of whole episodes: uint8 ``[E, L, 3, H, W]`` (``L = episode_length + 1``)."""
    probe = WindowDataset(root, context=1, episodes=episodes, fields=("pixels",))
    length = probe.manifest.episode_length + 1
    probe.close()
    data = WindowDataset(root, context=length, episodes=episodes, fields=("pixels",))
    try:
        return torch.stack([data[i]["pixels"] for i in range(len(data))])
    finally:
        data.close()


def encode_latents(model: WorldModel, root: str | Path, episodes: Sequence[int],
                   cache_dir: str | Path | None, batch_frames: int = 256,
                   progress: bool = False) -> EncodedEpisodes:
    """World-model latents ``tokens [E, L, N, D]`` of every frame (cached under a key of the
    whole model's weights: encoder AND pooler), with the episodes' actions and proprio."""
    device = model.pixel_mean.device

    def encode(frames: torch.Tensor) -> torch.Tensor:  # [F, 3, H, W] uint8 -> [F, N, D]
        with torch.no_grad():
            return model.encode(frames.to(device)[None])[0].cpu()

    fingerprint = "wm-" + encoder_fingerprint(model, model.config.image_size,
                                              model.config.input_norm)
    return cached_encode_episodes(root, episodes, encode, fingerprint, cache_dir, batch_frames,
                                  progress)


@dataclass
class Imagined:
    """Imagined latents ``[M, N, D]`` with where their true frame is: ``episode [M]`` (index
    into the encoded episodes), ``frame [M]`` (frame index) and ``horizon [M]`` (1-based)."""

    latents: torch.Tensor
    episode: torch.Tensor
    frame: torch.Tensor
    horizon: torch.Tensor

    def at(self, horizon: int) -> Imagined:
        keep = self.horizon == horizon
        return Imagined(self.latents[keep], self.episode[keep], self.frame[keep],
                        self.horizon[keep])


@torch.no_grad()
def imagine(model: WorldModel, data: EncodedEpisodes, horizon: int, stride: int = 5,
            batch: int = 256) -> Imagined:
    """Roll the model out ``horizon`` steps from every ``stride``-th start of every episode.

    Returns the predictions at horizons ``1..horizon`` (float32, CPU). Start ``s`` uses real
    frames ``s, s + f, ..., s + (k - 1) f`` (``k = history_length``, ``f = frameskip``); the
    prediction at horizon ``h`` is of frame ``s + (k - 1 + h) f``.
    """
    k, f = model.config.history_length, model.config.frameskip
    window = k + horizon
    starts = data.window_starts(window, f)
    if starts < 1:
        raise ConfigError(f"imagined_horizon: episodes of {data.num_frames} frames are too short "
                          f"to imagine {horizon} steps after {k} frames at frameskip {f}; "
                          f"lower imagined_horizon or collect longer episodes")
    pairs = torch.cartesian_prod(torch.arange(len(data.ids)), torch.arange(0, starts, stride))
    device = model.pixel_mean.device
    out = []
    for part in pairs.split(batch):
        tokens, actions, proprio = (t.to(device) for t in data.windows(part[:, 0], part[:, 1],
                                                                        window, f))
        pred = model.rollout(tokens[:, :k], actions[:, k - 1:][:, None],
                             proprio[:, :k] if model.config.proprio_dim else None,
                             history_actions=actions[:, :k - 1])
        out.append(pred[:, 0].float().cpu())  # [b, H, N, D]
    latents = torch.cat(out)
    hs = torch.arange(1, horizon + 1)
    frames = pairs[:, 1:2] + (k - 1 + hs[None]) * f  # [M0, H]
    count = len(pairs)
    return Imagined(latents.flatten(0, 1), pairs[:, 0].repeat_interleave(horizon),
                    frames.flatten(), hs.repeat(count))


__all__ = ["Imagined", "encode_latents", "imagine", "load_frames"]
