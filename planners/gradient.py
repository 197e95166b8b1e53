"""Gradient planner: Adam on the action sequences through a differentiable objective."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from jepa_world.planners.base import (
    Generators,
    Objective,
    Planner,
    PlanResult,
    check_costs,
    draw_rows,
    keep_best,
    new_stats,
    require,
    require_ints,
)

# Tanh preimages are taken of values at most this close to the bounds (finite, trainable).
_EDGE = 1e-4

NOT_DIFFERENTIABLE = (
    "gradient planner needs a differentiable objective: its costs do not depend on the actions "
    "through autograd (no grad_fn). Do not detach, round-trip through numpy or wrap the "
    "objective in torch.no_grad(); use CEM or MPPI for black-box objectives such as the "
    "simulator oracle")


@dataclass
class GradientConfig:
    """Gradient planner settings.

    ``horizon``: ``H``; ``iterations``: Adam steps; ``lr``: Adam's learning rate on the
    unconstrained variable ``u`` (near the box center one unit of ``u`` is half the bound
    range); ``restarts``: ``S`` sequences optimised in parallel per episode (the first starts
    at the warm start or the box center, the others at Gaussian perturbations of it);
    ``init_std``: their spread, a fraction of half the bound range (as CEM's ``init_std``).
    """

    horizon: int = 5
    iterations: int = 50
    lr: float = 0.1
    restarts: int = 8
    init_std: float = 0.5

    def __post_init__(self) -> None:
        require_ints(self, "horizon", "iterations", "restarts")
        require(self, "lr", math.isfinite(self.lr) and self.lr > 0, "> 0")
        require(self, "init_std", math.isfinite(self.init_std) and self.init_std >= 0, ">= 0")


class GradientPlanner(Planner):
    """Optimise ``[B, S, H, A]`` sequences by Adam on ``sum(objective(actions))``.

    Bounds: actions are ``center + half_range * tanh(u)`` of an unconstrained ``u``, so every
    iterate is strictly inside the box (starts closer than ``1e-4`` of the half range to a bound
    are pulled in by that much). Gradients are taken with ``torch.autograd.grad`` with respect to
    ``u`` only, under ``torch.enable_grad()`` (callers may hold ``no_grad``), so the parameters
    of a world model inside the objective collect no ``.grad``. Returns the cheapest sequence
    of all iterates; ``info["best_cost"]`` has ``iterations + 1`` rows (the last one scores the
    final iterate).
    """

    name = "gradient"

    config: GradientConfig

    def _actions(self, u: torch.Tensor) -> torch.Tensor:
        return self.bounds.center + self.bounds.half_range * torch.tanh(u)

    def plan(self, objective: Objective, batch_size: int, init: torch.Tensor | None = None,
             generator: Generators = None) -> PlanResult:
        c, bounds = self.config, self.bounds
        mean = self._start(batch_size, init)                                  # [B, H, A]
        noise = draw_rows(torch.randn, (batch_size, c.restarts - 1, *mean.shape[1:]), generator,
                          device=mean.device, dtype=mean.dtype)
        starts = torch.cat([mean[:, None], mean[:, None] + c.init_std * bounds.half_range
                            * noise], dim=1)                                  # [B, S, H, A]
        unit = ((starts - bounds.center) / bounds.half_range).clamp(-1 + _EDGE, 1 - _EDGE)
        u = torch.atanh(unit).requires_grad_(True)
        optimizer = torch.optim.Adam([u], lr=c.lr)
        best_actions, best_cost = mean.clone(), mean.new_full((batch_size,), math.inf)
        stats, history = new_stats(), []
        with torch.enable_grad():
            for _ in range(c.iterations):
                actions = self._actions(u)
                costs = check_costs(objective(actions), actions)
                stats["objective_calls"] += 1
                stats["evaluations"] += c.restarts
                if costs.grad_fn is None:
                    raise ValueError(NOT_DIFFERENTIABLE)
                (grad,) = torch.autograd.grad(costs.sum(), u, allow_unused=True)
                if grad is None:
                    raise ValueError(NOT_DIFFERENTIABLE)
                best_actions, best_cost = self._keep(best_actions, best_cost, actions, costs)
                history.append(best_cost.clone())
                u.grad = grad
                optimizer.step()
        with torch.no_grad():
            actions = self._actions(u)
            costs = check_costs(objective(actions), actions)
        stats["objective_calls"] += 1
        stats["evaluations"] += c.restarts
        best_actions, best_cost = self._keep(best_actions, best_cost, actions, costs)
        history.append(best_cost.clone())
        return PlanResult(best_actions, best_cost, {"best_cost": torch.stack(history), **stats})

    def _keep(self, best_actions, best_cost, actions, costs):
        costs = costs.detach().to(self.bounds.dtype).nan_to_num(nan=math.inf)
        return keep_best(best_actions, best_cost, actions.detach(), costs)
