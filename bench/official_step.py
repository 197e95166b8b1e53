"""One V-JEPA pretraining step: jepa_world's loop against the same step built from the official
code's modules, at the same config, on the same masks and clips.

    git clone https://github.com/facebookresearch/jepa /tmp/jepa      # V-JEPA, commit 51c59d5
    python -m bench.official_step --official /tmp/jepa                # sin-cos positions
    git clone https://github.com/facebookresearch/vjepa2 /tmp/vjepa2  # V-JEPA 2, commit c2963a4
    python -m bench.official_step --official /tmp/vjepa2 --pos-embed rope

Nothing of the official code is copied here: the checkout given by ``--official`` is imported at
run time (its ``src`` package), and the step around its modules follows its
``app/vjepa/train.py``: the target encoder's layer-normed features, the masked context encoder
and predictor through its multi-mask wrappers, the L1 loss per mask type, backward, gradient
clipping, AdamW and the momentum update of the target encoder. jepa_world's side is the real
``pretrain`` loop (logging, NaN guards and all) with the VICReg terms off, since the official
recipe has none. Both sample the same multiblock masks (``jepa_world.masks``) inside the step on
the same synthetic clips; the official recipe samples them in loader workers.

Each side runs in its own process, alternately for ``--rounds`` rounds; the table gives each
side's median step over all rounds and the ratio. The default config is the one issue 16
quotes: width 192, depth 6, patch 8, predictor 96 x 4, batch 16 x 8 frames x 64 px.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import table
from bench.pretrain_throughput import SyntheticClips
from jepa_world.config import EnvConfig
from jepa_world.masks import sample_multiblock_masks
from jepa_world.models.inputs import imagenet_normalize
from jepa_world.schedules import ema_momentum
from jepa_world.training.pretrain import pretrain, step_seed
from jepa_world.training.pretrain_config import ModelConfig, PretrainConfig, RegularizerConfig


def pretrain_config(args, run_dir: str = "") -> PretrainConfig:
    """The shared config: jepa_world's side runs it, the official side reads its sizes."""
    model = ModelConfig(depth=args.depth, pos_embed=args.pos_embed,
                        predictor_depth=args.predictor_depth)
    return PretrainConfig(model=model, env=EnvConfig(image_size=model.img_size),
                          regularizer=RegularizerConfig(variance_weight=0.0,
                                                        covariance_weight=0.0),
                          steps=args.warmup + args.steps, batch_size=args.batch,
                          precision=args.precision, compile=args.compile, device="cpu",
                          run_dir=run_dir,
                          checkpoint_interval=10**9, keep_checkpoints=1, tensorboard=False,
                          progress=False, log_interval=10**9)


def time_ours(args) -> list[float]:
    """Seconds of each step of jepa_world's ``pretrain`` loop."""
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = pretrain_config(args, run_dir)
        stamps = [time.perf_counter()]
        pretrain(cfg, callback=lambda step, metrics: stamps.append(time.perf_counter()),
                 dataset=SyntheticClips(cfg.model))
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def import_official(path: Path) -> tuple[dict, bool]:
    """The official ``src`` modules the step needs, and whether the checkout is V-JEPA 2."""
    if "timm" not in sys.modules:  # V-JEPA 2's blocks import timm's drop_path; it is not needed
        try:
            import timm  # noqa: F401
        except ImportError:
            def drop_path(x, drop_prob=0.0, training=False, scale_by_keep=True):
                if drop_prob and training:
                    raise NotImplementedError("drop path > 0 is not part of this benchmark")
                return x
            for name in ("timm", "timm.models", "timm.models.layers"):
                sys.modules[name] = types.ModuleType(name)
            sys.modules["timm.models.layers"].drop_path = drop_path
    sys.path.insert(0, str(path))
    import src.models.predictor as predictor
    import src.models.vision_transformer as vit
    from src.masks.utils import apply_masks
    v2 = (path / "src" / "utils" / "wrappers.py").is_file()
    if v2:
        from src.utils.wrappers import MultiSeqWrapper as Enc
        from src.utils.wrappers import PredictorMultiSeqWrapper as Pred
    else:
        from src.models.utils.multimask import MultiMaskWrapper as Enc
        from src.models.utils.multimask import PredictorMultiMaskWrapper as Pred
    return {"vit": vit.VisionTransformer, "predictor": predictor.VisionTransformerPredictor,
            "encoder_wrapper": Enc, "predictor_wrapper": Pred, "apply_masks": apply_masks}, v2


def official_models(mods: dict, v2: bool, model: ModelConfig, rope: bool):
    """Context encoder, target encoder and predictor from the official classes."""
    common = dict(img_size=model.img_size, patch_size=model.patch_size,
                  num_frames=model.num_frames, tubelet_size=model.tubelet_size,
                  uniform_power=model.uniform_power)
    extra = dict(use_sdpa=True, use_rope=rope, use_silu=False) if v2 else {}
    encoder = mods["vit"](embed_dim=model.embed_dim, depth=model.depth,
                          num_heads=model.num_heads,
                          mlp_ratio=model.mlp_hidden_dim / model.embed_dim, qkv_bias=True,
                          **common, **extra)
    predictor = mods["predictor"](
        embed_dim=model.embed_dim, predictor_embed_dim=model.predictor_dim,
        depth=model.predictor_depth, num_heads=model.predictor_heads,
        mlp_ratio=model.predictor_mlp_hidden_dim / model.predictor_dim, use_mask_tokens=True,
        num_mask_tokens=2, zero_init_mask_tokens=True, **common, **extra)
    target = mods["vit"](embed_dim=model.embed_dim, depth=model.depth,
                         num_heads=model.num_heads,
                         mlp_ratio=model.mlp_hidden_dim / model.embed_dim, qkv_bias=True,
                         **common, **extra)
    target.load_state_dict(encoder.state_dict())
    target.requires_grad_(False)
    return mods["encoder_wrapper"](encoder), mods["encoder_wrapper"](target), \
        mods["predictor_wrapper"](predictor)


def time_official(args) -> list[float]:
    """Seconds of each step built from the official modules, following its train loop."""
    mods, v2 = import_official(Path(args.official))
    cfg = pretrain_config(args)  # its sizes, optimiser, EMA and masks; nothing is written
    torch.manual_seed(cfg.seed)
    encoder, target, predictor = official_models(mods, v2, cfg.model, args.pos_embed == "rope")
    params = list(encoder.parameters()) + list(predictor.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps)
    clips = SyntheticClips(cfg.model)
    apply_masks = mods["apply_masks"]
    bf16 = cfg.precision == "bf16"
    times = []
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        clip = torch.stack([clips[step * cfg.batch_size + i] for i in range(cfg.batch_size)])
        video = imagenet_normalize(clip, channel_dim=1)  # the official transforms' constants
        masks = sample_multiblock_masks(cfg.model.grid, cfg.masks.specs(), cfg.batch_size,
                                        generator=step_seed(cfg.seed, step, 0),
                                        min_keep=cfg.masks.min_keep,
                                        truncate=cfg.masks.truncate)
        enc_masks = [m.context for m in masks]
        pred_masks = [m.targets for m in masks]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            with torch.no_grad():
                if v2:  # one sequence length: lists of lists, as its loader gives
                    h = [F.layer_norm(hi, hi.shape[-1:]) for hi in target([video])]
                else:
                    h = target(video)
                    h = F.layer_norm(h, h.shape[-1:])
                    h = apply_masks(h, pred_masks, concat=False)
            if v2:
                z = predictor(encoder([video], [enc_masks]), [enc_masks], [pred_masks])
                h = [apply_masks(hi, mi, concat=False) for hi, mi in zip(h, [pred_masks],
                                                                        strict=True)]
                pairs = [(zij, hij) for zi, hi in zip(z, h, strict=True)
                         for zij, hij in zip(zi, hi, strict=True)]
            else:
                z = predictor(encoder(video, enc_masks), h, enc_masks, pred_masks)
                pairs = list(zip(z, h, strict=True))
            loss = sum(torch.mean(torch.abs(zi - hi)) for zi, hi in pairs) / len(pairs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), cfg.optim.grad_clip)
        torch.nn.utils.clip_grad_norm_(predictor.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad()
        m = ema_momentum(step, start=cfg.ema.start, final=cfg.ema.final, total_steps=cfg.steps)
        with torch.no_grad():
            k, q = list(target.parameters()), list(encoder.parameters())
            torch._foreach_mul_(k, m)
            torch._foreach_add_(k, q, alpha=1 - m)
        float(loss)  # the official loop logs the loss every step
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True,
                        help="a checkout of facebookresearch/jepa (sin-cos) or vjepa2 (RoPE)")
    parser.add_argument("--pos-embed", default="sincos", choices=["sincos", "rope"])
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--predictor-depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true",
                        help="jepa_world's side with compile=True (torch.compile of its models; "
                             "give --warmup enough steps for the compiles)")
    parser.add_argument("--one", default="", choices=["", "ours", "official"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        torch.set_num_threads(args.threads)
        times = time_ours(args) if args.one == "ours" else time_official(args)
        print(json.dumps(times[args.warmup:]))
        return
    if not (Path(args.official) / "src" / "models" / "vision_transformer.py").is_file():
        raise SystemExit(f"error: --official: {args.official!r} is not a checkout of "
                         f"facebookresearch/jepa or vjepa2 (no src/models/vision_transformer.py);"
                         f" clone one there")
    if args.pos_embed == "rope" and not (Path(args.official) / "src/utils/wrappers.py").is_file():
        raise SystemExit("error: --pos-embed rope needs a V-JEPA 2 checkout "
                         "(facebookresearch/vjepa2)")
    steps = {"ours": [], "official": []}
    for _ in range(args.rounds):
        for side in steps:
            proc = subprocess.run([sys.executable, "-m", "bench.official_step", "--one", side,
                                   *sys.argv[1:]], capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"error: the {side} side failed (above)")
            steps[side] += json.loads(proc.stdout.strip().splitlines()[-1])
    ms = {side: statistics.median(t) * 1e3 for side, t in steps.items()}
    print(f"V-JEPA step, width 192 depth {args.depth}, predictor 96 x {args.predictor_depth}, "
          f"batch {args.batch} x 8 frames x 64 px, {args.pos_embed}, {args.precision}, "
          f"{args.threads} threads, torch {torch.__version__}; median of {args.rounds} rounds x "
          f"{args.steps} steps after {args.warmup}")
    print(table([{"side": side, "step ms": f"{ms[side]:.0f}"} for side in steps]
                + [{"side": "official / ours", "step ms": f"{ms['official'] / ms['ours']:.2f}x"}],
                ["side", "step ms"]))


if __name__ == "__main__":
    main()
