"""Attentive pooling: a few learnable queries summarise a frame's patch tokens.

Used by :class:`~jepa_world.world_model.WorldModel` as its optional COMPACT latent: ``N`` patch
tokens of width ``D`` become ``K`` tokens (``K = 1..4`` typically), so the cost of a planning
rollout no longer grows with the patch count. Same recipe as V-JEPA's attentive probe: learnable
queries, one pre-norm cross-attention (``F.scaled_dot_product_attention``, multi-head), a residual
MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import pack, rearrange, unpack
from torch import nn

from jepa_world.models.attention import MLP


@dataclass
class PoolerConfig:
    """Arguments of :class:`AttentivePooler` other than the token width (taken from the encoder).

    Attributes:
        num_tokens: ``K``, pooled tokens a frame.
        kind: ``"attentive"`` (:class:`AttentivePooler`) or ``"grid"`` (position-aware
            :class:`~jepa_world.models.grid_pooling.GridPooler`; ``num_heads``, ``mlp_ratio``,
            ``qkv_bias`` and ``norm_eps`` then unused).
        grid_channels, grid_hidden_dim: the grid pooler's squeeze width and MLP width.
        num_heads: attention heads (must divide the width ``D``).
        mlp_ratio: MLP hidden width as a multiple of ``D``.
        qkv_bias: bias on the query / key / value projections.
        norm_eps: LayerNorm epsilon.
        normalize_output: layer-norm each output token without affine parameters, like the
            frame features the predictor sees without a pooler (keeps costs on one scale).
    """

    num_tokens: int = 1
    kind: str = "attentive"
    grid_channels: int = 32
    grid_hidden_dim: int = 256
    num_heads: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    normalize_output: bool = True


POOLER_KINDS = ("attentive", "grid")


def build_pooler(embed_dim: int, num_patches: int, cfg: PoolerConfig) -> nn.Module:
    """The pooler ``cfg`` describes, for ``num_patches`` tokens of width ``embed_dim``."""
    if cfg.kind == "attentive":
        return AttentivePooler.from_config(embed_dim, cfg)
    if cfg.kind == "grid":
        from jepa_world.models.grid_pooling import GridPooler

        return GridPooler(embed_dim, num_patches, cfg.num_tokens, cfg.grid_channels,
                          cfg.grid_hidden_dim, cfg.normalize_output)
    raise ValueError(f"pooler kind must be one of {POOLER_KINDS}, got {cfg.kind!r}")


class AttentivePooler(nn.Module):
    """``K`` learnable queries cross-attend to ``N`` tokens: ``[..., N, D] -> [..., K, D]``.

    ``x = q + proj(attn(norm_q(q), norm_kv(tokens)))``, then ``x = x + mlp(norm_mlp(x))``, then
    (``normalize_output``) ``layer_norm(x)`` without affine parameters.

    Args:
        embed_dim: token width ``D``.
        num_tokens: number of queries ``K``.
        num_heads: attention heads; ``D`` must be divisible by it.
        mlp_ratio: MLP hidden width ``= int(D * mlp_ratio)``.
        qkv_bias: bias on the q / kv projections.
        norm_eps: LayerNorm epsilon.
        normalize_output: final layer norm without affine.
    """

    def __init__(
        self,
        embed_dim: int,
        num_tokens: int = 1,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        normalize_output: bool = True,
    ) -> None:
        super().__init__()
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        if embed_dim % num_heads:
            raise ValueError(f"width {embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim = embed_dim
        self.num_tokens = num_tokens
        self.num_heads = num_heads
        self.normalize_output = normalize_output
        self.queries = nn.Parameter(torch.zeros(num_tokens, embed_dim))
        self.norm_q = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.norm_kv = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.q = nn.Linear(embed_dim, embed_dim, bias=qkv_bias)
        self.kv = nn.Linear(embed_dim, 2 * embed_dim, bias=qkv_bias)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.norm_mlp = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.mlp = MLP(embed_dim, int(embed_dim * mlp_ratio))
        self._init_weights()

    @classmethod
    def from_config(cls, embed_dim: int, cfg: PoolerConfig) -> AttentivePooler:
        return cls(embed_dim, cfg.num_tokens, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias,
                   cfg.norm_eps, cfg.normalize_output)

    def _init_weights(self, std: float = 0.02) -> None:
        nn.init.trunc_normal_(self.queries, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pool tokens.

        Args:
            tokens: ``[B, N, D]`` (any leading dims ``[..., N, D]`` are accepted, e.g.
                ``[B, T, N, D]``).

        Returns:
            ``[B, K, D]`` (``[..., K, D]``).
        """
        if tokens.dim() < 2 or tokens.shape[-1] != self.embed_dim:
            raise ValueError(
                f"tokens must be [B, N, {self.embed_dim}] (or [..., N, {self.embed_dim}]), "
                f"got {tuple(tokens.shape)}"
            )
        x, packed = pack([tokens], "* n d")  # [B', N, D]
        b = x.shape[0]
        queries = self.queries.to(x.dtype).expand(b, -1, -1)  # [B', K, D]
        q = rearrange(self.q(self.norm_q(queries)), "b k (h e) -> b h k e", h=self.num_heads)
        kv = self.kv(self.norm_kv(x))
        k, v = rearrange(kv, "b n (two h e) -> two b h n e", two=2, h=self.num_heads).unbind(0)
        attn = F.scaled_dot_product_attention(q, k, v)  # [B', h, K, e]
        out = queries + self.proj(rearrange(attn, "b h k e -> b k (h e)"))
        out = out + self.mlp(self.norm_mlp(out))
        if self.normalize_output:
            out = F.layer_norm(out, (self.embed_dim,))
        [out] = unpack(out, packed, "* k d")
        return out
