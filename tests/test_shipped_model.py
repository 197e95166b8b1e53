"""The reach world model shipped in the package: it loads, fits the task, and sees the arm."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
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
    # what the default command's speed rests on: a key / value cache across imagined steps and
    # one token an imagined frame (README, *Planning speed*)
    assert cfg.imagination == "cached" and model.predictor.num_cond_tokens == 0


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


SHIPPED_TASKS = [("reach", "jepa_world/Reach-v0"), ("maze", "jepa_world/PointMaze-v0"),
                 ("tworoom", "jepa_world/TwoRoom-v0"), ("push", "jepa_world/Push-v0")]


@pytest.mark.parametrize("name, env_id", SHIPPED_TASKS)
def test_every_shipped_model_has_a_decoder_that_draws_unseen_frames(name, env_id):
    """Its decoder/ attaches on load, is small, and decodes encoded frames of fresh episodes:
    on the object pixels (those unlike the task's median frame: the arm, the agent, the disc
    and block) it is far closer to them than the median frame is, and no worse elsewhere."""
    torch.set_num_threads(1)
    folder = shipped_model_dir(name)
    assert (folder / "decoder" / "model.safetensors").stat().st_size < 2e6
    model = WorldModel.from_pretrained(folder).eval()
    assert model.decoder is not None
    env = gym.make(env_id, image_size=64)
    frames = []
    for seed in range(7000, 7012):
        obs, _ = env.reset(seed=seed)
        frames += [obs["pixels"], obs["goal_pixels"]]
    env.close()
    truth = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255  # [24, 3, H, W]
    with torch.no_grad():
        decoded = model.decode(model.encode(truth[:, None]))[:, 0]
    median = truth.median(dim=0).values.expand_as(truth)
    objects = ((truth - median).abs().amax(dim=1, keepdim=True) > 0.05).expand_as(truth)
    error, floor = (decoded - truth).abs(), (median - truth).abs()
    assert float(error[objects].mean()) < 0.6 * float(floor[objects].mean())
    assert float(error[~objects].mean()) < 0.05


def test_the_shipped_push_model_keeps_the_block_in_its_latent():
    """A ridge readout fit on 80 frames of fresh episodes reads the block's pose, its angle
    included, from the one-token latent of 40 others. The conv encoder is what keeps the angle:
    the previous model's frozen ViT latent gave the angle's sine and cosine R^2 -0.43 / 0.04
    (33% of frames within pi/9)."""
    torch.set_num_threads(1)
    model = WorldModel.from_pretrained("push").float().eval()
    env = gym.make("jepa_world/Push-v0", image_size=64)
    frames, blocks = [], []
    for seed in range(7000, 7060):
        obs, _ = env.reset(seed=seed)
        frames += [obs["pixels"], obs["goal_pixels"]]
        blocks += [obs["achieved_goal"], obs["desired_goal"]]
    env.close()
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)[:, None]
    with torch.no_grad():
        latents = model.encode(pixels)[:, 0].flatten(1).double().numpy()
    pose = np.stack(blocks)
    target = np.c_[pose[:, :2], np.sin(pose[:, 2]), np.cos(pose[:, 2])]
    features = np.c_[latents, np.ones(len(latents))]
    fit, test = slice(0, 80), slice(80, 120)
    weights = np.linalg.solve(features[fit].T @ features[fit] + np.eye(features.shape[1]),
                              features[fit].T @ target[fit])
    read = features[test] @ weights
    r2 = 1 - ((read - target[test]) ** 2).mean(0) / target[test].var(0)
    assert r2.min() > 0.9, r2  # measured 0.98 / 0.99 / 0.98 / 0.97
    angle_error = np.angle(np.exp(1j * (np.arctan2(read[:, 2], read[:, 3]) - pose[test, 2])))
    assert np.mean(np.abs(angle_error) <= np.pi / 9) > 0.85  # measured 0.975
