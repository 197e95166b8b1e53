"""Wall time of the whole default plan command, this checkout against an older one, interleaved.

    python -m bench.plan_command [--old CHECKOUT] [--world-model NAME=PATH ...] [--rounds 3]
        [-- plan overrides ...]

Each round runs ``python -m jepa_world.plan env=reach`` (50 episodes, the shipped model) once per
variant, in turn, as a fresh process: ``new`` (this checkout), ``old`` (``--old``: a checkout of
an earlier commit, e.g. ``git worktree add /tmp/old <commit>``; imported through a temporary
folder that lays it out as the installed package, so the checkout is not touched) and one
``new`` run per ``--world-model`` (``world_model=PATH``). Prints each variant's median wall
time, its ratio to ``old`` (or to ``new``) and the success counts, so machine drift between
rounds hits every variant alike. Issue 16's target: the default command 3x faster end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import table

#: Top-level folders that install as subpackages of ``jepa_world`` (pyproject's package-dir).
SUBPACKAGES = ("envs", "planners", "configs")


def package_view(checkout: Path, into: Path) -> Path:
    """A folder holding ``jepa_world/`` laid out as installed: the checkout's package entries
    plus its ``envs`` / ``planners`` / ``configs`` as subpackages, all symlinks."""
    pkg = into / "jepa_world"
    pkg.mkdir()
    for entry in (checkout / "jepa_world").iterdir():
        if entry.name not in SUBPACKAGES:
            (pkg / entry.name).symlink_to(entry)
    for name in SUBPACKAGES:
        (pkg / name).symlink_to(checkout / name)
    return into


def run_once(cwd: Path, overrides: list[str], out: Path) -> tuple[float, str]:
    """Seconds of one plan command run in ``cwd`` and its success count (``k/n``)."""
    cmd = [sys.executable, "-m", "jepa_world.plan", "env=reach", "progress=false",
           f"output_dir={out}", *overrides]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} (in {cwd}) failed:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    episodes = summary["episodes"]
    return seconds, f"{round(summary['success_rate'] * episodes)}/{episodes}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, help="a checkout of an earlier commit")
    ap.add_argument("--world-model", action="append", default=[], metavar="NAME=PATH",
                    help="also time this checkout with world_model=PATH")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("overrides", nargs="*", help="plan overrides for every variant")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = {"new": (Path.cwd(), [])}
        if args.old is not None:
            if not (args.old / "jepa_world" / "plan.py").is_file():
                sys.exit(f"error: --old: {args.old} is not a jepa_world checkout")
            view = tmp / "old_view"
            view.mkdir()
            variants["old"] = (package_view(args.old.resolve(), view), [])
        for spec in args.world_model:
            name, _, path = spec.partition("=")
            if not path:
                sys.exit(f"error: --world-model: expected NAME=PATH, got {spec!r}")
            variants[name] = (Path.cwd(), [f"world_model={os.path.abspath(path)}"])
        seconds = {name: [] for name in variants}
        success = {name: [] for name in variants}
        for r in range(args.rounds):
            for name, (cwd, extra) in variants.items():
                s, ok = run_once(cwd, [*extra, *args.overrides], tmp / f"{name}_{r}")
                seconds[name].append(s)
                success[name].append(ok)
                print(f"round {r + 1} {name}: {s:.1f} s, {ok}", flush=True)
    base = "old" if "old" in variants else "new"
    ref = statistics.median(seconds[base])
    rows = [{"variant": name, "median s": f"{statistics.median(t):.1f}",
             "runs s": " / ".join(f"{x:.1f}" for x in t),
             f"speed-up vs {base}": f"{ref / statistics.median(t):.2f}x",
             "success": " / ".join(success[name])} for name, t in seconds.items()]
    print(table(rows, ["variant", "median s", "runs s", f"speed-up vs {base}", "success"]))


if __name__ == "__main__":
    main()
