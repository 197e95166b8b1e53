"""Pre-norm transformer block: multi-head self-attention (optional 3D-RoPE and mask) plus MLP.

Parameter names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``)
follow the official V-JEPA layout so released weights load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from einops import rearrange
from torch import nn

from jepa_world.models.positions import apply_rope

RopeFactors = tuple[torch.Tensor, torch.Tensor]


class MLP(nn.Module):
    """Two-layer GELU MLP: ``[..., dim] -> [..., hidden] -> [..., dim]``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``.

    Args:
        dim: token width ``D``; must be divisible by ``num_heads``.
        num_heads: number of heads.
        qkv_bias: whether the fused qkv projection has a bias.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeFactors | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend over tokens.

        Args:
            x: ``[B, N, D]`` tokens.
            rope: optional ``(cos, sin)`` from :func:`~jepa_world.models.positions.rope_angles`,
                ``[N, R]`` or ``[B, N, R]``, applied to queries and keys.
            attn_mask: optional ``[N, N]`` (or broadcastable) bool mask, True = may attend.

        Returns:
            ``[B, N, D]``.
        """
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k, v = qkv.unbind(0)
        if rope is not None:
            cos, sin = rope
            q = apply_rope(q, cos, sin)
            k = apply_rope(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    Args:
        dim: token width ``D``.
        num_heads: attention heads.
        mlp_hidden_dim: hidden width of the MLP (official: ``int(dim * mlp_ratio)``).
        qkv_bias: bias on the qkv projection.
        norm_eps: LayerNorm epsilon (official checkpoints: 1e-6).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden_dim: int,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, mlp_hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeFactors | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``; ``rope`` and ``attn_mask`` as in :class:`Attention`."""
        x = x + self.attn(self.norm1(x), rope=rope, attn_mask=attn_mask)
        return x + self.mlp(self.norm2(x))


def run_blocks(
    blocks: nn.ModuleList,
    x: torch.Tensor,
    rope: RopeFactors | None = None,
    attn_mask: torch.Tensor | None = None,
    checkpoint: bool = False,
) -> torch.Tensor:
    """Apply ``blocks`` in order, optionally with activation checkpointing (non-reentrant).

    Checkpointing is only used while gradients are being recorded.
    """
    use_ckpt = checkpoint and torch.is_grad_enabled()
    for blk in blocks:
        if use_ckpt:
            x = torch.utils.checkpoint.checkpoint(
                blk, x, rope, attn_mask, use_reentrant=False
            )
        else:
            x = blk(x, rope=rope, attn_mask=attn_mask)
    return x


def init_transformer_weights(module: nn.Module, blocks: nn.ModuleList, std: float = 0.02) -> None:
    """ViT initialisation: truncated-normal linear/conv weights, zero biases, unit LayerNorms,
    and each block's output projections (``attn.proj``, ``mlp.fc2``) divided by
    ``sqrt(2 * layer)`` (1-based layer index)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        for layer, blk in enumerate(blocks, start=1):
            blk.attn.proj.weight.div_((2.0 * layer) ** 0.5)
            blk.mlp.fc2.weight.div_((2.0 * layer) ** 0.5)
