"""The simulator oracle: batched MuJoCo rollouts agree with stepping the env, and CEM uses it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import jepa_world.envs  # noqa: F401  (registers the envs)
from jepa_world.planners import ActionBounds, make_planner, shift_plan
from jepa_world.planning import SimulatorObjective

torch.set_num_threads(1)

ENV_ID = "jepa_world/Reach-v0"


def make_env(seed: int):
    env = gym.make(ENV_ID, image_size=16, terminate_on_success=False)
    env.reset(seed=seed)
    return env


@pytest.fixture
def envs():
    envs = [make_env(seed) for seed in (0, 1)]
    yield envs
    for env in envs:
        env.close()


def step_sequentially(env, start: np.ndarray, actions: np.ndarray, repeat: int) -> np.ndarray:
    """Goal vectors ``[H, G]`` (float64) after each of ``actions [H, A]`` held ``repeat``
    env steps, stepping the real env from ``start``."""
    unwrapped = env.unwrapped
    unwrapped.set_sim_state(start)
    goals = []
    for action in actions:
        for _ in range(repeat):
            unwrapped.step(action)
        goals.append(unwrapped.goal_from_qpos(unwrapped.data.qpos))
    return np.stack(goals)


@pytest.mark.parametrize("reduce", ["final", "sum"])
def test_batched_rollouts_equal_sequential_env_steps(envs, reduce):
    repeat, (s, h) = 2, (3, 4)
    objective = SimulatorObjective.from_envs(envs, action_repeat=repeat, reduce=reduce)
    starts = objective.states.copy()
    actions = ActionBounds.from_space(envs[0].action_space).sample_uniform(
        (len(envs), s, h), torch.Generator().manual_seed(0))
    achieved = objective.simulate(actions)
    costs = objective(actions)
    assert achieved.shape == (2, s, h, 2) and costs.shape == (2, s)
    assert objective.env_steps == 2 * (2 * s * h * repeat)  # simulate() and __call__
    for b, env in enumerate(envs):
        desired = env.unwrapped.desired_goal
        for k in range(s):
            expected = step_sequentially(env, starts[b], actions[b, k].numpy(), repeat)
            np.testing.assert_allclose(achieved[b, k], expected, rtol=0, atol=1e-9)
            distance = np.linalg.norm(env.unwrapped.goal_error(expected, desired), axis=-1)
            want = distance[-1] if reduce == "final" else distance.sum()
            assert costs[b, k].item() == pytest.approx(want, abs=1e-6)


def test_oracle_matches_gymnasium_step_rewards():
    env = make_env(3)
    objective = SimulatorObjective.from_envs([env], action_repeat=5)
    actions = torch.tensor([[[[0.5, -1.0], [1.0, 0.3], [-0.2, 0.8]]]])  # [1, 1, 3, 2]
    for action in actions[0, 0]:
        for _ in range(5):
            _, reward, *_ = env.step(action.numpy())
    assert objective(actions)[0, 0].item() == pytest.approx(-reward, abs=1e-5)
    env.close()


def test_goal_from_qpos_is_vectorised_and_matches_the_observation(envs):
    unwrapped = envs[0].unwrapped
    qpos = np.array([[4.0, 0.5], [-3.5, -2.0], [0.1, 0.2]])
    goals = unwrapped.goal_from_qpos(qpos)
    np.testing.assert_allclose(goals, [[4.0 - 2 * np.pi, 0.5], [2 * np.pi - 3.5, -2.0],
                                       [0.1, 0.2]])
    np.testing.assert_array_equal(unwrapped.goal_from_qpos(qpos[None]), goals[None])
    obs, _, *_ = envs[0].step(np.array([1.0, -1.0]))
    np.testing.assert_allclose(obs["achieved_goal"], unwrapped.goal_from_qpos(
        unwrapped.data.qpos).astype(np.float32))


def test_output_follows_the_input_dtype_and_shapes_are_checked(envs):
    objective = SimulatorObjective.from_envs(envs)
    costs = objective(torch.zeros(2, 5, 3, 2, dtype=torch.float64))
    assert costs.dtype == torch.float64 and costs.shape == (2, 5)
    # Zero torque from rest: the arm does not move, the cost is the start's goal distance.
    distance = [np.linalg.norm(env.unwrapped.goal_error(env.unwrapped.goal_from_qpos(
        env.unwrapped.data.qpos), env.unwrapped.desired_goal)) for env in envs]
    np.testing.assert_allclose(costs[:, 0].numpy(), distance, atol=1e-6)
    with pytest.raises(ValueError, match=r"actions must be \[B, S, H, A\] with B=2"):
        objective(torch.zeros(3, 5, 3, 2))
    with pytest.raises(ValueError, match="reduce"):
        SimulatorObjective.from_envs(envs, reduce="mean")
    unwrapped = envs[0].unwrapped
    with pytest.raises(ValueError, match="full-physics states"):
        SimulatorObjective(unwrapped.model, np.zeros((1, 3)), np.zeros((1, 2)),
                           unwrapped.goal_from_qpos, unwrapped.goal_error, 2)


def test_gradient_planner_refuses_the_oracle(envs):
    objective = SimulatorObjective.from_envs(envs)
    planner = make_planner("gradient", ActionBounds.from_space(envs[0].action_space))
    with pytest.raises(ValueError, match="differentiable objective"):
        planner.plan(objective, batch_size=2)


def test_cem_with_the_oracle_brings_the_arm_towards_the_goal():
    env = make_env(2)
    _, info = env.reset(seed=2)
    start_distance = info["goal_distance"]
    for _ in range(20):  # zero torque: the arm stays where it is
        _, _, _, _, info = env.step(np.zeros(2, np.float32))
    assert info["goal_distance"] == pytest.approx(start_distance, abs=1e-6)

    env.reset(seed=2)
    bounds = ActionBounds.from_space(env.action_space)
    planner = make_planner("cem", bounds, samples=64, iterations=4, elites=8, horizon=5)
    generator, init = torch.Generator().manual_seed(0), None
    for _ in range(4):  # model-predictive control: replan after each planner action
        objective = SimulatorObjective.from_envs([env], action_repeat=5, reduce="sum")
        result = planner.plan(objective, batch_size=1, init=init, generator=generator)
        for _ in range(5):
            _, _, _, _, info = env.step(result.actions[0, 0].numpy())
        init = shift_plan(result.actions)
    assert info["goal_distance"] < 0.5 * start_distance
    env.close()
