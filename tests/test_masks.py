"""Multi-block 3D masks: invariants (hypothesis), determinism and the V-JEPA masking ratios."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepa_world.masks import (
    LONG_RANGE,
    VJEPA_MASKS,
    BlockMasks,
    MaskSpec,
    _equal_count_indices,
    block_size,
    sample_multiblock_masks,
)

FAST = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def mask_specs(draw) -> MaskSpec:
    low = draw(st.floats(0.05, 0.6))
    ratio_low = draw(st.floats(0.3, 1.5))
    time_low = draw(st.sampled_from([1.0, 0.5, 0.25]))
    return MaskSpec(
        num_blocks=draw(st.integers(1, 6)),
        spatial_scale=(low, draw(st.floats(low, 0.7))),
        aspect_ratio=(ratio_low, ratio_low * draw(st.floats(1.0, 2.0))),
        temporal_scale=(time_low, 1.0),
    )


grids = st.tuples(st.integers(1, 5), st.integers(2, 9), st.integers(2, 9))
cases = st.fixed_dictionaries({
    "grid": grids,
    "specs": st.lists(mask_specs(), min_size=1, max_size=3),
    "batch_size": st.integers(1, 6),
    "generator": st.integers(0, 2**31 - 1),
    "truncate": st.sampled_from(["first", "random"]),
    "shared_context": st.booleans(),
})


def num_tokens(grid: tuple[int, int, int]) -> int:
    return grid[0] * grid[1] * grid[2]


@FAST
@given(cases)
def test_indices_are_valid_disjoint_and_equal_across_batch(case):
    masks = sample_multiblock_masks(**case)
    n = num_tokens(case["grid"])
    assert len(masks) == len(case["specs"])
    for m in masks:
        for idx in (m.context, m.targets):
            assert idx.dtype == torch.int64 and idx.dim() == 2
            assert idx.shape[0] == case["batch_size"]  # one row per sample: equal counts
            assert idx.min() >= 0 and idx.max() < n
            assert torch.equal(idx, idx.sort(dim=1).values)  # sorted ...
            assert (idx.diff(dim=1) > 0).all()  # ... and unique
        assert m.context.shape[1] >= 1 and m.targets.shape[1] >= 1
        for ctx, tgt in zip(m.context, m.targets, strict=True):
            assert not set(ctx.tolist()) & set(tgt.tolist())


@FAST
@given(cases)
def test_same_seed_same_masks(case):
    first = sample_multiblock_masks(**case)
    again = sample_multiblock_masks(**case)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)


@FAST
@given(grids, st.integers(0, 1000))
def test_full_time_blocks_are_tubes(grid, seed):
    """With the default temporal scale every block spans every time step, so a spatial
    position is masked in all frames or in none (before equalising counts, batch of one)."""
    t, h, w = grid
    masks = sample_multiblock_masks(grid, VJEPA_MASKS, 1, seed)
    for m in masks:
        masked = torch.zeros(num_tokens(grid), dtype=torch.bool)
        masked[m.targets[0]] = True
        masked = masked.view(t, h * w)
        assert (masked == masked[:1]).all()
        assert masked.sum() + m.context.shape[1] == num_tokens(grid)


def test_context_is_the_complement_of_the_targets_for_one_sample():
    for m in sample_multiblock_masks((4, 8, 8), VJEPA_MASKS, 1, 3):
        both = torch.cat([m.context[0], m.targets[0]]).sort().values
        assert torch.equal(both, torch.arange(256))


def test_shared_context_excludes_every_spec_targets():
    masks = sample_multiblock_masks((4, 8, 8), VJEPA_MASKS, 3, 5, shared_context=True)
    assert torch.equal(masks[0].context, masks[1].context)
    for row in range(3):
        ctx = set(masks[0].context[row].tolist())
        assert not ctx & set(masks[0].targets[row].tolist())
        assert not ctx & set(masks[1].targets[row].tolist())


def test_equal_counts_truncate_to_the_batch_minimum():
    keep = torch.tensor([[True, False, True, True, False], [False, True, False, True, False]])
    gen = torch.Generator().manual_seed(0)
    first = _equal_count_indices(keep, "first", gen)
    assert torch.equal(first, torch.tensor([[0, 2], [1, 3]]))  # official: lowest indices
    for _ in range(5):
        rand = _equal_count_indices(keep, "random", gen)
        assert rand.shape == (2, 2) and (rand.diff(dim=1) > 0).all()
        assert set(rand[0].tolist()) <= {0, 2, 3} and torch.equal(rand[1], torch.tensor([1, 3]))


def test_generator_and_int_seed_agree_and_generator_advances():
    gen = torch.Generator().manual_seed(7)
    a = sample_multiblock_masks((4, 8, 8), VJEPA_MASKS, 2, gen)
    b = sample_multiblock_masks((4, 8, 8), VJEPA_MASKS, 2, 7)
    assert torch.equal(a[1].targets, b[1].targets)
    c = sample_multiblock_masks((4, 8, 8), VJEPA_MASKS, 2, gen)  # continues the stream
    assert not torch.equal(a[0].targets, c[0].targets)
    state = torch.get_rng_state()
    sample_multiblock_masks((4, 8, 8), VJEPA_MASKS, 2, 0)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched


def test_block_size_follows_scale_and_aspect_ratio():
    gen = torch.Generator().manual_seed(0)
    # 196 * 0.15 = 29 tokens; aspect 1 -> round(sqrt(29)) = 5 x 5.
    spec = MaskSpec(1, spatial_scale=(0.15, 0.15), aspect_ratio=(1.0, 1.0))
    assert block_size((8, 14, 14), spec, gen) == (8, 5, 5)
    # 196 * 0.7 = 137; aspect 1.5 -> h = round(sqrt(205.5)) = 14, w = round(sqrt(91.3)) = 10.
    spec = MaskSpec(1, spatial_scale=(0.7, 0.7), aspect_ratio=(1.5, 1.5))
    assert block_size((8, 14, 14), spec, gen) == (8, 14, 10)
    spec = MaskSpec(1, spatial_scale=(0.5, 0.5), temporal_scale=(0.5, 0.5))
    assert block_size((8, 14, 14), spec, gen)[0] == 4
    # Tiny grids still mask at least one token per block.
    assert block_size((1, 2, 2), MaskSpec(1, spatial_scale=(0.05, 0.05)), gen) == (1, 1, 1)


def test_min_keep_guard():
    masks = sample_multiblock_masks((2, 6, 6), [LONG_RANGE], 16, 0, min_keep=8)
    assert masks[0].context.shape[1] >= 8
    whole = MaskSpec(1, spatial_scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0))
    with pytest.raises(ValueError, match="min_keep"):
        sample_multiblock_masks((2, 4, 4), [whole], 2, 0, max_tries=3)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="spatial_scale"):
        MaskSpec(1, spatial_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="aspect_ratio"):
        MaskSpec(1, spatial_scale=(0.2, 0.2), aspect_ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="num_blocks"):
        MaskSpec(0, spatial_scale=(0.2, 0.2))
    with pytest.raises(ValueError, match="grid"):
        sample_multiblock_masks((8, 14), VJEPA_MASKS, 1, 0)
    with pytest.raises(ValueError, match="at least one"):
        sample_multiblock_masks((8, 14, 14), [], 1, 0)
    with pytest.raises(ValueError, match="truncate"):
        sample_multiblock_masks((8, 14, 14), VJEPA_MASKS, 1, 0, truncate="last")


def mean_masked_ratio(grid, batch_size, seeds=range(20), **kw) -> list[float]:
    per_spec = [0.0] * len(VJEPA_MASKS)
    for seed in seeds:
        for i, m in enumerate(sample_multiblock_masks(grid, VJEPA_MASKS, batch_size, seed, **kw)):
            per_spec[i] += m.masked_ratio(num_tokens(grid)) / len(seeds)
    return per_spec


@pytest.mark.parametrize("grid", [(8, 14, 14), (4, 8, 8)])
def test_vjepa_default_masking_ratio(grid):
    """Fraction of tokens hidden from the context encoder with the V-JEPA defaults.

    Per mask type (official: each type's context is the complement of its own blocks) with the
    official per-GPU batch of 24, the average over the two types is ~85% (short-range ~77%,
    long-range ~93%); a context shared by both types hides ~88% of a single clip."""
    short, long = mean_masked_ratio(grid, batch_size=24)
    assert 0.70 < short < 0.85 and 0.88 < long < 0.97
    assert 0.82 < (short + long) / 2 < 0.92
    shared, _ = mean_masked_ratio(grid, batch_size=1, shared_context=True)
    assert 0.85 < shared < 0.95


def test_block_masks_feed_the_models():
    from jepa_world.models import MaskedPredictor, VideoViT

    torch.manual_seed(0)
    enc = VideoViT(img_size=32, patch_size=8, num_frames=4, embed_dim=48, depth=1, num_heads=3,
                   mlp_hidden_dim=96)
    pred = MaskedPredictor(img_size=32, patch_size=8, num_frames=4, embed_dim=48,
                           predictor_dim=24, depth=1, num_heads=3, mlp_hidden_dim=48,
                           num_mask_tokens=2)
    video = torch.randn(2, 3, 4, 32, 32)
    for i, m in enumerate(sample_multiblock_masks((2, 4, 4), VJEPA_MASKS, 2, 0)):
        assert isinstance(m, BlockMasks)
        out = pred(enc(video, masks=m.context), m.context, m.targets, mask_index=i)
        assert out.shape == (2, m.targets.shape[1], 48)
