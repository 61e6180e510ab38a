"""Callbacks: the points where detection, refurbishment, progress and checkpointing plug in.

Every hook does nothing by default. A callback may keep state; ``state_dict`` /
``load_state_dict`` let a resumed run restore it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from noisyseg.train.trainer import Trainer

__all__ = ["BatchResult", "Callback", "ProgressBar"]


@dataclass(frozen=True)
class BatchResult:
    """What the trainer reports after each optimisation step.

    Attributes
    ----------
    indices : (B,) int64 tensor
        Dataset indices of the batch's samples (``trainer.sample_ids[i]`` names them).
    losses : (B,) float tensor
        Per-sample training loss (detached).
    logits : (B, C, *S) float tensor
        Detached network output for the batch.
    inputs : (B, 1, *S) float tensor
        The (augmented) inputs; ``inputs.grad`` holds the input gradient when
        ``trainer.track_input_grad`` is on.
    epoch, step : int
    shift : (int, int)
        The (rows, columns) roll applied by augmentation to the last two axes;
        ``torch.roll(x, (-dy, -dx), dims=(-2, -1))`` maps inputs and their gradients back to
        the dataset's frame.
    origin : (B, d) int64 tensor or None
        When training on patches, where each patch starts in its sample (voxels per axis);
        None for whole samples.
    """

    indices: torch.Tensor
    losses: torch.Tensor
    logits: torch.Tensor
    inputs: torch.Tensor
    epoch: int
    step: int
    shift: tuple[int, int] = (0, 0)
    origin: torch.Tensor | None = None


class Callback:
    """Base class; override the hooks you need."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Called at the start of each epoch (0-based)."""

    def on_batch_end(self, trainer: Trainer, batch: BatchResult) -> None:
        """Called after each optimisation step with per-sample losses."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """Called after validation at the end of each epoch with that epoch's logs."""

    def on_checkpoint(self, trainer: Trainer, epoch: int, score: float) -> None:
        """Called when a new best validation score is kept."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once after training (also after an interrupt)."""

    def state_dict(self) -> dict[str, Any]:
        """State to save with a checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class ProgressBar(Callback):
    """A rich progress bar with the running loss, validation Dice and images/s."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._seen = 0

    def on_train_start(self, trainer: Trainer) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("[bold]train[/]"), BarColumn(),
                                  TextColumn("{task.completed}/{task.total} steps"),
                                  TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                  transient=False)
        self._progress.start()
        self._task = self._progress.add_task("train", total=trainer.total_steps, info="")
        self._t0 = time.perf_counter()

    def on_batch_end(self, trainer: Trainer, batch: BatchResult) -> None:
        if self._progress is None:
            return
        self._seen += len(batch.indices)
        rate = self._seen / max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, advance=1, info=(
            f"epoch {batch.epoch + 1} loss {float(batch.losses.mean()):.3f} "
            f"{rate:.0f} img/s val Dice {trainer.best_score:.3f}"))

    def on_train_end(self, trainer: Trainer) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
