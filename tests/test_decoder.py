"""Pixel decoders: modules, folders, WorldModel.decode, image metrics, the decode command, the
plan videos' panels. Tiny models, a few steps, seeded."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from jepa_world.checkpoints import CheckpointError
from jepa_world.checkpoints.decoder import load_decoder, save_decoder
from jepa_world.config import EnvConfig
from jepa_world.errors import ConfigError
from jepa_world.image_metrics import psnr, ssim
from jepa_world.models.decoder import ConvDecoder, DecoderConfig, build_decoder
from jepa_world.models.presets import ACPredictorConfig, EncoderConfig
from jepa_world.planning.visualize import compose_frames, decoded_frames, episode_panels
from jepa_world.training.decoder_config import DecodeConfig, DecoderModelConfig
from jepa_world.training.decoder_train import train_decoder
from jepa_world.training.wm_config import WMDataConfig
from jepa_world.world_model import WorldModel, WorldModelConfig

pytestmark = pytest.mark.usefixtures("one_thread")
HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None
TINY = dict(tokens=2, latent_dim=8, image_size=16, width=16, min_width=8)


def tiny_decoder(seed: int = 0, **overrides) -> ConvDecoder:
    torch.manual_seed(seed)
    return ConvDecoder(DecoderConfig(**{**TINY, **overrides})).eval()


def test_conv_decoder_shapes_range_and_errors():
    decoder = tiny_decoder()
    z = torch.randn(2, 3, 2, 8)
    frames = decoder.decode(z)
    assert frames.shape == (2, 3, 3, 16, 16)
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1
    assert torch.equal(frames, decoder.decode(z))
    with pytest.raises(ValueError, match=r"latents must be \[B, T, 2, 8\]"):
        decoder.decode(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="image_size"):
        DecoderConfig(image_size=24)


def test_conv_decoder_learns_one_batch():
    decoder = tiny_decoder().train()
    z, target = torch.randn(4, 1, 2, 8), torch.rand(4, 1, 3, 16, 16)
    decoder.set_background(target[:, 0])
    opt = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = decoder.loss(z, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_background_residual_decoder_starts_as_the_median_frame_and_learns_from_it():
    decoder = tiny_decoder(background_residual=True).train()
    frames = torch.rand(6, 3, 16, 16) * 0.9 + 0.05
    decoder.set_background(frames)
    z = torch.randn(6, 1, 2, 8)
    torch.testing.assert_close(decoder.decode(z)[:, 0],
                               frames.median(dim=0).values.expand(6, -1, -1, -1), atol=1e-5,
                               rtol=0)
    opt = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    first = decoder.loss(z, frames[:, None]).item()
    for _ in range(60):
        loss = decoder.loss(z, frames[:, None])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first  # the zero-initialised head still learns


def test_decoder_folder_round_trip_and_bad_folder(tmp_path):
    decoder = tiny_decoder()
    save_decoder(decoder, tmp_path / "d", dtype=torch.float16)
    loaded = load_decoder(tmp_path / "d")
    z = torch.randn(1, 2, 2, 8)
    assert torch.allclose(loaded.decode(z), decoder.decode(z), atol=2e-2)
    (tmp_path / "d" / "config.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not a jepa_world_decoder folder"):
        load_decoder(tmp_path / "d")


def tiny_world_model(seed: int = 0, image_size: int = 16) -> WorldModel:
    torch.manual_seed(seed)
    cfg = WorldModelConfig(
        encoder=EncoderConfig(img_size=image_size, patch_size=8, num_frames=2, embed_dim=12,
                              depth=1, num_heads=2, mlp_hidden_dim=16),
        predictor=ACPredictorConfig(predictor_dim=16, depth=1, num_heads=2, mlp_hidden_dim=32),
        action_dim=2, frameskip=2, proprio_dim=4, proprio_head=True, history_length=3,
        image_size=image_size, env_id="jepa_world/Reach-v0")
    return WorldModel(cfg).eval()


def test_world_model_decode_attach_save_and_load(tmp_path):
    wm = tiny_world_model()
    with pytest.raises(ValueError, match="no decoder attached"):
        wm.decode(torch.zeros(1, 1, 4, 12))
    with pytest.raises(ValueError, match="reads"):
        wm.attach_decoder(tiny_decoder())  # 2 tokens, the model has 4
    decoder = tiny_decoder(tokens=4, latent_dim=12)
    wm.attach_decoder(decoder)
    assert "decoder" not in dict(wm.named_children())  # not part of the model's weights
    z = wm.encode(torch.rand(1, 2, 3, 16, 16))
    assert wm.decode(z).shape == (1, 2, 3, 16, 16)
    wm.save_pretrained(tmp_path / "wm")
    again = WorldModel.from_pretrained(tmp_path / "wm")
    assert again.decoder is not None and torch.allclose(again.decode(z), wm.decode(z))
    render = decoded_frames(again)
    pixels = render(z[0])
    assert pixels.shape == (2, 16, 16, 3) and pixels.dtype == np.uint8


def test_psnr_and_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert bool((ssim(noisy, x) > ssim(noisier, x)).all())
    assert float(psnr(x, x + 0.1).mean()) == pytest.approx(20.0, abs=1e-3)


def test_labelled_panels_with_a_decoder():
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    panels = compose_frames(list(frames), frames[0], [None, frames[1]], scale=2,
                            labels=("observation", "goal", "imagined"))
    assert panels[0].shape == (12 + 32, 3 * 32 + 8, 3)
    assert panels[0][:12].any()  # the label strip has text

    class Result:
        plans = [(0, None)]
        imagined = [torch.zeros(3, 2, 8)]
        goal = frames[0]

    Result.frames = list(frames)
    render = decoded_frames(type("M", (), {"decode": tiny_decoder().decode})())
    out = episode_panels(Result, render, 1)
    assert len(out) == 2 and out[0].shape == (12 + 48, 3 * 48 + 12, 3)


def test_decode_config_names_the_bad_field():
    with pytest.raises(ConfigError, match="decoder.kind"):
        DecoderModelConfig(kind="gan")
    with pytest.raises(ConfigError, match="imagined_fraction"):
        DecodeConfig(imagined_fraction=2.0)


def decode_config(data, wm_dir, run_dir, **overrides) -> DecodeConfig:
    fields = dict(
        env=EnvConfig(image_size=32), world_model=str(wm_dir),
        decoder=DecoderModelConfig(width=16, min_width=8),
        data=WMDataConfig(data_dir=str(data), collect=False, episode_length=12,
                          val_fraction=0.2, cache_features=False),
        imagined_horizon=2, imagined_stride=1, steps=6, batch_size=4, warmup_steps=1,
        log_interval=2, eval_interval=3, checkpoint_interval=3, run_dir=str(run_dir),
        progress=False, device="cpu", save_dtype="float32")
    fields.update(overrides)
    return DecodeConfig(**fields)


def test_train_decoder_saves_logs_images_and_resumes_exactly(tiny_dataset, tmp_path):
    tiny_world_model(image_size=32).save_pretrained(tmp_path / "wm")
    full = train_decoder(decode_config(tiny_dataset, tmp_path / "wm", tmp_path / "a"))
    assert full.steps == 6 and set(full.val) >= {"val/psnr_encoded", "val/psnr_imagined_h2"}
    assert list((tmp_path / "a" / "tb").glob("events.*"))
    loaded = load_decoder(tmp_path / "a" / "decoder")
    class Stop(Exception):
        pass

    def stop_at_3(step: int, loss: float) -> None:
        if step == 3:
            raise Stop  # a crash right after the step-3 checkpoint

    with pytest.raises(Stop):
        train_decoder(decode_config(tiny_dataset, tmp_path / "wm", tmp_path / "b"), stop_at_3)
    resumed = train_decoder(decode_config(tiny_dataset, tmp_path / "wm", tmp_path / "b"))
    assert resumed.losses == full.losses[3:]
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, resumed.decoder.state_dict()[key]), key
    with pytest.raises(ConfigError, match="world_model"):
        train_decoder(decode_config(tiny_dataset, tmp_path / "nope", tmp_path / "c"))


@pytest.mark.skipif(not HAS_DIFFUSERS, reason="diffusers is not installed (optional extra)")
def test_diffusion_decoder_trains_and_samples_deterministically(tmp_path):
    torch.manual_seed(0)
    cfg = DecoderConfig(kind="diffusion", tokens=2, latent_dim=8, image_size=16,
                        unet_channels=[16, 32], train_timesteps=50, sample_steps=3,
                        diffusion_patch=2)
    decoder = build_decoder(cfg)
    loss = decoder.loss(torch.randn(2, 1, 2, 8), torch.rand(2, 1, 3, 16, 16))
    loss.backward()
    assert torch.isfinite(loss)
    z = torch.randn(1, 2, 2, 8)
    a = decoder.decode(z, generator=torch.Generator().manual_seed(1))
    b = decoder.decode(z, generator=torch.Generator().manual_seed(1))
    assert a.shape == (1, 2, 3, 16, 16) and torch.equal(a, b)
    save_decoder(decoder, tmp_path / "d")
    assert torch.equal(load_decoder(tmp_path / "d").decode(
        z, generator=torch.Generator().manual_seed(1)), a)
