"""Why the motion probe fails (issue 20): is the label in the pixels, and is it in the features?

    python -m bench.motion_diagnostics                    # reach probe data, ~6 min on a CPU
    python -m bench.motion_diagnostics --encoders pkg:pretrained/reach random:tiny --seeds 0

On the ``motion`` probe task (``jepa_world.probes``: 4-frame clips, the shoulder's direction x
speed, 4 classes) it prints:

* the **pixel ceiling**: a small CNN trained WITH labels on the clip's frames and their
  differences (test accuracy per seed): whether the label shows in the frames at all;
* per frozen encoder, **linear readouts** of the class (a softmax layer on standardised
  features, full batch AdamW) from the mean token (the linear probe's input), from every token
  of the clip side by side, and from the per-patch difference between its two tubelets;
* the same readout from the two tubelets' mean tokens side by side, and from their difference
  (pooling over place but keeping time);
* the **feature change** between the clip's two tubelets (mean over patches of
  ``|f1 - f0| / |f0|``) for fast and for slow clips: do features follow the motion or the time?
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from jepa_world.data.windows import split_episodes
from jepa_world.errors import ConfigError
from jepa_world.probes import ProbeConfig, TaskData, build_task, load_encoder
from jepa_world.probes.encoders import check_spec, extract_features
from jepa_world.probes.runner import prepare_dataset


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoders", nargs="+", default=["pkg:pretrained/reach", "random:tiny"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the supervised pixel CNN")
    p.add_argument("--epochs", type=int, default=30, help="pixel CNN epochs")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def clip_channels(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 clips ``[M, L, 3, H, W]`` -> ``[M, (2L - 1) 3, H, W]``: frames, then differences."""
    frames = pixels.float() / 255
    steps = (frames[:, 1:] - frames[:, :-1]) * 4  # small moves: scaled up to the frames' range
    return torch.cat([frames.flatten(1, 2), steps.flatten(1, 2)], dim=1)


def pixel_cnn(channels: int, size: int, classes: int) -> nn.Module:
    """Three stride-2 convolutions and an MLP (``size`` must be divisible by 8)."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 5, 2, 2), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
        nn.Conv2d(64, 64, 3, 2, 1), nn.GELU(), nn.Flatten(),
        nn.Linear(64 * (size // 8) ** 2, 128), nn.GELU(), nn.Linear(128, classes))


def pixel_ceiling(task: TaskData, seed: int, epochs: int) -> float:
    """Test accuracy of the supervised CNN after ``epochs`` (batch 64, AdamW 1e-3)."""
    torch.manual_seed(seed)
    train, test = clip_channels(task.train_pixels), clip_channels(task.test_pixels)
    net = pixel_cnn(train.shape[1], train.shape[-1], task.num_outputs)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(train)).split(64):
            loss = F.cross_entropy(net(train[batch]), task.train_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        return float((net(test).argmax(-1) == task.test_targets).float().mean())


def linear_readout(train: torch.Tensor, test: torch.Tensor, task: TaskData,
                   steps: int = 300) -> float:
    """Test accuracy of a softmax layer on standardised features ``[M, F]`` (full batch)."""
    mean, std = train.mean(0), train.std(0) + 1e-4
    train, test = (train - mean) / std, (test - mean) / std
    torch.manual_seed(0)
    layer = nn.Linear(train.shape[1], task.num_outputs)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3, weight_decay=0.1)
    for _ in range(steps):
        loss = F.cross_entropy(layer(train), task.train_targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float((layer(test).argmax(-1) == task.test_targets).float().mean())


def encoder_rows(spec: str, task: TaskData) -> dict[str, float]:
    """Readouts and feature change of one frozen encoder (clips of two tubelets)."""
    encoder = load_encoder(spec)
    train = extract_features(encoder, task.train_pixels).float()  # [M, 2 N, D]
    test = extract_features(encoder, task.test_pixels).float()
    patches = train.shape[1] // 2
    if train.shape[1] != 2 * patches:
        raise SystemExit(f"{spec}: expected two tubelets a clip, got {train.shape[1]} tokens")

    def difference(f: torch.Tensor) -> torch.Tensor:
        return (f[:, patches:] - f[:, :patches]).flatten(1)

    def tubelet_means(f: torch.Tensor) -> torch.Tensor:
        return torch.stack([f[:, :patches].mean(1), f[:, patches:].mean(1)], dim=1)  # [M, 2, D]

    means, test_means = tubelet_means(train), tubelet_means(test)
    first, second = train[:, :patches], train[:, patches:]
    change = (second - first).norm(dim=-1).mean(-1) / first.norm(dim=-1).mean(-1)
    fast = task.train_targets % 2 == 1  # label = 2 * direction + fast
    return {"mean token": linear_readout(train.mean(1), test.mean(1), task),
            "all tokens": linear_readout(train.flatten(1), test.flatten(1), task),
            "tubelet difference": linear_readout(difference(train), difference(test), task),
            "tubelet means": linear_readout(means.flatten(1), test_means.flatten(1), task),
            "tubelet-mean difference": linear_readout(means[:, 1] - means[:, 0],
                                                      test_means[:, 1] - test_means[:, 0], task),
            "change fast": float(change[fast].mean()), "change slow": float(change[~fast].mean())}


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # before the minute of data and CNN training
        for i, spec in enumerate(args.encoders):
            check_spec(spec, f"--encoders[{i}]")
    except ConfigError as err:
        raise SystemExit(f"error: {err}") from None
    started = time.perf_counter()
    cfg = ProbeConfig(progress=False)
    root = prepare_dataset(cfg)
    train_ids, test_ids = split_episodes(root, cfg.data.test_fraction)
    data = cfg.data
    task = build_task("motion", root, train_ids, test_ids, frame_stride=data.frame_stride,
                      clip_frames=data.clip_frames, clip_step=data.clip_step,
                      clip_stride=data.clip_stride, state_dims=cfg.env.state_dims,
                      angles=cfg.env.state_angles)
    print(f"motion task on {root}: {len(task.train_targets)} train / {len(task.test_targets)} "
          f"test clips, chance {task.chance:.3f}")
    ceilings = [pixel_ceiling(task, seed, args.epochs) for seed in args.seeds]
    print(f"supervised pixel CNN, {args.epochs} epochs: "
          + ", ".join(f"seed {s} {a:.3f}" for s, a in zip(args.seeds, ceilings, strict=True))
          + f" (median {statistics.median(ceilings):.3f})")
    print("\n| encoder | mean token | all tokens | tubelet difference | tubelet means | "
          "tubelet-mean difference | change fast | change slow |\n"
          + "|---" * 8 + "|")
    for spec in args.encoders:
        row = encoder_rows(spec, task)
        print(f"| {spec} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |", flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
