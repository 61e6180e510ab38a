"""Rank a dataset's cases from a model's predictions, without training, one case at a time.

The prediction-based counterpart of :func:`~noisyseg.run.run_session`'s in-training
detectors: each case's labels and predicted probabilities are read, scored
(:func:`~noisyseg.detect.probs.case_scores`) and dropped, so memory does not grow with the
number of cases, and the flag rules of the in-training detectors apply unchanged.

When the probabilities are the out-of-fold predictions of an nnU-Net results folder whose fold
folders hold the per-case training loss of ``noisyseg nnunet train`` (``fold_K/noisyseg/``),
the ranking gains that score as one more detector, ``nnunet-loss``: per case the mean of its
scores over the folds that trained on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.data import CaseDataset
from noisyseg.data.predictions import Prediction, find_predictions, read_case_prediction
from noisyseg.detect import check_flag_rule, detection_metrics, flag
from noisyseg.detect.probs import PROB_DETECTORS, CaseScores, case_scores
from noisyseg.errors import ConfigError, DataError

__all__ = ["RANK_SPLITS", "Ranking", "rank_predictions", "read_case_prediction",
           "training_losses"]

log = logging.getLogger(__name__)

#: Which cases :func:`rank_predictions` ranks: every labelled case, or one split.
RANK_SPLITS = ("all", "train", "val", "test")


@dataclass(frozen=True)
class Ranking:
    """What :func:`rank_predictions` found.

    The constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    index : (N,) int ndarray
        Dataset indices of the ranked cases.
    case_ids : tuple of str
        Ids of the ranked cases, in ``index`` order.
    scores : dict of str -> (N,) float ndarray
        Per detector (:data:`~noisyseg.detect.probs.PROB_DETECTORS`, and ``nnunet-loss`` when
        the folds hold nnU-Net training scores), higher = more suspect.
    flags : dict of str -> (N,) bool ndarray
        Per detector, which cases its flag rule flags as suspect.
    truth : (N,) bool ndarray or None
        Which cases carry simulated errors, when the dataset says.
    slices : DataFrame
        ``sample_id, slice, detector, score`` (one slice per 2-D case).
    classes : DataFrame
        ``sample_id, class, given_voxels, predicted_voxels, dice, expected_dice``.
    predictions : dict of str -> Prediction
        The file each ranked case's prediction came from.
    config : dict
        The settings used (``detector``, ``split``, flag rule, ...).

    Raises
    ------
    KeyError
        From :attr:`primary` when ``config`` has no ``'detector'``.

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for sid, m in zip(ds.sample_ids, ds.masks):
    ...         p = 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1
    ...         np.save(Path(d) / f"{sid}.npy", p)
    ...     ranking = rank_predictions(ds, [d], workers=1)
    >>> ranking.primary, ranking.case_ids[0], sorted(ranking.scores)
    ('expected-dice', 'echo00000', ['dice', 'expected-dice', 'label-quality'])
    >>> ranking.detection()  # no simulated errors: no truth to measure against
    {}
    """

    index: np.ndarray
    case_ids: tuple[str, ...]
    scores: dict[str, np.ndarray]
    flags: dict[str, np.ndarray]
    truth: np.ndarray | None
    slices: pd.DataFrame
    classes: pd.DataFrame
    predictions: dict[str, Prediction]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        """The detector whose flags and ranks pick suspects and pseudo-labels."""
        return str(self.config["detector"])

    def detection(self) -> dict[str, Any]:
        """AP, AUROC, precision/recall of the flags per detector (empty without the truth)."""
        if self.truth is None:
            return {}
        return {d: detection_metrics(s, self.flags[d], self.truth).to_dict()
                for d, s in self.scores.items()}


def _match(ds: CaseDataset, predictions: Mapping[str, Prediction],
           index: np.ndarray) -> None:
    """Every ranked case has a prediction, and every prediction names a case of ``ds``."""
    known = set(ds.sample_ids)
    unknown = sorted(set(predictions) - known)
    if unknown:
        p = predictions[unknown[0]].path
        raise DataError(f"{p}: case {unknown[0]!r} is not in the dataset ({len(unknown)} "
                        f"prediction(s) for unknown cases; is --data the dataset that was "
                        f"predicted?)")
    missing = [ds.sample_ids[i] for i in index if ds.sample_ids[i] not in predictions]
    if missing:
        folds = sorted({p.fold for p in predictions.values() if p.fold is not None})
        found = (f"folds found: {', '.join(folds)}" if folds else "no fold folders found")
        first = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"probs: {len(missing)} of {len(index)} cases have no prediction "
                        f"({first}); {found}; every ranked case needs one (--only-predicted "
                        f"ranks just the cases that have one)")


def training_losses(predictions: Mapping[str, Prediction], case_ids: Sequence[str]
                    ) -> tuple[np.ndarray | None, list[str]]:
    """The ``nnunet-loss`` of each case from the fold folders its predictions came from.

    Every fold folder ``fold_K`` of an out-of-fold prediction (``fold_K/validation/CASE``)
    that holds ``noisyseg/`` (written by ``noisyseg nnunet train``) gives the training loss
    of its training cases; a case's score is the mean over the folds that trained on it.

    Parameters
    ----------
    predictions : mapping of case id -> Prediction
    case_ids : sequence of str
        The ranked cases (the order of the scores).

    Returns
    -------
    scores : (N,) float64 ndarray or None
        None when no fold holds training scores, or when some ranked case has none (a
        warning says which folds to train).
    folds : list of str
        The fold folders whose training scores were read.

    Raises
    ------
    DataError
        A fold's ``noisyseg/`` that is not a noisyseg nnU-Net run, or one that scored a case
        that the same fold predicted out-of-fold (the split changed between the two).
    """
    from noisyseg.run.nnunet import NNUNET_LOSS, SCORES_FOLDER, read_fold_scores

    validated: dict[Path, set[str]] = {}
    for cid, p in predictions.items():
        if p.fold is not None and p.path.parent.name == "validation":
            validated.setdefault(p.path.parent.parent, set()).add(cid)
    per_case: dict[str, list[float]] = {}
    folds = []
    for fold_dir in sorted(validated):
        fold_scores = read_fold_scores(fold_dir)
        if fold_scores is None:
            continue
        both = sorted(validated[fold_dir] & set(fold_scores))
        if both:
            raise DataError(f"{fold_dir / SCORES_FOLDER / 'scores.csv'}: case {both[0]!r} is a "
                            f"training case of this fold and also predicted out-of-fold in its "
                            f"validation/ ({len(both)} such cases; was the split changed?)")
        for cid, v in fold_scores.items():
            per_case.setdefault(cid, []).append(v)
        folds.append(fold_dir.name)
    if not folds:
        return None, []
    missing = [c for c in case_ids if c not in per_case]
    if missing:
        log.warning("%s left out: %d of %d cases have no training-loss score (e.g. %r); only "
                    "%s hold noisyseg scores: train the other folds with `noisyseg nnunet train`",
                    NNUNET_LOSS, len(missing), len(case_ids), missing[0], ", ".join(folds))
        return None, folds
    return np.array([np.mean(per_case[c]) for c in case_ids], dtype=np.float64), folds


def _one_hot(p: np.ndarray, *, chunk: int = 4096) -> bool:
    """Whether probabilities are all 0 or 1 (a hard label map read as one-hot). Read in
    chunks that stop at the first other value, so a real softmax costs a chunk or two."""
    flat = p.reshape(-1)
    for s in range(0, flat.size, chunk):
        c = flat[s:s + chunk]
        if np.any((c != 0) & (c != 1)):
            return False
    return True


def rank_predictions(ds: CaseDataset,
                     probs: Sequence[str | Path] | Mapping[str, Prediction], *,
                     split: str = "all", detector: str = "expected-dice",
                     flag_rule: str = "mixture", flag_value: float | None = None,
                     temperature: float = 0.1, slice_axis: int = 0, workers: int | None = None,
                     only_predicted: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Ranking:
    """Score every case of ``split`` from its predicted probabilities and flag suspects.

    Parameters
    ----------
    ds : CaseDataset
        The labelled dataset; the labels scored are its (possibly noisy) training labels.
    probs : sequence of paths, or mapping of case id -> Prediction
        Folders of predictions (see :func:`~noisyseg.data.predictions.find_predictions`).
    split : {'all', 'train', 'val', 'test'}
        Which cases to rank (nnU-Net's cross-validation predicts every labelled case).
    detector : str
        Whose flags pick suspects and pseudo-labels (one of ``PROB_DETECTORS``); every
        score is computed and written either way. Default ``expected-dice``: on 5-fold
        out-of-fold probabilities of synthetic-echo with 30% of the LV cavities dilated by
        2 px it ranked the corrupted cases with AP 0.999 (``dice`` 0.999), where cleanlab's
        ``label-quality`` reached 0.933.
    flag_rule, flag_value
        As for the in-training detectors (:func:`~noisyseg.detect.flag`).
    temperature : float
        Softmin temperature of ``label-quality``.
    slice_axis : int
        Axis of the per-slice scores for volumes (array order; 0 is axial).
    workers : int, optional
        Threads reading and scoring cases (reading and NumPy release the GIL); default: the
        CPUs available, at most 4. Each holds one case at a time.
    only_predicted : bool
        Rank only the cases of ``split`` that have a prediction (the others are left out,
        and the log says how many); default: every case needs one.
    progress : callable, optional
        ``progress(done, total)`` after each case.

    Returns
    -------
    Ranking
        With the extra detector ``nnunet-loss`` when the predictions' fold folders hold
        ``noisyseg nnunet train``'s training scores for every ranked case
        (:func:`training_losses`; flagged by the same rule, never the primary detector).

    Raises
    ------
    DataError
        A case without a prediction, a prediction for an unknown case, or a prediction that
        does not fit its case (see :func:`~noisyseg.data.predictions.read_prediction`).
    ConfigError
        Unknown split or detector, bad flag rule or temperature.

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for sid, m in zip(ds.sample_ids, ds.masks):
    ...         p = 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1
    ...         np.save(Path(d) / f"{sid}.npy", p)
    ...     ranking = rank_predictions(ds, [d], workers=1)
    >>> len(ranking.case_ids), bool(ranking.scores["dice"].min() >= 0)
    (4, True)
    """
    if split not in RANK_SPLITS:
        raise ConfigError(f"split: expected one of {', '.join(RANK_SPLITS)}, got {split!r}")
    if detector not in PROB_DETECTORS:
        raise ConfigError(f"detector: expected one of {', '.join(PROB_DETECTORS)}, got "
                          f"{detector!r}")
    check_flag_rule(flag_rule, flag_value)
    if not temperature > 0:
        raise ConfigError(f"temperature: must be > 0, got {temperature}")
    index = np.arange(len(ds)) if split == "all" else ds.indices(split)
    if len(index) == 0:
        raise DataError(f"split: the dataset has no {split!r} cases")
    preds = dict(probs) if isinstance(probs, Mapping) else find_predictions(list(probs))
    if only_predicted:
        have = np.array([ds.sample_ids[i] in preds for i in index], dtype=bool)
        if not have.any():
            raise DataError(f"probs: none of the {len(index)} cases of split {split!r} has a "
                            f"prediction")
        if not have.all():
            log.warning("ranking the %d of %d cases that have a prediction (%d left out)",
                        int(have.sum()), len(index), int((~have).sum()))
        index = index[have]
    _match(ds, preds, index)
    n_workers = workers or min(4, len(os.sched_getaffinity(0)))

    def one(i: int) -> tuple[CaseScores, bool]:
        labels, _ = ds.read_label(int(i))
        p = read_case_prediction(ds, int(i), preds[ds.sample_ids[i]], labels)
        return case_scores(labels, p, slice_axis=slice_axis, temperature=temperature), _one_hot(p)

    results: list[CaseScores] = []
    n_hard = 0
    pool = ThreadPoolExecutor(max_workers=max(1, n_workers))
    try:
        for done, (res, hard) in enumerate(pool.map(one, index), start=1):
            results.append(res)
            n_hard += hard
            if progress is not None:
                progress(done, len(index))
    finally:  # a bad case stops the ranking at once, not after every queued case
        pool.shutdown(wait=True, cancel_futures=True)
    if n_hard:
        log.warning("%d of %d predictions are hard label maps, not probabilities: their scores "
                    "come from hard labels (expected-dice equals dice, label-quality is coarse); "
                    "nnU-Net writes probabilities with --npz", n_hard, len(index))
    ids = tuple(ds.sample_ids[i] for i in index)
    table = np.stack([r.scores for r in results])
    scores = {d: table[:, j] for j, d in enumerate(PROB_DETECTORS)}
    train_loss, loss_folds = training_losses(preds, ids)
    if train_loss is not None:
        from noisyseg.run.nnunet import NNUNET_LOSS

        scores[NNUNET_LOSS] = train_loss
    flags = {d: flag(s, flag_rule, value=flag_value) for d, s in scores.items()}
    truth = None if ds.corrupted is None else np.asarray(ds.corrupted, dtype=bool)[index]
    # per slice, detector-major within each case: (case, detector, slice)
    n_sl = np.array([len(r.slice_scores) for r in results])
    n_det = len(PROB_DETECTORS)
    slices = pd.DataFrame({
        "sample_id": np.repeat(np.asarray(ids, dtype=object), n_sl * n_det),
        "slice": np.concatenate([np.tile(np.arange(m), n_det) for m in n_sl]),
        "detector": np.concatenate([np.repeat(PROB_DETECTORS, m) for m in n_sl]),
        "score": np.concatenate([r.slice_scores.T.ravel() for r in results])})
    classes = pd.DataFrame({
        "sample_id": np.repeat(ids, ds.n_classes),
        "class": np.tile(ds.class_names, len(ids)),
        "given_voxels": np.concatenate([r.given_voxels for r in results]),
        "predicted_voxels": np.concatenate([r.predicted_voxels for r in results]),
        "dice": np.concatenate([r.class_dice for r in results]),
        "expected_dice": np.concatenate([r.class_expected_dice for r in results])})
    folds = sorted({p.fold for p in preds.values() if p.fold is not None})
    config = {"split": split, "detector": detector, "flag_rule": flag_rule,
              "flag_value": flag_value, "temperature": temperature, "slice_axis": slice_axis,
              "n_cases": len(ids), "folds": folds, "source": ds.source,
              "only_predicted": bool(only_predicted), "hard_label_predictions": int(n_hard),
              "training_loss_folds": loss_folds if train_loss is not None else []}
    return Ranking(index=np.asarray(index), case_ids=ids, scores=scores, flags=flags,
                   truth=truth, slices=slices, classes=classes,
                   predictions={c: preds[c] for c in ids}, config=config)
