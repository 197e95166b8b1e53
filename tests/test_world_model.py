"""WorldModel: shapes, validation, rollout semantics, chunking, gradients, cost, persistence,
and conformance with the official V-JEPA 2-AC tiny fixture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from einops import rearrange
from safetensors.torch import load_file

from jepa_world.checkpoints import CheckpointError
from jepa_world.models.pooling import AttentivePooler, PoolerConfig
from jepa_world.models.presets import ACPredictorConfig, EncoderConfig
from jepa_world.world_model import Prediction, WorldModel, WorldModelConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "vjepa_official"
FIXTURES = Path(os.environ.get("JEPA_WORLD_FIXTURES", DEFAULT_FIXTURES))


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(pooled: int | None = None, **overrides) -> WorldModelConfig:
    """Width 32, 16 px, patch 8 (4 tokens a frame), encoder depth 1, predictor depth 2."""
    fields = dict(
        encoder=EncoderConfig(img_size=16, patch_size=8, num_frames=2, embed_dim=32, depth=1,
                              num_heads=2, mlp_hidden_dim=64),
        predictor=ACPredictorConfig(predictor_dim=32, depth=2, num_heads=2, mlp_hidden_dim=64),
        pooler=PoolerConfig(num_tokens=pooled, num_heads=2, mlp_ratio=2) if pooled else None,
        action_dim=2, frameskip=2, proprio_dim=3, proprio_head=True, history_length=3,
    )
    fields.update(overrides)
    return WorldModelConfig(**fields)


def tiny_model(pooled: int | None = None, seed: int = 0, **overrides) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(tiny_config(pooled, **overrides)).eval()


def inputs(wm: WorldModel, b: int = 2, t: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    c = wm.config
    z = torch.randn(b, t, wm.tokens_per_frame, wm.latent_dim, generator=g)
    actions = torch.randn(b, t, c.step_action_dim, generator=g)
    proprio = torch.randn(b, t, c.proprio_dim, generator=g)
    return z, actions, proprio


# --------------------------------------------------------------------------- shapes / encode


@pytest.mark.parametrize("pooled", [None, 1, 3])
def test_encode_and_predict_shapes(pooled):
    wm = tiny_model(pooled)
    n = pooled or 4
    frames = torch.randint(0, 256, (2, 3, 3, 16, 16), dtype=torch.uint8)
    z = wm.encode(frames)
    assert z.shape == (2, 3, n, 32) and wm.tokens_per_frame == n
    assert torch.allclose(wm.encode(frames.float() / 255), z, atol=1e-6)
    out = wm.predict(z, torch.randn(2, 3, 4), torch.randn(2, 3, 3))
    assert isinstance(out, Prediction)
    assert out.latents.shape == (2, 3, n, 32) and out.proprio.shape == (2, 3, 3)


def test_no_proprio_model():
    wm = tiny_model(proprio_dim=0, proprio_head=False)
    z, actions, _ = inputs(wm)
    out = wm.predict(z, actions)
    assert out.proprio is None and out.latents.shape == z.shape
    pred = wm.rollout(z[:, :1], torch.randn(2, 3, 2, 4))
    assert pred.shape == (2, 3, 2, 4, 32)


def test_encoder_frozen_and_stays_in_eval():
    wm = tiny_model(2).train()
    assert not wm.encoder.training and wm.predictor.training
    assert not any(p.requires_grad for p in wm.encoder.parameters())
    assert all(p.requires_grad for p in wm.pooler.parameters())


# --------------------------------------------------------------------------- validation


def test_validation_errors_name_expected_shapes():
    wm = tiny_model()
    z, actions, proprio = inputs(wm)
    with pytest.raises(ValueError, match=r"actions must be \[B, T, 4\] \(action_dim 2 x frameskip"
                                         r" 2\) = \[2, 2, 4\], got \[2, 2, 2\]"):
        wm.predict(z, actions[..., :2], proprio)
    with pytest.raises(ValueError, match=r"history must be \[B, T, 4, 32\].*got \[2, 8, 32\]"):
        wm.predict(rearrange(z, "b t n d -> b (t n) d"), actions, proprio)
    with pytest.raises(ValueError, match=r"proprio must be \[B, T, 3\].*got None"):
        wm.predict(z, actions)
    with pytest.raises(ValueError, match=r"frames must be \[B, T, 3, 16, 16\], got \[2, 3, 16,"):
        wm.encode(torch.zeros(2, 3, 16, 16))
    sequences = r"action_sequences must be \[B, S, H, 4\]"
    with pytest.raises(ValueError, match=sequences + r".*got \[2, 5, 4\]"):
        wm.rollout(z, torch.zeros(2, 5, 4), proprio, history_actions=actions[:, :1])
    with pytest.raises(ValueError, match=sequences + r".*B=2, got \[2, 5, 3, 6\]"):
        wm.rollout(z, torch.zeros(2, 5, 3, 6), proprio, history_actions=actions[:, :1])
    with pytest.raises(ValueError, match=r"pass history_actions \[B, T - 1, 4\]"):
        wm.rollout(z, torch.zeros(2, 5, 3, 4), proprio)
    with pytest.raises(ValueError, match="input_norm"):
        tiny_config(input_norm="zscore")


# --------------------------------------------------------------------------- rollout


def step_by_step(wm, z, proprio, past, cands, window):
    """Reference: `predict` on its own predictions, one candidate at a time."""
    b, s, horizon, _ = cands.shape
    out = torch.zeros(b, s, horizon, wm.tokens_per_frame, wm.latent_dim)
    for i in range(b):
        for j in range(s):
            frames, acts, states = z[i:i + 1], past[i:i + 1], proprio[i:i + 1]
            for k in range(horizon):
                acts = torch.cat([acts, cands[i:i + 1, j, k:k + 1]], dim=1)
                w = min(frames.shape[1], window)
                pred = wm.predict(frames[:, -w:], acts[:, -w:], states[:, -w:])
                frames = torch.cat([frames, pred.latents[:, -1:]], dim=1)
                states = torch.cat([states, pred.proprio[:, -1:]], dim=1)
                out[i, j, k] = pred.latents[0, -1]
    return out


@pytest.mark.parametrize("pooled", [None, 2])
def test_rollout_equals_step_by_step_predict(pooled):
    wm = tiny_model(pooled)
    z, actions, proprio = inputs(wm, b=2, t=2)
    cands = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = wm.rollout(z, cands, proprio, history_actions=actions[:, :1], max_context=3)
        want = step_by_step(wm, z, proprio, actions[:, :1], cands, window=3)
    assert got.shape == (2, 2, 4, wm.tokens_per_frame, 32)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_chunked_rollout_equals_unchunked():
    wm = tiny_model(2)
    z, actions, proprio = inputs(wm, b=2, t=2)
    cands = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(6))
    kw = dict(history_actions=actions[:, :1], return_proprio=True)
    with torch.no_grad():
        full = wm.rollout(z, cands, proprio, chunk_size=10, **kw)
        for chunk in (1, 3, 4, 100):
            part = wm.rollout(z, cands, proprio, chunk_size=chunk, **kw)
            torch.testing.assert_close(part.latents, full.latents, atol=1e-5, rtol=0)
            torch.testing.assert_close(part.proprio, full.proprio, atol=1e-5, rtol=0)
    assert full.proprio.shape == (2, 5, 3, 3)


def test_gradient_flows_to_actions():
    wm = tiny_model(1)
    z, actions, proprio = inputs(wm, b=1, t=1)
    cands = torch.zeros(1, 4, 3, 4, requires_grad=True)
    goal = torch.randn(1, 1, 32)
    energy = wm.cost(wm.rollout(z, cands, proprio, chunk_size=3)[:, :, -1], goal, kind="l2")
    assert energy.shape == (1, 4)
    energy.sum().backward()
    assert cands.grad is not None and cands.grad.abs().sum() > 0
    assert cands.grad[:, :, -1].abs().sum() > 0  # the last action moves the last prediction


def test_dtype_move_float64():
    wm = tiny_model(2).to(torch.float64)
    frames = torch.randint(0, 256, (1, 2, 3, 16, 16), dtype=torch.uint8)
    z = wm.encode(frames)
    assert z.dtype == torch.float64
    pred = wm.rollout(z, torch.zeros(1, 2, 2, 4, dtype=torch.float64),
                      torch.zeros(1, 2, 3, dtype=torch.float64),
                      history_actions=torch.zeros(1, 1, 4, dtype=torch.float64))
    assert pred.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_move_matches_cpu():
    wm = tiny_model(2)
    frames = torch.randint(0, 256, (2, 2, 3, 16, 16), dtype=torch.uint8)
    cands = torch.randn(2, 5, 3, 4)
    z, actions, proprio = inputs(wm, b=2, t=2)
    kw = dict(history_actions=actions[:, :1], chunk_size=4)
    with torch.no_grad():
        want_z, want = wm.encode(frames), wm.rollout(z, cands, proprio, **kw)
        gpu = wm.to("cuda")
        kw["history_actions"] = kw["history_actions"].cuda()
        got_z = gpu.encode(frames.cuda())
        got = gpu.rollout(z.cuda(), cands.cuda(), proprio.cuda(), **kw)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = gpu.rollout(z.cuda(), cands.cuda(), proprio.cuda(), **kw)
    assert got.device.type == "cuda" and low.shape == want.shape
    torch.testing.assert_close(got_z.cpu(), want_z, atol=2e-3, rtol=0)  # cuDNN conv may use TF32
    torch.testing.assert_close(got.cpu(), want, atol=2e-3, rtol=0)
    assert (low.float().cpu() - want).abs().max() < 0.2


# --------------------------------------------------------------------------- cost


def test_cost_values_and_broadcasting():
    pred = torch.zeros(2, 3, 4, 2, 2)  # [B, S, H, N, D]
    goal = torch.ones(2, 2, 2)  # [B, N, D]
    goal[1] = 3.0
    l1 = WorldModel.cost(pred, goal, kind="l1")
    assert l1.shape == (2, 3, 4)
    assert torch.all(l1[0] == 1.0) and torch.all(l1[1] == 3.0)
    assert torch.all(WorldModel.cost(pred, goal, kind="l2")[1] == 9.0)
    # per-element values: |[0, 1, 2, 3] - 0| -> 1.5, squared -> 3.5
    p = torch.arange(4.0).reshape(1, 2, 2)
    assert WorldModel.cost(p, torch.zeros(2, 2)).item() == 1.5
    assert WorldModel.cost(p, torch.zeros(2, 2), kind="l2").item() == 3.5
    # goal of the same rank broadcasts the usual way; [B, S, N, D] aligns left
    assert WorldModel.cost(pred, goal[:, None, None]).shape == (2, 3, 4)
    assert WorldModel.cost(pred, torch.zeros(2, 3, 2, 2)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="goal must be"):
        WorldModel.cost(pred, torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="does not broadcast"):
        WorldModel.cost(pred, torch.zeros(5, 2, 2))
    with pytest.raises(ValueError, match="kind"):
        WorldModel.cost(pred, goal, kind="cos")


# --------------------------------------------------------------------------- persistence


def test_save_load_round_trip_exact(tmp_path):
    wm = tiny_model(2, env_id="jepa_world/Reach-v0")
    folder = wm.save_pretrained(tmp_path / "wm")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["format"] == "jepa_world.world_model"
    again = WorldModel.from_pretrained(folder).eval()
    assert again.config == wm.config
    frames = torch.randint(0, 256, (1, 2, 3, 16, 16), dtype=torch.uint8)
    z, actions, proprio = inputs(wm, b=1, t=2)
    cands = torch.randn(1, 3, 2, 4)
    with torch.no_grad():
        assert torch.equal(again.encode(frames), wm.encode(frames))
        a = wm.rollout(z, cands, proprio, history_actions=actions[:, :1], return_proprio=True)
        b = again.rollout(z, cands, proprio, history_actions=actions[:, :1], return_proprio=True)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.proprio, b.proprio)
    assert not any(p.requires_grad for p in again.encoder.parameters())


def test_from_pretrained_rejects_other_folders(tmp_path):
    from jepa_world.checkpoints import save_model

    save_model(torch.nn.Linear(2, 2), {"format": "something"}, tmp_path / "x")
    with pytest.raises(CheckpointError, match="not a jepa_world.world_model folder"):
        WorldModel.from_pretrained(tmp_path / "x")
    with pytest.raises(CheckpointError, match="not a readable"):
        WorldModel.from_pretrained(tmp_path / "absent")


def test_check_env():
    wm = tiny_model(env_id="jepa_world/Reach-v0")
    wm.check_env("jepa_world/Reach-v0")
    with pytest.raises(ValueError, match="trained on 'jepa_world/Reach-v0', not 'Other-v0'"):
        wm.check_env("Other-v0")


# --------------------------------------------------------------------------- pooler


def test_pooler_shapes_and_permutation_invariance():
    torch.manual_seed(0)
    pool = AttentivePooler(32, num_tokens=3, num_heads=4)
    x = torch.randn(2, 10, 32)
    out = pool(x)
    assert out.shape == (2, 3, 32)
    assert pool(torch.randn(2, 5, 10, 32)).shape == (2, 5, 3, 32)
    torch.testing.assert_close(pool(x[:, torch.randperm(10)]), out, atol=1e-5, rtol=1e-5)
    assert torch.allclose(out.mean(-1), torch.zeros(2, 3), atol=1e-5)  # layer-normed output
    with pytest.raises(ValueError, match=r"tokens must be \[B, N, 32\]"):
        pool(torch.randn(2, 10, 16))


# --------------------------------------------------------------------------- official fixture


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"official fixtures not found at {FIXTURES}")
def test_official_ac_fixture_through_world_model():
    exp = load_file(str(FIXTURES / "vjepa2_tiny_expected.safetensors"))
    wm = WorldModel.from_official(FIXTURES / "vjepa2_ac_tiny.pt",
                                  config=FIXTURES / "vjepa2_tiny_config.json", input_norm="none")
    assert wm.tokens_per_frame == 16 and wm.config.step_action_dim == 7
    feats = rearrange(exp["frame_features"], "b (t n) d -> b t n d", n=16)
    with torch.no_grad():
        z = wm.encode(rearrange(exp["frames"], "b c t h w -> b t c h w"))
        pred = wm.predict(feats[:, :3], exp["actions"], exp["states"][:, :3])
    assert (z - feats).abs().max().item() <= 1e-4
    want = rearrange(exp["ac_out"], "b (t n) d -> b t n d", n=16)
    assert (pred.latents - want).abs().max().item() <= 1e-4
    with torch.no_grad():  # one imagined step from the 3-frame history = the last prediction
        step = wm.rollout(feats[:, :3], exp["actions"][:, None, 2:3], exp["states"][:, :3],
                          history_actions=exp["actions"][:, :2])
    assert (step[:, 0, 0] - want[:, 2]).abs().max().item() <= 1e-4


def test_grid_pooler_is_position_aware_and_checks_shapes():
    from jepa_world.models.grid_pooling import GridPooler
    from jepa_world.models.pooling import PoolerConfig, build_pooler

    torch.manual_seed(0)
    pooler = build_pooler(16, 4, PoolerConfig(num_tokens=2, kind="grid", grid_channels=3,
                                              grid_hidden_dim=8))
    assert isinstance(pooler, GridPooler)
    tokens = torch.randn(2, 3, 4, 16)
    out = pooler(tokens)
    assert out.shape == (2, 3, 2, 16)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 3, 2), atol=1e-5, rtol=0)
    # the same tokens in other places are another frame (an attentive pooler would not tell)
    assert not torch.allclose(pooler(tokens.flip(-2)), out)
    with pytest.raises(ValueError, match=r"tokens must be \[\.\.\., 4, 16\]"):
        pooler(torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="pooler kind"):
        build_pooler(16, 4, PoolerConfig(kind="max"))


def test_half_precision_files_load_back_into_float32(tmp_path):
    model = WorldModel(tiny_config())
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    model.save_pretrained(tmp_path / "full")
    half, full = (tmp_path / n / "model.safetensors" for n in ("half", "full"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = WorldModel.from_pretrained(tmp_path / "half")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(),
                            strict=True):
        assert b.dtype == a.dtype, name
        torch.testing.assert_close(b, a.to(torch.float16).to(a.dtype), rtol=0, atol=0)
