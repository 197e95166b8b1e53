"""Decoder training: frames from a FROZEN world model's latents (:func:`train_decoder`).

Every frame of the dataset is encoded once by the world model (encoder + pooler, cached in
``<data_dir>/features``); the world model also imagines latents from real history with the real
actions (:mod:`jepa_world.training.decoder_data`). Each step decodes a batch of encoded frames
into themselves and (``imagined_fraction``) of imagined latents into the frames that really
followed. Checkpoints: ``<run_dir>/checkpoints/step_N/`` (a decoder folder + ``state.pt``,
resumed under ``resume=auto``); the final decoder goes to ``<run_dir>/decoder/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from einops import rearrange

from jepa_world.checkpoints.decoder import load_decoder, save_decoder
from jepa_world.checkpoints.runs import default_run_dir, read_state, write_step
from jepa_world.data.windows import split_episodes
from jepa_world.devices import resolve_device
from jepa_world.errors import ConfigError
from jepa_world.image_metrics import psnr
from jepa_world.models.decoder import DecoderConfig, build_decoder
from jepa_world.schedules import set_lr_, warmup_cosine_lr
from jepa_world.training.decoder_config import DecodeConfig
from jepa_world.training.decoder_data import Imagined, encode_latents, imagine, load_frames
from jepa_world.training.figures import write_figure
from jepa_world.training.harness import (
    Stepper,
    check_resumable,
    due,
    resume_folder,
    rng_state,
    seed_all,
    set_rng_state,
    write_run_config,
)
from jepa_world.training.telemetry import TrainLogger
from jepa_world.world_model import WorldModel, shipped_model_dir

FINAL_DIR = "decoder"
FIGURE = "decoded.png"  #: the final decoder on held-out data (rows: see each task's figure)
ADVICE = "Lower lr or raise warmup_steps"


@dataclass
class Split:
    """Frames ``[E, L, 3, H, W]`` uint8, their latents ``[E, L, N, D]``, imagined latents."""

    frames: torch.Tensor
    latents: torch.Tensor
    imagined: Imagined


@dataclass
class DecodeResult:
    run_dir: Path
    decoder: torch.nn.Module | None = None
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    val: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def load_world_model(cfg: DecodeConfig, device: torch.device) -> WorldModel:
    """The frozen world model of ``cfg.world_model`` (or the shipped one of the env)."""
    folder = Path(cfg.world_model) if cfg.world_model else shipped_model_dir(cfg.env.short_name)
    if not folder.exists():
        raise ConfigError(f"world_model: {folder} does not exist; train one with "
                          f"`python -m jepa_world.train_wm` and pass world_model=<its folder>")
    model = WorldModel.from_pretrained(folder, map_location=device)
    model.requires_grad_(False)
    return model.eval()


def prepare(cfg: DecodeConfig, model: WorldModel) -> tuple[Split, Split]:
    """Train / held-out frames, latents and imagined latents of the task's dataset."""
    from jepa_world.data.collection import ensure_env_data

    root = ensure_env_data(cfg.env, cfg.data, 0, cfg.progress)
    cache = root / "features" if cfg.data.cache_features else None
    splits = []
    for ids in split_episodes(root, cfg.data.val_fraction):
        enc = encode_latents(model, root, ids, cache, cfg.data.encode_batch, cfg.progress)
        imagined = imagine(model, enc, cfg.imagined_horizon, cfg.imagined_stride)
        splits.append(Split(load_frames(root, ids), enc.tokens, imagined))
    if splits[0].frames.shape[-1] != cfg.env.image_size:
        raise ConfigError(f"env.image_size: {cfg.env.image_size} but {root} holds "
                          f"{splits[0].frames.shape[-1]} px frames")
    return splits[0], splits[1]


def sample_batch(split: Split, batch: int, fraction: float, generator: torch.Generator):
    """``(latents [B, 1, N, D] float32, frames [B, 1, 3, H, W] in [0, 1])``: ``fraction`` of
    them imagined latents with the frames that really followed, the rest encoded frames."""
    n_img = int(round(batch * fraction)) if len(split.imagined.latents) else 0
    e, length = split.latents.shape[:2]
    ep = torch.randint(e, (batch - n_img,), generator=generator)
    fr = torch.randint(length, (batch - n_img,), generator=generator)
    pick = torch.randint(len(split.imagined.latents), (n_img,), generator=generator)
    im = split.imagined
    latents = torch.cat([split.latents[ep, fr].float(), im.latents[pick]])
    frames = torch.cat([split.frames[ep, fr], split.frames[im.episode[pick], im.frame[pick]]])
    return latents[:, None], (frames.float() / 255)[:, None]


def decoder_config(cfg: DecodeConfig, model: WorldModel) -> DecoderConfig:
    d = cfg.decoder
    return DecoderConfig(kind=d.kind, tokens=model.tokens_per_frame, latent_dim=model.latent_dim,
                         image_size=cfg.env.image_size, width=d.width, min_width=d.min_width,
                         unet_channels=list(d.unet_channels),
                         train_timesteps=d.train_timesteps, sample_steps=d.sample_steps,
                         diffusion_patch=d.diffusion_patch, diffusion_target=d.diffusion_target,
                         foreground_weight=d.foreground_weight,
                         background_residual=d.background_residual)


class LatentTask:
    """Decode a frozen WORLD MODEL's latents (encoded frames and its own imagined ones)."""

    def __init__(self, cfg: DecodeConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.model = load_world_model(cfg, device)
        self.train, self.val = prepare(cfg, self.model)
        self.source = cfg.world_model or cfg.env.short_name
        self.provenance = {"world_model": self.source}  #: what the decoder folder records

    def decoder_config(self) -> DecoderConfig:
        return decoder_config(self.cfg, self.model)

    def background(self) -> torch.Tensor:
        return self.train.frames[:, ::10].flatten(0, 1).float() / 255

    def describe(self) -> str:
        return (f"on frozen {self.source}; {len(self.train.frames)} train / "
                f"{len(self.val.frames)} held-out episodes, {len(self.train.imagined.latents)} "
                f"imagined latents")

    def loss(self, decoder, generator: torch.Generator) -> torch.Tensor:
        latents, frames = (t.to(self.device) for t in sample_batch(
            self.train, self.cfg.batch_size, self.cfg.imagined_fraction, generator))
        return decoder.loss(latents, frames)

    def evaluate(self, decoder, logger: TrainLogger | None, step: int) -> dict[str, float]:
        return evaluate(decoder, self.val, self.device, logger, step)

    def figure(self, decoder) -> torch.Tensor:
        """The held-out grid :func:`evaluate` logs: true | decoded | imagined | its truth."""
        return held_out_scores(decoder, self.val, self.device)[1]


def build_task(cfg: DecodeConfig, device: torch.device):
    """What ``cfg`` decodes: world-model latents, or (``decoder.kind=tokens``) a V-JEPA
    predictor's masked-region features (:class:`~jepa_world.training.masked_decoder.MaskedTask`)."""
    if cfg.decoder.kind == "tokens":
        from jepa_world.training.masked_decoder import MaskedTask

        return MaskedTask(cfg, device)
    return LatentTask(cfg, device)


def train_decoder(cfg: DecodeConfig,
                  callback: Callable[[int, float], None] | None = None) -> DecodeResult:
    """Train (or resume) a decoder as described by ``cfg``; see the module docstring.

    Raises:
        TrainingDivergedError: NaN/inf loss or gradient norm.
        ConfigError, DatasetError, CheckpointError: bad settings, data or model files.
    """
    started = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    run_dir = Path(cfg.run_dir or default_run_dir("decode"))
    seed_all(cfg.seed)
    task = build_task(cfg, device)
    decoder = build_decoder(task.decoder_config()).to(device)
    if hasattr(decoder, "set_background"):
        decoder.set_background(task.background().to(device))
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    folder = resume_folder(cfg.resume, run_dir)
    start = _resume(folder, cfg, decoder, optimizer) if folder is not None else 0
    logger = TrainLogger(run_dir, cfg.steps, start, tensorboard=cfg.tensorboard,
                         progress=cfg.progress, desc="decode")
    stepper = Stepper(optimizer, params, cfg.grad_clip, ADVICE, folder)
    write_run_config(run_dir, "decode_config.json", cfg.to_dict())
    n_params = sum(p.numel() for p in params) / 1e6
    logger.write(f"decode: {cfg.decoder.kind} decoder, {n_params:.2f}M params, "
                 f"{task.describe()}; run_dir {run_dir}"
                 + (f", resuming at {start}" if folder else ""))
    result = DecodeResult(run_dir=run_dir, steps=start)
    try:
        for step in range(start, cfg.steps):
            lr = warmup_cosine_lr(step, start_lr=cfg.lr * 0.1, ref_lr=cfg.lr,
                                  final_lr=cfg.lr * 0.01,
                                  warmup_steps=min(cfg.warmup_steps, cfg.steps),
                                  total_steps=cfg.steps)
            set_lr_(optimizer, lr)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            decoder.train()
            loss = task.loss(decoder, gen)
            value = float(loss.detach())
            grad_norm = stepper.step(loss, value, step, lr)
            done = step + 1
            result.losses.append(value)
            result.steps = done
            if due(done, cfg.log_interval, cfg.steps):
                logger.scalars(done, {"loss/total": value, "optim/lr": lr,
                                      "optim/grad_norm": grad_norm})
            if due(done, cfg.eval_interval, cfg.steps):
                result.val = task.evaluate(decoder, logger, done)
            logger.progress(value, lr, cfg.batch_size)
            if due(done, cfg.checkpoint_interval, cfg.steps):
                stepper.last_good = _checkpoint(run_dir, done, cfg, decoder, optimizer)
            if callback is not None:
                callback(done, value)
    finally:
        logger.close()
    dtype = torch.float16 if cfg.save_dtype == "float16" else None
    save_decoder(decoder, run_dir / FINAL_DIR, dtype=dtype,
                 extra={**task.provenance, "steps": result.steps})
    result.decoder = decoder.eval()
    write_figure(run_dir / FIGURE, task.figure(decoder))
    result.seconds = time.perf_counter() - started
    note = ", ".join(f"{k.split('/')[-1]} {v:.2f}" for k, v in result.val.items())
    print(f"decode done: {result.steps} steps in {result.seconds:.0f} s; held-out {note}; "
          f"decoder: {run_dir / FINAL_DIR}; figure: {run_dir / FIGURE}")
    return result


def evaluate(decoder, val: Split, device: torch.device, logger: TrainLogger | None = None,
             step: int = 0, every: int = 10) -> dict[str, float]:
    """:func:`held_out_scores`, logged (scalars and the image grid) when a logger is given."""
    metrics, grid = held_out_scores(decoder, val, device, every)
    if logger is not None:
        logger.scalars(step, metrics)
        if logger.writer is not None:
            logger.writer.add_image("decoded/true|decoded|imagined|its_truth", grid, step)
    return metrics


@torch.no_grad()
def held_out_scores(decoder, val: Split, device: torch.device,
                    every: int = 10) -> tuple[dict[str, float], torch.Tensor]:
    """Held-out PSNR of decoded encoder latents and of imagined latents at horizons 1 and the
    largest, and an image grid ``[3, 4 H, 8 W]``: true | decoded | imagined at the largest
    horizon | the frames that really followed."""
    decoder.eval()
    latents = val.latents[:, ::every].float().to(device)
    truth = val.frames[:, ::every].float().to(device) / 255
    decoded = decoder.decode(latents, generator=torch.Generator().manual_seed(0))
    metrics = {"val/psnr_encoded": float(psnr(decoded, truth).mean())}
    far = int(val.imagined.horizon.max())
    for h in sorted({1, far}):
        im = val.imagined.at(h)
        keep = torch.arange(0, len(im.latents), max(1, len(im.latents) // 256))
        pred = decoder.decode(im.latents[keep].to(device)[:, None],
                              generator=torch.Generator().manual_seed(0))[:, 0]
        real = val.frames[im.episode[keep], im.frame[keep]].float().to(device) / 255
        metrics[f"val/psnr_imagined_h{h}"] = float(psnr(pred, real).mean())
    grid = image_grid(torch.cat([truth[:8, 0], decoded[:8, 0], pred[:8], real[:8]]), 8)
    return metrics, grid


def image_grid(images: torch.Tensor, columns: int) -> torch.Tensor:
    """``[M, 3, H, W]`` -> one ``[3, rows * H, columns * W]`` image (missing cells black)."""
    m = images.shape[0]
    rows = -(-m // columns)
    pad = images.new_zeros(rows * columns - m, *images.shape[1:])
    full = torch.cat([images, pad]).clamp(0, 1)
    return rearrange(full, "(r c) ch h w -> ch (r h) (c w)", c=columns)


def _checkpoint(run_dir: Path, step: int, cfg: DecodeConfig, decoder, optimizer) -> Path:
    state = {"optimizer": optimizer.state_dict(), "config": cfg.to_dict(),
             "rng": [rng_state()], "world_size": 1}
    return write_step(run_dir, step, lambda folder: save_decoder(decoder, folder), state,
                      cfg.keep_checkpoints)


def _resume(folder: Path, cfg: DecodeConfig, decoder, optimizer) -> int:
    state = read_state(folder)
    check_resumable(state.get("config", {}), cfg.to_dict(),
                    ("decoder", "world_model", "pretrained", "batch_size", "seed",
                     "imagined_fraction"),
                    folder)
    saved = load_decoder(folder, map_location=next(decoder.parameters()).device)
    decoder.load_state_dict(saved.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"][0])
    return int(state["step"])


__all__ = ["DecodeResult", "LatentTask", "Split", "build_task", "evaluate", "held_out_scores",
           "image_grid", "load_world_model", "prepare", "sample_batch", "train_decoder"]
