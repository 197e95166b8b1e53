"""How close decoded latents are to the true frames, against the plan GIFs' nearest-frame bank.

    python -m bench.decoder_quality [--model reach] [--decoder DIR ...] [--data data/reach_64px]
        [--stride 5] [--threads 1] [--png PATH]

Any shipped task model: ``--model maze --data data/maze_64px`` (likewise tworoom, push).

On the held-out episodes (the last 10%, as ``train_wm`` and ``decode`` hold out):

* ``encoded``: every ``--stride``-th frame encoded by the world model, decoded, against itself;
* ``h1 / h5 / h8``: the world model imagines from 3 real history frames (frameskip 5) under the
  REAL actions; the imagined latent at that horizon is decoded and compared with the frame that
  really followed;

for each decoder (``--decoder``; default the model's attached ``decoder/``) and for the
nearest-frame bank (8 exploration episodes x 50 steps, as ``python -m jepa_world.plan`` builds
it). Per cell: PSNR (dB), SSIM, and the state error: the mean |error| of the world model's
proprio head on the RE-ENCODED decoded frame vs the true state, over the proprio's first two
entries (reach: the joint angles in rad, wrapped; maze, tworoom, push: the agent's position in
m); the ``true frame`` row is the head on the true frames, the floor. Last: decode time per
frame (batch 1 and 64).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import table
from jepa_world.checkpoints.decoder import load_decoder
from jepa_world.data.windows import split_episodes
from jepa_world.errors import main_reporting_user_errors
from jepa_world.image_metrics import psnr, ssim
from jepa_world.training.decoder_data import encode_latents, imagine, load_frames
from jepa_world.world_model import WorldModel

HORIZONS = (1, 5, 8)


def angle_error(model: WorldModel, frames: torch.Tensor, angles: torch.Tensor) -> float:
    """Mean |error| of the proprio head on frames ``[M, 3, H, W]`` (wrapped to [-pi, pi]: exact
    for angles, and for positions, whose errors are far below pi)."""
    read = torch.cat([model.read_proprio(model.encode(part[None])[0])
                      for part in frames.split(256)])[:, :angles.shape[-1]]
    diff = read - angles
    return float(torch.atan2(diff.sin(), diff.cos()).abs().mean())


def score(model, pred: torch.Tensor, truth: torch.Tensor, angles: torch.Tensor) -> str:
    """``PSNR / SSIM / angle error`` of predicted vs true frames ``[M, 3, H, W]`` in [0, 1]."""
    with torch.no_grad():
        err = angle_error(model, pred, angles)
    return f"{float(psnr(pred, truth).mean()):.2f} / {float(ssim(pred, truth).mean()):.3f} / " \
           f"{err:.3f}"


def cases(model: WorldModel, data: str, stride: int) -> dict[str, tuple]:
    """``{case: (latents [M, N, D], true frames [M, 3, H, W] in [0, 1], angles [M, 2])}``."""
    _, val_ids = split_episodes(data, 0.1)
    enc = encode_latents(model, data, val_ids, f"{data}/features")
    frames = load_frames(data, val_ids).float() / 255
    angles = enc.proprio[..., :2]
    out = {"encoded": (enc.tokens[:, ::stride].flatten(0, 1).float(),
                       frames[:, ::stride].flatten(0, 1), angles[:, ::stride].flatten(0, 1))}
    imagined = imagine(model, enc, max(HORIZONS), stride=stride)
    for h in HORIZONS:
        im = imagined.at(h)
        out[f"h{h}"] = (im.latents, frames[im.episode, im.frame], angles[im.episode, im.frame])
    return out


def bank_renderer(model: WorldModel):
    import gymnasium as gym

    from jepa_world.planning.visualize import build_frame_bank

    env = gym.make(model.config.env_id, image_size=model.config.image_size)
    try:
        bank = build_frame_bank(env, model.encode_images)
    finally:
        env.close()

    def render(latents: torch.Tensor) -> torch.Tensor:
        near = torch.from_numpy(bank.nearest(latents))  # [M, H, W, 3] uint8
        return near.permute(0, 3, 1, 2).float() / 255

    return render


def decoder_renderer(decoder):
    def render(latents: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.cat([decoder.decode(part[:, None], generator=gen)[:, 0]
                          for part in latents.split(256)])

    return render


def decode_ms(render, latents: torch.Tensor, batch: int) -> float:
    render(latents[:batch])
    start = time.perf_counter()
    repeats = 3
    for _ in range(repeats):
        render(latents[:batch])
    return (time.perf_counter() - start) / repeats / batch * 1000


def write_png(path: str, case: tuple, renderers: dict) -> None:
    """Rows: the true frames that followed, then each renderer's frame for the imagined latents
    (8 held-out rollouts, horizon 5), upscaled 2x."""
    from jepa_world.training.decoder_train import image_grid
    from jepa_world.training.figures import write_figure

    latents, truth, _ = case
    pick = torch.linspace(0, len(latents) - 1, 8).long()
    with torch.no_grad():
        rows = [truth[pick]] + [render(latents[pick]) for render in renderers.values()]
    write_figure(path, image_grid(torch.cat(rows), 8))
    print(f"wrote {path}: rows true | " + " | ".join(renderers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="reach")
    ap.add_argument("--decoder", nargs="*", default=None,
                    help="decoder folders (default: the model's decoder/)")
    ap.add_argument("--data", default="data/reach_64px")
    ap.add_argument("--stride", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--png", default="", help="also write true | each decoder at h5, 8 frames")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = WorldModel.from_pretrained(args.model)
    renderers = {}
    for folder in args.decoder if args.decoder is not None else []:
        decoder = load_decoder(folder)
        renderers[f"{decoder.config.kind} ({folder})"] = decoder_renderer(decoder)
    if args.decoder is None and model.decoder is not None:
        renderers[f"{model.decoder.config.kind} (shipped)"] = decoder_renderer(model.decoder)
    renderers["nearest-frame bank"] = bank_renderer(model)
    data = cases(model, args.data, args.stride)
    with torch.no_grad():
        rows = [{"decoder": "true frame", **{c: score(model, t, t, a) for c, (_, t, a)
                                            in data.items()}}]
        for name, render in renderers.items():
            row = {"decoder": name}
            for case, (latents, truth, angles) in data.items():
                row[case] = score(model, render(latents), truth, angles)
            latents = data["encoded"][0]
            row["ms / frame (batch 1 / 64)"] = \
                f"{decode_ms(render, latents, 1):.2f} / {decode_ms(render, latents, 64):.2f}"
            rows.append(row)
    rows[0]["ms / frame (batch 1 / 64)"] = "-"
    if args.png:
        write_png(args.png, data["h5"], renderers)
    print(f"held-out: {len(data['encoded'][0])} encoded frames, {len(data['h1'][0])} "
          f"rollouts per horizon; cells: PSNR dB / SSIM / state error (rad or m); "
          f"{torch.get_num_threads()} torch thread(s)")
    print(table(rows, ["decoder", "encoded", *[f"h{h}" for h in HORIZONS],
                       "ms / frame (batch 1 / 64)"]))


if __name__ == "__main__":
    main_reporting_user_errors(main)
