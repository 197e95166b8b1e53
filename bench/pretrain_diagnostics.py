"""Why does (or doesn't) a pretraining run learn? Where its loss comes from, per kind of token.

    python -m bench.pretrain_diagnostics runs/pretrain_tiny [runs/other ...] [--clips 48]

For each run (its ``checkpoints/latest``, or a ``step_N`` folder given directly) this draws
clips from the run's own dataset and masks from the run's own mask settings, and splits the
masked tokens into **moving** tokens (a tubelet whose pixels differ from the background colour:
on the reach data, the arm) and **static** ones (plain background). It prints:

* the moving-token share of a clip, and how many moving tokens the context encoder sees per clip;
* the predictor's L1 loss on moving and on static target tokens (as the training loss: against
  layer-normed target features), per mask type;
* the spread (per-dimension std across samples) of the target features at moving positions,
  which falls when the target encoder stops telling arm poses apart;
* how far the context and target encoders moved from their initialisation (relative Frobenius
  norm over the weight matrices; the initialisation is rebuilt from the run's seed).

A loss that falls only on static tokens, few moving tokens in the context and weights that barely
move say that the run has learned to predict the background, not the arm.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from jepa_world.checkpoints import follow_latest, load_pretrained
from jepa_world.data.env_clips import EnvClips
from jepa_world.losses import gather_tokens
from jepa_world.masks import sample_multiblock_masks
from jepa_world.models.inputs import IMAGENET_MEAN, IMAGENET_STD
from jepa_world.models.presets import EncoderConfig, build_encoder, config_from_dict
from jepa_world.training.pretrain_config import MaskConfig

#: A tubelet counts as moving when at least this many of its pixels differ from the background.
MIN_PIXELS = 3
#: Summed |RGB| difference (in [0, 1] units) from the background colour that counts as different.
PIXEL_THRESHOLD = 0.1


def checkpoint_and_config(path: Path) -> tuple[Path, dict]:
    """``(checkpoint folder, the run's pretrain_config.json)`` for a run or a checkpoint folder."""
    if not path.exists():
        raise SystemExit(f"error: {path}: no such folder; give a pretraining run folder")
    folder = follow_latest(path)
    config_file = folder.parent.parent / "pretrain_config.json"
    if not config_file.is_file():
        raise SystemExit(f"error: {path}: no {config_file} next to its checkpoints; give a "
                         f"pretraining run folder (runs/x) or one of its step_N folders")
    return folder, json.loads(config_file.read_text())


def moving_tokens(clip: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """``clip`` ``[B, 3, T, H, W]`` in ``[0, 1]`` -> bool ``[B, N]``: tokens that show more than
    background (the background colour is read from each clip's top-left corner)."""
    background = clip[:, :, :, :4, :4].mean(dim=(2, 3, 4), keepdim=True)
    different = (clip - background).abs().sum(dim=1) > PIXEL_THRESHOLD  # [B, T, H, W]
    counts = rearrange(different.float(), "b (t a) (h p) (w q) -> b (t h w) (a p q)",
                       a=tubelet, p=patch, q=patch).sum(-1)
    return counts >= MIN_PIXELS


def relative_change(module: torch.nn.Module, init: dict[str, torch.Tensor]) -> float:
    """``||W - W0|| / ||W0||`` over all weight matrices (dims >= 2) of ``module``."""
    num = den = 0.0
    for name, value in module.state_dict().items():
        if value.dim() >= 2:
            num += float((value - init[name]).pow(2).sum())
            den += float(init[name].pow(2).sum())
    return (num / den) ** 0.5


@torch.no_grad()
def diagnose(path: Path, clips: int, seed: int) -> None:
    folder, cfg = checkpoint_and_config(path)
    pre = load_pretrained(folder)
    if pre.target_encoder is None:
        raise SystemExit(f"error: {folder} is a pixel-objective run; this needs a target encoder")
    enc_cfg = pre.config["encoder"]
    tubelet, patch, size = enc_cfg["tubelet_size"], enc_cfg["patch_size"], enc_cfg["img_size"]
    frames = enc_cfg["num_frames"]
    data_dir = cfg["data"]["data_dir"] or f"data/{cfg['env']['name']}_{size}px"
    dataset = EnvClips(data_dir, num_frames=frames, size=size)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(dataset), generator=generator)[:clips].tolist()
    clip = torch.stack([dataset[i] for i in picks])  # [B, 3, T, H, W]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    video = (clip - mean) / std
    moving = moving_tokens(clip, tubelet, patch)  # [B, N]
    grid = (frames // tubelet, size // patch, size // patch)
    masks_cfg = MaskConfig(**cfg["masks"])
    masks = sample_multiblock_masks(grid, masks_cfg.specs(), len(clip), generator=seed,
                                    min_keep=masks_cfg.min_keep, truncate=masks_cfg.truncate)
    pre.encoder.eval()
    pre.target_encoder.eval()
    pre.predictor.eval()
    targets = pre.target_encoder(video)  # [B, N, D]
    normed = F.layer_norm(targets, (targets.shape[-1],))
    torch.manual_seed(cfg["seed"])  # pretraining builds its encoder right after seeding
    init = build_encoder(config_from_dict(EncoderConfig, enc_cfg)).state_dict()

    print(f"\n{folder} (step {pre.config['step']}, masks {cfg['masks']})")
    print(f"moving tokens: {moving.float().mean():.3f} of a clip ({clips} clips of {data_dir})")
    print("| mask type | context tokens | moving in context | L1 moving | L1 static |")
    print("|---|---|---|---|---|")
    for index, m in enumerate(masks):
        context = pre.encoder(video, masks=m.context)  # [B, Kc, D]
        pred = pre.predictor(context, m.context, m.targets, mask_index=index)  # [B, Kt, D]
        err = (pred - gather_tokens(normed, m.targets)).abs().mean(-1)  # [B, Kt]
        hit = torch.gather(moving, 1, m.targets)
        seen = torch.gather(moving, 1, m.context).float().sum(1).mean()
        print(f"| {index} | {m.context.shape[1]} | {seen:.1f} | {err[hit].mean():.3f} | "
              f"{err[~hit].mean():.3f} |")
    spread = normed.std(dim=0)  # [N, D]: across clips, per position and dimension
    print(f"target feature spread (std across clips): at moving positions "
          f"{spread[moving.any(0)].mean():.3f}, static-only positions "
          f"{spread[~moving.any(0)].mean():.3f}")
    print(f"weights moved from init: context encoder {relative_change(pre.encoder, init):.3f}, "
          f"target encoder {relative_change(pre.target_encoder, init):.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="pretraining runs or step_N folders")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in args.runs:
        diagnose(path, args.clips, args.seed)


if __name__ == "__main__":
    main()
