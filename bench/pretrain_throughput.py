"""Pretraining step throughput: the real training loop, timed, per precision / compile variant.

    python -m bench.pretrain_throughput                          # tiny model, this CPU
    python -m bench.pretrain_throughput --model vit_l --batch 8 --variants bf16 bf16+compile

Each variant runs ``jepa_world.training.pretrain.pretrain`` in its own process (so peak memory is
its own) on synthetic clips held in memory (no data loading cost), times every step through the
loop's callback, and reports the median step after ``--warmup`` steps: clips/s, tokens/s (input
tokens of the full clip), peak memory, and on CUDA the model FLOP utilisation (FLOPs of one step
counted by ``torch.utils.flop_counter`` over ``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import yaml
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode

from bench.common import table
from jepa_world.config import EnvConfig
from jepa_world.masks import sample_multiblock_masks
from jepa_world.models.presets import build_encoder, build_predictor
from jepa_world.training.pretrain import JepaStudent, pretrain
from jepa_world.training.pretrain_config import ModelConfig, PretrainConfig

CONFIGS = importlib.resources.files("jepa_world.configs") / "model"


class SyntheticClips(Dataset):
    """A small pool of random clips ``[3, T, S, S]`` in ``[0, 1]``, repeated."""

    def __init__(self, model: ModelConfig, pool: int = 8, length: int = 100_000):
        g = torch.Generator().manual_seed(0)
        shape = (pool, 3, model.num_frames, model.img_size, model.img_size)
        self.clips = torch.rand(shape, generator=g)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.clips[index % len(self.clips)]


def model_config(name: str) -> ModelConfig:
    return ModelConfig(**yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()))


def step_flops(cfg: PretrainConfig, device: torch.device) -> int:
    """FLOPs of one feature-objective step (target forward, student forward and backward)."""
    m = cfg.model
    encoder = build_encoder(m.encoder_config()).to(device)
    target = build_encoder(m.encoder_config()).to(device).requires_grad_(False)
    student = JepaStudent(encoder, build_predictor(m.predictor_config(2)).to(device),
                          regularizer=cfg.regularizer)
    video = torch.rand(cfg.batch_size, 3, m.num_frames, m.img_size, m.img_size, device=device)
    masks = sample_multiblock_masks(m.grid, cfg.masks.specs(), cfg.batch_size, generator=0)
    ctx = [mk.context.to(device) for mk in masks]
    tgt = [mk.targets.to(device) for mk in masks]
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            targets = target(video)
        loss, _ = student(video, ctx, tgt, targets)
        loss.backward()
    return counter.get_total_flops()


def run_variant(args, variant: str) -> dict:
    """Time one variant in this process; returns a JSON-able row."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model = model_config(args.model)
    precision = "bf16" if "bf16" in variant else "fp32"
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = PretrainConfig(model=model, env=EnvConfig(image_size=model.img_size),
                             steps=args.warmup + args.steps, batch_size=args.batch,
                             precision=precision, compile="compile" in variant,
                             device=args.device, run_dir=run_dir, checkpoint_interval=10**9,
                             keep_checkpoints=1, tensorboard=False, progress=False,
                             log_interval=10**9)
        stamps: list[float] = []

        def callback(step, metrics):
            if torch.cuda.is_available() and cfg.device != "cpu":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        if args.profile:  # where the time goes: top operators by self time, to stderr
            acts = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                acts.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=acts) as prof:
                pretrain(cfg, callback=callback, dataset=SyntheticClips(model))
            for key in ("self_cuda_time_total", "self_cpu_time_total"):
                if "cuda" in key and not torch.cuda.is_available():
                    continue
                print(prof.key_averages().table(sort_by=key, row_limit=18), file=sys.stderr)
        else:
            pretrain(cfg, callback=callback, dataset=SyntheticClips(model))
    step_s = statistics.median(b - a for a, b in zip(stamps[args.warmup:], stamps[args.warmup + 1:],
                                                     strict=False))
    tokens = model.grid[0] * model.grid[1] * model.grid[2]
    row = {"variant": variant, "step ms": f"{step_s * 1e3:,.0f}",
           "clips/s": f"{args.batch / step_s:,.1f}",
           "tokens/s": f"{args.batch * tokens / step_s:,.0f}"}
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if cuda:
        row["peak GiB"] = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}"
        flops = step_flops(cfg, torch.device("cuda"))
        row["TFLOP/step"] = f"{flops / 1e12:.2f}"
        row["MFU"] = f"{flops / step_s / (args.peak_tflops * 1e12):.1%}"
    else:
        row["peak RSS GiB"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="a configs/model/*.yaml name")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["fp32", "fp32+compile"],
                        help="fp32, bf16, fp32+compile, bf16+compile")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the device's dense bf16 peak, for MFU (H100/H200 SXM: 989)")
    parser.add_argument("--profile", action="store_true",
                        help="with --one VARIANT: print the profiler's top operators")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_variant(args, args.one)))
        return
    rows = []
    for variant in args.variants:
        cmd = [sys.executable, "-m", "bench.pretrain_throughput", "--one", variant,
               *sys.argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"variant {variant} failed")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    m = model_config(args.model)
    print(f"model {args.model}, batch {args.batch} x {m.num_frames} frames x {m.img_size} px "
          f"({m.grid[0] * m.grid[1] * m.grid[2]} tokens/clip), {device}, torch "
          f"{torch.__version__}; median of {args.steps} steps after {args.warmup}")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
