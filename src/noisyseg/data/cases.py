"""Case datasets: images and masks of any dimension, read one case at a time.

A :class:`CaseDataset` lists its cases (files, or a generator) and reads each on demand, so a
dataset larger than memory can be streamed through ``noisyseg corrupt``. Uncompressed NIfTI
files are memory-mapped by nibabel; nothing else is held between reads. It is also a
MONAI-style dataset: ``ds[i]`` is ``{"image": (C, *S) float32, "label": (*S) uint8,
"case_id": str, "geometry": Geometry}``, so it can be wrapped by ``monai.data.CacheDataset``
or ``PersistentDataset`` for training.

Layouts (see :func:`load_nnunet`, :func:`load_msd`, :func:`~noisyseg.data.load_folder`):

- nnU-Net v2 raw: ``dataset.json`` (``channel_names``, ``labels`` name -> int,
  ``numTraining``, ``file_ending``), ``imagesTr/{case}_{XXXX}{file_ending}`` (one file per
  channel), ``labelsTr/{case}{file_ending}``;
- Medical Segmentation Decathlon: ``dataset.json`` (``training: [{image, label}]``,
  ``labels`` int -> name, ``modality``), 4-D multi-modal images;
- noisyseg's folder layout with volumes: ``images/``, ``masks/`` (, ``masks_clean/``).

Labels are mapped to ``0..K-1`` in the order of their values (a Decathlon or BraTS dataset with
labels 0, 1, 2, 4 gives classes 0..3); writers map them back (:meth:`CaseDataset.encode`).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from noisyseg._validate import check_seed
from noisyseg.data.dataset import SPLITS, Samples, read_corrupted, read_split
from noisyseg.data.folder import (
    binary_255_values,
    check_file_name,
    check_same_grid,
    index_folder,
    pair_folder,
    read_grid,
    show_path,
)
from noisyseg.data.io import SUFFIXES, Geometry, read_header, read_image, split_suffix
from noisyseg.errors import DataError

__all__ = ["Case", "CaseDataset", "load_msd", "load_nnunet", "read_folder_cases"]

log = logging.getLogger(__name__)

Generator = Callable[[int], tuple[np.ndarray, np.ndarray, Geometry]]


@dataclass(frozen=True)
class Case:
    """One case: its id, image file(s) (one per channel, or one multi-channel file), label file.

    Parameters
    ----------
    case_id : str
        Unique id of the case within its dataset.
    images : tuple of str
        Image files, one per channel or one multi-channel file (empty when generated).
    label : str or None
        Label file (``None`` when generated).
    split : {'train', 'val', 'test'}, default 'train'
        The case's split.
    clean_label : str or None, default None
        Label file of the truth when ``label`` carries simulated errors.

    Examples
    --------
    >>> Case("c0", ("imagesTr/c0_0000.nii.gz",), "labelsTr/c0.nii.gz", "val").split
    'val'
    """

    case_id: str
    images: tuple[str, ...]
    label: str | None
    split: str = "train"
    clean_label: str | None = None


@dataclass(eq=False)
class CaseDataset:
    """Cases of a segmentation dataset of any dimension, read on demand.

    The constructor's parameters are the attributes below, in that order; a loader
    (:func:`load_nnunet`, :func:`load_msd`, :func:`~noisyseg.data.load_folder`, ...) or
    :meth:`from_samples` builds one.

    Attributes
    ----------
    cases : tuple of Case
        The cases, in order.
    class_names : tuple of str
        ``class_names[k]`` names label ``k`` (after mapping, see ``label_values``).
    layout : {'nnunet', 'msd', 'folder', 'synthetic-ct'}
        The layout read, and the one :func:`noisyseg.corrupt.corrupt_cases` writes back.
    root : Path or None
        The dataset folder (None when generated).
    label_values : tuple of int
        The value stored in the files for each class (``label_values[k]`` for class k).
    channel_names : tuple of str
        One name per image channel (default ``('image',)``).
    source : str
        The ``--data`` string.
    corrupted : (N,) bool ndarray or None
        Which cases carry simulated errors (a dataset written by ``noisyseg corrupt``).
    meta : dict
        The layout's own metadata (``dataset.json``), options used.
    generator : callable, optional
        ``generator(i) -> (image (C, *S), label (*S), Geometry)`` for generated datasets.
    samples : Samples, optional
        Every case held in memory on one grid (:meth:`from_samples`): the cache policy of
        the 2-D sources (``synthetic-echo``, ``camus:``, a folder of 2-D images). Cases are
        then read from it, and its arrays are the dataset's own (:attr:`images`,
        :attr:`masks`, :attr:`truth`, ...).

    Raises
    ------
    DataError
        Class names and label values of different counts; fewer than 2 or more than 255
        classes; label values not distinct integers from 0 to ``MAX_LABEL_VALUE``; case ids
        not unique; no cases; and what the checks of the remaining fields refuse.

    Examples
    --------
    >>> from noisyseg.data import synthetic_ct
    >>> ds = synthetic_ct(n=2, size=32, slices=8, seed=0)
    >>> len(ds), ds.layout, ds.label_values
    (2, 'synthetic-ct', (0, 1, 2, 3))
    """

    cases: tuple[Case, ...]
    class_names: tuple[str, ...]
    layout: str
    root: Path | None = None
    label_values: tuple[int, ...] | None = None
    channel_names: tuple[str, ...] = ("image",)
    source: str = ""
    corrupted: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    generator: Generator | None = None
    samples: Samples | None = None

    def __post_init__(self) -> None:
        if self.label_values is None:
            self.label_values = tuple(range(len(self.class_names)))
        if len(self.label_values) != len(self.class_names):
            raise DataError(f"{self.source}: {len(self.class_names)} class names but "
                            f"{len(self.label_values)} label values")
        if len(self.class_names) < 2:
            raise DataError(f"{self.source}: need at least 2 classes (background and one "
                            f"structure), got {self.class_names}")
        if len(self.class_names) > 255:
            raise DataError(f"{self.source}: {len(self.class_names)} classes; at most 255 are "
                            f"supported (masks are uint8 class indices)")
        values = [int(v) for v in self.label_values]
        if len(set(values)) != len(values) or min(values) < 0 or max(values) > MAX_LABEL_VALUE:
            raise DataError(f"{self.source}: label values {values[:8]} must be distinct integers "
                            f"from 0 to {MAX_LABEL_VALUE}")
        ids = [c.case_id for c in self.cases]
        self._ids = tuple(ids)  # cases are fixed: ids and split are looked up per case
        self._split = np.array([c.split for c in self.cases])
        self._split.flags.writeable = False
        if len(set(ids)) != len(ids):
            dup = next(i for i, n in Counter(ids).items() if n > 1)
            raise DataError(f"{self.source}: case ids are not unique ({dup!r} appears twice)")
        if not self.cases:
            raise DataError(f"{self.source}: no cases found")
        lut = np.full(max(max(self.label_values) + 1, 256), 255, dtype=np.uint8)
        for k, v in enumerate(self.label_values):
            lut[v] = k
        self._lut = lut
        self._encode = np.asarray(self.label_values, dtype=np.int64)
        self._cached = lru_cache(maxsize=2)(self._generate) if self.generator else None

    @classmethod
    def from_samples(cls, samples: Samples, *, root: Path | None = None) -> CaseDataset:
        """The dataset whose cases are the samples of ``samples``, held in memory.

        Each sample is a case of its own (a 2-D image with two spatial dimensions), in the
        ``folder`` layout that :func:`~noisyseg.data.write_folder` writes; 0/255 masks keep
        their stored values (``label_values`` ``(0, 255)``).

        Examples
        --------
        >>> from noisyseg.data import synthetic_echo
        >>> ds = synthetic_echo(n=4, size=32, seed=0)
        >>> ds.samples is not None, ds.shape, ds.read_label(1)[0].shape
        (True, (32, 32), (32, 32))
        """
        geoms = samples.geometry or (None,) * len(samples)
        cases = tuple(Case(sid, (g.path,) if g is not None and g.path else (), None, str(s))
                      for sid, s, g in zip(samples.sample_ids, samples.split, geoms, strict=True))
        values = (0, 255) if int(samples.meta.get("mask_scale", 1)) == 255 else None
        return cls(cases, samples.class_names, "folder", root=root, label_values=values,
                   source=samples.source, corrupted=samples.corrupted, meta=samples.meta,
                   samples=samples)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.cases)

    def _memory(self) -> Samples:
        if self.samples is None:
            raise DataError(f"{self.source}: cases are read one at a time, not held in memory; "
                            f"noisyseg.data.sample_view(ds) gives the samples a network trains on")
        return self.samples

    @property
    def images(self) -> np.ndarray:
        """``(N, *S)`` images of a dataset held in memory (see :attr:`samples`)."""
        return self._memory().images

    @property
    def masks(self) -> np.ndarray:
        """``(N, *S)`` uint8 training masks of a dataset held in memory."""
        return self._memory().masks

    @property
    def clean_masks(self) -> np.ndarray | None:
        """The clean masks of a dataset held in memory, when known."""
        return self._memory().clean_masks

    @property
    def truth(self) -> np.ndarray:
        """The clean masks of a dataset held in memory when known, else its masks."""
        return self._memory().truth

    @property
    def shape(self) -> tuple[int, ...]:
        """The one grid of a dataset held in memory."""
        return self._memory().shape

    @property
    def spatial_dims(self) -> int:
        """Spatial dimensions of a dataset held in memory (2 for images)."""
        return self._memory().spatial_dims

    @property
    def geometry(self) -> tuple[Geometry, ...] | None:
        """Per case of a dataset held in memory, the grid of its source files (None when
        generated)."""
        return self._memory().geometry

    def subset(self, index: np.ndarray | str) -> CaseDataset:
        """The cases at ``index`` (or of the split named ``index``) of a dataset held in
        memory."""
        return CaseDataset.from_samples(self._memory().subset(index), root=self.root)

    def with_masks(self, masks: np.ndarray, *, corrupted: np.ndarray | None = None,
                   **meta: Any) -> CaseDataset:
        """A copy of a dataset held in memory whose training masks are ``masks``; the current
        truth becomes the clean masks."""
        return CaseDataset.from_samples(self._memory().with_masks(masks, corrupted=corrupted,
                                                                  **meta), root=self.root)

    @property
    def n_classes(self) -> int:
        """Number of classes including the background."""
        return len(self.class_names)

    @property
    def n_channels(self) -> int:
        """Number of image channels (network input channels)."""
        return len(self.channel_names)

    @property
    def sample_ids(self) -> tuple[str, ...]:
        """Case ids, in order."""
        return self._ids

    @property
    def split(self) -> np.ndarray:
        """``"train"``, ``"val"`` or ``"test"`` per case."""
        return self._split

    def indices(self, split: str) -> np.ndarray:
        """Integer indices of the cases in ``split``."""
        if split not in SPLITS:
            raise DataError(f"split: expected one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.split == split)

    @property
    def has_clean_labels(self) -> bool:
        """Whether the cases carry clean labels beside their (noisy) training labels."""
        if self.samples is not None:
            return self.samples.has_clean_labels
        return any(c.clean_label for c in self.cases)

    def with_split(self, split: np.ndarray) -> CaseDataset:
        """A copy whose cases are in the splits ``split`` (one name per case). Cases keep
        their indices, so a generated dataset still generates the right case."""
        if len(split) != len(self.cases):
            raise DataError(f"{self.source}: {len(split)} split names for {len(self.cases)} cases")
        if self.samples is not None:
            return CaseDataset.from_samples(self.samples.with_split(split), root=self.root)
        return replace(self, cases=tuple(c if c.split == s else replace(c, split=str(s))
                                         for c, s in zip(self.cases, split, strict=True)))

    # ------------------------------------------------------------------ reading
    def _generate(self, i: int) -> tuple[np.ndarray, np.ndarray, Geometry]:
        assert self.generator is not None
        return self.generator(i)

    def read_label(self, i: int, *, clean: bool = False) -> tuple[np.ndarray, Geometry]:
        """Case ``i``'s mask as uint8 class indices ``0..K-1``, with its geometry.

        ``clean=True`` reads the clean label when the case has one (else the label).

        Raises
        ------
        DataError
            Unreadable file, non-integer values, or values that are not declared labels.
        """
        if self.samples is not None:
            return self.samples.read_label(i, clean=clean)
        case = self.cases[i]
        if self._cached is not None:
            _, lab, geom = self._cached(i)
            return lab, geom
        path = case.clean_label if clean and case.clean_label else case.label
        if path is None:
            raise DataError(f"{self.source}: case {case.case_id} has no label")
        return self.read_label_file(path)

    def read_label_file(self, path: str | Path) -> tuple[np.ndarray, Geometry]:
        """Any label file stored with this dataset's label values (a case's label, a
        refurbished or pseudo-label written by noisyseg) as uint8 class indices, with its
        geometry.

        Raises
        ------
        DataError
            Unreadable file, non-integer values, or values that are not declared labels.
        """
        if self.samples is not None:
            return self.samples.read_label_file(path)
        arr, geom = read_image(path)
        if arr.ndim != geom.ndim:
            stored = " x ".join(map(str, read_grid(path).stored))
            raise DataError(f"{path}: a label map holds one value per voxel, but the file's shape "
                            f"is {stored} ({arr.shape[0]} values per voxel); expected "
                            f"{' x '.join(map(str, geom.shape[::-1]))}")
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise DataError(f"{path}: label map holds non-integer values")
            arr = arr.astype(np.int64)
        elif not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
            raise DataError(f"{path}: expected integer labels, got dtype {arr.dtype}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= self._lut.size):
            raise DataError(f"{path}: labels {int(arr.min())}..{int(arr.max())} are not the "
                            f"declared labels {list(self.label_values)}")
        out = self._lut[arr]
        if out.size and int(out.max()) == 255:  # the LUT's mark for an undeclared value
            bad = sorted(set(np.unique(arr).tolist()) - set(self.label_values))
            raise DataError(f"{path}: labels {bad[:5]} are not among the declared labels "
                            f"{list(self.label_values)} ({self.meta.get('labels_from', 'dataset.json')})")
        return out, geom

    def read_image(self, i: int) -> tuple[np.ndarray, Geometry]:
        """Case ``i``'s image as float32 ``(C, *S)`` with the geometry of its first channel.

        Raises
        ------
        DataError
            Unreadable file, channels of different shapes, NaN values, or a wrong number of
            channels.
        """
        if self.samples is not None:
            return self.samples.read_image(i)
        case = self.cases[i]
        if self._cached is not None:
            img, _, geom = self._cached(i)
            return img, geom
        chans, geom0 = [], None
        for p in case.images:
            arr, geom = read_image(p)
            if geom0 is None:
                geom0 = geom
            elif geom.shape != geom0.shape:
                raise DataError(f"{p}: channel shape {geom.shape} differs from "
                                f"{Path(case.images[0]).name}'s {geom0.shape}")
            chans.append(arr.reshape((-1, *geom.shape)).astype(np.float32, copy=False))
        assert geom0 is not None
        img = chans[0] if len(chans) == 1 else np.concatenate(chans)
        if img.shape[0] != self.n_channels:
            raise DataError(f"{case.images[0]}: {img.shape[0]} channel(s), but the dataset "
                            f"declares {self.n_channels} ({', '.join(self.channel_names)})")
        if not np.all(np.isfinite(img)):
            raise DataError(f"{case.images[0]}: image contains NaN or infinite values")
        return img, geom0

    def __getitem__(self, i: int) -> dict[str, Any]:
        img, geom = self.read_image(i)
        lab, lgeom = self.read_label(i)
        if lab.shape != img.shape[1:]:
            raise DataError(f"{self.cases[i].label}: label shape {lab.shape} differs from the "
                            f"image's {img.shape[1:]}")
        return {"image": img, "label": lab, "case_id": self.cases[i].case_id, "geometry": lgeom}

    def label_geometry(self, i: int) -> Geometry:
        """Geometry of case ``i``'s label file, from its header (no voxels read)."""
        if self.samples is not None:
            return self.samples.label_geometry(i)
        case = self.cases[i]
        if self._cached is not None or case.label is None:
            return self.read_label(i)[1]
        return read_header(case.label)

    def encode(self, mask: np.ndarray) -> np.ndarray:
        """Class indices back to the values the files store (inverse of the read mapping)."""
        return self._encode[np.asarray(mask)]

    def summary(self) -> dict[str, Any]:
        """Counts per split, classes, channels and layout; JSON-serialisable."""
        if self.samples is not None:
            return self.samples.summary()
        return {"source": self.source, "layout": self.layout, "n": len(self),
                "splits": {s: int(np.sum(self.split == s)) for s in SPLITS},
                "class_names": list(self.class_names), "label_values": list(self.label_values),
                "channels": list(self.channel_names), "has_clean_masks": self.has_clean_labels}


# --------------------------------------------------------------------------- helpers
#: Largest label value a dataset may declare (a uint16 label file's range).
MAX_LABEL_VALUE = 65535


def _hidden(p: Path | str) -> bool:
    return Path(p).name.startswith(".")


def _read_json(path: Path) -> dict:
    """``path`` as a JSON object; DataError for anything else, duplicate keys included."""
    if not path.is_file():
        raise DataError(f"{path}: missing (every {path.parent.name} dataset needs one)")

    def unique(pairs: list[tuple[str, Any]]) -> dict:
        obj: dict[str, Any] = {}
        for k, v in pairs:
            if k in obj:
                raise DataError(f"{path}: key {k!r} appears twice in one object")
            obj[k] = v
        return obj

    try:
        obj = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=unique)
    except DataError:
        raise
    except (ValueError, OSError, RecursionError) as exc:  # JSON, UTF-8, a huge number
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: not valid JSON ({first})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _as_int(value: object) -> int | None:
    """``value`` as an integer (an int, an integral float, a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,9}\s*", value):
        return int(value)
    return None


def _label_table(meta_f: Path, pairs: list[tuple[object, object]]) -> list[tuple[int, str]]:
    """``(value, name)`` pairs, sorted, each value an integer in ``0..MAX_LABEL_VALUE`` used
    once, background (0) included."""
    labels: dict[int, str] = {}
    for value, name in pairs:
        v = _as_int(value)
        if v is None or not 0 <= v <= MAX_LABEL_VALUE or not isinstance(name, str):
            raise DataError(f"{meta_f}: label {name!r}: expected a name and an integer value "
                            f"from 0 to {MAX_LABEL_VALUE}, got {value!r}")
        if v in labels:
            raise DataError(f"{meta_f}: label value {v} appears twice ({labels[v]!r} and {name!r})")
        labels[v] = name
    if 0 not in labels:
        raise DataError(f"{meta_f}: 'labels' must include the background with value 0")
    if len(labels) > 255:
        raise DataError(f"{meta_f}: {len(labels)} labels; noisyseg handles at most 255 classes")
    return sorted(labels.items())


def _channel_table(meta_f: Path, key: str, table: object) -> list[str]:
    """Channel names of a ``{"0": name, "1": name, ...}`` object (indices 0..C-1)."""
    if not isinstance(table, dict) or not table:
        raise DataError(f"{meta_f}: {key!r} must map channel indices to names, e.g. "
                        f"{{\"0\": \"CT\"}}, got {json.dumps(table)[:60]}")
    names: dict[int, str] = {}
    for k, v in table.items():
        i = _as_int(k)
        if i is None or i in names or not isinstance(v, str | int | float) or isinstance(v, bool):
            raise DataError(f"{meta_f}: {key!r}: entry {k!r}: {v!r} is not a channel index "
                            f"and a name")
        names[i] = str(v)
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{meta_f}: {key!r} indices must run 0..{len(names) - 1}, got "
                        f"{sorted(names)}")
    return [names[i] for i in range(len(names))]


def _check_id(meta_f: Path, cid: str) -> None:
    try:
        check_file_name(cid)
    except DataError as exc:
        raise DataError(f"{meta_f}: case id {show_path(cid)!r} is not valid UTF-8 or holds a "
                        f"control character") from exc


def check_case_files(cases: list[Case], channels: list[str] | tuple[str, ...]) -> None:
    """Refuse, from the file headers, cases whose channels do not add up to ``channels`` or
    whose labels (and clean labels) are not on the grid of every image file of the case
    (:func:`~noisyseg.data.folder.check_same_grid`).

    Raises
    ------
    DataError
        Naming the files and what differs.
    """
    for case in cases:
        for f in (*case.images, case.label, case.clean_label):
            if f is not None:
                check_file_name(f)
        grids = [read_grid(p) for p in case.images]
        total = sum(g.components for g in grids)
        if total != len(channels):
            raise DataError(f"{show_path(case.images[0])}: {total} channel(s) (file shape "
                            f"{' x '.join(map(str, grids[0].stored))}), but the dataset declares "
                            f"{len(channels)} ({', '.join(channels)})")
        for lab in (case.label, case.clean_label):
            if lab is None:
                continue
            lgrid = read_grid(lab)
            for g in grids:
                check_same_grid(g, lgrid)


def _with_split(cases: list[Case], split: np.ndarray) -> tuple[Case, ...]:
    return tuple(Case(c.case_id, c.images, c.label, str(s), c.clean_label)
                 for c, s in zip(cases, split, strict=True))


def _open_root(path: str | Path, seed: int) -> Path:
    root = Path(path)
    check_file_name(root)
    check_seed(seed)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    return root


# --------------------------------------------------------------------------- nnU-Net
#: Where ``noisyseg corrupt`` keeps its records inside an nnU-Net or Decathlon dataset folder
#: (nnU-Net reads only ``dataset.json``, ``imagesTr/`` and ``labelsTr/``).
RECORDS = "noisyseg"


def _with_records(cases: list[Case], root: Path, labels: list[tuple[int, str]],
                  channels: list[str], layout: str, seed: int, meta: dict[str, Any]) -> CaseDataset:
    """An nnU-Net or Decathlon dataset with what ``noisyseg corrupt`` recorded in its
    ``noisyseg/`` folder: clean labels, split and which cases were corrupted."""
    ids = [c.case_id for c in cases]
    records = root / RECORDS
    clean_dir = records / "labelsTr_clean"
    if clean_dir.is_dir():
        cases = [Case(c.case_id, c.images, c.label, c.split, str(clean_dir / Path(c.label).name))
                 for c in cases]
    check_case_files(cases, channels)
    return CaseDataset(_with_split(cases, read_split(ids, root, records, seed=seed)),
                       tuple(n for _, n in labels), layout, root=root,
                       label_values=tuple(v for v, _ in labels), channel_names=tuple(channels),
                       source=f"{layout}:{root}", corrupted=read_corrupted(ids, records),
                       meta=meta)


def load_nnunet(path: str | Path, *, seed: int = 0) -> CaseDataset:
    """Load an nnU-Net v2 raw dataset folder (``nnUNet_raw/DatasetXXX_Name``).

    Cases are the files of ``labelsTr/`` (or the ``dataset`` entry of ``dataset.json`` when
    present); ``imagesTs/`` has no labels and is never used as a test set. The split is read
    from ``split.csv`` (in the folder or its ``noisyseg/`` records) or drawn 70/15/15 with
    ``seed``. Every label is checked against every channel file of its case from the
    headers (shape, spacing, origin, direction) before anything is read.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    seed : int, default 0
        Seed of the 70/15/15 split when no ``split.csv`` gives one (0 to 2**32 - 1).

    Returns
    -------
    CaseDataset
        Cases read one at a time, ``layout='nnunet'``.

    Raises
    ------
    DataError
        Missing or malformed ``dataset.json`` keys, missing files, region-based or
        duplicate labels, a ``numTraining`` that does not match the cases found, a label
        off its image's grid, a file name that is not UTF-8.
    ConfigError
        A seed outside ``0..2**32 - 1``.

    Examples
    --------
    >>> import json, tempfile
    >>> from noisyseg.data import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     root = Path(d) / "Dataset001_Toy"
    ...     (root / "imagesTr").mkdir(parents=True)
    ...     (root / "labelsTr").mkdir()
    ...     for i in range(3):
    ...         write_image(root / "imagesTr" / f"c{i}_0000.nii.gz", np.zeros((4, 8, 8), np.float32))
    ...         write_image(root / "labelsTr" / f"c{i}.nii.gz", np.ones((4, 8, 8), np.uint8))
    ...     _ = (root / "dataset.json").write_text(json.dumps({
    ...         "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1},
    ...         "file_ending": ".nii.gz", "numTraining": 3}))
    ...     ds = load_nnunet(root)
    ...     len(ds), ds.class_names
    (3, ('background', 'liver'))
    """
    root = _open_root(path, seed)
    meta_f = root / "dataset.json"
    dj = _read_json(meta_f)
    for key in ("channel_names", "labels", "file_ending"):
        if key not in dj:
            raise DataError(f"{meta_f}: missing key {key!r} (nnU-Net v2 dataset.json)")
    if not isinstance(dj["labels"], dict):
        raise DataError(f"{meta_f}: 'labels' must be an object mapping names to integer values, "
                        f"got {type(dj['labels']).__name__}")
    if "regions_class_order" in dj or any(isinstance(v, list | tuple) for v in dj["labels"].values()):
        raise DataError(f"{meta_f}: region-based labels (lists of label values, "
                        f"regions_class_order) are not supported: noisyseg needs one integer "
                        f"label per class")
    if "ignore" in dj["labels"]:
        raise DataError(f"{meta_f}: the 'ignore' label (sparse annotation) is not supported")
    labels = _label_table(meta_f, [(v, k) for k, v in dj["labels"].items()])
    channels = _channel_table(meta_f, "channel_names", dj["channel_names"])
    fe = dj["file_ending"]
    if not isinstance(fe, str) or not fe.startswith("."):
        raise DataError(f"{meta_f}: file_ending should be a suffix starting with a dot, e.g. "
                        f"'.nii.gz', got {fe!r}")
    if split_suffix(Path(f"x{fe}"))[1] != fe.lower() or fe.lower() not in SUFFIXES:
        raise DataError(f"{meta_f}: file_ending {fe!r} is not a format noisyseg reads "
                        f"({', '.join(SUFFIXES)})")
    cases: list[Case] = []
    if "dataset" in dj:
        if not isinstance(dj["dataset"], dict):
            raise DataError(f"{meta_f}: 'dataset' must map case ids to {{images, label}}")
        for cid, entry in sorted(dj["dataset"].items()):
            _check_id(meta_f, cid)
            ok = isinstance(entry, dict) and isinstance(entry.get("images"), list) and \
                isinstance(entry.get("label"), str) and \
                all(isinstance(p, str) for p in entry["images"])
            if not ok:
                raise DataError(f"{meta_f}: dataset entry {cid!r} needs 'images' (a list of "
                                f"files) and 'label' (a file)")
            if len(entry["images"]) != len(channels):
                raise DataError(f"{meta_f}: dataset entry {cid!r} lists {len(entry['images'])} "
                                f"image(s) for {len(channels)} channel(s)")
            files = [root / p for p in (*entry["images"], entry["label"])]
            for f in files:
                check_file_name(f)
                if not f.is_file():
                    raise DataError(f"{f}: missing (listed for case {cid!r} in {meta_f.name})")
            cases.append(Case(cid, tuple(str(f.resolve()) for f in files[:-1]),
                              str(files[-1].resolve())))
    else:
        lab_dir, img_dir = root / "labelsTr", root / "imagesTr"
        for d in (img_dir, lab_dir):
            if not d.is_dir():
                raise DataError(f"{root}: expected imagesTr/ and labelsTr/; {d.name}/ is missing")
        for p in sorted(lab_dir.iterdir()):
            if _hidden(p) or not p.name.endswith(fe) or not p.is_file():
                continue
            check_file_name(p)
            cid = p.name[: -len(fe)]
            imgs = tuple(str(img_dir / f"{cid}_{c:04d}{fe}") for c in range(len(channels)))
            for f in imgs:
                if not Path(f).is_file():
                    raise DataError(f"{f}: missing (case {cid} needs one image per channel: "
                                    f"{', '.join(channels)})")
            cases.append(Case(cid, imgs, str(p)))
        if not cases:
            raise DataError(f"{lab_dir}: no label files ending in {fe}")
    n_decl = dj.get("numTraining")
    if n_decl is not None:
        n = _as_int(n_decl)
        if n is None or n < 0:
            raise DataError(f"{meta_f}: numTraining should be the number of training cases, got "
                            f"{n_decl!r}")
        if n != len(cases):
            raise DataError(f"{meta_f}: numTraining is {n} but {len(cases)} labelled cases "
                            f"were found")
    return _with_records(cases, root, labels, channels, "nnunet", seed,
                         {"dataset.json": dj, "file_ending": fe, "seed": seed})


# --------------------------------------------------------------------------- Decathlon
def load_msd(path: str | Path, *, seed: int = 0) -> CaseDataset:
    """Load a Medical Segmentation Decathlon task folder (e.g. ``Task03_Liver``).

    Cases are the ``training`` entries of ``dataset.json`` (the ``._*`` files that the
    archives carry are skipped); multi-modal 4-D images give one channel per ``modality``.
    A ``numTraining`` that differs from the entries is logged as a warning (the entries are
    what is read). Every label is checked against its image from the headers.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    seed : int, default 0
        Seed of the 70/15/15 split when no ``split.csv`` gives one (0 to 2**32 - 1).

    Returns
    -------
    CaseDataset
        Cases read one at a time, ``layout='msd'``.

    Raises
    ------
    DataError
        Missing or malformed ``dataset.json`` keys, missing files, duplicate labels or
        cases, a label off its image's grid, a file name that is not UTF-8.
    ConfigError
        A seed outside ``0..2**32 - 1``.

    Examples
    --------
    >>> import json, tempfile
    >>> from noisyseg.data import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     root = Path(d) / "Task01_Toy"
    ...     (root / "imagesTr").mkdir(parents=True)
    ...     (root / "labelsTr").mkdir()
    ...     for i in range(3):
    ...         write_image(root / "imagesTr" / f"c{i}.nii.gz", np.zeros((4, 8, 8), np.float32))
    ...         write_image(root / "labelsTr" / f"c{i}.nii.gz", np.ones((4, 8, 8), np.uint8))
    ...     _ = (root / "dataset.json").write_text(json.dumps({
    ...         "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver"},
    ...         "numTraining": 3, "training": [
    ...             {"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"}
    ...             for i in range(3)]}))
    ...     ds = load_msd(root)
    ...     len(ds), ds.layout
    (3, 'msd')
    """
    root = _open_root(path, seed)
    meta_f = root / "dataset.json"
    dj = _read_json(meta_f)
    for key in ("training", "labels"):
        if key not in dj:
            raise DataError(f"{meta_f}: missing key {key!r} (Decathlon dataset.json)")
    if not isinstance(dj["labels"], dict):
        raise DataError(f"{meta_f}: 'labels' must map integer values to names, got "
                        f"{type(dj['labels']).__name__}")
    labels = _label_table(meta_f, list(dj["labels"].items()))
    channels = _channel_table(meta_f, "modality", dj.get("modality") or {"0": "image"})
    cases: list[Case] = []
    if not isinstance(dj["training"], list):
        raise DataError(f"{meta_f}: 'training' must list {{image, label}} entries")
    seen: dict[str, int] = {}
    for j, entry in enumerate(dj["training"], 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or \
                not isinstance(entry.get("label"), str):
            raise DataError(f"{meta_f}: 'training' entry {j}: needs 'image' and 'label' file names")
        img, lab = root / entry["image"], root / entry["label"]
        if _hidden(img) or _hidden(lab):
            continue
        for f in (img, lab):
            check_file_name(f)
            if not f.is_file():
                raise DataError(f"{f}: missing (listed in {meta_f.name})")
        cid = split_suffix(img)[0]
        if cid in seen:
            raise DataError(f"{meta_f}: case {cid!r} is listed twice in 'training' (entries "
                            f"{seen[cid]} and {j})")
        seen[cid] = j
        cases.append(Case(cid, (str(img),), str(lab)))
    n_decl = dj.get("numTraining")
    if n_decl is not None and _as_int(n_decl) != len(cases):
        log.warning("%s: numTraining is %r but 'training' lists %d cases; reading the %d listed",
                    meta_f, n_decl, len(cases), len(cases))
    return _with_records(cases, root, labels, channels, "msd", seed,
                         {"dataset.json": dj, "seed": seed})


# --------------------------------------------------------------------------- folder
def folder_is_volumetric(root: Path) -> bool:
    """Whether a folder dataset holds volumes (its first image has 3 spatial dimensions)."""
    img_dir = root / "images"
    if not img_dir.is_dir():
        return False
    files = index_folder(img_dir)
    if not files:
        return False
    first = files[sorted(files)[0]]
    if split_suffix(first)[1] in (".png", ".npy"):
        return False
    return len(read_grid(first).shape) >= 3


def _mask_values(path: Path) -> set[int]:
    """The distinct labels of a mask file, checked to be non-negative integers."""
    arr, _ = read_image(path)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{path}: label map holds non-integer values")
    elif not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
        raise DataError(f"{path}: expected integer labels, got dtype {arr.dtype}")
    values = {int(v) for v in np.unique(arr)}
    if values and min(values) < 0:
        raise DataError(f"{path}: negative labels {sorted(v for v in values if v < 0)[:5]}")
    return values


def _folder_labels(masks: list[Path], names: tuple[str, ...] | None
                   ) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """Class names and stored label values of a folder of masks, from the first mask that
    holds a structure: 0/255 masks are binary (values 0 and 255); without names, the
    classes are 0..max."""
    values, first = {0}, masks[0]
    for f in masks:
        values, first = _mask_values(f), f
        if values - {0}:
            break
    if (names is None or len(names) == 2) and binary_255_values(values, names, first):
        return names or ("background", "class_1"), (0, 255)
    if names is not None:
        return names, None
    k = max(max(values), 1)
    if k > 255:
        raise DataError(f"{first}: labels up to {k}; without 'class_names' in dataset.json the "
                        f"classes are 0..max, at most 255")
    return ("background", *(f"class_{i}" for i in range(1, k + 1))), None


def read_folder_cases(path: str | Path, *, seed: int = 0,
                      classes: tuple[str, ...] | None = None) -> CaseDataset:
    """A folder dataset (``images/``, ``masks/``, optional ``masks_clean/``, ``split.csv``,
    ``dataset.json`` with ``class_names``, ``manifest.csv``) read one case at a time: what
    :func:`~noisyseg.data.load_folder` gives for volumes, and for 2-D images with
    ``lazy=True``.

    Without class names, the classes are ``class_1..class_K`` with K the largest label of
    the first mask that holds a structure; masks holding only 0 and 255 are binary (255
    read as class 1 and written back as 255). Every mask is checked against its image from
    the headers.

    Raises
    ------
    DataError
        Unpaired or unreadable files, a mask off its image's grid, a malformed
        ``dataset.json``, ``split.csv`` or ``manifest.csv``.
    ConfigError
        A seed outside ``0..2**32 - 1``.
    """
    root = _open_root(path, seed)
    imgs, masks, cleans = pair_folder(root)
    ids = sorted(imgs)
    cases = [Case(i, (str(imgs[i]),), str(masks[i]), "train",
                  str(cleans[i]) if cleans else None) for i in ids]
    names = classes
    meta_f = root / "dataset.json"
    dj = _read_json(meta_f) if meta_f.is_file() else {}
    if names is None and dj.get("class_names") is not None:
        named = dj["class_names"]
        if not isinstance(named, list) or not 2 <= len(named) <= 256 or \
                not all(isinstance(n, str) for n in named):
            raise DataError(f"{meta_f}: 'class_names' must list 2 to 256 names, background first")
        names = tuple(named)
    first = read_grid(imgs[ids[0]])
    n_chan = first.components
    channels = ("image",) if n_chan == 1 else tuple(f"channel_{c}" for c in range(n_chan))
    named = dj.get("channel_names")  # what noisyseg wrote (e.g. "CT", which sets the display window)
    if isinstance(named, list) and len(named) == n_chan and all(isinstance(c, str) for c in named):
        channels = tuple(named)
    check_case_files(cases, channels)
    names, values = _folder_labels([masks[i] for i in ids], names)
    log.debug("%s: %d volumes, first %s", root, len(ids), first.shape)
    return CaseDataset(_with_split(cases, read_split(ids, root, seed=seed)), tuple(names), "folder",
                       root=root, label_values=values, channel_names=channels, source=str(root),
                       corrupted=read_corrupted(ids, root), meta={"seed": seed})
