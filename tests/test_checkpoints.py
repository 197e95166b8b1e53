"""Atomic writes and resumable training state (torch.load with weights_only=True only)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import jepa_world.checkpoints
from jepa_world.atomic import atomic_write, atomic_write_text
from jepa_world.checkpoints import CheckpointError, atomic_torch_save, load_training_state
from jepa_world.errors import JepaWorldError


def test_training_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"step": 7, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist()}}
    path = atomic_torch_save(state, tmp_path / "state.pt")
    loaded = load_training_state(path)
    assert loaded["step"] == 7
    assert torch.equal(loaded["model"]["weight"], model.weight)
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optimizer"])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


class Payload:  # not allowed under weights_only=True
    pass


@pytest.mark.parametrize("content", ["missing", "truncated", "pickle"])
def test_unreadable_state_is_a_one_line_user_error(tmp_path, content):
    path = tmp_path / "state.pt"
    if content == "truncated":
        atomic_torch_save({"w": torch.ones(100)}, path)
        path.write_bytes(path.read_bytes()[:50])
    elif content == "pickle":
        torch.save({"obj": Payload()}, path)
    with pytest.raises(CheckpointError) as err:
        load_training_state(path)
    assert isinstance(err.value, JepaWorldError)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_failed_write_keeps_the_old_file(tmp_path):
    target = atomic_write_text(tmp_path / "config.json", "old")

    def crash(tmp):
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_atomic_writes_get_the_umask_permissions_not_private_ones(tmp_path, monkeypatch):
    from jepa_world import atomic

    old_mask = os.umask(0o022)
    try:
        monkeypatch.setattr(atomic, "_FILE_MODE", atomic._umask_mode())
    finally:
        os.umask(old_mask)
    target = atomic_write_text(tmp_path / "config.json", "{}")
    assert target.stat().st_mode & 0o777 == 0o644  # mkstemp alone would leave 0o600


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_loading_is_never_used(tmp_path):
    """A checkpoint that would run code when unpickled is refused, and the code does not run."""
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump(Payload(), f)
    with pytest.raises(CheckpointError):
        load_training_state(path)


def test_checkpoint_modules_import_one_way():
    """format <- runs / official / hf <- the package: no module imports one that imports it."""
    import ast

    root = Path(jepa_world.checkpoints.__file__).parent
    imports = {}
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports[path.stem] = {node.module for node in ast.walk(tree)
                              if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(m.startswith("jepa_world.checkpoints") for m in imports["format"])
    for leaf in ("runs", "official", "hf"):
        assert "jepa_world.checkpoints" not in imports[leaf]  # the package, which imports them
        assert {m for m in imports[leaf] if m.startswith("jepa_world.checkpoints.")} <= {
            "jepa_world.checkpoints.format"}


@pytest.mark.parametrize("first", ["jepa_world.hf_vjepa2", "jepa_world.official",
                                   "jepa_world.checkpoints.hf", "jepa_world.checkpoints.runs"])
def test_any_checkpoint_module_imports_first(first):
    import subprocess
    import sys

    code = (f"import {first}, jepa_world.hf_vjepa2 as h, jepa_world.checkpoints.hf as c; "
            f"assert h is c and h.save_hf")
    subprocess.run([sys.executable, "-c", code], check=True)
