"""Reading a model's predictions for a dataset: nnU-Net result folders, probability maps,
hard label maps.

What :func:`find_predictions` accepts (any number of paths, mixed):

- an nnU-Net v2 results folder (``{Trainer}__{Plans}__{configuration}``): its
  ``fold_X/validation/`` folders, i.e. the out-of-fold predictions of the cross-validation
  (``fold_all`` is not out-of-fold and is skipped with a warning);
- one ``fold_X`` folder or its ``validation/`` folder, or the output folder of
  ``nnUNetv2_predict --save_probabilities``;
- any folder of per-case files named by case id: ``{case}.npz`` (key ``probabilities``, as
  nnU-Net v2 writes them, or ``softmax``, nnU-Net v1, or a single array), ``{case}.npy``,
  probability images (NIfTI with classes on the 4th axis, NRRD/MetaImage vector images), or
  hard label maps (integer images, one-hot encoded on read) when that is all there is.

When a case has both probabilities and a label map (nnU-Net writes ``{case}.npz`` beside
``{case}.nii.gz``), the probabilities are used. Arrays are ``(K, *S)`` in noisyseg's axis
order (SimpleITK's, which is also the order of nnU-Net's ``.npz`` files).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyseg.data.cases import CaseDataset
from noisyseg.data.io import read_image, read_npy, read_npz, split_suffix
from noisyseg.errors import DataError

__all__ = ["PROB_KEYS", "Prediction", "find_predictions", "read_case_prediction", "read_prediction"]

log = logging.getLogger(__name__)

#: Keys of the probability array in an ``.npz`` file: nnU-Net v2, then v1.
PROB_KEYS = ("probabilities", "softmax")
_PROB_SUFFIXES = (".npz", ".npy")
_MAP_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".nhdr")
_FOLD = re.compile(r"fold_(\d+|all)$")


@dataclass(frozen=True)
class Prediction:
    """Where one case's prediction lies: ``path``, and the fold folder it came from.

    Parameters
    ----------
    case_id : str
        The case's id (the prediction file's stem).
    path : Path
        The prediction file.
    fold : str or None, default None
        The fold of the ``fold_X`` folder it lies in (``'0'``, ...), or ``None``.

    Examples
    --------
    >>> Prediction("case_0", Path("fold_1/validation/case_0.npz"), "1").fold
    '1'
    """

    case_id: str
    path: Path
    fold: str | None = None


def _fold_of(p: Path) -> str | None:
    for part in (p.parent, p.parent.parent):
        m = _FOLD.match(part.name)
        if m:
            return m.group(1)
    return None


def _listing(folder: Path) -> list[Path]:
    """The sorted entries of ``folder``; DataError naming it when it cannot be listed."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({type(exc).__name__}: "
                        f"{exc.strerror or exc})") from exc


def _files(folder: Path) -> dict[str, Path]:
    """Case id -> prediction file of one folder (probabilities win over label maps)."""
    found: dict[str, Path] = {}
    for p in _listing(folder):
        if p.name.startswith(".") or not p.is_file():
            continue
        stem, suf = split_suffix(p)
        if suf not in _PROB_SUFFIXES + _MAP_SUFFIXES:
            continue
        old = found.get(stem)
        if old is not None:
            old_prob, new_prob = split_suffix(old)[1] in _PROB_SUFFIXES, suf in _PROB_SUFFIXES
            if old_prob == new_prob:
                raise DataError(f"{p}: two prediction files for case {stem!r} ({old.name})")
            if old_prob:
                continue
        found[stem] = p
    return found


def _folders(path: Path) -> list[Path]:
    """The prediction folders a given path stands for (see module docstring)."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder of predictions")
    folds = [p for p in _listing(path) if p.is_dir() and _FOLD.match(p.name)]
    if folds:
        out = []
        for f in folds:
            if f.name == "fold_all":
                log.warning("%s: skipped (fold 'all' is trained on every case: not out-of-fold)", f)
                continue
            v = f / "validation"
            if not v.is_dir():
                raise DataError(f"{f}: no validation/ folder (run nnUNetv2_train ... --val --npz "
                                f"to write the out-of-fold probabilities)")
            out.append(v)
        if not out:
            raise DataError(f"{path}: only fold_all, which is not out-of-fold")
        return out
    if (path / "validation").is_dir():
        return [path / "validation"]
    return [path]


def find_predictions(paths: Sequence[str | Path]) -> dict[str, Prediction]:
    """Find every case's prediction file in the folders ``paths`` stand for.

    A path holding ``fold_X`` folders stands for their ``validation/`` folders (``fold_all``
    is skipped with a warning); a path holding ``validation/`` stands for it; any other
    folder stands for itself.

    Parameters
    ----------
    paths : sequence of str or Path
        Folders of predictions (see the module docstring).

    Returns
    -------
    dict of str to Prediction
        Case id (file stem) to where its prediction lies; probabilities win over a label map
        of the same case.

    Raises
    ------
    DataError
        No paths; a path that is not a folder or cannot be listed; a fold without
        ``validation/``; only ``fold_all``; a folder without prediction files; two files of
        one kind for a case; one case predicted twice (in two folds or two given folders).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     np.save(Path(d) / "case_0.npy", np.full((2, 4, 4), 0.5, np.float32))
    ...     found = find_predictions([d])
    ...     sorted(found), found["case_0"].path.name
    (['case_0'], 'case_0.npy')
    """
    if not paths:
        raise DataError("probs: give at least one folder of predictions")
    found: dict[str, Prediction] = {}
    for given in paths:
        for folder in _folders(Path(given)):
            files = _files(folder)
            if not files:
                raise DataError(f"{folder}: no prediction files (.npz, .npy, or probability / "
                                f"label images)")
            for cid, p in files.items():
                if cid in found:
                    raise DataError(f"{p}: case {cid!r} is also predicted in "
                                    f"{found[cid].path.parent} (each case needs exactly one "
                                    f"out-of-fold prediction)")
                found[cid] = Prediction(cid, p, _fold_of(p))
    return found


def _load_npz(p: Path) -> np.ndarray:
    """The ``probabilities`` (nnU-Net v2) or ``softmax`` (v1) array, or the only array."""
    return read_npz(p, PROB_KEYS)[1]


def read_prediction(path: str | Path, *, n_classes: int, shape: tuple[int, ...],
                    label_values: Sequence[int] | None = None, tol: float = 1e-3) -> np.ndarray:
    """Read one case's prediction as float32 probabilities ``(n_classes, *shape)``.

    Parameters
    ----------
    path : str or Path
        ``.npz`` / ``.npy`` probabilities ``(K, *S)``, a probability image (classes on the
        channel axis), or a hard label map (integers, one-hot encoded).
    n_classes : int
        Classes of the dataset (background included).
    shape : tuple of int
        The case's label shape, array order; singleton axes of the prediction are dropped to
        match it (nnU-Net's 2-D predictions are ``(K, 1, H, W)``).
    label_values : sequence of int, optional
        Values a hard label map stores for classes ``0..K-1`` (default ``0..K-1``).
    tol : float, default 1e-3
        Largest accepted deviation of the class sum from one (float16 files get 1e-2).

    Returns
    -------
    (n_classes, *shape) float32 ndarray
        Class probabilities; a hard label map comes back one-hot encoded.

    Raises
    ------
    DataError
        Unreadable file, wrong class count or shape, non-finite values, probabilities that
        do not sum to one (sigmoid / region-based outputs), labels outside the dataset's,
        a structured or non-numeric dtype.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     np.save(Path(d) / "c.npy", np.array([[0, 1], [1, 0]], np.uint8))
    ...     read_prediction(Path(d) / "c.npy", n_classes=2, shape=(2, 2))[1].tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    p = Path(path)
    suf = split_suffix(p)[1]
    # the readers raise DataError naming the file for anything missing, malformed or too big
    if suf == ".npz":
        arr = _load_npz(p)
    elif suf == ".npy":
        arr = read_npy(p)
    else:
        arr = read_image(p)[0]
    shape = tuple(int(v) for v in shape)
    if arr.dtype.fields is not None or arr.dtype.subdtype is not None:
        raise DataError(f"{p}: expected float probabilities or integer labels, got the "
                        f"structured dtype {arr.dtype}")
    values = list(range(n_classes)) if label_values is None else [int(v) for v in label_values]
    if (np.issubdtype(arr.dtype, np.floating) and arr.size == math.prod(shape)
            and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        if arr.size and (float(arr.min()) < 0 or float(arr.max()) > max(values)):
            raise DataError(f"{p}: label map holds values "
                            f"{sorted(set(np.unique(arr).tolist()) - set(values))[:5]} that are "
                            f"not the dataset's labels {values}")
        arr = arr.astype(np.int64)  # a label map stored as floats (CAMUS does): no class axis
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        if arr.ndim > len(shape) and arr.shape[0] == 1:
            arr = arr[0]
        arr = _squeeze_to(arr, shape, p, channels=False)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > max(values)):
            cls = None  # values outside the dataset's: no look-up table of the file's size
        else:
            lut = np.full(max(values) + 1, -1, np.int64)
            lut[values] = np.arange(n_classes)
            cls = lut[arr]
        if cls is None or (cls < 0).any():
            bad = sorted(set(np.unique(arr).tolist()) - set(values))
            raise DataError(f"{p}: label map holds values {bad[:5]} that are not the dataset's "
                            f"labels {values}")
        out = np.zeros((n_classes, *shape), np.float32)
        for c in range(n_classes):
            out[c][cls == c] = 1.0
        return out
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{p}: expected float probabilities or integer labels, got {arr.dtype}")
    if arr.ndim != len(shape) + 1:
        arr = _squeeze_to(arr, shape, p, channels=True)
    if arr.ndim != len(shape) + 1:
        raise DataError(f"{p}: prediction shape {arr.shape} has no class axis: expected "
                        f"(K, {', '.join(map(str, shape))})")
    if arr.shape[0] != n_classes:
        hint = (" (one fewer: sigmoid / region-based outputs without a background channel are "
                "not supported)" if arr.shape[0] == n_classes - 1 else "")
        raise DataError(f"{p}: {arr.shape[0]} classes, but the dataset has {n_classes}{hint}")
    arr = _squeeze_to(arr, shape, p, channels=True)
    if not np.isfinite(arr).all():
        raise DataError(f"{p}: probabilities hold NaN or infinite values")
    total = arr.sum(axis=0, dtype=np.float32)
    dev = float(np.max(np.abs(total - 1.0))) if total.size else 0.0
    limit = max(tol, 1e-2) if arr.dtype == np.float16 else tol
    if dev > limit or float(arr.min(initial=0.0)) < -limit:
        raise DataError(f"{p}: probabilities do not sum to one over the classes (off by up to "
                        f"{dev:.3g}); logits, sigmoid or region-based outputs are not supported: "
                        f"save softmax probabilities")
    return arr.astype(np.float32, copy=False)


def _squeeze_to(arr: np.ndarray, shape: tuple[int, ...], p: Path, *, channels: bool) -> np.ndarray:
    """Drop singleton spatial axes of ``arr`` so its spatial shape equals ``shape``."""
    lead = 1 if channels else 0
    spatial = arr.shape[lead:]
    if spatial == shape:
        return arr
    kept = tuple(n for n in spatial if n != 1)
    if kept == tuple(n for n in shape if n != 1):
        return arr.reshape(arr.shape[:lead] + shape)
    what = f"(K, {', '.join(map(str, shape))})" if channels else str(shape)
    raise DataError(f"{p}: prediction shape {arr.shape} does not match the case's labels: "
                    f"expected {what} in SimpleITK's (z, y, x) axis order")


def read_case_prediction(ds: CaseDataset, i: int, pred: Prediction,
                         labels: np.ndarray) -> np.ndarray:
    """Read case ``i``'s prediction as ``(K, *labels.shape)`` float32 probabilities.

    Parameters
    ----------
    ds : CaseDataset
        The dataset; ``K`` is its class count, and a hard label map stores its
        :attr:`~CaseDataset.label_values` (``0..K-1`` for samples held in memory).
    i : int
        Case index (unused: ``pred`` names the file).
    pred : Prediction
        Where the case's prediction lies.
    labels : ndarray
        The case's label map; only its shape is used.

    Returns
    -------
    (K, *labels.shape) float32 ndarray
        Class probabilities (see :func:`read_prediction`).

    Raises
    ------
    DataError
        The file does not hold a valid prediction of the case (see :func:`read_prediction`).

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=8, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     np.save(Path(d) / "c.npy", np.full((4, 8, 8), 0.25, np.float32))
    ...     read_case_prediction(ds, 0, Prediction("c", Path(d) / "c.npy"), ds.masks[0]).shape
    (4, 8, 8)
    """
    values = None if ds.samples is not None else ds.label_values
    return read_prediction(pred.path, n_classes=ds.n_classes, shape=labels.shape,
                           label_values=values)
