"""An audit folder as the review sees it: the ranked cases, their images, given masks and
pseudo-labels, read one case at a time.

Its ``run.json`` says which kind of run wrote the folder. Works on what ``noisyseg audit``
writes (``metrics.json``, ``scores.csv``, ``pseudo_labels/``:
the final network's labels) and on what ``noisyseg rank`` / ``audit --folds`` write
(``rank.json``, ``scores.csv``, ``slice_scores.csv``; the pseudo-label is the argmax of the
case's prediction file). The dataset is the one the audit recorded, read lazily, so an audit
of 10,000 images or 200 volumes opens in a moment.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.data import CaseDataset, load_dataset, parse_source
from noisyseg.data._resize import restore_mask
from noisyseg.data.io import split_suffix
from noisyseg.data.predictions import Prediction, read_case_prediction
from noisyseg.errors import DataError, NoisysegError
from noisyseg.run.folder import read_booleans as _booleans
from noisyseg.run.folder import read_json as _read_json
from noisyseg.run.folder import read_numbers as _numbers
from noisyseg.run.folder import read_run_json
from noisyseg.run.folder import read_table as _read_table

__all__ = ["AuditView", "open_audit"]

_READERS = ThreadPoolExecutor(4, thread_name_prefix="noisyseg-review-read")


@dataclass
class CaseData:
    """One case's arrays for display: ``image`` (first channel), ``given`` and ``pseudo``
    label maps on the same grid, and the voxel ``spacing`` (array order)."""

    image: np.ndarray
    given: np.ndarray
    pseudo: np.ndarray
    spacing: tuple[float, ...]


@dataclass
class AuditView:
    """An opened audit folder (see :func:`open_audit`).

    :func:`open_audit` builds it; the constructor's parameters are the attributes below.

    Attributes
    ----------
    folder : Path
        The audit folder.
    ds : CaseDataset
        The audited dataset, as recorded by the audit (or given with ``data=``).
    data : str
        Its source string.
    kind : {'audit', 'rank'}
        The kind of run that wrote the folder.
    cases : DataFrame
        One row per scored case, in the order of the primary detector's ranking: ``sample_id``,
        ``index`` (into ``ds``), ``rank``, ``score_<det>``, ``flagged_<det>`` for every
        detector, ``flagged`` (by the primary detector), ``corrupted`` (None when unknown).
    detectors : list of str
        In ``scores.csv`` order; ``primary`` first.
    primary : str
        The detector whose ranking and flags the review follows.
    slice_axis : int
        The axis ``slice_scores.csv`` numbers slices along (volumes).
    model_check : dict or None
        The audit's trust check of its final network, as ``metrics.json`` records it
        (``val_dice``: float or None, ``floor``: float, ``passed``: bool, ``message``: str);
        None when the audit has none. When ``passed`` is false its pseudo-labels are not
        worth accepting.

    Raises
    ------
    DataError
        From its methods: a sample id not in the audit, a case without a pseudo-label, an
        image that does not fit its case.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from noisyseg.data import synthetic_echo
    >>> from noisyseg.run import rank_run
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Path(tmp.name)
    >>> (d / "probs").mkdir()
    >>> for sid, m in zip(ds.sample_ids, ds.masks):
    ...     np.save(d / "probs" / f"{sid}.npy", 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1)
    >>> _ = rank_run(data="synthetic-echo:n=4,size=32,seed=0", probs=[d / "probs"], out=d / "audit",
    ...              workers=1, n_suspects=2, pseudo_labels=True)
    >>> view = open_audit(d / "audit")
    >>> view.kind, view.primary, len(view.cases), view.detectors[0] == view.primary
    ('rank', 'expected-dice', 4, True)
    >>> tmp.cleanup()
    """

    folder: Path
    ds: CaseDataset
    data: str
    kind: str
    cases: pd.DataFrame
    detectors: list[str]
    primary: str
    slice_axis: int = 0
    model_check: dict[str, Any] | None = None
    slices: dict[str, np.ndarray] = field(default_factory=dict)
    pseudo_files: dict[str, Path] = field(default_factory=dict)
    cache_size: int = 6
    _cache: OrderedDict[int, CaseData] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loading: dict[int, threading.Event] = field(default_factory=dict, repr=False)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.ds.class_names)

    @property
    def ndim(self) -> int:
        return len(self.ds.label_geometry(int(self.cases["index"].iloc[0])).shape)

    def position(self, sample_id: str) -> int:
        """Row of ``sample_id`` in :attr:`cases`; DataError when it is not a scored case."""
        pos = self._pos.get(sample_id)
        if pos is None:
            raise DataError(f"sample_id: no case {sample_id!r} in this audit")
        return pos

    def __post_init__(self) -> None:
        self._pos = {s: k for k, s in enumerate(self.cases["sample_id"])}

    def worst_slice(self, sample_id: str) -> int | None:
        """The slice (along :attr:`slice_axis`) the primary detector scores worst, if known."""
        s = self.slices.get(sample_id)
        if s is None or not np.isfinite(s).any():
            return None
        return int(np.nanargmax(s))

    # ------------------------------------------------------------------ reading
    def read_pseudo(self, i: int, given: np.ndarray) -> np.ndarray:
        """Case ``i``'s pseudo-label on the grid of its ``given`` mask."""
        sid = self.ds.sample_ids[i]
        path = self.pseudo_files.get(sid)
        if path is None:
            raise DataError(f"{self.folder}: no pseudo-label for case {sid}")
        if self.kind == "rank":
            if split_suffix(path)[1] not in (".npz", ".npy"):
                try:  # a label map: decoded directly, no one-hot probabilities in between
                    lab = self.ds.read_label_file(path)[0]
                    if lab.shape == given.shape:
                        return lab
                except DataError:
                    pass  # a probability image (classes on the channel axis)
            probs = read_case_prediction(self.ds, i, Prediction(sid, path), given)
            return np.argmax(probs, axis=0).astype(np.uint8)
        lab = self.ds.read_label_file(path)[0]
        if lab.shape != given.shape:  # a resized in-memory dataset: back to its grid
            lab = restore_mask(lab, given.shape)
        return lab

    def case(self, i: int) -> CaseData:
        """Case ``i``'s arrays (cached: the last :attr:`cache_size` cases; one read per case
        even when several requests ask for it at once)."""
        while True:
            with self._lock:
                if i in self._cache:
                    self._cache.move_to_end(i)
                    return self._cache[i]
                ev = self._loading.get(i)
                if ev is None:
                    ev = self._loading[i] = threading.Event()
                    break
            ev.wait()
        try:
            # the image, given mask and pseudo-label files are read at once (their
            # decompression releases the GIL)
            img_job = _READERS.submit(self.ds.read_image, i)
            given, geom = self.ds.read_label(i)
            pseudo_job = _READERS.submit(self.read_pseudo, i, given)
            image = np.asarray(img_job.result()[0][0], dtype=np.float32)
            pseudo = pseudo_job.result()
            if image.shape != given.shape:
                raise DataError(f"case {self.ds.sample_ids[i]}: image shape {image.shape} "
                                f"differs from its label's {given.shape}")
            data = CaseData(image, given, pseudo, tuple(geom.spacing))
            with self._lock:
                self._cache[i] = data
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return data
        finally:
            with self._lock:
                self._loading.pop(i).set()


def _model_check(path: Path, value: Any) -> dict[str, Any]:
    """The record's ``model_check``, checked: ``passed`` (bool), ``message`` (str),
    ``val_dice`` and ``floor`` (numbers or null; non-finite ones become None)."""
    where = f"{path}: model_check"
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected an object, got {type(value).__name__}")
    if not isinstance(value.get("passed"), bool):
        raise DataError(f"{where}: passed: expected true or false, got {value.get('passed')!r}")
    if not isinstance(value.get("message", ""), str):
        raise DataError(f"{where}: message: expected text, got {value.get('message')!r}")
    out: dict[str, Any] = {"passed": value["passed"], "message": value.get("message", "")}
    for key in ("val_dice", "floor"):
        v = value.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise DataError(f"{where}: {key}: expected a number or null, got {v!r}")
        out[key] = None if v is None or not math.isfinite(v) else float(v)
    return out


def _field(path: Path, record: dict[str, Any], key: str, kind: type | tuple[type, ...],
           expected: str) -> Any:
    """``record[key]`` (None when absent or null); DataError when it is not a ``kind``."""
    v = record.get(key)
    if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
        raise DataError(f"{path}: {key}: expected {expected}, got {type(v).__name__} {v!r:.60}")
    return v


def _index_folder(folder: Path) -> dict[str, Path]:
    """``{file stem: path}`` of the label files in ``folder`` (stems without any suffix)."""
    out = {}
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith("."):
            out[split_suffix(p)[0]] = p
    return out


def open_audit(folder: str | Path, *, data: str | None = None) -> AuditView:
    """Open an audit folder written by ``noisyseg audit``, ``rank`` or ``audit --folds``.

    Parameters
    ----------
    folder : str or Path
        The audit folder.
    data : str, optional
        Replaces the dataset source the audit recorded (when it has moved).

    Returns
    -------
    AuditView
        The audit, its dataset and its scored cases.

    Raises
    ------
    DataError
        Not a folder or not an audit folder (a training without detectors, one nnU-Net
        fold's losses, no ``scores.csv``), a malformed record, no recorded dataset and no
        ``data``, an unreadable dataset, no scores, a case scored twice or not in the
        dataset, cases without a pseudo-label.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from noisyseg.data import synthetic_echo
    >>> from noisyseg.run import rank_run
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Path(tmp.name)
    >>> (d / "probs").mkdir()
    >>> for sid, m in zip(ds.sample_ids, ds.masks):
    ...     np.save(d / "probs" / f"{sid}.npy", 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1)
    >>> _ = rank_run(data="synthetic-echo:n=4,size=32,seed=0", probs=[d / "probs"], out=d / "audit",
    ...              workers=1, n_suspects=2, pseudo_labels=True)
    >>> open_audit(d / "audit").data
    'synthetic-echo:n=4,size=32,seed=0'
    >>> open_audit(d / "probs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.DataError: ...
    >>> tmp.cleanup()
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"audit: {folder} is not a folder")
    info = read_run_json(folder)
    if info.kind == "train":
        raise DataError(f"audit: {folder} holds a training without detectors (run.json: kind "
                        f"train); review an audit: run `noisyseg audit` or `noisyseg rank`")
    if info.kind == "nnunet":
        raise DataError(f"audit: {folder} holds the training losses of one nnU-Net fold (run.json: "
                        f"kind nnunet); run `noisyseg rank --probs <trainer folder>`, which adds "
                        f"them as nnunet-loss, and review that")
    kind = "rank" if info.kind in ("rank", "folds") else "audit"
    record_path = folder / info.record
    scores_csv = folder / "scores.csv"
    record = _read_json(record_path)
    if not scores_csv.is_file():
        raise DataError(f"audit: {scores_csv} is missing")
    for key in ("data_resolved", "data"):
        _field(record_path, record, key, str, "a dataset source")
    _field(record_path, record, "detector", str, "a detector name")
    dets = _field(record_path, record, "detectors", list, "a list of detector names")
    files = _field(record_path, record, "prediction_files", dict, "an object of case: file")
    if files and not all(isinstance(f, str) for f in files.values()):
        raise DataError(f"{record_path}: prediction_files: expected an object of case: file path")
    try:
        slice_axis = int(_field(record_path, record, "slice_axis", (int, float, str), "an axis") or 0)
    except ValueError:
        raise DataError(f"{record_path}: slice_axis: expected an axis 0..2, got "
                        f"{record.get('slice_axis')!r:.60}") from None
    if not 0 <= slice_axis <= 2:
        raise DataError(f"{record_path}: slice_axis: expected an axis 0..2, got {slice_axis}")
    check = record.get("model_check")
    model_check = None if check is None else _model_check(record_path, check)
    spec = data or record.get("data_resolved") or record.get("data")
    if not spec:
        raise DataError(f"audit: {folder} does not say which dataset it audited; pass data=")
    try:
        name, path, opts = parse_source(spec)
        if name == "folder" and "size" in opts:  # reviewed on the files' own grid
            spec = ",".join([str(path)] + [f"{k}={v}" for k, v in opts.items() if k != "size"])
        ds = load_dataset(spec, lazy=True)
    except NoisysegError as exc:
        hint = "" if data else " (the audit's dataset moved? name it with data=)"
        raise DataError(f"{exc}{hint}") from exc
    scores = _read_table(scores_csv, {"sample_id", "detector", "score", "flagged"})
    if scores.empty:
        raise DataError(f"{scores_csv}: no scores")
    scores["score"] = _numbers(scores_csv, scores, "score")
    scores["flagged"] = _booleans(scores_csv, scores, "flagged", missing_ok=False)
    if "corrupted" in scores.columns:
        scores["corrupted"] = _booleans(scores_csv, scores, "corrupted", missing_ok=True)
    twice = scores.duplicated(["sample_id", "detector"])
    if twice.any():
        k = int(twice.to_numpy().argmax())
        raise DataError(f"{scores_csv}: case {scores['sample_id'].iloc[k]!r} is scored twice by "
                        f"{scores['detector'].iloc[k]!r} (line {k + 2})")
    detectors = list(dict.fromkeys(scores["detector"]))
    names = [d for d in (dets or []) if isinstance(d, str)]
    primary = str(record.get("detector") or (names or detectors)[0])
    if primary not in detectors:
        primary = detectors[0]
    detectors.remove(primary)
    detectors.insert(0, primary)
    wide = scores.pivot(index="sample_id", columns="detector", values="score")
    # a case a detector did not score is not flagged by it
    flags = scores.pivot(index="sample_id", columns="detector", values="flagged")
    flags = flags.fillna(False).astype(bool)
    pos = {s: i for i, s in enumerate(ds.sample_ids)}
    unknown = [s for s in wide.index if s not in pos]
    if unknown:
        raise DataError(f"{scores_csv}: case {unknown[0]!r} is not in {spec} "
                        f"({len(unknown)} unknown); is it the audited dataset?")
    order = wide[primary].sort_values(ascending=False, kind="stable").index
    cases = pd.DataFrame({"sample_id": list(order), "index": [pos[s] for s in order]})
    cases["rank"] = np.arange(1, len(cases) + 1)
    for det in detectors:
        cases[f"score_{det}"] = wide.loc[order, det].to_numpy(dtype=float)
        cases[f"flagged_{det}"] = flags.loc[order, det].to_numpy(dtype=bool)
    cases["flagged"] = cases[f"flagged_{primary}"]
    truth = None
    if "corrupted" in scores.columns:
        t = scores[scores["detector"] == primary].set_index("sample_id")["corrupted"].reindex(order)
        if t.notna().all():
            truth = t.astype(bool).to_numpy()
    cases["corrupted"] = pd.array([None] * len(cases) if truth is None else truth, dtype="boolean")

    if kind == "rank":
        files = files or {}
        # inside the audit folder (audit --folds' oof/) or absolute; older audits: the cwd's
        pseudo = {c: folder / p if (folder / p).exists() else Path(p) for c, p in files.items()}
    else:
        pdir = folder / "pseudo_labels"
        if not pdir.is_dir():
            raise DataError(f"audit: {pdir} is missing (an audit from before noisyseg wrote "
                            f"pseudo-labels: run the audit again)")
        pseudo = _index_folder(pdir)
    lacking = [s for s in cases["sample_id"] if s not in pseudo]
    if lacking:
        raise DataError(f"audit: no pseudo-label for case {lacking[0]!r} ({len(lacking)} cases)")

    slices: dict[str, np.ndarray] = {}
    sl_csv = folder / "slice_scores.csv"
    if sl_csv.is_file():
        sl = _read_table(sl_csv, {"sample_id", "detector", "slice", "score"})
        sl["slice"] = _numbers(sl_csv, sl, "slice", integer=True)
        sl["score"] = _numbers(sl_csv, sl, "score")
        sl = sl[sl["detector"] == primary].sort_values(["sample_id", "slice"])
        for sid, g in sl.groupby("sample_id", sort=False):
            if len(g) > 1:
                slices[str(sid)] = g["score"].to_numpy(dtype=float)
    return AuditView(folder=folder, ds=ds, data=spec, kind=kind, cases=cases, detectors=detectors,
                     primary=primary, slice_axis=slice_axis, model_check=model_check,
                     slices=slices, pseudo_files=pseudo)
