"""Optimisation schedules of V-JEPA as pure functions of the step, plus the EMA update.

* learning rate: linear warmup ``start -> ref`` over ``warmup_steps``, then a half cosine
  ``ref -> final`` until ``total_steps`` (V-JEPA: 2e-4 -> 6.25e-4 over 12k steps, then to 1e-6);
* weight decay: half cosine ``start -> final`` over ``total_steps`` (V-JEPA: 0.04 -> 0.4);
* EMA momentum of the target encoder: linear ``start -> final`` (V-JEPA: 0.998 -> 1.0).

Steps past ``total_steps`` keep the final value. The official V-JEPA code stretches all three
schedules by ``ipe_scale = 1.25`` (its ``total_steps`` is 25% beyond the end of training), so
training stops before the LR reaches ``final`` and before the momentum reaches 1; pass such a
``total_steps`` to reproduce that. :func:`param_groups` builds AdamW groups that
exempt biases and all 1-D parameters (norm weights) from weight decay, and
:func:`set_weight_decay_` applies a scheduled value to the decayed groups only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

NO_DECAY_KEY = "no_weight_decay"
LR_SCALE_KEY = "lr_scale"  #: a parameter group's learning rate relative to the schedule's


def _check_steps(step: int, total_steps: int, warmup_steps: int = 0) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps "
                         f"({total_steps}) and total_steps >= 1")


def _half_cosine(start: float, final: float, progress: float) -> float:
    """``start`` at progress 0 to ``final`` at progress 1 along half a cosine period."""
    progress = min(max(progress, 0.0), 1.0)
    return final + (start - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_lr(
    step: int, *, start_lr: float, ref_lr: float, final_lr: float, warmup_steps: int,
    total_steps: int,
) -> float:
    """Learning rate at ``step``: linear ``start_lr -> ref_lr`` for ``warmup_steps`` steps
    (``ref_lr`` is reached exactly at ``step == warmup_steps``), then half-cosine
    ``ref_lr -> final_lr``, reaching ``final_lr`` at ``total_steps`` and staying there."""
    _check_steps(step, total_steps, warmup_steps)
    if step < warmup_steps:
        return start_lr + (ref_lr - start_lr) * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    return _half_cosine(ref_lr, final_lr, (step - warmup_steps) / decay_steps)


def cosine_weight_decay(
    step: int, *, start_wd: float = 0.04, final_wd: float = 0.4, total_steps: int
) -> float:
    """Weight decay at ``step``: half-cosine ``start_wd -> final_wd`` over ``total_steps``."""
    _check_steps(step, total_steps)
    return _half_cosine(start_wd, final_wd, step / total_steps)


def ema_momentum(
    step: int, *, start: float = 0.998, final: float = 1.0, total_steps: int
) -> float:
    """Target-encoder EMA momentum at ``step``: linear ``start -> final`` over ``total_steps``."""
    _check_steps(step, total_steps)
    return start + (final - start) * min(step / total_steps, 1.0)


def _tensors(params: nn.Module | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return list(params.parameters() if isinstance(params, nn.Module) else params)


@torch.no_grad()
def ema_update_(
    target: nn.Module | Iterable[torch.Tensor],
    source: nn.Module | Iterable[torch.Tensor],
    momentum: float,
) -> None:
    """In place: ``target = momentum * target + (1 - momentum) * source``, parameter-wise.

    Args:
        target: EMA module (or its parameters), e.g. the target encoder; modified in place.
        source: module (or parameters) of identical structure, e.g. the context encoder.
        momentum: in ``[0, 1]``; 1 leaves ``target`` unchanged.

    Buffers are not averaged (in these models they are fixed position tables). Uses the
    ``torch._foreach_*`` kernels: one launch per dtype/device group, not one per tensor.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    targets, sources = _tensors(target), _tensors(source)
    if len(targets) != len(sources) or any(
        t.shape != s.shape for t, s in zip(targets, sources, strict=False)
    ):
        raise ValueError("target and source must have the same parameters (count and shapes)")
    if not targets:
        return
    torch._foreach_mul_(targets, momentum)
    torch._foreach_add_(targets, sources, alpha=1.0 - momentum)


def param_groups(model: nn.Module, weight_decay: float, lr_scale: float = 1.0) -> list[dict]:
    """AdamW parameter groups: decay on weight matrices, none on biases and 1-D parameters.

    Args:
        model: the module to optimise; frozen parameters (``requires_grad=False``) are skipped.
        weight_decay: initial weight decay of the decayed group.
        lr_scale: other than 1, both groups carry it (``LR_SCALE_KEY``): :func:`set_lr_` gives
            them that fraction of the scheduled learning rate.

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0, "no_weight_decay": True}]`` (empty groups are
        dropped). Every trainable parameter is in exactly one group.
    """
    decay, exempt = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (exempt if name.endswith("bias") or param.dim() <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": exempt, "weight_decay": 0.0, NO_DECAY_KEY: True}]
    if lr_scale != 1.0:
        for group in groups:
            group[LR_SCALE_KEY] = lr_scale
    return [g for g in groups if g["params"]]


def set_weight_decay_(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Set ``weight_decay`` on every group except those :func:`param_groups` marked exempt."""
    for group in optimizer.param_groups:
        if not group.get(NO_DECAY_KEY, False):
            group["weight_decay"] = weight_decay


def set_lr_(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group: ``lr`` times the group's ``lr_scale``
    (1 when it has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get(LR_SCALE_KEY, 1.0)


__all__ = [
    "LR_SCALE_KEY",
    "NO_DECAY_KEY",
    "cosine_weight_decay",
    "ema_momentum",
    "ema_update_",
    "param_groups",
    "set_lr_",
    "set_weight_decay_",
    "warmup_cosine_lr",
]
