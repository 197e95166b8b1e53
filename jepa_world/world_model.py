"""Action-conditioned latent world model: frozen V-JEPA encoder + AC predictor (+ pooler).

    from jepa_world.world_model import WorldModel
    wm = WorldModel.from_pretrained("runs/reach/world_model")      # or WorldModel(config)
    z = wm.encode(frames)                                           # [B, T, N, D]
    with torch.no_grad():
        pred = wm.rollout(z, candidates, proprio)                   # [B, S, H, N, D]
    energy = wm.cost(pred[:, :, -1], goal_latents)                  # [B, S]

Latents are ``N`` tokens of width ``D`` a frame: the encoder's ``H' W'`` patch tokens, or the
``K`` tokens of a pooler (``pooler.kind``: ``attentive`` or the position-aware ``grid``). Compact
latents keep planning cost from growing with the patch count; the predictor sees them as a
``1 x K`` RoPE grid.
A step's action is ``frameskip`` env actions concatenated (``A' = frameskip * action_dim``, as
``WindowDataset`` gives them); ``proprio`` feeds V-JEPA 2-AC's state token (a zero state of width 1
when ``proprio_dim == 0``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from jepa_world.checkpoints import CheckpointError, load_pretrained, load_strict
from jepa_world.checkpoints import save_model as _save_model
from jepa_world.checkpoints.decoder import DECODER_DIR, load_decoder, save_decoder
from jepa_world.checkpoints.format import load_typed
from jepa_world.checkpoints.hf import HF_FORMAT
from jepa_world.checkpoints.official import OVERRIDES as OFFICIAL_OVERRIDES
from jepa_world.imagination import (
    cached_tables,
    compute_batch,
    imagine_chunk,
    imagine_chunk_cached,
    supports_fast_rollout,
)
from jepa_world.models.ac_predictor import ACPredictor
from jepa_world.models.inputs import IMAGENET_MEAN, IMAGENET_STD
from jepa_world.models.pooling import build_pooler
from jepa_world.models.positions import as_pair
from jepa_world.models.presets import (
    ACPredictorConfig,
    EncoderConfig,
    build_encoder,
    build_predictor,
    config_from_dict,
)
from jepa_world.world_model_config import COST_KINDS, FORMAT, Prediction, WorldModelConfig

__all__ = ["Prediction", "WorldModel", "WorldModelConfig", "shipped_model_dir"]


def shipped_model_dir(name: str) -> Path:
    """Where the project's own trained model of a task (``reach``) is installed."""
    return Path(__file__).resolve().parent / "pretrained" / name


def _proprio_head(config: WorldModelConfig) -> nn.Module:
    d, p, hidden = config.encoder.embed_dim, config.proprio_dim, config.proprio_head_hidden
    if hidden <= 0:
        return nn.Linear(d, p)
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, p))


def _shape(x: torch.Tensor) -> list[int]:
    return list(x.shape)


class WorldModel(nn.Module):
    """Encoder (frozen, or fine-tuned by ``train_wm``), optional pooler, AC predictor, optional
    proprio head.

    Shapes: ``B`` episodes, ``T`` frames, ``N`` tokens a frame, ``D`` encoder width, ``A'``
    step action width (``frameskip * action_dim``), ``P`` proprio size, ``S`` candidates,
    ``H`` horizon. Move / cast with ``.to(device, dtype)``; nothing is tied to a device.
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens_per_frame, self.latent_dim = config.tokens_per_frame, config.encoder.embed_dim
        self.encoder = build_encoder(config.encoder)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.pooler = (build_pooler(config.encoder.embed_dim, config.patches_per_frame,
                                    config.pooler)
                       if config.pooler is not None else None)
        self.predictor: ACPredictor = build_predictor(config.predictor)
        self.proprio_head = _proprio_head(config) if config.proprio_head else None
        # Proprio is normalised inside the model (set from data by the trainer); users pass and
        # get raw values.
        p = max(config.proprio_dim, 1)
        self.register_buffer("proprio_mean", torch.zeros(p))
        self.register_buffer("proprio_std", torch.ones(p))
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN)[:, None, None], False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD)[:, None, None], False)

    @property
    def decoder(self) -> nn.Module | None:
        """The attached pixel decoder (:meth:`attach_decoder`), or None. It is not a submodule:
        the world model's weights and ``.to()`` leave it alone."""
        return self.__dict__.get("_decoder")

    def attach_decoder(self, decoder: nn.Module | str | Path | None) -> WorldModel:
        """Attach a decoder (a module or a decoder folder, see
        :mod:`jepa_world.checkpoints.decoder`; None detaches) for :meth:`decode`."""
        if isinstance(decoder, (str, Path)):
            decoder = load_decoder(decoder, map_location=self.pixel_mean.device)
        if decoder is not None:
            cfg = decoder.config
            if (cfg.tokens, cfg.latent_dim) != (self.tokens_per_frame, self.latent_dim):
                raise ValueError(f"the decoder reads [{cfg.tokens}, {cfg.latent_dim}] latents; "
                                 f"this model's are [{self.tokens_per_frame}, "
                                 f"{self.latent_dim}]")
        self.__dict__["_decoder"] = decoder
        return self

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None):
        """Latents ``[B, T, N, D]`` (encoded or imagined) -> frames ``[B, T, 3, H, W]`` in
        ``[0, 1]``, by the attached decoder (on the decoder's device)."""
        if self.decoder is None:
            raise ValueError("no decoder attached: train one with `python -m jepa_world.decode` "
                             "and call attach_decoder(<run_dir>/decoder)")
        device = next(self.decoder.parameters()).device
        self._check_latents("latents", latents)
        return self.decoder.decode(latents.to(device, torch.float32), generator=generator)

    def train(self, mode: bool = True) -> WorldModel:
        """Set training mode; the frozen encoder always stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def _actions_layout(self, dims: str) -> str:
        c = self.config
        return (f"[{dims}, {c.step_action_dim}] (action_dim {c.action_dim} x frameskip "
                f"{c.frameskip})")

    def _check_latents(self, name: str, z: torch.Tensor) -> tuple[int, int]:
        n, d = self.tokens_per_frame, self.latent_dim
        if z.dim() != 4 or tuple(z.shape[2:]) != (n, d) or z.shape[1] < 1:
            raise ValueError(f"{name} must be [B, T, {n}, {d}] (N={n} tokens a frame, D={d}), "
                             f"got {_shape(z)}")
        return z.shape[0], z.shape[1]

    def _check_actions(self, name: str, a: torch.Tensor, lead: tuple[int, ...], dims: str):
        if tuple(a.shape) != (*lead, self.config.step_action_dim):
            expected = [*lead, self.config.step_action_dim]
            raise ValueError(f"{name} must be {self._actions_layout(dims)} = {expected}, "
                             f"got {_shape(a)}")

    def _states(self, proprio: torch.Tensor | None, b: int, t: int, like: torch.Tensor):
        """The predictor's state input ``[B, T, max(P, 1)]`` (zeros when ``P == 0``)."""
        p = self.config.proprio_dim
        if p == 0:
            if proprio is not None and proprio.numel() > 0:
                raise ValueError(f"this model has proprio_dim 0; got proprio {_shape(proprio)}")
            return like.new_zeros(b, t, 1)
        if proprio is None or tuple(proprio.shape) != (b, t, p):
            got = None if proprio is None else _shape(proprio)
            raise ValueError(f"proprio must be [B, T, {p}] (proprio_dim {p}) = {[b, t, p]}, "
                             f"got {got}")
        return ((proprio - self.proprio_mean) / self.proprio_std).to(like.dtype)

    def set_proprio_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Normalisation of proprio inputs / head outputs: ``(p - mean) / std``, each ``[P]``."""
        p = self.config.proprio_dim
        if p == 0 or tuple(mean.shape) != (p,) or tuple(std.shape) != (p,):
            raise ValueError(f"mean and std must be [{p}] (proprio_dim {p}), got "
                             f"{_shape(mean)}, {_shape(std)}")
        if not bool((std > 0).all()):
            raise ValueError(f"std must be > 0, got {std.tolist()}")
        self.proprio_mean.copy_(mean)
        self.proprio_std.copy_(std)

    def _raw_proprio(self, normalised: torch.Tensor | None) -> torch.Tensor | None:
        if normalised is None:
            return None
        return normalised * self.proprio_std.to(normalised.dtype) + self.proprio_mean.to(
            normalised.dtype)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode frames one at a time (each repeated into a 2-frame tubelet, V-JEPA 2-AC style).

        Args:
            frames: ``[B, T, 3, H, W]``, uint8 in ``[0, 255]`` or float in ``[0, 1]``; normalised
                with ImageNet mean/std when ``input_norm == "imagenet"``.

        Returns:
            ``[B, T, N, D]`` latents: :meth:`encode_patches`, then :meth:`pool`. The encoder runs
            without gradients (it is frozen); the pooler records them.
        """
        return self.pool(self.encode_patches(frames))

    @torch.no_grad()
    def encode_images(self, pixels: Any) -> torch.Tensor:
        """Camera frames as envs give them -> latents, without gradients.

        Args:
            pixels: ``[..., H, W, 3]`` uint8, a numpy array or a tensor (one frame or a batch).

        Returns:
            ``[..., N, D]`` on the model's device (one encoder call for all frames).
        """
        frames = torch.as_tensor(np.ascontiguousarray(pixels)) if not torch.is_tensor(
            pixels) else pixels
        if frames.dim() < 3 or frames.shape[-1] != 3:
            raise ValueError(f"pixels must be [..., H, W, 3] frames, got {_shape(frames)}")
        lead = frames.shape[:-3]
        flat = rearrange(frames.reshape(-1, *frames.shape[-3:]), "m h w c -> 1 m c h w")
        latents = self.encode(flat.to(self.pixel_mean.device))[0]
        return latents.reshape(*lead, *latents.shape[-2:])

    def encode_patches(self, frames: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Encoder patch tokens of each frame, layer-normed without affine parameters.

        Args:
            frames: ``[B, T, 3, H, W]`` as in :meth:`encode`.
            grad: record gradients through the encoder (``train_wm`` with ``encoder.lr_scale``
                > 0 fine-tunes it); by default it runs frozen, without them.

        Returns:
            ``[B, T, H' W', D]``.
        """
        h, w = as_pair(self.config.image_size)
        if frames.dim() != 5 or tuple(frames.shape[2:]) != (3, h, w):
            raise ValueError(f"frames must be [B, T, 3, {h}, {w}], got {_shape(frames)}")
        dtype = self.pixel_mean.dtype
        x = frames.to(dtype) / 255.0 if frames.dtype == torch.uint8 else frames.to(dtype)
        if self.config.input_norm == "imagenet":
            x = (x - self.pixel_mean) / self.pixel_std
        t = frames.shape[1]
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            tokens = self.encoder.encode_frames(rearrange(x, "b t c h w -> b c t h w"))
            tokens = F.layer_norm(tokens, (self.latent_dim,))
        return rearrange(tokens, "b (t n) d -> b t n d", t=t)

    def pool(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, T, H' W', D]`` -> latents ``[B, T, N, D]`` (the attentive pooler,
        or unchanged without one)."""
        return self.pooler(patches) if self.pooler is not None else patches

    def read_proprio(self, latents: torch.Tensor) -> torch.Tensor:
        """The proprio head on any latents ``[..., N, D]`` -> raw proprio ``[..., P]`` (e.g. the
        arm's joint angles read from an encoded goal image; velocities are not visible in one
        frame, so only position-like entries are meaningful there)."""
        if self.proprio_head is None:
            raise ValueError("this world model has no proprio head (proprio_head=False)")
        return self._raw_proprio(self.proprio_head(latents.mean(dim=-2)))

    def _step(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor):
        """Predictor on ``[B, T, N, D]`` latents -> ``([B, T, N, D], [B, T, P] | None)``."""
        out = self.predictor(rearrange(z, "b t n d -> b (t n) d"), actions.to(z.dtype), states)
        out = rearrange(out, "b (t n) d -> b t n d", t=z.shape[1])
        proprio = self.proprio_head(out.mean(dim=2)) if self.proprio_head is not None else None
        return out, proprio

    def predict(
        self, history: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None = None
    ) -> Prediction:
        """Teacher-forced next-frame prediction (frame-block-causal: step ``t`` sees ``<= t``).

        Args:
            history: ``[B, T, N, D]`` latents of frames ``0..T-1``.
            actions: ``[B, T, A']``, the step action taken after each frame.
            proprio: ``[B, T, P]`` (omit when ``proprio_dim == 0``).

        Returns:
            :class:`Prediction` with ``latents [B, T, N, D]`` (at ``t``: frame ``t + 1``) and
            ``proprio [B, T, P]`` from the proprio head (None without one).
        """
        b, t = self._check_latents("history", history)
        self._check_actions("actions", actions, (b, t), "B, T")
        latents, pred_proprio = self._step(history, actions, self._states(proprio, b, t, history))
        return Prediction(latents, self._raw_proprio(pred_proprio))

    def rollout(
        self,
        history: torch.Tensor,
        action_sequences: torch.Tensor,
        proprio: torch.Tensor | None = None,
        chunk_size: int = 512,
        history_actions: torch.Tensor | None = None,
        max_context: int | None = None,
        return_proprio: bool = False,
        reference: bool = False,
    ) -> torch.Tensor | Prediction:
        """Autoregressive imagination of ``S`` candidate action sequences per episode.

        Each step runs the predictor on the last ``max_context`` frames (history, then its own
        predictions) and appends the prediction of the next frame (a model with
        ``imagination="cached"``: on every frame, its predictor attending to the last
        ``history_length``; each frame is then computed once). The state fed for a predicted
        frame is the proprio head's prediction, or the last known proprio without a head.
        Candidates (``B * S``) are processed ``chunk_size`` at a time, so memory is bounded for
        any ``S``. Gradients flow to ``action_sequences`` (wrap in ``torch.no_grad()`` for CEM).
        The steps skip the work whose result is never used (:mod:`jepa_world.imagination`);
        ``reference=True`` runs the plain algorithm instead (the whole predictor on the window
        at every step: the specification, for tests and benchmarks).

        Args:
            history: ``[B, T, N, D]`` latents of the last ``T`` observed frames.
            action_sequences: ``[B, S, H, A']``; candidate ``s`` of episode ``b`` applies
                ``action_sequences[b, s, 0]`` after the last history frame.
            proprio: ``[B, T, P]`` proprio of the history frames (omit when ``P == 0``).
            chunk_size: candidates per predictor batch.
            history_actions: ``[B, T - 1, A']`` actions taken between history frames
                (required when ``T > 1``).
            max_context: sliding window in frames (default ``config.history_length``; a
                cached model's is fixed).
            return_proprio: return a :class:`Prediction` with ``proprio [B, S, H, P]`` too.

        Returns:
            ``[B, S, H, N, D]``: at ``h`` the predicted latents of the frame after ``h + 1``
            candidate actions (or a :class:`Prediction` with ``return_proprio``).
        """
        b, t = self._check_latents("history", history)
        a, a_dim = action_sequences, self.config.step_action_dim
        if a.dim() != 4 or a.shape[0] != b or 0 in a.shape[1:3] or a.shape[-1] != a_dim:
            raise ValueError(f"action_sequences must be {self._actions_layout('B, S, H')} with "
                             f"B={b}, got {_shape(a)}")
        s = a.shape[1]
        states = self._states(proprio, b, t, history)
        if t > 1 and history_actions is None:
            raise ValueError(f"history has T={t} frames: pass history_actions "
                             f"{self._actions_layout('B, T - 1')} = {[b, t - 1, a_dim]}")
        if history_actions is None:
            history_actions = a.new_zeros(b, 0, a_dim)
        self._check_actions("history_actions", history_actions, (b, t - 1), "B, T - 1")
        window = self.config.history_length if max_context is None else max_context
        if window < 1 or chunk_size < 1:
            raise ValueError(f"max_context and chunk_size must be >= 1, got {window}, "
                             f"{chunk_size}")
        cached = self.config.imagination == "cached"
        if cached and window != self.config.history_length:
            raise ValueError(f"max_context: a model with imagination='cached' attends to its "
                             f"last history_length={self.config.history_length} frames; leave "
                             f"max_context unset (got {max_context})")
        if cached:  # the predictor's attention window does the sliding: feed it every frame
            window = t + a.shape[2]

        flat = rearrange(a, "b s h a -> (b s) h a")
        fast = not reference and supports_fast_rollout(self.predictor)
        step = compute_batch(b * s, chunk_size, history.device,
                             self.config.history_length if cached else 1) if fast else chunk_size
        latents, props = [], []
        shared = cached_tables(self, t, a.shape[2], history.device, history.dtype) \
            if fast and cached else None
        for start in range(0, b * s, step):
            stop = min(start + step, b * s)
            episode = torch.arange(start, stop, device=history.device) // s
            if fast:  # the chunk's episodes once, and each candidate's row among them
                first, last = start // s, (stop - 1) // s + 1
                args = (history[first:last], history_actions[first:last], states[first:last],
                        episode - first, flat[start:stop])
                z, p = imagine_chunk_cached(self, *args, shared) if cached else \
                    imagine_chunk(self, *args, window)
            else:
                z, p = self._rollout_chunk(history[episode], history_actions[episode],
                                           states[episode], flat[start:stop], window)
            latents.append(z)
            props.append(p)
        pred = rearrange(torch.cat(latents), "(b s) h n d -> b s h n d", b=b)
        if not return_proprio:
            return pred
        if self.proprio_head is None:
            return Prediction(pred, None)
        props_raw = self._raw_proprio(torch.cat(props))
        return Prediction(pred, rearrange(props_raw, "(b s) h p -> b s h p", b=b))

    def _rollout_chunk(self, z, past_actions, states, candidates, window):
        """The reference algorithm on one chunk of ``C`` candidates: z ``[C, T, N, D]``,
        past_actions ``[C, T-1, A']``, states ``[C, T, P']``, candidates ``[C, H, A']`` ->
        (``[C, H, N, D]``, ``[C, H, P]``)."""
        frames, acts, sts = list(z.unbind(1)), list(past_actions.unbind(1)), list(states.unbind(1))
        preds, props = [], []
        for k in range(candidates.shape[1]):
            acts.append(candidates[:, k])
            w = min(len(frames), window)
            out, proprio = self._step(torch.stack(frames[-w:], 1), torch.stack(acts[-w:], 1),
                                      torch.stack(sts[-w:], 1))
            frames.append(out[:, -1])
            preds.append(out[:, -1])
            if proprio is not None:
                sts.append(proprio[:, -1].to(sts[-1].dtype))
                props.append(proprio[:, -1])
            else:
                sts.append(sts[-1])
        return torch.stack(preds, 1), (torch.stack(props, 1) if props else None)

    @staticmethod
    def cost(predicted: torch.Tensor, goal: torch.Tensor, kind: str = "l1") -> torch.Tensor:
        """Energy between predicted and goal latents, mean over tokens and dims.

        Args:
            predicted: ``[..., N, D]``, e.g. ``[B, S, H, N, D]`` or ``[B, S, N, D]``.
            goal: ``[N, D]`` (shared), ``[B, N, D]`` (one per episode: its batch dims are
                aligned LEFT with ``predicted``'s and broadcast over the rest, e.g. candidates
                and steps), or ``[..., N, D]`` of ``predicted``'s rank (usual broadcasting).
            kind: ``"l1"`` (mean absolute difference) or ``"l2"`` (mean squared difference).

        Returns:
            ``predicted.shape[:-2]`` energies.
        """
        if kind not in COST_KINDS:
            raise ValueError(f"kind must be one of {COST_KINDS}, got {kind!r}")
        if predicted.dim() < 2 or goal.dim() < 2 or goal.shape[-2:] != predicted.shape[-2:]:
            raise ValueError(f"goal must be [N, D], [B, N, D] or [..., N, D] with [N, D] = "
                             f"{_shape(predicted)[-2:]} of predicted {_shape(predicted)}, "
                             f"got {_shape(goal)}")
        extra = predicted.dim() - goal.dim()
        if extra < 0:
            raise ValueError(f"goal {_shape(goal)} has more dims than predicted "
                             f"{_shape(predicted)}")
        if goal.dim() > 2 and extra > 0:  # [B, N, D] -> [B, 1, ..., 1, N, D]
            goal = goal.reshape(*goal.shape[:-2], *([1] * extra), *goal.shape[-2:])
        try:
            diff = predicted - goal
        except RuntimeError as err:
            raise ValueError(f"goal {_shape(goal)} does not broadcast against predicted "
                             f"{_shape(predicted)}") from err
        diff = diff.abs() if kind == "l1" else diff.square()
        return diff.mean(dim=(-2, -1))

    def check_env(self, env: Any) -> None:
        """Raise ``ValueError`` unless ``env`` (a Gymnasium env or id) has this config's
        ``env_id`` (when set; an adapted env's is the id of the env it adapts, ``task_id``) and
        ``action_dim``."""
        env_id = env if isinstance(env, str) else (
            getattr(getattr(env, "unwrapped", None), "task_id", None)
            or getattr(getattr(env, "spec", None), "id", None))
        if None not in (self.config.env_id, env_id) and env_id != self.config.env_id:
            raise ValueError(f"world model was trained on {self.config.env_id!r}, not {env_id!r}")
        shape = getattr(getattr(env, "action_space", None), "shape", None)
        if shape and shape[-1] != self.config.action_dim:
            raise ValueError(f"env {env_id!r} has actions of size {shape[-1]}; the world model "
                             f"expects action_dim {self.config.action_dim}")
        space = getattr(env, "observation_space", None)
        pixels = getattr(space, "spaces", {}).get("pixels") if space is not None else None
        size = as_pair(self.config.image_size)
        if pixels is not None and tuple(pixels.shape[:2]) != size:
            raise ValueError(f"env {env_id!r} renders {pixels.shape[0]}x{pixels.shape[1]} "
                             f"frames; the world model sees {size[0]}x{size[1]} (make the env "
                             f"with image_size={size[0]})")

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``directory/config.json`` + ``directory/model.safetensors`` (atomic writes);
        ``dtype=torch.float16`` halves the file (weights load back into float32); an attached
        decoder goes to ``directory/decoder/``."""
        config = {"format": FORMAT, "version": 1, "world_model": self.config.to_dict()}
        folder = _save_model(self, config, directory, dtype=dtype)
        if self.decoder is not None:
            save_decoder(self.decoder, folder / DECODER_DIR, dtype=dtype)
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: Any = "cpu") -> WorldModel:
        """Rebuild a model written by :meth:`save_pretrained` (weights loaded strictly), in eval
        mode. ``directory`` is a folder, or the name of a model shipped with the package
        (``"reach"``: :func:`shipped_model_dir`), from any working directory. A ``decoder/``
        subfolder is attached as the pixel decoder (:meth:`decode`)."""
        if not Path(directory).exists() and shipped_model_dir(str(directory)).exists():
            directory = shipped_model_dir(str(directory))
        tensors, cfg = load_typed(directory, FORMAT, "world_model", WorldModelConfig.from_dict,
                                  "world-model")
        model = cls(cfg)
        load_strict(model, tensors, str(directory), {}, [])
        model = model.to(map_location).eval()
        if (Path(directory) / DECODER_DIR / "config.json").exists():
            model.attach_decoder(Path(directory) / DECODER_DIR)
        return model

    @classmethod
    def from_official(cls, path: str | Path, config: Any = None, **overrides: Any) -> WorldModel:
        """Build from an official V-JEPA 2-AC checkpoint (encoder + AC predictor, no pooler).

        Args:
            path: the official ``.pt`` file (see :func:`jepa_world.checkpoints.load_pretrained`).
            config: official constructor arguments (dict or JSON path), optional.
            **overrides: ``load_pretrained`` overrides (``num_heads``, ``img_size``, ...) and
                :class:`WorldModelConfig` fields (``input_norm``, ``history_length``,
                ``env_id``, ``proprio_head``, ...). Action / proprio sizes come from the
                checkpoint (``frameskip`` 1).
        """
        load_kw = {k: overrides.pop(k) for k in list(overrides) if k in OFFICIAL_OVERRIDES}
        pre = load_pretrained(path, config=config, **load_kw)
        if pre.encoder is None or not isinstance(pre.predictor, ACPredictor):
            raise CheckpointError(f"{path}: not a V-JEPA 2-AC checkpoint (needs an encoder and "
                                  f"an action-conditioned predictor; format {pre.format!r})")
        pcfg = config_from_dict(ACPredictorConfig, pre.config["predictor"])
        if pcfg.use_extrinsics:
            raise CheckpointError(f"{path}: predictors with extrinsics are not supported")
        fields: dict[str, Any] = dict(
            encoder=config_from_dict(EncoderConfig, pre.config["encoder"]), predictor=pcfg,
            action_dim=pcfg.action_dim, proprio_dim=pcfg.state_dim, frameskip=1,
            image_size=pcfg.img_size)
        fields.update(overrides)
        model = cls(WorldModelConfig(**fields))
        load_strict(model.encoder, pre.encoder.state_dict(), f"{path}[encoder]", {}, [])
        load_strict(model.predictor, pre.predictor.state_dict(), f"{path}[predictor]", {}, [])
        return model

    @classmethod
    def from_hf(cls, path: str | Path, **overrides: Any) -> WorldModel:
        """Build on the encoder of a Hugging Face transformers ``VJEPA2Model`` folder.

        transformers has no action-conditioned predictor, so the AC predictor (and pooler, proprio
        head) start untrained: train them with ``python -m jepa_world.train_wm
        encoder.path=<folder>``, or load weights yourself.

        Args:
            path: the folder (or its ``model.safetensors``); see :mod:`jepa_world.hf_vjepa2`.
            **overrides: :class:`WorldModelConfig` fields (``action_dim``, ``predictor``,
                ``pooler``, ``image_size``, ...); ``image_size`` defaults to the encoder's
                ``crop_size``, the AC predictor's tubelet to the encoder's.
        """
        pre = load_pretrained(path)
        if pre.format != HF_FORMAT:
            raise CheckpointError(f"{path}: not a transformers V-JEPA 2 folder (format "
                                  f"{pre.format!r}); use from_official or from_pretrained")
        enc_cfg = config_from_dict(EncoderConfig, pre.config["encoder"])
        fields: dict[str, Any] = dict(
            encoder=enc_cfg, image_size=enc_cfg.img_size,
            predictor=ACPredictorConfig(tubelet_size=enc_cfg.tubelet_size))
        fields.update(overrides)
        model = cls(WorldModelConfig(**fields))
        load_strict(model.encoder, pre.encoder.state_dict(), f"{path}[encoder]", {}, [])
        return model

