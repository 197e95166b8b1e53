"""Planning objectives built on a learned :class:`~jepa_world.world_model.WorldModel`.

A planner only sees ``objective(actions [B, S, H, A]) -> costs [B, S]``. ``LatentObjective``
imagines each candidate in latent space from the current history and scores it by its distance
to the goal image's latent::

    objective = LatentObjective(wm, history, goal, history_actions=..., proprio=...)
    result = planner.plan(objective, batch_size=B)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import repeat

from jepa_world.world_model import WorldModel

REDUCTIONS = ("final", "sum")


class LatentObjective:
    """Latent-space goal distance of imagined rollouts (differentiable in the actions).

    A planner action ``[A]`` is held for the model's ``frameskip`` env steps, so the model step
    action is the planner action tiled ``frameskip`` times (``[frameskip * A]``).

    Args:
        model: the world model (eval mode is the caller's business).
        history: ``[B, T, N, D]`` latents of the last ``T`` observed frames (model steps apart).
        goal: ``[B, N, D]`` latents of the goal images.
        history_actions: ``[B, T - 1, frameskip * A]`` step actions between history frames.
        proprio: ``[B, T, P]`` proprio of the history frames (models with ``proprio_dim > 0``).
        cost: ``"l1"`` or ``"l2"`` latent distance (:meth:`WorldModel.cost`).
        reduce: ``"final"`` (distance after the last step) or ``"sum"`` (summed over the ``H``
            imagined steps: prefers plans that get there early and stay).
        chunk_size: candidates imagined at once; memory is bounded by it, not by ``S``.
        proprio_weight: weight of an optional proprio term (models with a proprio head): the
            distance, in units of the data's proprio std, between the proprio the head reads
            from the imagined latents and from the GOAL IMAGE's latents (no privileged goal
            state), over ``proprio_dims`` (e.g. the joint angles; velocities are not visible in
            a goal image).
        proprio_dims: proprio entries of that term (default: all).
    """

    def __init__(self, model: WorldModel, history: torch.Tensor, goal: torch.Tensor,
                 history_actions: torch.Tensor | None = None,
                 proprio: torch.Tensor | None = None, cost: str = "l1", reduce: str = "sum",
                 chunk_size: int = 1024, proprio_weight: float = 0.0,
                 proprio_dims: Sequence[int] | None = None) -> None:
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        b = history.shape[0] if history.dim() == 4 else None
        n, d = model.tokens_per_frame, model.latent_dim
        if goal.dim() != 3 or b is None or tuple(goal.shape) != (b, n, d):
            raise ValueError(f"goal must be [B, N, D] = [{b}, {n}, {d}] latents of the goal "
                             f"images (WorldModel.encode(goal_frames)[:, 0]), got "
                             f"{list(goal.shape)}")
        if proprio_weight < 0:
            raise ValueError(f"proprio_weight must be >= 0, got {proprio_weight}")
        self.goal_proprio = None
        if proprio_weight > 0:
            dims = list(range(model.config.proprio_dim)) if proprio_dims is None \
                else list(proprio_dims)
            if model.proprio_head is None or not dims or \
                    not all(0 <= d < model.config.proprio_dim for d in dims):
                raise ValueError(f"proprio_weight > 0 needs a model with a proprio head and "
                                 f"proprio_dims in [0, {model.config.proprio_dim}), got {dims}")
            self.proprio_dims = dims
            with torch.no_grad():
                self.goal_proprio = model.read_proprio(goal)[:, dims]  # [B, P']
        self.proprio_weight = proprio_weight
        self.model, self.history, self.goal = model, history, goal
        self.history_actions, self.proprio = history_actions, proprio
        self.cost, self.reduce, self.chunk_size = cost, reduce, chunk_size
        self.action_dim = model.config.action_dim
        self.imagined_steps = 0

    def imagine(self, actions: torch.Tensor, return_proprio: bool = False):
        """Imagined latents ``[B, S, H, N, D]`` of planner actions ``[B, S, H, A]`` (a
        :class:`~jepa_world.world_model.Prediction` with proprio ``[B, S, H, P]`` if asked)."""
        frameskip = self.model.config.frameskip
        if actions.dim() != 4 or actions.shape[-1] != self.action_dim:
            raise ValueError(f"actions must be [B, S, H, {self.action_dim}], got "
                             f"{list(actions.shape)}")
        steps = repeat(actions, "b s h a -> b s h (f a)", f=frameskip)
        self.imagined_steps += actions.shape[0] * actions.shape[1] * actions.shape[2]
        return self.model.rollout(self.history, steps.to(self.history.dtype), self.proprio,
                                  chunk_size=self.chunk_size,
                                  history_actions=self.history_actions,
                                  return_proprio=return_proprio)

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """Costs ``[B, S]``, computed ``chunk_size`` candidates at a time."""
        costs = []
        for part in actions.split(self.chunk_size, dim=1):
            pred = self.imagine(part, return_proprio=self.goal_proprio is not None)
            if self.goal_proprio is None:
                energy = WorldModel.cost(pred, self.goal, self.cost)  # [B, s, H]
            else:
                energy = WorldModel.cost(pred.latents, self.goal, self.cost)
                std = self.model.proprio_std[self.proprio_dims]
                gap = (pred.proprio[..., self.proprio_dims]
                       - self.goal_proprio[:, None, None]) / std
                energy = energy + self.proprio_weight * gap.abs().mean(-1)
            costs.append(energy[..., -1] if self.reduce == "final" else energy.sum(-1))
        return torch.cat(costs, dim=1)


__all__ = ["REDUCTIONS", "LatentObjective"]
