"""Training losses: V-JEPA's feature-prediction loss, a VideoMAE-style pixel loss, and the
world model's latent distance and anti-collapse regulariser.

All functions are pure (no state, no randomness). Token tensors are ``[B, N, D]`` in the
encoder's token order (time-major, then rows, then columns); index tensors ``[B, K]`` pick
tokens from them, e.g. the ``targets`` of :func:`jepa_world.masks.sample_multiblock_masks`.

Non-finite inputs are not checked here (that would force a device sync every step): a NaN or
inf anywhere in the inputs makes the loss NaN/inf, so test ``torch.isfinite(loss)`` in the
training loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from jepa_world.models import positions
from jepa_world.models.positions import check_token_indices


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Pick tokens per sample: ``x`` ``[B, N, D]``, ``idx`` ``[B, K]`` int -> ``[B, K, D]``.

    Raises:
        ValueError: wrong ranks, batch sizes that differ, or indices outside ``[0, N)``.
    """
    if x.dim() != 3:
        raise ValueError(f"expected x [B, N, D], got {tuple(x.shape)}")
    index = check_token_indices(idx, x.shape[0], x.shape[1], "idx")
    return positions.gather_tokens(x, index.to(x.device))


def _masked_targets(
    predictions: torch.Tensor, targets: torch.Tensor, index: torch.Tensor | None
) -> torch.Tensor:
    """``targets`` (gathered at ``index`` if given), checked to match ``predictions``."""
    if index is not None:
        targets = gather_tokens(targets, index)
    if predictions.dim() != 3 or predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets "
                         f"{tuple(targets.shape)} must both be [B, M, D]")
    return targets


def jepa_loss(
    predictions: torch.Tensor, targets: torch.Tensor, index: torch.Tensor | None = None
) -> torch.Tensor:
    """V-JEPA loss: mean absolute error to layer-normalised target features.

    ``loss = mean |predictions - layer_norm(targets)|`` where ``layer_norm`` standardises each
    token over its ``D`` features (no affine parameters, eps 1e-5) and the mean runs over
    ``B * M * D``. The targets are detached (stop-gradient: the target encoder is updated by EMA,
    never by this loss). With several mask types, average the per-type losses.

    Args:
        predictions: ``[B, M, D]`` predictor outputs for the masked tokens.
        targets: target-encoder features, either already gathered at the same ``M`` masked
            positions (``[B, M, D]``, same order as ``predictions``) or for the whole clip
            (``[B, N, D]``) together with ``index``.
        index: optional ``[B, M]`` token indices used to gather ``targets`` (the predictor's
            ``masks_y``). Normalising per token commutes with gathering, so either order works.

    Returns:
        Scalar loss tensor.
    """
    targets = _masked_targets(predictions, targets, index).detach()
    normed = F.layer_norm(targets, (targets.shape[-1],))
    return (predictions - normed).abs().mean()


def pixel_targets(
    video: torch.Tensor, tubelet: int, patch: int, normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """Per-tubelet pixel targets, VideoMAE style.

    Each ``tubelet x patch x patch`` block of the clip becomes one token, in the encoder's order.
    With ``normalize`` each token is standardised on its own, channel by channel: minus the mean
    of its ``tubelet * patch * patch`` pixels, divided by their (unbiased) std + ``eps``.

    Args:
        video: ``[B, C, T, H, W]`` with ``T % tubelet == H % patch == W % patch == 0``.
        tubelet: frames per token.
        patch: pixels per token side.
        normalize: standardise each token (True) or return raw pixels.
        eps: added to the std.

    Returns:
        ``[B, N, tubelet * patch * patch * C]`` with ``N = T/tubelet * H/patch * W/patch``;
        features ordered (frame, row, column, channel), channel fastest.
    """
    if video.dim() != 5:
        raise ValueError(f"video must be [B, C, T, H, W], got {tuple(video.shape)}")
    _, _, frames, height, width = video.shape
    if frames % tubelet or height % patch or width % patch:
        raise ValueError(f"video {tuple(video.shape)} is not divisible into {tubelet} x "
                         f"{patch} x {patch} tubelets")
    if normalize and tubelet * patch * patch < 2:
        raise ValueError("normalize needs at least 2 pixels per tubelet")
    tokens = rearrange(video, "b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw) c",
                       pt=tubelet, ph=patch, pw=patch)
    if normalize:
        mean = tokens.mean(dim=-2, keepdim=True)
        std = tokens.var(dim=-2, unbiased=True, keepdim=True).sqrt()
        tokens = (tokens - mean) / (std + eps)
    return rearrange(tokens, "b n p c -> b n (p c)")


def pixel_loss(
    predictions: torch.Tensor, targets: torch.Tensor, index: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error on the masked tubelets (VideoMAE's reconstruction loss).

    Args:
        predictions: ``[B, M, F]`` predicted pixels of the masked tokens.
        targets: :func:`pixel_targets` output, either already gathered (``[B, M, F]``) or for
            every token (``[B, N, F]``) with ``index``.
        index: optional ``[B, M]`` indices of the masked tokens, to gather ``targets``.

    Returns:
        Scalar loss tensor (mean over ``B * M * F``); targets are detached.
    """
    targets = _masked_targets(predictions, targets, index).detach()
    return F.mse_loss(predictions, targets)


def latent_distance(predicted: torch.Tensor, target: torch.Tensor, kind: str = "l1"):
    """Mean ``|predicted - target|`` (``l1``) or squared difference (``l2``) over all elements.

    Shapes must match exactly (e.g. ``[B, T, N, D]``); gradients flow into both sides.
    """
    if predicted.shape != target.shape:
        raise ValueError(f"predicted {list(predicted.shape)} and target "
                         f"{list(target.shape)} must have the same shape")
    if kind == "l1":
        return F.l1_loss(predicted, target)
    if kind == "l2":
        return F.mse_loss(predicted, target)
    raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")


def center_by_position(tokens: torch.Tensor, idx: torch.Tensor, num_positions: int) -> torch.Tensor:
    """Tokens minus the batch mean of the tokens at the same position: ``[B, K, D] -> [B K, D]``.

    ``idx [B, K]`` gives each token's position in ``[0, num_positions)``. What every sample shows
    at a position (a position or time code, a static background) becomes zero, so the variance
    and covariance terms measured on the result count only what differs between clips (a token
    alone at its position in the batch becomes zero: nothing to compare it with).
    """
    if tokens.dim() != 3 or tuple(idx.shape) != tuple(tokens.shape[:2]):
        raise ValueError(f"tokens must be [B, K, D] and idx [B, K], got {list(tokens.shape)} "
                         f"and {list(idx.shape)}")
    flat, where = tokens.flatten(0, 1), idx.reshape(-1).to(tokens.device)
    sums = flat.new_zeros(num_positions, flat.shape[1]).index_add_(0, where, flat)
    counts = torch.bincount(where, minlength=num_positions).clamp_min(1)
    return flat - (sums / counts[:, None].to(flat.dtype))[where]


def variance_covariance(z: torch.Tensor, target_std: float = 1.0, eps: float = 1e-4):
    """VICReg's anti-collapse terms of a batch of vectors ``z [M, D]``.

    Returns ``(variance, covariance)``: the mean hinge ``relu(target_std - std_d)`` over dims
    (zero once every dim varies enough across the batch; large when the batch collapsed to one
    point), and the mean squared off-diagonal covariance scaled by ``1 / D`` (decorrelates dims,
    so information spreads instead of being copied).
    """
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"z must be [M, D] with M >= 2, got {list(z.shape)}")
    m, d = z.shape
    z = z - z.mean(dim=0)
    std = torch.sqrt(z.var(dim=0) + eps)
    variance = F.relu(target_std - std).mean()
    cov = (z.T @ z) / (m - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return variance, off.square().sum() / d


__all__ = ["center_by_position", "gather_tokens", "jepa_loss", "latent_distance", "pixel_loss",
           "pixel_targets", "variance_covariance"]
