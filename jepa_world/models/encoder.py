"""Video ViT encoder of V-JEPA (absolute 3D sin-cos positions) and V-JEPA 2 (3D-RoPE)."""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from jepa_world.models.attention import Block, init_transformer_weights, run_blocks
from jepa_world.models.positions import (
    as_pair,
    check_token_indices,
    full_grid_positions,
    gather_tokens,
    resize_sincos_table,
    rope_angles,
    sincos_3d_table,
    token_grid_positions,
)

POS_EMBED_KINDS = ("rope", "sincos")


class TubeletEmbed(nn.Module):
    """Conv3d patchify: ``[B, C, T, H, W] -> [B, T' H' W', D]`` with kernel = stride =
    ``(tubelet, patch, patch)``; tokens come out time-major, then rows, then columns."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(video), "b d t h w -> b (t h w) d")


class VideoViT(nn.Module):
    """ViT over video tubelets with pre-norm blocks and a final LayerNorm.

    Args:
        img_size: training resolution (int or (H, W)); sizes the sin-cos table and is the
            reference grid for interpolation. RoPE models accept any divisible size.
        patch_size: spatial patch size ``p``.
        num_frames: training clip length (sizes the sin-cos table).
        tubelet_size: frames per token ``t``.
        in_chans: input channels ``C``.
        embed_dim: token width ``D``.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_hidden_dim: MLP hidden width.
        qkv_bias: bias on qkv projections.
        pos_embed: ``"sincos"`` (V-JEPA: a fixed table added after patchify, stored as the
            ``pos_embed`` buffer ``[1, N, D]``) or ``"rope"`` (V-JEPA 2: 3D-RoPE in every block).
        uniform_power: sin-cos channel split, see ``positions.sincos_3d_split``.
        time_positions: ``False`` drops the time coordinate from the positions (the sin-cos
            table's time channels are zero; RoPE sees every token at time 0), so a token's time
            reaches the encoder only through what its pixels show. The predictor keeps its own
            3D positions. ``True`` is V-JEPA.
        norm_eps: LayerNorm epsilon.
        use_activation_checkpointing: recompute block activations in backward to save memory.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 64,
        patch_size: int = 8,
        num_frames: int = 8,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        mlp_hidden_dim: int = 768,
        qkv_bias: bool = True,
        pos_embed: str = "rope",
        uniform_power: bool = False,
        time_positions: bool = True,
        norm_eps: float = 1e-6,
        use_activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if pos_embed not in POS_EMBED_KINDS:
            raise ValueError(f"pos_embed must be one of {POS_EMBED_KINDS}, got {pos_embed!r}")
        img_h, img_w = as_pair(img_size)
        if img_h % patch_size or img_w % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"img_size {(img_h, img_w)} / num_frames {num_frames} must be divisible by "
                f"patch_size {patch_size} / tubelet_size {tubelet_size}"
            )
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.use_rope = pos_embed == "rope"
        self.time_positions = time_positions
        self.use_activation_checkpointing = use_activation_checkpointing
        self.grid = (num_frames // tubelet_size, img_h // patch_size, img_w // patch_size)

        self.patch_embed = TubeletEmbed(in_chans, embed_dim, patch_size, tubelet_size)
        if not self.use_rope:
            table = sincos_3d_table(embed_dim, *self.grid, uniform_power=uniform_power,
                                    time=time_positions)
            self.register_buffer("pos_embed", table[None], persistent=True)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_hidden_dim, qkv_bias=qkv_bias, norm_eps=norm_eps)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        init_transformer_weights(self, self.blocks)

    @property
    def num_patches(self) -> int:
        """Tokens of a clip at the training resolution, ``T' * H' * W'``."""
        t, h, w = self.grid
        return t * h * w

    def token_grid(self, video: torch.Tensor) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` of a clip ``[B, C, T, H, W]`` or image ``[B, C, H, W]``."""
        if video.dim() == 4:
            _, _, h, w = video.shape
            t = self.tubelet_size
        elif video.dim() == 5:
            _, _, t, h, w = video.shape
        else:
            raise ValueError(
                f"expected video [B, C, T, H, W] or image [B, C, H, W], got {tuple(video.shape)}"
            )
        if video.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} channels (dim 1), got {video.shape[1]}")
        p, tub = self.patch_size, self.tubelet_size
        if t % tub or h % p or w % p:
            raise ValueError(
                f"clip of T={t}, H={h}, W={w} is not divisible by tubelet {tub} / patch {p}"
            )
        return t // tub, h // p, w // p

    def forward(self, video: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a clip.

        Args:
            video: ``[B, C, T, H, W]``, or an image ``[B, C, H, W]`` (repeated to one tubelet).
            masks: optional ``[B, K]`` (or shared ``[K]``) int64 indices of the tokens to KEEP.

        Returns:
            ``[B, N, D]`` tokens (``N = T' H' W'``), or ``[B, K, D]`` for the kept tokens in the
            order given by ``masks``.
        """
        grid = self.token_grid(video)
        if video.dim() == 4:
            video = repeat(video, "b c h w -> b c t h w", t=self.tubelet_size)
        x = self.patch_embed(video)
        if not self.use_rope:
            x = x + resize_sincos_table(self.pos_embed, self.grid, grid).to(x.dtype)

        positions = None
        if masks is not None:
            masks = check_token_indices(masks, x.shape[0], x.shape[1], "masks").to(x.device)
            x = gather_tokens(x, masks)
            if self.use_rope:
                positions = token_grid_positions(masks, grid[1], grid[2])  # [B, K, 3]
        elif self.use_rope:
            positions = full_grid_positions(*grid, device=x.device)  # [N, 3]

        rope = None
        if positions is not None:
            if not self.time_positions:
                positions = torch.cat([torch.zeros_like(positions[..., :1]),
                                       positions[..., 1:]], dim=-1)
            rope = rope_angles(positions, self.embed_dim // self.num_heads)
        x = run_blocks(self.blocks, x, rope=rope, checkpoint=self.use_activation_checkpointing)
        return self.norm(x)

    def encode_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Encode every frame on its own (as an image repeated to one tubelet), V-JEPA 2-AC style.

        Args:
            video: ``[B, C, T, H, W]``.

        Returns:
            ``[B, T * N, D]`` with ``N = H' W'`` tokens per frame, frames in time order.
        """
        if video.dim() != 5:
            raise ValueError(f"expected video [B, C, T, H, W], got {tuple(video.shape)}")
        b = video.shape[0]
        frames = rearrange(video, "b c t h w -> (b t) c h w")
        tokens = self(frames)
        return rearrange(tokens, "(b t) n d -> b (t n) d", b=b)
