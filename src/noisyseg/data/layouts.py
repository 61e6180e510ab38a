"""Writing a :class:`CaseDataset` back in its own layout, one case at a time.

The one writer of the dataset folders that ``noisyseg corrupt`` produces from case sources:

- ``nnunet``: ``dataset.json``, ``imagesTr/``, ``labelsTr/`` (the training labels, noisy
  where corrupted) and ``imagesTs/`` as in the source, so nnU-Net trains on the folder as it
  is; noisyseg's records in ``noisyseg/`` (``labelsTr_clean/``, ``manifest.csv``,
  ``split.csv``, ``corruption.json``, ``examples.png``), a folder nnU-Net does not read;
- ``msd``: the same, with the files at the paths ``dataset.json`` lists;
- ``folder`` (and generated data): ``images/``, ``masks/``, ``masks_clean/``, ``split.csv``,
  ``dataset.json``, ``manifest.csv`` at the top.

Image files are copied byte for byte; a label that is not changed is copied byte for byte;
a changed label is written with its source file's header (format, affine, qform/sform
codes, spacing, origin, direction, data type), so it overlays its image exactly.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Sized
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.data.cases import RECORDS, CaseDataset
from noisyseg.data.folder import write_folder_into, write_masks
from noisyseg.data.io import FORMATS, Geometry, split_suffix, write_image
from noisyseg.errors import ConfigError

__all__ = ["CaseWriter", "write_labels", "write_refurbished", "write_relabelled"]


def _rel(path: str, root: Path | None, default_dir: str) -> Path:
    """``path`` relative to ``root`` when inside it, else ``default_dir/<name>``."""
    p = Path(path)
    if root is not None:
        try:
            return p.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    return Path(default_dir) / p.name


class CaseWriter:
    """Writes the cases of ``ds`` into ``out`` in ``ds``'s layout (see module docstring).

    Parameters
    ----------
    ds : CaseDataset
    out : Path
        An existing, empty folder (the caller's temporary folder, renamed at the end).
    fmt : str
        File format for generated datasets (:data:`~noisyseg.data.io.FORMATS`); file
        datasets keep their own formats.
    unchanged : {'clean', 'given'}
        What a case written without a new mask gets as its training label: its clean label
        (``noisyseg corrupt``: a case left uncorrupted) or its given one (``noisyseg review
        export``: a mask the reviewer kept).
    clean : bool
        Whether to write the clean labels (``labelsTr_clean/``, ``masks_clean/``).
    """

    def __init__(self, ds: CaseDataset, out: Path, *, fmt: str = "nii.gz", unchanged: str = "clean",
                 clean: bool = True) -> None:
        if fmt not in FORMATS or fmt in ("png", "npy"):
            raise ConfigError(f"fmt: volumes are written as nii.gz, nii, mha or nrrd, got {fmt!r}")
        if unchanged not in ("clean", "given"):
            raise ConfigError(f"unchanged: expected 'clean' or 'given', got {unchanged!r}")
        self.ds, self.out, self.suffix = ds, Path(out), FORMATS[fmt]
        self.unchanged, self.clean = unchanged, clean
        self.files_layout = ds.layout in ("nnunet", "msd")
        self.records = self.out / RECORDS if self.files_layout else self.out
        self.records.mkdir(parents=True, exist_ok=True)
        if self.files_layout:
            assert ds.root is not None
            shutil.copyfile(ds.root / "dataset.json", self.out / "dataset.json")
            for extra in ("imagesTs", "labelsTs"):
                if (ds.root / extra).is_dir():
                    shutil.copytree(ds.root / extra, self.out / extra,
                                    ignore=shutil.ignore_patterns("._*"))

    # ------------------------------------------------------------------ paths
    def _paths(self, i: int) -> tuple[list[tuple[str | None, Path]], Path, Path]:
        """(image sources and targets, label target, clean label target) of case ``i``."""
        case, ds = self.ds.cases[i], self.ds
        if self.files_layout:
            assert case.label is not None
            imgs = [(p, self.out / _rel(p, ds.root, "imagesTr")) for p in case.images]
            lab = self.out / _rel(case.label, ds.root, "labelsTr")
            return imgs, lab, self.records / "labelsTr_clean" / Path(case.label).name
        if ds.generator is not None:
            name = f"{case.case_id}{self.suffix}"
            return [(None, self.out / "images" / name)], self.out / "masks" / name, \
                self.out / "masks_clean" / name
        assert case.label is not None
        lab_name = Path(case.label).name
        return ([(p, self.out / "images" / Path(p).name) for p in case.images],
                self.out / "masks" / lab_name, self.out / "masks_clean" / lab_name)

    # ------------------------------------------------------------------ writing
    def write(self, i: int, mask: np.ndarray | None, geometry: Geometry,
              image: np.ndarray | None = None) -> None:
        """Write case ``i``: its image, its training label (``mask``, class indices, or the
        label ``unchanged`` names when ``mask`` is None) and its clean label.

        ``image`` is needed for generated datasets only (file images are copied); it is
        stored in the dataset's ``meta["image_dtype"]`` (default float32; synthetic-ct
        writes int16 Hounsfield units, as CT files do).
        """
        case = self.ds.cases[i]
        imgs, lab, clean = self._paths(i)
        for src, dst in imgs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src is None:
                if image is None:
                    raise ConfigError(f"image: case {case.case_id} is generated; pass its image")
                img = image[0] if image.shape[0] == 1 else image
                dtype = np.dtype(self.ds.meta.get("image_dtype", "float32"))
                if np.issubdtype(dtype, np.integer):
                    img = np.rint(img)
                write_image(dst, img, geometry, dtype=dtype)
            else:
                shutil.copyfile(src, dst)
        clean_src = case.clean_label or case.label
        targets = [(clean, None, clean_src, True)] if self.clean else []
        keep_src = clean_src if self.unchanged == "clean" else case.label
        targets.append((lab, mask, keep_src, self.unchanged == "clean"))
        for dst, data, src, from_clean in targets:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if data is None and src is not None:
                shutil.copyfile(src, dst)
                if split_suffix(Path(src))[1] == ".mhd":
                    raw = Path(src).with_suffix(".raw")
                    if raw.exists():
                        shutil.copyfile(raw, dst.with_suffix(".raw"))
            else:
                arr = self.ds.read_label(i, clean=from_clean)[0] if data is None else data
                dtype = geometry.dtype if geometry.path else np.uint8
                write_image(dst, self.ds.encode(arr), geometry, dtype=dtype)

    def finish(self, manifest: pd.DataFrame, records: dict[str, Any]) -> None:
        """Write ``manifest.csv``, ``split.csv``, ``dataset.json`` (folder layouts) and the
        JSON ``records`` (``{file name: object}``)."""
        manifest.to_csv(self.records / "manifest.csv", index=False)
        pd.DataFrame({"sample_id": self.ds.sample_ids, "split": self.ds.split}).to_csv(
            self.records / "split.csv", index=False)
        if not self.files_layout:
            (self.out / "dataset.json").write_text(json.dumps(
                {"class_names": list(self.ds.class_names),
                 "channel_names": list(self.ds.channel_names), "source": self.ds.source}, indent=2))
        for name, obj in records.items():
            (self.records / name).write_text(json.dumps(obj, indent=2, default=str))


def write_labels(folder: str | Path, ds: CaseDataset, index: np.ndarray,
                 masks: Iterable[np.ndarray], *, fmt: str = "nii.gz") -> list[Path]:
    """Write label maps (class indices, on the dataset's grid) of cases ``index`` of ``ds``.

    The one writer of per-case label files outside a whole dataset (audit's and rank's
    ``refurbished/``, train's ``predictions/``): a case read from a file gets that file's
    name, format, grid, header and label dtype, with the stored label values (nnU-Net and
    Decathlon values, a 0/255 PNG); generated cases get ``{case_id}`` + ``fmt``. ``masks``
    may be any iterable (a generator writes one case at a time). Returns the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = np.asarray(index)
    if ds.samples is not None:
        return write_masks(folder, ds.samples, index, _stack(masks))
    out = []
    for i, m in zip(index, masks, strict=True):
        case = ds.cases[int(i)]
        geom = ds.label_geometry(int(i))
        name = Path(case.label).name if case.label else f"{case.case_id}{FORMATS[fmt]}"
        dst = folder / name
        write_image(dst, ds.encode(m), geom, dtype=geom.dtype if geom.path else np.uint8)
        out.append(dst)
    return out


def _stack(masks: Iterable[np.ndarray]) -> np.ndarray:
    return masks if isinstance(masks, np.ndarray) else np.asarray(list(masks))


def write_refurbished(folder: str | Path, ds: CaseDataset, index: np.ndarray,
                      masks: Sized | list[np.ndarray] | np.ndarray, records: dict[str, Any]) -> Path:
    """A dataset with the label maps of cases ``index`` replaced by ``masks``: what audit's and
    rank's ``refurbished/`` hold.

    Cases read one at a time (nnU-Net, Decathlon, a folder of volumes or files) give the
    whole dataset in its own layout, every case's image and label, trainable as it is
    (nnU-Net's ``dataset.json``, ``imagesTr/``, ``labelsTr/``), with ``manifest.csv`` saying
    which label each case carries (``refurbished`` or ``given``) and ``records`` (``{file
    name: object}``) beside it; an in-memory dataset gives the replaced mask files.
    """
    folder = Path(folder)
    index = np.asarray(index, dtype=np.int64)
    if ds.samples is not None:
        write_masks(folder, ds.samples, index, _stack(masks))  # type: ignore[arg-type]
        return folder
    if len(masks) != len(index):
        raise ValueError(f"{len(masks)} masks for {len(index)} cases")
    if np.all(np.diff(index) > 0):  # in case order: each mask is made as it is written
        pairs = zip((int(i) for i in index), masks, strict=True)
    else:
        pairs = iter(sorted(((int(i), m) for i, m in zip(index, masks, strict=True)), key=lambda p: p[0]))
    ordered = (m for _, m in pairs)
    manifest = pd.DataFrame({"sample_id": list(ds.sample_ids), "split": ds.split})
    manifest["label"] = np.where(np.isin(np.arange(len(ds)), index), "refurbished", "given")
    write_relabelled(ds, folder, np.sort(index), lambda i, given: next(ordered), manifest=manifest,
                     records=records, given=False)
    return folder


def write_relabelled(ds: CaseDataset, folder: Path, index: np.ndarray,
                     relabel: Callable[[int, np.ndarray], np.ndarray], *, manifest: pd.DataFrame,
                     records: dict[str, Any] | None = None, clean: bool = False,
                     given: bool = True) -> Path:
    """Write ``ds`` into ``folder`` (an existing, empty folder: the caller's temporary one)
    with the training labels of cases ``index`` replaced by ``relabel(i, given_mask)``; every
    other case keeps its given label. What ``refurbished/`` and ``noisyseg review export``
    hold: the dataset in its own layout (an nnU-Net dataset stays trainable by nnU-Net; a
    dataset held in memory becomes a folder dataset, its masks on their source files' grid),
    ``manifest.csv`` and the JSON ``records`` (``{file name: object}``).

    Parameters
    ----------
    index : (M,) int ndarray
        The cases to relabel, in increasing order; ``relabel`` is called in that order.
    clean : bool
        Also write the clean labels, where the dataset has them.
    given : bool
        Whether ``relabel`` needs the given mask (read only then).

    Returns
    -------
    Path
        The folder that holds the dataset's records (``noisyseg/`` of an nnU-Net or
        Decathlon dataset, else ``folder`` itself).
    """
    folder = Path(folder)
    take = {int(i) for i in index}
    if ds.samples is not None:
        masks = ds.masks.copy()
        for i in sorted(take):
            masks[i] = relabel(i, ds.masks[i] if given else None)
        kept = ds.samples if clean else replace(ds.samples, clean_masks=None)
        write_folder_into(CaseDataset.from_samples(replace(kept, masks=masks), root=ds.root), folder,
                          manifest=manifest, extra_json=records)
        return folder
    writer = CaseWriter(ds, folder, unchanged="given", clean=clean and ds.has_clean_labels)
    for i in range(len(ds)):
        image = ds.read_image(i)[0] if ds.generator is not None else None
        if i in take:
            mask, geom = ds.read_label(i) if given else (None, ds.label_geometry(i))
            writer.write(i, relabel(i, mask), geom, image)
        else:
            writer.write(i, None, ds.label_geometry(i), image)
    writer.finish(manifest, records or {})
    return writer.records
