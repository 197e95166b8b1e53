"""Losses: hand-checked values, shapes, gradients and non-finite inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jepa_world.losses import gather_tokens, jepa_loss, pixel_loss, pixel_targets


def test_gather_tokens_picks_per_sample():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    out = gather_tokens(x, torch.tensor([[3, 0], [1, 1]]))
    assert torch.equal(out, torch.stack([x[0, [3, 0]], x[1, [1, 1]]]))
    with pytest.raises(ValueError, match="outside"):
        gather_tokens(x, torch.tensor([[4, 0], [0, 0]]))
    with pytest.raises(ValueError, match="integer"):
        gather_tokens(x, torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        gather_tokens(x, torch.zeros(3, 1, dtype=torch.long))


def test_jepa_loss_hand_checked():
    # Token features [1, 3]: mean 2, population std sqrt(2/3) -> layer_norm = [-1.2247, 0, 1.2247].
    targets = torch.tensor([[[1.0, 2.0, 3.0]]])
    normed = torch.tensor([-1.0, 0.0, 1.0]) * (1.5 ** 0.5)
    assert torch.allclose(F.layer_norm(targets, (3,))[0, 0], normed, atol=1e-4)
    assert jepa_loss(normed.view(1, 1, 3), targets).item() == pytest.approx(0.0, abs=1e-4)
    predictions = torch.zeros(1, 1, 3)
    assert jepa_loss(predictions, targets).item() == pytest.approx(2 * 1.5 ** 0.5 / 3, abs=1e-4)
    # Scale and shift of a target token do not matter (it is normalised).
    assert jepa_loss(predictions, 10 * targets + 5).item() == pytest.approx(
        jepa_loss(predictions, targets).item(), abs=1e-4)


def test_jepa_loss_with_index_equals_gathered():
    gen = torch.Generator().manual_seed(0)
    full = torch.randn(2, 10, 8, generator=gen)
    idx = torch.tensor([[1, 4, 7], [0, 2, 9]])
    pred = torch.randn(2, 3, 8, generator=gen)
    assert torch.allclose(jepa_loss(pred, full, idx), jepa_loss(pred, gather_tokens(full, idx)))
    expected = (pred - F.layer_norm(gather_tokens(full, idx), (8,))).abs().mean()
    assert torch.allclose(jepa_loss(pred, full, idx), expected)
    with pytest.raises(ValueError, match=r"\[B, M, D\]"):
        jepa_loss(pred, full)  # forgot the index: shapes differ, no silent broadcasting


def test_gradients_reach_predictions_not_targets():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(2, 5, 6, generator=gen, requires_grad=True)
    target = torch.randn(2, 5, 6, generator=gen, requires_grad=True)
    for loss_fn in (jepa_loss, pixel_loss):
        pred.grad = None
        loss = loss_fn(pred, target)
        assert loss.dim() == 0
        loss.backward()
        assert pred.grad is not None and pred.grad.abs().sum() > 0
        assert target.grad is None  # stop-gradient on the targets


def test_non_finite_inputs_give_non_finite_loss():
    pred = torch.zeros(1, 2, 4)
    target = torch.ones(1, 2, 4)
    target[0, 1, 2] = float("nan")
    assert torch.isnan(jepa_loss(pred, target))
    assert torch.isnan(pixel_loss(pred, target))
    pred[0, 0, 0] = float("inf")
    assert not torch.isfinite(jepa_loss(pred, torch.randn(1, 2, 4)))


def test_pixel_targets_layout_and_normalisation():
    video = torch.arange(2 * 3 * 4 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 4, 6)
    raw = pixel_targets(video, tubelet=2, patch=2, normalize=False)
    assert raw.shape == (2, 2 * 2 * 3, 2 * 2 * 2 * 3)
    # Token 1 = (t 0, row 0, col 1): frames 0-1, rows 0-1, columns 2-3; channel fastest.
    b, t, r, c, ch = 1, 1, 1, 0, 2
    feature = ((t * 2 + r) * 2 + c) * 3 + ch
    assert raw[b, 1, feature] == video[b, ch, t, r, 2 + c]
    normed = pixel_targets(video, tubelet=2, patch=2)
    per_channel = normed.view(2, 12, 8, 3)
    assert torch.allclose(per_channel.mean(dim=2), torch.zeros(2, 12, 3), atol=1e-5)
    assert torch.allclose(per_channel.std(dim=2), torch.ones(2, 12, 3), atol=1e-4)


def test_pixel_targets_match_a_direct_computation():
    gen = torch.Generator().manual_seed(2)
    video = torch.randn(1, 2, 2, 4, 4, generator=gen)
    out = pixel_targets(video, tubelet=2, patch=4)  # one token holding the whole clip
    pixels = video[0].reshape(2, -1).T  # [32 pixels, 2 channels], same (t, h, w) order
    expected = (pixels - pixels.mean(0)) / (pixels.std(0) + 1e-6)
    assert torch.allclose(out[0, 0], expected.reshape(-1), atol=1e-5)


def test_pixel_targets_errors():
    with pytest.raises(ValueError, match="divisible"):
        pixel_targets(torch.zeros(1, 3, 3, 8, 8), tubelet=2, patch=4)
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        pixel_targets(torch.zeros(3, 4, 8, 8), tubelet=2, patch=4)
    with pytest.raises(ValueError, match="2 pixels"):
        pixel_targets(torch.zeros(1, 3, 2, 4, 4), tubelet=1, patch=1)


def test_pixel_loss_on_masked_tubelets():
    video = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    targets = pixel_targets(video, tubelet=2, patch=4)
    idx = torch.tensor([[0, 5], [2, 7]])
    gathered = gather_tokens(targets, idx)
    assert pixel_loss(gathered, targets, idx).item() == 0.0
    pred = torch.zeros_like(gathered)
    assert torch.allclose(pixel_loss(pred, targets, idx), gathered.pow(2).mean())
