"""V-JEPA 2-AC action-conditioned predictor: next-frame features from frames, actions, states."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from jepa_world.models.attention import Block, init_transformer_weights, run_blocks
from jepa_world.models.positions import as_pair, rope_angles


def frame_causal_mask(
    num_steps: int, tokens_per_step: int, device: torch.device | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Frame-block-causal attention mask ``[S, S]`` with ``S = num_steps * tokens_per_step``.

    True = may attend: a token of time step ``t`` sees every token of steps ``<= t`` (with
    ``window``: of steps ``t - window + 1 .. t`` only, its own included).
    """
    step = torch.arange(num_steps, device=device).repeat_interleave(tokens_per_step)
    gap = step[:, None] - step[None, :]
    return (gap >= 0) if window is None else (gap >= 0) & (gap < window)


def step_positions(
    num_steps: int, num_cond: int, grid_h: int, grid_w: int, device: torch.device | None = None
) -> torch.Tensor:
    """RoPE coordinates ``[T (C + H' W'), 3]`` of the sequence ``[cond..., patches]`` per step.

    Patch tokens get ``(t, h, w)``; the ``num_cond`` conditioning tokens of step ``t`` get
    ``(t, 0, 0)``: a zero angle leaves their height/width channels unrotated, so they carry
    temporal RoPE only, as in the official predictor.
    """
    t = torch.arange(num_steps, device=device)
    h = torch.arange(grid_h, device=device)
    w = torch.arange(grid_w, device=device)
    patch = torch.stack(torch.meshgrid(t, h, w, indexing="ij"), dim=-1)  # [T, H', W', 3]
    patch = rearrange(patch, "t h w c -> t (h w) c")
    cond = torch.zeros(num_steps, num_cond, 3, dtype=patch.dtype, device=device)
    cond[..., 0] = t[:, None]
    return rearrange(torch.cat([cond, patch], dim=1), "t n c -> (t n) c").float()


#: How a step's conditioning enters the predictor (``ACPredictor.conditioning``).
CONDITIONINGS = ("tokens", "added")


class ACPredictor(nn.Module):
    """Action-conditioned predictor of V-JEPA 2-AC.

    Every time step contributes ``[action, state, (extrinsics,) patch tokens of the frame]``;
    attention is frame-block-causal (``is_frame_causal``); patch tokens use 3D-RoPE and the
    conditioning tokens temporal RoPE. The output at the patch tokens of step ``t`` is the
    prediction of the frame at step ``t + 1``.

    Args:
        img_size, patch_size: give the ``H' x W'`` patch grid of a frame (``N = H' W'`` tokens).
        num_frames, tubelet_size: kept for config compatibility (official: they size the causal
            mask); any number of steps is accepted here.
        embed_dim: encoder width ``D``; predictor_dim: predictor width ``Dp``.
        depth, num_heads, mlp_hidden_dim, qkv_bias, norm_eps: block hyper-parameters.
        action_dim, state_dim: sizes ``A`` and ``S`` of actions and proprioceptive states.
        use_extrinsics, extrinsics_dim: optional third conditioning token per step.
        is_frame_causal: frame-block-causal mask (True) or full attention (False).
        attention_window: frame-causal only: a step's tokens see the last ``attention_window``
            steps (their own included) instead of all earlier ones; None: all.
        use_activation_checkpointing: recompute blocks in backward.
        conditioning: ``"tokens"`` (V-JEPA 2-AC, official checkpoints): the action, state (and
            extrinsics) embeddings are tokens of their own before the frame's patch tokens;
            ``"added"``: they are added to every patch token of the step instead (as extra input
            channels would be, DINO-WM style), so a step is ``N`` tokens, not ``C + N``.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 64,
        patch_size: int = 8,
        num_frames: int = 8,
        tubelet_size: int = 2,
        embed_dim: int = 192,
        predictor_dim: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        mlp_hidden_dim: int = 768,
        qkv_bias: bool = True,
        action_dim: int = 7,
        state_dim: int = 7,
        use_extrinsics: bool = False,
        extrinsics_dim: int = 6,
        is_frame_causal: bool = True,
        norm_eps: float = 1e-6,
        use_activation_checkpointing: bool = False,
        attention_window: int | None = None,
        conditioning: str = "tokens",
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        self.conditioning = conditioning
        if attention_window is not None and (attention_window < 1 or not is_frame_causal):
            raise ValueError(f"attention_window must be None or >= 1 with is_frame_causal, got "
                             f"{attention_window} (is_frame_causal={is_frame_causal})")
        self.attention_window = attention_window
        img_h, img_w = as_pair(img_size)
        self.grid_hw = (img_h // patch_size, img_w // patch_size)
        self.embed_dim = embed_dim
        self.predictor_dim = predictor_dim
        self.num_heads = num_heads
        self.action_dim = action_dim
        self.state_dim = state_dim
        self.use_extrinsics = use_extrinsics
        self.is_frame_causal = is_frame_causal
        self.use_activation_checkpointing = use_activation_checkpointing

        self.predictor_embed = nn.Linear(embed_dim, predictor_dim)
        self.action_encoder = nn.Linear(action_dim, predictor_dim)
        self.state_encoder = nn.Linear(state_dim, predictor_dim)
        if use_extrinsics:
            self.extrinsics_encoder = nn.Linear(extrinsics_dim, predictor_dim)
        self.predictor_blocks = nn.ModuleList(
            Block(predictor_dim, num_heads, mlp_hidden_dim, qkv_bias=qkv_bias, norm_eps=norm_eps)
            for _ in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(predictor_dim, eps=norm_eps)
        self.predictor_proj = nn.Linear(predictor_dim, embed_dim)
        init_transformer_weights(self, self.predictor_blocks)

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_hw[0] * self.grid_hw[1]

    @property
    def num_cond_tokens(self) -> int:
        if self.conditioning == "added":
            return 0
        return 3 if self.use_extrinsics else 2

    def join(self, cond: list[torch.Tensor], patches: torch.Tensor) -> torch.Tensor:
        """A step's predictor tokens ``[..., C + N, Dp]`` from its embedded conditioning (each
        ``[..., Dp]``: action, state, extrinsics) and embedded patch tokens ``[..., N, Dp]``:
        concatenated, or added to every patch token (``conditioning="added"``, ``C = 0``)."""
        if self.conditioning == "added":
            return patches + sum(cond).unsqueeze(-2)
        return torch.cat([torch.stack(cond, dim=-2), patches], dim=-2)

    def _check_cond(self, name: str, value: torch.Tensor, b: int, t: int, dim: int) -> None:
        if value.dim() != 3 or tuple(value.shape) != (b, t, dim):
            raise ValueError(
                f"{name} must be [B, T, {dim}] = [{b}, {t}, {dim}], got {tuple(value.shape)}"
            )

    def forward(
        self,
        frame_tokens: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict next-frame features.

        Args:
            frame_tokens: ``[B, T * N, D]`` encoder features of ``T`` frames, ``N`` tokens each.
            actions: ``[B, T, A]``, the action taken after each frame.
            states: ``[B, T, S]``, the proprioceptive state at each frame.
            extrinsics: ``[B, T, E]``, only when ``use_extrinsics``.

        Returns:
            ``[B, T * N, D]``: at step ``t`` the prediction of frame ``t + 1``.
        """
        n = self.tokens_per_frame
        if (
            frame_tokens.dim() != 3
            or frame_tokens.shape[-1] != self.embed_dim
            or frame_tokens.shape[1] % n
        ):
            raise ValueError(
                f"frame_tokens must be [B, T * N, D] with N={n} tokens per frame and "
                f"D={self.embed_dim}, got {tuple(frame_tokens.shape)}"
            )
        b, t = frame_tokens.shape[0], frame_tokens.shape[1] // n
        self._check_cond("actions", actions, b, t, self.action_dim)
        self._check_cond("states", states, b, t, self.state_dim)
        cond = [self.action_encoder(actions), self.state_encoder(states)]
        if self.use_extrinsics:
            if extrinsics is None:
                raise ValueError("built with use_extrinsics=True: pass extrinsics [B, T, E]")
            self._check_cond(
                "extrinsics", extrinsics, b, t, self.extrinsics_encoder.in_features
            )
            cond.append(self.extrinsics_encoder(extrinsics))

        x = rearrange(self.predictor_embed(frame_tokens), "b (t n) d -> b t n d", t=t)
        x = rearrange(self.join(cond, x), "b t n d -> b (t n) d")  # [B, T (C + N), Dp]

        c = self.num_cond_tokens
        positions = step_positions(t, c, *self.grid_hw, device=x.device)
        rope = rope_angles(positions, self.predictor_dim // self.num_heads)
        mask = frame_causal_mask(t, c + n, device=x.device, window=self.attention_window) \
            if self.is_frame_causal else None
        x = run_blocks(
            self.predictor_blocks,
            x,
            rope=rope,
            attn_mask=mask,
            checkpoint=self.use_activation_checkpointing,
        )
        x = rearrange(x, "b (t n) d -> b t n d", t=t)[:, :, c:]
        x = self.predictor_norm(rearrange(x, "b t n d -> b (t n) d"))
        return self.predictor_proj(x)

