"""World-model rollout throughput: candidate-steps/s of `WorldModel.rollout` for planner batches.

    python -m bench.rollout_throughput [--batches 64 300 1024] [--horizon 5] [--repeats 3]
        [--history 1] [--max-context 3] [--depth 4] [--dtypes fp32 bf16] [--device cpu]

Model: tiny default-like (64 px, patch 8 -> 64 patch tokens a frame, encoder and predictor width
192, predictor depth ``--depth``), reach-like sizes (action 2 x frameskip 5, proprio 4). Latents:
full patch tokens vs attentive pooling to K = 4 and K = 1 tokens a frame. A rollout imagines
``--horizon`` steps for every candidate from ``--history`` observed frames, with a sliding context
of ``--max-context`` frames, under ``torch.no_grad()``; ``bf16`` runs under autocast.

Cells are medians of ``--repeats`` timed runs after a small warm-up. When a run would take longer
than ``--max-run-seconds`` (estimated from the last measured batch of the same latent and dtype),
the cell is extrapolated from that batch and marked ``~`` instead of being run; a measured run
longer than the limit is not repeated (``runs`` says how many were timed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from bench.common import table
from jepa_world.models.pooling import PoolerConfig
from jepa_world.models.presets import ACPredictorConfig, EncoderConfig
from jepa_world.world_model import WorldModel, WorldModelConfig

LATENTS = [("patch tokens", None), ("pooled K=4", 4), ("pooled K=1", 1)]
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def build(num_tokens: int | None, depth: int, history: int) -> WorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        encoder=EncoderConfig(img_size=64, patch_size=8, embed_dim=192, depth=4, num_heads=3),
        predictor=ACPredictorConfig(predictor_dim=192, depth=depth, num_heads=3,
                                    mlp_hidden_dim=768),
        pooler=PoolerConfig(num_tokens=num_tokens) if num_tokens else None,
        action_dim=2, frameskip=5, proprio_dim=4, history_length=history)
    return WorldModel(cfg).eval()


def cpu_summary() -> str:
    flags, model = set(), platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model or 'unknown CPU'}; {'/'.join(simd) or 'no AVX2'}"


def load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


class Cell:
    """Times ``wm.rollout`` for one latent / dtype / batch."""

    def __init__(self, wm: WorldModel, args, device: torch.device, dtype) -> None:
        self.wm, self.args, self.device, self.dtype = wm, args, device, dtype
        g = torch.Generator().manual_seed(0)
        c, t = wm.config, args.history
        self.z = torch.randn(1, t, wm.tokens_per_frame, wm.latent_dim, generator=g).to(device)
        self.proprio = torch.randn(1, t, c.proprio_dim, generator=g).to(device)
        self.past = torch.randn(1, t - 1, c.step_action_dim, generator=g).to(device)
        self.g = g

    def run(self, batch: int) -> float:
        a = torch.rand(1, batch, self.args.horizon, self.wm.config.step_action_dim,
                       generator=self.g).to(self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                             enabled=self.dtype is not None):
            self.wm.rollout(self.z, a, self.proprio, chunk_size=self.args.chunk_size,
                            history_actions=self.past, max_context=self.args.max_context)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 300, 1024])
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--history", type=int, default=1)
    parser.add_argument("--max-context", type=int, default=3)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--latents", nargs="+", default=[n for n, _ in LATENTS],
                        choices=[n for n, _ in LATENTS])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-run-seconds", type=float, default=20.0)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows, load_start = [], load()
    for name, k in LATENTS:
        if name not in args.latents:
            continue
        wm = build(k, args.depth, args.history).to(device)
        for dname in args.dtypes:
            cell = Cell(wm, args, device, DTYPES[dname])
            cell.run(min(8, min(args.batches)))  # warm-up: lazy init, allocator, kernels
            rate = None  # candidate-steps/s of the last measured batch
            for batch in sorted(args.batches):
                steps = batch * args.horizon
                row = {"latent": name, "tokens/frame": k or wm.tokens_per_frame,
                       "dtype": dname, "candidates": batch}
                if rate is not None and steps / rate > args.max_run_seconds:
                    row.update({"s/rollout": f"~{steps / rate:.2f}",
                                "cand-steps/s": f"~{rate:,.0f}", "runs": 0})
                    rows.append(row)
                    continue
                times = []
                for _ in range(args.repeats):
                    times.append(cell.run(batch))
                    if times[-1] > args.max_run_seconds:
                        break
                sec = statistics.median(times)
                rate = steps / sec
                row.update({"s/rollout": f"{sec:.3f}", "cand-steps/s": f"{rate:,.0f}",
                            "runs": len(times)})
                rows.append(row)
                print(" | ".join(str(v) for v in row.values()), flush=True)

    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_summary()
    print(f"\n{where}; torch {torch.__version__}, {threads} threads; load average "
          f"{load_start} -> {load()}")
    print(f"predictor width 192 depth {args.depth}; history {args.history} frame(s), context "
          f"window {args.max_context}, horizon {args.horizon}; median of up to {args.repeats} "
          f"runs; '~' = extrapolated (a run would exceed {args.max_run_seconds:.0f} s)\n")
    print(table(rows, ["latent", "tokens/frame", "dtype", "candidates", "s/rollout",
                       "cand-steps/s", "runs"]))


if __name__ == "__main__":
    main()
