"""The reach task: Gymnasium API, determinism, goals, success, vector envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import jepa_world  # noqa: F401  (registers the envs)
from jepa_world.envs import resolve_env_id
from jepa_world.envs.reach import wrap_angle

ENV_ID = "jepa_world/Reach-v0"


@pytest.fixture
def env():
    env = gym.make(ENV_ID, image_size=32)
    yield env
    env.close()


def test_registered_on_import_and_passes_the_env_checker(env):
    assert ENV_ID in gym.registry
    check_env(env.unwrapped, skip_render_check=False)


def test_observation_layout(env):
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == obs["goal_pixels"].shape == (32, 32, 3)
    assert obs["pixels"].dtype == np.uint8
    assert obs["proprio"].shape == (4,)
    np.testing.assert_allclose(obs["achieved_goal"], obs["proprio"][:2])
    assert obs["desired_goal"].shape == (2,)
    assert {"success", "max_goal_error", "goal_distance", "sim_state"} <= set(info)
    assert info["goal_error"].shape == obs["desired_goal"].shape  # which coordinate misses
    assert float(info["goal_error"].max()) == pytest.approx(info["max_goal_error"])
    assert obs in env.observation_space


@pytest.mark.parametrize("size, shape", [(64, (64, 64, 3)), ((40, 72), (40, 72, 3)),
                                         (320, (320, 320, 3))])
def test_render_sizes(size, shape):
    env = gym.make(ENV_ID, image_size=size)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == shape
    assert env.render().shape == shape
    env.close()


def test_reset_is_deterministic_under_a_seed(env):
    a, _ = env.reset(seed=7)
    steps_a = [env.step(np.array([0.5, -0.3]))[0] for _ in range(3)]
    b, _ = env.reset(seed=7)
    steps_b = [env.step(np.array([0.5, -0.3]))[0] for _ in range(3)]
    for x, y in zip([a, *steps_a], [b, *steps_b], strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    c, _ = env.reset(seed=8)
    assert not np.array_equal(a["desired_goal"], c["desired_goal"])


def test_goal_image_shows_the_goal_pose(env):
    """The goal image is what the camera sees with the arm at the goal configuration."""
    obs, _ = env.reset(seed=2)
    base = env.unwrapped
    for action in base.goal_actions:
        obs, *_ = env.step(action)
    np.testing.assert_array_equal(obs["pixels"], obs["goal_pixels"])


@pytest.mark.parametrize("seed", range(5))
def test_goal_is_reachable_by_replaying_the_goal_actions(seed):
    env = gym.make(ENV_ID, image_size=16)
    obs, info = env.reset(seed=seed)
    assert not info["success"]
    terminated = False
    for action in env.unwrapped.goal_actions:
        obs, reward, terminated, truncated, info = env.step(action)
        expected = env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"])
        assert reward == pytest.approx(float(expected))
        if terminated:
            break
    assert terminated and info["success"] and info["max_goal_error"] < 0.05
    env.close()


def test_goals_are_a_fixed_number_of_steps_away(env):
    """The default protocol's goals move the arm, but not absurdly far (25 policy steps)."""
    errors = []
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        errors.append(info["max_goal_error"])
    assert 0.1 < np.median(errors) < 2.0


def test_success_logic_wraps_the_shoulder_angle(env):
    base = env.unwrapped
    goal = np.array([np.pi - 0.01, 0.5])
    assert base.is_success(np.array([-np.pi + 0.02, 0.5]), goal)  # 0.03 rad apart across +-pi
    assert not base.is_success(np.array([-np.pi + 0.05, 0.5]), goal)  # 0.06 rad apart
    assert not base.is_success(np.array([np.pi - 0.01, 0.56]), goal)  # elbow 0.06 off
    batch = base.is_success(np.array([[0.0, 0.0], [0.0, 0.049], [0.051, 0.0]]), np.zeros(2))
    np.testing.assert_array_equal(batch, [True, True, False])
    np.testing.assert_allclose(wrap_angle(np.array([3 * np.pi / 2, -3 * np.pi / 2])),
                               [-np.pi / 2, np.pi / 2])
    reward = base.compute_reward(np.array([[0.3, 0.4]]), np.zeros((1, 2)), None)
    np.testing.assert_allclose(reward, [-0.5], rtol=1e-6)


def test_episode_truncates_at_the_step_budget():
    env = gym.make(ENV_ID, image_size=16, terminate_on_success=False)
    env.reset(seed=0)
    for t in range(50):
        *_, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        assert not terminated
        assert truncated == (t == 49)
    env.close()


def test_sim_state_round_trip(env):
    env.reset(seed=4)
    base = env.unwrapped
    state = base.get_sim_state()
    first = [env.step(np.array([1.0, -1.0]))[0]["pixels"] for _ in range(3)]
    base.set_sim_state(state)
    again = [env.step(np.array([1.0, -1.0]))[0]["pixels"] for _ in range(3)]
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="sim state must have shape"):
        base.set_sim_state(np.zeros(3))


def test_bad_actions_are_rejected(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(2,\)"):
        env.unwrapped.step(np.zeros(3))
    state = env.unwrapped.get_sim_state()
    obs, _, terminated, truncated, info = env.unwrapped.step(np.array([np.nan, 0.0]))
    assert truncated and not terminated and "NaN or inf" in info["error"]  # the episode ends
    np.testing.assert_array_equal(env.unwrapped.get_sim_state(), state)  # nothing simulated
    obs, _, _, truncated, info = env.unwrapped.step(np.array([1e30, -np.float32(3e38)]))
    assert not truncated and "error" not in info  # huge actions are clipped to the bounds
    assert np.all(np.isfinite(obs["proprio"]))


def test_unknown_env_lists_the_known_ones():
    assert resolve_env_id("reach") == ENV_ID
    with pytest.raises(KeyError, match="known envs: reach"):
        resolve_env_id("pushT")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_match_single_envs(mode):
    kwargs = {"vector_kwargs": {"context": "forkserver"}} if mode == "async" else {}
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, image_size=24, **kwargs)
    obs, _ = vec.reset(seed=[11, 12])
    actions = np.array([[0.4, -0.2], [-0.7, 0.9]], np.float32)
    obs, *_ = vec.step(actions)
    vec.close()
    for k, seed in enumerate([11, 12]):
        env = gym.make(ENV_ID, image_size=24)
        env.reset(seed=seed)
        single, *_ = env.step(actions[k])
        env.close()
        np.testing.assert_array_equal(obs["pixels"][k], single["pixels"])
        np.testing.assert_array_equal(obs["desired_goal"][k], single["desired_goal"])
