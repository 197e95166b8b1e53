"""What every planner shares: the objective contract, action bounds, results, warm starts.

Shapes: ``B`` episodes planned at once, ``S`` candidate action sequences per episode, ``H``
horizon (planner steps), ``A`` action dims.

An *objective* scores candidates: ``objective(actions [B, S, H, A]) -> costs [B, S]``, lower is
better. Planners only ever pass actions inside their :class:`ActionBounds`. Objectives chunk
their own work when ``B * S`` candidates do not fit in memory at once; the gradient planner needs
costs that are differentiable with respect to the actions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

FILLS = ("last", "zero", "mean")


#: A planner's randomness: one generator for the whole batch, or one per episode (row ``b`` of
#: every draw comes from ``generators[b]``: an episode planned with others draws exactly what
#: it draws planned alone).
Generators = torch.Generator | Sequence[torch.Generator] | None


def draw_rows(sample: Callable[..., torch.Tensor], shape: tuple[int, ...], generator: Generators,
              **kwargs: Any) -> torch.Tensor:
    """``sample(shape, generator=..., **kwargs)`` (``torch.randn`` / ``torch.rand``); with a
    sequence of generators, row ``b`` of the leading dim is drawn alone from the ``b``-th."""
    if generator is None or isinstance(generator, torch.Generator):
        return sample(shape, generator=generator, **kwargs)
    generators = list(generator)
    if len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]} episodes")
    return torch.cat([sample((1, *shape[1:]), generator=g, **kwargs) for g in generators])


class Objective(Protocol):
    """``objective(actions [B, S, H, A]) -> costs [B, S]`` (lower is better)."""

    def __call__(self, actions: torch.Tensor) -> torch.Tensor: ...


class ActionBounds:
    """Box bounds ``low`` / ``high`` (``[A]`` tensors) of one action.

    Planners work on the device and dtype of ``low``; move them with :meth:`to`.
    """

    def __init__(self, low: Any, high: Any, device: Any = None, dtype: Any = None) -> None:
        low = torch.as_tensor(low, device=device, dtype=dtype)
        if not low.is_floating_point():
            low = low.to(torch.get_default_dtype())
        high = torch.as_tensor(high, device=low.device, dtype=low.dtype)
        if low.dim() != 1 or low.shape != high.shape or low.numel() == 0:
            raise ValueError(f"low and high must be [A] tensors of the same size, got "
                             f"{list(low.shape)} and {list(high.shape)}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError("action bounds must be finite")
        if not (low < high).all():
            raise ValueError(f"every low must be below its high, got low={low.tolist()}, "
                             f"high={high.tolist()}")
        self.low, self.high = low, high

    @classmethod
    def from_space(cls, space: Any, device: Any = None,
                   dtype: torch.dtype = torch.float32) -> ActionBounds:
        """Bounds of a Gymnasium ``Box`` (anything with 1-D ``.low`` / ``.high``)."""
        return cls(torch.as_tensor(space.low).flatten(), torch.as_tensor(space.high).flatten(),
                   device=device, dtype=dtype)

    @property
    def dim(self) -> int:
        return self.low.numel()

    @property
    def device(self) -> torch.device:
        return self.low.device

    @property
    def dtype(self) -> torch.dtype:
        return self.low.dtype

    @property
    def center(self) -> torch.Tensor:
        """``[A]`` midpoint of the box."""
        return (self.low + self.high) / 2

    @property
    def half_range(self) -> torch.Tensor:
        """``[A]`` half the width of the box."""
        return (self.high - self.low) / 2

    def to(self, device: Any = None, dtype: Any = None) -> ActionBounds:
        return ActionBounds(self.low.to(device=device, dtype=dtype),
                            self.high.to(device=device, dtype=dtype))

    def tile(self, times: int) -> ActionBounds:
        """Bounds of ``times`` actions concatenated (``[times * A]``), e.g. a world model's
        step action made of ``frameskip`` env actions."""
        return ActionBounds(self.low.repeat(times), self.high.repeat(times))

    def clamp(self, actions: torch.Tensor) -> torch.Tensor:
        """Project ``[..., A]`` actions into the box; a NaN entry (a NaN warm start, gradient
        or sample) becomes the box's center, so what planners return is always a valid action."""
        inside = torch.clamp(actions, min=self.low, max=self.high)
        return torch.where(torch.isnan(inside), self.center.expand_as(inside), inside)

    def contains(self, actions: torch.Tensor) -> bool:
        """Whether every ``[..., A]`` action is inside the box (bounds included)."""
        return bool(((actions >= self.low) & (actions <= self.high)).all())

    def sample_uniform(self, shape: tuple[int, ...] | torch.Size,
                       generator: Generators = None) -> torch.Tensor:
        """Uniform actions ``[*shape, A]`` inside the box (``generator``: see
        :func:`draw_rows`)."""
        u = draw_rows(torch.rand, (*shape, self.dim), generator, device=self.device,
                      dtype=self.dtype)
        return self.low + u * (self.high - self.low)

    def __repr__(self) -> str:
        return f"ActionBounds(low={self.low.tolist()}, high={self.high.tolist()})"


@dataclass
class PlanResult:
    """A planner's answer for ``B`` episodes.

    ``actions``: ``[B, H, A]`` the best sequence found per episode; ``cost``: ``[B]`` its cost;
    ``info``: diagnostics, e.g. ``best_cost`` ``[iterations, B]`` (best cost so far after each
    iteration), ``objective_calls`` and ``evaluations`` (candidates scored per episode).
    """

    actions: torch.Tensor
    cost: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


def shift_plan(plan: torch.Tensor, steps: int = 1, fill: str = "last") -> torch.Tensor:
    """Warm start for the next MPC step: drop the first ``steps`` actions, pad at the end.

    Args:
        plan: ``[B, H, A]`` previous plan.
        steps: actions already executed (``>= 0``; ``>= H`` keeps only padding).
        fill: ``"last"`` repeats the plan's last action, ``"zero"`` pads with zeros,
            ``"mean"`` with the plan's average action over its horizon.

    Returns:
        ``[B, H, A]`` shifted plan (a new tensor).
    """
    if plan.dim() != 3:
        raise ValueError(f"plan must be [B, H, A], got {list(plan.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    h = plan.shape[1]
    steps = min(steps, h)
    if fill == "last":
        pad = plan[:, -1:]
    elif fill == "zero":
        pad = torch.zeros_like(plan[:, -1:])
    else:
        pad = plan.mean(dim=1, keepdim=True)
    return torch.cat([plan[:, steps:], pad.expand(-1, steps, -1)], dim=1)


class Planner:
    """Base of the planners: ``plan(objective, batch_size, init, generator) -> PlanResult``.

    Subclasses set ``config`` (with a ``horizon``) and implement :meth:`plan`. Everything runs
    on ``bounds.device`` / ``bounds.dtype``; pass a ``torch.Generator`` on that device for
    reproducible plans.
    """

    name = "planner"

    def __init__(self, config: Any, bounds: ActionBounds) -> None:
        if not isinstance(bounds, ActionBounds):
            raise TypeError(f"bounds must be ActionBounds, got {type(bounds).__name__}")
        self.config = config
        self.bounds = bounds

    @property
    def horizon(self) -> int:
        return self.config.horizon

    def plan(self, objective: Objective, batch_size: int, init: torch.Tensor | None = None,
             generator: Generators = None) -> PlanResult:
        """Plan ``batch_size`` episodes at once.

        Args:
            objective: ``actions [B, S, H, A] -> costs [B, S]``.
            batch_size: ``B``.
            init: optional warm-start ``[B, H, A]`` (e.g. :func:`shift_plan` of the last plan).
            generator: seeds every random draw; one per episode (a sequence of ``B``) makes
                each episode's plan what it would be planned alone.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config}, {self.bounds})"

    # ------------------------------------------------------------------ helpers for subclasses
    def _start(self, batch_size: int, init: torch.Tensor | None) -> torch.Tensor:
        """The initial mean ``[B, H, A]``: ``init`` clamped into the box, else its center."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shape = (batch_size, self.horizon, self.bounds.dim)
        if init is None:
            return self.bounds.center.expand(shape).clone()
        if tuple(init.shape) != shape:
            raise ValueError(f"init must be [B, H, A] = {list(shape)}, got {list(init.shape)}")
        init = init.detach().to(device=self.bounds.device, dtype=self.bounds.dtype)
        return self.bounds.clamp(init)

    def _draw(self, mean: torch.Tensor, std: torch.Tensor, samples: int, keep_mean: bool,
              generator: Generators) -> torch.Tensor:
        """Gaussian candidates ``[B, S, H, A]`` around ``mean [B, H, A]`` (``std`` broadcasts to
        it), clamped into the bounds; with ``keep_mean`` the mean itself is candidate 0."""
        drawn = samples - 1 if keep_mean else samples
        noise = draw_rows(torch.randn, (mean.shape[0], drawn, *mean.shape[1:]), generator,
                          device=mean.device, dtype=mean.dtype)
        candidates = self.bounds.clamp(mean[:, None] + std.expand_as(mean)[:, None] * noise)
        if keep_mean:
            candidates = torch.cat([self.bounds.clamp(mean)[:, None], candidates], dim=1)
        return candidates

    def _evaluate(self, objective: Objective, actions: torch.Tensor,
                  stats: dict[str, int]) -> torch.Tensor:
        """Score ``[B, S, H, A]`` candidates -> ``[B, S]`` costs, NaN counted as +inf.

        Runs under ``torch.no_grad()``: sampling planners need no graph.
        """
        with torch.no_grad():
            costs = check_costs(objective(actions), actions)
        stats["objective_calls"] += 1
        stats["evaluations"] += actions.shape[1]
        costs = costs.to(device=self.bounds.device, dtype=self.bounds.dtype)
        return torch.nan_to_num(costs, nan=math.inf)


def check_costs(costs: Any, actions: torch.Tensor) -> torch.Tensor:
    """Raise unless ``costs`` is a ``[B, S]`` tensor for ``[B, S, H, A]`` actions."""
    expected = tuple(actions.shape[:2])
    if not isinstance(costs, torch.Tensor) or tuple(costs.shape) != expected:
        got = list(costs.shape) if isinstance(costs, torch.Tensor) else type(costs).__name__
        raise ValueError(f"objective must return costs [B, S] = {list(expected)}, got {got}")
    return costs


def new_stats() -> dict[str, int]:
    """Counters a planner reports in ``PlanResult.info``."""
    return {"objective_calls": 0, "evaluations": 0}


def keep_best(best_actions: torch.Tensor, best_cost: torch.Tensor, candidates: torch.Tensor,
              costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Update the best-so-far ``[B, H, A]`` / ``[B]`` with ``[B, S, H, A]`` scored ``[B, S]``."""
    cost, index = costs.min(dim=1)
    better = cost < best_cost
    pick = candidates[torch.arange(len(index), device=index.device), index]
    return (torch.where(better[:, None, None], pick, best_actions),
            torch.where(better, cost, best_cost))


def require(config: Any, name: str, ok: bool, rule: str) -> None:
    """Config validation: raise ``ValueError`` naming the field unless ``ok``."""
    if not ok:
        raise ValueError(f"{type(config).__name__}.{name} must be {rule}, "
                         f"got {getattr(config, name)!r}")


def require_ints(config: Any, *names: str) -> None:
    """Config validation: each named field is an integer ``>= 1``."""
    for name in names:
        value = getattr(config, name)
        require(config, name, isinstance(value, int) and not isinstance(value, bool)
                and value >= 1, "an integer >= 1")
