"""The V-JEPA pretraining loop (``objective="feature"``) and its pixel-reconstruction baseline
(``objective="pixel"``), single-process or under torchrun (DDP).

One step, for a batch of clips ``[B, 3, T, H, W]`` in ``[0, 1]``:

1. draw the two multi-block mask types (short- and long-range) from a seed that depends only on
   ``(seed, step, rank)``;
2. targets: ``feature`` -> the EMA target encoder on the full clip ``[B, N, D]`` (no grad; the loss
   layer-normalises them); ``pixel`` -> per-tubelet normalised pixels ``[B, N, t p p 3]``;
3. for each mask type ``i``: context encoder on the context tokens, predictor (``mask_index=i``)
   fills in the target tokens (``pixel``: plus a linear head to pixels); L1 (feature) or MSE
   (pixel) on the masked tokens; the loss is the mean over the two types;
4. AdamW step with scheduled LR / weight decay, gradient clipping, then the EMA update of the
   target encoder with the scheduled momentum.

A non-finite loss or gradient norm stops the run with :class:`TrainingDivergedError` before any
weight is touched, so the last checkpoint on disk stays the last good state.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from jepa_world.checkpoints import Pretrained
from jepa_world.config import CollectConfig
from jepa_world.errors import ConfigError, DatasetError, JepaWorldError
from jepa_world.losses import jepa_loss, pixel_loss, pixel_targets, variance_covariance
from jepa_world.masks import sample_multiblock_masks
from jepa_world.models.inputs import IMAGENET_MEAN, IMAGENET_STD
from jepa_world.models.presets import build_encoder, build_predictor, config_to_dict
from jepa_world.schedules import (
    cosine_weight_decay,
    ema_momentum,
    ema_update_,
    param_groups,
    set_lr_,
    set_weight_decay_,
    warmup_cosine_lr,
)
from jepa_world.training import distributed as du
from jepa_world.training.config import PretrainConfig, RegularizerConfig
from jepa_world.training.logging import TrainLogger, feature_std
from jepa_world.training.state import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

MEAN, STD = IMAGENET_MEAN, IMAGENET_STD  #: V-JEPA's input normalisation


class TrainingDivergedError(JepaWorldError):
    """The loss or gradient norm became NaN/inf; the message names the last good checkpoint."""


@dataclass
class PretrainResult:
    """What :func:`pretrain` did (identical on every rank, except ``indices``)."""

    run_dir: Path
    start_step: int  #: steps already done when this call started (resume)
    steps: int  #: steps done when it returned
    losses: list[float] = field(default_factory=list)  #: rank-mean loss of each step run here
    #: this rank's clip ids per step (``record_indices=True`` only)
    indices: list[list[int]] = field(default_factory=list)
    checkpoint: Path | None = None  #: newest checkpoint folder
    seconds: float = 0.0
    models: Pretrained | None = None  #: the trained modules (this rank's copy)


class IndexedClips(Dataset):
    """``(index, clip)`` pairs of a clip dataset, so the loop knows what each rank saw."""

    def __init__(self, clips: Dataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        return index, self.clips[index]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.clips, "set_epoch"):
            self.clips.set_epoch(epoch)


class JepaStudent(nn.Module):
    """Context encoder + predictor (+ pixel head): everything the optimizer trains, in ONE
    ``forward`` so that DDP sees a single call per step.

    ``forward(video [B, 3, T, H, W], contexts, targets_idx, targets)`` with ``contexts[i]``
    ``[B, Kc_i]``, ``targets_idx[i]`` ``[B, Kt_i]`` per mask type and ``targets`` ``[B, N, F]``
    (target-encoder features or pixel targets) returns ``(loss, terms)``: ``terms`` holds the
    per-mask-type prediction losses, then the variance and covariance terms (zero when the
    regulariser is off). ``loss`` = mean prediction loss + the weighted terms.
    """

    def __init__(self, encoder: nn.Module, predictor: nn.Module,
                 pixel_head: nn.Module | None = None,
                 regularizer: RegularizerConfig | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor
        self.pixel_head = pixel_head
        self.regularizer = regularizer or RegularizerConfig(0.0, 0.0)  # None: plain V-JEPA

    def forward(self, video, contexts, targets_idx, targets):
        losses, variance, covariance = [], [], []
        reg = self.regularizer
        for i, (ctx, tgt) in enumerate(zip(contexts, targets_idx, strict=True)):
            tokens = self.encoder(video, masks=ctx)  # [B, Kc, D]
            pred = self.predictor(tokens, ctx, tgt, mask_index=i)  # [B, Kt, D]
            if self.pixel_head is None:
                losses.append(jepa_loss(pred.float(), targets.float(), tgt))
            else:
                losses.append(pixel_loss(self.pixel_head(pred).float(), targets.float(), tgt))
            if reg.enabled:  # over all B * Kc context tokens of this mask type
                var, cov = variance_covariance(tokens.float().flatten(0, 1), reg.target_std)
                variance.append(var)
                covariance.append(cov)
        per_type = torch.stack(losses)
        loss = per_type.mean()
        if reg.enabled:
            var, cov = torch.stack(variance).mean(), torch.stack(covariance).mean()
            loss = loss + reg.variance_weight * var + reg.covariance_weight * cov
        else:
            var = cov = torch.zeros((), device=per_type.device)
        return loss, torch.cat([per_type.detach(), var.detach()[None], cov.detach()[None]])


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of step ``step``'s masks on ``rank`` (independent of everything else)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def build_clips(cfg: PretrainConfig, info: du.DistInfo) -> Dataset:
    """The clip dataset: items float32 ``[3, T, S, S]`` in ``[0, 1]`` (collects env data first
    when ``data_dir`` holds no dataset and ``data.collect`` is set; rank 0 collects)."""
    size, frames = cfg.model.img_size, cfg.model.num_frames
    if cfg.data.source == "video":
        try:
            from jepa_world.data.video_files import VideoFileClips
        except ImportError as err:
            raise ConfigError(f"data.source: 'video' is unavailable ({err})") from err
        return VideoFileClips(cfg.data.paths, num_frames=frames, frame_step=cfg.data.frame_step,
                              size=size, augment=cfg.data.augment,
                              crop_scale=tuple(cfg.data.crop_scale), seed=cfg.seed)
    from jepa_world.data.env_clips import EnvClips

    collect_cfg = CollectConfig(env=cfg.env, episodes=cfg.data.episodes,
                                episode_length=cfg.data.episode_length, seed=cfg.seed,
                                data_dir=cfg.data.data_dir, progress=cfg.progress)
    from jepa_world.data.collection import ensure_collected

    root = ensure_collected(collect_cfg, cfg.data.collect, info.is_main)
    du.barrier(info)
    transform = None
    if cfg.data.augment_env:
        from jepa_world.data.augment import random_resized_crop

        scale = tuple(cfg.data.crop_scale)

        def transform(clip, generator):
            return random_resized_crop(clip, size, scale=scale, generator=generator)

    return EnvClips(root, num_frames=frames, frame_step=cfg.data.frame_step,
                    stride=cfg.data.window_stride, size=size, transform=transform, seed=cfg.seed)


def _model_config(cfg: PretrainConfig) -> dict[str, Any]:
    return {"encoder": config_to_dict(cfg.model.encoder_config()),
            "predictor": config_to_dict(cfg.model.predictor_config(num_mask_tokens=2)),
            "predictor_type": "masked", "objective": cfg.objective, "model_name": cfg.model.name}


def _check_resumable(saved: dict[str, Any], cfg: PretrainConfig, folder: Path) -> None:
    old, now = saved.get("config", {}), cfg.to_dict()
    for key in ("model", "objective", "batch_size", "seed"):
        before, after = old.get(key), now[key]
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):  # name the differing fields
            fields = sorted(k for k in before.keys() | after.keys()
                            if before.get(k) != after.get(k))
            changes = ", ".join(f"{key}.{k}={before.get(k)!r}" for k in fields)
            raise ConfigError(f"resume: {folder} was trained with {changes} (now "
                              + ", ".join(repr(after.get(k)) for k in fields)
                              + f"); pass {changes} to resume it, or use a new run_dir or "
                              f"resume=never")
        raise ConfigError(f"resume: {folder} was trained with another {key} ({before!r} vs "
                          f"{after!r}); use a new run_dir or resume=never")


def pretrain(cfg: PretrainConfig, callback: Callable[[int, dict], None] | None = None,
             dataset: Dataset | None = None, record_indices: bool = False) -> PretrainResult:
    """Train (or resume) a V-JEPA / pixel-MAE run as described by ``cfg``.

    Args:
        cfg: the validated config. Under torchrun, every rank passes the same config (only rank
            0's ``run_dir`` counts); other ranks write nothing.
        callback: called on every rank after each step as ``callback(step, metrics)`` (step =
            steps done); an exception raised there stops the run like a crash would.
        dataset: optional clip dataset (items ``[3, T, H, W]`` float) instead of ``cfg.data``.
        record_indices: keep the dataset indices each step trained on (``result.indices``).

    Returns:
        A :class:`PretrainResult`. Checkpoints are under ``<run_dir>/checkpoints/`` (see
        :mod:`jepa_world.training.state`), TensorBoard files under ``<run_dir>/tb``.

    Raises:
        TrainingDivergedError: NaN/inf loss or gradient norm.
        ConfigError, DatasetError: bad settings or data.
    """
    started = time.perf_counter()
    info = du.setup(cfg.device)
    try:
        result = _run(cfg, info, callback, dataset, record_indices, started)
    except BaseException:
        du.cleanup(info, synchronize=False)
        raise
    du.cleanup(info)
    return result


def _run(cfg, info, callback, dataset, record_indices, started) -> PretrainResult:
    run_dir = cfg.run_dir or f"outputs/pretrain/{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    run_dir = Path(du.broadcast_object(str(run_dir), info))
    device = info.device
    if device.type == "cuda":
        # Mask sizes change every step; cuDNN's SDPA builds a plan per new sequence length, which
        # cost ~3-7 ms of CPU per attention call and made a ViT-L step 6x slower on an H100.
        torch.backends.cuda.enable_cudnn_sdp(False)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16
                else nullcontext())

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    clips = IndexedClips(dataset if dataset is not None else build_clips(cfg, info))
    encoder = build_encoder(cfg.model.encoder_config()).to(device)
    predictor = build_predictor(cfg.model.predictor_config(num_mask_tokens=2)).to(device)
    pixel_head = None
    if cfg.objective == "pixel":
        out = cfg.model.tubelet_size * cfg.model.patch_size ** 2 * 3
        pixel_head = nn.Linear(cfg.model.embed_dim, out).to(device)
    target_encoder = None
    if cfg.objective == "feature":
        target_encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
    # Pixel targets are fixed, so nothing can collapse: the anti-collapse terms belong to the
    # feature objective only, and objective=pixel stays the plain VideoMAE baseline.
    student = JepaStudent(encoder, predictor, pixel_head,
                          cfg.regularizer if cfg.objective == "feature" else None)
    regularizer = student.regularizer
    optimizer = torch.optim.AdamW(
        param_groups(student, cfg.optim.weight_decay), lr=cfg.optim.start_lr,
        betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps)
    modules = {"encoder": encoder, "target_encoder": target_encoder, "predictor": predictor}

    step, epoch, batch_in_epoch = 0, 0, 0
    folder = latest_checkpoint(run_dir) if cfg.resume == "auto" else None
    if folder is not None:
        saved = load_checkpoint(folder, modules, pixel_head,
                                validate=lambda state: _check_resumable(state, cfg, folder))
        optimizer.load_state_dict(saved["optimizer"])
        step, epoch, batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
        rngs = saved["rng"]
        if len(rngs) == info.world_size:
            set_rng_state(rngs[info.rank])
    student_ddp: nn.Module = student
    if info.distributed:
        student_ddp = DistributedDataParallel(
            student, device_ids=[device] if device.type == "cuda" else None)
    forward, target_forward = student_ddp, target_encoder
    if cfg.compile:
        forward = torch.compile(student_ddp)
        target_forward = torch.compile(target_encoder) if target_encoder is not None else None

    sampler = du.ResumableSampler(len(clips), cfg.batch_size, info, seed=cfg.seed)
    if sampler.batches_per_epoch < 1:
        raise DatasetError(f"batch_size: {cfg.batch_size} clips per rank, but the dataset gives "
                           f"only {len(sampler.inner)} per rank ({len(clips)} in all)")
    loader = DataLoader(clips, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                        num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda")
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1, 1)
    specs = cfg.masks.specs()
    grid = cfg.model.grid
    num_tokens = grid[0] * grid[1] * grid[2]
    model_config = _model_config(cfg)
    result = PretrainResult(run_dir=run_dir, start_step=step, steps=step, checkpoint=folder)
    logger = TrainLogger(run_dir, cfg.steps, step, enabled=info.is_main,
                         tensorboard=cfg.tensorboard, progress=cfg.progress,
                         collapse_threshold=cfg.collapse_threshold)

    def checkpoint(at_step: int) -> Path | None:
        rngs = du.all_gather_object(rng_state(), info)
        path = None
        if info.is_main:
            state = {"optimizer": optimizer.state_dict(), "epoch": epoch,
                     "batch_in_epoch": batch_in_epoch, "rng": rngs,
                     "world_size": info.world_size, "config": cfg.to_dict()}
            bundle = Pretrained(encoder, target_encoder, predictor, format="jepa_world",
                                config=dict(model_config, step=at_step))
            path = save_checkpoint(run_dir, at_step, bundle, state, pixel_head,
                                   keep=cfg.keep_checkpoints)
        du.barrier(info)
        return run_dir / "checkpoints" / f"step_{at_step:06d}" if path is None else path

    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "pretrain_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        params = sum(p.numel() for p in student.parameters()) / 1e6
        logger.write(f"pretrain {cfg.objective}: model {cfg.model.name} ({params:.2f}M trainable "
                     f"params, {num_tokens} tokens/clip), {len(clips)} clips, {info.world_size} "
                     f"x {device} {'bf16' if bf16 else 'fp32'}, run_dir {run_dir}"
                     + (f", resuming at step {step}" if folder is not None else "")
                     + (f"; regularizer variance {regularizer.variance_weight:g}, covariance "
                        f"{regularizer.covariance_weight:g}" if regularizer.enabled else
                        "; no regularizer"))
    last_good = folder
    tick = time.perf_counter()
    try:
        while step < cfg.steps:
            sampler.set_epoch(epoch, batch_in_epoch)
            clips.set_epoch(epoch)
            for index, clip in loader:
                t0 = time.perf_counter()
                lr = warmup_cosine_lr(step, start_lr=cfg.optim.start_lr, ref_lr=cfg.optim.lr,
                                      final_lr=cfg.optim.final_lr,
                                      warmup_steps=min(cfg.optim.warmup_steps, cfg.steps),
                                      total_steps=cfg.steps)
                wd = cosine_weight_decay(step, start_wd=cfg.optim.weight_decay,
                                         final_wd=cfg.optim.final_weight_decay,
                                         total_steps=cfg.steps)
                momentum = ema_momentum(step, start=cfg.ema.start, final=cfg.ema.final,
                                        total_steps=cfg.steps)
                set_lr_(optimizer, lr)
                set_weight_decay_(optimizer, wd)
                clip = clip.to(device, non_blocking=True)  # [B, 3, T, H, W] in [0, 1]
                video = (clip - mean) / std
                masks = sample_multiblock_masks(
                    grid, specs, clip.shape[0], generator=step_seed(cfg.seed, step, info.rank),
                    min_keep=cfg.masks.min_keep, truncate=cfg.masks.truncate)
                contexts = [m.context.to(device) for m in masks]
                targets_idx = [m.targets.to(device) for m in masks]
                with autocast:
                    if target_forward is not None:
                        with torch.no_grad():
                            targets = target_forward(video)  # [B, N, D]
                    else:
                        targets = pixel_targets(clip, cfg.model.tubelet_size,
                                                cfg.model.patch_size)  # [B, N, t p p 3]
                    loss, terms = forward(video, contexts, targets_idx, targets)
                stats = du.all_reduce_mean(torch.cat([loss.detach()[None], terms]), info)
                loss_value = float(stats[0])
                if not math.isfinite(loss_value):
                    raise _diverged("loss", loss_value, step, lr, last_good)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
                grad_norm = float(nn.utils.clip_grad_norm_(student.parameters(), max_norm))
                if not math.isfinite(grad_norm):
                    raise _diverged("gradient norm", grad_norm, step, lr, last_good)
                optimizer.step()
                if target_encoder is not None:
                    ema_update_(target_encoder, encoder, momentum)
                step += 1
                batch_in_epoch += 1
                now = time.perf_counter()
                clips_per_s = clip.shape[0] * info.world_size / max(now - tick, 1e-9)
                metrics = {"loss/total": loss_value, "optim/lr": lr, "optim/weight_decay": wd,
                           "optim/grad_norm": grad_norm, "ema/momentum": momentum,
                           "perf/clips_per_s": clips_per_s,
                           "perf/tokens_per_s": clips_per_s * num_tokens,
                           "perf/step_ms": (now - t0) * 1e3}
                *per_type_values, variance, covariance = stats[1:].tolist()
                for i, value in enumerate(per_type_values):
                    metrics[f"loss/mask{i}"] = value
                if regularizer.enabled:
                    metrics["loss/variance"], metrics["loss/covariance"] = variance, covariance
                tick = now
                result.losses.append(loss_value)
                if record_indices:
                    result.indices.append(index.tolist())
                if step % cfg.log_interval == 0 or step == cfg.steps:
                    if target_encoder is not None:
                        normed = nn.functional.layer_norm(targets.float(), targets.shape[-1:])
                        metrics["collapse/target_std"] = float(feature_std(normed))
                        logger.check_collapse(step, metrics["collapse/target_std"])
                    logger.scalars(step, metrics)
                logger.progress(loss_value, lr, clips_per_s)
                if step % cfg.checkpoint_interval == 0 or step == cfg.steps:
                    last_good = result.checkpoint = checkpoint(step)
                result.steps = step
                if callback is not None:
                    callback(step, metrics)
                if step >= cfg.steps:
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
    finally:
        logger.close()
    result.seconds = time.perf_counter() - started
    result.models = Pretrained(encoder, target_encoder, predictor, format="jepa_world",
                               config=dict(model_config, step=step))
    if info.is_main and result.losses:
        print(f"pretrain done: {step} steps, loss {result.losses[0]:.4f} -> "
              f"{result.losses[-1]:.4f} in {result.seconds:.0f} s; checkpoint {result.checkpoint}")
    return result


def _diverged(what: str, value: float, step: int, lr: float, last_good: Path | None):
    keep = (f"the last good checkpoint is {last_good}" if last_good is not None
            else "no checkpoint was written yet")
    return TrainingDivergedError(
        f"{what} became {value} at step {step} (lr {lr:.3g}); stopped without saving: {keep}. "
        f"Lower optim.lr, raise optim.warmup_steps or use precision=fp32")


__all__ = ["JepaStudent", "PretrainResult", "TrainingDivergedError", "build_clips", "pretrain",
           "step_seed"]
