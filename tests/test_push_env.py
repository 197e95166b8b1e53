"""``jepa_world/Push-v0``: reachable goals that need pushing, success at the tolerance edges (the
angle's wrap included), the block moved only by contact, the contact exploration policy, the
geometry the scripted pusher assumes, and the probe's block-pose state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import jepa_world  # noqa: F401  (registers the envs)
from jepa_world.config import CollectConfig, EnvConfig, PolicyConfig
from jepa_world.envs import push_contact
from jepa_world.envs.exploration import make_policy
from jepa_world.envs.goal_env import wrap_angle
from jepa_world.errors import ConfigError

PUSH = "jepa_world/Push-v0"


@pytest.fixture
def env():
    env = gym.make(PUSH, image_size=32)
    yield env
    env.close()


def _place(task, pusher, block):
    import mujoco

    task.data.qpos[:] = [*pusher, *block]
    task.data.qvel[:] = 0.0
    mujoco.mj_forward(task.model, task.data)


def test_stored_goal_actions_reach_the_goal(env):
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert not info["success"]
        for action in env.unwrapped.goal_actions:
            obs, _, terminated, truncated, info = env.step(action)
            if info["success"]:
                break
            assert not truncated
        assert info["success"], (seed, obs["achieved_goal"], obs["desired_goal"])


def test_goals_need_real_pushing(env):
    task, moved, turned = env.unwrapped, [], []
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        start, goal = obs["achieved_goal"], obs["desired_goal"]
        moved.append(np.linalg.norm(goal[:2] - start[:2]))
        turned.append(abs(wrap_angle(goal[2] - start[2])))
    assert min(moved) > task.success_tolerance and min(turned) > task.angle_tolerance
    assert np.median(moved) >= task.MIN_MOVE and np.median(turned) >= task.MIN_TURN


def test_success_at_the_position_and_angle_edges_and_across_the_wrap(env):
    env.reset(seed=0)
    task = env.unwrapped
    tol, angle = task.success_tolerance, task.angle_tolerance
    goal = np.array([0.3, -0.2, 1.0])
    assert task.is_success(goal + [tol - 1e-3, -(tol - 1e-3), angle - 1e-3], goal)
    assert not task.is_success(goal + [tol + 1e-3, 0.0, 0.0], goal)
    assert not task.is_success(goal + [0.0, -(tol + 1e-3), 0.0], goal)
    assert not task.is_success(goal + [0.0, 0.0, angle + 1e-3], goal)
    near_pi = np.array([0.0, 0.0, np.pi - 0.1])
    assert task.is_success([0.0, 0.0, -np.pi + angle - 0.1 - 1e-3], near_pi)  # across +-pi
    assert not task.is_success([0.0, 0.0, -np.pi + angle - 0.1 + 1e-3], near_pi)
    # the step info judges success the same way (one owner: success_tolerances)
    np.testing.assert_allclose(task.success_tolerances(), [tol, tol, angle])
    batch = np.array([[tol / 2, 0, angle / 2], [0, 0, angle * 1.5]]) + goal
    np.testing.assert_array_equal(task.is_success(batch, goal), [True, False])


def test_the_block_moves_only_when_pushed(env):
    env.reset(seed=0)
    task = env.unwrapped
    _place(task, [-0.8, -0.8], [0.3, 0.3, 0.5])
    for _ in range(30):  # the disc pressed into its corner, far from the block
        obs = env.step(np.array([-1.0, -1.0], np.float32))[0]
    np.testing.assert_array_equal(obs["achieved_goal"], np.float32([0.3, 0.3, 0.5]))
    _place(task, [-0.5, 0.3], [0.3, 0.3, 0.0])
    for _ in range(15):  # pushed east into the stem's west side
        obs = env.step(np.array([1.0, 0.0], np.float32))[0]
    assert obs["achieved_goal"][0] > 0.4
    for _ in range(6):  # the disc pulled back: the block stops within a few steps
        obs = env.step(np.array([-1.0, 0.0], np.float32))[0]
    rest = obs["achieved_goal"].copy()
    for _ in range(10):
        obs = env.step(np.array([-1.0, 0.0], np.float32))[0]
    np.testing.assert_allclose(obs["achieved_goal"], rest, atol=1e-6)


def test_resets_are_deterministic(env):
    first, _ = env.reset(seed=3)
    actions = env.unwrapped.goal_actions.copy()
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(actions, env.unwrapped.goal_actions)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])


def test_the_scripted_pusher_assumes_the_models_geometry(env):
    model = env.unwrapped.model
    for name, (cx, cy, hx, hy) in zip(("block_bar", "block_stem"), push_contact.BLOCK_BOXES,
                                  strict=True):
        np.testing.assert_allclose(model.geom(name).pos[:2], [cx, cy])
        np.testing.assert_allclose(model.geom(name).size[:2], [hx, hy])
    assert model.geom("pusher").size[0] == pytest.approx(push_contact.PUSHER_RADIUS)


def test_the_goal_keypoints_are_the_blocks_extreme_points_in_the_simulator(env):
    import mujoco

    task, rng = env.unwrapped, np.random.default_rng(0)
    bar, stem = task.data.geom("block_bar"), task.data.geom("block_stem")
    for _ in range(5):
        block = [*rng.uniform(-0.5, 0.5, 2), rng.uniform(-np.pi, np.pi)]
        _place(task, [0.9, 0.9], block)
        mujoco.mj_forward(task.model, task.data)
        ends = [bar.xpos + bar.xmat.reshape(3, 3) @ [side * 0.24, 0, 0] for side in (-1, 1)]
        tip = stem.xpos + stem.xmat.reshape(3, 3) @ [0, -0.18, 0]
        points = task.goal_keypoints(task.goal_from_qpos(task.data.qpos))
        np.testing.assert_allclose(points, np.stack([*ends, tip])[:, :2], atol=1e-6)
    assert task.goal_keypoints(np.zeros((4, 2, 3))).shape == (4, 2, 3, 2)


def test_the_contact_policy_pushes_the_block_and_needs_the_observation(env):
    space = env.action_space
    moved = steps = 0
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        policy = make_policy("contact", space.low, space.high, np.random.default_rng(seed))
        for _ in range(60):
            before = obs["achieved_goal"]
            action = policy(obs)
            assert action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
            obs = env.step(action)[0]
            moved += np.abs(obs["achieved_goal"] - before).max() > 1e-4
            steps += 1
    assert moved / steps > 0.3, moved / steps
    with pytest.raises(ValueError, match="reads the observation"):
        make_policy("contact", space.low, space.high, 0)()


def test_the_collect_policy_defaults_to_the_tasks_own():
    from omegaconf import OmegaConf

    from tests.conftest import REPO

    yaml = OmegaConf.load(REPO / "configs" / "env" / "push.yaml")
    assert yaml.exploration == "contact" and yaml.probe_state == "goal"
    push = CollectConfig(env=EnvConfig(name="push", frame_skip=5, exploration="contact"),
                         data_dir="unused")
    reach = CollectConfig(env=EnvConfig(name="reach"), data_dir="unused")
    assert push.policy.name == "contact" and reach.policy.name == "correlated"
    with pytest.raises(ConfigError, match="policy.name: contact reads the observations of"):
        CollectConfig(env=EnvConfig(name="reach"), policy=PolicyConfig(name="contact"))


def test_goal_vectors_of_stored_sim_states_match_the_observations(env):
    obs, info = env.reset(seed=1)
    states, goals = [info["sim_state"]], [obs["achieved_goal"]]
    for action in env.unwrapped.goal_actions[:10]:
        obs, _, _, _, info = env.step(action)
        states.append(info["sim_state"])
        goals.append(obs["achieved_goal"])
    np.testing.assert_allclose(env.unwrapped.goal_from_sim_states(np.stack(states)),
                               np.stack(goals), atol=1e-6)


def test_the_probe_reads_the_block_pose_with_its_angle_as_sin_and_cos():
    from jepa_world.probes.runner import probe_state
    from jepa_world.probes.tasks import state_targets, target_names

    dims, angles, state_fn = probe_state(EnvConfig(name="push", frame_skip=5,
                                                   probe_state="goal"))
    assert dims == [0, 1, 2] and angles == [False, False, True] and state_fn is not None
    assert target_names(["x", "y", "theta"], angles) == ["x", "y", "sin theta", "cos theta"]
    q = np.array([[0.2, -0.1, np.pi / 2]])
    np.testing.assert_allclose(state_targets(q, angles), [[0.2, -0.1, 1.0, 0.0]], atol=1e-7)
    assert probe_state(EnvConfig(name="reach"))[:2] == ([0, 1], True)
