"""Training one probe head on cached frozen features, and the two metrics.

AdamW (no weight decay on biases and norms), one epoch of linear warmup then cosine decay to 0,
mini-batches drawn by a generator seeded with the run's seed. Regression targets are standardised
with the training set's mean / std for the loss and mapped back for the metric. The score is
taken after the LAST epoch (no selection on the test episodes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from jepa_world.schedules import param_groups, set_lr_, warmup_cosine_lr

TASK_KINDS = ("regression", "classification")


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination averaged over outputs: ``pred, target [M, C] -> float``.

    Each output's ``1 - SS_res / SS_tot`` (about 0 for a constant prediction of the mean, can be
    negative); outputs without variance in ``target`` are skipped.
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred and target must both be [M, C], got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    pred, target = pred.double(), target.double()
    ss_res = ((pred - target) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    keep = ss_tot > 0
    if not bool(keep.any()):
        raise ValueError("every target output is constant: R^2 is undefined")
    return float((1 - ss_res[keep] / ss_tot[keep]).mean())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``labels [M]`` that are the argmax of ``logits [M, K]``."""
    return float((logits.argmax(-1) == labels).double().mean())


@dataclass
class ProbeRun:
    """Outcome of :func:`train_probe`: the final test score and per-epoch curves."""

    score: float
    losses: list[float] = field(default_factory=list)  #: mean training loss per epoch
    scores: list[float] = field(default_factory=list)  #: test score after each epoch


@torch.no_grad()
def predict(head: nn.Module, features: torch.Tensor, batch_size: int,
            device: torch.device) -> torch.Tensor:
    """``head`` outputs for ``features [M, N, D]`` (any dtype, CPU) -> float32 ``[M, C]``."""
    head.eval()
    outs = [head(features[i:i + batch_size].to(device, torch.float32)).float().cpu()
            for i in range(0, len(features), batch_size)]
    return torch.cat(outs)


def train_probe(
    head: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    kind: str,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> ProbeRun:
    """Fit ``head`` on frozen features and score it on the test set.

    Args:
        head: a fresh probe (``[B, N, D] -> [B, C]``).
        train_x, test_x: features ``[M, N, D]`` (e.g. float16 on the CPU; batches are moved to
            ``device`` as float32).
        train_y, test_y: ``regression``: float ``[M, C]``; ``classification``: int64 ``[M]``.
        kind: ``regression`` (MSE, metric R^2) or ``classification`` (cross-entropy, accuracy).
        epochs, batch_size, lr, weight_decay: AdamW schedule (see the module docstring).
        seed: seeds the mini-batch order (seed the head's initialisation yourself).
        device: where the head trains.
        on_epoch: called as ``on_epoch(epoch, mean_train_loss, test_score)`` after each epoch.
    """
    if kind not in TASK_KINDS:
        raise ValueError(f"kind must be one of {TASK_KINDS}, got {kind!r}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError(f"features and targets differ in length: train {len(train_x)} vs "
                         f"{len(train_y)}, test {len(test_x)} vs {len(test_y)}")
    if len(train_x) < 2:
        raise ValueError(f"need >= 2 training samples, got {len(train_x)}")
    device = torch.device(device)
    head = head.to(device)
    regression = kind == "regression"
    if regression:
        mean, std = train_y.float().mean(0), train_y.float().std(0).clamp_min(1e-6)
        targets = (train_y.float() - mean) / std
    else:
        targets = train_y.long()
    optimizer = torch.optim.AdamW(param_groups(head, weight_decay), lr=lr)
    per_epoch = math.ceil(len(train_x) / batch_size)
    total = epochs * per_epoch
    generator = torch.Generator().manual_seed(seed)
    run = ProbeRun(score=math.nan)
    step = 0
    for epoch in range(epochs):
        head.train()
        order = torch.randperm(len(train_x), generator=generator)
        if len(order) % batch_size == 1:  # a batch of one breaks BatchNorm: drop it
            order = order[:-1]
        loss_sum = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            set_lr_(optimizer, warmup_cosine_lr(step, start_lr=0.0, ref_lr=lr, final_lr=0.0,
                                                warmup_steps=min(per_epoch, total // 2),
                                                total_steps=total))
            x = train_x[idx].to(device, torch.float32)
            y = targets[idx].to(device)
            out = head(x)
            loss = F.mse_loss(out, y) if regression else F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(idx)
            step += 1
        pred = predict(head, test_x, batch_size, device)
        if regression:
            run.score = r2_score(pred * std + mean, test_y.float())
        else:
            run.score = accuracy(pred, test_y.long())
        run.losses.append(loss_sum / len(order))
        run.scores.append(run.score)
        if on_epoch is not None:
            on_epoch(epoch + 1, run.losses[-1], run.score)
    return run


__all__ = ["ProbeRun", "accuracy", "predict", "r2_score", "train_probe"]
