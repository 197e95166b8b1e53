"""Does pretraining learn? Ridge probes of the arm's joint angles on frozen encoder features.

    python -m bench.pretrain_probe --checkpoint runs/pretrain/checkpoints/latest [--random 3]

Encodes single frames of held-out reach episodes (never seen in pretraining: their own seed
range) with the checkpoint's target encoder (``--encoder context``: the context encoder), with
the run's own initialisation (rebuilt from the seed in its ``pretrain_config.json``) and with
randomly initialised encoders of the same architecture (other seeds), then fits ridge
regressions from features to ``[sin q1, cos q1, sin q2, cos q2]`` (the joint angles, wrap-free).
Reports R^2 on held-out episodes for two feature sets: mean-pooled tokens ``[D]`` and all tokens
flattened ``[N * D]`` (a linear read-out that may use positions), and for the raw pixels.
The ridge strength is chosen on a validation split of the training episodes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import h5py
import numpy as np
import torch
from einops import repeat

from jepa_world.checkpoints import CheckpointError, follow_latest, load_pretrained
from jepa_world.config import CollectConfig, EnvConfig
from jepa_world.data.collection import collect
from jepa_world.data.store import scan_shards
from jepa_world.models.inputs import IMAGENET_MEAN as MEAN
from jepa_world.models.inputs import IMAGENET_STD as STD
from jepa_world.models.presets import EncoderConfig, build_encoder, config_from_dict

LAMBDAS = [10.0**k for k in range(-3, 5)]


def probe_frames(root: Path, image_size: int, episodes: int, seed: int) -> Path:
    cfg = CollectConfig(env=EnvConfig(image_size=image_size), episodes=episodes,
                        episode_length=50, seed=seed, progress=False, data_dir=str(root))
    collect(cfg)
    return root


def load_frames(root: Path, every: int = 2):
    """All frames (every ``every``-th step) with labels and episode ids."""
    frames, labels, episode = [], [], []
    for ref in scan_shards(root):
        with h5py.File(ref.shard, "r") as f:
            g = f["episodes"][f"{ref.index:06d}"]
            frames.append(g["pixels"][::every])
            q = g["proprio"][::every, :2]
        labels.append(np.concatenate([np.sin(q), np.cos(q)], axis=1))
        episode.append(np.full(len(q), ref.index))
    return (torch.from_numpy(np.concatenate(frames)), torch.from_numpy(np.concatenate(labels)),
            np.concatenate(episode))


@torch.no_grad()
def features(encoder: torch.nn.Module, frames: torch.Tensor, clip_frames: int = 0,
             batch: int = 64):
    """``frames`` uint8 [M, H, W, 3] -> (mean-pooled [M, D], flattened [M, N*D]).

    ``clip_frames=0`` encodes each frame as an image (one tubelet); ``clip_frames=T`` as a static
    clip of T copies, the input length pretraining saw.
    """
    encoder.eval()
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    pooled, flat = [], []
    for i in range(0, len(frames), batch):
        x = frames[i:i + batch].permute(0, 3, 1, 2).float().div(255.0)
        x = (x - mean) / std  # [b, 3, H, W]: an image is a clip of one repeated frame
        if clip_frames:
            x = repeat(x, "b c h w -> b c t h w", t=clip_frames)
        tokens = encoder(x)
        pooled.append(tokens.mean(1))
        flat.append(tokens.flatten(1))
    return torch.cat(pooled), torch.cat(flat)


def ridge_r2(x: torch.Tensor, y: torch.Tensor, train, val, test) -> float:
    """Fit ridge on ``train`` (strength picked on ``val``), refit on both, R^2 on ``test``."""
    x = x.double()
    y = y.double()

    def fit(idx, lam):
        xs, ys = x[idx], y[idx]
        mu, sd = xs.mean(0), xs.std(0) + 1e-6
        ym = ys.mean(0)
        z = (xs - mu) / sd
        # Dual form: (Z Z^T + lam n I)^-1, cheap when features outnumber samples.
        kernel = z @ z.T
        alpha = torch.linalg.solve(kernel + lam * len(idx) * torch.eye(len(idx), dtype=x.dtype),
                                   ys - ym)
        w = z.T @ alpha
        return lambda q: ((q - mu) / sd) @ w + ym

    def r2(pred, target):
        ss_res = ((pred - target) ** 2).sum(0)
        ss_tot = ((target - target.mean(0)) ** 2).sum(0)
        return float((1 - ss_res / ss_tot).mean())

    best = max(LAMBDAS, key=lambda lam: r2(fit(train, lam)(x[val]), y[val]))
    both = np.concatenate([train, val])
    return r2(fit(both, best)(x[test]), y[test])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="folder written by pretraining")
    parser.add_argument("--data", default="data/reach_probe", help="probe dataset folder")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--random", type=int, default=3, help="random-init encoders to average")
    parser.add_argument("--encoder", choices=("target", "context"), default="target",
                        help="probe the EMA target encoder (default) or the context encoder")
    parser.add_argument("--clip-frames", type=int, default=0,
                        help="encode each frame as a static clip of this many copies (0: image)")
    args = parser.parse_args()

    try:
        pre = load_pretrained(args.checkpoint)
    except CheckpointError as err:
        raise SystemExit(f"error: {err}") from None
    encoder = pre.encoder if args.encoder == "context" else (pre.target_encoder or pre.encoder)
    size = pre.config["encoder"]["img_size"]
    root = probe_frames(Path(f"{args.data}_{size}px"), size, args.episodes, seed=1_000_000)
    frames, labels, episode = load_frames(root)
    ids = np.unique(episode)
    n_test, n_val = len(ids) // 5, len(ids) // 5
    test = np.flatnonzero(np.isin(episode, ids[:n_test]))
    val = np.flatnonzero(np.isin(episode, ids[n_test:n_test + n_val]))
    train = np.flatnonzero(np.isin(episode, ids[n_test + n_val:]))

    def scores(enc):
        pooled, flat = features(enc, frames, args.clip_frames)
        return ridge_r2(pooled, labels, train, val, test), ridge_r2(flat, labels, train, val, test)

    pretrained = scores(encoder)
    own_init = None
    run_config = follow_latest(Path(args.checkpoint)).parent.parent / "pretrain_config.json"
    if run_config.is_file():  # the run's own starting point: pretraining seeds, then builds
        torch.manual_seed(json.loads(run_config.read_text())["seed"])
        own_init = scores(random_encoder_like(pre))
    pixels = ridge_r2(frames.flatten(1).float() / 255.0, labels, train, val, test)
    randoms = []
    for seed in range(args.random):
        torch.manual_seed(10_000 + seed)  # not the pretraining run's own initial weights
        randoms.append(scores(random_encoder_like(pre)))

    def summary(k: int) -> str:
        values = [r[k] for r in randoms]
        return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"

    print(f"probe: {len(train)} train / {len(val)} val / {len(test)} test frames "
          f"({len(ids)} held-out episodes, seeds 1,000,000+), target sin/cos of both joints")
    print("| encoder | R^2 mean-pooled tokens | R^2 all tokens |")
    print("|---|---|---|")
    print(f"| pretrained {args.encoder} encoder | {pretrained[0]:.3f} | {pretrained[1]:.3f} |")
    if own_init is not None:
        print(f"| the run's own initialisation | {own_init[0]:.3f} | {own_init[1]:.3f} |")
    if randoms:
        print(f"| random init (mean ± sd of {args.random}) | {summary(0)} | {summary(1)} |")
    print(f"| raw pixels | - | {pixels:.3f} |")


def random_encoder_like(pre) -> torch.nn.Module:
    """A freshly initialised encoder with the checkpoint's architecture."""
    return build_encoder(config_from_dict(EncoderConfig, pre.config["encoder"]))


if __name__ == "__main__":
    main()
