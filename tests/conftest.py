"""Shared fixtures: tiny seeded datasets collected once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jepa_world.config import CollectConfig, EnvConfig
from jepa_world.data.collection import collect

REPO = Path(__file__).resolve().parents[1]


def small_config(data_dir: Path, **overrides) -> CollectConfig:
    """A collection that takes about a second: 5 episodes of 12 steps, 2 per shard."""
    fields = dict(episodes=5, episode_length=12, num_envs=2, episodes_per_shard=2, seed=3,
                  progress=False, data_dir=str(data_dir), env=EnvConfig(image_size=32))
    fields.update(overrides)
    return CollectConfig(**fields)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "reach"
    collect(small_config(root))
    return root


def python_env() -> dict[str, str]:
    """Environment for subprocesses running this checkout's package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


PYTHON = sys.executable


@pytest.fixture
def one_thread():
    """Tiny models run fastest (and least disturbed by other jobs) on one torch thread; test
    modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
