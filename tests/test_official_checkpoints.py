"""Conformance with checkpoints saved by Meta's official V-JEPA / V-JEPA 2 code (tiny fixtures).

Fixtures live in ``<repo>/../shared/fixtures/vjepa_official`` (override: ``JEPA_WORLD_FIXTURES``);
the tests are skipped when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from jepa_world.checkpoints import (
    CheckpointError,
    Pretrained,
    load_model,
    load_pretrained,
    save_model,
    save_pretrained,
)
from jepa_world.models import ACPredictor, MaskedPredictor, VideoViT

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "vjepa_official"
FIXTURES = Path(os.environ.get("JEPA_WORLD_FIXTURES", DEFAULT_FIXTURES))
TOL = 1e-4

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"official checkpoint fixtures not found at {FIXTURES}"
)

CASES = {
    "vjepa1": ("vjepa1_tiny_sincos.pt", "vjepa1_tiny_config.json", "vjepa1_tiny_expected"),
    "vjepa2": ("vjepa2_tiny_rope.pt", "vjepa2_tiny_config.json", "vjepa2_tiny_expected"),
    "vjepa2_ac": ("vjepa2_ac_tiny.pt", "vjepa2_tiny_config.json", "vjepa2_tiny_expected"),
}


def _load(case: str) -> tuple[Pretrained, dict[str, torch.Tensor]]:
    ckpt, cfg, expected = CASES[case]
    model = load_pretrained(FIXTURES / ckpt, config=FIXTURES / cfg)
    return model, load_file(str(FIXTURES / f"{expected}.safetensors"))


@pytest.fixture(scope="module")
def loaded() -> dict[str, tuple[Pretrained, dict[str, torch.Tensor]]]:
    return {case: _load(case) for case in CASES}


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != expected {tuple(b.shape)}"
    return (a - b).abs().max().item()


def encoder_and_predictor_outputs(model: Pretrained, exp: dict[str, torch.Tensor]):
    with torch.no_grad():
        enc_out = model.encoder(exp["video"])
        ctx = model.encoder(exp["video"], masks=exp["context_idx"])
        pred_out = model.predictor(ctx, exp["context_idx"], exp["target_idx"], mask_index=1)
    return enc_out, pred_out


@pytest.mark.parametrize("case", ["vjepa1", "vjepa2"])
def test_encoder_and_predictor_match(loaded, case):
    model, exp = loaded[case]
    assert model.format == case
    assert isinstance(model.encoder, VideoViT) and isinstance(model.target_encoder, VideoViT)
    assert isinstance(model.predictor, MaskedPredictor)
    enc_out, pred_out = encoder_and_predictor_outputs(model, exp)
    assert max_err(enc_out, exp["encoder_out"]) <= TOL
    assert max_err(pred_out, exp["predictor_out"]) <= TOL


def test_vjepa2_frame_features_match(loaded):
    model, exp = loaded["vjepa2"]
    with torch.no_grad():
        feats = F.layer_norm(model.encoder.encode_frames(exp["frames"]), (192,))
    assert max_err(feats, exp["frame_features"]) <= TOL


def test_vjepa2_ac_matches(loaded):
    model, exp = loaded["vjepa2_ac"]
    assert model.format == "vjepa2_ac" and model.target_encoder is None
    assert isinstance(model.predictor, ACPredictor)
    assert any("extrinsics_encoder" in note for note in model.notes)
    with torch.no_grad():
        feats = F.layer_norm(model.encoder.encode_frames(exp["frames"]), (192,))
        out = model.predictor(exp["frame_features"][:, :48], exp["actions"], exp["states"][:, :3])
    assert max_err(feats, exp["frame_features"]) <= TOL
    assert max_err(out, exp["ac_out"]) <= TOL


def test_rope_checkpoint_notes_unused_pos_embed(loaded):
    model, _ = loaded["vjepa2"]
    assert any("unused pos_embed" in note for note in model.notes)
    assert model.config["encoder"]["pos_embed"] == "rope"


def test_overrides_instead_of_config(loaded):
    # Heads are not stored in tensors (192 -> 3 by the official table); the grid is given.
    model = load_pretrained(FIXTURES / CASES["vjepa2"][0], img_size=64, num_frames=4)
    assert any("num_heads=3 assumed" in note for note in model.notes)
    _, exp = loaded["vjepa2"]
    enc_out, pred_out = encoder_and_predictor_outputs(model, exp)
    assert max_err(enc_out, exp["encoder_out"]) <= TOL
    assert max_err(pred_out, exp["predictor_out"]) <= TOL


def test_grid_that_cannot_be_inferred_is_reported():
    with pytest.raises(CheckpointError, match="img_size"):
        load_pretrained(FIXTURES / CASES["vjepa1"][0])


def test_own_format_round_trip(loaded, tmp_path):
    for case in ("vjepa1", "vjepa2_ac"):
        model, exp = loaded[case]
        folder = save_pretrained(model, tmp_path / case)
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
        again = load_pretrained(folder)
        assert again.format == "jepa_world"
        assert (again.target_encoder is None) == (model.target_encoder is None)
        for name in ("encoder", "target_encoder", "predictor"):
            a, b = getattr(model, name), getattr(again, name)
            if a is None:
                continue
            for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
                assert torch.equal(x, y), f"{name}.{key}"
        with torch.no_grad():
            assert torch.equal(again.encoder(exp["video"]), model.encoder(exp["video"]))


def test_save_model_low_level(tmp_path):
    module = torch.nn.Linear(3, 2)
    save_model(module, {"kind": "linear"}, tmp_path)
    tensors, config = load_model(tmp_path)
    assert config == {"kind": "linear"} and torch.equal(tensors["weight"], module.weight)


def _rewritten(tmp_path: Path, edit) -> Path:
    obj = torch.load(FIXTURES / CASES["vjepa2"][0], map_location="cpu", weights_only=True)
    edit(obj)
    out = tmp_path / "edited.pt"
    torch.save(obj, out)
    return out


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    def edit(obj):
        del obj["encoder"]["module.backbone.norm.bias"]
        obj["encoder"]["module.backbone.extra_head.weight"] = torch.zeros(2)

    path = _rewritten(tmp_path, edit)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(path, config=FIXTURES / CASES["vjepa2"][1])
    message = str(info.value)
    assert "edited.pt[encoder]" in message
    assert "missing keys ['norm.bias']" in message
    assert "unexpected keys ['extra_head.weight']" in message


def test_shape_mismatch_is_reported(tmp_path):
    def edit(obj):
        obj["predictor"]["module.backbone.predictor_proj.bias"] = torch.zeros(5)

    path = _rewritten(tmp_path, edit)
    with pytest.raises(CheckpointError, match="predictor_proj.bias: checkpoint \\(5,\\)"):
        load_pretrained(path, config=FIXTURES / CASES["vjepa2"][1])


def test_corrupt_and_foreign_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt.*not a readable PyTorch checkpoint"):
        load_pretrained(garbage)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((FIXTURES / CASES["vjepa1"][0]).read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_pretrained(truncated)

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": [1, 2, 3]}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: not a V-JEPA checkpoint"):
        load_pretrained(foreign)

    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_pretrained(tmp_path / "absent.pt")

    with pytest.raises(TypeError, match="unknown overrides"):
        load_pretrained(garbage, heads=3)
    assert issubclass(CheckpointError, ValueError)
