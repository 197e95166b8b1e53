"""How well a goal state (push: the block's x, y and angle) can be read from each stage of a
world model, against a small CNN trained on the pixels themselves.

    python -m bench.goal_readout --model jepa_world/pretrained/push runs/wm_push_conv/world_model
        [--data data/push_64px] [--readers latent patches pixels] [--steps 3000]

Every reader is trained on the frames of the dataset's training episodes (the first 90%, as
``train_wm`` splits them) to the goal state of each frame (its sim state; angles as sine and
cosine) and scored on the held-out 10%:

* ``latent``: an MLP on the model's compact latent (what the planner compares with the goal);
* ``patches``: the grid readout of ``train_wm``'s pooler (each patch token squeezed to 32
  channels, an MLP over the grid) on the encoder's patch tokens;
* ``pixels``: a four-layer CNN on the frames (once, not per model): how well the frames show the
  state at all.

Printed per reader: the fraction of held-out frames whose angle is read within the task's
tolerance (push: pi/9), and the median position error. Readers are trained with fixed seeds;
``pixels`` takes ~10 minutes on one CPU thread, the others seconds to a minute.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from bench.common import table
from bench.wm_rollout_error import angle_within
from jepa_world.config import EnvConfig
from jepa_world.data.windows import split_episodes
from jepa_world.errors import main_reporting_user_errors
from jepa_world.probes.runner import probe_state
from jepa_world.training.wm_data import encode_episodes, load_goal_states
from jepa_world.world_model import WorldModel

READERS = ("latent", "patches", "pixels")


class GridReader(nn.Module):
    """``[F, N, D]`` patch tokens -> ``[F, G]``: each token squeezed, then an MLP over the grid."""

    def __init__(self, tokens: int, dim: int, out: int, channels: int = 32) -> None:
        super().__init__()
        self.squeeze = nn.Linear(dim, channels)
        self.mlp = nn.Sequential(nn.Linear(tokens * channels, 512), nn.GELU(),
                                 nn.Linear(512, out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(F.gelu(self.squeeze(z)).flatten(1))


class PixelReader(nn.Module):
    """uint8 frames ``[F, 3, 64, 64]`` -> ``[F, G]`` by four stride-2 convolutions."""

    def __init__(self, out: int, size: int) -> None:
        super().__init__()
        layers, width = [], 3
        for c in (32, 64, 64, 64):
            layers += [nn.Conv2d(width, c, 3, stride=2, padding=1), nn.GELU()]
            width = c
        cells = (size // 16) ** 2
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * cells, 256), nn.GELU(),
                                 nn.Linear(256, out))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.float() / 255)


def fit_and_score(reader: nn.Module, x, y, x_val, y_val, steps: int, plain: int,
                  tolerance: float | None) -> dict[str, str]:
    """Train ``reader`` on ``(x, y)`` (MSE, AdamW, one-cycle LR) and score it on the held-out
    frames: angle within ``tolerance`` (the goal's layout: plain coordinates, sine, cosine) and
    the median error of the first two plain coordinates."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(reader.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps)
    started = time.perf_counter()
    for _ in range(steps):
        i = torch.randint(len(x), (128,), generator=gen)
        loss = F.mse_loss(reader(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        out = torch.cat([reader(part) for part in x_val.split(512)])
    row = {"position error (median)": f"{(out[:, :2] - y_val[:, :2]).norm(dim=1).median():.4f}",
           "train s": f"{time.perf_counter() - started:.0f}"}
    if tolerance is not None:
        row["angle within tolerance"] = f"{angle_within(out, y_val, plain, tolerance):.3f}"
    return row


def frames_and_goals(root: str, env_id: str, ids: list[int]):
    """Every frame ``[F, 3, H, W]`` uint8 of episodes ``ids`` and its goal targets ``[F, G]``."""
    env = EnvConfig(name=env_id, probe_state="goal")
    _, angles, state_fn = probe_state(env)
    frames = encode_episodes(root, ids, lambda f: f).tokens.flatten(0, 1)
    return frames, load_goal_states(root, ids, state_fn, angles).flatten(0, 1).float(), angles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", nargs="+", required=True)
    ap.add_argument("--data", default="data/push_64px")
    ap.add_argument("--readers", nargs="+", choices=READERS, default=list(READERS))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [WorldModel.from_pretrained(m).float().eval() for m in args.model]
    env_id = models[0].config.env_id
    train_ids, val_ids = split_episodes(args.data, 0.1)
    x, y, angles = frames_and_goals(args.data, env_id, train_ids)
    x_val, y_val, _ = frames_and_goals(args.data, env_id, val_ids)
    task = EnvConfig(name=env_id).make(disable_env_checker=True)
    tolerances = task.unwrapped.success_tolerances()
    task.close()
    plain = len(angles) - sum(angles)
    tolerance = float(tolerances[angles.index(True)]) if any(angles) else None
    rows = []

    def report(name: str, reader: nn.Module, a, b) -> None:
        torch.manual_seed(0)
        rows.append({"model": name[0], "reader": name[1],
                     **fit_and_score(reader, a, y, b, y_val, args.steps, plain, tolerance)})
        print(table(rows[-1:], list(rows[-1])), flush=True)

    for path, model in zip(args.model, models, strict=True):
        with torch.no_grad():
            patches, patches_val = (torch.cat([model.encode_patches(c[:, None])[:, 0]
                                               for c in f.split(256)]) for f in (x, x_val))
            latents, latents_val = (model.pool(p[:, None])[:, 0].flatten(1)
                                    for p in (patches, patches_val))
        if "latent" in args.readers:
            report((path, "latent (MLP)"), nn.Sequential(
                nn.Linear(latents.shape[1], 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                nn.Linear(512, y.shape[1])), latents, latents_val)
        if "patches" in args.readers:
            report((path, "patch tokens (grid)"), GridReader(*patches.shape[1:], y.shape[1]),
                   patches, patches_val)
    if "pixels" in args.readers:
        report(("-", "pixels (CNN)"), PixelReader(y.shape[1], x.shape[-1]), x, x_val)
    print(f"\n{len(x)} training / {len(x_val)} held-out frames of {args.data}; "
          f"{args.steps} steps of 128 frames a reader, {torch.get_num_threads()} threads")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main_reporting_user_errors(main)
