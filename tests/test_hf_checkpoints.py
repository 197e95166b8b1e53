"""Hugging Face transformers ``VJEPA2Model`` folders: conformance with a tiny fixture, clear errors,
export that transformers loads back with the same features, WorldModel and probe on top.

The fixture lives in ``<repo>/../shared/fixtures/hf_vjepa2`` (override: ``JEPA_WORLD_HF_FIXTURES``);
its tests are skipped when the folder is absent. Tests that run transformers itself skip when it
is not installed (``pip install transformers``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from jepa_world.checkpoints import CheckpointError, Pretrained, load_pretrained, save_pretrained
from jepa_world.errors import ConfigError
from jepa_world.hf_vjepa2 import HF_FORMAT, predict_targets, save_hf
from jepa_world.models import MaskedPredictor, VideoViT
from jepa_world.models.presets import (
    ACPredictorConfig,
    EncoderConfig,
    PredictorConfig,
    build_encoder,
    build_predictor,
    config_to_dict,
)
from jepa_world.probes import load_encoder
from jepa_world.world_model import WorldModel
from tests.conftest import PYTHON, REPO, python_env

DEFAULT_FIXTURES = REPO.parent / "shared" / "fixtures" / "hf_vjepa2"
FIXTURES = Path(os.environ.get("JEPA_WORLD_HF_FIXTURES", DEFAULT_FIXTURES))
TOL = 1e-4

needs_fixture = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"transformers V-JEPA 2 fixture not found at {FIXTURES}")

pytestmark = pytest.mark.usefixtures("one_thread")

#: 32 px, patch 8, 4 frames, tubelet 2: 2 x 4 x 4 = 32 tokens; width 48 (2 heads of 24).
GRID = dict(img_size=32, patch_size=8, num_frames=4, tubelet_size=2)


def transformers_or_skip():
    return pytest.importorskip("transformers", reason="transformers is not installed "
                               "(pip install transformers) to check against it")


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != expected {tuple(b.shape)}"
    return (a - b).abs().max().item()


def tiny_bundle(seed: int = 0, pos_embed: str = "rope") -> Pretrained:
    """A random RoPE encoder + masked predictor with non-zero mask tokens, like a pretrain
    checkpoint (target encoder included)."""
    torch.manual_seed(seed)
    enc_cfg = EncoderConfig(**GRID, embed_dim=48, depth=2, num_heads=2, mlp_hidden_dim=96,
                            pos_embed=pos_embed)
    pred_cfg = PredictorConfig(**GRID, embed_dim=48, predictor_dim=24, depth=1, num_heads=2,
                               mlp_hidden_dim=48, num_mask_tokens=3, pos_embed=pos_embed)
    predictor = build_predictor(pred_cfg)
    with torch.no_grad():
        for token in predictor.mask_tokens:
            token.normal_()
    config = {"encoder": config_to_dict(enc_cfg), "predictor": config_to_dict(pred_cfg),
              "predictor_type": "masked"}
    return Pretrained(build_encoder(enc_cfg).eval(), build_encoder(enc_cfg).eval(),
                      predictor.eval(), "jepa_world", config)


def tiny_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``video [2, 3, 4, 32, 32]``, context ``[2, 6]`` and target ``[2, 5]`` token indices."""
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(2, 3, 4, 32, 32, generator=gen)
    order = torch.stack([torch.randperm(32, generator=gen) for _ in range(2)])
    return video, order[:, :6], order[:, 6:11]


@pytest.fixture
def hf_dir(tmp_path) -> Path:
    """A transformers folder written by our exporter (no transformers needed)."""
    return save_pretrained(tiny_bundle(), tmp_path / "hf", format="hf")


# --------------------------------------------------------------------------- conformance


@needs_fixture
def test_fixture_encoder_and_predictor_match_transformers():
    exp = load_file(str(FIXTURES / "hf_vjepa2_tiny_expected.safetensors"))
    model = load_pretrained(FIXTURES / "hf_vjepa2_tiny")
    assert model.format == HF_FORMAT and model.notes == []
    assert isinstance(model.encoder, VideoViT) and isinstance(model.predictor, MaskedPredictor)
    assert model.target_encoder is None and model.predictor.num_mask_tokens == 2
    enc, pred = predict_targets(model.encoder.eval(), model.predictor.eval(), exp["video"],
                                exp["context_idx"], exp["target_idx"])
    enc_err, pred_err = max_err(enc, exp["encoder_out"]), max_err(pred, exp["predictor_out"])
    print(f"max abs error vs transformers: encoder {enc_err:.2e}, predictor {pred_err:.2e}")
    assert enc_err <= TOL, f"encoder max abs error {enc_err:.2e}"
    assert pred_err <= TOL, f"predictor max abs error {pred_err:.2e}"


@needs_fixture
def test_fixture_loads_from_its_safetensors_file_too():
    exp = load_file(str(FIXTURES / "hf_vjepa2_tiny_expected.safetensors"))
    model = load_pretrained(FIXTURES / "hf_vjepa2_tiny" / "model.safetensors")
    with torch.no_grad():
        assert max_err(model.encoder.eval()(exp["video"]), exp["encoder_out"]) <= TOL


def test_own_fixture_from_transformers_matches(tmp_path):
    transformers = transformers_or_skip()
    config = transformers.VJEPA2Config(
        crop_size=32, frames_per_clip=4, tubelet_size=2, patch_size=8, hidden_size=48,
        num_attention_heads=2, num_hidden_layers=2, pred_hidden_size=24,
        pred_num_attention_heads=2, pred_num_hidden_layers=2, pred_num_mask_tokens=3,
        mlp_ratio=2.0, pred_mlp_ratio=3.0, qkv_bias=False, layer_norm_eps=1e-5)
    torch.manual_seed(0)
    hf_model = transformers.VJEPA2Model(config).eval()
    with torch.no_grad():  # perturb everything (mask tokens start at zero, LayerNorms at 1/0)
        for param in hf_model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    hf_model.save_pretrained(tmp_path / "hf")
    video, ctx, tgt = tiny_inputs()
    with torch.no_grad():
        out = hf_model(pixel_values_videos=video.transpose(1, 2), context_mask=[ctx],
                       target_mask=[tgt])
    model = load_pretrained(tmp_path / "hf")
    enc, pred = predict_targets(model.encoder.eval(), model.predictor.eval(), video, ctx, tgt)
    assert max_err(enc, out.last_hidden_state) <= TOL
    assert max_err(pred, out.predictor_output.last_hidden_state) <= TOL


# --------------------------------------------------------------------------- errors


def _tamper_weights(folder: Path, edit) -> None:
    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"), {"format": "pt"})


def test_missing_key_is_one_clear_error(hf_dir):
    _tamper_weights(hf_dir, lambda s: s.pop("encoder.layer.1.attention.key.bias"))
    with pytest.raises(CheckpointError, match=r"missing keys \['encoder.layer.1.attention.key."
                                              r"bias'\]") as err:
        load_pretrained(hf_dir)
    assert len(str(err.value).splitlines()) == 1


def test_unexpected_key_is_one_clear_error(hf_dir):
    def add(state):
        state["encoder.layer.2.norm1.weight"] = torch.ones(48)
    _tamper_weights(hf_dir, add)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['encoder.layer.2.norm1.weight'"):
        load_pretrained(hf_dir)


def test_shape_mismatch_names_the_transformers_key(hf_dir):
    def grow(state):
        state["predictor.embeddings.mask_tokens"] = torch.zeros(4, 1, 1, 24)
    _tamper_weights(hf_dir, grow)
    with pytest.raises(CheckpointError, match=r"predictor.embeddings.mask_tokens: checkpoint "
                                              r"\(4, 1, 1, 24\) vs model \(3, 1, 1, 24\)"):
        load_pretrained(hf_dir)


@pytest.mark.parametrize("change, message", [
    ({"tubelet_size": 3}, "frames_per_clip 4 is not a multiple of tubelet_size 3"),
    ({"patch_size": [8, 8]}, "patch_size=\\[8, 8\\], expected a non-negative integer"),
    ({"hidden_act": "silu"}, "hidden_act='silu'"),
    ({"architectures": ["VJEPA2ForVideoClassification"]}, "only VJEPA2Model folders"),
])
def test_unsupported_config_is_one_clear_error(hf_dir, change, message):
    path = hf_dir / "config.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **change)))
    with pytest.raises(CheckpointError, match=message) as err:
        load_pretrained(hf_dir)
    assert len(str(err.value).splitlines()) == 1


def test_defaults_for_left_out_config_keys_are_noted(hf_dir):
    path = hf_dir / "config.json"
    config = json.loads(path.read_text())
    assert config.pop("hidden_act") == "gelu"
    path.write_text(json.dumps(config))
    assert "config.json has no 'hidden_act': transformers' default 'gelu' assumed" in \
        load_pretrained(hf_dir).notes


def test_sharded_folder_loads_and_a_bad_index_is_refused(hf_dir):
    state = load_file(str(hf_dir / "model.safetensors"))
    (hf_dir / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2],
              "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in shards.items():
        save_file({k: state[k] for k in part}, str(hf_dir / name), {"format": "pt"})
    index = {"weight_map": {k: name for name, part in shards.items() for k in part}}
    (hf_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    model = load_pretrained(hf_dir)
    assert torch.equal(model.predictor.mask_tokens[2],
                       state["predictor.embeddings.mask_tokens"][2])
    index["weight_map"][keys[0]] = "../elsewhere.safetensors"
    (hf_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="shard names must be plain file names"):
        load_pretrained(hf_dir)


def test_overrides_are_refused_for_transformers_folders(hf_dir):
    with pytest.raises(TypeError, match="carries its whole config"):
        load_pretrained(hf_dir, num_heads=4)


# --------------------------------------------------------------------------- export


def test_export_round_trip_without_transformers(hf_dir):
    bundle = tiny_bundle()
    back = load_pretrained(hf_dir)
    video, ctx, tgt = tiny_inputs()
    want = predict_targets(bundle.target_encoder, bundle.predictor, video, ctx, tgt)
    got = predict_targets(back.encoder.eval(), back.predictor.eval(), video, ctx, tgt)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["model_type"] == "vjepa2" and config["architectures"] == ["VJEPA2Model"]


def test_export_loads_in_transformers_with_the_same_outputs(hf_dir):
    transformers = transformers_or_skip()
    bundle = tiny_bundle()
    hf_model = transformers.VJEPA2Model.from_pretrained(hf_dir).eval()
    video, ctx, tgt = tiny_inputs()
    with torch.no_grad():
        out = hf_model(pixel_values_videos=video.transpose(1, 2), context_mask=[ctx],
                       target_mask=[tgt])
    enc, pred = predict_targets(bundle.target_encoder, bundle.predictor, video, ctx, tgt)
    assert max_err(out.last_hidden_state, enc) <= TOL
    assert max_err(out.predictor_output.last_hidden_state, pred) <= TOL


def test_encoder_only_export_round_trips(tmp_path):
    bundle = tiny_bundle()
    bundle.predictor = None
    folder = save_hf(bundle, tmp_path / "enc")
    back = load_pretrained(folder)
    assert back.predictor is None and any("encoder alone" in n for n in back.notes)
    video, _, _ = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(back.encoder.eval()(video), bundle.target_encoder(video))


def test_sincos_encoder_export_says_there_is_no_counterpart(tmp_path):
    with pytest.raises(CheckpointError, match="sin-cos .*no transformers counterpart"):
        save_pretrained(tiny_bundle(pos_embed="sincos"), tmp_path / "x", format="hf")
    assert not (tmp_path / "x").exists()


def test_encoder_without_time_positions_export_is_refused(tmp_path):
    bundle = tiny_bundle()
    bundle.config["encoder"]["time_positions"] = False
    with pytest.raises(CheckpointError, match="no time positions"):
        save_pretrained(bundle, tmp_path / "x", format="hf")
    assert not (tmp_path / "x").exists()


def test_ac_predictor_export_is_refused(tmp_path):
    bundle = tiny_bundle()
    cfg = ACPredictorConfig(**GRID, embed_dim=48, predictor_dim=24, depth=1, num_heads=2,
                            mlp_hidden_dim=48)
    bundle.predictor = build_predictor(cfg)
    with pytest.raises(CheckpointError, match="ACPredictor has no transformers counterpart"):
        save_pretrained(bundle, tmp_path / "x", format="hf")
    with pytest.raises(ValueError, match="format must be"):
        save_pretrained(bundle, tmp_path / "x", format="onnx")


# --------------------------------------------------------------------------- on top


def test_world_model_from_hf(hf_dir):
    bundle = tiny_bundle()
    wm = WorldModel.from_hf(hf_dir, action_dim=3, input_norm="none")
    assert wm.config.image_size == 32 and wm.tokens_per_frame == 16
    frames = torch.rand(2, 3, 3, 32, 32)  # [B, T, 3, H, W]
    z = wm.encode(frames)
    assert z.shape == (2, 3, 16, 48)
    assert torch.equal(wm.encoder.patch_embed.proj.weight,
                       bundle.target_encoder.patch_embed.proj.weight)
    with pytest.raises(CheckpointError, match="not a transformers V-JEPA 2 folder"):
        WorldModel.from_hf(save_pretrained(bundle, hf_dir.parent / "own"))


def test_probe_spec_hf(hf_dir, tmp_path):
    enc = load_encoder(f"hf:{hf_dir}")
    assert enc.source == f"encoder of {hf_dir}" and not enc.module.training
    assert load_encoder(f"hf:{hf_dir / 'model.safetensors'}").source == f"encoder of {hf_dir}"
    with pytest.raises(ConfigError, match="is not a transformers V-JEPA 2 folder"):
        load_encoder(f"hf:{tmp_path}")


def test_probe_command_with_hf_encoder(tiny_dataset, hf_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [PYTHON, "-m", "jepa_world.probe", f"encoders=[{{name:hf,spec:'hf:{hf_dir}'}}]",
         f"data.data_dir={tiny_dataset}", "data.collect=false", "seeds=[0]", "epochs=1",
         "batch_size=16", f"hydra.run.dir={out}"],
        env=dict(python_env(), OMP_NUM_THREADS="1"), cwd=REPO, capture_output=True, text=True,
        timeout=240)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "probe_results.json").read_text())
    assert rows and {r["encoder"] for r in rows} == {"hf"}
