"""Rendering and stepping speed of the reach task on this machine.

    python bench/render_fps.py [--sizes 64 224] [--repeats 5]

Prints frames/s for a bare render, physics steps/s without rendering, and full env steps/s
(physics + render + observation), each the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym
import numpy as np

import jepa_world  # noqa: F401
from bench.common import median_rate, table


def measure(size: int, frames: int, repeats: int) -> dict[str, str]:
    env = gym.make("jepa_world/Reach-v0", image_size=size, terminate_on_success=False,
                   max_episode_steps=10**9, disable_env_checker=True)
    env.reset(seed=0)
    base = env.unwrapped
    action = np.array([0.3, -0.2], np.float32)

    def render():
        for _ in range(frames):
            base.render_pixels()
        return frames

    def physics():
        for _ in range(frames * 10):
            base._simulate(action)
        return frames * 10

    def step():
        for _ in range(frames):
            env.step(action)
        return frames

    r, _ = median_rate(render, repeats)
    p, _ = median_rate(physics, repeats)
    s, _ = median_rate(step, repeats)
    env.close()
    return {"size": f"{size}x{size}", "render fps": f"{r:,.0f}", "physics steps/s": f"{p:,.0f}",
            "env steps/s": f"{s:,.0f}", "render share of a step": f"{s / r:.0%}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(size, args.frames, args.repeats) for size in args.sizes]
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, median of {args.repeats} runs")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
