"""Refurbishment: replace flagged training masks by the model's own predictions."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from noisyseg.corrupt import grow_structures
from noisyseg.detect import (
    Detector,
    add_class_offsets,
    boundary_band,
    check_flag_rule,
    flag,
    validation_bias,
)
from noisyseg.errors import ConfigError
from noisyseg.evaluate import boundary_offset
from noisyseg.refurbish.config import RefurbishConfig
from noisyseg.train import IGNORE_INDEX, Callback, Trainer

__all__ = ["Refurbisher", "debias_masks", "pseudo_labels", "systematic_offset"]

#: At most this many flagged (and trusted) samples measure the systematic offset.
MAX_OFFSET_SAMPLES = 256

log = logging.getLogger(__name__)


def pseudo_labels(probs: torch.Tensor | np.ndarray, given: np.ndarray, *,
                  confidence: float = 0.0, ignore: bool = False) -> np.ndarray:
    """Make pseudo-labels from class probabilities, the given label (or none) where unsure.

    Parameters
    ----------
    probs : (N, C, *S) float tensor or ndarray
        Softmax probabilities per class (``S``: ``(H, W)`` or ``(D, H, W)``).
    given : (N, *S) integer ndarray
        The given (possibly wrong) labels.
    confidence : float, default 0.0
        A pixel takes the predicted (most probable) label only where its top probability is
        at least this, in [0, 1]; elsewhere it keeps the given label. 0 replaces every
        pixel.
    ignore : bool, default False
        Unsure pixels get :data:`noisyseg.train.IGNORE_INDEX` (left out of the training
        loss) instead of the given label.

    Returns
    -------
    (N, *S) uint8 ndarray
        The pseudo-labels.

    Examples
    --------
    Two pixels, predicted background at 0.9 and foreground at 0.6; both given foreground:

    >>> probs = np.array([[[[0.9, 0.4]], [[0.1, 0.6]]]])  # (1, 2, 1, 2)
    >>> given = np.array([[[1, 1]]])
    >>> pseudo_labels(probs, given).tolist()
    [[[0, 1]]]
    >>> given = np.array([[[1, 0]]])
    >>> pseudo_labels(probs, given, confidence=0.8).tolist()  # the 0.6 pixel keeps its label
    [[[0, 0]]]
    >>> pseudo_labels(probs, given, confidence=0.8, ignore=True).tolist()
    [[[0, 255]]]
    """
    p = torch.as_tensor(probs)
    top, pred = p.max(dim=1)
    unsure = IGNORE_INDEX if ignore else np.asarray(given)
    out = np.where(top.numpy() >= confidence, pred.numpy(), unsure)
    return out.astype(np.uint8)


def _median_offsets(masks: np.ndarray, preds: np.ndarray, n_classes: int,
                    spacing: Sequence[Sequence[float]] | None) -> np.ndarray:
    """Per class, the median over samples of :func:`~noisyseg.evaluate.boundary_offset`
    (NaN where no sample shows the class)."""
    rows = [boundary_offset(m, p, n_classes=n_classes, spacing=None if spacing is None else spacing[k])
            for k, (m, p) in enumerate(zip(masks, preds, strict=True))]
    table = np.array(rows).reshape(len(rows), n_classes)
    out = np.full(n_classes, np.nan)
    seen = ~np.all(np.isnan(table), axis=0)
    out[seen] = np.nanmedian(table[:, seen], axis=0)
    return out


def systematic_offset(flagged: np.ndarray, flagged_pred: np.ndarray, trusted: np.ndarray,
                      trusted_pred: np.ndarray, *, n_classes: int,
                      spacing: Sequence[Sequence[float]] | None = None,
                      trusted_spacing: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """Measure per structure how far flagged masks are drawn outside the truth (mm).

    As measured by one model, and so how far :func:`debias_masks` moves it back.

    The median over flagged samples of :func:`~noisyseg.evaluate.boundary_offset` (given
    mask against the model's prediction), minus the same median over trusted samples (right
    mask against prediction): what the model itself gets wrong (a bias it learnt from the
    flagged masks) shifts both medians alike and cancels. Structures are taken one at a
    time, the largest offset first, and the others are measured again on the masks with it
    undone: a structure whose boundary moved only because a neighbour grew into it (the
    myocardium around a dilated LV cavity) measures 0 once the neighbour is back, and is
    left alone. Each structure moves at most once; offsets under half the flagged samples'
    typical smallest voxel size are left at 0.

    Parameters
    ----------
    flagged : (N, *S) integer ndarray
        Flagged samples' given masks.
    flagged_pred : (N, *S) integer ndarray
        The model's predictions for them.
    trusted : (M, *S) integer ndarray
        Masks known to be right (the validation masks, say).
    trusted_pred : (M, *S) integer ndarray
        The model's predictions for those samples.
    n_classes : int
        Number of classes, the background (label 0) included (keyword only).
    spacing : sequence of sequence of float, optional
        Voxel size (mm, array order) of each flagged sample; None (the default): 1 per axis,
        so offsets are in voxels.
    trusted_spacing : sequence of sequence of float, optional
        The same for each trusted sample; None (the default): 1 per axis.

    Returns
    -------
    (n_classes,) float ndarray
        Offset in mm (voxels without ``spacing``) per class. Positive: the flagged masks
        draw the structure too large; 0 for the background, for a structure either set does
        not show, and for one left alone.

    Raises
    ------
    ConfigError
        A mask and its prediction differ in shape, or a spacing has the wrong number of
        values or a non-positive one (from :func:`~noisyseg.evaluate.boundary_offset` and
        :func:`~noisyseg.corrupt.grow_structures`).

    Examples
    --------
    Flagged masks drawn one voxel too large all round, a model that predicts the truth:

    >>> truth = np.zeros((2, 12, 12), np.uint8); truth[:, 3:9, 3:9] = 1
    >>> big = np.zeros_like(truth); big[:, 2:10, 2:10] = 1
    >>> off = systematic_offset(big, truth, truth, truth, n_classes=2)
    >>> off.shape, float(off[0]), round(float(off[1]), 2)
    ((2,), 0.0, 1.03)
    """
    ref = _median_offsets(trusted, trusted_pred, n_classes, trusted_spacing)
    masks = np.asarray(flagged)
    smallest = 1.0 if spacing is None else float(np.median([min(sp) for sp in spacing]))
    applied = np.zeros(n_classes)
    for _ in range(n_classes - 1):
        off = np.nan_to_num(_median_offsets(masks, flagged_pred, n_classes, spacing) - ref, nan=0.0)
        off[0] = 0.0
        off[applied != 0] = 0.0
        c = int(np.argmax(np.abs(off)))
        if abs(off[c]) < 0.5 * smallest:
            break
        applied[c] = off[c]
        one = np.zeros(n_classes)
        one[c] = off[c]
        masks = debias_masks(masks, one, spacing=spacing)
    return applied


def debias_masks(masks: np.ndarray, offset: np.ndarray, *,
                 spacing: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """Undo a systematic offset: move each structure's boundary in (or out) by its offset.

    Each structure ``c`` of every mask moves in by ``offset[c]`` mm (out where negative;
    :func:`noisyseg.corrupt.grow_structures`), the largest offset first, as
    :func:`systematic_offset` measured them. Offsets under half the sample's smallest voxel
    size are left alone; the background's entry (``offset[0]``) is never applied.

    Parameters
    ----------
    masks : (N, *S) integer ndarray
        Label maps (2-D images or 3-D volumes).
    offset : (n_classes,) array_like of float
        Per class, how far (mm; voxels without ``spacing``) the masks draw it too large.
    spacing : sequence of sequence of float, optional
        Voxel size (mm, array order) of each mask; None (the default): 1 per axis.

    Returns
    -------
    (N, *S) uint8 ndarray
        The moved masks (a new array; ``masks`` is not changed).

    Raises
    ------
    ConfigError
        A spacing with the wrong number of values or a non-positive one (from
        :func:`~noisyseg.corrupt.grow_structures`).

    Examples
    --------
    >>> truth = np.zeros((2, 12, 12), np.uint8); truth[:, 3:9, 3:9] = 1
    >>> big = np.zeros_like(truth); big[:, 2:10, 2:10] = 1  # one voxel too large all round
    >>> fixed = debias_masks(big, np.array([0.0, 1.0]))
    >>> fixed.dtype, fixed.shape, bool((fixed == truth).all())
    (dtype('uint8'), (2, 12, 12), True)
    >>> bool((debias_masks(big, np.array([0.0, 0.4])) == big).all())  # under half a voxel
    True
    """
    masks = np.asarray(masks)
    offset = np.asarray(offset, dtype=float)
    order = [int(c) for c in np.argsort(-np.abs(offset), kind="stable") if c > 0]
    out = np.empty(masks.shape, dtype=np.uint8)
    for k, m in enumerate(masks):
        sp = np.ones(m.ndim) if spacing is None else np.asarray(spacing[k], dtype=float)
        for c in order:
            if abs(offset[c]) >= 0.5 * sp.min():
                m = grow_structures(m, -float(offset[c]), spacing=sp, classes=[c])
        out[k] = m
    return out


class Refurbisher(Callback):
    """Flag suspects with a detector's scores and train on pseudo-labels for them.

    A training callback (:class:`~noisyseg.train.Callback`). From epoch ``warmup`` on,
    every ``every`` epochs: flag with ``rule`` (see :func:`noisyseg.detect.flag`), replace
    the flagged samples' training masks by the current model's prediction (only where it
    is at least ``confidence`` sure), and, with ``unflag``, give samples no longer flagged
    their given masks back. Only training samples are ever touched. ``events`` records
    every replacement.

    ``mode`` says what the unsure pixels train on: the given label (``replace``), nothing
    (``ignore``: left out of the loss), or, with ``drop``, no pixel of a flagged mask is
    trained on (the sample is removed from the loss; no pseudo-label is made); with
    ``boundary`` a flagged mask keeps its given labels except within ``config.band`` voxels
    of its label boundaries, which leave the loss (no pseudo-label either); with ``debias``
    every flagged mask is its given mask with each structure moved by the systematic offset
    (:func:`systematic_offset`, measured again at every flagging against the trusted masks
    and recorded in ``offsets``; :func:`debias_masks`).

    Parameters
    ----------
    detector : Detector
        Whose latest scores (:meth:`~noisyseg.detect.Detector.scores`) are flagged; must
        come before this callback in the trainer's list.
    config : RefurbishConfig, optional
        When and how (warm-up, period, confidence, mode, ...); ``RefurbishConfig()`` when
        omitted.
    rule : {'mixture', 'top', 'percentile'}, default 'mixture'
        The flag rule (:func:`noisyseg.detect.flag`).
    value : float, optional
        The fraction in [0, 1] for ``top`` (required there) or the percentile in 0..100
        for ``percentile`` (default 90); unused by ``mixture``.
    seed : int, default 0
        Seed of the mixture flag rule.
    spacing : callable, optional
        Dataset sample index -> its voxel size in mm (array order), for ``debias``; default:
        the dataset's geometry (:meth:`~noisyseg.data.Samples.label_geometry`).
    doubted_slices : callable, optional
        ``doubted_slices(trainer, detector, positions) -> (B, n) bool``: for the training
        samples at ``positions`` (volumes), which of their ``n`` slices along
        ``slice_axis`` the detector doubts; a flagged sample then changes on those slices
        only (``config.region='slices'``, see :class:`RefurbishConfig`). Events record how
        many slices changed (``slices``). None (the default): flagged samples change whole.
    slice_axis : int, default 0
        The sample array axis of ``doubted_slices``' slices.

    Attributes
    ----------
    config : RefurbishConfig
        The settings in use; ``mode``, ``pseudo_from``, ``calibrate``, ``warmup``,
        ``every``, ``confidence`` and ``unflag`` are copied from it as attributes.
    detector, rule, value, seed, spacing, doubted_slices, slice_axis
        As given.
    flagged : (n_train,) bool ndarray
        Which training samples (in ``trainer.train_idx`` order) are flagged now; empty
        before training starts.
    events : list of dict
        One row per change: ``epoch`` (1-based), ``sample_id``, ``action``
        (``refurbished``, ``dropped``, ``boundary left out``, ``debiased`` or
        ``restored``) and, with ``doubted_slices``, ``slices``.
    biases : list of dict
        With ``calibrate``: per flagging, ``epoch`` and the per-class logit ``bias``.
    offsets : list of dict
        With ``mode='debias'``: per flagging, ``epoch`` and ``offset_mm``
        (``{class_name: mm}``).

    Raises
    ------
    ConfigError
        An unknown ``rule`` or a ``value`` out of its range (when made); ``mode='debias'``
        with no trusted sample (when training starts, :meth:`on_train_start`).

    Examples
    --------
    Refurbish the most suspect third of a tiny training set once, at epoch 2 (a run on real
    data is in the how-to, docs/how-to/python.md):

    >>> from noisyseg.data import Samples
    >>> from noisyseg.detect import LossDetector
    >>> from noisyseg.train import TrainConfig, Trainer
    >>> masks = np.zeros((4, 16, 16), np.uint8); masks[:, 4:12, 4:12] = 1
    >>> ds = Samples(images=masks.astype(np.float32), masks=masks,
    ...              class_names=("background", "lv"), sample_ids=("a", "b", "c", "d"),
    ...              split=np.array(["train", "train", "train", "val"]))
    >>> det = LossDetector(window=1)
    >>> ref = Refurbisher(det, RefurbishConfig(warmup=2), rule="top", value=1 / 3)
    >>> cfg = TrainConfig(epochs=2, batch_size=3, device="cpu", model_options={"width": 4})
    >>> trainer = Trainer(cfg, ds, [det, ref]).fit()
    >>> int(ref.flagged.sum()), [(e["epoch"], e["action"]) for e in ref.events]
    (1, [(2, 'refurbished')])
    >>> ref.final_masks(trainer).shape
    (3, 16, 16)
    """

    def __init__(self, detector: Detector, config: RefurbishConfig | None = None, *,
                 rule: str = "mixture", value: float | None = None, seed: int = 0,
                 spacing: Callable[[int], Sequence[float]] | None = None,
                 doubted_slices: Callable[[Trainer, Detector, np.ndarray], np.ndarray] | None = None,
                 slice_axis: int = 0) -> None:
        check_flag_rule(rule, value)
        self.doubted_slices, self.slice_axis = doubted_slices, slice_axis
        self.config = config = config or RefurbishConfig()
        self.mode, self.pseudo_from, self.calibrate = config.mode, config.pseudo_from, config.calibrate
        self.warmup, self.every = config.warmup, config.every
        self.confidence, self.unflag = config.confidence, config.unflag
        self.biases: list[dict[str, Any]] = []
        self.offsets: list[dict[str, Any]] = []
        self.spacing = spacing
        self.detector, self.rule, self.value = detector, rule, value
        self.seed = seed
        self.flagged = np.empty(0, dtype=bool)
        self.events: list[dict[str, Any]] = []

    def on_train_start(self, trainer: Trainer) -> None:
        if self.mode == "debias" and len(trainer.trusted_idx) == 0:
            raise ConfigError("mode: 'debias' measures offsets against masks known to be right; "
                              "give a validation split or trusted=")
        self.flagged = np.zeros(len(trainer.train_idx), dtype=bool)
        self._given = trainer.dataset.masks[trainer.train_idx.numpy()]
        self._guess = self._given.copy()  # the model's full label map where it was unsure

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        e = epoch + 1
        if e < self.warmup or (e - self.warmup) % self.every:
            return
        scores = self.detector.scores()
        if scores is None:
            return
        flags = flag(scores, self.rule, value=self.value, seed=self.seed)
        if not self.unflag:
            flags |= self.flagged
        idx = trainer.train_idx.numpy()
        new = np.flatnonzero(flags)
        if self.mode in ("drop", "boundary"):  # no pseudo-label: only the newly flagged change
            fresh = new[~self.flagged[new]]
            given = self._given[fresh]
            if self.mode == "drop":
                masks = np.full_like(given, IGNORE_INDEX)
            else:
                masks = np.where(boundary_band(given, self.config.band), np.uint8(IGNORE_INDEX),
                                 given).astype(np.uint8)
            masks, n = self._in_region(trainer, fresh, masks)
            trainer.replace_masks(idx[fresh], masks)
            action = "dropped" if self.mode == "drop" else "boundary left out"
            self._record(trainer, e, fresh, action, n)
        elif self.mode == "debias":
            if new.size:
                offset = self._offset(trainer, idx[new], e)
                masks, n = self._in_region(trainer, new, debias_masks(
                    self._given[new], offset, spacing=[self._spacing(trainer, idx[i]) for i in new]))
                trainer.replace_masks(idx[new], masks)
                self._record(trainer, e, new, "debiased", n)
        elif new.size:
            probs = torch.softmax(self._pseudo_logits(trainer, idx[new], e), dim=1)
            masks, n = self._in_region(trainer, new, pseudo_labels(
                probs, self._given[new], confidence=self.confidence, ignore=self.mode == "ignore"))
            trainer.replace_masks(idx[new], masks)
            self._guess[new] = probs.argmax(dim=1).numpy()
            self._record(trainer, e, new, "refurbished", n)
        back = np.flatnonzero(self.flagged & ~flags)
        if back.size:
            trainer.replace_masks(idx[back], self._given[back])
            self._guess[back] = self._given[back]
            self.events += [{"epoch": e, "sample_id": trainer.sample_ids[idx[i]],
                             "action": "restored"} for i in back]
        self.flagged = flags
        logs["n_flagged"] = float(flags.sum())
        log.info("epoch %d: %d samples refurbished", e, int(flags.sum()))

    def _in_region(self, trainer: Trainer, positions: np.ndarray, masks: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        """``masks`` (new labels of the training samples at ``positions``) kept only on the
        slices the detector doubts, the given labels elsewhere; with the number of changed
        slices per sample (None when every sample changes whole)."""
        if self.doubted_slices is None or not len(positions):
            return masks, None
        doubt = np.asarray(self.doubted_slices(trainer, self.detector, positions), dtype=bool)
        shape = [1] * (masks.ndim - 1)
        shape[self.slice_axis] = doubt.shape[1]
        keep = doubt.reshape(len(positions), *shape)
        return np.where(keep, masks, self._given[positions]).astype(np.uint8), doubt.sum(1)

    def _record(self, trainer: Trainer, epoch: int, positions: np.ndarray, action: str,
                slices: np.ndarray | None) -> None:
        idx = trainer.train_idx.numpy()
        for k, i in enumerate(positions):
            event = {"epoch": epoch, "sample_id": trainer.sample_ids[idx[i]], "action": action}
            if slices is not None:
                event["slices"] = int(slices[k])
            self.events.append(event)

    def final_masks(self, trainer: Trainer) -> np.ndarray:
        """Return the training masks of the training split as they end.

        Refurbished where flagged; pixels left out of the loss (``ignore``) hold the model's
        label for them, and dropped masks (and boundary bands) their given label.

        Parameters
        ----------
        trainer : Trainer
            The trainer this callback ran in.

        Returns
        -------
        (M, *S) uint8 ndarray
            One mask per training sample, in the order of ``trainer.train_idx``.
        """
        masks = trainer.train_targets[trainer.train_idx].numpy()
        return np.where(masks == IGNORE_INDEX, self._guess, masks).astype(np.uint8)

    @contextmanager
    def _weights(self, trainer: Trainer) -> Iterator[None]:
        """The weights that make pseudo-labels (one swap when they are the best ones)."""
        restore = None
        if self.pseudo_from == "best" and trainer.best_state is not None:
            restore = copy.deepcopy(trainer.model.state_dict())
            trainer.model.load_state_dict(trainer.best_state)
        try:
            yield
        finally:
            if restore is not None:
                trainer.model.load_state_dict(restore)

    def _pseudo_logits(self, trainer: Trainer, indices: np.ndarray, epoch: int) -> torch.Tensor:
        """Logits that make the pseudo-labels: from the chosen weights, plus the validation
        offsets when calibrating."""
        with self._weights(trainer):
            logits = trainer.predict_logits(indices)
            if self.calibrate:
                bias = validation_bias(trainer)
                self.biases.append({"epoch": epoch, "bias": bias.tolist()})
                logits = add_class_offsets(logits, bias)
            return logits

    def _spacing(self, trainer: Trainer, i: int) -> tuple[float, ...]:
        if self.spacing is not None:
            return tuple(float(v) for v in self.spacing(int(i)))
        return tuple(trainer.dataset.label_geometry(int(i)).spacing)

    def _offset(self, trainer: Trainer, flagged: np.ndarray, epoch: int) -> np.ndarray:
        """The flagged masks' systematic offset per class (mm), measured on (at most
        :data:`MAX_OFFSET_SAMPLES`) flagged and trusted samples spread evenly."""
        def spread(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a)
            if len(a) <= MAX_OFFSET_SAMPLES:
                return a
            return a[np.linspace(0, len(a) - 1, MAX_OFFSET_SAMPLES).round().astype(np.int64)]

        fl, tr = spread(flagged), spread(trainer.trusted_idx)
        with self._weights(trainer):
            pred_f, pred_t = trainer.predict(fl), trainer.predict(tr)
        pos = {int(t): k for k, t in enumerate(trainer.train_idx.numpy())}
        given = self._given[[pos[int(i)] for i in fl]]
        offset = systematic_offset(given, pred_f, trainer.trusted_masks(tr), pred_t,
                                   n_classes=trainer.dataset.n_classes,
                                   spacing=[self._spacing(trainer, i) for i in fl],
                                   trusted_spacing=[self._spacing(trainer, i) for i in tr])
        names = trainer.dataset.class_names
        self.offsets.append({"epoch": epoch, "offset_mm": {names[c]: round(float(offset[c]), 4)
                                                           for c in range(1, len(names))}})
        log.info("epoch %d: systematic offset of the flagged masks (mm): %s", epoch,
                 self.offsets[-1]["offset_mm"])
        return offset

    def state_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged.tolist(), "events": self.events, "biases": self.biases,
                "offsets": self.offsets}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.flagged = np.asarray(state["flagged"], dtype=bool)
        self.events = list(state["events"])
        self.biases = list(state.get("biases", []))
        self.offsets = list(state.get("offsets", []))
