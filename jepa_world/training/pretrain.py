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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from jepa_world.checkpoints import Pretrained
from jepa_world.checkpoints.runs import load_checkpoint, save_checkpoint
from jepa_world.errors import ConfigError, DatasetError
from jepa_world.losses import (
    center_by_position,
    jepa_loss,
    pixel_loss,
    pixel_targets,
    variance_covariance,
)
from jepa_world.masks import sample_multiblock_masks
from jepa_world.models.inputs import imagenet_normalize
from jepa_world.models.presets import build_encoder, build_predictor, config_to_dict
from jepa_world.schedules import (
    cosine_weight_decay,
    ema_momentum,
    ema_update_,
    param_groups,
    set_lr_,
    set_weight_decay_,
)
from jepa_world.training import distributed as du
from jepa_world.training.harness import (
    Stepper,
    TrainingDivergedError,
    autocast,
    check_resumable,
    due,
    open_run_dir,
    restore_rng,
    resume_folder,
    run_distributed,
    save_on_main,
    scheduled_lr,
    seed_all,
    wrap_ddp,
    write_run_config,
)
from jepa_world.training.pretrain_config import PretrainConfig, RegularizerConfig
from jepa_world.training.telemetry import TrainLogger, feature_std


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

    def _regularized(self, tokens: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """``[B, Kc, D]`` context tokens -> the ``[B Kc, D]`` rows the VICReg terms measure."""
        if self.regularizer.centering == "position":
            return center_by_position(tokens.float(), ctx, self.encoder.num_patches)
        return tokens.float().flatten(0, 1)

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
                var, cov = variance_covariance(self._regularized(tokens, ctx), reg.target_std)
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
    from jepa_world.data.collection import ensure_env_data
    from jepa_world.data.env_clips import EnvClips

    root = ensure_env_data(cfg.env, cfg.data, cfg.seed, cfg.progress, info.is_main)
    du.barrier(info)
    transform = None
    if cfg.data.augment_env:
        from jepa_world.data.augment import random_resized_crop

        scale = tuple(cfg.data.crop_scale)

        def transform(clip, generator):
            return random_resized_crop(clip, size, scale=scale, generator=generator)

    return EnvClips(root, num_frames=frames, frame_step=cfg.data.frame_step,
                    stride=cfg.data.window_stride, size=size, transform=transform, seed=cfg.seed)


@dataclass
class Models:
    """The modules of a pretraining run; ``student`` is what the optimiser trains."""

    encoder: nn.Module
    target_encoder: nn.Module | None  #: ``feature`` only: the EMA of ``encoder``
    predictor: nn.Module
    pixel_head: nn.Module | None  #: ``pixel`` only
    student: JepaStudent
    config: dict[str, Any]  #: the architecture, as stored in checkpoints

    @property
    def modules(self) -> dict[str, nn.Module | None]:
        return {"encoder": self.encoder, "target_encoder": self.target_encoder,
                "predictor": self.predictor}

    def bundle(self, step: int) -> Pretrained:
        return Pretrained(**self.modules, format="jepa_world", config=dict(self.config, step=step))


def build_models(cfg: PretrainConfig, device: torch.device) -> Models:
    encoder = build_encoder(cfg.model.encoder_config()).to(device)
    predictor_cfg = cfg.model.predictor_config(num_mask_tokens=2)
    predictor = build_predictor(predictor_cfg).to(device)
    pixel_head = target_encoder = None
    if cfg.objective == "pixel":
        out = cfg.model.tubelet_size * cfg.model.patch_size ** 2 * 3
        pixel_head = nn.Linear(cfg.model.embed_dim, out).to(device)
    else:
        target_encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
    # Pixel targets are fixed, so nothing can collapse: the anti-collapse terms belong to the
    # feature objective only, and objective=pixel stays the plain VideoMAE baseline.
    student = JepaStudent(encoder, predictor, pixel_head,
                          cfg.regularizer if cfg.objective == "feature" else None)
    config = {"encoder": config_to_dict(cfg.model.encoder_config()),
              "predictor": config_to_dict(predictor_cfg), "predictor_type": "masked",
              "objective": cfg.objective, "model_name": cfg.model.name}
    return Models(encoder, target_encoder, predictor, pixel_head, student, config)


def _epochs(loader: DataLoader, sampler: du.ResumableSampler, clips: IndexedClips, epoch: int,
            batch: int) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """``(epoch, batch in epoch, clip ids, clips)`` from a resume position on, forever."""
    while True:
        sampler.set_epoch(epoch, batch)
        clips.set_epoch(epoch)
        for index, clip in loader:
            yield epoch, batch, index, clip
            batch += 1
        epoch, batch = epoch + 1, 0


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
        :mod:`jepa_world.checkpoints.runs`), TensorBoard files under ``<run_dir>/tb``.

    Raises:
        TrainingDivergedError: NaN/inf loss or gradient norm.
        ConfigError, DatasetError: bad settings or data.
    """
    started = time.perf_counter()
    return run_distributed(cfg.device, lambda info: _run(cfg, info, callback, dataset,
                                                         record_indices, started))


ADVICE = "Lower optim.lr, raise optim.warmup_steps or use precision=fp32"


def _run(cfg, info, callback, dataset, record_indices, started) -> PretrainResult:
    run_dir = open_run_dir(cfg.run_dir, "pretrain", info)
    device = info.device
    if device.type == "cuda":
        # Mask sizes change every step; cuDNN's SDPA builds a plan per new sequence length, which
        # cost ~3-7 ms of CPU per attention call and made a ViT-L step 6x slower on an H100.
        torch.backends.cuda.enable_cudnn_sdp(False)
    amp, bf16 = autocast(cfg.precision, device)
    seed_all(cfg.seed)
    clips = IndexedClips(dataset if dataset is not None else build_clips(cfg, info))
    m = build_models(cfg, device)
    optimizer = torch.optim.AdamW(
        param_groups(m.student, cfg.optim.weight_decay), lr=cfg.optim.start_lr,
        betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps)
    folder = resume_folder(cfg.resume, run_dir)
    start, *position = _resume(folder, cfg, m, optimizer, info)
    forward, target_forward = wrap_ddp(m.student, info), m.target_encoder
    if cfg.compile:
        forward = torch.compile(forward)
        target_forward = torch.compile(target_forward) if target_forward is not None else None
    sampler, loader = _loader(cfg, clips, info)
    result = PretrainResult(run_dir=run_dir, start_step=start, steps=start, checkpoint=folder)
    logger = TrainLogger(run_dir, cfg.steps, start, enabled=info.is_main,
                         tensorboard=cfg.tensorboard, progress=cfg.progress,
                         collapse_threshold=cfg.collapse_threshold, desc="pretrain")
    stepper = Stepper(optimizer, m.student.parameters(), cfg.optim.grad_clip, ADVICE, folder)
    if info.is_main:
        write_run_config(run_dir, "pretrain_config.json", cfg.to_dict())
        logger.write(_banner(cfg, m, len(clips), info, bf16, run_dir, folder, start))
    tick = time.perf_counter()
    try:
        batches = _epochs(loader, sampler, clips, *position)
        for step, (epoch, batch, index, clip) in zip(range(start, cfg.steps), batches,
                                                     strict=False):
            t0 = time.perf_counter()
            lr, wd, momentum = _schedules(cfg, step)
            set_lr_(optimizer, lr)
            set_weight_decay_(optimizer, wd)
            clip = clip.to(device, non_blocking=True)  # [B, 3, T, H, W] in [0, 1]
            with amp:
                loss, terms, targets = _losses(cfg, forward, target_forward, clip, step, info)
            stats = du.all_reduce_mean(torch.cat([loss.detach()[None], terms]), info)
            grad_norm = stepper.step(loss, float(stats[0]), step, lr)
            if m.target_encoder is not None:
                ema_update_(m.target_encoder, m.encoder, momentum)
            done, now = step + 1, time.perf_counter()
            clips_per_s = clip.shape[0] * info.world_size / max(now - tick, 1e-9)
            metrics = _metrics(cfg, m, stats, lr, wd, grad_norm, momentum, clips_per_s, now - t0)
            tick = now
            result.losses.append(metrics["loss/total"])
            if record_indices:
                result.indices.append(index.tolist())
            if due(done, cfg.log_interval, cfg.steps):
                if m.target_encoder is not None:
                    normed = nn.functional.layer_norm(targets.float(), targets.shape[-1:])
                    metrics["collapse/target_std"] = float(feature_std(normed))
                    logger.check_collapse(done, metrics["collapse/target_std"])
                logger.scalars(done, metrics)
            logger.progress(metrics["loss/total"], lr, clips_per_s)
            if due(done, cfg.checkpoint_interval, cfg.steps):
                state = {"optimizer": optimizer.state_dict(), "epoch": epoch,
                         "batch_in_epoch": batch + 1, "world_size": info.world_size,
                         "config": cfg.to_dict()}
                stepper.last_good = result.checkpoint = save_on_main(
                    info, run_dir, done, lambda rngs, s=state, d=done: save_checkpoint(
                        run_dir, d, m.bundle(d), dict(s, rng=rngs), m.pixel_head,
                        keep=cfg.keep_checkpoints))
            result.steps = done
            if callback is not None:
                callback(done, metrics)
    finally:
        logger.close()
    result.seconds = time.perf_counter() - started
    result.models = m.bundle(result.steps)
    if info.is_main and result.losses:
        print(f"pretrain done: {result.steps} steps, loss {result.losses[0]:.4f} -> "
              f"{result.losses[-1]:.4f} in {result.seconds:.0f} s; checkpoint {result.checkpoint}")
    return result


def _resume(folder: Path | None, cfg: PretrainConfig, m: Models, optimizer,
            info: du.DistInfo) -> tuple[int, int, int]:
    """Load ``folder`` (if any) into the models and optimiser: ``(step, epoch, batch)``."""
    if folder is None:
        return 0, 0, 0
    saved = load_checkpoint(folder, m.modules, m.pixel_head, validate=lambda state: (
        check_resumable(state.get("config", {}), cfg.to_dict(),
                        ("model", "objective", "batch_size", "seed"), folder)))
    optimizer.load_state_dict(saved["optimizer"])
    restore_rng(saved["rng"], info)
    return saved["step"], saved["epoch"], saved["batch_in_epoch"]


def _loader(cfg: PretrainConfig, clips: IndexedClips,
            info: du.DistInfo) -> tuple[du.ResumableSampler, DataLoader]:
    sampler = du.ResumableSampler(len(clips), cfg.batch_size, info, seed=cfg.seed)
    if sampler.batches_per_epoch < 1:
        raise DatasetError(f"batch_size: {cfg.batch_size} clips per rank, but the dataset gives "
                           f"only {len(sampler.inner)} per rank ({len(clips)} in all)")
    loader = DataLoader(clips, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                        num_workers=cfg.data.num_workers,
                        pin_memory=info.device.type == "cuda")
    return sampler, loader


def _schedules(cfg: PretrainConfig, step: int) -> tuple[float, float, float]:
    """``(lr, weight decay, EMA momentum)`` at ``step``."""
    lr = scheduled_lr(cfg.optim, step, cfg.steps)
    wd = cosine_weight_decay(step, start_wd=cfg.optim.weight_decay,
                             final_wd=cfg.optim.final_weight_decay, total_steps=cfg.steps)
    momentum = ema_momentum(step, start=cfg.ema.start, final=cfg.ema.final,
                            total_steps=cfg.steps)
    return lr, wd, momentum


def _losses(cfg: PretrainConfig, forward: nn.Module, target_forward: nn.Module | None,
            clip: torch.Tensor, step: int, info: du.DistInfo):
    """``(loss, terms, targets)`` of one batch ``clip`` ``[B, 3, T, H, W]`` in ``[0, 1]``."""
    device = clip.device
    video = imagenet_normalize(clip, channel_dim=1)
    masks = sample_multiblock_masks(
        cfg.model.grid, cfg.masks.specs(), clip.shape[0],
        generator=step_seed(cfg.seed, step, info.rank), min_keep=cfg.masks.min_keep,
        truncate=cfg.masks.truncate)
    contexts = [mask.context.to(device) for mask in masks]
    targets_idx = [mask.targets.to(device) for mask in masks]
    if target_forward is not None:
        with torch.no_grad():
            targets = target_forward(video)  # [B, N, D]
    else:
        targets = pixel_targets(clip, cfg.model.tubelet_size,
                                cfg.model.patch_size)  # [B, N, t p p 3]
    loss, terms = forward(video, contexts, targets_idx, targets)
    return loss, terms, targets


def _metrics(cfg: PretrainConfig, m: Models, stats: torch.Tensor, lr: float, wd: float,
             grad_norm: float, momentum: float, clips_per_s: float,
             seconds: float) -> dict[str, float]:
    grid = cfg.model.grid
    metrics = {"loss/total": float(stats[0]), "optim/lr": lr, "optim/weight_decay": wd,
               "optim/grad_norm": grad_norm, "ema/momentum": momentum,
               "perf/clips_per_s": clips_per_s,
               "perf/tokens_per_s": clips_per_s * grid[0] * grid[1] * grid[2],
               "perf/step_ms": seconds * 1e3}
    *per_type_values, variance, covariance = stats[1:].tolist()
    for i, value in enumerate(per_type_values):
        metrics[f"loss/mask{i}"] = value
    if m.student.regularizer.enabled:
        metrics["loss/variance"], metrics["loss/covariance"] = variance, covariance
    return metrics


def _banner(cfg: PretrainConfig, m: Models, num_clips: int, info: du.DistInfo, bf16: bool,
            run_dir: Path, folder: Path | None, step: int) -> str:
    grid = cfg.model.grid
    params = sum(p.numel() for p in m.student.parameters()) / 1e6
    reg = m.student.regularizer
    centred = ", centred by position" if reg.centering == "position" else ""
    return (f"pretrain {cfg.objective}: model {cfg.model.name} ({params:.2f}M trainable "
            f"params, {grid[0] * grid[1] * grid[2]} tokens/clip), {num_clips} clips, "
            f"{info.world_size} x {info.device} {'bf16' if bf16 else 'fp32'}, run_dir {run_dir}"
            + (f", resuming at step {step}" if folder is not None else "")
            + (f"; regularizer variance {reg.variance_weight:g}, covariance "
               f"{reg.covariance_weight:g}{centred}" if reg.enabled else "; no regularizer"))


__all__ = ["JepaStudent", "Models", "PretrainResult", "TrainingDivergedError", "build_clips",
           "build_models", "pretrain", "step_seed"]
