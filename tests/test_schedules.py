"""Schedules: endpoints, monotonicity, continuity, EMA maths and parameter groups."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from jepa_world.schedules import (
    NO_DECAY_KEY,
    cosine_weight_decay,
    ema_momentum,
    ema_update_,
    param_groups,
    set_lr_,
    set_weight_decay_,
    warmup_cosine_lr,
)

LR = dict(start_lr=2e-4, ref_lr=6.25e-4, final_lr=1e-6, warmup_steps=120, total_steps=900)


def lr(step: int) -> float:
    return warmup_cosine_lr(step, **LR)


def test_lr_endpoints_and_shape():
    assert lr(0) == pytest.approx(2e-4)
    assert lr(120) == pytest.approx(6.25e-4)
    assert lr(60) == pytest.approx((2e-4 + 6.25e-4) / 2)
    assert lr(120 + 390) == pytest.approx((6.25e-4 + 1e-6) / 2)  # cosine midpoint
    assert lr(900) == pytest.approx(1e-6) and lr(5000) == pytest.approx(1e-6)
    warm = [lr(s) for s in range(121)]
    decay = [lr(s) for s in range(120, 1000)]
    assert all(a < b for a, b in zip(warm, warm[1:], strict=False))
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))


def test_lr_continuous_at_warmup_boundary():
    step_size = (6.25e-4 - 2e-4) / 120
    assert abs(lr(120) - lr(119)) <= step_size * 1.001
    assert abs(lr(121) - lr(120)) < step_size
    no_warmup = dict(LR, warmup_steps=0)
    assert warmup_cosine_lr(0, **no_warmup) == pytest.approx(6.25e-4)


def test_weight_decay_schedule():
    wd = [cosine_weight_decay(s, total_steps=100) for s in range(0, 131)]
    assert wd[0] == pytest.approx(0.04) and wd[100] == pytest.approx(0.4)
    assert wd[50] == pytest.approx(0.22) and wd[130] == pytest.approx(0.4)
    assert all(a <= b for a, b in zip(wd, wd[1:], strict=False))
    assert cosine_weight_decay(10, start_wd=0.4, final_wd=0.04, total_steps=10) == pytest.approx(
        0.04)


def test_ema_momentum_schedule():
    values = [ema_momentum(s, total_steps=1000) for s in range(0, 1201, 100)]
    assert values[0] == pytest.approx(0.998) and values[10] == pytest.approx(1.0)
    assert values[5] == pytest.approx(0.999) and values[12] == pytest.approx(1.0)
    diffs = [b - a for a, b in zip(values[:10], values[1:11], strict=True)]
    assert all(d == pytest.approx(diffs[0]) for d in diffs)  # linear


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match="step"):
        lr(-1)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine_lr(0, **dict(LR, warmup_steps=1000))
    with pytest.raises(ValueError, match="total_steps"):
        ema_momentum(0, total_steps=0)


def test_ema_update_math():
    torch.manual_seed(0)
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    ema_update_(target, source, 0.9)
    for old, new, src in zip(before, target.parameters(), source.parameters(), strict=True):
        assert torch.allclose(new, 0.9 * old + 0.1 * src)
        assert new.grad is None
    ema_update_(target, source, 0.0)
    assert all(torch.equal(t, s) for t, s in zip(target.parameters(), source.parameters(),
                                                    strict=True))
    ema_update_(target, nn.Linear(3, 2), 1.0)
    assert all(torch.equal(t, s) for t, s in zip(target.parameters(), source.parameters(),
                                                    strict=True))


def test_ema_update_on_tensor_lists_and_errors():
    target = [torch.zeros(2), torch.ones(2, 2)]
    ema_update_(target, [torch.ones(2), torch.zeros(2, 2)], 0.75)
    assert torch.allclose(target[0], torch.full((2,), 0.25))
    assert torch.allclose(target[1], torch.full((2, 2), 0.75))
    with pytest.raises(ValueError, match="same parameters"):
        ema_update_(nn.Linear(3, 2), nn.Linear(3, 4), 0.5)
    with pytest.raises(ValueError, match="momentum"):
        ema_update_(target, target, 1.5)


def test_ema_update_builds_no_graph():
    source, target = nn.Linear(2, 2), nn.Linear(2, 2)
    ema_update_(target, source, 0.5)  # source requires grad; the update must not record it
    assert target.weight.is_leaf and target.weight.grad_fn is None


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.conv = nn.Conv3d(1, 2, 2)
        self.token = nn.Parameter(torch.zeros(1, 1, 4))
        self.scale = nn.Parameter(torch.ones(4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_param_groups_split():
    model = Tiny()
    decay, exempt = param_groups(model, 0.04)
    named = {id(p): n for n, p in model.named_parameters()}
    assert sorted(named[id(p)] for p in decay["params"]) == [
        "conv.weight", "proj.weight", "token"]
    assert sorted(named[id(p)] for p in exempt["params"]) == [
        "conv.bias", "norm.bias", "norm.weight", "proj.bias", "scale"]
    assert decay["weight_decay"] == 0.04 and exempt["weight_decay"] == 0.0
    assert exempt[NO_DECAY_KEY] and not decay.get(NO_DECAY_KEY)


def test_optimizer_setters_respect_the_exempt_group():
    # The setters only touch ``param_groups``; a stand-in avoids the ~1.5 s first-optimizer
    # import of torch._dynamo (torch.optim.AdamW accepts these groups, extra key included).
    opt = SimpleNamespace(param_groups=param_groups(Tiny(), 0.04))
    set_weight_decay_(opt, 0.3)
    set_lr_(opt, 5e-4)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]
    assert [g["lr"] for g in opt.param_groups] == [5e-4, 5e-4]
    assert param_groups(nn.LayerNorm(3), 0.1)[0][NO_DECAY_KEY]  # empty groups are dropped
