"""World-model training: pooler + action-conditioned predictor (+ proprio head) on a frozen
encoder, by teacher forcing and multi-step rollout in latent space.

Per step, ``B`` windows of ``W = history + rollout_steps`` frames (``frameskip`` env steps apart)
are drawn from the cached encoder features (:mod:`jepa_world.training.wm_data`), or with
``encoder.lr_scale`` > 0 from the frames themselves, which the encoder, fine-tuned through every
loss below at that fraction of the learning rate, encodes at each step:

* teacher forcing: predict every next frame from the true frames before it;
* rollout: from the first ``history`` frames, predict ``rollout_steps`` frames autoregressively
  (the model's own predictions as context), as planning uses it;
* proprio head: the next proprio from each predicted frame (normalised L1), and (``state``) the
  proprio read by the same head from the ENCODED frames: it ties the latent to the arm's state;
* goal head (``loss.goal_weight``, tasks whose goal is not the agent's own state: push's block
  pose): a training-only head reads each encoded frame's goal state (from the sim state) from its
  latent, so the latent keeps what the goal is made of; it is saved in ``state.pt`` only;
* anti-collapse: the pooler is trained too, end to end through the prediction targets by default
  (``loss.target_grad``), so its latents could shrink to a constant that is trivially
  predictable; the state loss and a VICReg variance hinge + covariance penalty prevent that.

Checkpoints (``<run_dir>/checkpoints/step_N/``) are :meth:`WorldModel.save_pretrained` folders
plus ``state.pt``; the final model is also written to ``<run_dir>/world_model/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jepa_world.checkpoints import CheckpointError, load_pretrained
from jepa_world.checkpoints.runs import follow_latest, latest_checkpoint, read_state, write_step
from jepa_world.data.windows import split_episodes
from jepa_world.errors import ConfigError
from jepa_world.models.pooling import PoolerConfig
from jepa_world.models.presets import (
    ACPredictorConfig,
    EncoderConfig,
    build_encoder,
    config_from_dict,
)
from jepa_world.schedules import param_groups, set_lr_
from jepa_world.training import distributed as du
from jepa_world.training.harness import (
    Stepper,
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
from jepa_world.training.telemetry import TrainLogger, feature_std
from jepa_world.training.wm_config import WMTrainConfig
from jepa_world.training.wm_data import cached_encode_episodes, encoder_fingerprint
from jepa_world.training.wm_loss import LOSS_NAMES, WorldModelLoss, draw, evaluate
from jepa_world.world_model import WorldModel, WorldModelConfig
from jepa_world.world_model_config import FORMAT as WM_FORMAT

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
    """The encoder's config, weights and a description (pretraining it if needed)."""
    src = cfg.encoder
    if src.kind == "conv":  # random init under the run's seed (seed_all)
        enc_cfg = EncoderConfig(kind="conv", img_size=cfg.env.image_size)
        return enc_cfg, build_encoder(enc_cfg).state_dict(), "a conv encoder (from scratch)"
    path = Path(src.path) if src.path else None
    if path is None:
        root = Path(src.pretrain_dir)
        path = latest_checkpoint(root)
        if path is None:
            if not src.pretrain or info.distributed:
                raise ConfigError(f"encoder.path: no pretrained encoder in {root}; run "
                                  f"`python -m jepa_world.pretrain run_dir={root}` first or pass "
                                  f"encoder.path=<checkpoint>")
            from jepa_world.training.pretrain import pretrain
            from jepa_world.training.pretrain_config import ModelConfig, PretrainConfig

            print(f"no encoder in {root}: pretraining the tiny V-JEPA encoder there first")
            model = ModelConfig(img_size=cfg.env.image_size)
            pre_cfg = PretrainConfig(env=cfg.env, model=model, run_dir=str(root),
                                     device=cfg.device, progress=cfg.progress)
            pre_cfg.data.data_dir = cfg.data.data_dir  # the same dataset train_wm then uses
            pre_cfg.data.episodes = cfg.data.episodes
            pre_cfg.data.episode_length = cfg.data.episode_length
            path = pretrain(pre_cfg).checkpoint
    elif path.is_dir() and not (path / "config.json").exists():
        path = follow_latest(path)
        if not (path / "config.json").exists():
            raise ConfigError(f"encoder.path: {path} is neither a checkpoint folder nor a run "
                              f"folder with checkpoints")
    if not path.exists():
        raise ConfigError(f"encoder.path: {path} does not exist")
    if _is_world_model(path):
        return _world_model_encoder(path)
    pre = load_pretrained(path)
    encoder = pre.target_encoder if src.use_target and pre.target_encoder is not None \
        else pre.encoder
    if encoder is None:
        raise ConfigError(f"encoder.path: {path} holds no encoder")
    enc_cfg = config_from_dict(EncoderConfig, pre.config["encoder"])
    which = "target_encoder" if encoder is pre.target_encoder else "encoder"
    return enc_cfg, encoder.state_dict(), f"{path}[{which}]"


def _is_world_model(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text()).get("format") == WM_FORMAT
    except (OSError, ValueError, AttributeError):
        return False  # not a world-model folder: load_pretrained says what it is not


def _world_model_encoder(path: Path) -> tuple[EncoderConfig, dict, str]:
    """The frozen encoder of the world model in ``path`` (e.g. a shipped one), in float32."""
    try:
        wm = WorldModel.from_pretrained(path)
    except CheckpointError as err:
        raise ConfigError(f"encoder.path: {err}") from err
    state = {k: v.float() for k, v in wm.encoder.state_dict().items()}
    return wm.config.encoder, state, f"{path}[world model encoder]"


def build_world_model(cfg: WMTrainConfig, enc_cfg: EncoderConfig, action_dim: int,
                      proprio_dim: int) -> WorldModel:
    m = cfg.model
    pooler = PoolerConfig(num_tokens=m.pooler_tokens, kind=m.pooler, num_heads=m.pooler_heads,
                          grid_channels=m.grid_channels, grid_hidden_dim=m.grid_hidden_dim) \
        if m.pooler_tokens else None
    predictor = ACPredictorConfig(predictor_dim=m.predictor_dim, depth=m.depth,
                                  num_heads=m.num_heads,
                                  mlp_hidden_dim=int(m.predictor_dim * m.mlp_ratio),
                                  tubelet_size=enc_cfg.tubelet_size,
                                  conditioning=m.conditioning)
    wm_cfg = WorldModelConfig(encoder=enc_cfg, predictor=predictor, pooler=pooler,
                              action_dim=action_dim,
                              proprio_dim=proprio_dim if m.use_proprio else 0,
                              frameskip=m.frameskip, history_length=m.history,
                              image_size=cfg.env.image_size, input_norm="imagenet",
                              proprio_head=m.use_proprio,
                              proprio_head_hidden=m.proprio_head_hidden if m.use_proprio else 0,
                              env_id=cfg.env.task_id, imagination=m.imagination)
    return WorldModel(wm_cfg)


def ensure_dataset(cfg: WMTrainConfig, info: du.DistInfo) -> Path:
    """The dataset folder, collected by rank 0 when missing (and ``data.collect``)."""
    from jepa_world.data.collection import ensure_env_data

    root = ensure_env_data(cfg.env, cfg.data, 0, cfg.progress, info.is_main)
    du.barrier(info)
    return root


def save_wm_checkpoint(run_dir: Path, step: int, model: WorldModel, state: dict,
                       keep: int) -> Path:
    """``<run_dir>/checkpoints/step_N/`` (world model + ``state.pt``), then ``latest``."""
    return write_step(run_dir, step, model.save_pretrained, state, keep)


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)


@dataclass
class Prepared:
    """The world model on its encoder, and the train / held-out episodes: encoded by the frozen
    encoder, or (fine-tuning it) their frames."""

    model: WorldModel
    train: object  #: :class:`~jepa_world.training.wm_data.EncodedEpisodes` of this rank
    val: object | None
    val_episodes: int
    encoder: str  #: where the encoder came from


def prepare(cfg: WMTrainConfig, info: du.DistInfo) -> Prepared:
    """Encoder, dataset, world model and cached features, checked against each other."""
    from jepa_world.data.store import Manifest

    # The encoder first: a bad encoder.path must fail before minutes of data collection.
    enc_cfg, enc_state, enc_desc = resolve_encoder(cfg, info)
    root = ensure_dataset(cfg, info)
    train_ids, val_ids = split_episodes(root, cfg.data.val_fraction) \
        if cfg.data.val_fraction > 0 else (_all_ids(root), [])
    manifest = Manifest.load(root)
    if manifest.image_size[0] != cfg.env.image_size:
        raise ConfigError(f"env.image_size: {cfg.env.image_size} but {root} holds "
                          f"{manifest.image_size[0]} px frames")
    model = build_world_model(cfg, enc_cfg, manifest.action_dim, manifest.proprio_dim)
    if cfg.loss.state_dims and max(cfg.loss.state_dims) >= max(model.config.proprio_dim, 1):
        raise ConfigError(f"loss.state_dims: {cfg.loss.state_dims} out of range for the "
                          f"dataset's {model.config.proprio_dim} proprio entries")
    model.encoder.load_state_dict(enc_state)
    device = info.device
    model.to(device)

    def encode(frames: torch.Tensor) -> torch.Tensor:  # [F, 3, H, W] uint8 -> [F, N0, D]
        if cfg.encoder.finetune:
            return frames  # kept as uint8 frames: the objective encodes them at every step
        return model.encode_patches(frames.to(device)[None])[0].cpu()

    fingerprint = encoder_fingerprint(model.encoder, cfg.env.image_size,
                                      model.config.input_norm)
    cache = root / "features" if cfg.data.cache_features and not cfg.encoder.finetune else None
    model.encoder.requires_grad_(cfg.encoder.finetune)
    train = cached_encode_episodes(root, train_ids[info.rank::info.world_size], encode,
                                   fingerprint, cache, cfg.data.encode_batch,
                                   cfg.progress and info.is_main)
    val = cached_encode_episodes(root, val_ids, encode, fingerprint, cache,
                                 cfg.data.encode_batch) if val_ids else None
    if model.config.proprio_dim:
        flat = train.proprio.reshape(-1, train.proprio.shape[-1])
        model.set_proprio_stats(flat.mean(0).to(device), flat.std(0).clamp_min(1e-3).to(device))
    if cfg.loss.goal_weight > 0:
        attach_goal_states(cfg, root, [e for e in (train, val) if e is not None])
    return Prepared(model, train, val, len(val_ids), enc_desc)


def attach_goal_states(cfg: WMTrainConfig, root: Path, parts: list) -> None:
    """Each frame's goal-state targets (``loss.goal_weight``) on the encoded episodes: the goal
    pose, or (``loss.goal_targets=keypoints``) the goal body's keypoints."""
    from jepa_world.probes.runner import probe_state
    from jepa_world.training.wm_data import load_goal_states

    _, angles, state_fn = probe_state(cfg.env)
    if cfg.loss.goal_targets == "keypoints":
        state_fn, angles = keypoint_targets(cfg, state_fn)
    for part in parts:
        part.goal = load_goal_states(root, part.ids, state_fn, angles)


def keypoint_targets(cfg: WMTrainConfig, goal_fn):
    """``(sim states [..., S] -> keypoints [..., 2 K], no angle flags)`` for the task's goal
    body (``env.goal_keypoints``).

    Raises:
        ConfigError: the task's goal is no rigid body's pose.
    """
    task = cfg.env.make(disable_env_checker=True)
    try:
        keypoints = task.unwrapped.goal_keypoints
        probe = keypoints(np.zeros(task.unwrapped.observation_space["desired_goal"].shape))
    finally:
        task.close()
    if probe is None:
        raise ConfigError(f"loss.goal_targets=keypoints: {cfg.env.task_id} defines no goal "
                          f"keypoints (its goal is no rigid body's pose); use pose")

    def states_to_keypoints(states: np.ndarray) -> np.ndarray:
        points = keypoints(goal_fn(states))  # [..., K, 2]
        return points.reshape(*points.shape[:-2], -1)

    return states_to_keypoints, [False] * probe.size


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
    return run_distributed(cfg.device, lambda info: _run(cfg, info, started, callback))


ADVICE = "Lower optim.lr or raise optim.warmup_steps"


def _run(cfg: WMTrainConfig, info: du.DistInfo, started: float, callback) -> WMTrainResult:
    run_dir = open_run_dir(cfg.run_dir, "train_wm", info)
    device = info.device
    amp, _ = autocast(cfg.precision, device)
    seed_all(cfg.seed)
    data = prepare(cfg, info)
    model, train, val = data.model, data.train, data.val
    objective = WorldModelLoss(model, cfg, 0 if train.goal is None else train.goal.shape[-1])
    if objective.goal_head is not None:
        objective.goal_head.set_stats(train.goal)
    objective.to(device)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups(
        nn.ModuleDict({"pooler": model.pooler or nn.Identity(), "predictor": model.predictor,
                       "proprio_head": model.proprio_head or nn.Identity(),
                       "goal_head": objective.goal_head or nn.Identity()}),
        cfg.optim.weight_decay) + param_groups(model.encoder, cfg.optim.weight_decay,
                                               cfg.encoder.lr_scale),
        lr=cfg.optim.start_lr)
    folder = resume_folder(cfg.resume, run_dir)
    start = _resume(folder, cfg, objective, optimizer, info) if folder is not None else 0
    forward = wrap_ddp(objective, info)
    logger = TrainLogger(run_dir, cfg.steps, start, enabled=info.is_main,
                         tensorboard=cfg.tensorboard, progress=cfg.progress, desc="train_wm")
    stepper = Stepper(optimizer, trainable, cfg.optim.grad_clip, ADVICE, folder)
    if info.is_main:
        write_run_config(run_dir, "train_wm_config.json", cfg.to_dict())
        logger.write(_banner(cfg, data, trainable, info, run_dir, folder, start))
    result = WMTrainResult(run_dir=run_dir, steps=start)
    tick = time.perf_counter()
    try:
        for step in range(start, cfg.steps):
            lr = scheduled_lr(cfg.optim, step, cfg.steps)
            set_lr_(optimizer, lr)
            batch = draw(train, cfg, _step_generator(cfg.seed, step, info.rank),
                         objective.goal_head)
            inputs, actions, proprio, goal = (None if t is None else
                                              t.to(device, non_blocking=True) for t in batch)
            with amp:
                loss, parts = forward(inputs, actions, proprio, goal)
            stats = du.all_reduce_mean(torch.cat([loss.detach().float()[None], parts.float()]),
                                       info)
            grad_norm = stepper.step(loss, float(stats[0]), step, lr)
            done, now = step + 1, time.perf_counter()
            windows_per_s = cfg.batch_size * info.world_size / max(now - tick, 1e-9)
            tick = now
            result.losses.append(float(stats[0]))
            if due(done, cfg.log_interval, cfg.steps):
                logger.scalars(done, _metrics(objective, stats, lr, grad_norm, windows_per_s,
                                              inputs, goal is not None))
            if val is not None and info.is_main and due(done, cfg.eval_interval, cfg.steps):
                result.val = evaluate(objective, val, cfg, device)
                logger.scalars(done, result.val)
            logger.progress(float(stats[0]), lr, windows_per_s)
            if due(done, cfg.checkpoint_interval, cfg.steps):
                stepper.last_good = _checkpoint(run_dir, done, cfg, objective, optimizer, info)
            result.steps = done
            if callback is not None:
                callback(done, float(stats[0]))
    finally:
        logger.close()
    if info.is_main:
        model.save_pretrained(run_dir / FINAL_DIR)
        _report(result, run_dir, started)
    result.model = model
    result.seconds = time.perf_counter() - started
    return result


def _metrics(objective: WorldModelLoss, stats: torch.Tensor, lr: float, grad_norm: float,
             windows_per_s: float, inputs: torch.Tensor, goal: bool) -> dict[str, float]:
    metrics = {"loss/total": float(stats[0]), "optim/lr": lr, "optim/grad_norm": grad_norm,
               "perf/windows_per_s": windows_per_s}
    metrics.update({f"loss/{n}": v for n, v in zip(LOSS_NAMES, stats[1:].tolist(), strict=True)
                    if n != "goal" or goal})
    with torch.no_grad():
        metrics["collapse/latent_std"] = float(feature_std(objective.latents(inputs[:8])))
    return metrics


def _banner(cfg: WMTrainConfig, data: Prepared, trainable: list[nn.Parameter],
            info: du.DistInfo, run_dir: Path, folder: Path | None, step: int) -> str:
    params = sum(p.numel() for p in trainable) / 1e6
    encoder = (f"fine-tuning {data.encoder} at {cfg.encoder.lr_scale:g} x the lr"
               if cfg.encoder.finetune else f"on frozen {data.encoder}")
    patches = data.model.config.patches_per_frame
    return (f"train_wm: {params:.2f}M trainable params {encoder}; "
            f"{len(data.train.ids)} train / {data.val_episodes} val episodes "
            f"({patches} tokens a frame -> {data.model.tokens_per_frame}), "
            f"window {cfg.window_frames} frames x frameskip {cfg.model.frameskip}, "
            f"{info.world_size} x {info.device}, run_dir {run_dir}"
            + (f", resuming at step {step}" if folder is not None else ""))


def _report(result: WMTrainResult, run_dir: Path, started: float) -> None:
    if not result.losses:
        return
    val_note = ", ".join(f"{k.split('/')[1]} {v:.4f}" for k, v in result.val.items())
    print(f"train_wm done: {result.steps} steps, loss {result.losses[0]:.4f} -> "
          f"{result.losses[-1]:.4f} in {time.perf_counter() - started:.0f} s"
          + (f"; held-out: {val_note}" if val_note else "")
          + f"; world model: {run_dir / FINAL_DIR}")


def _all_ids(root: Path) -> list[int]:
    from jepa_world.data.store import scan_shards

    return sorted(ref.index for ref in scan_shards(root))


def _checkpoint(run_dir, step, cfg, objective: WorldModelLoss, optimizer, info) -> Path:
    """The world model's folder; ``state.pt`` adds the optimizer and the training-only goal head."""
    state = {"optimizer": optimizer.state_dict(), "world_size": info.world_size,
             "config": cfg.to_dict()}
    if objective.goal_head is not None:
        state["goal_head"] = objective.goal_head.state_dict()
    return save_on_main(info, run_dir, step, lambda rngs: save_wm_checkpoint(
        run_dir, step, objective.model, dict(state, rng=rngs), cfg.keep_checkpoints))


def _resume(folder: Path, cfg: WMTrainConfig, objective: WorldModelLoss, optimizer,
            info) -> int:
    state = read_state(folder)
    saved_cfg = state.get("config", {})
    saved_cfg.get("loss", {}).setdefault("goal_targets", "pose")  # runs from before the field
    check_resumable(saved_cfg, cfg.to_dict(), ("model", "loss", "batch_size", "seed"), folder)
    # whether (and how fast) the encoder trains decides the optimiser's groups; runs from
    # before these fields had a frozen ViT
    saved = state.get("config", {}).get("encoder", {})
    check_resumable({"encoder": {"kind": saved.get("kind", "vit"),
                                 "lr_scale": saved.get("lr_scale", 0.0)}},
                    {"encoder": {"kind": cfg.encoder.kind, "lr_scale": cfg.encoder.lr_scale}},
                    ("encoder",), folder)
    model = objective.model
    saved = WorldModel.from_pretrained(folder, map_location=model.pixel_mean.device)
    model.load_state_dict(saved.state_dict())
    if objective.goal_head is not None:
        objective.goal_head.load_state_dict(state["goal_head"])
    optimizer.load_state_dict(state["optimizer"])
    restore_rng(state["rng"], info)
    return int(state["step"])


__all__ = ["Prepared", "WMTrainResult", "build_world_model", "ensure_dataset", "prepare",
           "resolve_encoder", "save_wm_checkpoint", "train_world_model"]
