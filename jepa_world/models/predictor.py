"""Masked-token predictor of V-JEPA / V-JEPA 2: predicts target-token features from context."""

from __future__ import annotations

import torch
from torch import nn

from jepa_world.models.attention import Block, init_transformer_weights, run_blocks
from jepa_world.models.encoder import POS_EMBED_KINDS
from jepa_world.models.positions import (
    as_pair,
    check_token_indices,
    gather_tokens,
    rope_angles,
    sincos_3d_table,
    token_grid_positions,
)


class MaskedPredictor(nn.Module):
    """Narrow ViT that fills in masked tokens.

    Context tokens are embedded to the predictor width; every target position gets the learnable
    mask token of the current mask type (``mask_index``); positions are added from a fixed 3D
    sin-cos table (``pos_embed="sincos"``, V-JEPA) or applied as 3D-RoPE inside attention
    (``pos_embed="rope"``, V-JEPA 2). After the blocks, a LayerNorm and a linear map project the
    target tokens back to the encoder width.

    Args:
        img_size, patch_size, num_frames, tubelet_size: the token grid; token index ``i`` lies at
            ``(i // (H' W'), (i // W') % H', i % W')``. The sin-cos table covers
            ``num_frames // tubelet_size`` steps.
        embed_dim: encoder width ``D``.
        predictor_dim: predictor width ``Dp``.
        depth, num_heads, mlp_hidden_dim, qkv_bias, norm_eps: block hyper-parameters.
        num_mask_tokens: number of mask types, one learnable (zero-initialised) token each.
        pos_embed: ``"sincos"`` (buffer ``predictor_pos_embed`` ``[1, N, Dp]``) or ``"rope"``.
        uniform_power: sin-cos channel split (see positions.sincos_3d_split).
        use_activation_checkpointing: recompute blocks in backward.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 64,
        patch_size: int = 8,
        num_frames: int = 8,
        tubelet_size: int = 2,
        embed_dim: int = 192,
        predictor_dim: int = 96,
        depth: int = 4,
        num_heads: int = 3,
        mlp_hidden_dim: int = 384,
        qkv_bias: bool = True,
        num_mask_tokens: int = 2,
        pos_embed: str = "rope",
        uniform_power: bool = False,
        norm_eps: float = 1e-6,
        use_activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if pos_embed not in POS_EMBED_KINDS:
            raise ValueError(f"pos_embed must be 'rope' or 'sincos', got {pos_embed!r}")
        if num_mask_tokens < 1:
            raise ValueError("num_mask_tokens must be >= 1")
        img_h, img_w = as_pair(img_size)
        self.grid = (num_frames // tubelet_size, img_h // patch_size, img_w // patch_size)
        self.embed_dim = embed_dim
        self.predictor_dim = predictor_dim
        self.num_heads = num_heads
        self.use_rope = pos_embed == "rope"
        self.use_activation_checkpointing = use_activation_checkpointing

        self.predictor_embed = nn.Linear(embed_dim, predictor_dim)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, predictor_dim)) for _ in range(num_mask_tokens)
        )
        if not self.use_rope:
            table = sincos_3d_table(predictor_dim, *self.grid, uniform_power=uniform_power)
            self.register_buffer("predictor_pos_embed", table[None], persistent=True)
        self.predictor_blocks = nn.ModuleList(
            Block(predictor_dim, num_heads, mlp_hidden_dim, qkv_bias=qkv_bias, norm_eps=norm_eps)
            for _ in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(predictor_dim, eps=norm_eps)
        self.predictor_proj = nn.Linear(predictor_dim, embed_dim)
        init_transformer_weights(self, self.predictor_blocks)
        with torch.no_grad():  # mask tokens start at zero, as in the official code
            for token in self.mask_tokens:
                token.zero_()

    @property
    def num_mask_tokens(self) -> int:
        return len(self.mask_tokens)

    def forward(
        self,
        context_tokens: torch.Tensor,
        masks_x: torch.Tensor,
        masks_y: torch.Tensor,
        mask_index: int = 1,
    ) -> torch.Tensor:
        """Predict the target tokens.

        Args:
            context_tokens: ``[B, K, D]`` encoder outputs for the context tokens.
            masks_x: ``[B, K]`` (or ``[K]``) token indices of ``context_tokens``.
            masks_y: ``[B, M]`` (or ``[M]``) token indices to predict.
            mask_index: which mask token to use (taken modulo ``num_mask_tokens``).

        Returns:
            ``[B, M, D]`` predictions, in the order of ``masks_y``.
        """
        if context_tokens.dim() != 3 or context_tokens.shape[-1] != self.embed_dim:
            raise ValueError(
                f"context_tokens must be [B, K, D={self.embed_dim}], "
                f"got {tuple(context_tokens.shape)}"
            )
        b, k, _ = context_tokens.shape
        limit = None if self.use_rope else self.predictor_pos_embed.shape[1]
        masks_x = check_token_indices(masks_x, b, limit, "masks_x").to(context_tokens.device)
        masks_y = check_token_indices(masks_y, b, limit, "masks_y").to(context_tokens.device)
        if masks_x.shape[1] != k:
            raise ValueError(
                f"masks_x must be [B, K] with K={k} (one index per context token), "
                f"got {tuple(masks_x.shape)}"
            )

        x = self.predictor_embed(context_tokens)
        token = self.mask_tokens[mask_index % self.num_mask_tokens]
        targets = token.to(x.dtype).expand(b, masks_y.shape[1], -1)
        if not self.use_rope:
            table = self.predictor_pos_embed.to(x.dtype).expand(b, -1, -1)
            x = x + gather_tokens(table, masks_x)
            targets = targets + gather_tokens(table, masks_y)
        x = torch.cat([x, targets], dim=1)  # [B, K + M, Dp]

        rope = None
        if self.use_rope:
            ids = torch.cat([masks_x, masks_y], dim=1)
            positions = token_grid_positions(ids, self.grid[1], self.grid[2])  # [B, K + M, 3]
            rope = rope_angles(positions, self.predictor_dim // self.num_heads)
        x = run_blocks(
            self.predictor_blocks, x, rope=rope, checkpoint=self.use_activation_checkpointing
        )
        x = self.predictor_norm(x[:, k:])
        return self.predictor_proj(x)
