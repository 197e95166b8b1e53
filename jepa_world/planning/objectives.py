"""Planning objectives built on a learned :class:`~jepa_world.world_model.WorldModel`.

A planner only sees ``objective(actions [B, S, H, A]) -> costs [B, S]``. ``LatentObjective``
imagines each candidate in latent space from the current history and scores it by its distance
to the goal image's latent::

    objective = LatentObjective(wm, history, goal, history_actions=..., proprio=...)
    result = planner.plan(objective, batch_size=B)
"""

from __future__ import annotations

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
    """

    def __init__(self, model: WorldModel, history: torch.Tensor, goal: torch.Tensor,
                 history_actions: torch.Tensor | None = None,
                 proprio: torch.Tensor | None = None, cost: str = "l1", reduce: str = "sum",
                 chunk_size: int = 1024) -> None:
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
        self.model, self.history, self.goal = model, history, goal
        self.history_actions, self.proprio = history_actions, proprio
        self.cost, self.reduce, self.chunk_size = cost, reduce, chunk_size
        self.action_dim = model.config.action_dim
        self.imagined_steps = 0

    def imagine(self, actions: torch.Tensor) -> torch.Tensor:
        """Imagined latents ``[B, S, H, N, D]`` of planner actions ``[B, S, H, A]``."""
        frameskip = self.model.config.frameskip
        if actions.dim() != 4 or actions.shape[-1] != self.action_dim:
            raise ValueError(f"actions must be [B, S, H, {self.action_dim}], got "
                             f"{list(actions.shape)}")
        steps = repeat(actions, "b s h a -> b s h (f a)", f=frameskip)
        self.imagined_steps += actions.shape[0] * actions.shape[1] * actions.shape[2]
        return self.model.rollout(self.history, steps.to(self.history.dtype), self.proprio,
                                  chunk_size=self.chunk_size,
                                  history_actions=self.history_actions)

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """Costs ``[B, S]``, computed ``chunk_size`` candidates at a time."""
        costs = []
        for part in actions.split(self.chunk_size, dim=1):
            pred = self.imagine(part)  # [B, s, H, N, D]
            energy = WorldModel.cost(pred, self.goal, self.cost)  # [B, s, H]
            costs.append(energy[..., -1] if self.reduce == "final" else energy.sum(-1))
        return torch.cat(costs, dim=1)


__all__ = ["REDUCTIONS", "LatentObjective"]
