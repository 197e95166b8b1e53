"""Frozen probes: heads, task labels, that a probe finds a linear signal and not noise, encoder
specs, and `python -m jepa_world.probe` end to end on a tiny dataset."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_world.checkpoints import Pretrained, save_pretrained
from jepa_world.errors import ConfigError
from jepa_world.models.presets import (
    ACPredictorConfig,
    EncoderConfig,
    build_encoder,
    config_to_dict,
)
from jepa_world.probes import (
    AttentiveProbe,
    LinearProbe,
    ProbeConfig,
    build_probe,
    extract_features,
    load_encoder,
    motion_labels,
    r2_score,
    train_probe,
)
from jepa_world.probes.heads import pool_reassociated
from jepa_world.probes.tasks import angle_change, majority_chance, state_targets
from jepa_world.world_model import WorldModel, WorldModelConfig
from tests.conftest import PYTHON, REPO, python_env

#: 32 px, patch 8 (4 x 4 tokens a frame), width 32, one block.
SMALL_ENCODER = EncoderConfig(img_size=32, patch_size=8, num_frames=4, embed_dim=32, depth=1,
                              num_heads=2, mlp_hidden_dim=64)


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- heads


def test_heads_shapes():
    x = torch.randn(3, 10, 32)
    attentive = AttentiveProbe(32, 5, num_queries=2, depth=2, num_heads=2)
    assert attentive(x).shape == (3, 5)
    assert LinearProbe(32, 4)(x).shape == (3, 4)
    assert build_probe("linear", 32, 7)(x).shape == (3, 7)
    assert build_probe("attentive", 32, 7, num_heads=4)(x).shape == (3, 7)


def test_attentive_probe_pools_exactly_like_the_attentive_pooler():
    torch.manual_seed(0)
    probe = AttentiveProbe(32, 3, num_queries=2, num_heads=4).double()
    for p in probe.parameters():  # move every parameter off its initial value
        p.data.normal_(0.0, 0.3)
    x = torch.randn(5, 11, 32, dtype=torch.float64)
    fast, slow = pool_reassociated(probe.pooler, x), probe.pooler(x)
    torch.testing.assert_close(fast, slow)
    params = list(probe.pooler.parameters())
    for g_fast, g_slow in zip(torch.autograd.grad(fast.square().sum(), params),
                              torch.autograd.grad(slow.square().sum(), params), strict=True):
        torch.testing.assert_close(g_fast, g_slow)


@pytest.mark.parametrize("make, message", [
    (lambda: AttentiveProbe(32, 2, num_heads=3), "not divisible by num_heads"),
    (lambda: AttentiveProbe(32, 2, depth=0, num_heads=2), "depth must be >= 1"),
    (lambda: AttentiveProbe(32, 2, num_queries=0, num_heads=2), "num_tokens must be >= 1"),
    (lambda: LinearProbe(32, 0), "out_dim must be >= 1"),
    (lambda: build_probe("mlp", 32, 2), "unknown probe 'mlp'"),
])
def test_heads_reject_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("head", [AttentiveProbe(32, 2, num_heads=2), LinearProbe(32, 2)])
def test_heads_reject_wrong_token_shapes(head):
    for bad in (torch.randn(3, 32), torch.randn(3, 10, 16)):
        with pytest.raises(ValueError, match=r"tokens must be \[B, N, 32\]"):
            head(bad)


# --------------------------------------------------------------------------- task labels


def test_motion_labels_direction_speed_and_the_wrap_seam():
    t = np.arange(4)
    angles = np.stack([
        0.5 + 0.01 * t,  # counter-clockwise, slow
        0.5 + 0.30 * t,  # counter-clockwise, fast
        -1.0 - 0.01 * t,  # clockwise, slow
        -1.0 - 0.30 * t,  # clockwise, fast
        3.0 + 0.2 * t,  # ccw fast across +pi: wrapped values jump to about -3.0
        -3.0 - 0.2 * t,  # cw fast across -pi
    ])
    wrapped = (angles + math.pi) % (2 * math.pi) - math.pi
    assert wrapped[4, -1] < 0  # the synthetic sequence really crosses the seam
    np.testing.assert_allclose(angle_change(wrapped), angles[:, -1] - angles[:, 0], atol=1e-9)
    labels, threshold = motion_labels(wrapped, threshold=0.1)
    assert threshold == 0.1
    assert labels.tolist() == [2, 3, 0, 1, 3, 1]  # 2 * (ccw) + fast
    _, median = motion_labels(wrapped)
    assert median == pytest.approx(np.median(np.abs(angles[:, -1] - angles[:, 0])))
    with pytest.raises(ValueError, match="L >= 2"):
        motion_labels(wrapped[:, :1])


def test_state_targets_and_chance():
    q = np.array([[0.0, math.pi / 2]])
    np.testing.assert_allclose(state_targets(q), [[0.0, 1.0, 1.0, 0.0]], atol=1e-7)
    chance = majority_chance(torch.tensor([1, 1, 0, 2]), torch.tensor([1, 0, 0, 1, 1]))
    assert chance == pytest.approx(0.6)


# --------------------------------------------------------------------------- training


def test_probe_finds_a_linear_signal_but_not_noise():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(400, 6, 16, generator=g)
    weights = torch.randn(16, 3, generator=g)
    signal = feats.mean(1) @ weights  # a linear function of the mean-pooled tokens
    noise = torch.randn(400, 3, generator=g)  # independent of the features
    train, test = slice(0, 300), slice(300, 400)
    scores = {}
    for name, y in (("signal", signal), ("noise", noise)):
        torch.manual_seed(0)
        run = train_probe(LinearProbe(16, 3), feats[train], y[train], feats[test], y[test],
                          "regression", epochs=20, batch_size=32, lr=1e-2, seed=0)
        scores[name] = run.score
        assert len(run.losses) == 20 and run.losses[-1] < run.losses[0]
    assert scores["signal"] > 0.95, scores
    assert abs(scores["noise"]) < 0.25, scores  # over-fitting 16 weights on 300 samples: ~-0.1
    torch.manual_seed(0)
    run = train_probe(AttentiveProbe(16, 3, num_heads=2), feats[train], signal[train],
                      feats[test], signal[test], "regression", epochs=10, lr=1e-2, seed=0)
    assert run.score > 0.8, run.scores
    labels = (signal[:, 0] > 0).long()
    torch.manual_seed(0)
    run = train_probe(LinearProbe(16, 2), feats[train], labels[train], feats[test],
                      labels[test], "classification", epochs=10, lr=1e-1, seed=0)
    assert run.score > 0.9, run.scores  # chance: about 0.5


def test_r2_score_values():
    y = torch.tensor([[1.0, 2.0], [2.0, 0.0], [3.0, 1.0]])
    assert r2_score(y, y) == 1.0
    assert r2_score(y.mean(0).expand(3, 2), y) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="constant"):
        r2_score(y, torch.ones(3, 2))


# --------------------------------------------------------------------------- encoders


def save_fake_checkpoint(folder: Path, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    encoder, target = build_encoder(SMALL_ENCODER), build_encoder(SMALL_ENCODER)
    config = {"encoder": config_to_dict(SMALL_ENCODER), "predictor_type": "masked"}
    save_pretrained(Pretrained(encoder, target, None, "jepa_world", config), folder)
    return target


def save_fake_world_model(folder: Path) -> WorldModel:
    torch.manual_seed(1)
    wm = WorldModel(WorldModelConfig(
        encoder=SMALL_ENCODER, action_dim=2,
        predictor=ACPredictorConfig(predictor_dim=32, depth=1, num_heads=2, mlp_hidden_dim=64)))
    wm.save_pretrained(folder)
    return wm


def test_encoder_specs(tmp_path):
    step = tmp_path / "run" / "checkpoints" / "step_000010"
    target = save_fake_checkpoint(step)
    (step.parent / "latest").write_text("step_000010\n")
    for spec in (step, tmp_path / "run", step.parent / "latest"):
        enc = load_encoder(str(spec), "mine")
        assert enc.source == f"target_encoder of {step}"
        assert not enc.module.training
        assert all(not p.requires_grad for p in enc.module.parameters())
        assert torch.equal(enc.module.patch_embed.proj.weight, target.patch_embed.proj.weight)
    wm = save_fake_world_model(tmp_path / "wm")
    enc = load_encoder(str(tmp_path / "wm"))
    assert enc.source.startswith("encoder of world model")
    assert torch.equal(enc.module.norm.weight, wm.encoder.norm.weight)
    a, b, c = (load_encoder(s).module for s in ("random:tiny", "random:tiny", "random:tiny:1"))
    assert torch.equal(a.patch_embed.proj.weight, b.patch_embed.proj.weight)
    assert not torch.equal(a.patch_embed.proj.weight, c.patch_embed.proj.weight)
    for spec, message in (("random:huge", "unknown preset 'huge'"), ("random:tiny:x", "seed"),
                          (str(tmp_path / "nope"), "no such file or folder"),
                          (str(tmp_path), "folder without config.json"),
                          ("pkg:pretrained/not_shipped", "is not installed .* encoders=")):
        with pytest.raises(ConfigError, match=message):
            load_encoder(spec)


def test_extract_features_frames_and_clips():
    torch.manual_seed(0)
    enc = load_encoder("random:tiny")
    pixels = torch.randint(0, 256, (3, 4, 3, 32, 32), dtype=torch.uint8)
    frames = extract_features(enc, pixels[:, :1], batch_size=2)
    clips = extract_features(enc, pixels, batch_size=2)
    assert frames.shape == (3, 16, 192) and frames.dtype == torch.float16
    assert clips.shape == (3, 2 * 16, 192)
    # one frame = the frame repeated into one tubelet, as VideoViT.encode_frames does
    from jepa_world.models.inputs import IMAGENET_MEAN, IMAGENET_STD
    x = pixels[:, :1].float().div(255).permute(0, 2, 1, 3, 4)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)) / torch.tensor(
        IMAGENET_STD).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        expected = enc.module.encode_frames(x)
    torch.testing.assert_close(frames.float(), expected, atol=5e-3, rtol=5e-3)
    with pytest.raises(ConfigError, match="not divisible by tubelet"):
        extract_features(enc, pixels[:, :3])


def test_config_validation_names_the_field():
    cfg = ProbeConfig(encoders=["random:tiny", {"name": "b", "spec": "x"}])
    assert [(e.name, e.spec) for e in cfg.encoders] == [("random:tiny", "random:tiny"), ("b", "x")]
    for kwargs, message in ((dict(tasks=["pose"]), "tasks: 'pose' is not one of"),
                            (dict(probes=["mlp"]), "probes: 'mlp' is not one of"),
                            (dict(encoders=["a", {"name": "a", "spec": "b"}]), "encoders: "),
                            (dict(encoders=[{"path": "x"}]), r"encoders\[0\]: unknown keys"),
                            (dict(seeds=[]), "seeds: "), (dict(lr=0), "lr: ")):
        with pytest.raises(ConfigError, match=message):
            ProbeConfig(**kwargs)


# --------------------------------------------------------------------------- command line


def run_cli(*args, timeout=240):
    return subprocess.run([PYTHON, "-m", "jepa_world.probe", *args], env=dict(
        python_env(), OMP_NUM_THREADS="1"), cwd=REPO, capture_output=True, text=True,
        timeout=timeout)


def test_probe_command_end_to_end(tiny_dataset, tmp_path):
    save_fake_checkpoint(tmp_path / "ckpt")
    save_fake_world_model(tmp_path / "wm")
    out = tmp_path / "out"
    proc = run_cli(f"encoders=[{{name:fake,spec:'{tmp_path / 'ckpt'}'}},"
                   f"{{name:wm,spec:'{tmp_path / 'wm'}'}},random:tiny]",
                   f"data.data_dir={tiny_dataset}", "data.collect=false", "seeds=[0,1]",
                   "epochs=2", "batch_size=16", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    results = out / "probe_results.json"
    assert f"results: {results}" in proc.stdout
    assert "| encoder | task | probe | metric | mean ± std | chance |" in proc.stdout
    rows = json.loads(results.read_text())
    assert len(rows) == 3 * 2 * 2  # encoders x tasks x probes
    for row in rows:
        assert {"encoder", "task", "probe", "metric", "mean", "std", "seeds"} <= set(row)
        assert row["seeds"] == [0, 1] and len(row["values"]) == 2
        assert math.isfinite(row["mean"]) and row["std"] >= 0
        assert (row["chance"] is None) == (row["task"] == "state")
    assert {r["encoder"] for r in rows} == {"fake", "wm", "random:tiny"}
    assert any((out / "tb").iterdir())


def test_probe_command_bad_encoder_spec(tmp_path):
    proc = run_cli("encoders=[runs/does/not/exist]", f"hydra.run.dir={tmp_path}/out")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(
        "error: encoders[0] (runs/does/not/exist): no such file or folder"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
