"""The runs behind ``noisyseg train``, ``audit``, ``rank`` and ``audit --folds``: each runs,
writes its run folder (atomically, through :mod:`noisyseg.run.folder`) and returns a
:class:`RunResult`.

The Python API (:mod:`noisyseg.api`) and the CLI call these; what a folder holds is
documented on each function and in :mod:`noisyseg.run.folder`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from noisyseg.data import (
    CaseDataset,
    absolute_source,
    check_view,
    check_view_options,
    load_dataset,
    source_path,
)
from noisyseg.data.layouts import write_labels, write_refurbished
from noisyseg.data.outdir import atomic_dir, check_out_dir
from noisyseg.errors import ConfigError
from noisyseg.plot import display_window, plot_contour_grid, plot_volume_planes, save_figure
from noisyseg.refurbish import RefurbishConfig
from noisyseg.run.folder import (
    read_record,
    write_config,
    write_detection,
    write_record,
    write_run_json,
    write_table,
)
from noisyseg.run.rank import Ranking, rank_predictions, read_case_prediction
from noisyseg.run.session import Session, run_session, summary
from noisyseg.run.tables import ranking_tables, run_tables
from noisyseg.train import Callback, TrainConfig

__all__ = ["DEFAULT_DETECTORS", "RunResult", "VolumeView", "audit_run", "folds_run",
           "rank_run", "read_run", "train_run"]

#: ``audit``'s detectors unless told otherwise, chosen from the detection matrix
#: (docs/detection-matrix.md): per-sample loss ranks every error type on 30% of the masks at
#: AP >= 0.98 and every random one on 70% at >= 0.995; ``disagree`` is the one detector that
#: still ranks majority systematic and structural errors (AP >= 0.98 in all 18 cells), given
#: trusted masks; VOG stays near chance in every cell. The first one picks the suspects and
#: drives refurbishment.
DEFAULT_DETECTORS = ("loss", "disagree")


@dataclass(frozen=True)
class RunResult:
    """What a run wrote and measured (the same for every kind of run and every dimension).

    The constructor's parameters are the attributes below, in that order; :func:`read_run`
    and the ``*_run`` functions build it.

    Attributes
    ----------
    kind : {'train', 'audit', 'rank', 'folds', 'nnunet'}
        The kind of run.
    folder : Path
        The run folder.
    data : str
        The ``--data`` source.
    record : dict
        The run's record as written (``metrics.json`` or ``rank.json``): every setting and
        measurement, for what the fields below leave out.
    test : dict or None
        Test metrics against the clean masks (``mean`` and ``per_class``: Dice, IoU, HD95,
        surface Dice), per case in mm for volumes; None for a ranking.
    detection : dict of str to dict
        Per detector: AP, AUROC, precision, recall, F1 on the training cases (empty when the
        dataset does not say which were corrupted).
    n_flagged : dict of str to int
        Per detector, the cases it flagged.
    seen : str
        What the network trained on, in words (``"24 images"``, ``"96 slices along axis 0"``,
        ``"6 volumes on a 16x32x32 grid, patches of 16x32x32"``; a ranking: its folds).

    Examples
    --------
    >>> r = RunResult(kind="rank", folder=Path("out"), data="synthetic-echo", record={},
    ...               test=None, detection={}, n_flagged={"dice": 2}, seen="4 images")
    >>> r.kind, r.n_flagged["dice"]
    ('rank', 2)
    """

    kind: str
    folder: Path
    data: str
    record: dict[str, Any]
    test: dict[str, Any] | None = None
    detection: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_flagged: dict[str, int] = field(default_factory=dict)
    seen: str = ""

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C stopped the training early (the folder holds the best weights)."""
        return bool(self.record.get("interrupted", False))

    @property
    def truth_known(self) -> bool:
        """Whether the dataset says which cases were corrupted (``detection`` is measured)."""
        return bool(self.record.get("truth_known", False))

    @property
    def trusted(self) -> dict[str, Any] | None:
        """The masks taken to be right by the methods that calibrate on them, if any."""
        return self.record.get("trusted")


def _flag_counts(record: dict[str, Any]) -> dict[str, int]:
    if "n_flagged" in record:
        return {k: int(v) for k, v in record["n_flagged"].items()}
    return {k: int(v.get("n_flagged", 0)) for k, v in record.get("detection", {}).items()}


def _seen(kind: str, record: dict[str, Any]) -> str:
    if kind == "nnunet":
        return f"{record.get('n_cases', 0)} training cases of nnU-Net fold {record.get('fold')}"
    if kind in ("rank", "folds"):
        folds = record.get("folds") or []
        plural = "s" if len(folds) > 1 else ""
        return f"{record.get('n_cases', 0)} cases" + (
            f" from fold{plural} {', '.join(map(str, folds))}" if folds else "")
    if "slice_axis" not in record:
        return "2-D images"
    if record.get("dims") == 2:
        return f"{record['n_slices']} slices along axis {record['slice_axis']}"
    return (f"{sum(record['n_cases'].values())} volumes on a "
            f"{'x'.join(map(str, record['grid']))} grid, patches of "
            f"{'x'.join(map(str, record['patch_size']))}")


def _result(kind: str, folder: Path, record: dict[str, Any], *, seen: str | None = None
            ) -> RunResult:
    return RunResult(kind=kind, folder=Path(folder), data=str(record.get("data", "")),
                     record=record, test=record.get("test") if kind in ("train", "audit") else None,
                     detection=dict(record.get("detection") or {}),
                     n_flagged=_flag_counts(record), seen=seen or _seen(kind, record))


def read_run(folder: str | Path) -> RunResult:
    """Read back the :class:`RunResult` of a run folder from its ``run.json`` and record.

    Parameters
    ----------
    folder : str or Path
        A run folder (any kind).

    Returns
    -------
    RunResult
        What the run wrote and measured.

    Raises
    ------
    DataError
        Not a run folder, or a ``run.json`` or record that is not what noisyseg writes.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     read_run(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.DataError: run: ... is not a run folder (no run.json); ...
    """
    info, record = read_record(folder)
    return _result(info.kind, Path(folder), record)


@dataclass(frozen=True)
class VolumeView:
    """How a run sees its data: the network's dimensions, grid options and surface tolerance.

    The one declaration of these options: the CLI, the Python API and study specs (their
    ``volumes`` section) all build it. A 2-D source takes the defaults (a 2-D network, no
    resampling). The constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    dims : {2, 3}
        A 2-D network (on images, or on the slices of volumes along ``slice_axis``) or a
        3-D network on patches of volumes.
    slice_axis : int
        Array axis of the slices (0: axial for ``(z, y, x)`` volumes), and of the per-slice
        scores either way.
    slice_size : int or None
        ``dims=2`` on volumes: in-plane size of the slices.
    spacing : 'median', list of 3 float, or None
        ``dims=3``: resample every case to this voxel size in mm.
    tolerance : float
        Surface Dice tolerance in mm.

    Raises
    ------
    ConfigError
        Options that do not fit each other (:func:`~noisyseg.data.check_view_options`), a
        ``slice_axis`` that is not an integer, a negative or infinite tolerance.

    Examples
    --------
    >>> VolumeView(dims=3, spacing="median").dims
    3
    >>> VolumeView(tolerance=-1.0)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: tolerance: expected a number >= 0, got -1.0 (mm)
    """

    dims: int = 2
    slice_axis: int = 0
    slice_size: int | None = None
    spacing: str | list[float] | None = None
    tolerance: float = 1.0

    def __post_init__(self) -> None:
        if self.spacing is not None and not isinstance(self.spacing, str):
            object.__setattr__(self, "spacing", [float(v) for v in self.spacing])
        check_view_options(dims=self.dims, slice_size=self.slice_size, spacing=self.spacing)
        if isinstance(self.slice_axis, bool) or not isinstance(self.slice_axis, int):
            raise ConfigError(f"slice_axis: expected an array axis (an integer), got "
                              f"{self.slice_axis!r}")
        if not 0 <= self.tolerance < math.inf:
            raise ConfigError(f"tolerance: expected a number >= 0, got {self.tolerance} (mm)")

    def options(self) -> dict[str, Any]:
        """Keyword options of :func:`~noisyseg.run.run_session` (JSON-serialisable)."""
        return {"dims": self.dims, "slice_axis": self.slice_axis, "slice_size": self.slice_size,
                "spacing": self.spacing, "tolerance": self.tolerance}

    def check(self, ds: CaseDataset, data: str) -> None:
        """Refuse options that do not fit ``ds`` (named ``data``) before anything runs
        (:func:`~noisyseg.data.check_view`)."""
        check_view(ds, dims=self.dims, slice_size=self.slice_size, spacing=self.spacing,
                   name=data)


def _write_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    for name, df in tables.items():
        write_table(folder, name, df)


def _config_record(data: str, session: Session, view: VolumeView) -> dict[str, Any]:
    """``config.json``: the data and the training settings as run; on volumes also the view
    and the training patch."""
    trainer = session.trainer
    record = {"data": data, **trainer.config.to_dict()}
    if session.sampling != "images":
        record |= {**view.options(), "patch_size": list(trainer.patch_size)}
    return record


def _seen_by(session: Session) -> str | None:
    """What the network trained on, for 2-D images (volumes say it in their record)."""
    return f"{len(session.train_cases)} training images" if session.sampling == "images" else None


def _prediction_figure(path: Path, ds: CaseDataset, session: Session,
                       model: str) -> None:
    """``predictions.png``: 2-D images, the first eight test cases' truth against the
    prediction; volumes, the first test case in three planes."""
    metrics, test = session.test, session.test_cases
    assert metrics is not None
    if session.sampling == "images":
        k = test[:8]
        fig = plot_contour_grid(
            np.stack([ds.read_image(int(i))[0][0] for i in k]),
            [np.stack([ds.read_label(int(i), clean=True)[0] for i in k]),
             session.samples.test_pred[:8]],
            labels=("truth", "prediction"),
            titles=[f"{ds.sample_ids[i]}  Dice {metrics.per_sample_dice[j]:.3f}"
                    for j, i in enumerate(k)],
            class_names=ds.class_names,
            caption=f"{model}: test mean Dice {metrics.mean['dice']:.3f}")
        save_figure(fig, path)
        return
    i = int(test[0])
    truth, geom = ds.read_label(i, clean=True)
    fig = plot_volume_planes(ds.read_image(i)[0][0], [truth, session.test_volume(i)],
                             spacing=geom.spacing, labels=("truth", "prediction"),
                             class_names=ds.class_names,
                             window=display_window(ds.channel_names))
    trainer = session.trainer
    how = (f"on slices along axis {session.index.axis}" if session.dims == 2 else
           f"3-D on patches of {'x'.join(map(str, trainer.patch_size))}"
           if trainer.patched else "3-D on whole volumes")
    fig.suptitle(f"{model} {how}: test case {ds.sample_ids[i]}, Dice "
                 f"{metrics.per_sample[0]['dice']:.3f}", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    save_figure(fig, path)


# ---------------------------------------------------------------------- train
def train_run(*, data: str, out: str | Path, config: TrainConfig, view: VolumeView = VolumeView(),
              overwrite: bool = False, callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train on ``data``'s training masks, evaluate on clean test masks, write a run folder.

    ``out`` receives ``run.json``, ``metrics.json`` (test metrics per class and mean, config,
    seed, timing), ``config.json``, ``history.csv`` (per epoch: train loss, val Dice,
    images/s), ``model.pt`` (weights + config; loads with ``weights_only=True``),
    ``predictions/`` (the test predictions, one label file per test case in the source
    files' format, grid and geometry) and ``predictions.png``. On volumes also
    ``case_metrics.csv`` (Dice, IoU, HD95 and surface Dice per test case, in mm).
    No example: the function trains a network.

    Parameters
    ----------
    data : str
        The ``--data`` source (see :func:`~noisyseg.data.load_dataset`).
    out : str or Path
        The run folder to write (atomically).
    config : TrainConfig
        Training settings (epochs, batch size, seed, ...).
    view : VolumeView, default VolumeView()
        The network's dimensions and grid options on volumes.
    overwrite : bool, default False
        Replace a non-empty ``out``.
    callbacks : sequence of Callback, default ()
        Extra training callbacks.

    Returns
    -------
    RunResult
        ``kind='train'``, with the test metrics.

    Raises
    ------
    ConfigError
        ``out`` is, contains or lies inside an input, or is not empty without ``overwrite``;
        a bad source or option, a view that does not fit the data.
    DataError
        The dataset or a file it names cannot be read.
    """
    inputs = [source_path(data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    view.check(ds, data)
    session = run_session(ds, config, **view.options(), callbacks=callbacks)
    record: dict[str, Any] = {"data": data, "dataset": ds.summary(), **summary(session)}
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_record(tmp, "metrics.json", record)
        write_config(tmp, _config_record(data, session, view))
        _write_tables(tmp, run_tables(session))
        session.trainer.save(tmp / "model.pt")
        write_labels(tmp / "predictions", ds, session.test_cases,
                     (session.test_volume(int(i)) for i in session.test_cases))
        _prediction_figure(tmp / "predictions.png", ds, session, config.model)
        write_run_json(tmp, "train", data=data)
    return _result("train", Path(out), record, seen=_seen_by(session))


# ---------------------------------------------------------------------- audit
def audit_inputs(data: str, trusted: str | Path | Sequence[str] | None) -> list[Path | None]:
    """What an audit reads: its dataset and, when ``trusted`` names a file, that file."""
    inputs = [source_path(data)]
    if isinstance(trusted, str | Path) and Path(trusted).is_file():
        inputs.append(Path(trusted))
    return inputs


def _audit_record(data: str, flag_rule: str, flag_value: float | None,
                  refurbish: RefurbishConfig | None, detectors: Sequence[str],
                  summary: dict[str, Any]) -> dict[str, Any]:
    """An audit's ``metrics.json``: its data and flag rule, the run's summary, and the
    refurbishment settings when it refurbished."""
    record: dict[str, Any] = {"data": data, "data_resolved": absolute_source(data),
                              "flag_rule": flag_rule, "flag_value": flag_value,
                              "refurbish": refurbish is not None, **summary}
    if refurbish is not None:
        record["refurbish_config"] = refurbish.to_dict() | {
            "with": refurbish.with_detector or detectors[0]}
    return record


def audit_run(*, data: str, out: str | Path, config: TrainConfig, detectors: Sequence[str],
              refurbish: RefurbishConfig | None = None, flag_rule: str = "mixture",
              flag_value: float | None = None, n_suspects: int = 8,
              trusted: str | Path | Sequence[str] | None = None, view: VolumeView = VolumeView(),
              overwrite: bool = False, callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train once with detectors (and optionally refurbishment) attached; write an audit folder.

    ``out`` receives ``run.json``, ``scores.csv`` (``sample_id, detector, score, rank,
    flagged, corrupted``), ``score_history.csv`` (per detector and epoch),
    ``detection.json`` (when the dataset says which cases were corrupted), ``suspects.png``
    (2-D) and ``suspects/`` (top suspects: image, given mask, prediction; volumes in three
    planes through the worst slice), ``metrics.json`` (clean-test metrics, config),
    ``pseudo_labels/`` (the final network's labels of every training case, what
    ``noisyseg review`` offers in place of a given mask) and, with refurbishment,
    ``refurbished/`` and ``refurbish_events.csv``. Volumes add ``slice_scores.csv`` and
    ``case_metrics.csv``; their ``refurbished/`` is the whole dataset in its own layout
    (2-D images: every training mask as training left it).
    See :func:`noisyseg.api.run_audit` for the options. No example: the function trains a
    network.

    Parameters
    ----------
    data : str
        The ``--data`` source (see :func:`~noisyseg.data.load_dataset`).
    out : str or Path
        The run folder to write (atomically).
    config : TrainConfig
        Training settings.
    detectors : sequence of str
        In-training detectors to attach (names of :data:`DEFAULT_DETECTORS` and others).
    refurbish : RefurbishConfig, optional
        Refurbish masks while training.
    flag_rule : str, default 'mixture'
        How suspects are flagged from the scores (:func:`~noisyseg.detect.flag`).
    flag_value : float, optional
        The flag rule's value.
    n_suspects : int, default 8
        Top suspects drawn in ``suspects/``.
    trusted : str, Path or sequence of str, optional
        Masks known to be right: a split, a file of sample ids, or ids (default: the
        validation split).
    view : VolumeView, default VolumeView()
        The network's dimensions and grid options on volumes.
    overwrite : bool, default False
        Replace a non-empty ``out``.
    callbacks : sequence of Callback, default ()
        Extra training callbacks.

    Returns
    -------
    RunResult
        ``kind='audit'``, with test metrics and detection metrics when the truth is known.

    Raises
    ------
    ConfigError
        ``out`` is, contains or lies inside an input, or is not empty without ``overwrite``;
        a bad source or option, an unknown detector or flag rule, a bad ``trusted``.
    DataError
        The dataset or a file it names cannot be read.
    """
    inputs = audit_inputs(data, trusted)
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    view.check(ds, data)
    session = run_session(ds, config, **view.options(), detectors=detectors, refurbish=refurbish,
                          flag_rule=flag_rule, flag_value=flag_value, trusted=trusted,
                          callbacks=callbacks)
    record = _audit_record(data, flag_rule, flag_value, refurbish, detectors, summary(session))
    tables = run_tables(session)
    lead = detectors[0]
    top = [int(session.train_cases[j])
           for j in np.argsort(-session.scores[lead], kind="stable")[:n_suspects]]
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        _write_tables(tmp, tables)
        if session.truth is not None:
            write_detection(tmp, flag_rule=flag_rule, flag_value=flag_value,
                            detectors=session.detection, slices=session.slice_detection)
        write_record(tmp, "metrics.json", record)
        predicted = dict(session.predict_cases(top))  # the final network's labels
        position = {int(i): j for j, i in enumerate(session.train_cases)}
        slices = tables.get("slice_scores.csv")
        if slices is not None:
            slices = slices[slices["detector"] == lead]
        suspects = []
        for r, i in enumerate(top):
            j = position[i]
            tag = "" if session.truth is None else (
                " (corrupted)" if session.truth[j] else " (clean)")
            suspects.append((i, f"#{r + 1} {ds.sample_ids[i]}{tag}  {lead} "
                                f"{session.scores[lead][j]:.3f}", predicted[i]))
        write_suspects(tmp, ds, suspects, slices=slices, axis=view.slice_axis, lead=lead)
        # the final network's labels of every training case, for `noisyseg review`
        rest = [int(i) for i in session.train_cases if int(i) not in predicted]
        for i, pred in chain(predicted.items(), session.predict_cases(rest)):
            write_labels(tmp / "pseudo_labels", ds, np.array([i]), [pred])
        if session.refurbisher is not None:
            # volumes: the whole dataset, refurbished cases replaced; 2-D images: every
            # training mask as training left it
            written = (session.train_cases if session.sampling == "images"
                       else session.train_cases[session.refurbished])
            write_refurbished(tmp / "refurbished", ds, written,
                              _Volumes(session, session.final_masks(), written),
                              {"audit.json": {"data": data, "refurbish": record.get(
                                  "refurbish_config"), "n_refurbished_cases": int(
                                      session.refurbished.sum())}})
        write_run_json(tmp, "audit", data=data)
    return _result("audit", Path(out), record, seen=_seen_by(session))


class _Volumes:
    """The final label maps of cases ``cases``, built one at a time as they are written (a
    list of them would hold every volume in memory at once)."""

    def __init__(self, session: Session, final: np.ndarray, cases: np.ndarray) -> None:
        self.session, self.final, self.cases = session, final, [int(i) for i in cases]

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.session.case_volume(i, self.final) for i in self.cases)


def write_suspects(folder: Path, ds: CaseDataset,
                   suspects: Sequence[tuple[int, str, np.ndarray]], *,
                   slices: pd.DataFrame | None, axis: int, lead: str) -> None:
    """``suspects/``: one figure per suspect ``(case, title, predicted label map)``, its
    given labels against the prediction (volumes in three planes through the worst slice by
    ``slices``' scores along ``axis``); ``suspects.png``: 2-D suspects of one size in a grid.

    The one writer of the suspects of an audit, a ranking and ``audit --folds``.
    """
    (folder / "suspects").mkdir()
    imgs, given, preds, titles = [], [], [], []
    for r, (i, title, pred) in enumerate(suspects):
        sid = ds.sample_ids[i]
        labels, geom = ds.read_label(i)
        image = ds.read_image(i)[0][0]
        path = folder / "suspects" / f"{r + 1:02d}_{sid}.png"
        if labels.ndim == 3:
            s = (np.full(labels.shape[axis], np.nan) if slices is None else
                 slices.loc[slices["sample_id"] == sid].sort_values("slice")["score"].to_numpy())
            volume_suspect(ds, image, labels, pred, geom.spacing, s, axis, title, path)
            continue
        fig = plot_contour_grid(image[None].repeat(2, 0), [np.stack([labels, pred])],
                                titles=["given labels", "prediction"], labels=(title,),
                                class_names=ds.class_names)
        save_figure(fig, path)
        imgs.append(image)
        given.append(labels)
        preds.append(pred)
        titles.append(title)
    if imgs and len({a.shape for a in imgs}) == 1:
        fig = plot_contour_grid(np.stack(imgs), [np.stack(given), np.stack(preds)], titles=titles,
                                labels=("given labels", "prediction"), class_names=ds.class_names,
                                caption=f"top suspects by {lead}")
        save_figure(fig, folder / "suspects.png")


def volume_suspect(ds: Any, image: Any, labels: Any, pred: Any, spacing: tuple[float, ...],
                   slice_scores: Any, axis: int, title: str, path: Path) -> None:
    """A suspect volume in three orthogonal planes through its worst slice (highest slice
    score along ``axis`` among the slices where the given labels or the prediction hold a
    structure, so the planes show one; the middle slice when no score is finite), given
    labels against the prediction, centred in-plane on what the slice holds."""
    s = np.asarray(slice_scores, dtype=float)
    other = tuple(a for a in range(labels.ndim) if a != axis)
    seen = np.any((labels > 0) | (pred > 0), axis=other)
    if seen.any() and np.isfinite(s[seen]).any():
        s = np.where(seen, s, np.nan)
    worst = int(np.nanargmax(s)) if np.isfinite(s).any() else labels.shape[axis] // 2
    fg = np.argwhere((np.take(labels, worst, axis=axis) > 0) | (np.take(pred, worst, axis=axis) > 0))
    rest = fg.mean(0) if len(fg) else np.array([n for a, n in enumerate(labels.shape) if a != axis]) / 2
    centre = [int(v) for v in rest]
    centre.insert(axis, worst)
    fig = plot_volume_planes(image, [labels, pred], spacing=spacing,
                             labels=("given labels", "prediction"), class_names=ds.class_names,
                             centre=tuple(centre), window=display_window(ds.channel_names))
    fig.suptitle(f"{title}; planes through the worst slice ({worst}, axis {axis})", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    save_figure(fig, path)


# ---------------------------------------------------------------------- rankings
def _suspect_figures(ds: CaseDataset, ranking: Ranking, top: np.ndarray,
                     folder: Path) -> None:
    """A ranking's suspects (:func:`write_suspects`): the given labels against the
    prediction's argmax."""
    primary = ranking.primary
    truth = ranking.truth
    suspects = []
    for r, j in enumerate(top):
        i = int(ranking.index[j])
        sid = ds.sample_ids[i]
        labels, _ = ds.read_label(i)
        pred = np.argmax(read_case_prediction(ds, i, ranking.predictions[sid], labels), axis=0)
        tag = "" if truth is None else (" (corrupted)" if truth[j] else " (clean)")
        suspects.append((i, f"#{r + 1} {sid}{tag}  {primary} {ranking.scores[primary][j]:.3f}",
                         pred))
    write_suspects(folder, ds, suspects,
                   slices=ranking.slices[ranking.slices["detector"] == primary],
                   axis=ranking.config["slice_axis"], lead=primary)


def _write_ranking(folder: Path, ds: CaseDataset, ranking: Ranking,
                   record: dict[str, Any], *, pseudo_labels: bool, n_suspects: int) -> dict[str, Any]:
    """The audit folder of a ranking (shared by ``rank`` and ``audit --folds``): tables,
    ``detection.json``, ``rank.json``, suspects and, with ``pseudo_labels``, ``refurbished/``.
    Returns what ``rank.json`` holds plus the detection metrics."""
    primary = ranking.primary
    order = np.argsort(-ranking.scores[primary], kind="stable")
    flagged = np.flatnonzero(ranking.flags[primary])
    detection = ranking.detection()
    record = {**record, **ranking.config,
              "n_flagged": {d: int(f.sum()) for d, f in ranking.flags.items()},
              "truth_known": ranking.truth is not None,
              "prediction_files": {c: str(p.path.relative_to(folder))
                                   if p.path.is_relative_to(folder) else str(p.path.resolve())
                                   for c, p in ranking.predictions.items()},
              "pseudo_labels": bool(pseudo_labels)}
    _write_tables(folder, ranking_tables(ranking))
    if detection:
        write_detection(folder, flag_rule=ranking.config["flag_rule"],
                        flag_value=ranking.config["flag_value"], detectors=detection)
    write_record(folder, "rank.json", record | {"detection": detection})
    _suspect_figures(ds, ranking, order[:n_suspects], folder)
    if pseudo_labels:
        masks = []
        for j in flagged:
            i = int(ranking.index[j])
            labels, _ = ds.read_label(i)
            p = read_case_prediction(ds, i, ranking.predictions[ds.sample_ids[i]], labels)
            masks.append(np.argmax(p, axis=0).astype(np.uint8))
        write_refurbished(folder / "refurbished", ds, ranking.index[flagged], masks,
                          {"audit.json": {"data": record.get("data"), "detector": primary,
                                          "n_refurbished_cases": len(masks),
                                          "labels": "the argmax of each flagged case's "
                                                    "prediction"}})
    return record | {"detection": detection}


def rank_run(*, data: str, probs: Sequence[str | Path], out: str | Path, split: str = "all",
             detector: str = "expected-dice", flag_rule: str = "mixture",
             flag_value: float | None = None, temperature: float = 0.1, slice_axis: int = 0,
             pseudo_labels: bool = False, n_suspects: int = 8, workers: int | None = None,
             only_predicted: bool = False, overwrite: bool = False,
             progress: Any = None) -> RunResult:
    """Rank ``data``'s cases from a model's predictions (no training) and write an audit folder.

    See :func:`noisyseg.api.run_rank`; the ranking is :func:`rank_predictions`'.

    Parameters
    ----------
    data : str
        The ``--data`` source (see :func:`~noisyseg.data.load_dataset`).
    out : str or Path
        The run folder to write (atomically).
    probs : sequence of str or Path
        Folders of predictions (:func:`~noisyseg.data.find_predictions`).
    split : {'all', 'train', 'val', 'test'}, default 'all'
        Which cases to rank.
    detector : str, default 'expected-dice'
        The detector whose flags pick suspects and pseudo-labels.
    flag_rule : str, default 'mixture'
        How suspects are flagged.
    flag_value : float, optional
        The flag rule's value.
    temperature : float, default 0.1
        Softmin temperature of ``label-quality``.
    slice_axis : int, default 0
        Axis of the per-slice scores for volumes.
    pseudo_labels : bool, default False
        Also write the predictions' labels as ``pseudo_labels/``.
    n_suspects : int, default 8
        Top suspects drawn in ``suspects/``.
    workers : int, optional
        Threads reading and scoring cases (default: the CPUs available, at most 4).
    only_predicted : bool, default False
        Rank only the cases that have a prediction.
    overwrite : bool, default False
        Replace a non-empty ``out``.
    progress : callable, optional
        ``progress(i, n)``, called as cases are scored.

    Returns
    -------
    RunResult
        ``kind='rank'``, ``test`` None.

    Raises
    ------
    ConfigError
        ``out`` is, contains or lies inside an input, or is not empty without ``overwrite``;
        a bad source or option, an unknown split, detector or flag rule.
    DataError
        The dataset or a file it names cannot be read; a case without a prediction, or a
        prediction that does not fit its case.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for sid, m in zip(ds.sample_ids, ds.masks):
    ...         p = 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1
    ...         (Path(d) / "probs").mkdir(exist_ok=True)
    ...         np.save(Path(d) / "probs" / f"{sid}.npy", p)
    ...     r = rank_run(data="synthetic-echo:n=4,size=32,seed=0", probs=[Path(d) / "probs"],
    ...                  out=Path(d) / "audit", workers=1, n_suspects=2)
    ...     r.kind, read_run(r.folder).kind
    ('rank', 'rank')
    """
    inputs = [source_path(data), *probs]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data, lazy=True)
    ranking = rank_predictions(ds, probs, split=split, detector=detector,
                               flag_rule=flag_rule, flag_value=flag_value,
                               temperature=temperature, slice_axis=slice_axis,
                               workers=workers, only_predicted=only_predicted,
                               progress=progress)
    record = {"data": data, "data_resolved": absolute_source(data),
              "probs": [str(p) for p in probs]}
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        record = _write_ranking(tmp, ds, ranking, record, pseudo_labels=pseudo_labels,
                                n_suspects=n_suspects)
        write_run_json(tmp, "rank", data=data)
    return _result("rank", Path(out), record)


class Executor(Protocol):
    """What :func:`folds_run` needs of an executor (:mod:`noisyseg.study.executors`)."""

    def describe(self) -> str: ...

    def run(self, configs: Sequence[dict[str, Any]], job: Any
            ) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], dict[str, bytes]]]]: ...


def folds_run(*, data: str, out: str | Path, config: TrainConfig, folds: int, executor: Executor,
              view: VolumeView = VolumeView(), detector: str = "expected-dice",
              flag_rule: str = "mixture",
              flag_value: float | None = None, pseudo_labels: bool = False, n_suspects: int = 8,
              overwrite: bool = False, progress: Any = None) -> RunResult:
    """Audit by cross-validation (``noisyseg audit --folds K``) and write an audit folder.

    K networks, each predicting its held-out fold on ``executor``, then a ranking of the
    training cases from those out-of-fold probabilities (see
    :func:`noisyseg.api.run_crossval`). No example: the function trains K networks.

    Parameters
    ----------
    data : str
        The ``--data`` source (see :func:`~noisyseg.data.load_dataset`).
    out : str or Path
        The run folder to write (atomically).
    config : TrainConfig
        Training settings of every fold.
    folds : int
        K, the number of folds.
    executor : Executor
        Where the folds run (:func:`~noisyseg.study.make_executor`).
    view : VolumeView, default VolumeView()
        The network's dimensions and grid options on volumes.
    detector : str, default 'expected-dice'
        The detector whose flags pick suspects and pseudo-labels.
    flag_rule : str, default 'mixture'
        How suspects are flagged.
    flag_value : float, optional
        The flag rule's value.
    pseudo_labels : bool, default False
        Also write the out-of-fold labels as ``pseudo_labels/``.
    n_suspects : int, default 8
        Top suspects drawn in ``suspects/``.
    overwrite : bool, default False
        Replace a non-empty ``out``.
    progress : callable, optional
        ``progress(k, K)``, called as folds finish.

    Returns
    -------
    RunResult
        ``kind='folds'``.

    Raises
    ------
    ConfigError
        ``out`` is, contains or lies inside an input, or is not empty without ``overwrite``;
        a bad source or option; a fold that failed.
    DataError
        The dataset or a file it names cannot be read.
    """
    from noisyseg.run.crossval import fold_assignment, fold_job

    inputs = [source_path(data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    view.check(ds, data)
    fold_assignment(len(ds.indices("train")), folds, seed=config.seed)  # validates folds
    jobs = [{"data": data, "train": config.to_dict(), "fold": k, "folds": folds,
             "seed": config.seed, "view": view.options()} for k in range(folds)]
    summaries = []
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        for job, (res, files) in executor.run(jobs, job=fold_job):
            if res.get("status") != "ok":
                raise ConfigError(f"folds: fold {job['fold']} failed: {res.get('error')}")
            fold_dir = tmp / "oof" / f"fold_{job['fold']}" / "validation"  # nnU-Net's layout
            fold_dir.mkdir(parents=True)
            for name, data_bytes in files.items():
                (fold_dir / name).write_bytes(data_bytes)
            summaries.append(res)
            if progress is not None:
                progress(len(summaries), folds)
        ranking = rank_predictions(ds, [tmp / "oof"], split="train", detector=detector,
                                   flag_rule=flag_rule, flag_value=flag_value,
                                   slice_axis=view.slice_axis)
        summaries.sort(key=lambda r: r["fold"])
        write_record(tmp, "folds.json", {"folds": folds, "seed": config.seed,
                                         "config": config.to_dict(), "view": view.options(),
                                         "executor": executor.describe(), "per_fold": summaries})
        record = _write_ranking(tmp, ds, ranking, {"data": data,
                                                   "data_resolved": absolute_source(data),
                                                   "folds_run": folds},
                                pseudo_labels=pseudo_labels, n_suspects=n_suspects)
        write_run_json(tmp, "folds", data=data)
    return _result("folds", Path(out), record)
