"""The run folder: one writer and one reader for every file a run writes.

``noisyseg train``, ``audit``, ``rank`` and ``audit --folds``, the Python API and the review
app all go through these functions, so a file cannot be written in two shapes. A study trial
sends the same files back as bytes (:func:`encode_json`, :func:`encode_table`).

``run.json`` says what kind of run wrote the folder and in which format::

    {"kind": "audit", "format_version": 1, "noisyseg": "0.1.0", "data": "...",
     "record": "metrics.json", "files": ["metrics.json", "scores.csv", ...]}

``kind`` is one of :data:`RUN_KINDS`; ``record`` names the file holding the run's
measurements and settings (``metrics.json`` for a training or an audit, ``rank.json`` for a
ranking from predictions or from cross-validation; ``metrics.json`` too for the per-case
training loss of an nnU-Net fold).

Files and their writers (tables are CSV, one header line):

====================  =========================================================================
``run.json``          :func:`write_run_json` / :func:`read_run_json`
``metrics.json``      :func:`write_record` (training and audit: test metrics, config, seed)
``rank.json``         :func:`write_record` (rank and folds: options, prediction files, folds)
``config.json``       :func:`write_config` (the training config, for ``noisyseg train``)
``detection.json``    :func:`write_detection` (AP, AUROC, precision, recall per detector)
``folds.json``        :func:`write_record` (per fold: cases, best epoch, seconds)
``*.csv``             :func:`write_table` (columns in :data:`TABLES`) / :func:`read_table`
====================  =========================================================================
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.errors import DataError

__all__ = ["FORMAT_VERSION", "RECORDS", "RUN_KINDS", "TABLES", "RunInfo", "encode_json",
           "encode_run_json", "encode_table", "read_booleans", "read_json", "read_numbers", "read_record",
           "read_run_json", "read_table", "write_config", "write_detection", "write_record",
           "write_run_json", "write_table"]

#: The version of the run folder's format that this noisyseg writes and reads.
FORMAT_VERSION = 1
#: What a run folder can hold: a training, an audit (training with detectors), a ranking
#: from a model's predictions, one from noisyseg's own cross-validation, or the per-case
#: training loss of one nnU-Net fold (``noisyseg nnunet train``: ``fold_K/noisyseg/``).
RUN_KINDS = ("train", "audit", "rank", "folds", "nnunet")
#: The record file of each kind: its measurements and settings.
RECORDS = {"train": "metrics.json", "audit": "metrics.json", "rank": "rank.json",
           "folds": "rank.json", "nnunet": "metrics.json"}
#: Every table of a run folder and the columns it always has (a table may hold more:
#: ``case_metrics.csv`` has one column per metric and class, ``history.csv`` per logged value).
TABLES: dict[str, tuple[str, ...]] = {
    "scores.csv": ("sample_id", "detector", "score", "rank", "flagged", "corrupted"),
    "slice_scores.csv": ("sample_id", "slice", "detector", "score"),
    "class_scores.csv": ("sample_id", "class", "given_voxels", "predicted_voxels", "dice",
                         "expected_dice"),
    "case_metrics.csv": ("sample_id",),
    "history.csv": ("epoch",),
    "score_history.csv": ("detector", "epoch"),
    "refurbish_events.csv": ("epoch", "sample_id", "action"),
}
_JSON_FILES = ("metrics.json", "rank.json", "folds.json", "config.json", "detection.json")


@dataclass(frozen=True)
class RunInfo:
    """A run folder's ``run.json``, as :func:`read_run_json` returns it.

    The constructor's parameters (keyword-only in practice) are the attributes below.

    Attributes
    ----------
    kind : {'train', 'audit', 'rank', 'folds', 'nnunet'}
        The kind of run (:data:`RUN_KINDS`).
    format_version : int
        The run folder format version (:data:`FORMAT_VERSION` or older).
    record : str
        The file with the run's measurements and settings (``metrics.json`` or ``rank.json``).
    data : str
        The ``--data`` source the run read.
    files : tuple of str
        The files and folders the run wrote (top level), sorted.
    version : str
        The noisyseg version that wrote it.

    Examples
    --------
    >>> RunInfo(kind="rank", format_version=1, record="rank.json", data="synthetic-echo",
    ...         files=("rank.json", "scores.csv"), version="0").record
    'rank.json'
    """

    kind: str
    format_version: int
    record: str
    data: str
    files: tuple[str, ...]
    version: str


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def encode_json(record: Mapping[str, Any]) -> bytes:
    """Encode ``record`` as the JSON bytes every run-folder writer writes.

    Indented by 2, numpy numbers as floats, NaN kept as JSON's ``NaN``, a final newline.

    Parameters
    ----------
    record : mapping of str to object
        JSON-serialisable values, numpy scalars and arrays included.

    Returns
    -------
    bytes
        UTF-8 JSON text.

    Raises
    ------
    TypeError
        A value that is neither JSON-serialisable nor a numpy number or array.

    Examples
    --------
    >>> encode_json({"dice": np.float32(0.5), "n": 2})
    b'{\\n  "dice": 0.5,\\n  "n": 2\\n}\\n'
    """
    return (json.dumps(record, indent=2, default=_jsonable) + "\n").encode()


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    return float(v)  # any other number type; TypeError for what is not one


def encode_table(name: str, table: pd.DataFrame) -> bytes:
    """Encode ``table`` as the CSV bytes of the run-folder table ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`TABLES` (``'scores.csv'``, ...).
    table : pandas.DataFrame
        Holds at least the table's columns; an empty frame without columns gets a header.

    Returns
    -------
    bytes
        CSV text without the index.

    Raises
    ------
    ValueError
        ``name`` is not a run-folder table, or ``table`` lacks one of its columns (a
        writer's mistake, not the user's).

    Examples
    --------
    >>> encode_table("history.csv", pd.DataFrame({"epoch": [0, 1]}))
    b'epoch\\n0\\n1\\n'
    """
    if name not in TABLES:
        raise ValueError(f"{name}: not a run-folder table ({', '.join(TABLES)})")
    missing = [c for c in TABLES[name] if c not in table.columns]
    if missing and not (table.empty and not len(table.columns)):
        raise ValueError(f"{name}: missing columns {missing}")
    if table.empty and not len(table.columns):
        table = pd.DataFrame(columns=list(TABLES[name]))
    return table.to_csv(index=False).encode()


def write_table(folder: str | Path, name: str, table: pd.DataFrame) -> Path:
    """Write ``table`` as ``folder/name`` (one of :data:`TABLES`).

    Parameters
    ----------
    folder : str or Path
        An existing run folder.
    name : str
        A key of :data:`TABLES`.
    table : pandas.DataFrame
        The rows (see :func:`encode_table`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        See :func:`encode_table`.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_table(d, "history.csv", pd.DataFrame({"epoch": [0, 1]}))
    ...     read_table(p, ["epoch"])["epoch"].tolist()
    [0, 1]
    """
    p = Path(folder) / name
    p.write_bytes(encode_table(name, table))
    return p


def write_record(folder: str | Path, name: str, record: Mapping[str, Any]) -> Path:
    """Write a run's record (``metrics.json``, ``rank.json`` or ``folds.json``).

    Parameters
    ----------
    folder : str or Path
        An existing run folder.
    name : {'metrics.json', 'rank.json', 'folds.json'}
        The record's file name.
    record : mapping of str to object
        The measurements and settings (see :func:`encode_json`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        ``name`` is not a run record.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_record(d, "rank.json", {"n": 3}).name
    'rank.json'
    """
    if name not in ("metrics.json", "rank.json", "folds.json"):
        raise ValueError(f"{name}: not a run record")
    p = Path(folder) / name
    p.write_bytes(encode_json(record))
    return p


def write_config(folder: str | Path, config: Mapping[str, Any]) -> Path:
    """Write ``config.json``: the settings a training ran with (data, network, options)."""
    p = Path(folder) / "config.json"
    p.write_bytes(encode_json(config))
    return p


def write_detection(folder: str | Path, *, flag_rule: str, flag_value: float | None,
                    detectors: Mapping[str, Any], slices: Mapping[str, Any] | None = None) -> Path:
    """Write ``detection.json``: per detector its detection metrics on cases and slices.

    Parameters
    ----------
    folder : str or Path
        An existing run folder.
    flag_rule : str
        How samples were flagged (a description of the rule).
    flag_value : float or None
        The rule's value (a threshold or fraction), if any.
    detectors : mapping of str to object
        Detector name to its metrics on cases: an object with ``to_dict()``, or a mapping.
    slices : mapping of str to object, optional
        The same on slices; written when given and not empty.

    Returns
    -------
    Path
        ``folder/detection.json``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_detection(d, flag_rule="top", flag_value=0.1, detectors={"vog": {"auc": 0.9}}).name
    'detection.json'
    """
    def plain(m: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.to_dict() if hasattr(v, "to_dict") else dict(v) for k, v in m.items()}

    record: dict[str, Any] = {"flag_rule": flag_rule, "flag_value": flag_value,
                              "detectors": plain(detectors)}
    if slices:
        record["slices"] = plain(slices)
    p = Path(folder) / "detection.json"
    p.write_bytes(encode_json(record))
    return p


def encode_run_json(kind: str, *, data: str, files: Iterable[str]) -> bytes:
    """Encode ``run.json`` for a run of ``kind`` on ``data`` that wrote ``files``.

    A study trial sends these bytes with its other files.

    Parameters
    ----------
    kind : str
        One of :data:`RUN_KINDS`.
    data : str
        The ``--data`` source the run read.
    files : iterable of str
        Top-level names the run wrote (``run.json`` itself is left out, duplicates dropped).

    Returns
    -------
    bytes
        The JSON text (see :func:`encode_json`).

    Raises
    ------
    ValueError
        An unknown ``kind``, or ``files`` without the kind's record (:data:`RECORDS`).

    Examples
    --------
    >>> import json
    >>> rec = json.loads(encode_run_json("rank", data="synthetic-echo", files=["rank.json"]))
    >>> rec["record"], rec["files"], rec["format_version"] == FORMAT_VERSION
    ('rank.json', ['rank.json'], True)
    """
    from noisyseg import __version__

    if kind not in RUN_KINDS:
        raise ValueError(f"kind: expected one of {RUN_KINDS}, got {kind!r}")
    files = sorted(set(files) - {"run.json"})
    if RECORDS[kind] not in files:
        raise ValueError(f"a {kind} run writes {RECORDS[kind]} before run.json")
    return encode_json({"kind": kind, "format_version": FORMAT_VERSION, "noisyseg": __version__,
                        "data": data, "record": RECORDS[kind], "files": files})


def write_run_json(folder: str | Path, kind: str, *, data: str) -> Path:
    """Write ``run.json`` last: the kind of run, the format version and the files written.

    Parameters
    ----------
    folder : str or Path
        The run folder; its top-level names not starting with ``.`` are the files written.
    kind : str
        One of :data:`RUN_KINDS`.
    data : str
        The ``--data`` source the run read.

    Returns
    -------
    Path
        ``folder/run.json``.

    Raises
    ------
    ValueError
        An unknown ``kind`` or a folder without the kind's record (a writer's mistake).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = write_record(d, "rank.json", {})
    ...     _ = write_run_json(d, "rank", data="synthetic-echo")
    ...     info = read_run_json(d)
    ...     info.kind, info.files
    ('rank', ('rank.json',))
    """
    folder = Path(folder)
    files = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    p = folder / "run.json"
    p.write_bytes(encode_run_json(kind, data=data, files=files))
    return p


# ---------------------------------------------------------------------- readers
def read_json(path: str | Path) -> dict[str, Any]:
    """``path``'s JSON object; DataError when unreadable, not JSON or not an object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({_one_line(exc)})") from exc
    try:
        record = json.loads(text)
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deep)") from None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({_one_line(exc)})") from exc
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def read_run_json(folder: str | Path) -> RunInfo:
    """Read and check a run folder's ``run.json``.

    Parameters
    ----------
    folder : str or Path
        The run folder.

    Returns
    -------
    RunInfo
        The fields of ``run.json``.

    Raises
    ------
    DataError
        Not a folder, no ``run.json`` (not a run folder, or one written by a noisyseg
        before run folders carried it), an unreadable ``run.json``, an unknown kind, a newer
        format, a field of the wrong type, or a record file that is missing.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     read_run_json(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.DataError: run: ... is not a run folder (no run.json); ...
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"run: {folder} is not a folder")
    path = folder / "run.json"
    if not path.is_file():
        raise DataError(f"run: {folder} is not a run folder (no run.json); run `noisyseg "
                        f"audit`, `rank` or `train` to write one")
    rec = read_json(path)
    kind = rec.get("kind")
    if kind not in RUN_KINDS:
        raise DataError(f"{path}: kind: expected one of {', '.join(RUN_KINDS)}, got {kind!r:.60}")
    version = rec.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise DataError(f"{path}: format_version: expected a whole number, got {version!r:.60}")
    if version > FORMAT_VERSION:
        raise DataError(f"{path}: format version {version} is newer than this noisyseg reads "
                        f"({FORMAT_VERSION}); upgrade noisyseg")
    files = rec.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise DataError(f"{path}: files: expected a list of file names")
    for key in ("data", "noisyseg"):
        if not isinstance(rec.get(key, ""), str):
            raise DataError(f"{path}: {key}: expected text, got {rec.get(key)!r:.60}")
    record = RECORDS[kind]
    if not (folder / record).is_file():
        raise DataError(f"run: {folder / record} is missing (run.json says this is a {kind} "
                        f"run)")
    return RunInfo(kind=kind, format_version=version, record=record, data=rec.get("data", ""),
                   files=tuple(files), version=rec.get("noisyseg", ""))


def read_record(folder: str | Path) -> tuple[RunInfo, dict[str, Any]]:
    """A run folder's ``run.json`` and its record (``metrics.json`` or ``rank.json``)."""
    info = read_run_json(folder)
    return info, read_json(Path(folder) / info.record)


def read_table(path: str | Path, columns: Iterable[str]) -> pd.DataFrame:
    """Read a run-folder table that must hold ``columns``.

    Parameters
    ----------
    path : str or Path
        A CSV file.
    columns : iterable of str
        Columns the table must have; ``sample_id`` and ``detector``, when required, must
        not be empty on any line.

    Returns
    -------
    pandas.DataFrame
        The table, ``sample_id`` and ``detector`` read as text.

    Raises
    ------
    DataError
        Naming the file and the first problem: empty, not valid CSV (a row longer than the
        header included), unreadable, a missing column, an empty ``sample_id`` or
        ``detector``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "s.csv").write_text("sample_id,score\\n007,0.5\\n")
    ...     read_table(Path(d) / "s.csv", ["sample_id"])["sample_id"].tolist()
    ['007']
    """
    path = Path(path)
    columns = set(columns)
    try:
        with warnings.catch_warnings():  # a row longer than the header: an error, not a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, dtype={"sample_id": str, "detector": str}, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty (no header line)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a valid CSV file ({_one_line(exc)})") from exc
    missing = columns - set(table.columns)
    if missing:
        raise DataError(f"{path}: missing columns {sorted(missing)} (has {list(table.columns)[:8]})")
    for col in ("sample_id", "detector"):
        if col in columns:
            bad = table[col].isna() | (table[col].astype(str).str.strip() == "")
            if bad.any():
                raise DataError(f"{path}: column {col} is empty on line {int(bad.idxmax()) + 2}")
    return table


def read_numbers(path: str | Path, table: pd.DataFrame, col: str, *,
                 integer: bool = False) -> pd.Series:
    """Column ``col`` of a table read from ``path`` as float64 (empty cells: NaN); DataError
    naming the first cell that is not a number (not a finite whole number when ``integer``)."""
    raw = table[col]
    num = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = num.isna() & raw.notna()
    if integer:
        bad |= ~np.isfinite(num) | (num != np.round(num))
    if bad.any():
        k = bad.to_numpy().argmax()
        what = "a whole number" if integer else "a number"
        raise DataError(f"{path}: column {col} holds {raw.iloc[k]!r} on line {k + 2}, "
                        f"expected {what}")
    return num


_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def read_booleans(path: str | Path, table: pd.DataFrame, col: str, *,
                  missing_ok: bool) -> pd.Series:
    """Column ``col`` as a nullable boolean (True/False, 1/0; empty cells: NA when
    ``missing_ok``); DataError naming the first other value."""
    out = []
    for k, v in enumerate(table[col].tolist()):
        if isinstance(v, bool | np.bool_):
            out.append(bool(v))
            continue
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if missing_ok:
                out.append(None)
                continue
        else:
            t = str(v).strip().lower()
            if t in _TRUE or t in _FALSE:
                out.append(t in _TRUE)
                continue
        raise DataError(f"{path}: column {col} holds {v!r} on line {k + 2}, expected True or False")
    return pd.Series(pd.array(out, dtype="boolean"), index=table.index)
