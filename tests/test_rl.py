"""The world model in RL experiments: the learned reward, latent-observation wrappers, the
imagination envs, a planner as a policy, and stable-baselines3 as the client (optional extra)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import jepa_world.envs  # noqa: F401  (registers the envs)
from jepa_world.planners import ActionBounds, make_planner
from jepa_world.planning.agents import WorldModelAgent
from jepa_world.rl import (
    ActionRepeat,
    DatasetStarts,
    EnvStarts,
    ImaginationEnv,
    ImaginationVectorEnv,
    LatentObservation,
    LatentObservationVector,
    LatentReward,
    PlannerPolicy,
)
from tests.test_planning import tiny_world_model

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
CEM = dict(samples=16, iterations=2, elites=4, horizon=2)


@pytest.fixture(scope="module")
def model():
    return tiny_world_model(image_size=32, frameskip=5)


@pytest.fixture
def reach():
    env = gym.make("jepa_world/Reach-v0", image_size=32)
    yield env
    env.close()


@pytest.fixture(scope="module")
def starts(model, tiny_dataset):
    # tiny episodes have 12 steps: 2 history frames + the goal 1 model step (5 env steps) on
    return DatasetStarts(model, tiny_dataset, goal_steps=1, cache=False)


def test_learned_reward_is_the_negated_planning_cost_plus_a_judged_bonus(model):
    torch.manual_seed(0)
    z, goal = torch.randn(3, 2, 32), torch.randn(3, 2, 32)
    plain = LatentReward(model)
    torch.testing.assert_close(plain(z, goal), -model.cost(z, goal))
    assert not plain.success(z, goal).any()
    bonus = LatentReward(model, success_bonus=2.0, success_tolerance=0.05)
    assert bonus.success(goal, goal).all()  # the same latents read the same state
    torch.testing.assert_close(bonus(goal, goal), torch.full((3,), 2.0))
    flat = bonus.compute_reward(z.reshape(3, -1).numpy(), goal.reshape(3, -1).numpy())
    np.testing.assert_allclose(flat, bonus(z, goal).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="state_dims"):
        LatentReward(model, success_bonus=1.0, state_dims=[7])


def test_latent_observation_encodes_frames_and_rewards_with_the_latent_distance(model, reach):
    env = LatentObservation(ActionRepeat(reach, 5), model)
    obs, _ = env.reset(seed=0)
    assert obs["observation"].shape == (4,) and obs["achieved_goal"].shape == (64,)
    raw, _ = reach.unwrapped.reset(seed=0), None
    expected = model.encode_images(raw[0]["pixels"]).reshape(-1).numpy()
    np.testing.assert_allclose(obs["achieved_goal"], expected, atol=1e-6)
    obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
    assert reward == pytest.approx(float(env.compute_reward(obs["achieved_goal"],
                                                            obs["desired_goal"])))
    assert {"env_reward", "success"} <= set(info)
    steps = sum(not env.step(np.zeros(2, np.float32))[3] for _ in range(8))
    assert steps == 8 and env.step(np.zeros(2, np.float32))[3]  # 50 env steps = 10 held actions
    check_env(env, skip_render_check=True)


def test_the_wrapper_refuses_an_env_of_another_size(model):
    env = gym.make("jepa_world/Reach-v0", image_size=48)
    with pytest.raises(ValueError, match="renders 48x48 frames; the world model sees 32x32"):
        LatentObservation(env, model)
    env.close()


def test_vector_form_encodes_all_sub_envs_at_once_and_follows_autoresets(model):
    vec = gym.make_vec("jepa_world/Reach-v0", num_envs=2, vectorization_mode="sync",
                       image_size=32, max_episode_steps=3)
    env = LatentObservationVector(vec, model)
    obs, _ = env.reset(seed=[0, 1])
    single = LatentObservation(gym.make("jepa_world/Reach-v0", image_size=32), model)
    first, _ = single.reset(seed=1)
    np.testing.assert_allclose(obs["desired_goal"][1], first["desired_goal"], atol=1e-6)
    goals = obs["desired_goal"].copy()
    for _ in range(4):  # the 3-step limit ends both episodes; the next step resets them
        obs, rewards, *_ = env.step(np.zeros((2, 2), np.float32))
    assert rewards.shape == (2,) and not np.allclose(obs["desired_goal"], goals)
    env.close()
    single.close()


def test_imagination_steps_the_world_model_exactly(model, starts):
    dream = ImaginationVectorEnv(model, starts, 3, SPACE, budget=4)
    obs, _ = dream.reset(seed=0)
    state = dream._state
    history, acts, proprio = state.latents.clone(), state.actions.clone(), state.proprio.clone()
    action = np.full((3, 2), 0.5, np.float32)
    obs, rewards, terminated, truncated, info = dream.step(action)
    step = torch.full((3, 1, 1, 10), 0.5)
    with torch.no_grad():
        expected = model.rollout(history, step, proprio, history_actions=acts)[:, 0, 0]
    np.testing.assert_allclose(obs["achieved_goal"], expected.reshape(3, -1).numpy(), atol=1e-5)
    np.testing.assert_allclose(rewards, dream.compute_reward(obs["achieved_goal"],
                                                             obs["desired_goal"]), rtol=1e-5)
    assert not terminated.any() and not truncated.any()
    again = ImaginationVectorEnv(model, starts, 3, SPACE, budget=4)
    np.testing.assert_array_equal(again.reset(seed=0)[0]["desired_goal"],
                                  dream.reset(seed=0)[0]["desired_goal"])


def test_imagined_episodes_truncate_at_the_budget_and_reset_in_the_same_step(model, starts):
    dream = ImaginationVectorEnv(model, starts, 2, SPACE, budget=3)
    dream.reset(seed=1)
    for _ in range(2):
        *_, truncated, info = dream.step(np.zeros((2, 2), np.float32))
        assert not truncated.any()
    obs, _, _, truncated, info = dream.step(np.zeros((2, 2), np.float32))
    assert truncated.all() and info["_final_obs"].all()
    assert set(info["final_obs"][0]) == {"observation", "achieved_goal", "desired_goal"}
    assert not np.array_equal(info["final_obs"][0]["achieved_goal"], obs["achieved_goal"][0])
    assert (dream._t == 0).all()


def test_live_env_starts_and_the_single_episode_env(model, reach):
    dream = ImaginationEnv(model, EnvStarts(model, reach), SPACE, budget=2)
    check_env(dream, skip_render_check=True)
    obs, _ = dream.reset(seed=3)
    assert obs["desired_goal"].shape == (64,)
    *_, truncated, _ = dream.step(SPACE.sample())
    assert not truncated and dream.step(SPACE.sample())[3]


def test_planner_policy_plans_like_mpc(model, reach):
    policy = PlannerPolicy(model, reach.action_space, seed=5, **CEM)
    obs, _ = reach.reset(seed=0)
    policy.reset(obs)
    action = policy.act(obs)
    agent = WorldModelAgent(model)
    agent.reset(reach, obs)
    planner = make_planner("cem", ActionBounds.from_space(reach.action_space), **CEM)
    expected = planner.plan(agent.objective(), 1, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(action, expected.actions[0, 0].numpy(), atol=1e-6)
    obs, *_ = ActionRepeat(reach, 5).step(action)
    second = policy.act(obs)
    assert second.shape == (2,) and np.all(np.abs(second) <= 1)
    with pytest.raises(RuntimeError, match="reset"):
        PlannerPolicy(model, reach.action_space).act(obs)


# ---------------------------------------------------------------- stable-baselines3, the client


@pytest.fixture
def sb3():
    return pytest.importorskip("stable_baselines3",
                               reason="stable-baselines3 is an optional extra (rl)")


def test_sb3_check_env_on_the_wrappers_and_the_imagination_env(sb3, model, reach, starts):
    from stable_baselines3.common.env_checker import check_env as sb3_check

    sb3_check(LatentObservation(ActionRepeat(reach, 5), model), warn=False)
    sb3_check(ImaginationEnv(model, starts, SPACE, budget=3), warn=False)


def test_sac_with_her_and_ppo_run_on_the_imagination_envs(sb3, model, starts):
    from stable_baselines3 import PPO, SAC, HerReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    from jepa_world.rl.sb3 import sb3_vec_env

    vec = sb3_vec_env(ImaginationVectorEnv(model, starts, 8, SPACE, budget=3))
    sac = SAC("MultiInputPolicy", vec, learning_starts=16, batch_size=16, gradient_steps=1,
              policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    sac.learn(48)
    assert sac.num_timesteps >= 48 and sac.replay_buffer.size() > 0
    action, _ = sac.predict(vec.reset(), deterministic=True)
    assert action.shape == (8, 2)

    single = DummyVecEnv([lambda: ImaginationEnv(model, starts, SPACE, budget=3)])
    her = SAC("MultiInputPolicy", single, replay_buffer_class=HerReplayBuffer,
              replay_buffer_kwargs={"n_sampled_goal": 2}, learning_starts=12, batch_size=8,
              policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    her.learn(24)
    assert her.replay_buffer.size() > 0

    ppo = PPO("MultiInputPolicy", vec, n_steps=4, batch_size=16, n_epochs=1,
              policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    ppo.learn(32)
    assert ppo.num_timesteps >= 32


def test_sb3_adapter_refuses_next_step_autoreset(sb3, model, starts):
    from jepa_world.rl.sb3 import sb3_vec_env

    vec = gym.make_vec("jepa_world/Reach-v0", num_envs=1, vectorization_mode="sync",
                       image_size=32)
    with pytest.raises(ValueError, match="SAME_STEP"):
        sb3_vec_env(vec)
    vec.close()


def test_shipped_models_load_by_name_from_anywhere_in_eval_mode(tmp_path, monkeypatch):
    from jepa_world.world_model import WorldModel

    monkeypatch.chdir(tmp_path)
    model = WorldModel.from_pretrained("reach")
    assert not model.training and model.config.env_id == "jepa_world/Reach-v0"
    with pytest.raises(Exception, match="nope"):
        WorldModel.from_pretrained("nope")
