"""Latent objective, MPC loop, evaluation statistics, videos and ``python -m jepa_world.plan``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import jepa_world.envs  # noqa: F401  (registers the envs)
from jepa_world.errors import ConfigError
from jepa_world.models.pooling import PoolerConfig
from jepa_world.models.presets import ACPredictorConfig, EncoderConfig
from jepa_world.planners import ActionBounds, make_planner
from jepa_world.planning.agents import BlindAgent, OracleAgent, WorldModelAgent
from jepa_world.planning.config import PlanConfig
from jepa_world.planning.evaluate import summarize, wilson_interval
from jepa_world.planning.mpc import run_episode
from jepa_world.planning.objectives import LatentObjective
from jepa_world.planning.visualize import FrameBank, compose_frames, write_video
from jepa_world.world_model import WorldModel, WorldModelConfig
from tests.conftest import PYTHON, python_env

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_world_model(image_size: int = 32, frameskip: int = 5) -> WorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(
        encoder=EncoderConfig(img_size=image_size, patch_size=8, num_frames=2, embed_dim=32,
                              depth=1, num_heads=2, mlp_hidden_dim=64),
        predictor=ACPredictorConfig(predictor_dim=32, depth=1, num_heads=2, mlp_hidden_dim=64),
        pooler=PoolerConfig(num_tokens=2, num_heads=2), action_dim=2, proprio_dim=4,
        frameskip=frameskip, history_length=2, proprio_head=True, env_id="jepa_world/Reach-v0")
    return WorldModel(cfg).eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wm") / "world_model"
    tiny_world_model().save_pretrained(folder)
    return folder


def test_latent_objective_costs_match_a_manual_rollout_and_chunking():
    model = tiny_world_model()
    history = torch.randn(2, 2, 2, 32)
    goal = torch.randn(2, 2, 32)
    kw = dict(history_actions=torch.rand(2, 1, 10), proprio=torch.randn(2, 2, 4))
    actions = torch.rand(2, 7, 3, 2) * 2 - 1
    with torch.no_grad():
        full = LatentObjective(model, history, goal, **kw, reduce="sum", chunk_size=100)(actions)
        chunked = LatentObjective(model, history, goal, **kw, reduce="sum", chunk_size=3)(actions)
        steps = actions.repeat_interleave(1, dim=-1).repeat(1, 1, 1, 5)  # tile 5 env actions
        pred = model.rollout(history, steps, kw["proprio"], history_actions=kw["history_actions"])
        manual = (pred - goal[:, None, None]).abs().mean((-2, -1)).sum(-1)
        final = LatentObjective(model, history, goal, **kw, reduce="final")(actions)
    assert full.shape == (2, 7)
    torch.testing.assert_close(full, chunked)
    torch.testing.assert_close(full, manual)
    torch.testing.assert_close(final, (pred[:, :, -1] - goal[:, None]).abs().mean((-2, -1)))


def test_latent_objective_is_differentiable_and_validates_shapes():
    model = tiny_world_model()
    objective = LatentObjective(model, torch.randn(1, 1, 2, 32), torch.randn(1, 2, 32),
                                proprio=torch.randn(1, 1, 4))
    actions = torch.zeros(1, 2, 3, 2, requires_grad=True)
    objective(actions).sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"goal must be \[B, N, D\] = \[1, 2, 32\]"):
        LatentObjective(model, torch.randn(1, 1, 2, 32), torch.randn(1, 64, 32))
    with pytest.raises(ValueError, match=r"actions must be \[B, S, H, 2\]"):
        objective(torch.zeros(1, 2, 3, 10))


def test_proprio_term_reads_the_goal_image_with_the_proprio_head():
    model = tiny_world_model()
    model.set_proprio_stats(torch.zeros(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    history, goal = torch.randn(1, 1, 2, 32), torch.randn(1, 2, 32)
    actions = torch.rand(1, 5, 2, 2) * 2 - 1
    kw = dict(proprio=torch.randn(1, 1, 4), reduce="final")
    with torch.no_grad():
        plain = LatentObjective(model, history, goal, **kw)(actions)
        mixed = LatentObjective(model, history, goal, **kw, proprio_weight=0.5,
                                proprio_dims=[0, 1])(actions)
        steps = actions.repeat(1, 1, 1, 5)
        pred = model.rollout(history, steps, kw["proprio"], return_proprio=True)
        gap = (pred.proprio[:, :, -1, :2] - model.read_proprio(goal)[:, None, :2]) / \
            torch.tensor([1.0, 2.0])
    torch.testing.assert_close(mixed, plain + 0.5 * gap.abs().mean(-1))
    with pytest.raises(ValueError, match="proprio_dims"):
        LatentObjective(model, history, goal, **kw, proprio_weight=1.0, proprio_dims=[7])


def test_wilson_interval():
    lo, hi = wilson_interval(45, 50)
    assert 0.78 < lo < 0.80 and 0.95 < hi < 0.97
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-3)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def make_env(image_size=32, budget=50):
    return gym.make("jepa_world/Reach-v0", image_size=image_size, max_episode_steps=budget)


def test_mpc_with_the_oracle_reaches_goals_and_random_does_not():
    env = make_env()
    bounds = ActionBounds.from_space(env.action_space)
    cem = make_planner("cem", bounds, samples=64, iterations=4, elites=8, horizon=5)
    results = [run_episode(env, OracleAgent(5), cem, seed, 5, 50, record=(seed == 0),
                           generator=torch.Generator().manual_seed(seed)) for seed in range(3)]
    assert all(r.success for r in results)
    assert len(results[0].frames) == results[0].steps + 1
    assert all(r.steps <= 50 and len(r.plan_seconds) == len(r.plans) for r in results)
    rand = make_planner("random", bounds, horizon=5)
    blind = [run_episode(env, BlindAgent(), rand, seed, 5, 50,
                         generator=torch.Generator().manual_seed(seed)) for seed in range(3)]
    assert sum(r.success for r in blind) < 3
    assert all(r.steps == 50 or r.success for r in blind)
    summary = summarize("oracle", "cem", results)
    assert summary.success_rate == 1.0 and summary.replans == sum(len(r.plans) for r in results)


def test_world_model_agent_keeps_a_bounded_history():
    env = make_env()
    model = tiny_world_model()
    agent = WorldModelAgent(model)
    obs, _ = env.reset(seed=0)
    agent.reset(env, obs)
    assert agent.latents.shape == (1, 1, 2, 32) and agent.actions.shape == (1, 0, 10)
    for _ in range(3):
        obs, *_ = env.step(np.zeros(2, np.float32))
        agent.observe(obs, np.array([0.5, -0.5], np.float32))
    assert agent.latents.shape == (1, 2, 2, 32) and agent.actions.shape == (1, 1, 10)
    assert agent.proprio.shape == (1, 2, 4)
    assert torch.equal(agent.actions[0, 0], torch.tensor([0.5, -0.5] * 5))
    assert agent.imagine(torch.zeros(4, 2)).shape == (4, 2, 32)


def test_frame_bank_and_video(tmp_path):
    frames = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(4)])
    bank = FrameBank(frames, torch.arange(4.0)[:, None, None].expand(4, 1, 3))
    near = bank.nearest(torch.tensor([[[2.1, 2.1, 2.1]], [[0.2, 0.0, 0.1]]]))
    assert near.shape == (2, 8, 8, 3) and near[0, 0, 0, 0] == 2 and near[1, 0, 0, 0] == 0
    panels = compose_frames(list(frames[:2]), frames[3], [None, frames[1]], scale=2)
    assert panels[0].shape == (16, 2 * (3 * 8 + 4), 3)
    path = write_video(tmp_path / "v.gif", panels)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="video format"):
        write_video(tmp_path / "v.avi", panels)


def test_plan_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="^planner: unknown planner 'ilqr'"):
        PlanConfig(planner={"name": "ilqr"})
    with pytest.raises(ConfigError, match=r"^planner\.samples must be an integer >= 1, got 0"):
        PlanConfig(planner={"name": "cem", "samples": 0})
    with pytest.raises(ConfigError, match=r"^planner\.temperature must be "):
        PlanConfig(planner={"name": "mppi", "temperature": -1.0})
    with pytest.raises(ConfigError, match="^agents: "):
        PlanConfig(agents=["human"])
    with pytest.raises(ConfigError, match="^replan_every: "):
        PlanConfig(replan_every=9)


def run_plan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "jepa_world.plan", *args], cwd=cwd,
                          env=dict(python_env(), OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_plan_cli_writes_summary_videos_and_rejects_bad_input(model_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_plan(f"world_model={model_dir}", "env.image_size=32", "episodes=2", "seed=7",
                    "videos=1", "agents=[world_model,random]", "planner.samples=16",
                    "planner.iterations=2", "planner.elites=4", f"output_dir={out}",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 2 and 0.0 <= summary["success_rate"] <= 1.0
    assert summary["plan_seconds_median"] > 0
    assert summary["protocol"]["step_budget"] == 50 and summary["protocol"]["first_seed"] == 7
    assert set(summary["agents"]) == {"world_model", "random"}
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        "random_seed7.gif", "world_model_seed7.gif"]
    assert "| world_model | cem |" in proc.stdout and f"{out}/summary.json" in proc.stdout

    proc = run_plan(f"world_model={model_dir}", "env.image_size=64", cwd=tmp_path)
    assert proc.returncode == 2 and "env.image_size: the model" in proc.stderr
    proc = run_plan(f"world_model={tmp_path / 'missing'}", cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_plan("planner=ilqr", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown planner 'ilqr'" in proc.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"junk")
    proc = run_plan(f"world_model={tmp_path / 'bad'}", "env.image_size=32", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: world_model: ")
