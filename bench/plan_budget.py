"""Planning success against sample budget (and time per replan) on the reach task.

    python -m bench.plan_budget [--samples 32 64 128 256 512 1024] [--episodes 20]
        [--agents world_model oracle] [--world-model PATH] [--threads 2]

Every cell runs the same seeded episodes (``--seed`` onwards) under the fixed 50-step budget with
CEM (``--iterations`` iterations, elites = samples / 8, horizon 5) and reports the success rate
(95% Wilson interval) and the median wall time of a replan. ``--episodes 50`` with the default
sample count is the headline evaluation of ``python -m jepa_world.plan``.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from bench.common import table
from jepa_world.planning.config import PlanConfig
from jepa_world.planning.session import plan_episodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024])
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--agents", nargs="+", default=["world_model", "oracle"])
    ap.add_argument("--world-model", default="")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for samples in args.samples:
        planner = {"name": "cem", "samples": samples, "iterations": args.iterations,
                   "elites": max(4, samples // 8), "horizon": 5}
        with tempfile.TemporaryDirectory() as out:
            cfg = PlanConfig(planner=planner, agents=list(args.agents), episodes=args.episodes,
                             seed=args.seed, world_model=args.world_model, videos=0,
                             threads=args.threads, output_dir=out, progress=False,
                             tensorboard=False)
            report = plan_episodes(cfg)
        for name, s in report["agents"].items():
            lo, hi = s["success_ci95"]
            rows.append({"agent": name, "samples": samples, "iterations": args.iterations,
                         "success": f"{s['successes']}/{s['episodes']}",
                         "95% CI": f"{lo:.2f}-{hi:.2f}",
                         "s/replan (median)": f"{s['plan_seconds_median']:.3f}",
                         "steps to success (median)": s["steps_to_success_median"]})
        print(table(rows[-len(report["agents"]):], list(rows[0])), flush=True)
    print(f"\nCEM, horizon 5, 50-step budget, action repeat 5; torch threads "
          f"{torch.get_num_threads()}; episodes seeds {args.seed}..{args.seed + args.episodes - 1}")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
