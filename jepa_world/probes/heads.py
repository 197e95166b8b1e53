"""Probe heads trained on top of FROZEN encoder tokens ``[B, N, D]``.

* :class:`AttentiveProbe` - V-JEPA's attentive probe: ``depth - 1`` self-attention blocks over the
  tokens (V-JEPA 2 style, none by default), then ``K`` learnable queries cross-attend to them
  (:class:`~jepa_world.models.pooling.AttentivePooler`: pre-norm cross-attention + residual MLP),
  then a linear layer on the ``K`` pooled tokens concatenated. The cross-attention is evaluated
  re-associated (:func:`pool_reassociated`): the same function of the same parameters, but about
  ``D / heads`` times cheaper than projecting every token to keys and values.
* :class:`LinearProbe` - the mean over tokens, standardised by a non-affine BatchNorm (MAE's
  linear-probe recipe; its statistics are the average over all training batches, so at evaluation
  it is a fixed affine map and the probe stays linear in the features), then a linear layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jepa_world.models.attention import Block
from jepa_world.models.pooling import AttentivePooler

PROBE_KINDS = ("attentive", "linear")


def _check_tokens(tokens: torch.Tensor, embed_dim: int) -> None:
    if tokens.dim() != 3 or tokens.shape[-1] != embed_dim:
        raise ValueError(f"tokens must be [B, N, {embed_dim}], got {tuple(tokens.shape)}")


def pool_reassociated(pooler: AttentivePooler, tokens: torch.Tensor) -> torch.Tensor:
    """``pooler(tokens)`` computed without projecting each token to keys and values.

    The queries are the same for every sample, so a head's logits ``q . (W_k x_n + b_k)`` equal
    ``(W_k^T q) . x_n`` plus a constant that softmax ignores, and its output
    ``sum_n p_n (W_v x_n + b_v) = W_v (sum_n p_n x_n) + b_v``. Cost per sample
    ``~4 K heads N D`` instead of ``2 N D^2``; the result (and its gradients) are the pooler's.

    Args:
        pooler: supplies every parameter.
        tokens: ``[B, N, D]``.

    Returns:
        ``[B, K, D]``, equal to ``pooler(tokens)`` up to float rounding.
    """
    b = tokens.shape[0]
    h, d = pooler.num_heads, pooler.embed_dim
    e = d // h
    queries = pooler.queries.to(tokens.dtype)  # [K, D]
    k = queries.shape[0]
    q = pooler.q(pooler.norm_q(queries)).view(k, h, e)  # [K, h, e]
    w_k, w_v = pooler.kv.weight[:d].view(h, e, d), pooler.kv.weight[d:].view(h, e, d)
    reader = torch.einsum("khe,hed->hkd", q, w_k) * e ** -0.5  # [h, K, D]
    # norm_kv(x) = x_hat * gamma + beta: gamma folds into the reader, beta only shifts logits by
    # a constant, so the affine-free x_hat (no parameters, no gradient) is all that touches N.
    norm = pooler.norm_kv
    x_hat = F.layer_norm(tokens, (d,), eps=norm.eps)  # [B, N, D]
    if norm.weight is not None:
        reader = reader * norm.weight
    weights = torch.einsum("bnd,hkd->bhkn", x_hat, reader).softmax(dim=-1)  # [B, h, K, N]
    mixed = torch.einsum("bhkn,bnd->bhkd", weights, x_hat)  # [B, h, K, D]
    if norm.weight is not None:
        mixed = mixed * norm.weight
    if norm.bias is not None:
        mixed = mixed + norm.bias
    attn = torch.einsum("bhkd,hed->bkhe", mixed, w_v)  # [B, K, h, e]
    if pooler.kv.bias is not None:
        attn = attn + pooler.kv.bias[d:].view(h, e)
    out = queries + pooler.proj(attn.reshape(b, k, d))
    out = out + pooler.mlp(pooler.norm_mlp(out))
    return F.layer_norm(out, (d,)) if pooler.normalize_output else out


class AttentiveProbe(nn.Module):
    """Learnable queries cross-attending to frozen tokens, then a linear head.

    Args:
        embed_dim: token width ``D``.
        out_dim: outputs (regression targets or class logits).
        num_queries: ``K`` query tokens; their outputs are concatenated for the linear head.
        depth: blocks in all: ``depth - 1`` self-attention blocks over the tokens, then the
            cross-attention block.
        num_heads: attention heads (must divide ``D``).
        mlp_ratio: MLP hidden width as a multiple of ``D``.
    """

    def __init__(self, embed_dim: int, out_dim: int, num_queries: int = 1, depth: int = 1,
                 num_heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {out_dim}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.embed_dim = embed_dim
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, int(embed_dim * mlp_ratio)) for _ in range(depth - 1))
        self.pooler = AttentivePooler(embed_dim, num_tokens=num_queries, num_heads=num_heads,
                                      mlp_ratio=mlp_ratio, normalize_output=True)
        self.head = nn.Linear(num_queries * embed_dim, out_dim)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, N, D] -> [B, out_dim]``."""
        _check_tokens(tokens, self.embed_dim)
        x = tokens
        for block in self.blocks:
            x = block(x)
        pooled = pool_reassociated(self.pooler, x)  # [B, K, D], = self.pooler(x)
        return self.head(pooled.flatten(1))


class LinearProbe(nn.Module):
    """Linear read-out of the average-pooled tokens.

    Args:
        embed_dim: token width ``D``.
        out_dim: outputs (regression targets or class logits).
    """

    def __init__(self, embed_dim: int, out_dim: int) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {out_dim}")
        self.embed_dim = embed_dim
        self.norm = nn.BatchNorm1d(embed_dim, affine=False, eps=1e-6, momentum=None)
        self.head = nn.Linear(embed_dim, out_dim)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, N, D] -> [B, out_dim]`` (mean over the ``N`` tokens first)."""
        _check_tokens(tokens, self.embed_dim)
        return self.head(self.norm(tokens.mean(dim=1)))


def build_probe(kind: str, embed_dim: int, out_dim: int, num_heads: int = 4,
                num_queries: int = 1, depth: int = 1) -> nn.Module:
    """A fresh probe head of ``kind`` (``attentive`` or ``linear``)."""
    if kind == "attentive":
        return AttentiveProbe(embed_dim, out_dim, num_queries=num_queries, depth=depth,
                              num_heads=num_heads)
    if kind == "linear":
        return LinearProbe(embed_dim, out_dim)
    raise ValueError(f"unknown probe {kind!r}; choose one of {', '.join(PROBE_KINDS)}")


__all__ = ["PROBE_KINDS", "AttentiveProbe", "LinearProbe", "build_probe", "pool_reassociated"]
