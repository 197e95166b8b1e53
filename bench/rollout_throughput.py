"""World-model rollout throughput: candidate-steps/s of `WorldModel.rollout` for planner batches.

    python -m bench.rollout_throughput [--batches 64 300 1024] [--horizon 5] [--repeats 3]
        [--history 1] [--max-context 3] [--depth 4] [--dtypes fp32 bf16] [--device cpu]
        [--model reach] [--plan]

Every cell times the fast rollout (``new``), the reference algorithm (``old``,
``rollout(reference=True)``: the whole window through the predictor at every step) and the
key / value-cached rollout of the same weights read as an ``imagination="cached"`` model
(``cached``: each frame through the predictor once; a different model, so other numbers: it
costs what a model trained that way costs), interleaved run by run so all see the same machine.
``--model reach`` (or a world-model folder) times that
model instead of the synthetic ones (history ``--history`` frames, its own window). ``--plan``
also times one CEM plan at the field's budget (300 samples x 30 iterations x horizon 5, 30
elites, one episode; history 3 frames) old vs new, interleaved, medians of ``--repeats``, and
checks that old and new give the same plan for the same seed (and cached the plan of its own
reference).

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
from jepa_world.errors import main_reporting_user_errors
from jepa_world.models.pooling import PoolerConfig
from jepa_world.models.presets import ACPredictorConfig, EncoderConfig
from jepa_world.world_model import WorldModel, WorldModelConfig

LATENTS = [("patch tokens", None), ("pooled K=4", 4), ("pooled K=1", 1)]
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


PATHS = ("new", "old", "cached")


def as_imagination(wm: WorldModel, mode: str) -> WorldModel:
    """A copy of ``wm`` sharing its weights, read as a ``mode`` (``sliding`` / ``cached``)
    model: what a model of that kind costs to imagine with."""
    import copy
    import dataclasses

    other = copy.copy(wm)  # the same submodules (weights), another config
    other.config = dataclasses.replace(wm.config, imagination=mode)
    predictor = copy.copy(wm.predictor)
    predictor.attention_window = other.config.predictor.attention_window
    other._modules = {**wm._modules, "predictor": predictor}
    return other


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
        self.wm, self.args, self.device, self.dtype = as_imagination(wm, "sliding"), args, \
            device, dtype
        self.cached = as_imagination(wm, "cached")
        g = torch.Generator().manual_seed(0)
        c, t = wm.config, args.history
        self.z = torch.randn(1, t, wm.tokens_per_frame, wm.latent_dim, generator=g).to(device)
        self.proprio = torch.randn(1, t, c.proprio_dim, generator=g).to(device)
        self.past = torch.randn(1, t - 1, c.step_action_dim, generator=g).to(device)
        self.g = g

    def run(self, batch: int, path: str = "new") -> float:
        a = torch.rand(1, batch, self.args.horizon, self.wm.config.step_action_dim,
                       generator=self.g).to(self.device)
        model = self.cached if path == "cached" else self.wm
        window = None if path == "cached" else self.args.max_context
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                             enabled=self.dtype is not None):
            model.rollout(self.z, a, self.proprio, chunk_size=self.args.chunk_size,
                          history_actions=self.past, max_context=window,
                          reference=path == "old")
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def measure(cell: Cell, batch: int, args, rate: dict) -> dict:
    """``new``, ``old`` (reference) and ``cached`` rollouts of ``batch`` candidates, interleaved
    run by run; ``rate`` holds the last measured candidate-steps/s of each (extrapolation past
    the limit)."""
    steps, row = batch * args.horizon, {}
    for path in PATHS:
        if path in rate and steps / rate[path] > args.max_run_seconds:
            row[path] = f"~{steps / rate[path]:.2f} s (~{rate[path]:,.0f}/s)"
    times = {p: [] for p in PATHS if p not in row}
    for _ in range(args.repeats):
        for path in times:
            times[path].append(cell.run(batch, path))
        if max(t[-1] for t in times.values()) > args.max_run_seconds:
            break
    for path, ts in times.items():
        sec = statistics.median(ts)
        rate[path] = steps / sec
        row[path] = f"{sec:.3f} s ({rate[path]:,.0f}/s)"
    if times:
        row["runs"] = len(next(iter(times.values())))
    for path in ("new", "cached"):
        if path in times and "old" in times:
            ratio = statistics.median(times["old"]) / statistics.median(times[path])
            row[f"old / {path}"] = f"{ratio:.2f}x"
    return row


def models(args, device: torch.device):
    """``(latent name, tokens a frame, model)`` to time: ``--model`` or the synthetic ones."""
    if args.model:
        wm = WorldModel.from_pretrained(args.model, map_location=device).eval()
        args.max_context = wm.config.history_length
        yield args.model, wm.tokens_per_frame, wm
        return
    for name, k in LATENTS:
        if name in args.latents:
            yield name, k or None, build(k, args.depth, args.history).to(device)


def plan_ab(wm: WorldModel, args, device: torch.device) -> list[dict]:
    """One CEM plan 300 x 30 x 5 (30 elites, one episode, history 3) with the reference, the
    fast and the cached rollout, interleaved; and whether new gives old's plan (and cached its
    own reference's) for each seed."""
    import copy
    import functools

    from jepa_world.planners import ActionBounds, make_planner
    from jepa_world.planning.objectives import LatentObjective

    def reference(model: WorldModel) -> WorldModel:
        ref = copy.copy(model)
        ref.rollout = functools.partial(model.rollout, reference=True)
        return ref

    sliding, cached = as_imagination(wm, "sliding"), as_imagination(wm, "cached")
    models = {"new": sliding, "old": reference(sliding), "cached": cached}
    g = torch.Generator().manual_seed(0)
    c, t = wm.config, 3
    z = torch.randn(1, t, wm.tokens_per_frame, wm.latent_dim, generator=g).to(device)
    goal = torch.randn(1, wm.tokens_per_frame, wm.latent_dim, generator=g).to(device)
    proprio = torch.randn(1, t, c.proprio_dim, generator=g).to(device)
    past = (torch.rand(1, t - 1, c.step_action_dim, generator=g) * 2 - 1).to(device)
    bounds = ActionBounds(-torch.ones(c.action_dim), torch.ones(c.action_dim), device=device)
    planner = make_planner("cem", bounds, samples=300, iterations=30, elites=30, horizon=5)

    def plan(model, seed: int):
        objective = LatentObjective(model, z, goal, history_actions=past,
                                    proprio=proprio if c.proprio_dim else None,
                                    chunk_size=args.chunk_size)
        gen = torch.Generator(device=device).manual_seed(seed)
        start = time.perf_counter()
        with torch.no_grad():
            result = planner.plan(objective, 1, generator=gen)
        return time.perf_counter() - start, result.actions

    def gap(a: WorldModel, b: WorldModel) -> str:
        return f"{max(float((plan(a, s)[1] - plan(b, s)[1]).abs().max()) for s in range(3)):.1e}"

    same = {"new = old": gap(models["new"], models["old"]),
            "cached = its reference": gap(cached, reference(cached))}
    times = {path: [] for path in models}
    for _ in range(args.repeats):
        for path, model in models.items():
            times[path].append(plan(model, 0)[0])
    sec = {path: statistics.median(ts) for path, ts in times.items()}
    return [{"plan": "CEM 300 x 30 x 5, 30 elites", **{p: f"{v:.3f} s" for p, v in sec.items()},
             "old / new": f"{sec['old'] / sec['new']:.2f}x",
             "old / cached": f"{sec['old'] / sec['cached']:.2f}x", "runs": args.repeats,
             **{f"max plan |diff| ({k}, seeds 0-2)": v for k, v in same.items()}}]


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
    parser.add_argument("--model", default="", help="a world-model folder or shipped name")
    parser.add_argument("--plan", action="store_true", help="also time one 300 x 30 x 5 plan")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-run-seconds", type=float, default=20.0)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows, plans, load_start = [], [], load()
    for name, k, wm in models(args, device):
        for dname in args.dtypes:
            cell = Cell(wm, args, device, DTYPES[dname])
            for path in PATHS:  # warm-up: lazy init, allocator, kernels
                cell.run(min(8, min(args.batches)), path)
            rate: dict = {}
            for batch in sorted(args.batches):
                row = {"latent": name, "tokens/frame": k or wm.tokens_per_frame,
                       "dtype": dname, "candidates": batch, **measure(cell, batch, args, rate)}
                rows.append(row)
                print(" | ".join(str(v) for v in row.values()), flush=True)
        if args.plan:
            plans += plan_ab(wm, args, device)
            print(plans[-1], flush=True)

    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_summary()
    print(f"\n{where}; torch {torch.__version__}, {threads} threads; load average "
          f"{load_start} -> {load()}")
    print(f"history {args.history} frame(s), context window {args.max_context}, horizon "
          f"{args.horizon}, chunk_size {args.chunk_size}; new = fast rollout, old = reference, "
          f"cached = the same weights as a key / value-cached model (interleaved); median of up to "
          f"{args.repeats} runs; '~' = extrapolated (a run would exceed "
          f"{args.max_run_seconds:.0f} s)\n")
    print(table(rows, ["latent", "tokens/frame", "dtype", "candidates", *PATHS, "old / new",
                       "old / cached", "runs"]))
    if plans:
        print()
        print(table(plans, list(plans[0])))


if __name__ == "__main__":
    main_reporting_user_errors(main)
