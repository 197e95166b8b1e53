"""Position encodings for video tokens: absolute 3D sin-cos tables (V-JEPA) and 3D-RoPE (V-JEPA 2).

Tokens of a clip are ordered time-major, then rows, then columns: token ``i`` of a
``[T', H', W']`` grid sits at ``t = i // (H' W')``, ``h = (i // W') % H'``, ``w = i % W'``.

All functions here are pure (no module state) and work on any device.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange, repeat

ROPE_BASE = 10000.0


# --------------------------------------------------------------------------- token grid


def token_grid_positions(ids: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """Split flat token indices into (time, row, column) coordinates.

    Args:
        ids: integer token indices, any shape ``[...]``.
        grid_h, grid_w: rows and columns of patches per frame.

    Returns:
        float tensor ``[..., 3]`` holding ``(t, h, w)`` for each index.
    """
    ids = ids.long()
    per_frame = grid_h * grid_w
    t = torch.div(ids, per_frame, rounding_mode="floor")
    rest = ids - t * per_frame
    h = torch.div(rest, grid_w, rounding_mode="floor")
    w = rest - h * grid_w
    return torch.stack([t, h, w], dim=-1).float()


def full_grid_positions(
    grid_t: int, grid_h: int, grid_w: int, device: torch.device | None = None
) -> torch.Tensor:
    """Coordinates ``[T' H' W', 3]`` of every token of a full ``[T', H', W']`` grid."""
    ids = torch.arange(grid_t * grid_h * grid_w, device=device)
    return token_grid_positions(ids, grid_h, grid_w)


# --------------------------------------------------------------------------- sin-cos tables


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """1D sin-cos encoding ``[M, dim]`` of positions ``[M]``: first half sines, second cosines.

    Frequencies are ``1 / 10000 ** (j / (dim / 2))`` for ``j < dim / 2``.
    """
    if dim % 2 != 0:
        raise ValueError(f"sin-cos dimension must be even, got {dim}")
    half = dim // 2
    omega = 1.0 / ROPE_BASE ** (torch.arange(half, dtype=torch.float64) / half)
    angles = pos.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_3d_split(dim: int, uniform_power: bool) -> tuple[int, int, int]:
    """Channels given to (time, height, width) in a 3D sin-cos table of width ``dim``.

    ``uniform_power=True``: three equal even parts of ``2 * ceil(dim / 6)`` (the concatenation is
    cut back to ``dim``). Otherwise time gets ``dim // 2``, height and width ``dim // 4`` each.
    """
    if uniform_power:
        part = 2 * math.ceil(dim / 6)
        return part, part, part
    return dim // 2, dim // 4, dim // 4


def sincos_3d_table(
    dim: int, grid_t: int, grid_h: int, grid_w: int, uniform_power: bool = False,
    time: bool = True,
) -> torch.Tensor:
    """Absolute 3D sin-cos position table ``[T' H' W', dim]`` (float32), time-major order.

    Each token's row is ``[enc_t(t), enc_h(h), enc_w(w)]`` (see :func:`sincos_1d`), truncated to
    ``dim`` channels. Computed in float64 then cast, like the official numpy code.
    ``time=False`` zeroes the time channels: every time step gets the same spatial code.
    """
    d_t, d_h, d_w = sincos_3d_split(dim, uniform_power)
    pos = full_grid_positions(grid_t, grid_h, grid_w).to(torch.float64)
    enc_t = sincos_1d(d_t, pos[:, 0])
    if not time:
        enc_t = torch.zeros_like(enc_t)
    table = torch.cat([enc_t, sincos_1d(d_h, pos[:, 1]), sincos_1d(d_w, pos[:, 2])], dim=1)
    return table[:, :dim].float()


def resize_sincos_table(
    table: torch.Tensor, src_grid: tuple[int, int, int], dst_grid: tuple[int, int, int]
) -> torch.Tensor:
    """Adapt a stored table ``[1, N, D]`` from ``src_grid`` to ``dst_grid`` (both ``(T', H', W')``).

    Same spatial grid and fewer frames: the first tokens are kept (time-major order). Anything
    else: trilinear interpolation over the grid, as the official encoder does.
    """
    if tuple(src_grid) == tuple(dst_grid):
        return table
    t0, h0, w0 = src_grid
    t1, h1, w1 = dst_grid
    if (h0, w0) == (h1, w1) and t1 <= t0:
        return table[:, : t1 * h1 * w1]
    grid = rearrange(table, "1 (t h w) d -> 1 d t h w", t=t0, h=h0, w=w0)
    grid = torch.nn.functional.interpolate(
        grid, scale_factor=(t1 / t0, h1 / h0, w1 / w0), mode="trilinear"
    )
    return rearrange(grid, "1 d t h w -> 1 (t h w) d")


# --------------------------------------------------------------------------- 3D-RoPE


def rope_chunk_dim(head_dim: int) -> int:
    """Channels of one RoPE axis: the largest even number <= ``head_dim // 3``.

    The first ``3 * chunk`` channels of every head are rotated, in the order (time, height,
    width); the remaining ``head_dim - 3 * chunk`` channels are left untouched.
    """
    return 2 * ((head_dim // 3) // 2)


def rope_angles(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cos/sin factors of 3D-RoPE for tokens at ``positions``.

    Args:
        positions: ``[..., N, 3]`` float ``(t, h, w)`` coordinates (e.g. ``[N, 3]`` or
            ``[B, N, 3]``).
        head_dim: channels per attention head.

    Returns:
        ``(cos, sin)``, each ``[..., N, 3 * chunk]`` with ``chunk = rope_chunk_dim(head_dim)``.

    Within an axis chunk of ``c`` channels the frequencies ``1 / 10000 ** (j / (c / 2))``,
    ``j < c / 2``, are laid out *tiled* (``[f_0 .. f_{c/2-1}, f_0 .. f_{c/2-1}]``) while channels
    are rotated in adjacent pairs ``(2i, 2i + 1)``. This quirk is what the released V-JEPA 2
    weights were trained with, so it is kept for compatibility.
    """
    if positions.shape[-1] != 3:
        raise ValueError(f"positions must be [..., N, 3] (t, h, w), got {tuple(positions.shape)}")
    chunk = rope_chunk_dim(head_dim)
    if chunk == 0:
        raise ValueError(f"head_dim={head_dim} is too small for 3D-RoPE (needs >= 6)")
    half = chunk // 2
    omega = 1.0 / ROPE_BASE ** (
        torch.arange(half, dtype=torch.float32, device=positions.device) / half
    )
    freqs = repeat(omega, "f -> (two f)", two=2)  # [chunk], tiled
    angles = positions.float()[..., None] * freqs  # [..., N, 3, chunk]
    angles = rearrange(angles, "... n a c -> ... n (a c)")
    return angles.cos(), angles.sin()


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """``(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)`` over the last dimension."""
    pairs = rearrange(x, "... (c two) -> ... c two", two=2)
    first, second = pairs.unbind(dim=-1)
    return rearrange(torch.stack([-second, first], dim=-1), "... c two -> ... (c two)")


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` ``[B, heads, N, head_dim]`` by :func:`rope_angles` factors.

    ``cos``/``sin`` are ``[N, R]`` or ``[B, N, R]`` with ``R <= head_dim`` rotated channels; the
    trailing ``head_dim - R`` channels pass through unchanged.
    """
    rot = cos.shape[-1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if cos.dim() == 3:  # [B, N, R] -> [B, 1, N, R] to broadcast over heads
        cos, sin = cos[:, None], sin[:, None]
    head, tail = x[..., :rot], x[..., rot:]
    head = head * cos + _rotate_pairs(head) * sin
    return torch.cat([head, tail], dim=-1)


def rope_factors(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rope_angles` laid out for :func:`rotate_pairs_with`: ``(cos, signed_sin)``, each
    ``[..., N, head_dim]`` (even ``head_dim``), padded with 1 / 0 over the unrotated channels and
    the sine negated on even channels, so ``x * cos + swap_pairs(x) * signed_sin`` equals
    :func:`apply_rope` (negation is exact in floating point)."""
    if head_dim % 2:
        raise ValueError(f"rope_factors needs an even head_dim, got {head_dim}")
    cos, sin = rope_angles(positions, head_dim)
    sign = torch.tensor([-1.0, 1.0], device=sin.device).repeat(sin.shape[-1] // 2)
    pad = head_dim - cos.shape[-1]
    if pad:
        cos = torch.cat([cos, cos.new_ones(*cos.shape[:-1], pad)], dim=-1)
        sin = torch.cat([sin * sign, sin.new_zeros(*sin.shape[:-1], pad)], dim=-1)
        return cos, sin
    return cos, sin * sign


def swap_pairs(x: torch.Tensor) -> torch.Tensor:
    """``(x0, x1, x2, x3, ...) -> (x1, x0, x3, x2, ...)`` over the last (even) dimension."""
    pairs = rearrange(x, "... (c two) -> ... c two", two=2)
    return rearrange(pairs.flip(-1), "... c two -> ... (c two)")


def rotate_pairs_with(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor):
    """RoPE by :func:`rope_factors` (any layout whose last dim is ``head_dim`` and that
    broadcasts against the factors): one multiply-add, no split or concatenation."""
    return x * cos + swap_pairs(x) * signed_sin


# --------------------------------------------------------------------------- token indices


def as_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``64 -> (64, 64)``; a pair stays a pair."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class TokenIndexTypeError(TypeError, ValueError):
    """Token indices that are not an integer tensor (a TypeError that is also a ValueError, so
    callers validating any bad index input can catch ValueError alone)."""


def check_token_indices(
    idx: torch.Tensor, batch: int, num_tokens: int | None, name: str
) -> torch.Tensor:
    """Validate token indices and return them as ``[B, K]`` int64.

    Args:
        idx: ``[B, K]`` (per sample) or ``[K]`` (shared by the batch) integer indices.
        batch: expected batch size ``B``.
        num_tokens: exclusive upper bound on indices, or None to skip the range check.
        name: argument name used in error messages.
    """
    if (not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.is_complex()
            or idx.dtype == torch.bool):
        raise TokenIndexTypeError(f"{name} must be an integer tensor of token indices [B, K]")
    if idx.dim() == 1:
        idx = idx.unsqueeze(0).expand(batch, -1)
    if idx.dim() != 2 or idx.shape[0] != batch:
        raise ValueError(
            f"{name} must have shape [B, K] = [{batch}, K] (or [K]), got {tuple(idx.shape)}"
        )
    if idx.numel() and num_tokens is not None:
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= num_tokens:
            raise ValueError(
                f"{name} holds indices in [{low}, {high}], outside [0, {num_tokens}): there are "
                f"only {num_tokens} tokens"
            )
    return idx.long()


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Pick tokens: ``x`` ``[B, N, D]``, ``idx`` ``[B, K]`` -> ``[B, K, D]``."""
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))
