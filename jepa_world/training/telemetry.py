"""Rank-0 training telemetry: TensorBoard scalars, a tqdm bar, and a representation-collapse
monitor. Every method is a no-op on other ranks, so the loop calls them unconditionally.

Scalars (``<run_dir>/tb``): ``loss/total``, ``loss/mask<i>``, ``optim/lr``,
``optim/weight_decay``, ``optim/grad_norm``, ``ema/momentum``, ``perf/clips_per_s``,
``perf/tokens_per_s``, ``perf/step_ms``, ``collapse/target_std``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

log = logging.getLogger("jepa_world.pretrain")


def feature_std(features: torch.Tensor) -> torch.Tensor:
    """Mean over feature dimensions of the std across tokens: ``[B, N, D] -> []``.

    Near 0 when every token maps to (nearly) the same vector, i.e. the representation
    collapsed; about 1 for healthy layer-normalised features.
    """
    flat = features.detach().float().reshape(-1, features.shape[-1])
    return flat.std(dim=0).mean()


class TrainLogger:
    """TensorBoard + progress bar + collapse warning, active on the main rank only.

    Args:
        run_dir: TensorBoard files go to ``run_dir/tb``.
        total_steps: length of the run (for the bar).
        start_step: steps already done (resume).
        enabled: False on ranks other than 0.
        tensorboard: write event files.
        progress: show a tqdm bar on stderr.
        collapse_threshold: warn once when the monitored std falls below this.
        desc: the bar's label (the command's name).
    """

    def __init__(self, run_dir: str | Path, total_steps: int, start_step: int = 0,
                 enabled: bool = True, tensorboard: bool = True, progress: bool = True,
                 collapse_threshold: float = 0.05, desc: str = "train") -> None:
        self.enabled = enabled
        self.collapse_threshold = collapse_threshold
        self.collapse_warned = False
        self.writer = None
        self.bar = None
        if not enabled:
            return
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # scalars are logged at ``done`` = steps done, so a run resumed at start_step logs
            # start_step + 1 first: purge from there (start_step's own value is kept)
            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"),
                                        purge_step=start_step + 1)
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", desc=desc,
                        disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Write ``values`` (``{"loss/total": 0.3, ...}``) at ``step``."""
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def text(self, step: int, tag: str, message: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, message, step)

    def progress(self, loss: float, lr: float, clips_per_s: float) -> None:
        """Advance the bar by one step."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", clips_s=f"{clips_per_s:.1f}",
                                 refresh=False)
            self.bar.update(1)

    def check_collapse(self, step: int, std: float) -> bool:
        """Warn (log + stderr + TensorBoard text) the first time ``std`` is below threshold.

        Returns True if the features look collapsed at this step.
        """
        collapsed = std < self.collapse_threshold
        if collapsed and self.enabled and not self.collapse_warned:
            self.collapse_warned = True
            message = (f"possible representation collapse at step {step}: mean per-dimension std "
                       f"of the target features is {std:.4f} < {self.collapse_threshold}; "
                       f"try a higher ema.start, a lower optim.lr or stronger masking")
            log.warning(message)
            self.write(f"warning: {message}")
            self.text(step, "collapse", message)
        return collapsed

    def write(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None and not self.bar.disable:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["TrainLogger", "feature_std"]
