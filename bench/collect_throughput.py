"""Collection speed: frames/s stored by `jepa_world.collect`, and the share spent rendering.

    python bench/collect_throughput.py [--episodes 40] [--size 64] [--repeats 3]

Each configuration collects into a fresh temporary directory (shards written to disk included);
figures are medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import tempfile

import gymnasium as gym

import jepa_world  # noqa: F401
from bench.common import median_rate, table
from jepa_world.config import CollectConfig, EnvConfig
from jepa_world.data.collection import collect

SETTINGS = [("sync", 1), ("sync", 2), ("async", 2)]


def render_seconds_per_frame(size: int, frames: int = 500) -> float:
    env = gym.make("jepa_world/Reach-v0", image_size=size)
    env.reset(seed=0)
    rate, _ = median_rate(lambda: [env.unwrapped.render_pixels() for _ in range(frames)] and frames)
    env.close()
    return 1.0 / rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    render_s = render_seconds_per_frame(args.size)
    rows = []
    for mode, num_envs in SETTINGS:
        def run(mode=mode, num_envs=num_envs):
            with tempfile.TemporaryDirectory() as tmp:
                cfg = CollectConfig(env=EnvConfig(image_size=args.size), episodes=args.episodes,
                                    episode_length=args.episode_length, num_envs=num_envs,
                                    vectorization=mode, progress=False, data_dir=tmp)
                return collect(cfg).frames_collected

        fps, _ = median_rate(run, args.repeats, warmup=0)
        rows.append({"vectorization": mode, "num_envs": num_envs, "frames/s": f"{fps:,.0f}",
                     # sync: every frame is rendered in this one process
                     "rendering share": f"{fps * render_s:.0%}" if mode == "sync" else "-"})
    print(f"{args.episodes} episodes x {args.episode_length + 1} frames at "
          f"{args.size}x{args.size}; render alone {1 / render_s:,.0f} frames/s; "
          f"median of {args.repeats}")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
