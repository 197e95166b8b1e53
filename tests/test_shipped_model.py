"""The reach world model shipped in the package: it loads, fits the task, and sees the arm."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import jepa_world.envs  # noqa: F401  (registers the envs)
from jepa_world.envs.protocol import EvalProtocol
from jepa_world.envs.reach import wrap_angle
from jepa_world.planning.config import PlanConfig, shipped_model_dir
from jepa_world.world_model import WorldModel


def test_shipped_model_fits_the_default_plan_command():
    folder = shipped_model_dir("reach")
    assert folder == PlanConfig().model_dir
    assert (folder / "model.safetensors").stat().st_size < 8e6  # "a few MB"
    model = WorldModel.from_pretrained(folder)
    cfg = model.config
    assert cfg.env_id == "jepa_world/Reach-v0" and cfg.image_size in (64, (64, 64))
    assert cfg.frameskip == EvalProtocol.action_repeat and cfg.action_dim == 2
    assert model.tokens_per_frame == 1  # compact latent: plans in about a second on a CPU


def test_shipped_model_reads_the_arm_pose_from_pixels():
    """Its proprio head reads the joint angles from single rendered frames it never saw."""
    torch.set_num_threads(1)
    model = WorldModel.from_pretrained(shipped_model_dir("reach")).eval()
    env = gym.make("jepa_world/Reach-v0", image_size=64)
    frames, angles = [], []
    for seed in range(5000, 5024):
        obs, _ = env.reset(seed=seed)
        frames.append(obs["goal_pixels"])
        angles.append(obs["desired_goal"])
    env.close()
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)[:, None]  # [24, 1, 3, H, W]
    with torch.no_grad():
        read = model.read_proprio(model.encode(pixels))[:, 0, :2].numpy()
    err = np.abs(wrap_angle(read - np.stack(angles)))
    assert np.median(err) < 0.1, np.median(err, axis=0)
