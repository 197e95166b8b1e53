"""Imagination that costs what it must: :meth:`WorldModel.rollout`'s autoregressive steps
computed without the work whose result is never used.

The reference algorithm (``WorldModel.rollout(..., reference=True)``) runs the whole predictor
on the last ``window`` frames at every imagined step and keeps the newest frame's prediction.
This computes the same numbers (to float rounding) with less:

* every frame is embedded once (the action, state and patch embeddings are per token; only the
  positions, which RoPE applies inside attention, depend on the window);
* RoPE factors and frame-causal masks are built once per window length (:func:`window_tables`);
* frames whose inputs every candidate of an episode shares (history frames before the last
  one: their actions are past actions) are computed once per episode and their keys / values
  handed to the candidates (frame-block-causal attention: they never see later frames);
* the last block, the output norm and projection and the proprio head run on the newest frame's
  patch tokens only (the reference discards the rest).

No key / value cache crosses steps of such a ``sliding`` model: when the window slides, every
frame's hidden state changes (it no longer sees the frame that left), so a cache would not give
the reference's numbers. A model trained with ``imagination="cached"`` attends to the last
``history_length`` frames' keys / values by construction (its predictor's ``attention_window``,
in training too), so :func:`imagine_chunk_cached` keeps them across steps and computes only the
new frame's tokens: the same numbers as re-running its predictor on the whole growing sequence.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from jepa_world.models import fused
from jepa_world.models.ac_predictor import ACPredictor, frame_causal_mask, step_positions
from jepa_world.models.attention import Block
from jepa_world.models.positions import rope_factors, rotate_pairs_with

#: Candidates a CPU predictor batch holds at most: on this project's 2-core Xeon 1,024 at once
#: imagine 15-20% fewer candidate-steps a second than 256-512 (the ``[C * tokens, 4 * width]``
#: MLP activations no longer fit the cache: ``python -m bench.rollout_throughput``). A cached
#: rollout runs one frame a step instead of the window's frames, so it takes ``window`` times
#: as many (300 reach candidates at once: 16% more candidate-steps a second than 2 x 150).
CPU_BATCH = 256

Tables = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # cos, signed sin, mask


def supports_fast_rollout(predictor: nn.Module) -> bool:
    """Whether :func:`imagine_chunk` applies: an AC predictor with frame-causal attention, no
    extrinsics and an even head width (RoPE pairs)."""
    return (isinstance(predictor, ACPredictor) and predictor.is_frame_causal
            and not predictor.use_extrinsics
            and (predictor.predictor_dim // predictor.num_heads) % 2 == 0)


def compute_batch(total: int, chunk_size: int, device: torch.device,
                  frames_a_step: int = 1) -> int:
    """Candidates per predictor batch for ``total`` candidates: ``chunk_size`` (the caller's
    memory bound), on a CPU at most :data:`CPU_BATCH` (``x window`` for a cached rollout, whose
    steps run one frame: ``frames_a_step`` is the window of the rollout it is not), in equal
    parts (300 -> 2 x 150, not 256 + 44)."""
    most = CPU_BATCH * frames_a_step
    if device.type != "cpu" or total <= most:
        return min(chunk_size, total)
    cap = min(chunk_size, most)
    return -(-total // -(-total // cap))


@functools.lru_cache(maxsize=64)
def window_tables(frames: int, cond: int, grid: tuple[int, int], heads: int, head_dim: int,
                  device: torch.device, dtype: torch.dtype, attention_window: int | None = None
                  ) -> Tables:
    """RoPE factors ``[frames L, 1, R]`` (``L = cond + H' W'`` tokens a frame, a broadcast axis
    for the heads) and the frame-causal mask ``[frames L, frames L]`` (over the last
    ``attention_window`` frames, if given) of a window of ``frames`` frames. ``R <= head_dim``:
    the channels some token of the window really rotates (a 1 x 1 grid never rotates the
    height / width channels, a 1-frame window nothing); the rest would be multiplied by 1 and
    added 0, which changes no bit. Cached: never modify them."""
    positions = step_positions(frames, cond, *grid, device=device)
    cos, sin = rope_factors(positions, head_dim)
    moving = ((sin != 0) | (cos != 1)).any(dim=0).nonzero()
    rotated = 0 if len(moving) == 0 else int(moving[-1]) // 2 * 2 + 2
    mask = frame_causal_mask(frames, cond + grid[0] * grid[1], device=device,
                             window=attention_window)
    return cos[:, :rotated].to(dtype)[:, None], sin[:, :rotated].to(dtype)[:, None], mask


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on the first ``R = cos.shape[-1]`` channels of ``x [B, n, heads, d]`` (in place
    when no gradient is recorded: ``x`` is then a fresh projection nobody else holds)."""
    r = cos.shape[-1]
    if r == 0:
        return x
    if r == x.shape[-1]:
        return rotate_pairs_with(x, cos, sin)
    head = rotate_pairs_with(x[..., :r], cos, sin)
    if torch.is_grad_enabled():
        return torch.cat([head, x[..., r:]], dim=-1)
    x[..., :r] = head
    return x


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, n, (h d)] -> [B, n, h, d]`` (a view)."""
    return rearrange(x, "b n (h d) -> b n h d", h=heads)


def _qkv(blk: Block, x: torch.Tensor, cos, sin, newest: int | None, folded=None):
    """Rotated queries and keys, and values ``[B, h, n, d]`` of block ``blk`` on ``x [B, n,
    Dp]`` (``cos`` / ``sin`` cover ``x``'s positions); with ``newest``, queries of the last
    ``newest`` tokens only. ``folded``: a qkv ``(weight, bias)`` with the rotation already in it
    (:func:`_folded_qkv`; ``cos`` / ``sin`` are then unused)."""
    h, dp = blk.attn.num_heads, x.shape[-1]
    weight, bias = folded if folded is not None else (blk.attn.qkv.weight, blk.attn.qkv.bias)
    rotate = folded is None
    normed = blk.norm1(x)
    if newest is None:  # queries and keys rotated together: [B, n, 2h, d]
        qkv = _heads(fused.affine(normed, weight, bias), 3 * h)
        qk = _rotate(qkv[:, :, :2 * h], cos, sin) if rotate else qkv[:, :, :2 * h]
        q, k, v = qk[:, :, :h], qk[:, :, h:], qkv[:, :, 2 * h:]
    else:  # queries of the newest tokens only; keys / values of all
        q_bias, kv_bias = (None, None) if bias is None else (bias[:dp], bias[dp:])
        q = _heads(fused.affine(normed[:, -newest:], weight[:dp], q_bias), h)
        kv = _heads(fused.affine(normed, weight[dp:], kv_bias), 2 * h)
        k, v = kv[:, :, :h], kv[:, :, h:]
        if rotate:
            q, k = _rotate(q, cos[-newest:], sin[-newest:]), _rotate(k, cos, sin)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def _folded_qkv(blocks, cos: torch.Tensor, sin: torch.Tensor, tokens: int, frames: range):
    """For each of ``frames``, each block's qkv weight ``[3 Dp, Dp]`` and bias with the frame's
    RoPE rotation folded into the query and key rows, when every token of a frame has the
    frame's one position (a 1 x 1 latent grid, whose rotation is then one linear map a frame);
    None otherwise (or when nothing rotates). ``cos`` / ``sin``: the window's tables."""
    if cos.shape[-1] == 0:
        return None
    cos, sin = (rearrange(t, "(f l) 1 r -> f l r", l=tokens) for t in (cos, sin))
    if not (torch.equal(cos, cos[:, :1].expand_as(cos))
            and torch.equal(sin, sin[:, :1].expand_as(sin))):
        return None
    folded = []
    for f in frames:
        per_block = []
        for blk in blocks:
            layer, h = blk.attn.qkv, blk.attn.num_heads
            dp = layer.in_features
            bias = layer.bias if layer.bias is not None else layer.weight.new_zeros(3 * dp)
            # rotating q = W x + b rotates every column of W and b: [Dp_in + 1, 2h, d]
            qk = torch.cat([layer.weight[:2 * dp].t(), bias[None, :2 * dp]])
            qk = _rotate(_heads(qk[None].clone(), 2 * h), cos[f, :1], sin[f, :1])[0]
            qk = rearrange(qk, "i h d -> i (h d)")
            per_block.append((torch.cat([qk[:-1].t(), layer.weight[2 * dp:]]).contiguous(),
                              torch.cat([qk[-1], bias[2 * dp:]])))
        folded.append(per_block)
    return folded


def _finish(blk: Block, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The rest of block ``blk`` after attention: ``x [B, n, Dp]`` + projection of ``out [B,
    h, n, d]``, then the MLP."""
    x = fused.linear(rearrange(out, "b h n d -> b n (h d)"), blk.attn.proj, residual=x)
    hidden = fused.linear(blk.norm2(x), blk.mlp.fc1, gelu=True)
    return fused.linear(hidden, blk.mlp.fc2, residual=x)


def _attend(blk: Block, x: torch.Tensor, cos, sin, mask, past_kv, newest: int | None):
    """One block on tokens ``x [B, n, Dp]`` that follow ``past_kv`` (keys / values ``[B, h, p,
    d]`` of earlier frames, or None). ``cos`` / ``sin`` cover ``x``'s positions; ``mask``
    ``[n, p + n]``. With ``newest``, only the last ``newest`` tokens' outputs are computed
    (they see every frame). Returns ``(output, (k, v))`` with ``x``'s own keys / values
    ``[B, h, n, d]``."""
    q, k, v = _qkv(blk, x, cos, sin, newest)
    if newest is not None:
        mask, x = None, x[:, -newest:]
    keys, values = (k, v) if past_kv is None else (torch.cat([past_kv[0], k], 2),
                                                   torch.cat([past_kv[1], v], 2))
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
    return _finish(blk, x, out), (k, v)


def _shared_kv(blocks, x: torch.Tensor, tables: Tables) -> list:
    """Keys / values at every block of the shared frames ``x [E, pL, Dp]`` (window start)."""
    cos, sin, mask = tables
    n = x.shape[1]
    kvs = []
    for i, blk in enumerate(blocks):
        if i == len(blocks) - 1:
            h, dp = blk.attn.num_heads, x.shape[-1]
            kv = _heads(fused.weight_rows(blk.attn.qkv, slice(dp, None), blk.norm1(x)), 2 * h)
            k = _rotate(kv[:, :, :h], cos[:n], sin[:n]).transpose(1, 2)
            kvs.append((k, kv[:, :, h:].transpose(1, 2)))
        else:
            x, kv = _attend(blk, x, cos[:n], sin[:n], mask[:n, :n], None, None)
            kvs.append(kv)
    return kvs


class _Chunk:
    """The embedded frames of one chunk of candidates and the predictor steps over them."""

    def __init__(self, model, z, past_actions, states, episode, candidates):
        p: ACPredictor = model.predictor
        self.model, self.p, self.episode = model, p, episode
        self.n = p.tokens_per_frame
        self.t = z.shape[1]
        dtype = z.dtype
        st, lat = p.state_encoder(states), p.predictor_embed(z)          # [E, T, (N,) Dp]
        acts = p.action_encoder(candidates.to(dtype))                    # [C, H, Dp]
        self.cand_actions = acts
        # shared frames 0..T-2: [E, T-1, L, Dp]; frame T-1 onwards: one [C, L, Dp] each
        self.shared = p.join([p.action_encoder(past_actions.to(dtype)), st[:, :-1]],
                             lat[:, :-1])
        self.frames = [p.join([acts[:, 0], st[episode, -1]], lat[episode, -1])]
        self.state_dtype = states.dtype

    def _per_candidate(self, x: torch.Tensor) -> torch.Tensor:
        """An episode tensor ``[E, ...]`` -> ``[C, ...]`` (a view when ``E == 1``)."""
        if x.shape[0] == 1:
            return x.expand(len(self.episode), *x.shape[1:])
        return x[self.episode]

    def append(self, latent: torch.Tensor, state: torch.Tensor, k: int) -> None:
        """Embed the imagined frame ``latent [C, N, D]`` (state ``[C, S]``) with action
        ``k``."""
        p = self.p
        self.frames.append(p.join([self.cand_actions[:, k], p.state_encoder(state)],
                                  p.predictor_embed(latent)))

    def step(self, window: int):
        """The prediction of the frame after the newest: ``([C, N, D], [C, S] | None)``."""
        p, blocks, n = self.p, self.p.predictor_blocks, self.n
        total = self.t - 1 + len(self.frames)
        start = max(0, total - window)
        shared = max(0, self.t - 1 - start)                 # shared frames in the window
        own = self.frames[len(self.frames) - (total - start - shared):]
        x = rearrange(torch.stack(own, 1), "c f l d -> c (f l) d")
        cos, sin, mask = window_tables(total - start, p.num_cond_tokens, p.grid_hw, p.num_heads,
                                       p.predictor_dim // p.num_heads, x.device, x.dtype)
        past = [None] * len(blocks)
        lead = shared * (p.num_cond_tokens + n)
        if shared:
            head = rearrange(self.shared[:, start:start + shared], "e f l d -> e (f l) d")
            past = [(self._per_candidate(k), self._per_candidate(v)) for k, v in
                    _shared_kv(blocks, head, (cos, sin, mask))]
        cos, sin, mask = cos[lead:], sin[lead:], mask[lead:]
        for i, blk in enumerate(blocks):
            last = i == len(blocks) - 1
            x, _ = _attend(blk, x, cos, sin, mask, past[i], n if last else None)
        latent = fused.linear(p.predictor_norm(x), p.predictor_proj)     # [C, N, D]
        head = self.model.proprio_head
        state = head(latent.mean(dim=1)) if head is not None else None
        return latent, state


def imagine_chunk(model, z: torch.Tensor, past_actions: torch.Tensor, states: torch.Tensor,
                  episode: torch.Tensor, candidates: torch.Tensor, window: int):
    """One chunk of ``C`` candidates of :meth:`WorldModel.rollout`.

    Args:
        model: the :class:`~jepa_world.world_model.WorldModel` (its predictor passes
            :func:`supports_fast_rollout`).
        z: ``[E, T, N, D]`` history latents of the chunk's episodes; ``past_actions``
            ``[E, T-1, A']``; ``states`` ``[E, T, S]`` (normalised predictor states).
        episode: ``[C]`` each candidate's episode (row of ``z``).
        candidates: ``[C, H, A']`` step actions.
        window: frames the predictor sees (``max_context``).

    Returns:
        ``([C, H, N, D], [C, H, P] | None)``: latents and normalised proprio-head outputs.
    """
    chunk = _Chunk(model, z, past_actions, states, episode, candidates)
    last_state = states[episode, -1]
    preds, props = [], []
    for k in range(candidates.shape[1]):
        latent, state = chunk.step(window)
        preds.append(latent)
        if state is not None:
            props.append(state)
            last_state = state.to(chunk.state_dtype)
        if k + 1 < candidates.shape[1]:
            chunk.append(latent, last_state, k + 1)
    return torch.stack(preds, 1), (torch.stack(props, 1) if props else None)


class _KVWindow:
    """The keys / values ``[C, h, <= frames L, d]`` of the last ``frames`` frames at one block.

    Without gradients: a ring of ``frames`` slots written in place (attention does not care in
    which order the keys come; each was rotated at its own position). With gradients (the
    gradient planner): concatenated, as autograd needs every step's tensors kept."""

    def __init__(self, frames: int, tokens: int) -> None:
        self.frames, self.tokens = frames, tokens
        self.k = self.v = None
        self.filled, self.slot = 0, 0

    def add(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Append one or more whole frames' keys / values ``[C, h, f L, d]`` (oldest first)."""
        if torch.is_grad_enabled():
            self.k = k if self.k is None else torch.cat([self.k, k], 2)
            self.v = v if self.v is None else torch.cat([self.v, v], 2)
            self.k, self.v = self.k[:, :, -self.frames * self.tokens:], \
                self.v[:, :, -self.frames * self.tokens:]
            return
        if self.k is None:
            shape = (*k.shape[:2], self.frames * self.tokens, k.shape[-1])
            self.k, self.v = k.new_empty(shape), v.new_empty(shape)
        step = self.tokens
        for f in range(k.shape[2] // step):
            rows = slice(self.slot * step, (self.slot + 1) * step)
            self.k[:, :, rows] = k[:, :, f * step:(f + 1) * step]
            self.v[:, :, rows] = v[:, :, f * step:(f + 1) * step]
            self.slot = (self.slot + 1) % self.frames
            self.filled = min(self.filled + 1, self.frames)

    def keys_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled():
            return self.k, self.v
        n = self.filled * self.tokens
        return self.k[:, :, :n], self.v[:, :, :n]


def _weights_key(blocks) -> tuple:
    """What identifies the current values of the blocks' qkv weights: each tensor's storage and
    its in-place version counter (an optimiser step or ``load_state_dict`` bumps it)."""
    return tuple((t.data_ptr(), t._version) for blk in blocks
                 for t in (blk.attn.qkv.weight, blk.attn.qkv.bias) if t is not None)


def cached_tables(model, t: int, horizon: int, device: torch.device, dtype: torch.dtype):
    """What every chunk of one cached rollout of ``t`` history frames and ``horizon`` steps
    shares: the :func:`window_tables` and the RoPE-folded qkv weights (:func:`_folded_qkv`,
    ~4 ms). Without gradients both are kept on the predictor for the next rollout of the same
    shape (a planner's 30 iterations build them once) until any qkv weight changes; with
    gradients they are built anew (the folded weights belong to that step's graph)."""
    p: ACPredictor = model.predictor
    key = (t, horizon, device, dtype, _weights_key(p.predictor_blocks))
    memo = getattr(p, "_tables_memo", None)
    if memo is not None and memo[0] == key and not torch.is_grad_enabled():
        return memo[1]
    tables = window_tables(t + horizon - 1, p.num_cond_tokens, p.grid_hw, p.num_heads,
                           p.predictor_dim // p.num_heads, device, dtype, p.attention_window)
    tokens = p.num_cond_tokens + p.tokens_per_frame
    folded = _folded_qkv(p.predictor_blocks, *tables[:2], tokens, range(t - 1, t - 1 + horizon))
    if not torch.is_grad_enabled():
        p._tables_memo = (key, (tables, folded))
    return tables, folded


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``scaled_dot_product_attention`` of ``q [C, h, n, d]`` over ``k`` / ``v [C, h, m, d]``
    with no mask. One query a head (a one-token frame) is written out as broadcast products:
    on these few-key shapes ~3x faster than the SDPA kernel on a CPU (300 x 4 heads, 1-3 keys:
    80-160 us against 420-490 us)."""
    if q.shape[2] != 1:
        return F.scaled_dot_product_attention(q, k, v)
    if k.shape[2] == 1:  # softmax over one key is 1
        return v
    scores = (q * k).sum(-1, keepdim=True).mul_(q.shape[-1] ** -0.5)     # [C, h, m, 1]
    return (scores.softmax(dim=2) * v).sum(dim=2, keepdim=True)


def imagine_chunk_cached(model, z: torch.Tensor, past_actions: torch.Tensor,
                         states: torch.Tensor, episode: torch.Tensor, candidates: torch.Tensor,
                         shared_tables=None):
    """:func:`imagine_chunk` for a model with ``imagination="cached"``: every frame's tokens go
    through the predictor once, when they arrive, attending to their own and the keys /
    values the last ``attention_window - 1`` frames left at each block. Arguments and returns
    as there (the window is the predictor's ``attention_window``); ``shared_tables``: the
    rollout's :func:`cached_tables` (computed here when omitted)."""
    p: ACPredictor = model.predictor
    blocks, n, window = p.predictor_blocks, p.tokens_per_frame, p.attention_window
    t, horizon = z.shape[1], candidates.shape[1]
    tokens = p.num_cond_tokens + n                                      # L tokens a frame
    dtype = z.dtype
    (cos, sin, mask), folded = shared_tables or cached_tables(model, t, horizon, z.device,
                                                              dtype)
    st, lat = p.state_encoder(states), p.predictor_embed(z)             # [E, T, (N,) Dp]
    acts = p.action_encoder(candidates.to(dtype))                       # [C, H, Dp]
    caches = [_KVWindow(window, tokens) for _ in blocks]
    if t > 1 and window > 1:  # history frames 0..T-2 (past actions): once per episode
        shared = rearrange(p.join([p.action_encoder(past_actions.to(dtype)), st[:, :-1]],
                                  lat[:, :-1]), "e f l d -> e (f l) d")
        m = shared.shape[1]
        seen = slice(max(0, m - (window - 1) * tokens), m)  # what frame T-1 attends to
        for cache, (k, v) in zip(caches, _shared_kv(blocks, shared, (cos[:m], sin[:m],
                                                                     mask[:m, :m])), strict=True):
            cache.add(k[episode, :, seen], v[episode, :, seen])
    x = p.join([acts[:, 0], st[episode, -1]], lat[episode, -1])         # frame T-1: [C, L, Dp]
    last_state, preds, props = states[episode, -1], [], []
    for k in range(horizon):
        rows = slice((t - 1 + k) * tokens, (t + k) * tokens)
        for i, (blk, cache) in enumerate(zip(blocks, caches, strict=True)):
            newest = n if i == len(blocks) - 1 else None
            q, key, value = _qkv(blk, x, cos[rows], sin[rows], newest,
                                 None if folded is None else folded[k][i])
            cache.add(key, value)
            out = _attention(q, *cache.keys_values())
            x = _finish(blk, x if newest is None else x[:, -newest:], out)
        latent = fused.linear(p.predictor_norm(x), p.predictor_proj)    # [C, N, D]
        preds.append(latent)
        if model.proprio_head is not None:
            props.append(model.proprio_head(latent.mean(dim=1)))
            last_state = props[-1].to(states.dtype)
        if k + 1 < horizon:
            x = p.join([acts[:, k + 1], p.state_encoder(last_state)], p.predictor_embed(latent))
    return torch.stack(preds, 1), (torch.stack(props, 1) if props else None)


__all__ = ["CPU_BATCH", "cached_tables", "compute_batch", "imagine_chunk",
           "imagine_chunk_cached", "supports_fast_rollout", "window_tables"]
