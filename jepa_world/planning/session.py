"""One ``python -m jepa_world.plan`` run: build env, planner and agents, evaluate each agent on
the same seeded episodes, write videos, ``summary.json`` and TensorBoard scalars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from jepa_world.atomic import atomic_write_text
from jepa_world.checkpoints import CheckpointError
from jepa_world.checkpoints.runs import default_run_dir
from jepa_world.devices import resolve_device, use_bf16
from jepa_world.errors import ConfigError
from jepa_world.models.positions import as_pair
from jepa_world.planners import ActionBounds, make_planner
from jepa_world.planning.agents import AGENTS, AgentSettings, WorldModelAgent
from jepa_world.planning.config import PlanConfig
from jepa_world.planning.evaluate import AgentSummary, evaluate
from jepa_world.planning.visualize import (
    FrameBank,
    build_frame_bank,
    decoded_frames,
    episode_panels,
    write_video,
)
from jepa_world.world_model import WorldModel

SUMMARY_FILE = "summary.json"


def load_world_model(cfg: PlanConfig, device: torch.device) -> WorldModel:
    """The world model of ``cfg.model_dir``, checked against the env config."""
    folder = cfg.model_dir
    if not folder.exists():
        hint = "check the path" if cfg.world_model else (
            "train one with `python -m jepa_world.train_wm` and pass "
            "world_model=<run_dir>/world_model")
        raise ConfigError(f"world_model: {folder} does not exist; {hint}")
    try:
        model = WorldModel.from_pretrained(folder, map_location=device)
    except CheckpointError as err:
        raise ConfigError(f"world_model: {err}") from err
    mc = model.config
    if mc.env_id not in (None, cfg.env.task_id):
        raise ConfigError(f"world_model: {folder} was trained on {mc.env_id}, not "
                          f"{cfg.env.task_id}; pass env=<its env> or another model")
    size = as_pair(mc.image_size)
    if size != (cfg.env.image_size, cfg.env.image_size):
        raise ConfigError(f"env.image_size: the model at {folder} sees {size[0]}x{size[1]} "
                          f"frames, not {cfg.env.image_size}; set env.image_size={size[0]}")
    if mc.frameskip != cfg.action_repeat:
        raise ConfigError(f"action_repeat: the model at {folder} predicts {mc.frameskip} env "
                          f"steps ahead per action; set action_repeat={mc.frameskip}")
    return model.eval()


def plan_episodes(cfg: PlanConfig) -> dict[str, Any]:
    """Evaluate every agent of ``cfg`` and write the outputs; returns the summary dict.

    Outputs in ``cfg.output_dir``: ``summary.json``, ``videos/<agent>_seed<k>.<fmt>``,
    ``tb/`` (TensorBoard). Raises :class:`ConfigError` for a missing or mismatched model.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir or default_run_dir("plan"))
    device = resolve_device(cfg.device)
    model = load_world_model(cfg, device) if "world_model" in cfg.agents else None
    envs = [cfg.env.make(max_episode_steps=cfg.step_budget)]
    if "oracle" in cfg.agents and getattr(envs[0].unwrapped, "model", None) is None:
        envs[0].close()
        raise ConfigError(f"agents: the oracle plans with the env's MuJoCo simulator, and "
                          f"{cfg.env.task_id} has none; drop oracle from agents")
    settings = AgentSettings(model, cfg.cost, cfg.reduce, cfg.chunk_size, cfg.proprio_weight,
                             cfg.proprio_dims, cfg.action_repeat)
    writer = _writer(out / "tb") if cfg.tensorboard else None
    out.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, AgentSummary] = {}
    try:  # the episodes planned together each have an env and an agent
        envs += [cfg.env.make(max_episode_steps=cfg.step_budget)
                 for _ in range(min(cfg.batch_episodes, cfg.episodes) - 1)]
        for name in cfg.agents:
            agents = [AGENTS[name].build(settings) for _ in envs]
            bank = _frame_bank(cfg, agents[0]) if name == "world_model" and cfg.videos else None
            summaries[name] = _evaluate_agent(cfg, envs, name, agents, bank, writer, out,
                                              device)
    finally:
        for env in envs:
            env.close()
        if writer is not None:
            writer.close()
    report = _report(cfg, summaries, model is not None, device)
    atomic_write_text(out / SUMMARY_FILE, json.dumps(report, indent=1))
    report["output_dir"] = str(out)
    return report


def _frame_bank(cfg: PlanConfig, agent: WorldModelAgent) -> FrameBank | Callable:
    """How the videos show what the model imagines: its decoder (``imagined_panel=decoded``, or
    ``auto`` with a decoder attached), else the nearest of a bank of exploration frames."""
    has_decoder = agent.model.decoder is not None
    if cfg.imagined_panel == "decoded" and not has_decoder:
        raise ConfigError("imagined_panel: decoded needs a world model with a decoder/ folder "
                          "(train one with `python -m jepa_world.decode`); or use nearest")
    if has_decoder and cfg.imagined_panel != "nearest":
        return decoded_frames(agent.model)
    env = cfg.env.make()
    try:
        return build_frame_bank(env, agent.encode_frames)
    finally:
        env.close()


def _evaluate_agent(cfg: PlanConfig, envs: list, name: str, agents: list, bank: Any,
                    writer: Any, out: Path, device: torch.device) -> AgentSummary:
    """Every seeded episode of one agent (random actions for ``random``), logged and filmed;
    ``len(envs)`` episodes at a time, planned together."""
    planner_name = "random" if name == "random" else cfg.planner_name
    fields = {"horizon": cfg.planner.get("horizon", 5)} if name == "random" \
        else cfg.planner_fields
    bounds = ActionBounds.from_space(envs[0].action_space, device=device)
    planner = make_planner(planner_name, bounds, **fields)

    def on_episode(i: int, result: Any) -> None:
        if writer is not None:
            writer.add_scalar(f"{name}/success", float(result.success), i)
            writer.add_scalar(f"{name}/steps", result.steps, i)
            writer.add_scalar(f"{name}/final_error", result.final_error, i)
        if result.frames:
            _write_optional_video(out / "videos" / f"{name}_seed{result.seed}.{cfg.video_format}",
                                  episode_panels(result, bank, cfg.action_repeat))

    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    with torch.autocast(device.type, dtype=torch.bfloat16,
                        enabled=use_bf16(cfg.precision, device)):
        summary = evaluate(envs, agents, planner, seeds, cfg.action_repeat, cfg.step_budget,
                           replan_every=cfg.replan_every, warm_start=cfg.warm_start,
                           planner_seed=0, record=lambda i: i < cfg.videos,
                           on_episode=on_episode, progress=cfg.progress,
                           planner_name=planner_name)
    if writer is not None:
        writer.add_scalar(f"{name}/success_rate", summary.success_rate, 0)
        writer.add_scalar(f"{name}/plan_seconds_median", summary.plan_seconds_median, 0)
    return summary


def _write_optional_video(path: Path, frames: list) -> None:
    """Videos are optional: a failed write (no ffmpeg, disk full) is a one-line warning and never
    costs the run its results."""
    try:
        write_video(path, frames)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        print(f"warning: video {path} not written ({type(exc).__name__}: {reason}); "
              f"the results are unaffected", file=sys.stderr)


def _report(cfg: PlanConfig, summaries: dict[str, AgentSummary], used_model: bool,
            device: torch.device) -> dict[str, Any]:
    first = summaries[cfg.agents[0]]
    return {
        "env": cfg.env.task_id, "model": str(cfg.model_dir) if used_model else None,
        "planner": cfg.planner, "protocol": cfg.protocol(),
        # the first agent's numbers at the top level (the headline), all agents below
        "agent": first.agent, "success_rate": first.success_rate,
        "success_ci95": first.success_ci95, "episodes": first.episodes,
        "plan_seconds_median": first.plan_seconds_median,
        "plan_seconds_mean": first.plan_seconds_mean,
        "steps_to_success_median": first.steps_to_success_median,
        "agents": {k: v.to_dict() for k, v in summaries.items()},
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "bf16": use_bf16(cfg.precision, device),
    }


def format_table(report: dict[str, Any]) -> str:
    """Markdown table of the agents side by side."""
    lines = ["| agent | planner | success | 95% CI | plan s (median / mean) | steps to success "
             "(median) |", "|---|---|---|---|---|---|"]
    for s in report["agents"].values():
        lo, hi = s["success_ci95"]
        steps = "-" if s["steps_to_success_median"] is None else \
            f"{s['steps_to_success_median']:.0f}"
        lines.append(f"| {s['agent']} | {s['planner']} | {s['successes']}/{s['episodes']} "
                     f"({s['success_rate']:.0%}) | {lo:.2f}-{hi:.2f} | "
                     f"{s['plan_seconds_median']:.3f} / {s['plan_seconds_mean']:.3f} | {steps} |")
    return "\n".join(lines)


def _writer(path: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


__all__ = ["SUMMARY_FILE", "format_table", "load_world_model", "plan_episodes"]
