"""The world model as an RL environment: imagined vs real steps per second, and how well the
learned reward ranks states.

    python -m bench.rl_imagination [--model reach] [--data data/reach_64px] [--envs 256]
        [--steps 40] [--repeats 3] [--threads 0]

* Throughput: ``ImaginationVectorEnv`` with ``--envs`` episodes (one predictor call a step; a
  step is one held action = ``frameskip`` env steps) against the real env (``gym.make``, 64 px,
  rendering every step) stepped with random actions, medians of ``--repeats`` interleaved runs.
  Both are reported per env step and per held action.
* Ranking: on the dataset's held-out episodes (the last 10%), every pair of frames ``(t, g)`` of
  an episode with ``g > t`` (5 env steps apart at most 50): Spearman's rank correlation between
  the learned reward of frame ``t`` against goal frame ``g`` and minus the true joint distance
  (the shoulder's error taken modulo 2 pi); also for pairs at the protocol's 25-step offset.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import jepa_world.envs  # noqa: F401  (registers the envs)
from bench.common import table
from jepa_world.data.windows import split_episodes
from jepa_world.rl import DatasetStarts, ImaginationVectorEnv, LatentReward
from jepa_world.training.decoder_data import encode_latents
from jepa_world.world_model import WorldModel


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation of two 1-D arrays (ties broken by order; continuous data has none)."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def imagined_rate(dream: ImaginationVectorEnv, steps: int) -> float:
    dream.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, dream.num_envs, 2))
    started = time.perf_counter()
    for a in actions:
        dream.step(a.astype(np.float32))
    return steps * dream.num_envs / (time.perf_counter() - started)


def real_rate(env: gym.Env, steps: int) -> float:
    env.reset(seed=0)
    started = time.perf_counter()
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def ranking(model: WorldModel, data: str, offsets: range) -> dict[str, float]:
    _, held_out = split_episodes(data, 0.1)
    episodes = encode_latents(model, data, held_out, f"{data}/features")
    reward = LatentReward(model)
    rewards, distances, at_protocol = [], [], []
    for e in range(len(episodes.ids)):
        z, q = episodes.tokens[e].float(), episodes.proprio[e, :, :2].numpy()
        for t in range(0, episodes.num_frames, 5):
            for k in offsets:
                g = t + k
                if g >= episodes.num_frames:
                    break
                err = q[g] - q[t]
                err[0] = (err[0] + np.pi) % (2 * np.pi) - np.pi
                rewards.append(float(reward(z[t], z[g])))
                distances.append(-float(np.linalg.norm(err)))
                at_protocol.append(k == 25)
    r, d, mask = np.array(rewards), np.array(distances), np.array(at_protocol)
    return {"pairs": len(r), "spearman": spearman(r, d),
            "spearman_at_25_steps": spearman(r[mask], d[mask]), "episodes": len(episodes.ids)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="reach")
    p.add_argument("--data", default="data/reach_64px")
    p.add_argument("--envs", type=int, default=256)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = WorldModel.from_pretrained(args.model)
    frameskip = model.config.frameskip
    train_ids, _ = split_episodes(args.data, 0.1)
    starts = DatasetStarts(model, args.data, train_ids, goal_steps=25 // frameskip)
    space = gym.spaces.Box(-1.0, 1.0, (model.config.action_dim,), np.float32)
    dream = ImaginationVectorEnv(model, starts, args.envs, space, budget=10)
    env = gym.make(model.config.env_id, image_size=model.config.image_size)
    imagined, real = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        imagined.append(imagined_rate(dream, args.steps))
        real.append(real_rate(env, args.steps * 5))
    env.close()
    im, re = statistics.median(imagined), statistics.median(real)
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}")
    print(table([
        {"env": f"imagination ({args.envs} episodes, 1 predictor call a step)",
         "held actions / s": f"{im:,.0f}", "env steps / s": f"{im * frameskip:,.0f}"},
        {"env": "real (MuJoCo + 64 px rendering)", "held actions / s": f"{re / frameskip:,.0f}",
         "env steps / s": f"{re:,.0f}"}], ["env", "held actions / s", "env steps / s"]))
    print(f"imagination is {im * frameskip / re:.1f}x the real env's env steps/s "
          f"(runs: imagined {[round(x) for x in imagined]}, real {[round(x) for x in real]})")
    rank = ranking(model, args.data, range(5, 55, 5))
    print(f"learned reward vs minus the true joint distance, {rank['pairs']} held-out pairs "
          f"({rank['episodes']} episodes): Spearman {rank['spearman']:.3f}; at the protocol's "
          f"25-step offset {rank['spearman_at_25_steps']:.3f}")


if __name__ == "__main__":
    main()
