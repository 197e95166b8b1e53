"""Episode videos: observation | goal | what the planner imagines, each panel labelled.

What the planner expects at the end of its current plan is shown next to the live observation
and the goal: DECODED into pixels by the world model's pixel decoder when it has one
(:func:`decoded_frames`), or as the NEAREST REAL FRAME (:class:`FrameBank`): a bank of frames
from exploration rollouts of the same env is encoded once, and each imagined latent is replaced
by the bank frame whose latent is closest (L1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_world.atomic import atomic_write

VIDEO_FORMATS = ("gif", "mp4")
IMAGINED_PANELS = ("auto", "decoded", "nearest")  #: auto: decoded when a decoder is attached


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


def decoded_frames(model: Any) -> Callable[[torch.Tensor], np.ndarray]:
    """``latents [..., N, D] -> uint8 frames [..., H, W, 3]`` by ``model``'s attached decoder."""

    def render(latents: torch.Tensor) -> np.ndarray:
        lead = latents.shape[:-2]
        flat = latents.reshape(1, -1, *latents.shape[-2:])
        frames = model.decode(flat, generator=torch.Generator().manual_seed(0))[0]
        pixels = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return pixels.cpu().numpy().reshape(*lead, *pixels.shape[1:])

    return render


def label_strip(text: str, width: int, height: int = 12) -> np.ndarray:
    """A black ``[height, width, 3]`` strip with ``text`` in white (PIL's default font)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height))
    ImageDraw.Draw(image).text((2, 0), text, fill=(255, 255, 255))
    return np.asarray(image)


def compose_frames(frames: Sequence[np.ndarray], goal: np.ndarray,
                   imagined: Sequence[np.ndarray | None], scale: int = 3,
                   labels: Sequence[str] | None = None) -> list[np.ndarray]:
    """Side-by-side ``observation | goal | imagined`` frames (a grey panel where no imagined
    frame is given), upscaled ``scale`` times with nearest-neighbour pixels; ``labels`` (one
    per panel) are written in a strip above the panels."""
    sep = np.full((goal.shape[0] * scale, 2 * scale, 3), 255, np.uint8)
    blank = np.full_like(goal, 64)
    width = goal.shape[1] * scale
    header = None
    if labels is not None:
        strips = [label_strip(t, width) for t in labels]
        gap = np.zeros((strips[0].shape[0], sep.shape[1], 3), np.uint8)
        header = np.concatenate([strips[0], gap, strips[1], gap, strips[2]], axis=1)
    out = []
    for frame, dream in zip(frames, imagined, strict=True):
        panels = [_upscale(p, scale) for p in (frame, goal, blank if dream is None else dream)]
        row = np.concatenate([panels[0], sep, panels[1], sep, panels[2]], axis=1)
        out.append(row if header is None else np.concatenate([header, row], axis=0))
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


def episode_panels(result: Any, bank: FrameBank | Callable | None,
                   action_repeat: int) -> list[np.ndarray]:
    """Per recorded frame, the imagined end-of-plan frame of the replan in force (or None),
    rendered by ``bank``: a :class:`FrameBank` (nearest frame) or :func:`decoded_frames`."""
    dreams: list[np.ndarray | None] = [None] * len(result.frames)
    how = "nearest" if isinstance(bank, FrameBank) else "decoded"
    labels = ("observation", "goal", f"imagined ({how})" if bank is not None else "imagined")
    if bank is None or not result.imagined:
        return compose_frames(result.frames, result.goal, dreams, labels=labels)
    render = bank.nearest if isinstance(bank, FrameBank) else bank
    ends = [render(latents[-1][None])[0] for latents in result.imagined]
    starts = [step for step, _ in result.plans]
    for i in range(len(result.frames)):
        k = max(j for j, s in enumerate(starts) if s <= max(i - 1, 0)) if starts else None
        dreams[i] = ends[k] if k is not None and k < len(ends) else None
    return compose_frames(result.frames, result.goal, dreams, labels=labels)


__all__ = ["IMAGINED_PANELS", "VIDEO_FORMATS", "FrameBank", "build_frame_bank",
           "compose_frames", "decoded_frames", "episode_panels", "label_strip", "write_video"]
