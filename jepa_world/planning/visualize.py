"""Episode videos: observation | goal | what the planner imagines.

A world model has no decoder, so its imagined latents are shown as the NEAREST REAL FRAMES: a
bank of frames from exploration rollouts of the same env is encoded once, and each imagined
latent is replaced by the bank frame whose latent is closest (L1). What the planner expects at
the end of its current plan is shown next to the live observation and the goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_world.atomic import atomic_write

VIDEO_FORMATS = ("gif", "mp4")


class FrameBank:
    """Real frames ``[M, H, W, 3]`` with their latents ``[M, N, D]``."""

    def __init__(self, frames: np.ndarray, latents: torch.Tensor) -> None:
        if len(frames) != len(latents) or len(frames) == 0:
            raise ValueError(f"need as many latents as frames (> 0), got {len(latents)} and "
                             f"{len(frames)}")
        self.frames, self.latents = frames, latents

    def nearest(self, latents: torch.Tensor) -> np.ndarray:
        """Frames ``[..., H, W, 3]`` closest to latents ``[..., N, D]``."""
        flat = latents.reshape(-1, 1, *latents.shape[-2:]).to(self.latents)
        best = torch.cat([(part - self.latents[None]).abs().mean(dim=(-2, -1)).argmin(dim=1)
                          for part in flat.split(64)])
        return self.frames[best.cpu().numpy()].reshape(*latents.shape[:-2],
                                                       *self.frames.shape[1:])


def build_frame_bank(env: Any, encode: Any, episodes: int = 8, steps: int = 50,
                     seed: int = 10_000) -> FrameBank:
    """Frames of ``episodes`` exploration rollouts (the env's own goal policy: correlated noise)
    encoded by ``encode(frames [M, H, W, 3] uint8) -> [M, N, D]``."""
    from jepa_world.envs.exploration import make_policy

    frames = []
    unwrapped = env.unwrapped
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        rng = np.random.default_rng(seed + k)
        policy = make_policy(unwrapped.goal_policy, env.action_space.low, env.action_space.high,
                             rng)
        frames.append(obs["pixels"])
        for _ in range(steps):
            unwrapped._simulate(policy())  # no success check: explore past goals
            frames.append(unwrapped.render_pixels())
    stack = np.stack(frames)
    return FrameBank(stack, encode(stack))


def _upscale(img: np.ndarray, factor: int) -> np.ndarray:
    return img.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else img


def compose_frames(frames: Sequence[np.ndarray], goal: np.ndarray,
                   imagined: Sequence[np.ndarray | None], scale: int = 3) -> list[np.ndarray]:
    """Side-by-side ``observation | goal | imagined`` frames (a grey panel where no imagined
    frame is given), upscaled ``scale`` times with nearest-neighbour pixels."""
    sep = np.full((goal.shape[0], 2, 3), 255, np.uint8)
    blank = np.full_like(goal, 64)
    out = []
    for frame, dream in zip(frames, imagined, strict=True):
        row = np.concatenate([frame, sep, goal, sep, blank if dream is None else dream], axis=1)
        out.append(_upscale(row, scale))
    return out


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: int = 10) -> Path:
    """Write ``[H, W, 3]`` uint8 frames as a GIF or MP4 (by suffix), atomically."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"video format must be one of {VIDEO_FORMATS}, got {path.name!r}")
    stack = np.stack(frames)
    if suffix == "gif":
        return atomic_write(path, lambda tmp: iio.imwrite(tmp, stack, extension=".gif",
                                                          duration=1000 / fps, loop=0))
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, stack, extension=".mp4", fps=fps),
                        keep_suffix=True)  # ffmpeg picks the container by the file's suffix


def episode_panels(result: Any, bank: FrameBank | None, action_repeat: int) -> list[np.ndarray]:
    """Per recorded frame, the imagined end-of-plan frame of the replan in force (or None)."""
    dreams: list[np.ndarray | None] = [None] * len(result.frames)
    if bank is None or not result.imagined:
        return compose_frames(result.frames, result.goal, dreams)
    ends = [bank.nearest(latents[-1][None])[0] for latents in result.imagined]
    starts = [step for step, _ in result.plans]
    for i in range(len(result.frames)):
        k = max(j for j, s in enumerate(starts) if s <= max(i - 1, 0)) if starts else None
        dreams[i] = ends[k] if k is not None and k < len(ends) else None
    return compose_frames(result.frames, result.goal, dreams)


__all__ = ["VIDEO_FORMATS", "FrameBank", "build_frame_bank", "compose_frames",
           "episode_panels", "write_video"]
