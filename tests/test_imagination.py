"""The fast rollout (jepa_world.imagination) against the reference algorithm it replaces: same
latents and proprio to 1e-5 for every history length, window, chunking and latent layout, same
gradients, and the same CEM plan for a seed; its parts (fused linears, RoPE tables, batches).
The key / value-cached rollout of ``imagination="cached"`` models against their own predictor
run on the whole growing sequence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jepa_world.imagination import (
    CPU_BATCH,
    _attention,
    _folded_qkv,
    _qkv,
    cached_tables,
    compute_batch,
    supports_fast_rollout,
    window_tables,
)
from jepa_world.models import fused
from jepa_world.models.ac_predictor import frame_causal_mask
from jepa_world.models.positions import apply_rope, rope_angles, rope_factors, rotate_pairs_with
from jepa_world.models.presets import ACPredictorConfig
from jepa_world.planners import ActionBounds, make_planner
from jepa_world.planning.objectives import LatentObjective
from tests.test_world_model import inputs, step_by_step, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = dict(atol=1e-5, rtol=1e-5)


def both(wm, z, cands, proprio, past, **kw):
    with torch.no_grad():
        new = wm.rollout(z, cands, proprio, history_actions=past, return_proprio=True, **kw)
        old = wm.rollout(z, cands, proprio, history_actions=past, return_proprio=True,
                         reference=True, **kw)
    return new, old


@pytest.mark.parametrize("pooled", [None, 1, 2])
@pytest.mark.parametrize("t,window", [(1, 3), (2, 3), (3, 3), (4, 3), (3, 1), (2, 2), (1, 5)])
def test_fast_rollout_equals_reference(pooled, t, window):
    wm = tiny_model(pooled)
    z, actions, proprio = inputs(wm, b=2, t=t)
    cands = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(t))
    for chunk in (3, 10, 1024):  # chunks that split an episode's candidates, and one for all
        new, old = both(wm, z, cands, proprio, actions[:, :t - 1], chunk_size=chunk,
                        max_context=window)
        torch.testing.assert_close(new.latents, old.latents, **TOL)
        torch.testing.assert_close(new.proprio, old.proprio, **TOL)


def test_fast_rollout_equals_step_by_step_predict():
    wm = tiny_model(2)
    z, actions, proprio = inputs(wm, b=2, t=3)
    cands = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        got = wm.rollout(z, cands, proprio, history_actions=actions[:, :2], max_context=3)
    want = step_by_step(wm, z, proprio, actions[:, :2], cands, window=3)
    torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("overrides", [dict(proprio_head=False),
                                       dict(proprio_dim=0, proprio_head=False)])
def test_fast_rollout_without_proprio_head_or_proprio(overrides):
    wm = tiny_model(2, **overrides)
    z, actions, proprio = inputs(wm, b=2, t=3)
    proprio = proprio if wm.config.proprio_dim else None
    cands = torch.randn(2, 4, 3, 4, generator=torch.Generator().manual_seed(2))
    new, old = both(wm, z, cands, proprio, actions[:, :2], chunk_size=3)
    torch.testing.assert_close(new.latents, old.latents, **TOL)
    assert new.proprio is None and old.proprio is None


@pytest.mark.parametrize("build, horizon", [(lambda: tiny_model(1), 3),
                                            (lambda: cached_model(1, 2), 5)])
def test_fast_rollout_gradients_equal_reference(build, horizon):
    wm = build()
    z, actions, proprio = inputs(wm, b=1, t=3)
    goal = torch.randn(1, 1, 32)
    grads = []
    for reference in (False, True):
        cands = torch.randn(1, 4, horizon, 4, generator=torch.Generator().manual_seed(3))
        cands.requires_grad_(True)
        pred = wm.rollout(z, cands, proprio, history_actions=actions[:, :2], chunk_size=3,
                          reference=reference)
        wm.cost(pred, goal).sum().backward()
        grads.append(cands.grad)
    torch.testing.assert_close(grads[0], grads[1], **TOL)
    assert grads[0].abs().sum() > 0


def test_cem_plan_is_unchanged_for_a_seed():
    wm = tiny_model(1)
    z, actions, proprio = inputs(wm, b=2, t=3)
    goal = torch.randn(2, 1, 32, generator=torch.Generator().manual_seed(4))
    planner = make_planner("cem", ActionBounds(-torch.ones(2), torch.ones(2)), samples=40,
                           iterations=5, elites=6, horizon=4)
    plans = []
    for reference in (False, True):
        model = wm if not reference else _reference_model(wm)
        objective = LatentObjective(model, z, goal, history_actions=actions[:, :2],
                                    proprio=proprio, chunk_size=16)
        plans.append(planner.plan(objective, 2, generator=torch.Generator().manual_seed(7)))
    torch.testing.assert_close(plans[0].actions, plans[1].actions, **TOL)
    torch.testing.assert_close(plans[0].cost, plans[1].cost, **TOL)


def _reference_model(wm):
    """``wm`` whose rollout is the reference algorithm (what the planner called before)."""
    import copy
    import functools

    old = copy.copy(wm)
    old.rollout = functools.partial(wm.rollout, reference=True)
    return old


def test_non_causal_predictors_take_the_reference_path():
    wm = tiny_model(2)
    assert supports_fast_rollout(wm.predictor)
    wm.predictor.is_frame_causal = False
    assert not supports_fast_rollout(wm.predictor)
    z, actions, proprio = inputs(wm, b=1, t=2)
    cands = torch.randn(1, 3, 2, 4)
    new, old = both(wm, z, cands, proprio, actions[:, :1])
    torch.testing.assert_close(new.latents, old.latents, atol=0, rtol=0)


def cached_model(pooled, window: int, depth: int = 2, conditioning: str = "tokens"):
    return tiny_model(pooled, history_length=window, imagination="cached",
                      predictor=ACPredictorConfig(predictor_dim=32, depth=depth, num_heads=2,
                                                  mlp_hidden_dim=64, conditioning=conditioning))


@pytest.mark.parametrize("pooled", [None, 1])
@pytest.mark.parametrize("imagination", ["sliding", "cached"])
def test_added_conditioning_imagines_like_its_reference(pooled, imagination):
    """Action and proprio embeddings added to the frame tokens (no tokens of their own): a step
    is N tokens, both fast paths give the reference's numbers, and the actions still matter."""
    predictor = ACPredictorConfig(predictor_dim=32, depth=2, num_heads=2, mlp_hidden_dim=64,
                                  conditioning="added")
    wm = tiny_model(pooled, history_length=3, imagination=imagination, predictor=predictor)
    assert wm.predictor.num_cond_tokens == 0
    z, actions, proprio = inputs(wm, b=2, t=3)
    cands = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(3))
    for chunk in (3, 1024):
        new, old = both(wm, z, cands, proprio, actions[:, :2], chunk_size=chunk)
        torch.testing.assert_close(new.latents, old.latents, **TOL)
        torch.testing.assert_close(new.proprio, old.proprio, **TOL)
    with torch.no_grad():
        other = wm.rollout(z, cands + 1.0, proprio, history_actions=actions[:, :2])
    assert (other - new.latents).abs().max() > 1e-3
    with pytest.raises(ValueError, match="conditioning must be one of"):
        tiny_model(1, predictor=ACPredictorConfig(conditioning="concat"))


@pytest.mark.parametrize("pooled", [None, 1, 2])
@pytest.mark.parametrize("t,window", [(1, 3), (2, 3), (3, 3), (5, 3), (3, 1), (2, 2), (1, 5)])
def test_cached_rollout_equals_the_predictor_on_the_growing_sequence(pooled, t, window):
    wm = cached_model(pooled, window)
    assert wm.predictor.attention_window == window
    z, actions, proprio = inputs(wm, b=2, t=t)
    cands = torch.randn(2, 5, 6, 4, generator=torch.Generator().manual_seed(t))
    for chunk in (3, 1024):
        new, old = both(wm, z, cands, proprio, actions[:, :t - 1], chunk_size=chunk)
        torch.testing.assert_close(new.latents, old.latents, **TOL)
        torch.testing.assert_close(new.proprio, old.proprio, **TOL)
    with torch.no_grad():  # the reference is `predict` on every frame so far, one at a time
        want = step_by_step(wm, z, proprio, actions[:, :t - 1], cands[:, :2], window=100)
    torch.testing.assert_close(new.latents[:, :2], want, **TOL)


@pytest.mark.parametrize("queries,keys", [(1, 1), (1, 2), (1, 3), (2, 3), (4, 4)])
def test_attention_equals_sdpa(queries, keys):
    """The broadcast one-query attention (and SDPA for more queries) gives SDPA's numbers."""
    g = torch.Generator().manual_seed(queries * 10 + keys)
    q, k, v = (torch.randn(5, 2, n, 8, generator=g) for n in (queries, keys, keys))
    torch.testing.assert_close(_attention(q, k, v), F.scaled_dot_product_attention(q, k, v),
                               **TOL)


def test_folded_weights_are_reused_only_while_the_weights_are_unchanged():
    """A planner's rollouts share one fold; an in-place weight change or a new shape folds
    anew (and the rollout then uses the new weights); under autograd nothing is memoised."""
    wm = cached_model(1, 3)
    z, actions, proprio = inputs(wm, b=1, t=2)
    cands = torch.randn(1, 4, 3, 4, generator=torch.Generator().manual_seed(0))
    args = (wm, 2, 3, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        first = cached_tables(*args)[1]
        assert cached_tables(*args)[1] is first
        assert cached_tables(wm, 2, 4, *args[3:])[1] is not first
        wm.predictor.predictor_blocks[0].attn.qkv.weight.mul_(1.5)
        changed = cached_tables(*args)[1]
        assert changed is not first
        new, old = both(wm, z, cands, proprio, actions[:, :1])
    torch.testing.assert_close(new.latents, old.latents, **TOL)
    with torch.enable_grad():
        assert cached_tables(*args)[1] is not cached_tables(*args)[1]


def test_cached_models_differ_from_sliding_ones_and_see_only_their_window():
    """The same weights imagine differently in the two modes once frames leave the window,
    and a one-block cached predictor's output at frame t ignores frames before t - window + 1."""
    sliding, cached = cached_model(1, 2), cached_model(1, 2)
    sliding.config.imagination, sliding.predictor.attention_window = "sliding", None
    z, actions, proprio = inputs(cached, b=1, t=2)
    cands = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = cached.rollout(z, cands, proprio, history_actions=actions[:, :1])
        b = sliding.rollout(z, cands, proprio, history_actions=actions[:, :1])
    torch.testing.assert_close(a[:, :, 0], b[:, :, 0], **TOL)  # nothing has left the window yet
    assert (a[:, :, -1] - b[:, :, -1]).abs().max() > 1e-4
    one = cached_model(1, 2, depth=1)
    z, actions, proprio = inputs(one, b=1, t=4)
    other = z.clone()
    other[:, 0] += 1.0
    with torch.no_grad():
        x, y = one.predict(z, actions, proprio), one.predict(other, actions, proprio)
    torch.testing.assert_close(x.latents[:, 2:], y.latents[:, 2:], atol=0, rtol=0)
    assert (x.latents[:, 1] - y.latents[:, 1]).abs().max() > 1e-4


@pytest.mark.parametrize("pooled", [1, 2, None])
def test_rope_folds_into_the_qkv_weights_only_for_one_position_a_frame(pooled):
    """A 1 x 1 latent grid gives every token of a frame the frame's position, so the cached
    rollout folds that frame's rotation into the query / key weights (same q, k, v)."""
    wm = cached_model(pooled, 2)
    p = wm.predictor
    tokens = p.num_cond_tokens + p.tokens_per_frame
    cos, sin, _ = window_tables(4, p.num_cond_tokens, p.grid_hw, p.num_heads, 16,
                                torch.device("cpu"), torch.float32, 2)
    folded = _folded_qkv(p.predictor_blocks, cos, sin, tokens, range(1, 4))
    assert (folded is not None) == (pooled == 1)
    if folded is None:
        return
    x = torch.randn(3, tokens, 32, generator=torch.Generator().manual_seed(0))
    rows = slice(2 * tokens, 3 * tokens)  # frame 2 = folded[1]
    for newest in (None, 1):
        with torch.no_grad():
            want = _qkv(p.predictor_blocks[1], x, cos[rows], sin[rows], newest)
            got = _qkv(p.predictor_blocks[1], x, cos[rows], sin[rows], newest, folded[1][1])
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_frame_causal_mask_window():
    mask = frame_causal_mask(4, 2, window=2)
    assert mask.shape == (8, 8)
    step = torch.arange(4).repeat_interleave(2)
    gap = step[:, None] - step[None, :]
    assert torch.equal(mask, (gap == 0) | (gap == 1))
    assert torch.equal(frame_causal_mask(4, 2, window=10), frame_causal_mask(4, 2))


def test_cached_models_reject_another_window_and_bad_modes():
    wm = cached_model(1, 2)
    z, actions, proprio = inputs(wm, b=1, t=2)
    with pytest.raises(ValueError, match="max_context: .*cached"):
        wm.rollout(z, torch.zeros(1, 2, 3, 4), proprio, history_actions=actions[:, :1],
                   max_context=3)
    with pytest.raises(ValueError, match="imagination must be one of"):
        tiny_model(1, imagination="kv")
    with pytest.raises(ValueError, match="attention_window"):
        tiny_model(1, imagination="cached",
                   predictor=ACPredictorConfig(predictor_dim=32, depth=1, num_heads=2,
                                               mlp_hidden_dim=64, is_frame_causal=False))


def test_fused_linears_equal_the_plain_ops():
    torch.manual_seed(0)
    layer, x, r = nn.Linear(24, 40), torch.randn(5, 7, 24), torch.randn(5, 7, 40)
    with torch.no_grad():
        torch.testing.assert_close(fused.linear(x, layer, gelu=True), F.gelu(layer(x)),
                                   atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(fused.linear(x, layer, residual=r), r + layer(x),
                                   atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(fused.weight_rows(layer, slice(8, None), x), layer(x)[..., 8:],
                                   atol=1e-6, rtol=1e-6)
    y = fused.linear(x.requires_grad_(), layer, gelu=True)  # with gradients: the plain ops
    y.sum().backward()
    assert x.grad is not None


def test_rope_factors_rotate_like_apply_rope():
    head_dim = 16  # 3 chunks of 4 rotated, 4 channels left alone
    pos = torch.tensor([[0.0, 0, 0], [1, 2, 3], [4, 0, 1]])
    x = torch.randn(2, 3, 3, head_dim)  # [B, heads, N, d]
    cos, sin = rope_angles(pos, head_dim)
    cos_s, sin_s = rope_factors(pos, head_dim)
    assert cos_s.shape == (3, head_dim)
    torch.testing.assert_close(rotate_pairs_with(x, cos_s, sin_s), apply_rope(x, cos, sin),
                               atol=0, rtol=0)


def test_window_tables_rotate_only_moving_channels():
    cpu = torch.device("cpu")
    cos, sin, mask = window_tables(3, 2, (1, 1), 4, 24, cpu, torch.float32)
    assert cos.shape == (9, 1, 8)  # one token position a frame: only the time chunk rotates
    assert mask.shape == (9, 9) and bool(mask[8].all()) and not bool(mask[0, 3])
    assert window_tables(1, 2, (1, 1), 4, 24, cpu, torch.float32)[0].shape == (3, 1, 0)
    assert window_tables(2, 2, (2, 2), 4, 24, cpu, torch.float32)[0].shape == (12, 1, 24)


def test_compute_batch_splits_cpu_work_evenly():
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert compute_batch(300, 1024, cpu) == 150  # 2 x 150, not 256 + 44
    assert compute_batch(100, 1024, cpu) == 100
    assert compute_batch(300, 64, cpu) == 60
    assert compute_batch(10 * CPU_BATCH, 1024, cpu) == CPU_BATCH
    assert compute_batch(5000, 1024, meta) == 1024  # accelerators take the whole chunk
    assert compute_batch(300, 1024, cpu, frames_a_step=3) == 300  # cached: one frame a step
    assert compute_batch(1024, 1024, cpu, frames_a_step=3) == 512
