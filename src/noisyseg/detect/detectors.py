"""Detectors: trainer callbacks that score every training sample (higher = more suspect).

Each keeps ``history``, a list of ``(epoch, scores)`` pairs, so one can see how early the
corrupted samples become separable. ``scores()`` returns the latest scores, ordered like
``trainer.train_idx`` (``sample_ids()`` names them).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from noisyseg.detect.scores import (
    RunningMoments,
    apply_bias,
    boundary_band,
    check_vog_reduce,
    class_bias,
    rms_normalise,
    vog_scores,
)
from noisyseg.errors import ConfigError
from noisyseg.evaluate import dice
from noisyseg.train import BatchResult, Callback, Trainer

__all__ = ["DETECTORS", "VOG_TARGETS", "CleanlabDetector", "Detector", "DisagreeDetector",
           "LossDetector", "OnlineVOGDetector", "VOGDetector", "check_detectors", "input_gradients",
           "make_detector", "parse_detector", "validation_bias", "vog_schedule"]

log = logging.getLogger(__name__)


class Detector(Callback):
    """Score every training sample during training (base class of the detectors).

    A trainer callback: :meth:`on_train_start` maps dataset indices to positions among the
    training samples (``trainer.train_idx``); subclasses append ``(epoch, scores)`` pairs to
    ``history`` from their hooks. The base class takes no parameters and never scores.

    Attributes
    ----------
    name : str
        The detector's name in :data:`DETECTORS` (``"detector"`` for the base class).
    history : list of (int, (n_train,) float ndarray)
        ``(epoch, scores)`` pairs, oldest first; epochs are 1-based (the epoch after which
        the scores were taken). Higher scores = more suspect.
    train_idx : (n_train,) int64 ndarray
        Dataset indices of the scored samples, in score order (empty before training).

    Examples
    --------
    >>> d = Detector()
    >>> d.name, d.history, d.scores() is None, d.train_idx.shape
    ('detector', [], True, (0,))
    >>> d.history.append((1, np.array([0.2, 0.7])))
    >>> d.scores().tolist(), d.state_dict()
    ([0.2, 0.7], {'history': [(1, [0.2, 0.7])]})
    """

    name = "detector"

    def __init__(self) -> None:
        self.history: list[tuple[int, np.ndarray]] = []
        self.train_idx = np.empty(0, dtype=np.int64)
        self._pos = np.empty(0, dtype=np.int64)
        self._ids: tuple[str, ...] = ()

    def on_train_start(self, trainer: Trainer) -> None:
        """Record the training samples' indices, positions and ids.

        Parameters
        ----------
        trainer : Trainer
            Read for ``train_idx``, ``len(dataset)`` and ``sample_ids``.
        """
        self.train_idx = trainer.train_idx.numpy()
        self._pos = np.full(len(trainer.dataset), -1, dtype=np.int64)
        self._pos[self.train_idx] = np.arange(len(self.train_idx))
        self._ids = tuple(trainer.sample_ids[i] for i in self.train_idx)

    def positions(self, indices: torch.Tensor | np.ndarray) -> np.ndarray:
        """Return the positions among the training samples of dataset ``indices``.

        Parameters
        ----------
        indices : (B,) int tensor or ndarray
            Dataset indices (e.g. ``BatchResult.indices``).

        Returns
        -------
        (B,) int64 ndarray
            Positions in score order; -1 for samples that are not training samples.
        """
        return self._pos[np.asarray(indices)]

    def sample_ids(self) -> tuple[str, ...]:
        """Return the ids of the scored samples, in score order.

        Returns
        -------
        tuple of str
            Empty before training starts.
        """
        return self._ids

    def scores(self) -> np.ndarray | None:
        """Return the latest scores.

        Returns
        -------
        (n_train,) float ndarray or None
            The last entry of ``history``; None before the first score exists.
        """
        return self.history[-1][1] if self.history else None

    def voxel_scores(self, trainer: Trainer, positions: np.ndarray) -> np.ndarray:
        """Map where in each sample the suspicion lies (higher = more suspect).

        A volume's per-slice scores are this map's slice means. The base detector's map is
        the per-voxel cross-entropy of the given mask under the model (what the loss
        detector averages during training).

        Parameters
        ----------
        trainer : Trainer
            The trained model's trainer (``predict_logits`` and ``dataset.masks``).
        positions : (B,) int ndarray
            Positions among the training samples (not dataset indices).

        Returns
        -------
        (B, *S) float ndarray
            Per-voxel cross-entropy in nats.
        """
        idx = self.train_idx[np.asarray(positions)]
        logits = trainer.predict_logits(idx)
        given = torch.as_tensor(trainer.dataset.masks[idx].astype(np.int64))
        return torch.nn.functional.cross_entropy(logits, given, reduction="none").numpy()

    def state_dict(self) -> dict[str, Any]:
        """Return the JSON-serialisable state: ``{"history": [(epoch, scores list), ...]}``."""
        return {"history": [(e, s.tolist()) for e, s in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``history`` from a :meth:`state_dict` (scores back to ndarrays)."""
        self.history = [(e, np.asarray(s)) for e, s in state["history"]]


class LossDetector(Detector):
    """Score each training sample by its training loss over recent epochs.

    Each epoch's score is the sample's mean training loss over its batches that epoch,
    then either averaged over the last ``window`` epochs or smoothed by an exponential
    moving average; a sample not seen in an epoch keeps its previous score (0 before any).

    Parameters
    ----------
    window : int, default 5
        Epochs averaged (ignored when ``ema`` is set).
    ema : float, optional
        Exponential moving average factor in (0, 1] applied per epoch instead (weight of
        the newest epoch); off by default.

    Attributes
    ----------
    epoch_losses : list of (n_train,) float ndarray
        Every epoch's mean loss per sample (NaN where a sample was not seen).

    Raises
    ------
    ConfigError
        ``window`` < 1 or ``ema`` outside (0, 1].

    Examples
    --------
    Two epochs of one batch each, fed by hand (a trainer calls these hooks):

    >>> import torch
    >>> from types import SimpleNamespace
    >>> trainer = SimpleNamespace(train_idx=torch.arange(3), dataset=[None] * 3,
    ...                           sample_ids=["a", "b", "c"])
    >>> det = LossDetector(window=2)
    >>> det.on_train_start(trainer)
    >>> for epoch, losses in enumerate(([0.1, 0.2, 0.9], [0.1, 0.4, 0.7])):
    ...     det.on_epoch_start(trainer, epoch)
    ...     batch = SimpleNamespace(indices=torch.arange(3), losses=torch.tensor(losses))
    ...     det.on_batch_end(trainer, batch)
    ...     det.on_epoch_end(trainer, epoch, {})
    >>> det.scores().round(3).tolist(), det.history[-1][0], det.sample_ids()
    ([0.1, 0.3, 0.8], 2, ('a', 'b', 'c'))
    """

    name = "loss"

    def __init__(self, *, window: int = 5, ema: float | None = None) -> None:
        super().__init__()
        if window < 1:
            raise ConfigError(f"loss window: must be >= 1, got {window}")
        if ema is not None and not 0 < ema <= 1:
            raise ConfigError(f"loss ema: expected (0, 1], got {ema}")
        self.window, self.ema = window, ema
        self.epoch_losses: list[np.ndarray] = []

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._sum = np.zeros(len(self.train_idx))
        self._cnt = np.zeros(len(self.train_idx))

    def on_batch_end(self, trainer: Trainer, batch: BatchResult) -> None:
        pos = self.positions(batch.indices)
        np.add.at(self._sum, pos, batch.losses.numpy().astype(np.float64))
        np.add.at(self._cnt, pos, 1)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        with np.errstate(invalid="ignore"):
            cur = np.where(self._cnt > 0, self._sum / np.maximum(self._cnt, 1), np.nan)
        self.epoch_losses.append(cur)
        if self.ema is not None and self.history:
            prev = self.history[-1][1]
            score = np.where(np.isnan(cur), prev, self.ema * cur + (1 - self.ema) * prev)
        else:
            stack = np.stack(self.epoch_losses[-self.window:])
            seen = np.sum(~np.isnan(stack), axis=0)
            score = np.where(seen > 0, np.nansum(stack, axis=0) / np.maximum(seen, 1), np.nan)
        self.history.append((epoch + 1, np.nan_to_num(score, nan=0.0)))


def vog_schedule(epochs: int, checkpoints: int, schedule: str = "even") -> list[int]:
    """Choose the 1-based epochs at whose end VOG takes gradients.

    Parameters
    ----------
    epochs : int
        Epochs of the training run.
    checkpoints : int
        Checkpoints wanted (at least 2 and at most ``epochs`` are used; fewer may result
        when rounding makes two coincide).
    schedule : {'even', 'late', 'windows'}, default 'even'
        ``even``: ``checkpoints`` epochs evenly spaced over training (the last one
        included); ``late``: evenly spaced over the second half of training (the
        memorisation phase, when clean samples' gradients have settled and fitted errors
        still move); ``windows``: three windows (early, middle, late) of consecutive
        epochs.

    Returns
    -------
    list of int
        Sorted, distinct epochs in ``1..epochs``.

    Raises
    ------
    ConfigError
        ``schedule`` unknown.

    Examples
    --------
    >>> vog_schedule(10, 5), vog_schedule(10, 5, "late"), vog_schedule(10, 5, "windows")
    ([2, 4, 6, 8, 10], [6, 7, 8, 9, 10], [1, 5, 10])
    """
    k = max(2, min(checkpoints, epochs))
    if schedule == "even":
        return sorted({int(round(e)) for e in np.linspace(epochs / k, epochs, k)})
    if schedule == "late":
        k = max(2, min(checkpoints, epochs - epochs // 2))
        return sorted({int(round(e)) for e in np.linspace(epochs / 2 + (epochs / 2) / k, epochs, k)})
    if schedule == "windows":
        per = max(1, k // 3)
        starts = [max(1, epochs // 6), max(1, epochs // 2 - per // 2), epochs - per + 1]
        return sorted({min(epochs, s + i) for s in starts for i in range(per)})
    raise ConfigError(f"vog schedule: expected even, late or windows, got {schedule!r}")


#: Scores VOG can differentiate (see :func:`input_gradients`).
VOG_TARGETS = ("given", "given-prob", "predicted", "foreground", "boundary", "loss")


def input_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    target: str = "given") -> torch.Tensor:
    """Differentiate a per-sample segmentation score with respect to the input image.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode by the caller (batch norm then treats samples independently).
    x : (B, 1, *S) float tensor
        Input images (``S = (H, W)`` or ``(D, H, W)``); not modified.
    y : (B, *S) int64 tensor
        The given labels.
    target : {'given', 'given-prob', 'predicted', 'foreground', 'boundary', 'loss'}, \
default 'given'
        The score: mean over pixels of the logit of each pixel's given label (default), of
        its softmax probability (``given-prob``: the VOG reference code's toy script), of
        its predicted label, of the given label over foreground pixels only or over
        pixels within 3 px of the given mask's label changes (where boundary errors live),
        or minus the per-sample cross-entropy.

    Returns
    -------
    (B, *S) float tensor
        The gradient of each sample's score with respect to its own image (score units per
        input intensity unit).

    Raises
    ------
    ConfigError
        ``target`` unknown.

    Examples
    --------
    With a 1x1 convolution each given-label logit is ``w[y] * x + b[y]``, so the gradient of
    its mean over 16 pixels is ``w[y] / 16`` everywhere:

    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Conv2d(1, 2, kernel_size=1).eval()
    >>> x = torch.zeros(2, 1, 4, 4)
    >>> y = torch.zeros(2, 4, 4, dtype=torch.int64); y[1] = 1
    >>> g = input_gradients(model, x, y)
    >>> tuple(g.shape), bool(torch.allclose(g[1] * 16, model.weight[1, 0, 0, 0]))
    ((2, 4, 4), True)
    """
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    dims = tuple(range(1, y.ndim))
    if target == "given":
        score = logits.gather(1, y[:, None]).squeeze(1).mean(dim=dims)
    elif target == "given-prob":
        score = torch.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1).mean(dim=dims)
    elif target == "predicted":
        score = logits.max(dim=1).values.mean(dim=dims)
    elif target == "loss":  # minus the per-sample cross-entropy against the given labels
        score = -torch.nn.functional.cross_entropy(logits, y, reduction="none").mean(dim=dims)
    elif target in ("foreground", "boundary"):
        sel = logits.gather(1, y[:, None]).squeeze(1)
        if target == "foreground":
            w = (y > 0).to(sel.dtype)
        else:  # pixels within 3 px of a label change of the given mask
            yf = y[:, None].to(sel.dtype)
            pool = (torch.nn.functional.max_pool2d if y.ndim == 3
                    else torch.nn.functional.max_pool3d)
            hi = pool(yf, 7, stride=1, padding=3)
            lo = -pool(-yf, 7, stride=1, padding=3)
            w = (hi != lo)[:, 0].to(sel.dtype)
        score = (sel * w).sum(dim=dims) / w.sum(dim=dims).clamp_min(1)
    else:
        raise ConfigError(f"vog target: expected given, predicted, foreground, boundary or "
                          f"loss, got {target!r}")
    (grad,) = torch.autograd.grad(score.sum(), x)
    return grad[:, 0]


class VOGDetector(Detector):
    """Score training samples by their Variance of Gradients (Agarwal et al., 2022).

    VOG adapted to segmentation.
    At the end of the scheduled epochs, the gradient of a segmentation score (see
    :func:`input_gradients`) with respect to every training image is taken with the model in
    eval mode; running moments give the per-pixel variance across checkpoints, averaged over
    pixels (or a band around the given mask's boundaries).

    Parameters
    ----------
    checkpoints : int, default 5
        Number of checkpoints K (at least 2).
    schedule : {'even', 'late', 'windows'}, default 'even'
        When the checkpoints fall (see :func:`vog_schedule`).
    target : {'given', 'given-prob', 'predicted', 'foreground', 'boundary', 'loss'}, \
default 'given'
        The score differentiated (see :func:`input_gradients`).
    region : {'all', 'boundary'}, default 'all'
        Average over all pixels or over a 3-pixel band around the given mask's label
        changes (:func:`boundary_band`).
    reduce : {'variance', 'std'}, default 'variance'
        Per pixel across checkpoints: the variance (study B's description) or its
        square root, the standard deviation (the VOG reference code), before the mean over
        pixels.
    normalise : {'none', 'mean', 'rms'}, default 'none'
        ``mean``: divide the score by the mean squared gradient; ``rms``: scale each
        checkpoint's gradient map to unit RMS per sample before the variance, so only
        changes in the gradient's *pattern* count (in a 64x64 pilot with 30% dilated
        cavities, AP 0.67 vs 0.22 unnormalised; chance 0.30).
    batch_size : int, default 32
        Samples per gradient pass (capped so a batch holds about 2**21 voxels).

    Attributes
    ----------
    moments : RunningMoments or None
        Per-pixel running moments of the gradients (None before training starts).
    epochs : list of int
        The 1-based checkpoint epochs (set at training start).
    seconds : float
        Wall-clock seconds spent taking gradients.

    Raises
    ------
    ConfigError
        An unknown ``schedule``, ``target``, ``region``, ``reduce`` or ``normalise``,
        ``reduce='std'`` with ``normalise='mean'``, or ``checkpoints`` < 2.

    Examples
    --------
    Gradients are taken during training; before it, the detector holds its settings:

    >>> det = VOGDetector(normalise="rms")
    >>> det.name, det.checkpoints, det.schedule_name, det.target, det.moments is None
    ('vog', 5, 'even', 'given', True)
    >>> VOGDetector(checkpoints=1)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: vog checkpoints: need at least 2, got 1
    """

    name = "vog"

    def __init__(self, *, checkpoints: int = 5, schedule: str = "even", target: str = "given",
                 region: str = "all", reduce: str = "variance", normalise: str = "none",
                 batch_size: int = 32) -> None:
        super().__init__()
        check_vog_reduce(reduce, normalise)
        self.reduce = reduce
        if region not in ("all", "boundary"):
            raise ConfigError(f"vog region: expected all or boundary, got {region!r}")
        if target not in VOG_TARGETS:
            raise ConfigError(f"vog target: expected one of {', '.join(VOG_TARGETS)}, "
                              f"got {target!r}")
        vog_schedule(2, 2, schedule)  # unknown schedules raise here, not at training start
        if checkpoints < 2:
            raise ConfigError(f"vog checkpoints: need at least 2, got {checkpoints}")
        if normalise not in ("none", "mean", "rms"):
            raise ConfigError(f"vog normalise: expected none, mean or rms, got {normalise!r}")
        self.checkpoints, self.schedule_name = checkpoints, schedule
        self.target, self.region, self.normalise = target, region, normalise
        self.batch_size = batch_size
        self.moments: RunningMoments | None = None
        self.epochs: list[int] = []
        self.seconds = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        super().on_train_start(trainer)
        self.epochs = vog_schedule(trainer.config.epochs, self.checkpoints, self.schedule_name)
        self.moments = RunningMoments((len(self.train_idx), *trainer.dataset.shape))
        self._given = torch.as_tensor(trainer.dataset.masks[self.train_idx].astype(np.int64))
        self._band = (boundary_band(trainer.dataset.masks[self.train_idx])
                      if self.region == "boundary" else None)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if epoch + 1 not in self.epochs or self.moments is None:
            return
        import time

        t0 = time.perf_counter()
        model = trainer.model
        was_training = model.training
        model.eval()
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:  # only the input gradient is needed
            p.requires_grad_(False)
        # a few volumes at a time: autograd keeps every activation of the batch
        bs = max(1, min(self.batch_size, 2**21 // int(np.prod(trainer.dataset.shape))))
        try:
            for i in range(0, len(self.train_idx), bs):
                sel = torch.arange(i, min(i + bs, len(self.train_idx)))
                x = trainer.images[torch.as_tensor(self.train_idx[sel.numpy()])].to(trainer.device)
                g = input_gradients(model, x, self._given[sel].to(trainer.device),
                                    target=self.target).detach().cpu()
                if self.normalise == "rms":
                    g = rms_normalise(g)
                self.moments.update(sel, g)
        finally:
            for p in params:
                p.requires_grad_(True)
            model.train(was_training)
        self.seconds += time.perf_counter() - t0
        if int(self.moments.count.max()) >= 2:
            self.history.append((epoch + 1, self._score()))

    def voxel_scores(self, trainer: Trainer, positions: np.ndarray) -> np.ndarray:
        """Map the per-voxel variance (or std, ``reduce='std'``) of the input gradient.

        Parameters
        ----------
        trainer : Trainer
            Unused (the moments are kept by the detector).
        positions : (B,) int ndarray
            Positions among the training samples.

        Returns
        -------
        (B, *S) float64 ndarray
            Across the checkpoints taken so far.

        Raises
        ------
        RuntimeError
            Training has not started.
        """
        if self.moments is None:
            raise RuntimeError("VOG scores requested before training started")
        pos = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        m2 = self.moments.m2[pos]
        count = self.moments.count[pos].clamp_min(1).reshape(-1, *([1] * (m2.ndim - 1)))
        var = (m2 / count).clamp_min(0)
        return (var.sqrt() if self.reduce == "std" else var).numpy()

    def _score(self) -> np.ndarray:
        if self.moments is None:
            raise RuntimeError("VOG scores requested before training started")
        norm = "none" if self.normalise == "rms" else self.normalise
        return vog_scores(self.moments, region=self._band, normalise=norm, reduce=self.reduce)


class OnlineVOGDetector(VOGDetector):
    """Score training samples by VOG from the ordinary training steps (no extra passes).

    The gradient is that of the training loss (not of a logit score), taken in training
    mode; augmentation shifts are undone before accumulating. Every epoch from
    ``start_epoch`` on contributes one observation per sample seen. Needs whole samples
    per step (no patch training).

    Parameters
    ----------
    start_epoch : int, default 1
        First 1-based epoch whose steps contribute.
    region : {'all', 'boundary'}, default 'all'
        As for :class:`VOGDetector`.
    reduce : {'variance', 'std'}, default 'variance'
        As for :class:`VOGDetector`.
    normalise : {'none', 'mean', 'rms'}, default 'none'
        As for :class:`VOGDetector`.

    Raises
    ------
    ConfigError
        An invalid ``region``, ``reduce`` or ``normalise`` (as for :class:`VOGDetector`);
        at training start, a trainer that trains on patches.

    Examples
    --------
    >>> det = OnlineVOGDetector(start_epoch=3, normalise="rms")
    >>> det.name, det.start_epoch, det.normalise, det.scores() is None
    ('vog-online', 3, 'rms', True)
    """

    name = "vog-online"

    def __init__(self, *, start_epoch: int = 1, region: str = "all", reduce: str = "variance",
                 normalise: str = "none") -> None:
        super().__init__(region=region, reduce=reduce, normalise=normalise)
        self.start_epoch = start_epoch

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.patched:
            raise ConfigError(
                f"detectors: vog-online needs each step to see whole samples, but training "
                f"runs on {'x'.join(map(str, trainer.patch_size))} patches of "
                f"{'x'.join(map(str, trainer.dataset.shape))} samples; use vog, or set "
                f"patch_size to the sample size")
        super().on_train_start(trainer)
        self.epochs = []
        trainer.track_input_grad = True

    def on_batch_end(self, trainer: Trainer, batch: BatchResult) -> None:
        if batch.epoch + 1 < self.start_epoch or batch.inputs.grad is None or self.moments is None:
            return
        g = batch.inputs.grad[:, 0].detach() * len(batch.indices)  # undo the batch mean
        if self.normalise == "rms":
            g = rms_normalise(g)
        dy, dx = batch.shift
        if dy or dx:
            g = torch.roll(g, (-dy, -dx), dims=(-2, -1))
        pos = self.positions(batch.indices)
        _, first = np.unique(pos, return_index=True)  # a sample drawn twice counts once
        self.moments.update(torch.as_tensor(pos[first]), g[torch.as_tensor(first)].cpu())

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.moments is not None and int(self.moments.count.max()) >= 2:
            self.history.append((epoch + 1, self._score()))

    def on_train_end(self, trainer: Trainer) -> None:
        trainer.track_input_grad = False


class _PredictionDetector(Detector):
    """A detector scored from the model's predictions of the training samples.

    Subclasses implement ``_compute(trainer) -> scores``; it runs every ``every`` epochs
    (never when ``every`` is None) and at the end of training, with the best weights.
    """

    every: int | None = None

    def _compute(self, trainer: Trainer) -> np.ndarray:
        raise NotImplementedError

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.every and (epoch + 1) % self.every == 0:
            self.history.append((epoch + 1, self._compute(trainer)))

    def on_train_end(self, trainer: Trainer) -> None:
        self.history.append((trainer.best_epoch, self._compute(trainer)))


class CleanlabDetector(_PredictionDetector):
    """Score training samples by cleanlab's segmentation label-quality score.

    Confident learning as a detector: uses the model's softmax probabilities on the training images themselves
    (*in-sample*: the model has fitted these labels, so scores are optimistic compared with
    cleanlab's recommended out-of-sample, cross-validated probabilities, which would need K
    trainings). Scored at the end of training with the best weights and, with ``every``,
    every that many epochs for the history. Score = 1 - cleanlab's image quality.

    Parameters
    ----------
    every : int, optional
        Epochs between scorings for the history; only at the end of training by default.
    method : str, default 'softmin'
        cleanlab's aggregation of pixel scores into an image score
        (:func:`cleanlab.segmentation.rank.get_label_quality_scores`).

    Examples
    --------
    >>> det = CleanlabDetector(every=5)
    >>> det.name, det.every, det.method, det.history
    ('cleanlab', 5, 'softmin', [])
    """

    name = "cleanlab"

    def __init__(self, *, every: int | None = None, method: str = "softmin") -> None:
        super().__init__()
        self.every, self.method = every, method

    def _compute(self, trainer: Trainer) -> np.ndarray:
        from cleanlab.segmentation.rank import get_label_quality_scores

        # softmin scores each image from its own pixels, so volumes go a few at a time (other
        # methods set thresholds over the whole dataset and take it at once)
        idx_all = self.train_idx
        voxels = int(np.prod(trainer.dataset.shape))
        step = (max(1, 2**23 // voxels) if trainer.dataset.spatial_dims == 3
                and self.method == "softmin" else len(idx_all))
        out = []
        for i in range(0, len(idx_all), max(step, 1)):
            idx = idx_all[i:i + step]
            probs = torch.softmax(trainer.predict_logits(idx), dim=1).numpy()
            labels = trainer.dataset.masks[idx].astype(np.int64)
            if labels.ndim == 4:  # volumes: cleanlab scores pixels; (D, H, W) reads as (D*H, W)
                labels = labels.reshape(len(labels), -1, labels.shape[-1])
                probs = probs.reshape(*probs.shape[:2], -1, probs.shape[-1])
            quality, _ = get_label_quality_scores(labels, probs, method=self.method,
                                                  verbose=False)
            out.append(np.asarray(quality, dtype=np.float64))
        return 1.0 - np.concatenate(out)

    def voxel_scores(self, trainer: Trainer, positions: np.ndarray) -> np.ndarray:
        """Map 1 - cleanlab's pixel score (1 - the model's probability of the given label).

        Parameters
        ----------
        trainer : Trainer
            The trained model's trainer.
        positions : (B,) int ndarray
            Positions among the training samples.

        Returns
        -------
        (B, *S) float ndarray
            Values in [0, 1].
        """
        idx = self.train_idx[np.asarray(positions)]
        probs = torch.softmax(trainer.predict_logits(idx), dim=1)
        given = torch.as_tensor(trainer.dataset.masks[idx].astype(np.int64))
        return (1.0 - probs.gather(1, given[:, None])[:, 0]).numpy()


def validation_bias(trainer: Trainer, *, max_val: int = 32) -> np.ndarray:
    """Fit per-class logit offsets on (at most ``max_val``) trusted samples' masks.

    See :func:`noisyseg.detect.class_bias`. The trusted samples are the validation split
    unless the user named the masks they checked (``trainer.trusted_idx``, ``--trusted``);
    validation masks are the clean ones when the dataset knows them. The samples are spread
    evenly over the trusted set.

    Parameters
    ----------
    trainer : Trainer
        Read for ``trusted_idx``, ``predict_logits(idx)`` and ``trusted_masks(idx)``.
    max_val : int, default 32
        Most trusted samples used.

    Returns
    -------
    (C,) float ndarray
        Offsets in logit units (0 for the background).

    Examples
    --------
    A stand-in trainer whose model draws the structure one pixel too large on each side:

    >>> from types import SimpleNamespace
    >>> z = torch.zeros(1, 2, 1, 8)
    >>> z[0, 1, 0] = torch.tensor([-3.0, 0.5, 1.5, 3.0, 3.0, 1.5, 0.5, -3.0])
    >>> truth = np.zeros((1, 1, 8), dtype=np.uint8); truth[0, 0, 2:6] = 1
    >>> trainer = SimpleNamespace(trusted_idx=np.array([0]), predict_logits=lambda i: z[i],
    ...                           trusted_masks=lambda i: truth[i])
    >>> validation_bias(trainer).tolist()
    [0.0, -1.0]
    """
    val = np.asarray(trainer.trusted_idx)
    if len(val) > max_val:
        val = val[np.linspace(0, len(val) - 1, max_val).round().astype(np.int64)]
    return class_bias(trainer.predict_logits(val), trainer.trusted_masks(val))


class DisagreeDetector(_PredictionDetector):
    """Score each given mask by its disagreement with the model, calibrated on validation.

    Score = 1 - Dice(given mask, prediction), where the prediction is
    ``argmax(logits + offsets)`` with per-class offsets fitted on the clean validation masks
    (:func:`noisyseg.detect.class_bias`). A model trained on systematically biased masks
    (most samples' LV drawn too large) reproduces the bias, so the plain prediction agrees
    with the wrong masks; the offsets move its boundaries back to where the validation masks
    put them, and then the wrong masks are the ones that disagree (AP 0.995 at 70% LV
    dilation, seeds 0 and 1).
    Scored every ``every`` epochs and at the end (best weights). Needs a validation split
    with right masks (otherwise it calibrates on training masks, and ``calibrate=False`` is
    the honest choice).

    Parameters
    ----------
    every : int, default 5
        Epochs between scorings (one prediction of every training sample each time).
    calibrate : bool, default True
        Fit the offsets; False scores against the plain prediction.
    max_val : int, default 32
        Validation samples used to fit the offsets.

    Attributes
    ----------
    bias : (C,) float ndarray or None
        The offsets of the last scoring (None before it or without calibration).

    Raises
    ------
    ConfigError
        ``every`` or ``max_val`` < 1.

    Examples
    --------
    >>> det = DisagreeDetector(every=2)
    >>> det.name, det.every, det.calibrate, det.max_val, det.bias is None
    ('disagree', 2, True, 32, True)
    """

    name = "disagree"

    def __init__(self, *, every: int = 5, calibrate: bool = True, max_val: int = 32) -> None:
        super().__init__()
        if every < 1 or max_val < 1:
            raise ConfigError(f"disagree: every and max_val must be >= 1, got {every}, {max_val}")
        self.every, self.calibrate, self.max_val = every, calibrate, max_val
        self.bias: np.ndarray | None = None

    def _compute(self, trainer: Trainer) -> np.ndarray:
        self.bias = validation_bias(trainer, max_val=self.max_val) if self.calibrate else None
        given = trainer.dataset.masks
        out = np.empty(len(self.train_idx))
        step = max(1, min(64, 2**24 // int(np.prod(trainer.dataset.shape))))  # logits in memory
        for i in range(0, len(self.train_idx), step):
            idx = self.train_idx[i:i + step]
            pred = apply_bias(trainer.predict_logits(idx), self.bias)
            out[i:i + step] = 1.0 - dice(pred, given[idx], trainer.dataset.n_classes)
        return out

    def voxel_scores(self, trainer: Trainer, positions: np.ndarray) -> np.ndarray:
        """Map where the given mask and the calibrated prediction disagree (1) or agree (0).

        Parameters
        ----------
        trainer : Trainer
            The trained model's trainer.
        positions : (B,) int ndarray
            Positions among the training samples.

        Returns
        -------
        (B, *S) float32 ndarray
        """
        idx = self.train_idx[np.asarray(positions)]
        pred = apply_bias(trainer.predict_logits(idx), self.bias)
        return (pred != trainer.dataset.masks[idx]).astype(np.float32)


#: Detector names (``--detector``) and their constructors.
DETECTORS: dict[str, Callable[..., Detector]] = {
    "loss": LossDetector, "vog": VOGDetector, "vog-online": OnlineVOGDetector,
    "cleanlab": CleanlabDetector, "disagree": DisagreeDetector,
}


_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}


def parse_detector(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``NAME[:key=value,...]`` into the detector name and typed options.

    Values take the type of the option's default (bool as true/false, yes/no, on/off or
    1/0; int, float or str; an option whose default is None takes an int or a float).

    Parameters
    ----------
    spec : str
        A detector name of :data:`DETECTORS`, optionally followed by ``:`` and
        comma-separated ``key=value`` options (keyword arguments of its constructor).

    Returns
    -------
    name : str
        The detector name.
    options : dict of str to object
        The options, typed.

    Raises
    ------
    ConfigError
        An unknown name or option, an option without ``=``, or a value not of the option's
        type.

    Examples
    --------
    >>> parse_detector("vog:normalise=rms,checkpoints=8")
    ('vog', {'normalise': 'rms', 'checkpoints': 8})
    >>> parse_detector("disagree:calibrate=off")
    ('disagree', {'calibrate': False})
    """
    name, _, body = spec.strip().partition(":")
    if name not in DETECTORS:
        raise ConfigError(f"detectors {spec}: unknown detector {name!r}; expected one of "
                          f"{sorted(DETECTORS)}")
    params = {k: p.default for k, p in inspect.signature(DETECTORS[name]).parameters.items()
              if p.kind is p.KEYWORD_ONLY}
    opts: dict[str, Any] = {}
    for part in filter(None, (q.strip() for q in body.split(","))):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in params:
            raise ConfigError(f"detectors {spec}: expected key=value options among "
                              f"{sorted(params)}, got {part!r}")
        default = params[key]
        try:
            if isinstance(default, bool):
                if value.lower() not in _BOOLS:
                    raise ValueError
                opts[key] = _BOOLS[value.lower()]
            elif isinstance(default, int):
                opts[key] = int(value)
            elif isinstance(default, float) or default is None:
                opts[key] = int(value) if value.lstrip("-").isdigit() else float(value)
            else:
                opts[key] = value
        except ValueError:
            raise ConfigError(f"detectors {spec}: {key}={value!r} is not a valid "
                              f"{type(default).__name__ if default is not None else 'number'}"
                              ) from None
    return name, opts


def make_detector(spec: str, **options: Any) -> Detector:
    """Build a detector from ``NAME[:key=value,...]`` (e.g. ``vog:normalise=rms``).

    Parameters
    ----------
    spec : str
        The detector spec (see :func:`parse_detector`).
    **options
        Further keyword arguments of the constructor; they override the spec's.

    Returns
    -------
    Detector
        A new detector of the class :data:`DETECTORS` names.

    Raises
    ------
    ConfigError
        Unknown names, options or option values (naming ``spec``).

    Examples
    --------
    >>> det = make_detector("vog:normalise=rms", checkpoints=8)
    >>> type(det).__name__, det.normalise, det.checkpoints
    ('VOGDetector', 'rms', 8)
    >>> make_detector("loss:window=0")
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: detectors loss:window=0: loss window: must be >= 1, got 0
    """
    name, parsed = parse_detector(spec)
    try:
        return DETECTORS[name](**(parsed | options))
    except ConfigError as exc:
        raise ConfigError(f"detectors {spec}: {exc}") from None


def check_detectors(detectors: Sequence[str], *, refurbish_with: str | None = None,
                    refurbish: bool = False) -> None:
    """Validate a list of detector specs and the detector that drives refurbishment.

    Returns None when all is valid.

    Parameters
    ----------
    detectors : sequence of str
        ``NAME[:key=value,...]`` specs; unknown names, options or values and repeats are
        refused.
    refurbish_with : str, optional
        The detector driving refurbishment; must be one of ``detectors`` (default: the
        first).
    refurbish : bool, default False
        Refurbishment is on, so at least one detector is needed.

    Raises
    ------
    ConfigError
        Naming ``detectors`` or ``refurbish_with``: an invalid or repeated spec, no detector
        with ``refurbish``, or ``refurbish_with`` not among ``detectors``.

    Examples
    --------
    >>> check_detectors(["loss", "vog:normalise=rms"], refurbish=True) is None
    True
    >>> check_detectors(["loss", "loss"])
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: detectors: repeated detector in ['loss', 'loss']
    """
    if len(set(detectors)) != len(detectors):
        raise ConfigError(f"detectors: repeated detector in {list(detectors)}")
    for d in detectors:
        make_detector(d)  # unknown names, options or values raise ConfigError
    if refurbish:
        if not detectors:
            raise ConfigError("detectors: refurbishment needs at least one detector to flag suspects")
        driver = refurbish_with or detectors[0]
        if driver not in detectors:
            raise ConfigError(f"refurbish_with: {driver!r} is not among the detectors {list(detectors)}")
