"""Probe tasks built from a collected dataset, split by held-out EPISODES.

The task's state is ``q = proprio[:, state_dims]`` (``env.state_dims``; reach: the two joint
angles, adapted envs: what their config names), or a vector computed from each frame's stored
sim state (``state_fn``; push: the block's ``[x, y, theta]``).

* ``state`` - regression of the state from ONE frame. Targets: each plain entry itself, then the
  sines and cosines of the angle entries (wrap-free; reach ``[sin q1, sin q2, cos q1, cos q2]``);
  metric: R^2 on the test episodes, averaged over the outputs.
* ``motion`` - 4-way classification from a short clip of the first state entry's motion (reach:
  the shoulder): direction (sign of its change, unwrapped for angles, from the clip's first to
  its last frame) x speed (``|change|`` above the median of the TRAINING clips = fast). A single
  frame cannot tell either. Metric: accuracy; chance = the test accuracy of always answering the
  most common training class.

Pixels stay uint8 ``[M, L, 3, H, W]`` (``L = 1`` for ``state``); encoders see them through
:func:`jepa_world.probes.encoders.extract_features`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jepa_world.data.windows import WindowDataset

TASK_NAMES = ("state", "motion")
#: ``sim states [..., S] -> state [..., K]`` (e.g. a task's goal vector of each frame)
StateFn = Callable[[np.ndarray], np.ndarray]
MOTION_CLASSES = ("cw slow", "cw fast", "ccw slow", "ccw fast")


@dataclass
class TaskData:
    """Inputs and targets of one task, train and test episodes apart.

    Attributes:
        name: ``state`` or ``motion``.
        kind: ``regression`` (targets float ``[M, C]``) or ``classification`` (int64 ``[M]``).
        metric: ``r2`` or ``accuracy``.
        num_outputs: ``C`` regression outputs or number of classes.
        train_pixels, test_pixels: uint8 ``[M, L, 3, H, W]``.
        train_targets, test_targets: see ``kind``.
        chance: classification only: majority-class accuracy on the test set.
        info: task details (e.g. the motion speed threshold), recorded with the results.
    """

    name: str
    kind: str
    metric: str
    num_outputs: int
    train_pixels: torch.Tensor
    train_targets: torch.Tensor
    test_pixels: torch.Tensor
    test_targets: torch.Tensor
    chance: float | None = None
    info: dict = field(default_factory=dict)


def wrap_angle(x: np.ndarray) -> np.ndarray:
    """Map angles to ``[-pi, pi)``."""
    return (x + math.pi) % (2 * math.pi) - math.pi


def angle_mask(angles: bool | Sequence[bool], n: int) -> np.ndarray:
    """``[n]`` bool: which of ``n`` state entries are angles (one flag for all, or one each)."""
    mask = np.broadcast_to(np.asarray(angles, dtype=bool), (n,)) if np.ndim(angles) == 0 \
        else np.asarray(angles, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"angles: need one flag or {n} (one per state entry), got {len(mask)}")
    return mask


def state_targets(state: np.ndarray, angles: bool | Sequence[bool] = True) -> np.ndarray:
    """``state [M, K]`` -> targets: the plain entries, then ``sin`` and ``cos`` of the angle
    entries (all angles: ``[M, 2K]`` = ``[sin q1, .., sin qK, cos q1, .., cos qK]``)."""
    mask = angle_mask(angles, state.shape[-1])
    return np.concatenate([state[..., ~mask], np.sin(state[..., mask]),
                           np.cos(state[..., mask])], axis=-1).astype(np.float32)


def target_names(names: Sequence[str], angles: bool | Sequence[bool] = True) -> list[str]:
    """The names of :func:`state_targets`' outputs for state entries ``names``."""
    mask = angle_mask(angles, len(names))
    plain = [n for n, a in zip(names, mask, strict=True) if not a]
    angular = [n for n, a in zip(names, mask, strict=True) if a]
    return plain + [f"{f} {n}" for f in ("sin", "cos") for n in angular]


def angle_change(angles: np.ndarray, wrap: bool = True) -> np.ndarray:
    """Unwrapped change first -> last frame: ``angles [M, L] -> [M]``.

    Consecutive frames are assumed less than pi apart, so a jump across the +-pi seam counts as
    the short way round (``wrap=False``: a plain coordinate, no seam).
    """
    steps = np.diff(angles, axis=-1)
    return (wrap_angle(steps) if wrap else steps).sum(axis=-1)


def motion_labels(angles: np.ndarray, threshold: float | None = None, wrap: bool = True
                  ) -> tuple[np.ndarray, float]:
    """Direction x speed classes of a clip's angle trajectory.

    Args:
        angles: ``[M, L]`` the shoulder angle at each clip frame (rad, possibly wrapped).
        threshold: ``|change|`` above which a clip is ``fast``; None: the median of these clips
            (pass the training threshold when labelling test clips).
        wrap: the coordinate is an angle (see :func:`angle_change`).

    Returns:
        ``(labels [M] int64, threshold)``: ``label = 2 * (change > 0) + (|change| > threshold)``,
        i.e. indices into :data:`MOTION_CLASSES`.
    """
    if angles.ndim != 2 or angles.shape[1] < 2:
        raise ValueError(f"angles must be [M, L] with L >= 2 frames, got {angles.shape}")
    change = angle_change(angles, wrap)
    if threshold is None:
        threshold = float(np.median(np.abs(change)))
    labels = 2 * (change > 0).astype(np.int64) + (np.abs(change) > threshold).astype(np.int64)
    return labels, threshold


def majority_chance(train_labels: torch.Tensor, test_labels: torch.Tensor) -> float:
    """Test accuracy of always answering the most frequent training class."""
    majority = int(torch.bincount(train_labels).argmax())
    return float((test_labels == majority).float().mean())


def load_windows(root: str | Path, episodes: Sequence[int], frames: int, frame_step: int,
                 stride: int, state_fn: StateFn | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Every window of ``frames`` frames of the given episodes.

    Returns:
        ``(pixels uint8 [M, frames, 3, H, W], proprio float32 [M, frames, P])``; with
        ``state_fn`` (``sim states [..., S] -> [..., K]``) its state in place of the proprio.
    """
    key = "proprio" if state_fn is None else "sim_state"
    ds = WindowDataset(root, context=frames, frameskip=frame_step, stride=stride,
                       episodes=episodes, fields=("pixels", key))
    try:
        items = [ds[i] for i in range(len(ds))]
    finally:
        ds.close()
    pixels = torch.stack([it["pixels"] for it in items])
    values = np.stack([it[key].numpy() for it in items])
    return pixels, (values if state_fn is None else np.asarray(state_fn(values), np.float32))


def build_task(name: str, root: str | Path, train_ids: Sequence[int], test_ids: Sequence[int],
               frame_stride: int = 2, clip_frames: int = 4, clip_step: int = 2,
               clip_stride: int = 2, state_dims: Sequence[int] = (0, 1),
               angles: bool | Sequence[bool] = True,
               state_fn: StateFn | None = None) -> TaskData:
    """Read the windows of task ``name`` and label them.

    The state is ``proprio[state_dims]`` (the task's ``env.state_dims``; reach: the two joint
    angles), or with ``state_fn`` (``sim states [..., S] -> [..., K]``) its vector ``[state_dims]``
    of each frame; ``angles`` (one flag, or one per state entry) says which entries are angles:
    their ``state`` targets are sines and cosines (:func:`state_targets`), and their motion is
    unwrapped; ``motion`` follows the first state entry.

    Args:
        name: ``state`` or ``motion``.
        root: dataset folder (``python -m jepa_world.collect``).
        train_ids, test_ids: episode ids of the two sets (disjoint).
        frame_stride: ``state``: env steps between the frames taken from an episode.
        clip_frames: ``motion``: frames per clip ``L``.
        clip_step: ``motion``: env steps between consecutive clip frames.
        clip_stride: ``motion``: env steps between the starts of consecutive clips.
    """
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    if set(train_ids) & set(test_ids):
        raise ValueError("train and test episodes overlap")
    dims = list(state_dims)
    if not dims:
        raise ValueError("the probe tasks need state dims (env.state_dims) to read from proprio")
    mask = angle_mask(angles, len(dims))
    if name == "state":
        sets = [load_windows(root, ids, 1, 1, frame_stride, state_fn)
                for ids in (train_ids, test_ids)]
        (trp, trq), (tep, teq) = sets

        def targets(q: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(state_targets(q[:, 0, dims], mask))

        described = target_names([f"q{d + 1}" for d in dims], mask)
        return TaskData(name, "regression", "r2", len(described), trp, targets(trq), tep,
                        targets(teq), info={"targets": ", ".join(described)})
    sets = [load_windows(root, ids, clip_frames, clip_step, clip_stride, state_fn)
            for ids in (train_ids, test_ids)]
    (trp, trq), (tep, teq) = sets
    wrap = bool(mask[0])
    train_labels, threshold = motion_labels(trq[:, :, dims[0]], wrap=wrap)
    test_labels, _ = motion_labels(teq[:, :, dims[0]], threshold, wrap=wrap)
    train_y, test_y = torch.from_numpy(train_labels), torch.from_numpy(test_labels)
    return TaskData(
        name, "classification", "accuracy", len(MOTION_CLASSES), trp, train_y, tep, test_y,
        chance=majority_chance(train_y, test_y),
        info={"classes": list(MOTION_CLASSES), "speed_threshold_rad": threshold,
              "clip_frames": clip_frames, "clip_step": clip_step})


__all__ = ["MOTION_CLASSES", "TASK_NAMES", "TaskData", "angle_change", "build_task",
           "load_windows", "majority_chance", "motion_labels", "state_targets", "target_names",
           "wrap_angle"]
