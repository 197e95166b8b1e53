"""Probe every (encoder, task, probe kind) for several seeds: :func:`run_probes`.

The probe dataset is collected first when missing; each task's windows are read once; each
encoder's features of each task are extracted once (no grad, eval mode) and kept in memory while
that encoder's probes train, then dropped. Results: one row per (encoder, task, probe) with the
mean and sample std over seeds, written atomically to ``<output_dir>/probe_results.json``;
training curves go to TensorBoard (``<output_dir>/tb``).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from jepa_world.atomic import atomic_write_text
from jepa_world.checkpoints.runs import default_run_dir
from jepa_world.config import EnvConfig
from jepa_world.devices import resolve_device
from jepa_world.probes.config import ProbeConfig
from jepa_world.probes.encoders import check_spec, extract_features, load_encoder
from jepa_world.probes.heads import build_probe
from jepa_world.probes.tasks import StateFn, TaskData, build_task
from jepa_world.probes.train import train_probe

RESULTS_FILE = "probe_results.json"
METRIC_NAMES = {"r2": "R^2", "accuracy": "accuracy"}


@dataclass
class ProbeReport:
    """What :func:`run_probes` produced."""

    rows: list[dict]  #: ``encoder, task, probe, metric, mean, std, seeds, values, chance, ...``
    output_dir: Path
    results_path: Path
    seconds: float = 0.0
    encoders: dict[str, str] = field(default_factory=dict)  #: display name -> what was loaded


def prepare_dataset(cfg: ProbeConfig) -> Path:
    """The probe dataset folder, collected first when it holds no dataset (``data.collect``)."""
    from jepa_world.data.collection import ensure_env_data

    return ensure_env_data(cfg.env, cfg.data, cfg.data.seed, cfg.progress,
                           data_dir=cfg.data_dir)


def probe_state(env: EnvConfig) -> tuple[list[int], list[bool] | bool, StateFn | None]:
    """What the state and motion probes read, ``(dims, angle flags, state_fn)``: the task's
    ``proprio[state_dims]``, or (``env.probe_state=goal``) every coordinate of its goal vector
    computed from each frame's sim state, the task's angle coordinates flagged."""
    if env.probe_state == "proprio":
        return list(env.state_dims), env.state_angles, None
    task = env.make(disable_env_checker=True)
    try:
        unwrapped = task.unwrapped
        size = unwrapped.observation_space["desired_goal"].shape[0]
        angles = [i in unwrapped.goal_angles for i in range(size)]
        return list(range(size)), angles, unwrapped.goal_from_sim_states
    finally:
        task.close()  # the renderer only: the goal function needs the model alone


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def format_table(rows: list[dict]) -> str:
    """Markdown table: encoder | task | probe | metric | mean ± std | chance."""
    lines = ["| encoder | task | probe | metric | mean ± std | chance |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        chance = "-" if r.get("chance") is None else f"{r['chance']:.3f}"
        lines.append(f"| {r['encoder']} | {r['task']} | {r['probe']} | "
                     f"{METRIC_NAMES.get(r['metric'], r['metric'])} | "
                     f"{r['mean']:.3f} ± {r['std']:.3f} | {chance} |")
    return "\n".join(lines)


def _tag(*parts: str) -> str:
    return "/".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p) for p in parts)


def probe_encoder_on_task(cfg: ProbeConfig, encoder, task: TaskData, device: torch.device,
                          writer=None, bar=None) -> list[dict]:
    """Rows of every probe kind of ``cfg.probes`` for one encoder and one task."""
    desc = f"encode {encoder.name}/{task.name}"
    feats = [extract_features(encoder, px, cfg.batch_size, device, cfg.progress, desc)
             for px in (task.train_pixels, task.test_pixels)]
    dim = feats[0].shape[-1]
    heads = getattr(encoder.module, "num_heads", 1)
    rows = []
    for kind in cfg.probes:
        values = []
        for seed in cfg.seeds:
            torch.manual_seed(seed)
            head = build_probe(kind, dim, task.num_outputs, num_heads=heads,
                               num_queries=cfg.attentive_queries, depth=cfg.attentive_depth)
            tag = _tag(encoder.name, task.name, kind, f"seed{seed}")

            def log(epoch, loss, score, tag=tag):
                if writer is not None:
                    writer.add_scalar(f"{tag}/train_loss", loss, epoch)
                    writer.add_scalar(f"{tag}/test_{task.metric}", score, epoch)

            run = train_probe(head, feats[0], task.train_targets, feats[1], task.test_targets,
                              task.kind, epochs=cfg.epochs, batch_size=cfg.batch_size,
                              lr=cfg.linear_lr if kind == "linear" else cfg.lr,
                              weight_decay=cfg.weight_decay, seed=seed, device=device,
                              on_epoch=log)
            values.append(run.score)
            if bar is not None:
                bar.set_postfix_str(f"{encoder.name}/{task.name}/{kind}: {run.score:.3f}")
                bar.update(1)
        mean, std = mean_std(values)
        rows.append({"encoder": encoder.name, "task": task.name, "probe": kind,
                     "metric": task.metric, "mean": mean, "std": std, "seeds": list(cfg.seeds),
                     "values": values, "chance": task.chance, "n_train": len(feats[0]),
                     "n_test": len(feats[1]), "tokens": feats[0].shape[1],
                     "source": encoder.source})
    return rows


def run_probes(cfg: ProbeConfig) -> ProbeReport:
    """Run every probe of ``cfg`` and write ``probe_results.json``.

    Raises:
        ConfigError, CheckpointError, DatasetError: bad encoder specs (checked before any work),
            unreadable checkpoints, a missing dataset with ``data.collect=false``.
    """
    started = time.perf_counter()
    for i, spec in enumerate(cfg.encoders):
        check_spec(spec.spec, f"encoders[{i}] ({spec.name})")
    device = resolve_device(cfg.device)  # before anything is written
    out = Path(cfg.output_dir or default_run_dir("probe"))
    out.mkdir(parents=True, exist_ok=True)
    root = prepare_dataset(cfg)
    from jepa_world.data.windows import split_episodes

    train_ids, test_ids = split_episodes(root, cfg.data.test_fraction)
    d = cfg.data
    dims, angles, state_fn = probe_state(cfg.env)
    tasks = [build_task(name, root, train_ids, test_ids, frame_stride=d.frame_stride,
                        clip_frames=d.clip_frames, clip_step=d.clip_step,
                        clip_stride=d.clip_stride, state_dims=dims, angles=angles,
                        state_fn=state_fn) for name in cfg.tasks]
    writer = None
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out / "tb"))
    total = len(cfg.encoders) * len(tasks) * len(cfg.probes) * len(cfg.seeds)
    bar = tqdm(total=total, unit="probe", desc="probes", disable=not cfg.progress,
               file=sys.stderr, dynamic_ncols=True)
    rows: list[dict] = []
    sources: dict[str, str] = {}
    try:
        for i, spec in enumerate(cfg.encoders):
            encoder = load_encoder(spec.spec, spec.name, f"encoders[{i}] ({spec.name})")
            sources[spec.name] = encoder.source
            bar.write(f"encoder {spec.name}: {encoder.source}", file=sys.stderr)
            for task in tasks:
                rows += probe_encoder_on_task(cfg, encoder, task, device, writer, bar)
            del encoder
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    path = atomic_write_text(out / RESULTS_FILE, json.dumps(rows, indent=1) + "\n")
    return ProbeReport(rows, out, path, time.perf_counter() - started, sources)


__all__ = ["RESULTS_FILE", "ProbeReport", "format_table", "mean_std", "prepare_dataset",
           "probe_encoder_on_task", "resolve_device", "run_probes"]
