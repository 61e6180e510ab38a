"""Case datasets: images and masks of any dimension, read one case at a time.

A :class:`CaseDataset` lists its cases (files, or a generator) and reads each on demand, so a
dataset larger than memory can be streamed through ``noisyseg corrupt``. Uncompressed NIfTI
files are memory-mapped by nibabel; nothing else is held between reads. It is also a
MONAI-style dataset: ``ds[i]`` is ``{"image": (C, *S) float32, "label": (*S) uint8,
"case_id": str, "geometry": Geometry}``, so it can be wrapped by ``monai.data.CacheDataset``
or ``PersistentDataset`` for training.

Layouts (see :func:`load_nnunet`, :func:`load_msd`, :func:`load_folder_cases`):

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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from noisyseg.data.dataset import SPLITS, read_corrupted, read_split
from noisyseg.data.folder import index_folder, pair_folder
from noisyseg.data.io import Geometry, read_header, read_image, split_suffix
from noisyseg.errors import DataError

__all__ = ["Case", "CaseDataset", "load_folder_cases", "load_msd", "load_nnunet"]

log = logging.getLogger(__name__)

Generator = Callable[[int], tuple[np.ndarray, np.ndarray, Geometry]]


@dataclass(frozen=True)
class Case:
    """One case: its id, image file(s) (one per channel, or one multi-channel file), label file."""

    case_id: str
    images: tuple[str, ...]
    label: str | None
    split: str = "train"
    clean_label: str | None = None


@dataclass(eq=False)
class CaseDataset:
    """Cases of a segmentation dataset of any dimension, read on demand.

    Attributes
    ----------
    cases : tuple of Case
    class_names : tuple of str
        ``class_names[k]`` names label ``k`` (after mapping, see ``label_values``).
    layout : {'nnunet', 'msd', 'folder', 'synthetic-ct'}
        The layout read, and the one :func:`noisyseg.corrupt.corrupt_cases` writes back.
    root : Path or None
        The dataset folder (None when generated).
    label_values : tuple of int
        The value stored in the files for each class (``label_values[k]`` for class k).
    channel_names : tuple of str
    source : str
        The ``--data`` string.
    corrupted : (N,) bool ndarray or None
        Which cases carry simulated errors (a dataset written by ``noisyseg corrupt``).
    meta : dict
        The layout's own metadata (``dataset.json``), options used.
    generator : callable, optional
        ``generator(i) -> (image (C, *S), label (*S), Geometry)`` for generated datasets.
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

    def __post_init__(self) -> None:
        if self.label_values is None:
            self.label_values = tuple(range(len(self.class_names)))
        if len(self.label_values) != len(self.class_names):
            raise DataError(f"{self.source}: {len(self.class_names)} class names but "
                            f"{len(self.label_values)} label values")
        if len(self.class_names) < 2:
            raise DataError(f"{self.source}: need at least 2 classes (background and one "
                            f"structure), got {self.class_names}")
        ids = [c.case_id for c in self.cases]
        self._ids = tuple(ids)  # cases are fixed: ids and split are looked up per case
        self._split = np.array([c.split for c in self.cases])
        self._split.flags.writeable = False
        if len(set(ids)) != len(ids):
            raise DataError(f"{self.source}: case ids are not unique")
        if not self.cases:
            raise DataError(f"{self.source}: no cases found")
        lut = np.full(max(max(self.label_values) + 1, 256), 255, dtype=np.uint8)
        for k, v in enumerate(self.label_values):
            lut[v] = k
        self._lut = lut
        self._encode = np.asarray(self.label_values, dtype=np.int64)
        self._cached = lru_cache(maxsize=2)(self._generate) if self.generator else None

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.cases)

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
        return any(c.clean_label for c in self.cases)

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
        arr, geom = read_image(path)
        if arr.ndim != geom.ndim:
            raise DataError(f"{path}: expected a label map, got {arr.ndim - geom.ndim} channels")
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
        case = self.cases[i]
        if self._cached is not None or case.label is None:
            return self.read_label(i)[1]
        return read_header(case.label)

    def encode(self, mask: np.ndarray) -> np.ndarray:
        """Class indices back to the values the files store (inverse of the read mapping)."""
        return self._encode[np.asarray(mask)]

    def summary(self) -> dict[str, Any]:
        """Counts per split, classes, channels and layout; JSON-serialisable."""
        return {"source": self.source, "layout": self.layout, "n": len(self),
                "splits": {s: int(np.sum(self.split == s)) for s in SPLITS},
                "class_names": list(self.class_names), "label_values": list(self.label_values),
                "channels": list(self.channel_names), "has_clean_masks": self.has_clean_labels}


# --------------------------------------------------------------------------- helpers
def _hidden(p: Path | str) -> bool:
    return Path(p).name.startswith(".")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: missing (every {path.parent.name} dataset needs one)")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object")
    return obj


def _with_split(cases: list[Case], split: np.ndarray) -> tuple[Case, ...]:
    return tuple(Case(c.case_id, c.images, c.label, str(s), c.clean_label)
                 for c, s in zip(cases, split, strict=True))


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
    ``seed``.

    Raises
    ------
    DataError
        Missing ``dataset.json`` keys or files, region-based labels, a ``numTraining`` that
        does not match the cases found.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    meta_f = root / "dataset.json"
    dj = _read_json(meta_f)
    for key in ("channel_names", "labels", "file_ending"):
        if key not in dj:
            raise DataError(f"{meta_f}: missing key {key!r} (nnU-Net v2 dataset.json)")
    if "regions_class_order" in dj or any(isinstance(v, list | tuple) for v in dj["labels"].values()):
        raise DataError(f"{meta_f}: region-based labels (lists of label values, "
                        f"regions_class_order) are not supported: noisyseg needs one integer "
                        f"label per class")
    if "ignore" in dj["labels"]:
        raise DataError(f"{meta_f}: the 'ignore' label (sparse annotation) is not supported")
    try:
        labels = sorted(((int(v), str(k)) for k, v in dj["labels"].items()))
        channels = [str(v) for _, v in sorted((int(k), v) for k, v in dj["channel_names"].items())]
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{meta_f}: 'labels' must map names to integers and 'channel_names' "
                        f"indices to names ({exc})") from exc
    if not labels or labels[0][0] != 0:
        raise DataError(f"{meta_f}: 'labels' must include the background with value 0")
    fe = str(dj["file_ending"])
    if not fe.startswith("."):
        raise DataError(f"{meta_f}: file_ending should start with a dot, got {fe!r}")
    cases: list[Case] = []
    if isinstance(dj.get("dataset"), dict):
        for cid, entry in sorted(dj["dataset"].items()):
            try:
                imgs = tuple(str((root / p).resolve()) for p in entry["images"])
                lab = str((root / entry["label"]).resolve())
            except (KeyError, TypeError) as exc:
                raise DataError(f"{meta_f}: dataset entry {cid!r} needs 'images' and 'label'") from exc
            cases.append(Case(cid, imgs, lab))
    else:
        lab_dir, img_dir = root / "labelsTr", root / "imagesTr"
        for d in (img_dir, lab_dir):
            if not d.is_dir():
                raise DataError(f"{root}: expected imagesTr/ and labelsTr/; {d.name}/ is missing")
        for p in sorted(lab_dir.iterdir()):
            if _hidden(p) or not p.name.endswith(fe):
                continue
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
    if n_decl is not None and int(n_decl) != len(cases):
        raise DataError(f"{meta_f}: numTraining is {n_decl} but {len(cases)} labelled cases "
                        f"were found")
    return _with_records(cases, root, labels, channels, "nnunet", seed,
                         {"dataset.json": dj, "file_ending": fe, "seed": seed})


# --------------------------------------------------------------------------- Decathlon
def load_msd(path: str | Path, *, seed: int = 0) -> CaseDataset:
    """Load a Medical Segmentation Decathlon task folder (e.g. ``Task03_Liver``).

    Cases are the ``training`` entries of ``dataset.json`` (the ``._*`` files that the
    archives carry are skipped); multi-modal 4-D images give one channel per ``modality``.

    Raises
    ------
    DataError
        Missing ``dataset.json`` keys or files.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    meta_f = root / "dataset.json"
    dj = _read_json(meta_f)
    for key in ("training", "labels"):
        if key not in dj:
            raise DataError(f"{meta_f}: missing key {key!r} (Decathlon dataset.json)")
    try:
        labels = sorted((int(k), str(v)) for k, v in dj["labels"].items())
        modality = dj.get("modality") or {"0": "image"}
        channels = [str(v) for _, v in sorted((int(k), v) for k, v in modality.items())]
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{meta_f}: 'labels' and 'modality' must map integers to names "
                        f"({exc})") from exc
    if not labels or labels[0][0] != 0:
        raise DataError(f"{meta_f}: 'labels' must include the background with value 0")
    cases = []
    if not isinstance(dj["training"], list):
        raise DataError(f"{meta_f}: 'training' must list {{image, label}} entries")
    for entry in dj["training"]:
        try:
            img, lab = root / entry["image"], root / entry["label"]
        except (KeyError, TypeError) as exc:
            raise DataError(f"{meta_f}: every 'training' entry needs 'image' and 'label'") from exc
        if _hidden(img) or _hidden(lab):
            continue
        for f in (img, lab):
            if not f.is_file():
                raise DataError(f"{f}: missing (listed in {meta_f.name})")
        cases.append(Case(split_suffix(img)[0], (str(img),), str(lab)))
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
    return read_header(first).ndim >= 3


def load_folder_cases(path: str | Path, *, seed: int = 0,
                      classes: tuple[str, ...] | None = None) -> CaseDataset:
    """Load a folder dataset of volumes (``images/``, ``masks/``, optional ``masks_clean/``,
    ``split.csv``, ``dataset.json`` with ``class_names``, ``manifest.csv``) lazily.

    Without class names, the classes are ``class_1..class_K`` with K the largest label of
    the first mask.
    """
    root = Path(path)
    imgs, masks, cleans = pair_folder(root)
    ids = sorted(imgs)
    cases = [Case(i, (str(imgs[i]),), str(masks[i]), "train",
                  str(cleans[i]) if cleans else None) for i in ids]
    names = classes
    meta_f = root / "dataset.json"
    if names is None and meta_f.is_file():
        dj = _read_json(meta_f)
        names = tuple(dj.get("class_names") or ()) or None
        if names is not None and (len(names) < 2 or not all(isinstance(n, str) for n in names)):
            raise DataError(f"{meta_f}: 'class_names' must list at least 2 names, background first")
    if names is None:
        arr, _ = read_image(masks[ids[0]])
        k = max(int(np.max(arr)), 1)
        names = ("background", *(f"class_{i}" for i in range(1, k + 1)))
    first = read_header(imgs[ids[0]])
    n_chan = 1
    if split_suffix(imgs[ids[0]])[1] in (".nii", ".nii.gz"):
        import nibabel as nib

        shp = nib.load(str(imgs[ids[0]])).shape
        n_chan = int(shp[3]) if len(shp) == 4 else 1
    channels = ("image",) if n_chan == 1 else tuple(f"channel_{c}" for c in range(n_chan))
    if meta_f.is_file():  # what noisyseg wrote (e.g. "CT", which sets the display window)
        named = _read_json(meta_f).get("channel_names")
        if isinstance(named, list) and len(named) == n_chan and all(isinstance(c, str) for c in named):
            channels = tuple(named)
    log.debug("%s: %d volumes, first %s", root, len(ids), first.shape)
    return CaseDataset(_with_split(cases, read_split(ids, root, seed=seed)), tuple(names), "folder",
                       root=root, channel_names=channels, source=str(root),
                       corrupted=read_corrupted(ids, root), meta={"seed": seed})
