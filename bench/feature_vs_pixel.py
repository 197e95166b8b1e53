"""Feature prediction (V-JEPA) vs pixel reconstruction: which gives better probes, sooner?

    python -m bench.feature_vs_pixel                        # 600 steps x 3 seeds: ~80 min on a CPU
    python -m bench.feature_vs_pixel --steps 20 --every 10 --seeds 1 --episodes 10 \\
        --episode-length 30 --probe-episodes 10 --probe-epochs 3 --out /tmp/fvp   # smoke run

Pretrains the tiny encoder with ``objective=feature`` and ``objective=pixel`` under the same
steps, data, batch and seeds (``jepa_world.training.pretrain``), keeping a checkpoint every
``--every`` steps. Every checkpoint (and step 0: the same seed's random init) is probed with the
frozen-feature probes of ``jepa_world.probes`` (``state`` R^2 and ``motion`` accuracy, attentive
and linear heads, one probe seed; the feature run's EMA target encoder, the pixel run's encoder).
Prints probe score vs steps per objective (mean ± std over pretraining seeds) and, for each
``--target``, the first checkpoint step at which each objective's mean reaches it. Runs resume:
re-running with the same ``--out`` skips finished pretraining steps and reuses the probe scores
saved in ``<out>/probes/`` (one file per probed encoder and probe setting). ``--objectives`` and
``--seed-list`` split the work across processes; a last run with all of them prints the table.
All numbers are written to ``<out>/feature_vs_pixel.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from jepa_world.atomic import atomic_write_text
from jepa_world.checkpoints.runs import checkpoint_root, step_dir_name
from jepa_world.config import EnvConfig
from jepa_world.data.windows import split_episodes
from jepa_world.probes import ProbeConfig, ProbeDataConfig, build_task, load_encoder
from jepa_world.probes.runner import mean_std, prepare_dataset, probe_encoder_on_task
from jepa_world.training import DataConfig, MaskConfig, ModelConfig, PretrainConfig, pretrain

OBJECTIVES = ("feature", "pixel")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600, help="pretraining steps per run")
    p.add_argument("--every", type=int, default=200, help="steps between probed checkpoints")
    p.add_argument("--seeds", type=int, default=3, help="pretraining seeds per objective")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--data", default="", help="pretraining dataset (default data/reach_64px)")
    p.add_argument("--episodes", type=int, default=200, help="pretraining episodes to collect")
    p.add_argument("--episode-length", type=int, default=100)
    p.add_argument("--probe-data", default="", help="probe dataset (default "
                   "data/reach_probe_64px)")
    p.add_argument("--probe-episodes", type=int, default=60)
    p.add_argument("--probe-epochs", type=int, default=25)
    p.add_argument("--objectives", default=",".join(OBJECTIVES),
                   help="objectives this process trains and probes (split the work across "
                        "processes, then run once more with all of them for the table)")
    p.add_argument("--seed-list", default="", help="pretraining seeds this process takes, "
                   "e.g. 2 or 0,1 (default: all --seeds)")
    p.add_argument("--tasks", default="state,motion")
    p.add_argument("--probes", default="attentive,linear")
    p.add_argument("--target", action="append", default=[], metavar="TASK/PROBE=SCORE",
                   help="score to reach, e.g. state/attentive=0.5 (repeatable; default: "
                        "state/attentive=0.55 motion/attentive=0.4)")
    p.add_argument("--future-fraction", type=float, default=0.0,
                   help="masks.future_fraction of both objectives' pretraining (0: V-JEPA's "
                        "tubes; 0.5: the long-range mask hides the clip's second half)")
    p.add_argument("--temporal-scale", default="1,1", metavar="MIN,MAX",
                   help="masks.temporal_scale of both objectives' pretraining (1,1: V-JEPA's "
                        "tubes through the whole clip; 0.25,0.5: blocks one tubelet long)")
    p.add_argument("--out", default="runs/feature_vs_pixel")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if min(args.steps, args.every, args.seeds, args.batch_size, args.probe_epochs) < 1:
        p.error("--steps, --every, --seeds, --batch-size and --probe-epochs must be >= 1")
    if not 0 <= args.future_fraction < 1:
        p.error(f"--future-fraction must be in [0, 1), got {args.future_fraction}")
    try:
        args.temporal_scale = [float(v) for v in args.temporal_scale.split(",")]
        MaskConfig(temporal_scale=args.temporal_scale)
    except ValueError as err:
        p.error(f"--temporal-scale: {err}")
    args.objectives = args.objectives.split(",")
    if not set(args.objectives) <= set(OBJECTIVES):
        p.error(f"--objectives must be among {', '.join(OBJECTIVES)}")
    try:
        args.seed_list = ([int(v) for v in args.seed_list.split(",")] if args.seed_list
                          else list(range(args.seeds)))
    except ValueError:
        p.error(f"--seed-list must be integers separated by commas, got {args.seed_list!r}")
    args.target = args.target or ["state/attentive=0.55", "motion/attentive=0.4"]
    try:
        args.targets = {k: float(v) for k, v in (t.split("=", 1) for t in args.target)}
    except ValueError:
        p.error(f"--target must look like state/attentive=0.5, got {args.target}")
    return args


def pretrain_run(args, objective: str, seed: int) -> Path:
    """Train (or resume) one run; every ``--every`` steps stays on disk."""
    run_dir = Path(args.out) / objective / f"seed{seed}"
    cfg = PretrainConfig(
        env=EnvConfig(image_size=64), model=ModelConfig(), objective=objective,
        masks=MaskConfig(future_fraction=args.future_fraction,
                         temporal_scale=args.temporal_scale),
        data=DataConfig(data_dir=args.data, episodes=args.episodes,
                        episode_length=args.episode_length),
        steps=args.steps, batch_size=args.batch_size, seed=seed, device=args.device,
        checkpoint_interval=args.every, keep_checkpoints=args.steps // args.every + 2,
        run_dir=str(run_dir), progress=sys.stderr.isatty())
    done = checkpoint_root(run_dir) / step_dir_name(args.steps)
    if not done.is_dir():
        pretrain(cfg)
    return run_dir


def checkpoints(run_dir: Path, seed: int, args) -> list[tuple[int, str]]:
    """``(step, encoder spec)`` of step 0 (the seed's random init) and every kept checkpoint."""
    steps = sorted({*range(args.every, args.steps + 1, args.every), args.steps})
    found = [(0, f"random:tiny:{seed}")]
    for step in steps:
        folder = checkpoint_root(run_dir) / step_dir_name(step)
        if folder.is_dir():
            found.append((step, str(folder)))
    return found


def summary_table(results: list[dict], tasks, probes) -> str:
    lines = []
    for task in tasks:
        for probe in probes:
            rows = [r for r in results if r["task"] == task and r["probe"] == probe]
            if not rows:
                continue
            lines += [f"\n{task} / {probe} ({rows[0]['metric']}, mean ± std over seeds)",
                      "| step | " + " | ".join(OBJECTIVES) + " |",
                      "|---" * (len(OBJECTIVES) + 1) + "|"]
            for step in sorted({r["step"] for r in rows}):
                cells = []
                for obj in OBJECTIVES:
                    vals = [r["mean"] for r in rows if r["objective"] == obj and r["step"] == step]
                    m, s = mean_std(vals) if vals else (float("nan"), float("nan"))
                    cells.append(f"{m:.3f} ± {s:.3f} (n={len(vals)})")
                lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def first_reaching(results: list[dict], key: str, target: float) -> dict[str, int | None]:
    """Per objective, the first step whose seed-mean score is >= ``target``."""
    task, probe = key.split("/", 1)
    out: dict[str, int | None] = {}
    for obj in OBJECTIVES:
        rows = [r for r in results if (r["objective"], r["task"], r["probe"]) == (obj, task, probe)]
        reached = [step for step in sorted({r["step"] for r in rows})
                   if mean_std([r["mean"] for r in rows if r["step"] == step])[0] >= target]
        out[obj] = reached[0] if reached else None
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    tasks, probes = args.tasks.split(","), args.probes.split(",")
    pcfg = ProbeConfig(encoders=["random:tiny"], tasks=tasks, probes=probes, seeds=[0],
                       epochs=args.probe_epochs, device=args.device, progress=False,
                       tensorboard=False, data=ProbeDataConfig(data_dir=args.probe_data,
                                                               episodes=args.probe_episodes))
    root = prepare_dataset(pcfg)
    train_ids, test_ids = split_episodes(root, pcfg.data.test_fraction)
    task_data = [build_task(t, root, train_ids, test_ids) for t in pcfg.tasks]
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    settings = {"tasks": tasks, "probes": probes, "epochs": args.probe_epochs,
                "probe_data": str(root), "probe_episodes": args.probe_episodes}
    results: list[dict] = []
    for objective in args.objectives:
        for seed in args.seed_list:
            run_dir = pretrain_run(args, objective, seed)
            for step, spec in checkpoints(run_dir, seed, args):
                # One file per probed encoder: re-runs and other processes reuse it, and step 0
                # (the seed's random init) is the same encoder for both objectives.
                name = f"init_seed{seed}" if step == 0 else f"{objective}_seed{seed}_step{step}"
                cached = Path(args.out) / "probes" / f"{name}.json"
                saved = json.loads(cached.read_text()) if cached.is_file() else {}
                if saved.get("settings") == settings:
                    rows = saved["rows"]
                else:
                    encoder = load_encoder(spec, f"{objective}/seed{seed}/step{step}")
                    rows = [row for task in task_data
                            for row in probe_encoder_on_task(pcfg, encoder, task, device)]
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(cached, json.dumps({"settings": settings, "rows": rows}))
                results += [dict(row, objective=objective, seed=seed, step=step) for row in rows]
                print(f"probed {objective} seed {seed} step {step}: " + ", ".join(
                    f"{r['task']}/{r['probe']} {r['mean']:.3f}" for r in results
                    if (r["objective"], r["seed"], r["step"]) == (objective, seed, step)),
                    file=sys.stderr, flush=True)
    print(f"feature vs pixel objective: tiny model, {args.steps} steps x batch "
          f"{args.batch_size}, seeds {args.seed_list} each; probes on {len(test_ids)} held-out "
          f"episodes of {root}")
    print(summary_table(results, tasks, probes))
    verdicts = {}
    print("\n| target | " + " | ".join(f"first step ({o})" for o in OBJECTIVES) + " | sooner |")
    print("|---" * (len(OBJECTIVES) + 2) + "|")
    for key, target in args.targets.items():
        reached = first_reaching(results, key, target)
        hits = {o: s for o, s in reached.items() if s is not None}
        best = "neither" if not hits else ("tie" if len(set(hits.values())) == 1 and
                                           len(hits) == len(OBJECTIVES)
                                           else min(hits, key=hits.get))
        verdicts[key] = {"target": target, "first_step": reached, "sooner": best}
        print(f"| {key} >= {target} | " + " | ".join(
            str(reached[o]) if reached[o] is not None else "not reached" for o in OBJECTIVES)
            + f" | {best} |")
    path = atomic_write_text(Path(args.out) / "feature_vs_pixel.json", json.dumps(
        {"args": {k: v for k, v in vars(args).items()}, "results": results,
         "targets": verdicts}, indent=1) + "\n")
    print(f"results: {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
