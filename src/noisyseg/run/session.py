"""A run: one training with its detectors and refurbishment attached, seen per case, on a
dataset of any dimension.

This is the unit of every experiment: ``noisyseg train``, ``noisyseg audit``, each fold of
``audit --folds`` and each trial of a study call :func:`run_session` and differ only in what
they write. What the network trains on comes from :func:`~noisyseg.data.sample_view`; the
training itself is :func:`~noisyseg.run.samples.train_samples` (the trainer, detectors and
refurbisher are the ones every run uses); the results come back per case:

2-D images (``images``): each image is its own sample, so a case's score, flag and test
metrics are its sample's (metrics in pixels).

Volumes with a 2-D network (``dims=2``, nnU-Net's ``2d``, study A): the samples are the slices
along ``slice_axis``.

- a case's score is the mean of its slices' scores over the slices whose given mask holds a
  structure (all its slices when none does), so empty slices, which every detector finds
  easy, do not dilute a case's errors;
- refurbishment works per slice (only the flagged slices of a case are replaced); a case's
  refurbished volume is its slices' final masks, reassembled.

Volumes with a 3-D network (``dims=3``, nnU-Net's ``3d_fullres``): the samples are the cases,
resampled to a common ``spacing`` when asked and padded to one grid; the network trains on
patches and predicts with sliding windows.

- a case's score is the detector's own score of the case; its per-slice scores are the
  detector's voxel map (:meth:`~noisyseg.detect.Detector.voxel_scores`, from the trained
  model) averaged over each slice along ``slice_axis``, on the case's own grid;
- refurbishment replaces whole cases.

Either way on volumes the per-slice scores (``slice_scores.csv``) point at the bad slices, and
the test cases are predicted, put back on their own grid and measured in 3-D (Dice, IoU, HD95
and surface Dice in mm, with each case's voxel spacing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.data import SPLITS, CaseDataset, SampleIndex, VolumeIndex, sample_view
from noisyseg.detect import DetectionMetrics, Detector, detection_metrics, flag
from noisyseg.errors import ConfigError
from noisyseg.evaluate import SegmentationMetrics, evaluate_masks
from noisyseg.refurbish import RefurbishConfig, Refurbisher
from noisyseg.run.samples import SampleRun, read_trusted, sample_summary, train_samples
from noisyseg.train import Callback, TrainConfig, Trainer

__all__ = ["DEFAULT_TOLERANCE", "Session", "case_scores_from_slices", "run_session", "summary"]

#: Surface Dice tolerance (mm) when none is given: about one in-plane CT voxel.
DEFAULT_TOLERANCE = 1.0


@dataclass
class Session:
    """A run on a dataset of any dimension, seen per case.

    :func:`run_session` builds it after training; the constructor's parameters are the
    attributes below. No example: a session comes from training a network.

    Attributes
    ----------
    samples : SampleRun
        The training on the samples: images, slices (their scores, flags and refurbisher
        are per slice) or volumes.
    index : SampleIndex
        Which case (and slice) each sample is, and the way back to the case's grid.
    train_cases : (M,) int ndarray
        Case indices of the training cases, in case order.
    scores, flags : dict of str -> (M,) ndarray
        Per detector, one score / flag per training case.
    truth : (M,) bool ndarray or None
        Which training cases carry simulated errors, when the dataset says.
    detection : dict of str -> DetectionMetrics
        Per detector, on cases (empty when the truth is unknown).
    slice_detection : dict of str -> DetectionMetrics
        Volumes: per detector, on slices (a slice counts as corrupted when its mask differs
        from its clean one; empty when no clean labels are known).
    slice_case, slice_position : (S,) int ndarray
        Volumes: case index and slice number (along ``index.axis``, on the case's own grid)
        of every scored slice of the training cases.
    slice_scores : dict of str -> (S,) ndarray
        Volumes: per detector, one score per slice.
    test_cases : (T,) int ndarray
        Case indices of the evaluated cases (the validation split when there is no test).
    test : SegmentationMetrics
        Per-case metrics against the clean labels (``per_sample``: one row per case): in
        mm on each volume's own grid, in pixels on 2-D images.
    tolerance : float
        The surface Dice tolerance, mm.
    refurbished : (M,) bool ndarray
        Training cases with at least one refurbished (or dropped) slice.
    """

    samples: SampleRun
    index: SampleIndex
    train_cases: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    truth: np.ndarray | None = None
    detection: dict[str, DetectionMetrics] = field(default_factory=dict)
    slice_detection: dict[str, DetectionMetrics] = field(default_factory=dict)
    test_cases: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test: SegmentationMetrics | None = None
    tolerance: float = DEFAULT_TOLERANCE
    refurbished: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    slice_case: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slice_position: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slice_scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def sampling(self) -> str:
        """What the network saw: ``'images'``, ``'slices'`` or ``'volumes'``."""
        return self.index.sampling

    @property
    def dims(self) -> int:
        """2 for a network on images or slices, 3 for one on volumes."""
        return self.index.dims

    @property
    def cases(self) -> CaseDataset:
        """The dataset the run was given."""
        return self.index.cases

    @property
    def trainer(self) -> Trainer:
        """The fitted trainer (best-on-validation weights loaded)."""
        return self.samples.trainer

    @property
    def refurbisher(self) -> Refurbisher | None:
        """The refurbisher, when refurbishment was on (it acts on samples)."""
        return self.samples.refurbisher

    @property
    def trusted(self) -> dict[str, Any] | None:
        """The masks taken to be right, when a method calibrated on them."""
        return self.samples.trusted

    @property
    def case_ids(self) -> list[str]:
        """Ids of the training cases, in the order of :attr:`scores`."""
        return [self.cases.sample_ids[i] for i in self.train_cases]

    def case_volume(self, i: int, sample_masks: np.ndarray) -> np.ndarray:
        """Case ``i``'s label map from per-training-sample masks (order of
        ``samples.train_idx``), e.g. :meth:`final_masks`."""
        return self.index.volume_from(i, self.samples.train_idx, sample_masks)

    def final_masks(self) -> np.ndarray:
        """The training samples' masks at the end of training (refurbished where flagged),
        in the order of ``samples.train_idx``; :meth:`case_volume` puts a case together."""
        return self.samples.final_masks()

    def test_volume(self, i: int) -> np.ndarray:
        """Evaluated case ``i``'s predicted label map (from ``samples.test_pred``)."""
        return self.index.volume_from(i, self.samples.test_idx, self.samples.test_pred)

    def predict_cases(self, cases: Sequence[int] | np.ndarray, *, batch: int = 256
                      ) -> Iterator[tuple[int, np.ndarray]]:
        """``(case, label map)`` of the final network for each of ``cases``, in order, on
        the case's own grid; samples are predicted ``batch`` at a time (at least one case)."""
        cases = [int(i) for i in cases]
        k = 0
        while k < len(cases):
            chunk, rows = [], []
            while k < len(cases) and (not chunk or len(rows) + len(
                    self.index.slices_of(cases[k])) <= batch):
                chunk.append(cases[k])
                rows.extend(self.index.slices_of(cases[k]).tolist())
                k += 1
            pred = self.trainer.predict(np.asarray(rows, dtype=np.int64))
            for i in chunk:
                yield i, self.index.volume_from(i, np.asarray(rows), pred)

    def slice_table(self) -> pd.DataFrame:
        """``slice_scores.csv``: ``sample_id, slice, detector, score`` per training slice."""
        case_ids = np.asarray(self.cases.sample_ids)[self.slice_case]
        frames = [pd.DataFrame({"sample_id": case_ids, "slice": self.slice_position,
                                "detector": det, "score": np.asarray(s, dtype=float)})
                  for det, s in self.slice_scores.items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["sample_id", "slice", "detector", "score"])

    def case_metrics_table(self) -> pd.DataFrame:
        """``case_metrics.csv``: one row per evaluated case (Dice, IoU, HD95 mm, surface Dice
        mean and per class)."""
        assert self.test is not None
        rows = [{"sample_id": self.cases.sample_ids[i]} | r
                for i, r in zip(self.test_cases, self.test.per_sample, strict=True)]
        return pd.DataFrame(rows)

    def events_table(self) -> pd.DataFrame:
        """``refurbish_events.csv``: ``epoch, sample_id, action`` per event on 2-D images;
        per case on volumes, with ``slices``, the number of the case's slices with that
        action in that epoch (for a 3-D run the case's slice count along ``index.axis``
        when it changed whole; with ``region='slices'`` the doubted slices that changed, on
        the resampled grid when the run resamples)."""
        ref = self.refurbisher
        if self.sampling == "images":
            return pd.DataFrame([] if ref is None else ref.events,
                                columns=["epoch", "sample_id", "action"])
        cols = ["epoch", "sample_id", "action", "slices"]
        if ref is None or not ref.events:
            return pd.DataFrame(columns=cols)
        ev = pd.DataFrame(ref.events)
        ev = ev[[c for c in ("epoch", "sample_id", "action", "slices") if c in ev]]
        if self.sampling == "volumes":  # the whole case, unless only doubted slices changed
            ids = list(self.cases.sample_ids)
            whole = [self.index.shapes[ids.index(sid)][self.index.axis] for sid in ev["sample_id"]]
            given = ev["slices"] if "slices" in ev else pd.Series(np.nan, index=ev.index)
            ev["slices"] = given.fillna(pd.Series(whole, index=ev.index)).astype(int)
            return ev[cols]
        ev["sample_id"] = ev["sample_id"].str.rsplit(":", n=1).str[0]
        out = ev.groupby(["epoch", "sample_id", "action"], sort=False).size().rename("slices")
        return out.reset_index()[cols]


def case_scores_from_slices(slice_scores: np.ndarray, case: np.ndarray, has_structure: np.ndarray,
                            cases: np.ndarray) -> np.ndarray:
    """One score per case: the mean over its slices whose given mask holds a structure (all its
    slices when none does).

    Parameters
    ----------
    slice_scores : (S,) float ndarray
    case : (S,) int ndarray
        Case of each slice.
    has_structure : (S,) bool ndarray
        Whether each slice's given mask holds any foreground.
    cases : (M,) int ndarray
        The cases to score, in output order.
    """
    s = np.asarray(slice_scores, dtype=float)
    case, has = np.asarray(case), np.asarray(has_structure, dtype=bool)
    n = int(max(case.max(initial=0), np.max(cases, initial=0))) + 1
    any_structure = np.bincount(case, weights=has, minlength=n) > 0
    use = (has | ~any_structure[case]) & np.isfinite(s)
    total = np.bincount(case[use], weights=s[use], minlength=n)
    count = np.bincount(case[use], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)[np.asarray(cases)]


def _trusted_samples(cases: CaseDataset, ds_ids: tuple[str, ...],
                     index: SampleIndex, trusted: str | Path | Sequence[str] | None
                     ) -> tuple[str | list[str] | None, str | None]:
    """Trusted cases (a split, a file of case ids, or ids) as the trusted samples (their
    slices, or the cases themselves), with a description of where they came from."""
    if trusted is None or (isinstance(trusted, str) and trusted in SPLITS):
        return trusted, None
    case_idx, source = read_trusted(cases, trusted)  # type: ignore[arg-type]
    return [ds_ids[j] for j in np.flatnonzero(np.isin(index.case, case_idx))], source


def run_session(ds: CaseDataset, config: TrainConfig, *, dims: int = 2,
                slice_axis: int = 0, slice_size: int | None = None,
                spacing: str | Sequence[float] | None = None,
                tolerance: float = DEFAULT_TOLERANCE,
                detectors: Sequence[str] = (), refurbish: RefurbishConfig | None = None,
                flag_rule: str = "mixture", flag_value: float | None = None,
                trusted: str | Path | Sequence[str] | None = None,
                callbacks: Sequence[Callback] = ()) -> Session:
    """Train on ``ds`` (2-D images, or volumes: a 2-D network on their slices or a 3-D one on
    patches) with detectors attached; score, refurbish and evaluate per case.

    Parameters
    ----------
    ds : CaseDataset
        Training labels may be noisy; validation and test use the clean labels.
    config : TrainConfig
        On volumes sampling is class-balanced (``balanced`` is turned on: slices or volumes
        holding the rarer structures are drawn more). With ``dims=3``, ``patch_size`` (or
        the size chosen from the data) is the 3-D training patch.
    dims : {2, 3}
        A 2-D network (on images, or on the slices along ``slice_axis``, nnU-Net's ``2d``),
        or a 3-D network on patches of volumes (``3d_fullres``).
    slice_axis : int
        Volumes: the array axis of the slices (0: axial for ``(z, y, x)`` volumes), and of
        the per-slice scores either way.
    slice_size : int, optional
        ``dims=2`` on volumes: in-plane size to resize slices to (undone on every volume
        written or measured).
    spacing : 'median', sequence of 3 float, or None
        ``dims=3``: resample every case to this voxel size in mm (undone on output).
    tolerance : float
        Surface Dice tolerance in mm (volumes).
    detectors : sequence of str
        ``NAME[:key=value,...]`` with NAME in {'vog', 'vog-online', 'loss', 'cleanlab',
        'disagree'}, e.g. ``vog:normalise=rms``; results are keyed by the string as given.
        They act on the samples (slices with ``dims=2``) and are put together per case.
    refurbish : RefurbishConfig, optional
        Turn refurbishment on (needs a detector).
    flag_rule : {'mixture', 'top', 'percentile'}
    flag_value : float, optional
        Fraction for ``top``, percentile for ``percentile``.
    trusted : split name, file of case ids, or sequence of case ids, optional
        The cases whose labels are known to be right (all their slices are trusted), for
        the methods that calibrate on right masks (``disagree``, ``refurbish.calibrate``;
        see :func:`~noisyseg.run.read_trusted`). Default: the validation split, which the
        run then records (and logs) as taken to be right.
    callbacks : sequence of Callback
        Extra callbacks (e.g. a progress bar), run after the detectors.

    Returns
    -------
    Session

    Raises
    ------
    ConfigError
        Unknown or repeated detector, bad flag rule, refurbishment without a detector, a
        detector that produced no scores, a bad ``dims``, ``slice_axis``, ``slice_size``,
        ``spacing`` or ``tolerance``, or an option of the other ``dims``.

    Examples
    --------
    >>> from noisyseg.data import synthetic_echo
    >>> from noisyseg.train import TrainConfig
    >>> s = run_session(synthetic_echo(n=12, size=32, seed=0),
    ...                 TrainConfig(epochs=1, batch_size=4, threads=1, model_options={"width": 4}),
    ...                 detectors=["loss"])
    >>> s.sampling, len(s.scores["loss"]) == len(s.train_cases)
    ('images', True)
    """
    if not tolerance >= 0:
        raise ConfigError(f"tolerance: expected a distance in mm >= 0, got {tolerance!r}")
    samples, index = sample_view(ds, dims=dims, slice_axis=slice_axis,  # type: ignore[arg-type]
                                 slice_size=slice_size, spacing=spacing)
    images = index.sampling == "images"
    if not images and not config.balanced:
        config = type(config).from_dict(config.to_dict() | {"balanced": True})
    trusted_samples, source = _trusted_samples(ds, samples.sample_ids, index, trusted)
    doubted = None
    if refurbish is not None and refurbish.region == "slices":
        if index.sampling != "volumes":
            raise ConfigError("refurbish region: 'slices' picks the doubted slices of a 3-D "
                              "network's volumes (dims=3); a 2-D network on slices already "
                              "refurbishes per slice, and an image is one slice")
        doubted = _doubted_slices(index, flag_rule, flag_value, config.seed)  # type: ignore[arg-type]
    run = train_samples(samples, config, detectors=detectors, refurbish=refurbish,
                        flag_rule=flag_rule, flag_value=flag_value, trusted=trusted_samples,
                        callbacks=callbacks, spacing=None if images else index.sample_spacing,
                        doubted_slices=doubted, slice_axis=index.axis or 0)
    if run.trusted is not None and source is not None:
        run.trusted["source"] = source
    train_idx = run.train_idx
    train_cases = np.unique(index.case[train_idx])
    session = Session(run, index, train_cases, tolerance=tolerance)
    # which training cases carry simulated errors: the dataset's flags, or (volumes) the
    # samples' own (a case's mask differs from its clean one); slices flag slices, not cases
    corrupted = ds.corrupted
    if corrupted is None and index.sampling != "slices":
        corrupted = samples.corrupted
    session.truth = None if corrupted is None else np.asarray(corrupted)[train_cases]
    if index.sampling == "slices":
        _case_scores_from_slices(session, samples, flag_rule, flag_value, config.seed)
    else:  # one sample per case: the samples' scores and flags are the cases'
        for det, s in run.scores.items():
            session.scores[det] = np.asarray(s, dtype=float)
            session.flags[det] = run.flags[det]
            if session.truth is not None:
                session.detection[det] = detection_metrics(session.scores[det],
                                                           session.flags[det], session.truth)
        if index.sampling == "volumes":
            _slice_scores_from_voxels(session, samples)
    session.test_cases = np.unique(index.case[run.test_idx])
    if images:  # the samples are the cases: metrics of the whole batch, in pixels
        session.test = run.test
    else:  # per-case metrics in mm: the evaluated samples, put back on each case's grid
        rows = []
        for i in session.test_cases:
            pred = session.test_volume(int(i))
            truth = ds.read_label(int(i), clean=True)[0]
            rows.append(evaluate_masks(pred[None], truth[None], ds.class_names,
                                       spacing=index.spacing(int(i)), tolerance=tolerance))
        session.test = _merge_metrics(rows, ds.class_names)
    ref = run.refurbisher
    if ref is not None:
        session.refurbished = np.isin(train_cases, index.case[train_idx][ref.flagged])
    else:
        session.refurbished = np.zeros(len(train_cases), bool)
    return session


def _doubted_slices(index: VolumeIndex, rule: str, value: float | None, seed: int
                    ) -> Callable[[Trainer, Detector, np.ndarray], np.ndarray]:
    """``refurbish.region='slices'`` on volumes: which slices of the training volumes at
    ``positions`` the detector doubts. Every slice (along ``index.axis``, on the resampled
    case without its padding) of every training volume gets the mean of the detector's voxel
    map over it; ``rule`` flags the doubted ones among all of them, as it flags the slices
    of a 2-D network on slices. Returns ``(B, grid[axis])`` booleans (padding: never)."""
    axis = index.axis

    def doubted(trainer: Trainer, detector: Detector, positions: np.ndarray) -> np.ndarray:
        idx = trainer.train_idx.numpy()
        means = []
        for p in range(len(idx)):
            v = index.crop(int(idx[p]), detector.voxel_scores(trainer, np.array([p]))[0])
            means.append(v.mean(axis=tuple(a for a in range(v.ndim) if a != axis)))
        flags = flag(np.concatenate(means), rule, value=value, seed=seed)
        start = np.concatenate([[0], np.cumsum([len(m) for m in means])])
        out = np.zeros((len(positions), index.grid[axis]), dtype=bool)
        for k, p in enumerate(np.asarray(positions)):
            f = flags[start[p]:start[p + 1]]
            out[k, :len(f)] = f
        return out

    return doubted


def _case_scores_from_slices(vs: Session, ds: Any, flag_rule: str,
                             flag_value: float | None, seed: int) -> None:
    """A slice run's case scores, flags and detection (cases and slices)."""
    session, index = vs.samples, vs.index
    train_idx = session.train_idx
    vs.slice_case, vs.slice_position = index.case[train_idx], index.position[train_idx]
    has = np.any(ds.masks[train_idx] > 0, axis=(1, 2))
    for det, s in session.scores.items():
        vs.slice_scores[det] = np.asarray(s, dtype=float)
        vs.scores[det] = case_scores_from_slices(s, index.case[train_idx], has, vs.train_cases)
        vs.flags[det] = flag(vs.scores[det], flag_rule, value=flag_value, seed=seed)
        if vs.truth is not None:
            vs.detection[det] = detection_metrics(vs.scores[det], vs.flags[det], vs.truth)
        if ds.clean_masks is not None and ds.corrupted is not None:
            vs.slice_detection[det] = detection_metrics(s, session.flags[det],
                                                        ds.corrupted[train_idx])


def _slice_scores_from_voxels(vs: Session, ds: Any) -> None:
    """A 3-D run's per-slice scores (its detectors' voxel maps' slice means on each case's
    grid), with detection on slices when the truth is known."""
    session, index = vs.samples, vs.index
    cases, axis = vs.cases, index.axis
    detectors = session.detectors
    per_det: dict[str, list[np.ndarray]] = {det: [] for det in session.scores}
    case_of, pos_of, bad = [], [], []
    for k, i in enumerate(vs.train_cases):
        n = index.shapes[int(i)][axis]
        case_of.append(np.full(n, i))
        pos_of.append(np.arange(n))
        for det in per_det:
            voxels = detectors[det].voxel_scores(session.trainer, np.array([k]))[0]
            per_det[det].append(index.slice_means(int(i), voxels))
        if ds.clean_masks is not None:
            given = cases.read_label(int(i))[0]
            clean = cases.read_label(int(i), clean=True)[0]
            other = tuple(a for a in range(given.ndim) if a != axis)
            bad.append(np.any(given != clean, axis=other))
    vs.slice_case = np.concatenate(case_of) if case_of else np.zeros(0, np.int64)
    vs.slice_position = np.concatenate(pos_of) if pos_of else np.zeros(0, np.int64)
    truth = np.concatenate(bad) if bad else None
    for det, parts in per_det.items():
        vs.slice_scores[det] = np.concatenate(parts)
        if truth is not None and truth.any():
            rule_flags = flag(vs.slice_scores[det], "top", value=float(truth.mean()))
            vs.slice_detection[det] = detection_metrics(vs.slice_scores[det], rule_flags, truth)


def _merge_metrics(per_case: list[SegmentationMetrics], class_names: Sequence[str]) -> SegmentationMetrics:
    """One :class:`SegmentationMetrics` from per-case ones (volumes of different shapes cannot
    be stacked): class means over the cases where the class is present, means over cases."""
    rows = [m.per_sample[0] for m in per_case]
    frame = pd.DataFrame(rows)
    per_class: dict[str, dict[str, float]] = {}
    for name in per_case[0].per_class:
        keys = [k for k in ("dice", "iou", "hd95", "surface_dice") if f"{k}_{name}" in frame]
        entry: dict[str, float] = {k: float(frame[f"{k}_{name}"].mean()) for k in keys}
        entry["hd95_undefined"] = int(sum(m.per_class[name]["hd95_undefined"] for m in per_case))
        entry["n"] = int(sum(m.per_class[name]["n"] for m in per_case))
        per_class[name] = entry
    mean = {k: float(frame[k].mean()) for k in ("dice", "iou", "hd95", "surface_dice") if k in frame}
    return SegmentationMetrics(per_class, mean, [float(v) for v in frame["dice"]], rows)


def summary(session: Session) -> dict[str, Any]:
    """Build what ``metrics.json`` holds for a run (``noisyseg train``/``audit``, study trials).

    2-D images: :func:`~noisyseg.run.samples.sample_summary` of the training (its samples are
    the cases). Volumes: the same with its test metrics on the samples as ``test_slices``
    (``dims=2``) or ``test_grid`` (``dims=3``: on the common grid); ``test`` the per-case
    metrics in mm; ``detection`` on cases (``slice_detection`` on slices); the slicing or the
    grid, spacing and patch; the trusted masks named by their cases. No example: a
    :class:`Session` comes from training a network.

    Parameters
    ----------
    session : Session
        A finished run (:func:`run_session`).

    Returns
    -------
    dict of str to object
        The JSON-serialisable record.
    """
    vs = session
    out = sample_summary(vs.samples)
    if vs.sampling == "images":
        return out
    assert vs.test is not None
    grid_test = out.pop("test")
    out |= {
        "dims": vs.dims, "slice_axis": vs.index.axis,
        "n_cases": {s: int(np.sum(vs.cases.split == s)) for s in SPLITS},
        "test": vs.test.to_dict() | {"n": int(len(vs.test_cases)),
                                     "surface_dice_tolerance_mm": vs.tolerance},
        "truth_known": vs.truth is not None}
    if vs.sampling == "slices":
        out |= {"slice_size": vs.index.size, "n_slices": int(len(vs.index.case)),
                "test_slices": grid_test,
                "case_score": "mean over the slices whose given mask holds a structure"}
    else:
        index, trainer = vs.index, vs.trainer
        out |= {"grid": list(index.grid), "spacing_mm": None if index.spacing_mm is None
                else list(index.spacing_mm), "patch_size": list(trainer.patch_size),
                "inference": "sliding window (half overlap, Gaussian)" if trainer.patched
                else "whole volume",
                "test_grid": grid_test,
                "case_score": "the detector's score of the whole case",
                "slice_score": "the detector's voxel map averaged over each slice"}
    out.pop("detection", None)
    if vs.detection:
        out["detection"] = {k: v.to_dict() for k, v in vs.detection.items()}
    if vs.slice_detection:
        out["slice_detection"] = {k: v.to_dict() for k, v in vs.slice_detection.items()}
    if vs.refurbisher is not None:
        out["n_refurbished_cases"] = int(vs.refurbished.sum())
    if out.get("trusted"):  # trusted slices, named by their cases
        trusted = dict(out["trusted"])
        cases = sorted({sid.rsplit(":", 1)[0] for sid in trusted.pop("sample_ids")})
        out["trusted"] = trusted | {"cases": cases, "n_cases": len(cases)}
    return out
