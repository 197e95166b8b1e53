"""World-model training: pooler + action-conditioned predictor (+ proprio head) on a frozen
encoder, by teacher forcing and multi-step rollout in latent space.

Per step, ``B`` windows of ``W = history + rollout_steps`` frames (``frameskip`` env steps apart)
are drawn from the cached encoder features (:mod:`jepa_world.training.wm_data`):

* teacher forcing: predict every next frame from the true frames before it;
* rollout: from the first ``history`` frames, predict ``rollout_steps`` frames autoregressively
  (the model's own predictions as context), as planning uses it;
* proprio head: the next proprio from each predicted frame (normalised L1), and (``state``) the
  proprio read by the same head from the ENCODED frames: it ties the latent to the arm's state;
* anti-collapse: the pooler is trained too, end to end through the prediction targets by default
  (``loss.target_grad``), so its latents could shrink to a constant that is trivially
  predictable; the state loss and a VICReg variance hinge + covariance penalty prevent that.

Checkpoints (``<run_dir>/checkpoints/step_N/``) are :meth:`WorldModel.save_pretrained` folders
plus ``state.pt``; the final model is also written to ``<run_dir>/world_model/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from jepa_world.checkpoints import atomic_save_bytes, atomic_torch_save, load_pretrained
from jepa_world.config import CollectConfig
from jepa_world.data.windows import split_episodes
from jepa_world.errors import ConfigError
from jepa_world.models.pooling import PoolerConfig
from jepa_world.models.presets import ACPredictorConfig, EncoderConfig, config_from_dict
from jepa_world.schedules import param_groups, set_lr_, warmup_cosine_lr
from jepa_world.training import distributed as du
from jepa_world.training.logging import TrainLogger, feature_std
from jepa_world.training.pretrain import TrainingDivergedError
from jepa_world.training.state import (
    LATEST_FILE,
    STATE_FILE,
    checkpoint_root,
    latest_checkpoint,
    rng_state,
    set_rng_state,
    step_dir_name,
)
from jepa_world.training.wm_config import WMTrainConfig
from jepa_world.training.wm_data import (
    cached_encode_episodes,
    encoder_fingerprint,
)
from jepa_world.training.wm_loss import LOSS_NAMES, WorldModelLoss, evaluate
from jepa_world.world_model import WorldModel, WorldModelConfig

FINAL_DIR = "world_model"


@dataclass
class WMTrainResult:
    run_dir: Path
    model: WorldModel | None = None
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    val: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


# ----------------------------------------------------------------------------- building blocks


def resolve_encoder(cfg: WMTrainConfig, info: du.DistInfo) -> tuple[EncoderConfig, dict, str]:
    """The frozen encoder's config, weights and a description (pretraining it if needed)."""
    src = cfg.encoder
    path = Path(src.path) if src.path else None
    if path is None:
        root = Path(src.pretrain_dir)
        path = latest_checkpoint(root)
        if path is None:
            if not src.pretrain or info.distributed:
                raise ConfigError(f"encoder.path: no pretrained encoder in {root}; run "
                                  f"`python -m jepa_world.pretrain run_dir={root}` first or pass "
                                  f"encoder.path=<checkpoint>")
            from jepa_world.training.config import ModelConfig, PretrainConfig
            from jepa_world.training.pretrain import pretrain

            print(f"no encoder in {root}: pretraining the tiny V-JEPA encoder there first")
            model = ModelConfig(img_size=cfg.env.image_size)
            pre_cfg = PretrainConfig(env=cfg.env, model=model, run_dir=str(root),
                                     device=cfg.device, progress=cfg.progress)
            pre_cfg.data.data_dir = cfg.data.data_dir  # the same dataset train_wm then uses
            pre_cfg.data.episodes = cfg.data.episodes
            pre_cfg.data.episode_length = cfg.data.episode_length
            path = pretrain(pre_cfg).checkpoint
    elif path.is_dir() and not (path / "config.json").exists():
        found = latest_checkpoint(path)
        if found is None:
            raise ConfigError(f"encoder.path: {path} is neither a checkpoint folder nor a run "
                              f"folder with checkpoints")
        path = found
    if not path.exists():
        raise ConfigError(f"encoder.path: {path} does not exist")
    pre = load_pretrained(path)
    encoder = pre.target_encoder if src.use_target and pre.target_encoder is not None \
        else pre.encoder
    if encoder is None:
        raise ConfigError(f"encoder.path: {path} holds no encoder")
    enc_cfg = config_from_dict(EncoderConfig, pre.config["encoder"])
    which = "target_encoder" if encoder is pre.target_encoder else "encoder"
    return enc_cfg, encoder.state_dict(), f"{path}[{which}]"


def build_world_model(cfg: WMTrainConfig, enc_cfg: EncoderConfig, action_dim: int,
                      proprio_dim: int) -> WorldModel:
    m = cfg.model
    pooler = PoolerConfig(num_tokens=m.pooler_tokens, kind=m.pooler, num_heads=m.pooler_heads,
                          grid_channels=m.grid_channels, grid_hidden_dim=m.grid_hidden_dim) \
        if m.pooler_tokens else None
    predictor = ACPredictorConfig(predictor_dim=m.predictor_dim, depth=m.depth,
                                  num_heads=m.num_heads,
                                  mlp_hidden_dim=int(m.predictor_dim * m.mlp_ratio),
                                  tubelet_size=enc_cfg.tubelet_size)
    wm_cfg = WorldModelConfig(encoder=enc_cfg, predictor=predictor, pooler=pooler,
                              action_dim=action_dim,
                              proprio_dim=proprio_dim if m.use_proprio else 0,
                              frameskip=m.frameskip, history_length=m.history,
                              image_size=cfg.env.image_size, input_norm="imagenet",
                              proprio_head=m.use_proprio,
                              proprio_head_hidden=m.proprio_head_hidden if m.use_proprio else 0,
                              env_id=cfg.env.task_id)
    return WorldModel(wm_cfg)


def ensure_dataset(cfg: WMTrainConfig, info: du.DistInfo) -> Path:
    """The dataset folder, collected by rank 0 when missing (and ``data.collect``)."""
    collect_cfg = CollectConfig(env=cfg.env, episodes=cfg.data.episodes,
                                episode_length=cfg.data.episode_length, seed=0,
                                data_dir=cfg.data.data_dir, progress=cfg.progress)
    from jepa_world.data.collection import ensure_collected

    root = ensure_collected(collect_cfg, cfg.data.collect, info.is_main)
    du.barrier(info)
    return root


def save_wm_checkpoint(run_dir: Path, step: int, model: WorldModel, state: dict,
                       keep: int) -> Path:
    """``<run_dir>/checkpoints/step_N/`` (world model + ``state.pt``), then ``latest``."""
    root = checkpoint_root(run_dir)
    folder = root / step_dir_name(step)
    model.save_pretrained(folder)
    atomic_torch_save(dict(state, step=step), folder / STATE_FILE)
    atomic_save_bytes(folder.name.encode(), root / LATEST_FILE)
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)


# ----------------------------------------------------------------------------- the loop


def train_world_model(cfg: WMTrainConfig,
                      callback: Callable[[int, float], None] | None = None) -> WMTrainResult:
    """Train (or resume) a world model as described by ``cfg``; see the module docstring.

    ``callback(step, loss)`` runs on every rank after each step (steps done); an exception
    raised there stops the run like a crash would (checkpoints already written stay).

    Raises:
        TrainingDivergedError: NaN/inf loss or gradient norm.
        ConfigError, DatasetError, CheckpointError: bad settings, data or encoder files.
    """
    started = time.perf_counter()
    info = du.setup(cfg.device)
    try:
        result = _run(cfg, info, started, callback)
    except BaseException:
        du.cleanup(info, synchronize=False)
        raise
    du.cleanup(info)
    return result


def _run(cfg: WMTrainConfig, info: du.DistInfo, started: float, callback) -> WMTrainResult:
    run_dir = Path(du.broadcast_object(
        cfg.run_dir or f"outputs/train_wm/{time.strftime('%Y-%m-%d_%H-%M-%S')}", info))
    device = info.device
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16
                else nullcontext())
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    # The encoder first: a bad encoder.path must fail before minutes of data collection.
    enc_cfg, enc_state, enc_desc = resolve_encoder(cfg, info)
    root = ensure_dataset(cfg, info)
    train_ids, val_ids = split_episodes(root, cfg.data.val_fraction) \
        if cfg.data.val_fraction > 0 else (_all_ids(root), [])
    from jepa_world.data.store import Manifest

    manifest = Manifest.load(root)
    if manifest.image_size[0] != cfg.env.image_size:
        raise ConfigError(f"env.image_size: {cfg.env.image_size} but {root} holds "
                          f"{manifest.image_size[0]} px frames")
    model = build_world_model(cfg, enc_cfg, manifest.action_dim, manifest.proprio_dim)
    if cfg.loss.state_dims and max(cfg.loss.state_dims) >= max(model.config.proprio_dim, 1):
        raise ConfigError(f"loss.state_dims: {cfg.loss.state_dims} out of range for the "
                          f"dataset's {model.config.proprio_dim} proprio entries")
    model.encoder.load_state_dict(enc_state)
    model.to(device)

    def encode(frames: torch.Tensor) -> torch.Tensor:  # [F, 3, H, W] uint8 -> [F, N0, D]
        return model.encode_patches(frames.to(device)[None])[0].cpu()

    fingerprint = encoder_fingerprint(model.encoder, cfg.env.image_size,
                                      model.config.input_norm)
    cache = root / "features" if cfg.data.cache_features else None
    train = cached_encode_episodes(root, train_ids[info.rank::info.world_size], encode,
                                   fingerprint, cache, cfg.data.encode_batch,
                                   cfg.progress and info.is_main)
    val = cached_encode_episodes(root, val_ids, encode, fingerprint, cache,
                                 cfg.data.encode_batch) if val_ids else None
    if model.config.proprio_dim:
        flat = train.proprio.reshape(-1, train.proprio.shape[-1])
        model.set_proprio_stats(flat.mean(0).to(device), flat.std(0).clamp_min(1e-3).to(device))

    objective = WorldModelLoss(model, cfg).to(device)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups(
        nn.ModuleDict({"pooler": model.pooler or nn.Identity(), "predictor": model.predictor,
                       "proprio_head": model.proprio_head or nn.Identity()}),
        cfg.optim.weight_decay), lr=cfg.optim.start_lr)
    step = 0
    folder = latest_checkpoint(run_dir) if cfg.resume == "auto" else None
    if folder is not None:
        step = _resume(folder, cfg, model, optimizer, info)
    forward: nn.Module = objective
    if info.distributed:
        forward = DistributedDataParallel(
            objective, device_ids=[device] if device.type == "cuda" else None)

    logger = TrainLogger(run_dir, cfg.steps, step, enabled=info.is_main,
                         tensorboard=cfg.tensorboard, progress=cfg.progress)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_wm_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        params = sum(p.numel() for p in trainable) / 1e6
        logger.write(f"train_wm: {params:.2f}M trainable params on frozen {enc_desc}; "
                     f"{len(train.ids)} train / {len(val_ids)} val episodes "
                     f"({train.tokens.shape[2]} tokens a frame -> {model.tokens_per_frame}), "
                     f"window {cfg.window_frames} frames x frameskip {cfg.model.frameskip}, "
                     f"{info.world_size} x {device}, run_dir {run_dir}"
                     + (f", resuming at step {step}" if folder is not None else ""))
    result = WMTrainResult(run_dir=run_dir, steps=step)
    last_good = folder
    tick = time.perf_counter()
    try:
        while step < cfg.steps:
            lr = warmup_cosine_lr(step, start_lr=cfg.optim.start_lr, ref_lr=cfg.optim.lr,
                                  final_lr=cfg.optim.final_lr,
                                  warmup_steps=min(cfg.optim.warmup_steps, cfg.steps),
                                  total_steps=cfg.steps)
            set_lr_(optimizer, lr)
            batch = train.sample(cfg.batch_size, cfg.window_frames, cfg.model.frameskip,
                                 _step_generator(cfg.seed, step, info.rank))
            patches, actions, proprio = (t.to(device, non_blocking=True) for t in batch)
            with autocast:
                loss, parts = forward(patches, actions, proprio)
            stats = du.all_reduce_mean(torch.cat([loss.detach().float()[None], parts.float()]),
                                       info)
            loss_value = float(stats[0])
            if not math.isfinite(loss_value):
                raise _diverged("loss", loss_value, step, lr, last_good)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
            grad_norm = float(nn.utils.clip_grad_norm_(trainable, clip))
            if not math.isfinite(grad_norm):
                raise _diverged("gradient norm", grad_norm, step, lr, last_good)
            optimizer.step()
            step += 1
            now = time.perf_counter()
            windows_per_s = cfg.batch_size * info.world_size / max(now - tick, 1e-9)
            tick = now
            result.losses.append(loss_value)
            if step % cfg.log_interval == 0 or step == cfg.steps:
                metrics = {"loss/total": loss_value, "optim/lr": lr, "optim/grad_norm": grad_norm,
                           "perf/windows_per_s": windows_per_s}
                metrics.update({f"loss/{n}": v for n, v in zip(LOSS_NAMES, stats[1:].tolist(),
                                                                strict=True)})
                with torch.no_grad():
                    metrics["collapse/latent_std"] = float(feature_std(model.pool(patches[:8])))
                logger.scalars(step, metrics)
            if val is not None and info.is_main and (step % cfg.eval_interval == 0
                                                     or step == cfg.steps):
                result.val = evaluate(objective, val, cfg, device)
                logger.scalars(step, result.val)
            logger.progress(loss_value, lr, windows_per_s)
            if step % cfg.checkpoint_interval == 0 or step == cfg.steps:
                last_good = _checkpoint(run_dir, step, cfg, model, optimizer, info)
            result.steps = step
            if callback is not None:
                callback(step, loss_value)
    finally:
        logger.close()
    if info.is_main:
        model.save_pretrained(run_dir / FINAL_DIR)
        if result.losses:
            val_note = ", ".join(f"{k.split('/')[1]} {v:.4f}" for k, v in result.val.items())
            print(f"train_wm done: {step} steps, loss {result.losses[0]:.4f} -> "
                  f"{result.losses[-1]:.4f} in {time.perf_counter() - started:.0f} s"
                  + (f"; held-out: {val_note}" if val_note else "")
                  + f"; world model: {run_dir / FINAL_DIR}")
    result.model = model
    result.seconds = time.perf_counter() - started
    return result


def _all_ids(root: Path) -> list[int]:
    from jepa_world.data.store import scan_shards

    return sorted(ref.index for ref in scan_shards(root))


def _checkpoint(run_dir, step, cfg, model, optimizer, info) -> Path:
    rngs = du.all_gather_object(rng_state(), info)
    folder = checkpoint_root(run_dir) / step_dir_name(step)
    if info.is_main:
        state = {"optimizer": optimizer.state_dict(), "rng": rngs, "version": 1,
                 "world_size": info.world_size, "config": cfg.to_dict()}
        folder = save_wm_checkpoint(run_dir, step, model, state, cfg.keep_checkpoints)
    du.barrier(info)
    return folder


def _resume(folder: Path, cfg: WMTrainConfig, model: WorldModel, optimizer, info) -> int:
    from jepa_world.checkpoints import load_training_state

    state = load_training_state(folder / STATE_FILE)
    old = state.get("config", {})
    for key in ("model", "loss", "batch_size", "seed"):
        if old.get(key) != dataclasses.asdict(cfg)[key]:
            raise ConfigError(f"resume: {folder} was trained with another {key} "
                              f"({old.get(key)!r} vs {dataclasses.asdict(cfg)[key]!r}); use a "
                              f"new run_dir or resume=never")
    saved = WorldModel.from_pretrained(folder, map_location=model.pixel_mean.device)
    model.load_state_dict(saved.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    rngs = state["rng"]
    if len(rngs) == info.world_size:
        set_rng_state(rngs[info.rank])
    return int(state["step"])


def _diverged(what: str, value: float, step: int, lr: float, last_good: Path | None):
    keep = (f"the last good checkpoint is {last_good}" if last_good is not None
            else "no checkpoint was written yet")
    return TrainingDivergedError(
        f"{what} became {value} at step {step} (lr {lr:.3g}); stopped without saving: {keep}. "
        f"Lower optim.lr or raise optim.warmup_steps")


__all__ = ["WMTrainResult", "build_world_model", "ensure_dataset", "resolve_encoder",
           "train_world_model"]
