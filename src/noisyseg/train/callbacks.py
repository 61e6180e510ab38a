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
    """Hold what the trainer reports after each optimisation step.

    Made by :meth:`Trainer.fit <noisyseg.train.Trainer.fit>` and passed to every callback's
    :meth:`Callback.on_batch_end`; frozen.

    Parameters
    ----------
    indices : (B,) int64 tensor
        See Attributes.
    losses : (B,) float tensor
        See Attributes.
    logits : (B, C, *S) float tensor
        See Attributes.
    inputs : (B, 1, *S) float tensor
        See Attributes.
    epoch : int
        See Attributes.
    step : int
        See Attributes.
    shift : (int, int), default (0, 0)
        See Attributes.
    origin : (B, d) int64 tensor or None, default None
        See Attributes.

    Attributes
    ----------
    indices : (B,) int64 tensor
        Dataset indices of the batch's samples (``trainer.sample_ids[i]`` names them).
    losses : (B,) float tensor
        Per-sample training loss (detached, on the CPU; the loss of
        :meth:`Trainer.per_sample_loss <noisyseg.train.Trainer.per_sample_loss>`).
    logits : (B, C, *S) float tensor
        Detached network output for the batch, on the training device (``C`` classes,
        ``S`` the sample or patch shape).
    inputs : (B, 1, *S) float tensor
        The normalised (and augmented) inputs, on the training device; ``inputs.grad``
        holds the input gradient when ``trainer.track_input_grad`` is on.
    epoch : int
        The epoch, 0-based.
    step : int
        Optimisation steps taken so far in the run, this one included (1 after the first).
    shift : (int, int)
        The (rows, columns) roll in pixels applied by augmentation to the last two axes;
        ``torch.roll(x, (-dy, -dx), dims=(-2, -1))`` maps inputs and their gradients back to
        the dataset's frame. ``(0, 0)`` (the default) without augmentation and for patches.
    origin : (B, d) int64 tensor or None
        When training on patches, where each patch starts in its sample (voxels per axis,
        ``d`` spatial axes); None (the default) for whole samples.

    Examples
    --------
    >>> import torch
    >>> b = BatchResult(indices=torch.tensor([4, 7]), losses=torch.tensor([0.5, 1.5]),
    ...                 logits=torch.zeros(2, 3, 8, 8), inputs=torch.zeros(2, 1, 8, 8),
    ...                 epoch=0, step=1)
    >>> b.indices.tolist(), float(b.losses.mean()), b.shift, b.origin is None
    ([4, 7], 1.0, (0, 0), True)
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
    """Define the hooks a trainer calls; subclass it and override the hooks you need.

    Every hook does nothing by default and returns None; the trainer calls the hooks of
    its callbacks in list order. Detectors (:mod:`noisyseg.detect`), the refurbisher
    (:class:`noisyseg.refurbish.Refurbisher`) and :class:`ProgressBar` are callbacks. A
    callback that keeps state returns it from :meth:`state_dict` (JSON-serialisable) and
    takes it back in :meth:`load_state_dict`, so that a resumed run restores it. The base
    class takes no parameters.

    Examples
    --------
    Count the optimisation steps of a tiny run (two steps per epoch, two epochs):

    >>> import numpy as np
    >>> from noisyseg.data import Samples
    >>> from noisyseg.train import TrainConfig, Trainer
    >>> masks = np.zeros((4, 16, 16), np.uint8); masks[:, 4:12, 4:12] = 1
    >>> ds = Samples(images=masks.astype(np.float32), masks=masks,
    ...              class_names=("background", "lv"), sample_ids=("a", "b", "c", "d"),
    ...              split=np.array(["train", "train", "train", "val"]))
    >>> class Steps(Callback):
    ...     def __init__(self):
    ...         self.n = 0
    ...     def on_batch_end(self, trainer, batch):
    ...         self.n += 1
    >>> steps = Steps()
    >>> cfg = TrainConfig(epochs=2, batch_size=2, device="cpu", model_options={"width": 4})
    >>> trainer = Trainer(cfg, ds, [steps]).fit()
    >>> steps.n, trainer.total_steps, Callback().state_dict()
    (4, 4, {})
    """

    def on_train_start(self, trainer: Trainer) -> None:
        """Run once before the first epoch.

        Parameters
        ----------
        trainer : Trainer
            The trainer calling the hook (as in every hook).
        """

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Run at the start of each epoch.

        Parameters
        ----------
        trainer : Trainer
        epoch : int
            The epoch about to start, 0-based.
        """

    def on_batch_end(self, trainer: Trainer, batch: BatchResult) -> None:
        """Run after each optimisation step.

        Parameters
        ----------
        trainer : Trainer
        batch : BatchResult
            The step's samples, per-sample losses, logits and inputs.
        """

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """Run after validation at the end of each epoch.

        Parameters
        ----------
        trainer : Trainer
        epoch : int
            The epoch just ended, 0-based.
        logs : dict of str to float
            That epoch's row of ``trainer.history`` (``epoch`` 1-based, ``train_loss``,
            ``val_dice``, ``images_per_s``, ``seconds``, ``skipped_steps``); a callback may
            add entries.
        """

    def on_checkpoint(self, trainer: Trainer, epoch: int, score: float) -> None:
        """Run when a new best validation score is kept (before :meth:`on_epoch_end`).

        Parameters
        ----------
        trainer : Trainer
        epoch : int
            The epoch of the new best weights, 0-based.
        score : float
            Its validation mean foreground Dice.
        """

    def on_train_end(self, trainer: Trainer) -> None:
        """Run once after training (also after an interrupt), the best weights loaded.

        Parameters
        ----------
        trainer : Trainer
        """

    def state_dict(self) -> dict[str, Any]:
        """Return the state to save with a checkpoint.

        Returns
        -------
        dict
            JSON-serialisable state; ``{}`` for the base class.
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Parameters
        ----------
        state : dict
            A :meth:`state_dict` result.
        """


class ProgressBar(Callback):
    """Show a rich progress bar with the running loss, validation Dice and images/s.

    One bar over all ``trainer.total_steps`` steps of the run, started in
    :meth:`~Callback.on_train_start`, advanced after every step and stopped at the end.

    Parameters
    ----------
    enabled : bool, default True
        False makes every hook a no-op (no output), e.g. for quiet or scripted runs.

    Attributes
    ----------
    enabled : bool
        As given.

    Examples
    --------
    >>> bar = ProgressBar(enabled=False)
    >>> bar.enabled, bar.state_dict()
    (False, {})
    """

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
