"""The seed's masked-region view: the token decoder, the masked-prediction pipeline on a real (tiny)
pretraining run, and ``decode decoder.kind=tokens`` end to end. Tiny models, seeded."""

from __future__ import annotations

import pytest
import torch

from jepa_world.checkpoints import load_pretrained
from jepa_world.checkpoints.decoder import load_decoder
from jepa_world.config import EnvConfig
from jepa_world.errors import ConfigError
from jepa_world.masked_decoding import (
    ClipGeometry,
    freeze,
    masked_panels,
    paste,
    predict_masked,
    region_pixels,
)
from jepa_world.masks import MaskSpec
from jepa_world.models.decoder import DecoderConfig, build_decoder
from jepa_world.models.token_decoder import TokenDecoder, scatter_tokens
from jepa_world.training.decoder_config import DecodeConfig, DecoderModelConfig
from jepa_world.training.decoder_train import train_decoder
from jepa_world.training.pretrain import pretrain
from jepa_world.training.wm_config import WMDataConfig
from jepa_world.world_model import shipped_model_dir
from tests.test_pretrain import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")
TOKENS = dict(kind="tokens", tokens=16, latent_dim=8, image_size=16, width=16, min_width=8,
              tubelet=2)


def test_token_decoder_shapes_range_and_errors():
    torch.manual_seed(0)
    decoder = build_decoder(DecoderConfig(**TOKENS))
    assert isinstance(decoder, TokenDecoder)
    frames = decoder.decode(torch.randn(2, 3, 16, 8))  # 3 tubelets of 2 frames
    assert frames.shape == (2, 6, 3, 16, 16)
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1
    with pytest.raises(ValueError, match=r"tokens must be \[B, T', 16, 8\]"):
        decoder.decode(torch.randn(2, 3, 15, 8))
    with pytest.raises(ValueError, match="square token grid"):
        build_decoder(DecoderConfig(**dict(TOKENS, tokens=12)))


def test_token_decoder_learns_the_masked_pixels_and_its_empty_token():
    torch.manual_seed(0)
    decoder = build_decoder(DecoderConfig(**TOKENS)).train()
    values, index = torch.randn(4, 6, 8), torch.stack([torch.randperm(32)[:6] for _ in range(4)])
    target = torch.rand(4, 4, 3, 16, 16)
    region = torch.zeros(4, 4, 1, 16, 16)
    region[:, :, :, :8] = 1
    decoder.set_background(target[:, 0])
    opt = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        tokens = scatter_tokens(decoder.empty, values, index, 32).reshape(4, 2, 16, 8)
        loss = decoder.loss(tokens, target, region)
        opt.zero_grad()
        loss.backward()
        if not losses:
            assert decoder.empty.grad is not None and bool(decoder.empty.grad.abs().sum() > 0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    # pixels outside the region do not count
    outside = target.clone()
    outside[:, :, :, 8:] = 0
    tokens = scatter_tokens(decoder.empty, values, index, 32).reshape(4, 2, 16, 8)
    assert torch.allclose(decoder.loss(tokens, target, region), decoder.loss(tokens, outside,
                                                                              region))


def test_scatter_region_and_paste_put_things_where_the_tokens_are():
    empty = torch.full((2,), -1.0)
    full = scatter_tokens(empty, torch.ones(1, 1, 2), torch.tensor([[5]]), 8)
    assert full[0, 5].tolist() == [1.0, 1.0] and (full[0, :5] == -1).all()
    geometry = ClipGeometry(num_frames=4, image_size=16, tubelet=2, patch=8, dim=2)
    assert geometry.grid == (2, 2, 2)
    region = region_pixels(torch.tensor([[5]]), geometry)  # tubelet 1, row 0, column 1
    assert region.shape == (1, 4, 1, 16, 16)
    expected = torch.zeros(1, 4, 1, 16, 16)
    expected[:, 2:, :, :8, 8:] = 1
    assert torch.equal(region, expected)
    clips, decoded = torch.zeros(1, 4, 3, 16, 16), torch.ones(1, 4, 3, 16, 16)
    pasted = paste(decoded, clips, region)
    assert torch.equal(pasted, region.expand_as(clips))
    panels = masked_panels(clips, region, decoded)
    assert panels.shape == (3, 1, 4, 3, 16, 16)
    assert float(panels[1][region.expand_as(clips) > 0].mean()) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def pretrain_run(tiny_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("masked") / "pretrain"
    pretrain(tiny_config(tiny_dataset, run, steps=2, checkpoint_interval=2))
    return run


def test_predict_masked_on_a_pretraining_run(pretrain_run):
    model = freeze(load_pretrained(pretrain_run))
    geometry = ClipGeometry.of(model)
    t, h, w = geometry.grid
    clips = torch.rand(2, geometry.num_frames, 3, geometry.image_size, geometry.image_size)
    spec = MaskSpec(2, (0.3, 0.3))
    a = predict_masked(model, clips, spec, 0, generator=7)
    b = predict_masked(model, clips, spec, 0, generator=7)
    assert torch.equal(a.values, b.values) and torch.equal(a.index, b.index)
    assert a.values.shape == (2, a.index.shape[1], geometry.dim)
    masked = a.index.shape[1] / (t * h * w)
    assert float(a.region.mean()) == pytest.approx(masked)
    tokens = a.tokens(torch.zeros(geometry.dim))
    assert tokens.shape == (2, t, h * w, geometry.dim)
    assert int((tokens.abs().sum(-1) > 0).sum()) == a.index.numel()
    with pytest.raises(ValueError, match="clips must be"):
        predict_masked(model, clips[:, :2], spec, 0)


def masked_config(data, run, out, **overrides) -> DecodeConfig:
    fields = dict(
        env=EnvConfig(image_size=32), pretrained=str(run),
        decoder=DecoderModelConfig(kind="tokens", width=16, min_width=8),
        data=WMDataConfig(data_dir=str(data), collect=False, episode_length=12,
                          val_fraction=0.2),
        steps=4, batch_size=2, warmup_steps=1, log_interval=2, eval_interval=2,
        checkpoint_interval=2, run_dir=str(out), progress=False, device="cpu",
        save_dtype="float32")
    fields.update(overrides)
    return DecodeConfig(**fields)


def test_decode_kind_tokens_trains_saves_a_figure_and_resumes(tiny_dataset, pretrain_run,
                                                              tmp_path):
    full = train_decoder(masked_config(tiny_dataset, pretrain_run, tmp_path / "a"))
    assert full.steps == 4
    assert set(full.val) >= {"val/psnr_masked_short", "val/psnr_floor_long",
                             "val/psnr_masked_objects_long"}
    assert (tmp_path / "a" / "decoded.png").stat().st_size > 0
    decoder = load_decoder(tmp_path / "a" / "decoder")
    assert decoder.config.kind == "tokens" and decoder.config.tubelet == 2
    class Stop(Exception):
        pass

    def crash_after_2(step: int, loss: float) -> None:
        if step == 2:
            raise Stop  # right after the step-2 checkpoint

    with pytest.raises(Stop):
        train_decoder(masked_config(tiny_dataset, pretrain_run, tmp_path / "b"), crash_after_2)
    resumed = train_decoder(masked_config(tiny_dataset, pretrain_run, tmp_path / "b"))
    assert resumed.losses == full.losses[2:]


def test_decode_kind_tokens_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="pretrained: decoder.kind=tokens"):
        DecodeConfig(decoder=DecoderModelConfig(kind="tokens"))
    with pytest.raises(ConfigError, match="pretrained: is only read by decoder.kind=tokens"):
        DecodeConfig(pretrained="runs/x")
    with pytest.raises(ConfigError, match="pretrained: .*a world model has no masked predictor"):
        train_decoder(DecodeConfig(decoder=DecoderModelConfig(kind="tokens"),
                                   pretrained=str(shipped_model_dir("maze")), progress=False))
    with pytest.raises(ConfigError, match="pretrained: .* does not exist"):
        train_decoder(DecodeConfig(decoder=DecoderModelConfig(kind="tokens"),
                                   pretrained=str(tmp_path / "nope"), progress=False))
