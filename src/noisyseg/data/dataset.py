"""The one in-memory dataset representation every stage works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from noisyseg._validate import check_labels_in
from noisyseg.data.io import Geometry
from noisyseg.errors import DataError

__all__ = ["SPLITS", "Samples", "random_split", "read_corrupted", "read_split"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Samples:
    """A segmentation dataset held in memory: images, masks, class names, ids and split.

    N samples on one grid, 2-D images ``(N, H, W)`` or volumes ``(N, D, H, W)`` (volumes of
    different grids are brought to one by :func:`~noisyseg.data.volume_dataset`). The
    constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    images : (N, *S) float32 ndarray
        Raw intensities (no normalisation applied; the trainer normalises per image);
        ``S`` is ``(H, W)`` or ``(D, H, W)``.
    masks : (N, *S) uint8 ndarray
        The masks used for training: possibly noisy.
    class_names : tuple of str
        ``class_names[k]`` names label ``k``; label 0 is the background.
    sample_ids : tuple of str
        Unique id per sample (file stem for folder data).
    split : (N,) ndarray of str
        ``"train"``, ``"val"`` or ``"test"`` per sample.
    clean_masks : (N, *S) uint8 ndarray or None
        The truth when ``masks`` carries simulated errors (a folder written by
        ``noisyseg corrupt``); ``None`` when the masks are the truth.
    corrupted : (N,) bool ndarray or None
        Which samples carry simulated errors, when known.
    source : str
        The source string the dataset was loaded from.
    meta : dict
        Free-form provenance (options used, spacing, ...), JSON-serialisable.
    geometry : tuple of Geometry, or None
        Per sample, the grid of its source files (path of the image file, label dtype of
        the mask file): writers put masks back on it (undoing any resizing) with the source
        header, so they overlay the source image. None for generated data.

    Raises
    ------
    DataError
        Images and masks not of one ``(N, H, W)`` or ``(N, D, H, W)`` shape; geometries,
        images, ids and split entries of different counts; ids not unique; fewer than 2
        classes; a split name not in :data:`SPLITS`; mask labels outside the classes; clean
        masks of another shape or with labels outside the classes.

    Examples
    --------
    >>> s = Samples(images=np.zeros((3, 4, 4), np.float32), masks=np.zeros((3, 4, 4), np.uint8),
    ...             class_names=("background", "lv"), sample_ids=("a", "b", "c"),
    ...             split=np.array(["train", "val", "test"]))
    >>> s.n_classes, s.shape, s.indices("val").tolist()
    (2, (4, 4), [1])
    """

    images: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]
    sample_ids: tuple[str, ...]
    split: np.ndarray
    clean_masks: np.ndarray | None = None
    corrupted: np.ndarray | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    geometry: tuple[Geometry, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.sample_ids)
        if self.images.ndim not in (3, 4) or self.masks.shape != self.images.shape:
            raise DataError(f"{self.source or 'dataset'}: images {self.images.shape} and masks "
                            f"{self.masks.shape} must both be (N, H, W) or (N, D, H, W) of equal "
                            f"shape")
        if self.geometry is not None and len(self.geometry) != n:
            raise DataError(f"{self.source or 'dataset'}: {len(self.geometry)} geometries for {n} "
                            f"samples")
        if self.images.shape[0] != n or len(self.split) != n:
            raise DataError(f"{self.source or 'dataset'}: {self.images.shape[0]} images, {n} ids "
                            f"and {len(self.split)} split entries do not match")
        if len(set(self.sample_ids)) != n:
            raise DataError(f"{self.source or 'dataset'}: sample ids are not unique")
        if len(self.class_names) < 2:
            raise DataError(f"{self.source or 'dataset'}: need at least 2 classes "
                            f"(background and one structure), got {self.class_names}")
        bad = set(np.unique(self.split).tolist()) - set(SPLITS)
        if bad:
            raise DataError(f"{self.source or 'dataset'}: unknown split names {sorted(bad)}; "
                            f"expected {SPLITS}")
        check_labels_in(self.masks, self.n_classes, name=self.source or "masks")
        if self.clean_masks is not None:
            if self.clean_masks.shape != self.masks.shape:
                raise DataError(f"{self.source or 'dataset'}: clean masks {self.clean_masks.shape}"
                                f" differ in shape from masks {self.masks.shape}")
            check_labels_in(self.clean_masks, self.n_classes, name=self.source or "clean masks")

    # ------------------------------------------------------------------ views
    @property
    def n_classes(self) -> int:
        """Number of classes including the background."""
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, ...]:
        """Sample size in pixels: ``(H, W)``, or ``(D, H, W)`` for volumes."""
        return tuple(int(v) for v in self.images.shape[1:])

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes."""
        return self.images.ndim - 1

    def __len__(self) -> int:
        return len(self.sample_ids)

    def indices(self, split: str) -> np.ndarray:
        """Integer indices of the samples in ``split``."""
        if split not in SPLITS:
            raise DataError(f"split: expected one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.split == split)

    @property
    def truth(self) -> np.ndarray:
        """The clean masks when known, else the masks themselves."""
        return self.masks if self.clean_masks is None else self.clean_masks

    @property
    def has_clean_labels(self) -> bool:
        """Whether the samples carry clean masks beside their (noisy) training masks."""
        return self.clean_masks is not None

    # -------------------------------------------- case access, as for a CaseDataset
    def read_label(self, i: int, *, clean: bool = False) -> tuple[np.ndarray, Geometry]:
        """Sample ``i``'s mask (the clean one with ``clean=True`` when known) and its grid.

        The same call as :meth:`CaseDataset.read_label`, so code that goes through a dataset
        one case at a time takes either. The geometry is the array's own grid (the source
        file's, rescaled when the dataset was resized).
        """
        m = self.truth[i] if clean else self.masks[i]
        return m, self.label_geometry(i)

    def read_label_file(self, path: str | Path) -> tuple[np.ndarray, Geometry]:
        """A label file written for this dataset (a prediction, refurbished or pseudo-label
        of ``noisyseg``, stored with the dataset's mask scale, e.g. a 0/255 PNG) as uint8
        class indices on the dataset's grid (resized by nearest neighbour when the dataset
        was resized), with that grid: the same call as
        :meth:`CaseDataset.read_label_file`.

        Raises
        ------
        DataError
            Unreadable file, not one value per pixel, non-integer values, or values that are
            not class indices.
        """
        from noisyseg.data._resize import restore_mask
        from noisyseg.data.io import read_image

        arr, _ = read_image(path)
        if arr.ndim != len(self.shape):
            raise DataError(f"{path}: a label map holds one value per pixel; got an array of "
                            f"shape {arr.shape}")
        if np.issubdtype(arr.dtype, np.floating) and not (
                np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise DataError(f"{path}: label map holds non-integer values")
        lab = np.asarray(arr, dtype=np.int64) // max(int(self.meta.get("mask_scale", 1)), 1)
        if lab.size and (int(lab.min()) < 0 or int(lab.max()) >= self.n_classes):
            raise DataError(f"{path}: labels {int(lab.min())}..{int(lab.max())} are not class "
                            f"indices 0..{self.n_classes - 1}")
        lab = lab.astype(np.uint8)
        if lab.shape != self.shape:  # a resized dataset: back to its grid
            lab = restore_mask(lab, self.shape)
        return lab, Geometry.from_spacing(self.shape)

    def read_image(self, i: int) -> tuple[np.ndarray, Geometry]:
        """Sample ``i``'s image as float32 ``(1, H, W)`` with its grid."""
        return self.images[i][None].astype(np.float32, copy=False), self.label_geometry(i)

    def label_geometry(self, i: int) -> Geometry:
        """The grid of sample ``i``'s arrays (see :meth:`read_label`)."""
        if self.geometry is None:
            return Geometry.from_spacing(self.shape)
        return self.geometry[i].with_shape(self.shape)

    def subset(self, index: np.ndarray | str) -> Samples:
        """A new dataset with the samples at ``index`` (or of the split named ``index``)."""
        idx = self.indices(index) if isinstance(index, str) else np.asarray(index)
        return replace(
            self,
            images=self.images[idx],
            masks=self.masks[idx],
            sample_ids=tuple(self.sample_ids[i] for i in idx),
            split=self.split[idx],
            clean_masks=None if self.clean_masks is None else self.clean_masks[idx],
            corrupted=None if self.corrupted is None else self.corrupted[idx],
            geometry=None if self.geometry is None else tuple(self.geometry[i] for i in idx),
        )

    def with_split(self, split: np.ndarray) -> Samples:
        """A copy whose samples are in the splits ``split`` (one name per sample)."""
        return replace(self, split=np.asarray(split))

    def with_masks(self, masks: np.ndarray, *, corrupted: np.ndarray | None = None,
                   **meta: Any) -> Samples:
        """A copy whose training masks are ``masks``; the current truth becomes ``clean_masks``."""
        return replace(self, masks=np.asarray(masks, dtype=np.uint8), clean_masks=self.truth,
                       corrupted=corrupted, meta={**self.meta, **meta})

    def summary(self) -> dict[str, Any]:
        """Counts per split and class frequencies, JSON-serialisable."""
        freq = np.bincount(self.truth.ravel(), minlength=self.n_classes) / max(self.truth.size, 1)
        return {
            "source": self.source,
            "n": len(self),
            "size": list(self.shape),
            "splits": {s: int(np.sum(self.split == s)) for s in SPLITS},
            "class_names": list(self.class_names),
            "class_fraction": [round(float(f), 5) for f in freq],
            "has_clean_masks": self.clean_masks is not None,
        }


def random_split(n: int, *, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 rng: np.random.Generator) -> np.ndarray:
    """Assign ``n`` samples to train/val/test at random in the given proportions.

    Every split gets at least one sample when ``n >= 3``; below that all are ``'train'``.

    Parameters
    ----------
    n : int
        Number of samples.
    fractions : tuple of 3 float, default (0.7, 0.15, 0.15)
        Train, val and test proportions; val and test are rounded, train takes the rest
        (the train fraction itself is not read).
    rng : numpy.random.Generator
        Source of the permutation.

    Returns
    -------
    (n,) ndarray of str
        ``'train'``, ``'val'`` or ``'test'`` per sample.

    Examples
    --------
    >>> split = random_split(10, rng=np.random.default_rng(0))
    >>> sorted(split.tolist()).count("val"), sorted(split.tolist()).count("train")
    (2, 6)
    """
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
    labels = np.array(["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)
    return labels[rng.permutation(n)]


def _read_table(f: Path, columns: tuple[str, ...]) -> Any:
    """``f`` as a DataFrame of strings (empty fields ``""``, no NA guessing), or DataError."""
    import pandas as pd

    try:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{f}: empty file; expected a header with columns "
                        f"{', '.join(columns)}") from exc
    except (ValueError, OSError) as exc:  # ParserError, UnicodeDecodeError, a folder
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{f}: cannot parse CSV ({first})") from exc
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the first column as an index
        raise DataError(f"{f}: cannot parse CSV (rows hold more fields than the header "
                        f"{', '.join(map(str, df.columns))})")
    return df


def _rows(f: Path, df: Any, ids: list[str], column: str) -> dict[str, tuple[int, str]]:
    """``sample_id -> (line, value of column)`` for a table that lists every sample of
    ``ids`` once and no other sample."""
    known = set(ids)
    table: dict[str, tuple[int, str]] = {}
    for j, (sid, value) in enumerate(zip(df["sample_id"], df[column], strict=True)):
        line, sid = j + 2, str(sid).strip()  # line 1 is the header
        if not sid:
            raise DataError(f"{f}: line {line}: empty sample_id")
        if sid in table:
            raise DataError(f"{f}: sample {sid!r} is listed twice (lines {table[sid][0]} and "
                            f"{line})")
        if sid not in known:
            example = f", e.g. {ids[0]!r}" if ids else ""
            raise DataError(f"{f}: line {line}: {sid!r} is not a sample of this dataset "
                            f"({len(ids)} samples{example})")
        table[sid] = (line, str(value).strip())
    missing = [i for i in ids if i not in table]
    if missing:
        raise DataError(f"{f}: no {column} for sample {missing[0]!r} ({len(missing)} missing)")
    return table


def read_split(ids: list[str], *folders: Path, seed: int = 0) -> np.ndarray:
    """Split of each sample from the first ``split.csv`` (``sample_id, split``) among
    ``folders``; without one, 70/15/15 at random (seeded).

    The file must list every sample once, and no other: a split written for another
    dataset is refused rather than half applied.

    Raises
    ------
    DataError
        An empty or unparsable file, a missing column, a sample missing, listed twice or
        unknown, or an unknown split name; naming the file and the line.
    """
    for f in (Path(d) / "split.csv" for d in folders):
        if not f.is_file():
            continue
        df = _read_table(f, ("sample_id", "split"))
        if not {"sample_id", "split"} <= set(df.columns):
            raise DataError(f"{f}: needs columns sample_id and split, found {list(df.columns)}")
        table = _rows(f, df, ids, "split")
        for sid in ids:
            line, split = table[sid]
            if not split:
                raise DataError(f"{f}: line {line}: no split for sample {sid!r}")
            if split not in SPLITS:
                raise DataError(f"{f}: line {line}: unknown split {split!r} for sample {sid!r}; "
                                f"expected one of {SPLITS}")
        return np.array([table[i][1] for i in ids])
    return random_split(len(ids), rng=np.random.default_rng(seed))


def read_corrupted(ids: list[str], *folders: Path) -> np.ndarray | None:
    """Which samples carry simulated errors, from the first ``manifest.csv`` with a
    ``corrupted`` column among ``folders`` (what ``noisyseg corrupt`` writes); None without.

    Raises
    ------
    DataError
        An empty or unparsable file, a sample missing, listed twice or unknown, or a
        ``corrupted`` value other than True or False; naming the file and the line.
    """
    for f in (Path(d) / "manifest.csv" for d in folders):
        if not f.is_file():
            continue
        df = _read_table(f, ("sample_id", "corrupted"))
        if not {"sample_id", "corrupted"} <= set(df.columns):
            return None
        table = _rows(f, df, ids, "corrupted")
        out = np.zeros(len(ids), dtype=bool)
        for k, sid in enumerate(ids):
            line, value = table[sid]
            if value.lower() not in ("true", "false"):
                raise DataError(f"{f}: line {line}: corrupted is {value!r} for sample {sid!r}; "
                                f"expected True or False")
            out[k] = value.lower() == "true"
        return out
    return None
