"""Multi-block 3D masks of V-JEPA, as a pure function of a seed.

A video of ``T' x H' x W'`` tokens (ordered time-major, then rows, then columns, as the encoder
emits them; token ``(t, r, c)`` has index ``t * H' * W' + r * W' + c``) is masked with a few
rectangular blocks. Each :class:`MaskSpec` describes one mask type; for each spec and each sample:

* a block's size is drawn ONCE per call and spec (shared by every block and every sample of the
  batch, as in the official code): spatial area ``int(H' W' * scale)`` tokens, shaped by the
  aspect ratio ``h / w`` into ``h = round(sqrt(area * ratio))``, ``w = round(sqrt(area /
  ratio))`` (clipped to the grid, at least 1), and ``t = max(1, int(T' * temporal_scale))``
  time steps (all of them by default: blocks are tubes through the whole clip);
* each of the spec's ``num_blocks`` blocks gets its own uniformly drawn position;
* ``targets`` = tokens inside the union of the spec's blocks, ``context`` = all other tokens
  (their complement). If the context has fewer than ``min_keep`` tokens the sample's blocks
  are drawn again.

Every sample then keeps the same number of context and of target tokens, namely the batch
minimum, so the indices stack into ``[B, K]`` tensors. By default (``truncate="first"``) the
lowest indices are kept, exactly as the official collator does (it drops the last tokens, i.e.
late frames / bottom rows, of the samples that have more); ``truncate="random"`` keeps a
uniformly drawn subset instead, which removes that bias. Dropped tokens are neither seen nor
predicted. All indices are sorted ascending.

Measured with the V-JEPA defaults on an 8 x 14 x 14 grid (mean over seeds): the context of one
clip misses ~62% of the tokens with the short-range spec and ~81% with the long-range one; with
a batch of 24 (the official per-GPU batch) equalising raises this to ~77% / ~94% (~85% on
average over the two types). A context shared by both types (``shared_context=True``) misses
~88% of one clip's tokens.

The official loss runs the encoder once per spec on that spec's context and predicts that spec's
targets (``MaskedPredictor(..., mask_index=i)``), then averages the per-spec losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange

TRUNCATE_MODES = ("first", "random")


@dataclass(frozen=True)
class MaskSpec:
    """One mask type: ``num_blocks`` blocks of a random size within the given ranges.

    Attributes:
        num_blocks: blocks per sample; the target is their union.
        spatial_scale: ``(min, max)`` fraction of the ``H' x W'`` frame area one block covers.
        aspect_ratio: ``(min, max)`` of block height / width.
        temporal_scale: ``(min, max)`` fraction of the ``T'`` time steps a block spans;
            ``(1.0, 1.0)`` (default) makes every block span the whole clip.
        future: blocks end at the clip's last time step instead of starting anywhere, so what
            they hide is the future of what the context shows in the same place (with a
            whole-frame block: predict the last frames from the first ones).
    """

    num_blocks: int
    spatial_scale: tuple[float, float]
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    future: bool = False

    def __post_init__(self) -> None:
        if self.num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {self.num_blocks}")
        for name in ("spatial_scale", "temporal_scale", "aspect_ratio"):
            low, high = getattr(self, name)
            fraction = name != "aspect_ratio"
            if not 0 < low <= high or (fraction and high > 1):
                bounds = "0 < min <= max <= 1" if fraction else "0 < min <= max"
                raise ValueError(f"{name} must satisfy {bounds}, got {(low, high)}")


#: V-JEPA short-range masks: the union of 8 blocks, each 15% of the frame, through all time.
SHORT_RANGE = MaskSpec(num_blocks=8, spatial_scale=(0.15, 0.15), aspect_ratio=(0.75, 1.5))
#: V-JEPA long-range masks: the union of 2 blocks, each 70% of the frame, through all time.
LONG_RANGE = MaskSpec(num_blocks=2, spatial_scale=(0.7, 0.7), aspect_ratio=(0.75, 1.5))
#: The two mask types V-JEPA pretrains with (index = the predictor's ``mask_index``).
VJEPA_MASKS = (SHORT_RANGE, LONG_RANGE)


@dataclass(frozen=True)
class BlockMasks:
    """Token indices of one mask type for a batch.

    Attributes:
        context: ``[B, Kc]`` int64, sorted, the tokens the context encoder sees.
        targets: ``[B, Kt]`` int64, sorted, the tokens the predictor must predict.
    """

    context: torch.Tensor
    targets: torch.Tensor

    def masked_ratio(self, num_tokens: int) -> float:
        """Fraction of the ``num_tokens`` grid the context encoder does not see."""
        return 1.0 - self.context.shape[1] / num_tokens


def block_size(
    grid: tuple[int, int, int], spec: MaskSpec, generator: torch.Generator
) -> tuple[int, int, int]:
    """Draw one block size ``(t, h, w)`` in tokens for ``spec`` on a ``(T', H', W')`` grid."""
    depth, height, width = grid
    u_time, u_scale, u_ratio = torch.rand(3, generator=generator).tolist()
    temporal = spec.temporal_scale[0] + u_time * (spec.temporal_scale[1] - spec.temporal_scale[0])
    scale = spec.spatial_scale[0] + u_scale * (spec.spatial_scale[1] - spec.spatial_scale[0])
    ratio = spec.aspect_ratio[0] + u_ratio * (spec.aspect_ratio[1] - spec.aspect_ratio[0])
    area = int(height * width * scale)
    t = max(1, int(depth * temporal))
    h = min(height, max(1, round(math.sqrt(area * ratio))))
    w = min(width, max(1, round(math.sqrt(area / ratio))))
    return t, h, w


def _place_blocks(
    grid: tuple[int, int, int], size: tuple[int, int, int], num_samples: int, num_blocks: int,
    generator: torch.Generator, future: bool = False,
) -> torch.Tensor:
    """Union of ``num_blocks`` randomly placed blocks of ``size``: bool ``[S, T' * H' * W']``
    (``future``: every block ends at the last time step)."""
    axes = []
    for axis, (extent, length) in enumerate(zip(grid, size, strict=True)):
        if future and axis == 0:
            start = torch.full((num_samples, num_blocks, 1), extent - length)
        else:
            start = torch.randint(0, extent - length + 1, (num_samples, num_blocks, 1),
                                  generator=generator)
        steps = torch.arange(extent)
        axes.append((steps >= start) & (steps < start + length))  # [S, n, extent]
    in_t, in_h, in_w = axes
    blocks = in_t[:, :, :, None, None] & in_h[:, :, None, :, None] & in_w[:, :, None, None, :]
    return rearrange(blocks.any(dim=1), "s t h w -> s (t h w)")


def _equal_count_indices(
    keep: torch.Tensor, mode: str, generator: torch.Generator
) -> torch.Tensor:
    """Sorted indices of ``True`` entries of ``keep`` ``[B, N]``, the same number ``K`` (the
    batch minimum) per row: ``[B, K]`` int64. ``mode`` picks which ones survive (module doc)."""
    count = int(keep.sum(dim=1).min())
    if mode == "first":
        order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    else:
        priority = torch.rand(keep.shape, generator=generator).masked_fill(~keep, 2.0)
        order = priority.argsort(dim=1)
    return order[:, :count].sort(dim=1).values


def sample_multiblock_masks(
    grid: tuple[int, int, int],
    specs: tuple[MaskSpec, ...] | list[MaskSpec] = VJEPA_MASKS,
    batch_size: int = 1,
    generator: torch.Generator | int = 0,
    min_keep: int = 1,
    truncate: str = "first",
    max_tries: int = 100,
    shared_context: bool = False,
) -> list[BlockMasks]:
    """Draw V-JEPA multi-block masks for a batch; same seed, same masks.

    Args:
        grid: token grid ``(T', H', W')``, e.g. ``(8, 14, 14)`` for 16 frames of 224 px with
            2 x 16 x 16 tubelets.
        specs: one :class:`MaskSpec` per mask type (default: :data:`VJEPA_MASKS`).
        batch_size: ``B``.
        generator: a ``torch.Generator`` (advanced in place) or an int seed. Nothing else is
            random: the global RNG is untouched.
        min_keep: smallest acceptable context per sample; samples below it are redrawn.
        truncate: ``"first"`` (official) or ``"random"``: which tokens survive equalising the
            counts across the batch (module doc).
        max_tries: redraws allowed per spec before giving up.
        shared_context: if True, every spec gets the same context: the complement of the union
            of ALL specs' blocks (one encoder pass serves every mask type; the ``min_keep``
            check then applies to that shared context). Default False: official V-JEPA, each
            spec's context is the complement of its own blocks.

    Returns:
        One :class:`BlockMasks` per spec, in order: ``context`` ``[B, Kc]`` and ``targets``
        ``[B, Kt]`` int64 CPU tensors, sorted, disjoint per sample, values in
        ``[0, T' H' W')``.

    Raises:
        ValueError: bad arguments, or a spec whose blocks leave fewer than ``min_keep``
            context tokens ``max_tries`` times in a row.
    """
    if len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"grid must be (T', H', W') of positive ints, got {grid}")
    if batch_size < 1 or min_keep < 1 or max_tries < 1:
        raise ValueError("batch_size, min_keep and max_tries must be >= 1")
    if truncate not in TRUNCATE_MODES:
        raise ValueError(f"truncate must be one of {TRUNCATE_MODES}, got {truncate!r}")
    specs = list(specs)
    if not specs:
        raise ValueError("specs must hold at least one MaskSpec")
    grid = (int(grid[0]), int(grid[1]), int(grid[2]))
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    sizes = [block_size(grid, spec, generator) for spec in specs]
    masked = [_place_blocks(grid, size, batch_size, spec.num_blocks, generator, spec.future)
              for spec, size in zip(specs, sizes, strict=True)]
    # Specs whose union must leave ``min_keep`` context tokens; a failing sample redraws them all.
    groups = [list(range(len(specs)))] if shared_context else [[i] for i in range(len(specs))]
    for group in groups:
        for attempt in range(max_tries + 1):
            hidden = torch.stack([masked[i] for i in group]).any(dim=0)
            redo = ((~hidden).sum(dim=1) < min_keep).nonzero().flatten()
            if redo.numel() == 0:
                break
            if attempt == max_tries:
                raise ValueError(
                    f"{[specs[i] for i in group]} on grid {grid}: blocks of sizes "
                    f"{[sizes[i] for i in group]} left fewer than min_keep={min_keep} context "
                    f"tokens after {max_tries} redraws; use smaller or fewer blocks"
                )
            for i in group:
                masked[i][redo] = _place_blocks(grid, sizes[i], len(redo), specs[i].num_blocks,
                                                generator, specs[i].future)
    union = torch.stack(masked).any(dim=0)
    return [
        BlockMasks(
            context=_equal_count_indices(~(union if shared_context else spec_mask), truncate,
                                         generator),
            targets=_equal_count_indices(spec_mask, truncate, generator),
        )
        for spec_mask in masked
    ]


__all__ = [
    "LONG_RANGE",
    "SHORT_RANGE",
    "TRUNCATE_MODES",
    "VJEPA_MASKS",
    "BlockMasks",
    "MaskSpec",
    "block_size",
    "sample_multiblock_masks",
]
