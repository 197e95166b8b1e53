"""What every training loop here shares: set-up / clean-up, precision, seeding, the run folder,
resuming, the guarded optimiser step, and checkpoints written by rank 0.

A loop built on it reads::

    info = setup(device); try: ... finally: cleanup     -> run_distributed(cfg.device, body)
    run_dir = open_run_dir(cfg.run_dir, "pretrain", info)
    folder = resume_folder(cfg.resume, run_dir); check_resumable(...)
    stepper = Stepper(optimizer, params, cfg.optim.grad_clip, advice, last_good=folder)
    for each step: grad_norm = stepper.step(loss, loss_value, step, lr)
                   if due(step, cfg.checkpoint_interval, cfg.steps):
                       stepper.last_good = save_on_main(info, run_dir, step, write)

A non-finite loss or gradient norm raises :class:`TrainingDivergedError` before any weight is
touched, so the last checkpoint on disk stays the last good state.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from jepa_world.atomic import atomic_write_text
from jepa_world.checkpoints.runs import default_run_dir, latest_checkpoint, step_folder
from jepa_world.devices import use_bf16
from jepa_world.errors import ConfigError, JepaWorldError
from jepa_world.schedules import warmup_cosine_lr
from jepa_world.training import distributed as du

T = TypeVar("T")


class TrainingDivergedError(JepaWorldError):
    """The loss or gradient norm became NaN/inf; the message names the last good checkpoint."""


# --------------------------------------------------------------------------- set-up


def run_distributed(device: str, body: Callable[[du.DistInfo], T]) -> T:
    """``body(info)`` inside the process group (if any) on ``device``; the group is torn down
    after it, without waiting for the other ranks when ``body`` raised."""
    info = du.setup(device)
    try:
        result = body(info)
    except BaseException:
        du.cleanup(info, synchronize=False)
        raise
    du.cleanup(info)
    return result


def autocast(precision: str, device: torch.device) -> tuple[AbstractContextManager, bool]:
    """``(context, bf16)``: bf16 autocast when :func:`~jepa_world.devices.use_bf16` says so
    (``bf16``; ``auto`` on CUDA and on CPUs with native bf16); else a no-op."""
    bf16 = use_bf16(precision, device)
    if not bf16:
        return nullcontext(), False
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16), True


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def wrap_ddp(module: nn.Module, info: du.DistInfo) -> nn.Module:
    """``module`` under DistributedDataParallel when the run is distributed, else itself."""
    if not info.distributed:
        return module
    cuda = info.device.type == "cuda"
    return DistributedDataParallel(module, device_ids=[info.device] if cuda else None)


def scheduled_lr(optim: Any, step: int, steps: int) -> float:
    """Warmup + cosine LR of ``optim`` (``start_lr``, ``lr``, ``final_lr``, ``warmup_steps``)."""
    return warmup_cosine_lr(step, start_lr=optim.start_lr, ref_lr=optim.lr,
                            final_lr=optim.final_lr,
                            warmup_steps=min(optim.warmup_steps, steps), total_steps=steps)


def due(step: int, interval: int, steps: int) -> bool:
    """Every ``interval`` steps, and at the last one."""
    return step % interval == 0 or step == steps


# --------------------------------------------------------------------------- run folder


def open_run_dir(run_dir: str, command: str, info: du.DistInfo) -> Path:
    """Rank 0's ``run_dir`` (default ``outputs/<command>/<time>``) on every rank."""
    return Path(du.broadcast_object(str(run_dir or default_run_dir(command)), info))


def write_run_config(run_dir: Path, name: str, config: dict[str, Any]) -> Path:
    """``<run_dir>/<name>``: the run's config as JSON, written atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(run_dir / name, json.dumps(config, indent=1))


def resume_folder(resume: str, run_dir: Path) -> Path | None:
    """The checkpoint to continue from: ``run_dir``'s latest under ``resume=auto``."""
    return latest_checkpoint(run_dir) if resume == "auto" else None


def check_resumable(saved: dict[str, Any], now: dict[str, Any], keys: Iterable[str],
                    folder: Path) -> None:
    """Refuse to resume ``folder`` when one of ``keys`` of the run's config changed; for a
    config group the message names the fields that differ and how to resume anyway."""
    for key in keys:
        before, after = saved.get(key), now[key]
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            fields = sorted(k for k in before.keys() | after.keys()
                            if before.get(k) != after.get(k))
            changes = ", ".join(f"{key}.{k}={before.get(k)!r}" for k in fields)
            raise ConfigError(f"resume: {folder} was trained with {changes} (now "
                              + ", ".join(repr(after.get(k)) for k in fields)
                              + f"); pass {changes} to resume it, or use a new run_dir or "
                              f"resume=never")
        raise ConfigError(f"resume: {folder} was trained with another {key} ({before!r} vs "
                          f"{after!r}); use a new run_dir or resume=never")


# --------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, in ``weights_only``-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_rng(rngs: list[dict[str, Any]], info: du.DistInfo) -> None:
    """This rank's saved RNG state, when the run is resumed with as many ranks as it had."""
    if len(rngs) == info.world_size:
        set_rng_state(rngs[info.rank])


def save_on_main(info: du.DistInfo, run_dir: Path, step: int,
                 write: Callable[[list[dict[str, Any]]], Path]) -> Path:
    """Gather every rank's RNG state, let rank 0 ``write(rngs)`` the step folder, wait for it;
    returns the step folder on every rank."""
    rngs = du.all_gather_object(rng_state(), info)
    folder = write(rngs) if info.is_main else step_folder(run_dir, step)
    du.barrier(info)
    return folder


# --------------------------------------------------------------------------- optimiser step


class Stepper:
    """One guarded optimiser step: refuse a non-finite loss, back-propagate, clip the gradient
    norm (``grad_clip <= 0``: no clipping), refuse a non-finite norm, step.

    ``last_good`` is the checkpoint the error message points at; ``advice`` ends the message.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter],
                 grad_clip: float, advice: str, last_good: Path | None = None) -> None:
        self.optimizer = optimizer
        self.params = list(params)
        self.max_norm = grad_clip if grad_clip > 0 else math.inf
        self.advice = advice
        self.last_good = last_good

    def step(self, loss: torch.Tensor, loss_value: float, step: int, lr: float) -> float:
        """Apply ``loss`` (``loss_value``: its rank mean); returns the gradient norm."""
        self._check("loss", loss_value, step, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(self.params, self.max_norm))
        self._check("gradient norm", grad_norm, step, lr)
        self.optimizer.step()
        return grad_norm

    def _check(self, what: str, value: float, step: int, lr: float) -> None:
        if math.isfinite(value):
            return
        keep = (f"the last good checkpoint is {self.last_good}" if self.last_good is not None
                else "no checkpoint was written yet")
        raise TrainingDivergedError(
            f"{what} became {value} at step {step} (lr {lr:.3g}); stopped without saving: "
            f"{keep}. {self.advice}")


__all__ = ["Stepper", "TrainingDivergedError", "autocast", "check_resumable", "due",
           "open_run_dir", "restore_rng", "resume_folder", "rng_state", "run_distributed",
           "save_on_main", "scheduled_lr", "seed_all", "set_rng_state", "wrap_ddp",
           "write_run_config"]
