"""The package's public face: light import, lazy heavy parts."""

from __future__ import annotations

import subprocess

import pytest

import jepa_world
from tests.conftest import PYTHON, python_env


def test_import_registers_envs_without_loading_torch_or_mujoco():
    code = ("import sys, gymnasium, jepa_world; "
            "assert 'jepa_world/Reach-v0' in gymnasium.registry; "
            "print(sorted(m for m in ('torch', 'mujoco') if m in sys.modules))")
    proc = subprocess.run([PYTHON, "-c", code], env=python_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_lazy_public_names():
    from jepa_world import WindowDataset, WorldModel, load_pretrained
    from jepa_world.checkpoints import load_pretrained as direct

    assert load_pretrained is direct and WindowDataset.__name__ == "WindowDataset"
    assert WorldModel.__module__ == "jepa_world.world_model"
    assert {"load_pretrained", "WindowDataset", "WorldModel"} <= set(dir(jepa_world))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jepa_world.nope  # noqa: B018
