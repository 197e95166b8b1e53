"""Peak memory of planning against the number of CEM candidates (the shipped reach model).

    python -m bench.plan_memory [--samples 1000 10000 100000] [--chunk-size 1024]
        [--unchunked] [--threads 1]

Each cell is a fresh ``python -m jepa_world.plan`` process planning one replan (one episode,
``step_budget`` = one held action, one CEM iteration) with ``planner.samples`` candidates; its
peak resident set size comes from ``os.wait4`` (``ru_maxrss`` of that process alone).
``--unchunked`` adds a run imagining all candidates at once (``chunk_size`` = samples), to show
what the chunking saves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from bench.common import table


def peak_rss_mib(samples: int, chunk_size: int, threads: int) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one planning process."""
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, "-m", "jepa_world.plan", "episodes=1", "videos=0",
                "step_budget=5", "action_repeat=5", "planner.iterations=1",
                f"planner.samples={samples}", f"planner.elites={max(samples // 8, 1)}",
                f"chunk_size={chunk_size}", f"threads={threads}", "tensorboard=false",
                "progress=false", f"output_dir={out}", f"hydra.run.dir={out}"]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"plan failed for {samples} samples: {proc.stderr.read().decode()}")
        proc.stderr.close()
    return usage.ru_maxrss / 1024, seconds  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--unchunked", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    cells = [(s, a.chunk_size) for s in a.samples]
    if a.unchunked:
        cells.append((max(a.samples), max(a.samples)))
    rows = []
    for samples, chunk in cells:
        mib, seconds = peak_rss_mib(samples, chunk, a.threads)
        rows.append({"samples": samples, "chunk_size": chunk, "peak RSS (MiB)": f"{mib:.0f}",
                     "wall s": f"{seconds:.1f}"})
        print(rows[-1], flush=True)
    print(table(rows, ["samples", "chunk_size", "peak RSS (MiB)", "wall s"]))


if __name__ == "__main__":
    main()
