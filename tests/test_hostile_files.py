"""Hostile and damaged files given to every loader: a pickle that would run code, truncated and
bit-flipped safetensors, JSON configs of the wrong shape, a manifest from the future. Each is
refused in one line (exit 2 through the commands), runs nothing, and leaves what is on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from jepa_world import load_pretrained
from jepa_world.checkpoints import CheckpointError, latest_checkpoint
from jepa_world.probes.encoders import load_encoder
from tests.commands import assert_one_line_error, call
from tests.test_planning import tiny_world_model
from tests.test_pretrain import CLI_MODEL
from tests.test_train_wm import TINY_WM

pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """Unpickling this creates ``marker``: the stand-in for any code a pickle could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_pt(path: Path, marker: Path) -> Path:
    """A torch.save file that looks like a checkpoint and runs the payload when unpickled."""
    torch.save({"encoder": {"patch_embed.weight": torch.zeros(1)}, "epoch": Payload(marker)},
               path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    """The control: without weights_only the file does run code, so the tests below mean it."""
    marker = tmp_path / "pwned"
    torch.load(hostile_pt(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()


def test_library_loaders_refuse_a_code_running_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile_pt(tmp_path / "vjepa.pt", marker)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_pretrained(path)  # official checkpoints
    with pytest.raises(CheckpointError, match="weights_only"):
        load_encoder(str(path))  # probe encoder specs
    assert not marker.exists()


def test_train_wm_refuses_a_code_running_encoder(tiny_dataset, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = hostile_pt(tmp_path / "encoder.pt", marker)
    code, _, err = call("train_wm", f"data.data_dir={tiny_dataset}", f"encoder.path={path}",
                        "env.image_size=32", "data.episode_length=12", "progress=false",
                        f"run_dir={tmp_path / 'run'}", *[f"model.{k}={v}" for k, v in
                                                         TINY_WM.items()], capsys=capsys)
    assert_one_line_error(code, err, "error: ")
    assert "weights_only" in err and not marker.exists()


def test_pretrain_resume_refuses_a_code_running_state_and_keeps_the_run(tiny_dataset, tmp_path,
                                                                        capsys):
    run = tmp_path / "run"
    args = [f"data.data_dir={tiny_dataset}", f"run_dir={run}", "batch_size=2",
            "checkpoint_interval=2", "progress=false", "tensorboard=false", *CLI_MODEL]
    code, _, err = call("pretrain", *args, "steps=2", capsys=capsys)
    assert code == 0, err
    marker = tmp_path / "pwned"
    hostile_pt(latest_checkpoint(run) / "state.pt", marker)
    before = snapshot(run / "checkpoints")
    code, _, err = call("pretrain", *args, "steps=4", capsys=capsys)
    assert_one_line_error(code, err.splitlines()[-1] + "\n", "error: ")
    assert "Traceback" not in err and "weights_only" in err
    assert not marker.exists()
    assert snapshot(run / "checkpoints") == before


def damaged_world_models(root: Path) -> dict[str, Path]:
    """World-model folders damaged in each way a disk, a copy or a hand edit can."""
    good = root / "good"
    tiny_world_model().save_pretrained(good)
    weights = (good / "model.safetensors").read_bytes()
    config = json.loads((good / "config.json").read_text())
    wm = config["world_model"]
    header = int.from_bytes(weights[:8], "little")
    cases = {
        "truncated": (weights[: len(weights) // 2], config),
        "header_bit_flip": (weights[:8 + header // 2] + bytes([weights[8 + header // 2] ^ 0x40])
                            + weights[9 + header // 2:], config),
        "length_bit_flip": (bytes([weights[0] ^ 0x01]) + weights[1:], config),
        "empty": (b"", config),
        "wrong_type": (weights, {**config, "world_model": {**wm, "frameskip": "five"}}),
        "wrong_nested_type": (weights, {**config, "world_model": {**wm, "encoder": 3}}),
        "wrong_deep_type": (weights, {**config, "world_model": {
            **wm, "encoder": {**wm["encoder"], "embed_dim": "wide"}}}),
        "missing_field": (weights, {**config, "world_model": {
            k: v for k, v in wm.items() if k != "encoder"}}),
        "not_an_object": (weights, [config]),
    }
    folders = {}
    for name, (data, cfg) in cases.items():
        folder = root / name
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(data)
        (folder / "config.json").write_text(json.dumps(cfg))
        folders[name] = folder
    return folders


def test_damaged_world_models_fail_in_one_line_and_stay_as_they_were(tmp_path, capsys):
    for name, folder in damaged_world_models(tmp_path).items():
        before = snapshot(folder)
        code, _, err = call("plan", f"world_model={folder}", "env.image_size=32", "episodes=1",
                            f"output_dir={tmp_path / 'out' / name}",
                            f"hydra.run.dir={tmp_path / 'out' / name}", capsys=capsys)
        assert_one_line_error(code, err, "error: world_model: ")
        assert snapshot(folder) == before, name
        assert not (tmp_path / "out" / name).exists(), name


def test_a_manifest_from_a_future_format_asks_for_an_upgrade(tiny_dataset, tmp_path, capsys):
    data = tmp_path / "ds"
    data.mkdir()
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    text = json.dumps({**manifest, "format_version": 99, "new_field": 1})
    (data / "manifest.json").write_text(text)
    code, _, err = call("collect", f"data_dir={data}", "episodes=1", "env.image_size=32",
                        "progress=false", f"hydra.run.dir={tmp_path / 'out'}", capsys=capsys)
    assert_one_line_error(code, err, "error: ")
    assert "format version 99" in err and "upgrade jepa_world" in err
    assert (data / "manifest.json").read_text() == text
    assert sorted(p.name for p in data.iterdir()) == ["manifest.json"]


def test_train_wm_ignores_a_feature_cache_of_another_encoder(tiny_dataset, tmp_path, capsys):
    from jepa_world.training.wm_data import cached_encode_episodes

    def encode(scale):
        return lambda frames: torch.full((frames.shape[0], 2, 4), scale)

    cache = tmp_path / "cache"
    first = cached_encode_episodes(tiny_dataset, [0, 1], encode(1.0), "aaaa", cache)
    (written,) = cache.iterdir()
    # the file copied under the name of another encoder's fingerprint
    (cache / written.name.replace("aaaa", "bbbb")).write_bytes(written.read_bytes())
    second = cached_encode_episodes(tiny_dataset, [0, 1], encode(2.0), "bbbb", cache)
    assert torch.equal(first.tokens, torch.ones_like(first.tokens))
    assert torch.equal(second.tokens, torch.full_like(second.tokens, 2.0))  # encoded again
    again = cached_encode_episodes(tiny_dataset, [0, 1], encode(3.0), "bbbb", cache)
    assert torch.equal(again.tokens, second.tokens)  # the rewritten cache is trusted
    assert "written by another encoder" in capsys.readouterr().out
