"""Bring your own Gymnasium env: the goal-image adapter on Gymnasium's own Reacher-v5, the state
coordinates it names goals with, bad input, stable-baselines3's checker, and every command's
library function run on the adapted env."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import jepa_world  # noqa: F401  (registers the ids)
from jepa_world.checkpoints import Pretrained, save_pretrained
from jepa_world.config import CollectConfig, EnvConfig
from jepa_world.data.collection import collect
from jepa_world.data.store import Manifest
from jepa_world.envs.coordinates import StateCoordinates
from jepa_world.envs.goal_image import GoalImageEnv
from jepa_world.errors import ConfigError
from jepa_world.models.presets import EncoderConfig, build_encoder
from jepa_world.planning.oracle import SimulatorObjective
from jepa_world.training.wm_config import WMModelConfig
from tests.conftest import PYTHON, REPO, python_env

pytestmark = pytest.mark.usefixtures("one_thread")

REACHER = dict(name="reacher", id="Reacher-v5", image_size=32,
               goal=["joint:joint0", "joint:joint1"], proprio=[0, 1, 2, 3, 6, 7],
               state_dims=[0, 1, 2, 3], state_angles=False)


def reacher(**adapter) -> GoalImageEnv:
    inner = gym.make("Reacher-v5", render_mode="rgb_array", width=32, height=32,
                     max_episode_steps=-1)
    return GoalImageEnv(inner, **{"goal": REACHER["goal"], "proprio": REACHER["proprio"],
                                  **adapter})


@pytest.fixture
def env():
    e = reacher()
    yield e
    e.close()


# ---------------------------------------------------------------------------- the contract


def test_observations_follow_the_goal_image_contract(env):
    obs, info = env.reset(seed=0)
    assert set(obs) == {"pixels", "goal_pixels", "proprio", "achieved_goal", "desired_goal"}
    assert obs["pixels"].shape == obs["goal_pixels"].shape == (32, 32, 3)
    assert obs["pixels"].dtype == np.uint8 and obs["proprio"].shape == (6,)
    assert not np.array_equal(obs["pixels"], obs["goal_pixels"])  # the goal is elsewhere
    inner = env.env.unwrapped
    np.testing.assert_allclose(obs["achieved_goal"], inner.data.qpos[:2], atol=1e-6)
    np.testing.assert_allclose(obs["proprio"], inner._get_obs()[[0, 1, 2, 3, 6, 7]], atol=1e-6)
    assert {"success", "max_goal_error", "goal_distance", "sim_state"} <= set(info)
    assert info["goal_error"].shape == obs["desired_goal"].shape  # which coordinate misses
    assert float(info["goal_error"].max()) == pytest.approx(info["max_goal_error"])
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert reward == pytest.approx(float(env.compute_reward(obs["achieved_goal"],
                                                            obs["desired_goal"])))
    assert "env_reward" in info and not truncated


def test_gymnasium_check_env_and_determinism(env):
    check_env(env, skip_render_check=True)
    first, _ = env.reset(seed=5)
    second, _ = env.reset(seed=5)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other, _ = env.reset(seed=6)
    assert not np.array_equal(first["desired_goal"], other["desired_goal"])


def test_goal_actions_reach_the_goal_and_the_start_is_rewound(env):
    obs, info = env.reset(seed=2)
    start = info["sim_state"]
    for action in env.goal_actions:
        obs, *_ , info = env.step(action)
    # success at the tolerance's edge may end the replay early: the final frame is the goal
    np.testing.assert_allclose(obs["achieved_goal"], obs["desired_goal"], atol=1e-6)
    np.testing.assert_array_equal(obs["pixels"], obs["goal_pixels"])
    assert info["success"]
    env.reset(seed=2)
    np.testing.assert_array_equal(env.get_sim_state(), start)


def test_success_at_the_tolerance_edges(env):
    env.reset(seed=0)
    goal = np.array([0.3, -0.2])
    inside, outside = goal + [0.049, -0.049], goal + [0.0, 0.051]
    assert env.is_success(inside, goal) and not env.is_success(outside, goal)
    # joint0 turns freely: its error is taken modulo 2 pi
    assert env.is_success(goal + [2 * np.pi - 0.01, 0.0], goal)
    custom = reacher(success_fn=lambda a, d: bool(abs(a[1] - d[1]) < 1.0))
    custom.reset(seed=0)
    assert custom.is_success(outside + [3.0, 0.0], goal)
    custom.close()


def test_state_coordinates_read_kinematics_and_are_vectorised(env):
    env.reset(seed=1)
    model, data = env.model, env.data
    coords = StateCoordinates(model, ["body:fingertip:x", "body:fingertip:y", "qpos:1",
                                      "joint:joint0"])
    np.testing.assert_allclose(coords(data.qpos), [*data.xpos[model.body("fingertip").id, :2],
                                                   data.qpos[1], data.qpos[0]], atol=1e-12)
    batch = np.stack([data.qpos, data.qpos * 0.5])[None]  # [1, 2, nq]
    assert coords(batch).shape == (1, 2, 4)
    assert list(coords.wrap) == [False, False, False, True]
    for bad in ("joint:nope", "body:fingertip:w", "qpos:99", "pose", "joint:"):
        with pytest.raises(ConfigError, match="goal coordinate"):
            StateCoordinates(model, [bad])


def test_the_oracle_simulates_the_adapted_env_exactly(env):
    env.reset(seed=4)
    oracle = SimulatorObjective.from_envs([env], action_repeat=1, reduce="final")
    plan = torch.as_tensor(env.goal_actions[None, None], dtype=torch.float64)  # [1, 1, H, A]
    reached = oracle.simulate(plan)[0, 0, -1]
    np.testing.assert_allclose(reached, env.desired_goal, atol=1e-5)
    assert float(oracle(plan)) < 1e-4


def test_registered_id_vector_envs_and_goal_methods_on_the_outer_wrapper():
    kwargs = EnvConfig(**REACHER).gym_kwargs()
    env = gym.make("jepa_world/GoalImage-v0", max_episode_steps=7, **kwargs)
    obs, _ = env.reset(seed=0)
    assert env.compute_reward(obs["achieved_goal"], obs["desired_goal"]) <= 0
    assert env.unwrapped.task_id == "Reacher-v5"
    for _ in range(6):
        *_, truncated, _ = env.step(env.action_space.sample())
        assert not truncated
    assert env.step(env.action_space.sample())[3]  # the time limit of gym.make
    env.close()
    vec = gym.make_vec("jepa_world/GoalImage-v0", num_envs=2, vectorization_mode="sync", **kwargs)
    obs, info = vec.reset(seed=[0, 1])
    assert obs["pixels"].shape == (2, 32, 32, 3) and info["sim_state"].shape[0] == 2
    vec.close()


def test_stable_baselines3_check_env_passes_on_our_tasks_and_the_adapter():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker",
                                      reason="stable-baselines3 is an optional extra (rl)")
    for env in (gym.make("jepa_world/Reach-v0", image_size=48),
                gym.make("jepa_world/GoalImage-v0", **EnvConfig(**REACHER).gym_kwargs()),
                reacher()):
        sb3_checker.check_env(env, warn=False)  # raises AssertionError on a violation
        env.close()


# ---------------------------------------------------------------------------- bad input


class _Blind(gym.Env):
    """A non-MuJoCo env: Box actions, vector observations, rgb frames from its state."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode="rgb_array", action_space=None):
        self.render_mode = render_mode
        self.action_space = action_space or spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.pos = np.zeros(2, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.pos.copy(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.1 * np.asarray(action), -1, 1).astype(np.float32)
        return self.pos.copy(), 0.0, False, False, {}

    def render(self):
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[tuple(((self.pos + 1) * 7.5).astype(int)[::-1])] = 255
        return frame


def test_bad_envs_fail_with_one_clear_error():
    with pytest.raises(ConfigError, match="render_mode is None; make it with render_mode="):
        GoalImageEnv(_Blind(render_mode=None))
    with pytest.raises(ConfigError, match="actions must be a bounded Box"):
        GoalImageEnv(_Blind(action_space=spaces.Discrete(3)), image_size=16)
    with pytest.raises(ConfigError, match="no MuJoCo simulator state to rewind"):
        GoalImageEnv(_Blind(), image_size=16)
    with pytest.raises(ConfigError, match=r"proprio indices \[6\] out of range"):
        GoalImageEnv(_Blind(), image_size=16, proprio=[0, 6], goal_fn=lambda e: e.env.pos,
                     goal_sampler=lambda e, rng: (np.zeros(2), np.zeros((16, 16, 3), np.uint8)))
    env = reacher(success_fn=lambda a, d: 1 / 0)
    with pytest.raises(ConfigError, match="success_fn raised ZeroDivisionError"):
        env.reset(seed=0)
    env.close()
    big = reacher(image_size=40)  # Reacher renders 32 px here: frames are resized to 40
    assert big.reset(seed=0)[0]["pixels"].shape == (40, 40, 3)
    big.close()
    flat = GoalImageEnv(_Blind(), image_size=16, goal_fn=lambda e: e.env.pos,
                        goal_sampler=lambda e, rng: (np.zeros(2), np.zeros((16, 16), np.uint8)))
    with pytest.raises(ConfigError, match=r"rendered a uint8 frame of shape \[16, 16\]"):
        flat.reset(seed=0)


def test_an_env_without_a_simulator_works_with_a_goal_sampler():
    def sampler(env, rng):
        goal = rng.uniform(-1, 1, 2).astype(np.float32)
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[tuple(((goal + 1) * 7.5).astype(int)[::-1])] = 255
        return goal, frame

    env = GoalImageEnv(_Blind(), image_size=16, goal_fn=lambda e: e.env.pos, proprio=[0, 1],
                       goal_sampler=sampler, success_tolerance=0.2)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert info["sim_state"].shape == (0,) and obs["proprio"].shape == (2,)
    with pytest.raises(ConfigError, match="has no simulator state"):
        env.set_sim_state(np.zeros(3))
    with pytest.raises(ConfigError, match="goal comes from goal_fn"):
        env.goal_from_qpos(np.zeros(2))


def test_env_config_errors_name_the_field():
    for kwargs, message in ((dict(name="gym", id="Reachr-v5"), "env.id: 'Reachr-v5' is not a "
                             "registered Gymnasium env; similar: Reacher-v"),
                            (dict(name="gym"), "env.id: env=gym adapts a Gymnasium env"),
                            (dict(name="gym", id="no_such_module:X-v0"),
                             "env.id: cannot import 'no_such_module'"),
                            (dict(REACHER, state_dims=[6]), "env.state_dims: "),
                            (dict(name="reach", goal=["qpos:0"]), "env.id: goal, proprio"),
                            (dict(REACHER, protocol={"step_budget": 0}),
                             "protocol.step_budget: must be an integer >= 1")):
        with pytest.raises((ConfigError, ValueError), match=message):
            EnvConfig(**kwargs)


def test_collect_cli_rejects_a_bad_env_in_one_line_and_writes_nothing(tmp_path):
    for args, message in ((["env=gym", "env.id=Nope-v5"], "error: env.id: 'Nope-v5' is not"),
                          (["env=reacher", "env.proprio=[0,1,2,3,6,10]"],
                           "error: env Reacher-v5: proprio indices [10] out of range")):
        proc = subprocess.run([PYTHON, "-m", "jepa_world.collect", *args,
                               f"data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path}/o"],
                              env=dict(python_env(), OMP_NUM_THREADS="1"), cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().startswith(message), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "data").exists()


# ------------------------------------------------------------- every command on the adapter


@pytest.fixture(scope="module")
def reacher_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "reacher"
    collect(CollectConfig(env=EnvConfig(**REACHER), episodes=4, episode_length=12,
                          num_envs=2, episodes_per_shard=2, seed=3, progress=False,
                          data_dir=str(root)))
    return root


def test_collection_records_a_remakeable_env(reacher_data):
    manifest = Manifest.load(reacher_data)
    assert manifest.env_id == "jepa_world/GoalImage-v0"
    assert manifest.env_kwargs["env_id"] == "Reacher-v5" and manifest.proprio_dim == 6
    env = gym.make(manifest.env_id, **manifest.env_kwargs)
    assert env.observation_space["pixels"].shape == (32, 32, 3)
    env.close()


def test_pretrain_train_wm_plan_and_probe_run_on_the_adapted_env(reacher_data, tmp_path):
    from jepa_world.planning.config import PlanConfig
    from jepa_world.planning.session import plan_episodes
    from jepa_world.probes.tasks import build_task
    from jepa_world.training.pretrain import pretrain
    from jepa_world.training.train_wm import train_world_model
    from tests.test_pretrain import tiny_config as pretrain_config
    from tests.test_train_wm import TINY_WM, tiny_config

    env_cfg = EnvConfig(**REACHER)
    result = pretrain(pretrain_config(reacher_data, tmp_path / "pre", env=env_cfg, steps=3,
                                      checkpoint_interval=3))
    assert result.steps == 3

    torch.manual_seed(0)
    encoder = EncoderConfig(img_size=32, patch_size=8, num_frames=2, embed_dim=32, depth=1,
                            num_heads=2, mlp_hidden_dim=64)
    folder = tmp_path / "encoder" / "step_000001"
    save_pretrained(Pretrained(build_encoder(encoder), None, None, "jepa_world",
                               {"encoder": dataclasses.asdict(encoder),
                                "predictor_type": "masked"}), folder)
    wm_cfg = tiny_config(reacher_data, folder, tmp_path / "wm", env=env_cfg, steps=4,
                         model=WMModelConfig(**{**TINY_WM, "frameskip": 0}))
    assert wm_cfg.model.frameskip == 5  # the task's action repeat
    assert wm_cfg.loss.state_dims == [0, 1, 2, 3]  # the task's, not reach's
    model_dir = train_world_model(wm_cfg).run_dir / "world_model"

    out = tmp_path / "plan"
    report = plan_episodes(PlanConfig(
        env=env_cfg, world_model=str(model_dir), agents=["world_model", "oracle", "random"],
        episodes=1, videos=1, progress=False, tensorboard=False, output_dir=str(out),
        planner={"name": "cem", "samples": 16, "iterations": 2, "elites": 4}))
    assert set(report["agents"]) == {"world_model", "oracle", "random"}
    assert report["env"] == "Reacher-v5" and report["protocol"]["step_budget"] == 50
    assert json.loads((out / "summary.json").read_text())["episodes"] == 1
    assert (out / "videos" / "world_model_seed1000.gif").exists()

    ids = [0, 1], [2, 3]
    state = build_task("state", reacher_data, *ids, state_dims=[0, 1, 2, 3], angles=False)
    assert state.num_outputs == 4 and state.info["targets"] == "q1, q2, q3, q4"
    motion = build_task("motion", reacher_data, *ids, state_dims=[2], angles=False)
    assert motion.train_targets.max() <= 3


def test_gymnasium_robotics_point_maze_through_its_config():
    pytest.importorskip("gymnasium_robotics", reason="gymnasium-robotics is an optional extra "
                        "(robotics)")
    cfg = EnvConfig(name="pointmaze", id="gymnasium_robotics:PointMaze_UMaze-v3", image_size=32,
                    goal=["joint:ball_x", "joint:ball_y"], proprio=[0, 1, 2, 3],
                    state_dims=[0, 1], state_angles=False,
                    protocol={"goal_offset": 10, "success_tolerance": 0.2, "step_budget": 20,
                              "action_repeat": 2})
    env = cfg.make()
    try:
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=0)
        # the maze keeps its simulator one level down (point_env): found all the same
        assert env.unwrapped.frame_skip >= 1 and obs["proprio"].shape == (4,)
        np.testing.assert_allclose(obs["proprio"][:2], obs["achieved_goal"], atol=1e-6)
        oracle = SimulatorObjective.from_envs([env], action_repeat=1)
        assert oracle(torch.zeros(1, 3, 4, 2, dtype=torch.float64)).shape == (1, 3)
    finally:
        env.close()


ASYNC_AFTER_RENDER = """
import gymnasium as gym
import jepa_world

def main():
    env = gym.make("jepa_world/Reach-v0", image_size=16)
    env.reset(seed=0)  # the parent renders: a GL context exists before the workers fork
    vec = gym.make_vec("jepa_world/Reach-v0", num_envs=2, vectorization_mode="async",
                       image_size=16)
    try:
        vec.reset(seed=0)
        print("reset returned")
    except RuntimeError as err:
        print("refused:", err)
    finally:
        vec.close()
    vec = gym.make_vec("jepa_world/Reach-v0", num_envs=2, vectorization_mode="async",
                       image_size=16, vector_kwargs={"context": "forkserver"})
    print("forkserver:", vec.reset(seed=0)[0]["pixels"].shape)
    vec.close()

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_async_vector_envs_forked_after_rendering_fail_with_a_message(tmp_path):
    script = tmp_path / "async_after_render.py"
    script.write_text(ASYNC_AFTER_RENDER)
    proc = subprocess.run([PYTHON, str(script)], env=dict(python_env(), OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=120)  # it used to hang
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: jepa_world/Reach-v0: this process was forked after its parent had " \
           "rendered" in proc.stdout and "context': 'forkserver'" in proc.stdout
    assert "forkserver: (2, 16, 16, 3)" in proc.stdout
