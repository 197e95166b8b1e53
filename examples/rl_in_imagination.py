"""Train a goal-conditioned policy (PPO or SAC) ONLY in the world model's imagination, then
evaluate it in the real env under the fixed protocol, beside MPC with the same model and random
actions.

    pip install 'jepa_world[rl]'
    python -m jepa_world.collect env=reach                     # the dataset starts come from
    python examples/rl_in_imagination.py [--model reach] [--data data/reach_64px]
        [--timesteps 200000] [--envs 64] [--episodes 50] [--out runs/rl_reach]

The policy never sees the simulator while it learns: episodes start from real observation
histories of the dataset (the goal a frame 25 env steps later in the same episode), every step
is one predictor call for all ``--envs`` episodes, and the reward is the learned one (minus the
latent distance to the goal image, plus a bonus where the proprio head reads the goal's joint
angles within the protocol's 0.05 rad). In the real env the same policy sees
``LatentObservation(ActionRepeat(env, 5), model)``: the same observation layout on real frames.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import jepa_world.envs  # noqa: F401  (registers the envs)
from jepa_world.data.windows import split_episodes
from jepa_world.envs import EvalProtocol
from jepa_world.planning.evaluate import wilson_interval
from jepa_world.rl import (
    ActionRepeat,
    DatasetStarts,
    ImaginationVectorEnv,
    LatentObservation,
    LatentReward,
    PlannerPolicy,
)
from jepa_world.rl.sb3 import sb3_vec_env
from jepa_world.world_model import WorldModel


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="reach", help="world-model folder or shipped name")
    p.add_argument("--data", default="data/reach_64px", help="dataset the starts come from")
    p.add_argument("--algo", choices=("ppo", "sac"), default="ppo")
    p.add_argument("--timesteps", type=int, default=600_000, help="imagined transitions")
    p.add_argument("--train-seed", type=int, default=0, help="seeds the learner and the starts")
    p.add_argument("--envs", type=int, default=256, help="imagined episodes stepped together")
    p.add_argument("--gradient-steps", type=int, default=16, help="SAC updates per env step")
    p.add_argument("--bonus", type=float, default=1.0, help="learned success bonus")
    p.add_argument("--episodes", type=int, default=50, help="real evaluation episodes")
    p.add_argument("--seed", type=int, default=1000, help="first evaluation episode's seed")
    p.add_argument("--skip-mpc", action="store_true", help="evaluate the policy and random only")
    p.add_argument("--out", default="runs/rl_reach")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args()


def train(model: WorldModel, args: argparse.Namespace, space: gym.spaces.Box):
    from stable_baselines3 import PPO, SAC

    protocol = EvalProtocol()
    train_ids, _ = split_episodes(args.data, 0.1)
    starts = DatasetStarts(model, args.data, train_ids,
                           goal_steps=protocol.goal_offset // model.config.frameskip)
    reward = LatentReward(model, success_bonus=args.bonus,
                          success_tolerance=protocol.success_tolerance)
    dream = ImaginationVectorEnv(model, starts, args.envs, space, reward=reward,
                                 budget=protocol.step_budget // protocol.action_repeat,
                                 terminate_on_success=True)
    common = dict(policy_kwargs={"net_arch": [256, 256]}, seed=args.train_seed, device="cpu",
                  verbose=0, gamma=0.95, tensorboard_log=str(Path(args.out) / "tb"))
    if args.algo == "ppo":
        agent = PPO("MultiInputPolicy", sb3_vec_env(dream), n_steps=20, batch_size=1024,
                    n_epochs=5, learning_rate=3e-4, ent_coef=0.0, **common)
    else:
        agent = SAC("MultiInputPolicy", sb3_vec_env(dream), learning_starts=2_000,
                    batch_size=256, gradient_steps=args.gradient_steps, **common)
    started = time.perf_counter()
    agent.learn(args.timesteps, progress_bar=False)
    return agent, time.perf_counter() - started


class Learned:
    def __init__(self, agent) -> None:
        self.agent = agent

    def start(self, raw: dict) -> None:
        pass

    def act(self, raw: dict, obs: dict) -> np.ndarray:
        return self.agent.predict(obs, deterministic=True)[0]


class Random(Learned):
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, raw: dict, obs: dict) -> np.ndarray:
        return self.rng.uniform(-1, 1, 2).astype(np.float32)


class Mpc(Learned):
    """The plan command's planner (configs/planner/cem.yaml), through the policy interface."""

    def __init__(self, model: WorldModel, space: gym.spaces.Box) -> None:
        self.policy = PlannerPolicy(model, space, planner="cem", samples=128, iterations=6,
                                    elites=16)

    def start(self, raw: dict) -> None:
        self.policy.reset(raw)

    def act(self, raw: dict, obs: dict) -> np.ndarray:
        return self.policy.act(raw)


def evaluate(agent: Learned, model: WorldModel, args: argparse.Namespace) -> dict:
    """Real episodes ``seed .. seed + episodes - 1`` under the protocol; success at any step."""
    env = LatentObservation(ActionRepeat(gym.make("jepa_world/Reach-v0", image_size=64),
                                         model.config.frameskip), model)
    wins, started = [], time.perf_counter()
    for i in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + i)
        agent.start(env.raw_observation)
        success, done = False, False
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.act(env.raw_observation, obs))
            success |= bool(info["success"])
            done = terminated or truncated
        wins.append(success)
    env.close()
    n = len(wins)
    return {"successes": int(sum(wins)), "episodes": n, "success_rate": sum(wins) / n,
            "ci95": wilson_interval(int(sum(wins)), n),
            "seconds": time.perf_counter() - started}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = WorldModel.from_pretrained(args.model)
    space = gym.spaces.Box(-1.0, 1.0, (model.config.action_dim,), np.float32)
    agent, seconds = train(model, args, space)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    agent.save(str(Path(args.out) / f"{args.algo}_policy"))
    results = {"algo": args.algo, "train_seconds": seconds, "timesteps": args.timesteps,
               "envs": args.envs, "train_seed": args.train_seed}
    agents = {args.algo: Learned(agent), "random": Random()}
    if not args.skip_mpc:
        agents["mpc"] = Mpc(model, space)
    for name, policy in agents.items():
        results[name] = r = evaluate(policy, model, args)
        lo, hi = r["ci95"]
        print(f"{name}: {r['successes']}/{r['episodes']} ({r['success_rate']:.0%}, 95% CI "
              f"{lo:.2f}-{hi:.2f}), {r['seconds']:.0f} s")
    print(f"{args.algo} trained on {args.timesteps} imagined transitions in {seconds:.0f} s")
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
