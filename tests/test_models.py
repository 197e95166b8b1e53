"""Shape and behaviour tests for the encoder, predictors and position helpers (tiny, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from jepa_world.models import (
    ACPredictor,
    EncoderConfig,
    MaskedPredictor,
    VideoViT,
    build_encoder,
    build_predictor,
    frame_causal_mask,
    get_preset,
)
from jepa_world.models.positions import (
    apply_rope,
    rope_angles,
    rope_chunk_dim,
    sincos_3d_split,
    sincos_3d_table,
    token_grid_positions,
)

# 32 px, patch 8, 4 frames, tubelet 2 -> grid (2, 4, 4) = 32 tokens.
GRID = dict(img_size=32, patch_size=8, num_frames=4, tubelet_size=2)
N_TOKENS = 32


def make_encoder(pos_embed: str = "rope", depth: int = 2, **kw) -> VideoViT:
    torch.manual_seed(0)
    return VideoViT(**GRID, embed_dim=48, depth=depth, num_heads=2, mlp_hidden_dim=96,
                    pos_embed=pos_embed, **kw).eval()


def make_predictor(pos_embed: str = "rope") -> MaskedPredictor:
    torch.manual_seed(1)
    pred = MaskedPredictor(**GRID, embed_dim=48, predictor_dim=32, depth=2, num_heads=2,
                           mlp_hidden_dim=64, pos_embed=pos_embed).eval()
    with torch.no_grad():  # distinct mask tokens so mask_index matters
        for i, tok in enumerate(pred.mask_tokens):
            tok.normal_(generator=torch.Generator().manual_seed(i))
    return pred


def make_ac() -> ACPredictor:
    torch.manual_seed(2)
    return ACPredictor(**GRID, embed_dim=48, predictor_dim=32, depth=2, num_heads=2,
                       mlp_hidden_dim=64, action_dim=3, state_dim=5).eval()


def video(b: int = 2, t: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(3))


# --------------------------------------------------------------------------- encoder


@pytest.mark.parametrize("pos_embed", ["rope", "sincos"])
def test_encoder_shapes(pos_embed):
    enc = make_encoder(pos_embed)
    with torch.no_grad():
        assert enc(video()).shape == (2, N_TOKENS, 48)
        keep = torch.tensor([[0, 5, 9], [31, 1, 2]])
        assert enc(video(), masks=keep).shape == (2, 3, 48)


@pytest.mark.parametrize("pos_embed", ["rope", "sincos"])
def test_masking_keeps_the_right_tokens(pos_embed):
    # Without blocks every token is independent: masked output == selected full output.
    enc = make_encoder(pos_embed, depth=0)
    keep = torch.tensor([[3, 0, 17], [31, 8, 9]])
    with torch.no_grad():
        full, part = enc(video()), enc(video(), masks=keep)
    expected = torch.stack([full[i, keep[i]] for i in range(2)])
    torch.testing.assert_close(part, expected)


@pytest.mark.parametrize("pos_embed", ["rope", "sincos"])
def test_masked_tokens_carry_their_positions(pos_embed):
    # Reordering kept tokens only reorders the output (positions travel with the tokens).
    enc = make_encoder(pos_embed)
    keep = torch.tensor([[1, 6, 20, 30], [0, 2, 4, 8]])
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        a = enc(video(), masks=keep)[:, perm]
        b = enc(video(), masks=keep[:, perm])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos_embed", ["rope", "sincos"])
def test_without_time_positions_a_static_clip_has_the_same_tokens_at_every_time(pos_embed):
    # A clip whose two tubelets show the same frames: with time positions the tokens of the
    # two tubelets differ; without, only the pixels could tell them apart, and they do not.
    frames = video(t=2)
    still = torch.cat([frames, frames], dim=2)  # [2, 3, 4, 32, 32]: tubelet 1 == tubelet 0
    half = N_TOKENS // 2
    keep = torch.tensor([[0, 3, half, half + 3]] * 2)  # the same two patches at both times
    for time_positions, same in ((True, False), (False, True)):
        enc = make_encoder(pos_embed, time_positions=time_positions)
        with torch.no_grad():
            full, part = enc(still), enc(still, masks=keep)
        assert torch.allclose(full[:, :half], full[:, half:], atol=1e-5) is same
        assert torch.allclose(part[:, :2], part[:, 2:], atol=1e-5) is same
    if pos_embed == "sincos":  # the table keeps its spatial channels, only time is zero
        d_t = 24
        assert not enc.pos_embed[0, :, :d_t].any() and enc.pos_embed[0, :, d_t:].abs().sum() > 0


def test_image_input_is_a_repeated_frame():
    enc = make_encoder()
    img = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = enc(img)
        b = enc(img[:, :, None].expand(-1, -1, 2, -1, -1))
    assert a.shape == (2, 16, 48)
    torch.testing.assert_close(a, b)


def test_encode_frames_matches_per_frame_images():
    enc = make_encoder()
    clip = video(1, 3)
    with torch.no_grad():
        tokens = enc.encode_frames(clip)
        second = enc(clip[:, :, 1])
    assert tokens.shape == (1, 3 * 16, 48)
    torch.testing.assert_close(tokens[:, 16:32], second)


def test_activation_checkpointing_same_output_and_grads():
    plain = make_encoder().train()
    ckpt = make_encoder(use_activation_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = video()
    out_a, out_b = plain(x), ckpt(x)
    torch.testing.assert_close(out_a, out_b)
    out_a.square().mean().backward()
    out_b.square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_sincos_encoder_other_grid_sizes():
    enc = make_encoder("sincos")
    with torch.no_grad():
        assert enc(video(t=2)).shape == (2, 16, 48)  # fewer frames: table is cut
        assert enc(video(size=48)).shape == (2, 2 * 36, 48)  # other size: interpolated


def test_encoder_shape_errors():
    enc = make_encoder()
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        enc(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="channels"):
        enc(torch.randn(1, 1, 4, 32, 32))
    with pytest.raises(ValueError, match="not divisible"):
        enc(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="only 32 tokens"):
        enc(video(), masks=torch.tensor([[0, 32], [1, 2]]))
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        enc(video(), masks=torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        enc(video(), masks=torch.zeros(2, 2))


def test_conv_encoder_tokens_are_the_patch_grid_of_each_frame():
    """A token per ``patch_size`` cell, rows then columns, built by ``build_encoder``; a
    convolution only sees its neighbourhood, so changing the bottom-right corner of a frame
    leaves the top-left token alone and changes the bottom-right one."""
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(kind="conv", img_size=32, embed_dim=16,
                                      conv_channels=(8, 8, 8)))
    clip = video(1, 3)
    with torch.no_grad():
        tokens = enc.encode_frames(clip)
        assert tokens.shape == (1, 3 * 16, 16)
        torch.testing.assert_close(tokens[:, 16:32], enc(clip[:, :, 1]))
        frame = clip[:, :, 0].clone()
        frame[..., 24:, 24:] += 10.0
        moved = enc(frame) - enc(clip[:, :, 0])
    assert moved[0, 0].abs().max() < 1e-6 and moved[0, 15].abs().max() > 1e-4
    with pytest.raises(ValueError, match="power of two"):
        build_encoder(EncoderConfig(kind="conv", patch_size=6))
    with pytest.raises(ValueError, match="not divisible"):
        build_encoder(EncoderConfig(kind="conv", img_size=36))
    with pytest.raises(ValueError, match=r"frames \[B, 3, H, W\]"):
        enc(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="kind"):
        EncoderConfig(kind="resnet")


# --------------------------------------------------------------------------- predictor


@pytest.mark.parametrize("pos_embed", ["rope", "sincos"])
def test_predictor_shapes_and_target_order(pos_embed):
    enc, pred = make_encoder(pos_embed), make_predictor(pos_embed)
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]])
    tgt_idx = torch.tensor([[20, 21, 5, 30], [0, 1, 2, 31]])
    perm = torch.tensor([3, 1, 0, 2])
    with torch.no_grad():
        ctx = enc(video(), masks=ctx_idx)
        out = pred(ctx, ctx_idx, tgt_idx)
        out_perm = pred(ctx, ctx_idx, tgt_idx[:, perm])
        other = pred(ctx, ctx_idx, tgt_idx, mask_index=0)
        wrapped = pred(ctx, ctx_idx, tgt_idx, mask_index=2)
    assert out.shape == (2, 4, 48)
    torch.testing.assert_close(out[:, perm], out_perm, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, other)
    torch.testing.assert_close(other, wrapped)  # 2 % num_mask_tokens == 0


def test_predictor_shared_indices_and_errors():
    pred = make_predictor()
    ctx = torch.randn(2, 3, 48)
    out = pred(ctx, torch.tensor([0, 1, 2]), torch.tensor([5, 6]))
    assert out.shape == (2, 2, 48)
    with pytest.raises(ValueError, match=r"K=3"):
        pred(ctx, torch.tensor([[0, 1], [0, 1]]), torch.tensor([5, 6]))
    with pytest.raises(ValueError, match=r"D=48"):
        pred(torch.randn(2, 3, 40), torch.tensor([0, 1, 2]), torch.tensor([5]))


# --------------------------------------------------------------------------- AC predictor


def test_ac_predictor_shapes_and_causality():
    ac = make_ac()
    g = torch.Generator().manual_seed(5)
    tokens = torch.randn(2, 3 * 16, 48, generator=g)
    actions, states = torch.randn(2, 3, 3, generator=g), torch.randn(2, 3, 5, generator=g)
    with torch.no_grad():
        out = ac(tokens, actions, states)
        tokens2 = tokens.clone()
        tokens2[:, 32:] += 1.0  # change the last frame
        actions2 = actions.clone()
        actions2[:, 2] += 1.0  # and the last action
        out2 = ac(tokens2, actions2, states)
    assert out.shape == (2, 48, 48)
    torch.testing.assert_close(out[:, :32], out2[:, :32])  # earlier steps unaffected
    assert not torch.allclose(out[:, 32:], out2[:, 32:])


def test_ac_predictor_shape_errors():
    ac = make_ac()
    with pytest.raises(ValueError, match="N=16"):
        ac(torch.randn(1, 20, 48), torch.randn(1, 1, 3), torch.randn(1, 1, 5))
    with pytest.raises(ValueError, match=r"actions must be \[B, T, 3\]"):
        ac(torch.randn(1, 32, 48), torch.randn(1, 3, 3), torch.randn(1, 2, 5))


def test_frame_causal_mask():
    mask = frame_causal_mask(3, 2)
    assert mask.shape == (6, 6)
    assert mask[0, :2].all() and not mask[0, 2:].any()
    assert mask[3, :4].all() and not mask[3, 4:].any()
    assert mask[5].all()


# --------------------------------------------------------------------------- positions


def test_sincos_table_layout():
    table = sincos_3d_table(48, 2, 4, 4, uniform_power=True)
    assert table.shape == (32, 48)
    assert sincos_3d_split(48, True) == (16, 16, 16)
    assert sincos_3d_split(48, False) == (24, 12, 12)
    # token 0 sits at (0, 0, 0): sines 0, cosines 1 in each 16-channel part
    assert torch.equal(table[0], torch.tensor(([0.0] * 8 + [1.0] * 8) * 3))
    # time-major order: token 16 is (t=1, h=0, w=0), so only the time part differs from token 0
    assert not torch.equal(table[16, :16], table[0, :16])
    assert torch.equal(table[16, 16:], table[0, 16:])
    assert torch.equal(table[1, :32], table[0, :32])  # token 1 = (0, 0, 1): only width differs


def test_token_grid_positions():
    pos = token_grid_positions(torch.tensor([0, 5, 16, 31]), 4, 4)
    assert pos.tolist() == [[0, 0, 0], [0, 1, 1], [1, 0, 0], [1, 3, 3]]


def test_rope_properties():
    head_dim = 64
    chunk = rope_chunk_dim(head_dim)
    assert chunk == 20
    x = torch.randn(1, 2, 3, head_dim, generator=torch.Generator().manual_seed(6))
    zero = torch.zeros(3, 3)
    cos, sin = rope_angles(zero, head_dim)
    assert cos.shape == (3, 3 * chunk)
    torch.testing.assert_close(apply_rope(x, cos, sin), x)  # position 0 is the identity
    pos = torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0], [4.0, 0.0, 1.0]])
    cos, sin = rope_angles(pos, head_dim)
    y = apply_rope(x, cos, sin)
    assert torch.equal(y[..., 3 * chunk:], x[..., 3 * chunk:])  # tail channels untouched
    # frequencies are tiled within an axis chunk, channels rotated in adjacent pairs
    half = chunk // 2
    omega = 1.0 / 10000 ** (torch.arange(half) / half)
    angle = pos[0, 1] * omega[3]  # height chunk, channel 3 of the chunk (pair partner: 2)
    c = chunk + 3
    expected = x[0, 0, 0, c] * angle.cos() + x[0, 0, 0, c - 1] * angle.sin()
    torch.testing.assert_close(y[0, 0, 0, c], expected)
    # batched positions [B, N, 3] broadcast over heads
    cos_b, sin_b = rope_angles(pos[None], head_dim)
    torch.testing.assert_close(apply_rope(x, cos_b, sin_b), y)


# --------------------------------------------------------------------------- presets


def test_presets():
    tiny = get_preset("tiny")
    enc, pred, ac = build_encoder(tiny.encoder), build_predictor(tiny.predictor), build_predictor(
        tiny.ac_predictor)
    assert isinstance(ac, ACPredictor)
    with torch.no_grad():
        tokens = enc(torch.randn(1, 3, 8, 64, 64))
    assert tokens.shape == (1, 256, 192)
    assert sum(p.numel() for p in enc.parameters()) < 3_000_000
    assert isinstance(pred, MaskedPredictor)
    vit_l, vit_g = get_preset("vit_l"), get_preset("vit_g")
    assert (vit_l.encoder.embed_dim, vit_l.encoder.depth, vit_l.encoder.num_heads) == (1024, 24, 16)
    assert (vit_g.encoder.embed_dim, vit_g.encoder.depth, vit_g.encoder.num_heads) == (1408, 40, 22)
    assert get_preset("vit_h").encoder.embed_dim == 1280
    assert (vit_l.predictor.predictor_dim, vit_l.predictor.depth) == (384, 12)
    tiny.encoder.depth = 1  # presets are copies
    assert get_preset("tiny").encoder.depth == 4
    assert dataclasses.asdict(get_preset("tiny").encoder)["pos_embed"] == "sincos"
    assert get_preset("tiny").predictor.pos_embed == "sincos"
    with pytest.raises(KeyError, match="unknown preset"):
        get_preset("vit_xxl")


def test_bfloat16_modules_run():
    enc, pred, ac = make_encoder(), make_predictor(), make_ac()
    for m in (enc, pred, ac):
        m.to(torch.bfloat16)
    with torch.no_grad():
        ctx = enc(video().bfloat16(), masks=torch.tensor([0, 1, 2]))
        out = pred(ctx, torch.tensor([0, 1, 2]), torch.tensor([7, 8]))
        nxt = ac(torch.randn(1, 32, 48).bfloat16(), torch.randn(1, 2, 3).bfloat16(),
                 torch.randn(1, 2, 5).bfloat16())
    assert out.dtype == nxt.dtype == torch.bfloat16
    assert out.shape == (2, 2, 48) and nxt.shape == (1, 32, 48)
