"""The engine of a run: one training on in-memory samples with its detectors and
refurbishment attached, measured on the clean test masks of the same samples.

:func:`~noisyseg.run.run_session` calls :func:`train_samples` on what
:func:`~noisyseg.data.sample_view` makes of a dataset (2-D images, slices of volumes, or
volumes) and goes back to cases. Masks are ``(N, *S)`` uint8, images ``(N, *S)`` float32,
scores one float per training sample (higher = more suspect), in the order of
``trainer.train_idx``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisyseg.data import SPLITS, Samples
from noisyseg.detect import (
    DetectionMetrics,
    Detector,
    DisagreeDetector,
    check_detectors,
    check_flag_rule,
    detection_metrics,
    flag,
    make_detector,
)
from noisyseg.errors import ConfigError, DataError
from noisyseg.evaluate import SegmentationMetrics, dice, evaluate_masks
from noisyseg.refurbish import RefurbishConfig, Refurbisher
from noisyseg.train import Callback, TrainConfig, Trainer

__all__ = ["MIN_VAL_DICE", "SampleRun", "model_check", "read_trusted", "sample_summary",
           "train_samples"]

log = logging.getLogger(__name__)

#: Below this best validation Dice (mean over the foreground classes) a network is taken to
#: have learnt too little for its scores, flags and pseudo-labels to be trusted: the run
#: says so in the log, in ``metrics.json`` (``model_check``) and on the review page.
MIN_VAL_DICE = 0.5


def model_check(val_dice: float | None, *, floor: float = MIN_VAL_DICE) -> dict[str, Any]:
    """Check whether a network learnt enough to be trusted as a judge of its training masks.

    Parameters
    ----------
    val_dice : float or None
        The network's best validation Dice (``None`` or negative: never validated).
    floor : float, default MIN_VAL_DICE
        The lowest validation Dice taken as good enough.

    Returns
    -------
    dict
        ``val_dice``, ``floor``, ``passed`` (bool) and ``message`` (one line; empty when
        passed): what ``metrics.json`` records as ``model_check``.

    Examples
    --------
    >>> model_check(0.91)["passed"]
    True
    >>> model_check(0.0035)["message"][:50]
    'the network reached a validation Dice of 0.0035 on'
    """
    v = None if val_dice is None or not np.isfinite(val_dice) or val_dice < 0 else float(val_dice)
    passed = v is not None and v >= floor
    if passed:
        message = ""
    elif v is None:
        message = ("the network was never validated (no validation masks): nothing says it "
                   "learnt the structures, so its scores, flags and pseudo-labels are unchecked")
    else:
        message = (f"the network reached a validation Dice of {v:.4g} only (floor {floor:g}): "
                   f"it has not learnt the structures, so its scores, flags and pseudo-labels "
                   f"are not worth trusting; train longer or check the data")
    return {"val_dice": v, "floor": float(floor), "passed": bool(passed), "message": message}


@dataclass
class SampleRun:
    """Everything one training measured, per sample.

    Attributes
    ----------
    trainer : Trainer
        The fitted trainer (best-on-validation weights loaded).
    test_idx : (T,) int ndarray
        Dataset indices of the test samples (the validation split when there is no test).
    test : SegmentationMetrics
        Test metrics against the clean masks.
    test_pred : (T, *S) uint8 ndarray
    scores, flags : dict of str to (M,) ndarray
        Per detector, one score / flag per training sample (order of ``train_idx``).
    detection : dict of str to DetectionMetrics
        Empty when the dataset does not say which samples were corrupted.
    history : list of dict
        Per detector and epoch: AP and AUROC of that epoch's scores (when truth is known).
    refurbisher : Refurbisher or None
    refurbish_dice : dict or None
        Mean Dice of the training masks to the clean ones before and after refurbishment.
    train_seconds : float
    detector_seconds : dict of str to float
    trusted : dict or None
        When a method took some masks as right (``disagree``'s and ``--refurbish-calibrate``'s
        boundary calibration): ``source``, ``n``, ``used_by`` and ``sample_ids``.
    detectors : dict of str to Detector
        The fitted detectors (for their histories and voxel maps).
    """

    trainer: Trainer
    test_idx: np.ndarray
    test: SegmentationMetrics
    test_pred: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    detection: dict[str, DetectionMetrics] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    refurbisher: Refurbisher | None = None
    refurbish_dice: dict[str, float | None] | None = None
    train_seconds: float = 0.0
    detector_seconds: dict[str, float] = field(default_factory=dict)
    trusted: dict[str, Any] | None = None
    detectors: dict[str, Detector] = field(default_factory=dict)

    @property
    def train_idx(self) -> np.ndarray:
        """Dataset indices of the training samples."""
        return self.trainer.train_idx.numpy()

    @property
    def truth(self) -> np.ndarray | None:
        """Which training samples were corrupted, when the dataset says so."""
        ds = self.trainer.dataset
        return None if ds.corrupted is None else ds.corrupted[self.train_idx]

    def final_masks(self) -> np.ndarray:
        """The training masks at the end of training (refurbished where flagged; see
        :meth:`noisyseg.refurbish.Refurbisher.final_masks`)."""
        if self.refurbisher is not None:
            return self.refurbisher.final_masks(self.trainer)
        return self.trainer.train_targets[self.trainer.train_idx].numpy().astype(np.uint8)


def read_trusted(ds: Samples, trusted: str | Path | Sequence[str]) -> tuple[np.ndarray, str]:
    """Find the samples named as trusted (masks known to be right).

    Parameters
    ----------
    ds : Samples
        The dataset.
    trusted : str, Path or sequence of str
        A split name (``'val'``), a file of sample ids (one per line, ``#`` comments, or a
        CSV with a ``sample_id`` column), or a sequence of ids.

    Returns
    -------
    index : (K,) int64 ndarray
        Sorted dataset indices of the trusted samples.
    source : str
        Where they came from, in words (``'val split'``, ``'file ...'``,
        ``'given sample ids'``).

    Raises
    ------
    DataError
        A string that is neither a split nor a file; an unreadable file; a CSV without a
        ``sample_id`` column; an id that is not in the dataset; no ids at all.

    Examples
    --------
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=32, seed=0).samples
    >>> index, source = read_trusted(ds, ["echo00002", "echo00000"])
    >>> index.tolist(), source
    ([0, 2], 'given sample ids')
    """
    if isinstance(trusted, str) and trusted in SPLITS:
        return ds.indices(trusted), f"{trusted} split"
    if isinstance(trusted, str | Path):
        p = Path(trusted)
        if not p.is_file():
            raise DataError(f"trusted: {trusted}: neither a split ({', '.join(SPLITS)}) nor a "
                            f"file of sample ids")
        try:
            lines = [ln.strip() for ln in p.read_text().splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"trusted: {p}: cannot read ({exc})") from exc
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        if lines and "," in lines[0]:
            head = [c.strip() for c in lines[0].split(",")]
            if "sample_id" not in head:
                raise DataError(f"trusted: {p}: a CSV needs a sample_id column, found {head}")
            col = head.index("sample_id")
            lines = [ln.split(",")[col].strip() for ln in lines[1:]]
        ids, source = lines, f"file {p}"
    else:
        ids, source = [str(t) for t in trusted], "given sample ids"
    pos = {sid: i for i, sid in enumerate(ds.sample_ids)}
    unknown = [t for t in ids if t not in pos]
    if unknown:
        raise DataError(f"trusted: {source}: sample id {unknown[0]!r} is not in the dataset "
                        f"({len(unknown)} of {len(ids)} unknown)")
    if not ids:
        raise DataError(f"trusted: {source}: names no sample")
    return np.array(sorted({pos[t] for t in ids}), dtype=np.int64), source


def train_samples(ds: Samples, config: TrainConfig, *, detectors: Sequence[str] = (),
                  refurbish: RefurbishConfig | None = None, flag_rule: str = "mixture",
                  flag_value: float | None = None,
                  trusted: str | Path | Sequence[str] | None = None,
                  callbacks: Sequence[Callback] = (),
                  spacing: Callable[[int], Sequence[float]] | None = None,
                  doubted_slices: Callable[..., np.ndarray] | None = None,
                  slice_axis: int = 0) -> SampleRun:
    """Train on ``ds``'s training masks with detectors attached; evaluate on clean test masks.

    Parameters
    ----------
    ds : Samples
        The samples (:func:`~noisyseg.data.sample_view`). Training masks may be noisy;
        validation and test use ``ds.truth``.
    config : TrainConfig
    detectors : sequence of str
        ``NAME[:key=value,...]`` with NAME in {'vog', 'vog-online', 'loss', 'cleanlab',
        'disagree'},
        e.g. ``vog:normalise=rms``; results are keyed by the string as given.
    refurbish : RefurbishConfig, optional
        Turn refurbishment on (needs a detector).
    flag_rule : {'mixture', 'top', 'percentile'}
    flag_value : float, optional
        Fraction for ``top``, percentile for ``percentile``.
    trusted : split name, file of sample ids, or sequence of ids, optional
        The masks known to be right, for the methods that calibrate on right masks
        (``disagree``, ``refurbish.calibrate``; see :func:`read_trusted`). Default: the
        validation split, which the session then records (and logs) as taken to be right.
    callbacks : sequence of Callback
        Extra callbacks (e.g. a progress bar), run after the detectors.
    spacing : callable, optional
        Sample index -> voxel size in mm (array order) of the sample's arrays, for
        ``refurbish.mode='debias'``; default: the dataset's geometry.
    doubted_slices : callable, optional
        For ``refurbish.region='slices'``: which slices (along ``slice_axis``) of flagged
        volumes the detector doubts (see :class:`~noisyseg.refurbish.Refurbisher`).
    slice_axis : int

    Returns
    -------
    SampleRun

    Raises
    ------
    ConfigError
        Unknown or repeated detector, bad flag rule, refurbishment without a detector, or a
        detector that produced no scores.
    """
    check_detectors(detectors, refurbish=refurbish is not None,
                    refurbish_with=None if refurbish is None else refurbish.with_detector)
    check_flag_rule(flag_rule, flag_value)
    dets: dict[str, Detector] = {name: make_detector(name) for name in detectors}
    cbs: list[Callback] = list(dets.values())
    refurbisher = None
    if refurbish is not None:
        refurbisher = Refurbisher(dets[refurbish.with_detector or detectors[0]], refurbish,
                                  rule=flag_rule, value=flag_value, seed=config.seed,
                                  spacing=spacing, doubted_slices=doubted_slices,
                                  slice_axis=slice_axis)
        cbs.append(refurbisher)
    needs = [n for n, d in dets.items() if isinstance(d, DisagreeDetector) and d.calibrate]
    if refurbish is not None and (refurbish.calibrate or refurbish.mode == "debias"):
        needs.append(f"refurbish {'calibrate' if refurbish.calibrate else 'debias'}")
    trusted_at = None if trusted is None else read_trusted(ds, trusted)
    t0 = time.perf_counter()
    trainer = Trainer(config, ds, [*cbs, *callbacks])
    if trusted_at is not None:
        trainer.set_trusted(*trusted_at)
    elif needs:
        log.warning("%s: measuring against the %d validation masks, taken to be right; name the "
                    "masks you checked (--trusted, or trusted= in the Python API)", ", ".join(needs),
                    len(trainer.trusted_idx))
    trainer.fit()
    train_s = time.perf_counter() - t0
    check = model_check(trainer.best_score)
    if dets and not check["passed"]:
        log.warning("%s", check["message"])

    test = ds.indices("test")
    if len(test) == 0:
        test = ds.indices("val")
    pred = trainer.predict(test)
    session = SampleRun(trainer=trainer, test_idx=test, test_pred=pred,
                      test=evaluate_masks(pred, ds.truth[test], ds.class_names),
                      refurbisher=refurbisher, train_seconds=train_s, detectors=dets,
                      detector_seconds={n: float(getattr(d, "seconds", 0.0)) for n, d in dets.items()})
    if needs:
        session.trusted = {"source": trainer.trusted_source, "n": int(len(trainer.trusted_idx)),
                           "used_by": needs,
                           "sample_ids": [ds.sample_ids[i] for i in trainer.trusted_idx]}
    truth = session.truth
    for name, det in dets.items():
        s = det.scores()
        if s is None:
            raise ConfigError(f"detectors: {name} produced no scores (train for more epochs)")
        session.scores[name] = s
        session.flags[name] = flag(s, flag_rule, value=flag_value, seed=config.seed)
        for epoch, hs in det.history:
            row: dict[str, Any] = {"detector": name, "epoch": epoch}
            if truth is not None:
                m = detection_metrics(hs, flag(hs, flag_rule, value=flag_value), truth)
                row |= {"average_precision": m.average_precision, "auroc": m.auroc}
            session.history.append(row)
        if truth is not None:
            session.detection[name] = detection_metrics(s, session.flags[name], truth)
    if refurbisher is not None and ds.clean_masks is not None:
        idx = session.train_idx
        clean = ds.clean_masks[idx]
        before = dice(ds.masks[idx], clean, ds.n_classes)
        after = dice(session.final_masks(), clean, ds.n_classes)
        sel = refurbisher.flagged
        session.refurbish_dice = {
            "all_train_before": float(before.mean()), "all_train_after": float(after.mean()),
            "refurbished_before": float(before[sel].mean()) if sel.any() else None,
            "refurbished_after": float(after[sel].mean()) if sel.any() else None}
    return session


def sample_summary(session: SampleRun) -> dict[str, Any]:
    """The JSON-serialisable measurements of a training on samples (what ``metrics.json``
    holds for 2-D images; :func:`~noisyseg.run.summary` adds the cases' for volumes)."""
    tr = session.trainer
    out: dict[str, Any] = {
        "config": tr.config.to_dict(), "test": session.test.to_dict() | {"n": int(len(session.test_idx))},
        "best_epoch": tr.best_epoch, "best_val_dice": tr.best_score, "interrupted": tr.interrupted,
        "train_seconds": round(session.train_seconds, 2), "device": str(tr.device),
        "skipped_steps": int(tr.skipped_steps),
        "torch": torch.__version__, "threads": torch.get_num_threads(), **tr.settings,
        "truth_known": session.truth is not None,
        "model_check": model_check(tr.best_score)}
    if session.scores:
        out["detectors"] = list(session.scores)
        out["detector_seconds"] = {k: round(v, 2) for k, v in session.detector_seconds.items()}
        out["detection"] = {k: v.to_dict() for k, v in session.detection.items()}
    if session.trusted is not None:
        out["trusted"] = session.trusted
    if session.refurbisher is not None:
        out["n_refurbished"] = int(session.refurbisher.flagged.sum())
        if session.refurbisher.biases:
            out["refurbish_biases"] = session.refurbisher.biases
        if session.refurbisher.offsets:
            out["refurbish_offsets_mm"] = session.refurbisher.offsets
        out["refurbish_dice"] = session.refurbish_dice
    return out
