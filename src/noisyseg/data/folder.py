"""Folder datasets: how users bring their own data, and what ``noisyseg corrupt`` writes.

Layout::

    DIR/images/<id>.{png,npy,nii,nii.gz}   images (grey; RGB PNGs are converted)
    DIR/masks/<id>.<ext>                   label masks paired with the images by file stem
    DIR/masks_clean/<id>.<ext>             optional: the truth when masks/ carries errors
    DIR/split.csv                          optional: columns sample_id, split (train/val/test)
    DIR/dataset.json                       optional: {"class_names": ["background", ...]}
    DIR/manifest.csv                       optional: per-sample corruption record

Without ``split.csv`` the samples are split 70/15/15 at random (seeded). Without
``dataset.json`` the classes are ``class_0..class_K`` with K the largest label found; PNG
masks holding only 0 and 255 are read as binary masks (255 -> 1).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from noisyseg._validate import check_image, check_labels_in
from noisyseg.data._resize import resize_image, resize_mask, restore_mask
from noisyseg.data.dataset import SegDataset, read_corrupted, read_split
from noisyseg.data.io import (
    FORMATS,
    SUFFIXES,
    Geometry,
    copy_image_file,
    read_array,
    read_image,
    split_suffix,
    write_array,
    write_image,
)
from noisyseg.data.outdir import atomic_dir
from noisyseg.errors import ConfigError, DataError

__all__ = ["index_folder", "load_folder", "pair_folder", "write_folder", "write_masks"]

log = logging.getLogger(__name__)


def index_folder(folder: Path) -> dict[str, Path]:
    """Sample id (file stem) -> file, for the image and mask files of ``folder``."""
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        stem, suf = split_suffix(p)
        if suf not in SUFFIXES or suf == ".raw":
            continue
        if stem in files:
            raise DataError(f"{p}: two files share the sample id {stem!r} ({files[stem].name})")
        files[stem] = p
    return files


def pair_folder(root: Path) -> tuple[dict[str, Path], dict[str, Path], dict[str, Path] | None]:
    """The files of a folder dataset by sample id: images, masks, clean masks (or None).

    The one place that pairs ``images/``, ``masks/`` and ``masks_clean/`` by file stem, for
    the in-memory 2-D loader and the case-by-case loader alike.

    Raises
    ------
    DataError
        A missing sub-folder, no images, an image without a mask or the reverse, a
        ``masks_clean/`` that does not hold one mask per image.
    """
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise DataError(f"{root}: expected sub-folders images/ and masks/; {d.name}/ is missing")
    imgs, masks = index_folder(img_dir), index_folder(mask_dir)
    if not imgs:
        raise DataError(f"{img_dir}: no images ({', '.join(SUFFIXES)}) found")
    missing = sorted(set(imgs) - set(masks))
    if missing:
        raise DataError(f"{imgs[missing[0]]}: no mask with the same stem in {mask_dir} "
                        f"({len(missing)} image(s) unpaired)")
    extra = sorted(set(masks) - set(imgs))
    if extra:
        raise DataError(f"{masks[extra[0]]}: no image with the same stem in {img_dir} "
                        f"({len(extra)} mask(s) unpaired)")
    clean_dir = root / "masks_clean"
    cleans = index_folder(clean_dir) if clean_dir.is_dir() else None
    if cleans is not None and set(cleans) != set(imgs):
        raise DataError(f"{clean_dir}: does not hold one mask per image")
    return imgs, masks, cleans


def load_folder(path: str | Path, *, size: int | None = None, seed: int = 0,
                classes: tuple[str, ...] | None = None) -> SegDataset:
    """Load a folder dataset (layout in the module docstring).

    Parameters
    ----------
    path : str or Path
    size : int, optional
        Resize every sample to size x size (images bilinear, masks nearest neighbour).
        Required when the images differ in size.
    seed : int
        Seed of the random split used when there is no ``split.csv``.
    classes : tuple of str, optional
        Class names (overrides ``dataset.json``).

    Raises
    ------
    DataError
        Missing folders, unpaired files, unreadable files, shape mismatches, NaN images,
        labels outside the declared classes, bad ``split.csv``.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    imgs, masks, cleans = pair_folder(root)
    img_dir = root / "images"
    ids = sorted(imgs)
    images, ms, cms, geoms = [], [], [], []
    for sid in ids:
        img, geom = read_image(imgs[sid])
        img = check_image(np.squeeze(img), name=str(imgs[sid]))
        if img.ndim != 2:
            raise DataError(f"{imgs[sid]}: expected a 2-D image, got shape {img.shape} (a folder "
                            f"of volumes needs every image to be 3-D)")
        pairs = [(masks[sid], ms)] + ([] if cleans is None else [(cleans[sid], cms)])
        mask_dtype = "uint8"
        for mask_path, store in pairs:
            m, mask_dtype = _read_mask(mask_path)
            if m.shape != img.shape:
                raise DataError(f"{mask_path}: mask shape {m.shape} differs from image shape "
                                f"{img.shape} ({imgs[sid].name})")
            store.append(resize_mask(m, size))
        images.append(resize_image(img, size))
        geoms.append(replace(geom, shape=img.shape, dtype=mask_dtype,
                             format=split_suffix(masks[sid])[1]))
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise DataError(f"{img_dir}: images differ in size ({sorted(shapes)[:3]}...); "
                        f"pass a size, e.g. --data {root},size=256")
    mask_arr = np.stack(ms)
    clean_arr = np.stack(cms) if cms else None

    names = classes or _read_classes(root)
    binary_255 = False
    if names is None:
        all_masks = mask_arr if clean_arr is None else np.concatenate([mask_arr, clean_arr])
        values = np.unique(all_masks)
        if set(values.tolist()) <= {0, 255} and 255 in values.tolist():
            log.info("%s: masks hold only 0 and 255; reading them as binary masks", root)
            mask_arr = (mask_arr == 255).astype(np.uint8)
            clean_arr = None if clean_arr is None else (clean_arr == 255).astype(np.uint8)
            values = np.array([0, 1])
            binary_255 = True
        k = max(int(values.max()), 1)
        names = tuple(["background"] + [f"class_{i}" for i in range(1, k + 1)])
    for sid, m in zip(ids, mask_arr, strict=True):
        check_labels_in(m, len(names), name=str(masks[sid]))

    split = read_split(ids, root, seed=seed)
    corrupted = read_corrupted(ids, root)
    return SegDataset(images=np.stack(images), masks=mask_arr, class_names=tuple(names),
                      sample_ids=tuple(ids), split=split, clean_masks=clean_arr,
                      corrupted=corrupted, source=str(root),
                      meta={"folder": str(root), "size": size, "seed": seed,
                            "mask_scale": 255 if binary_255 else 1},
                      geometry=tuple(geoms))


def _read_mask(path: Path) -> tuple[np.ndarray, str]:
    m = read_array(path)
    dtype = str(m.dtype)
    if np.issubdtype(m.dtype, np.floating):
        if not np.all(np.isfinite(m)) or not np.all(m == np.round(m)):
            raise DataError(f"{path}: mask holds non-integer values")
    if m.size and (m.min() < 0 or m.max() > 255):
        raise DataError(f"{path}: mask labels must lie in 0..255, found {m.min()}..{m.max()}")
    return m.astype(np.uint8), dtype


def _read_classes(root: Path) -> tuple[str, ...] | None:
    meta = root / "dataset.json"
    if not meta.exists():
        return None
    try:
        names = json.loads(meta.read_text())["class_names"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{meta}: expected JSON with a 'class_names' list ({exc})") from exc
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise DataError(f"{meta}: 'class_names' must list at least 2 names, background first")
    return tuple(names)


def write_masks(folder: Path, ds: SegDataset, index: np.ndarray, masks: np.ndarray, *,
                fmt: str = "nii.gz") -> None:
    """Write ``masks`` (of samples ``index`` of ``ds``) into ``folder``, one file per sample.

    The one writer of mask files from a 2-D dataset (corrupt's ``masks/``, audit's
    ``refurbished/``). Samples with a source geometry get their source format, grid (any
    resizing undone, nearest neighbour), header and label dtype; generated ones ``fmt``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scale = int(ds.meta.get("mask_scale", 1))
    for j, m in zip(np.asarray(index), masks, strict=True):
        sid = ds.sample_ids[j]
        geom = None if ds.geometry is None else ds.geometry[j]
        if geom is None:
            write_array(folder / f"{sid}{FORMATS[fmt]}", m)
            continue
        full = restore_mask(np.asarray(m, dtype=np.uint8), geom.shape)
        if scale != 1:
            full = full * np.uint8(scale)
        write_image(folder / f"{sid}{geom.format or FORMATS[fmt]}", full, geom, dtype=geom.dtype)


def write_folder(ds: SegDataset, out: str | Path, *, fmt: str = "nii.gz",
                 manifest: pd.DataFrame | None = None, extra_json: dict | None = None,
                 extra: Callable[[Path], None] | None = None, overwrite: bool = False,
                 inputs: Sequence[str | Path | None] = ()) -> Path:
    """Write ``ds`` as a folder dataset that :func:`load_folder` reads back.

    Written atomically: into a temporary folder renamed to ``out`` at the end. Samples read
    from files (a folder or CAMUS source) keep their files' formats and geometry: images
    are copied as they are, masks are put back on the source grid with the source header
    (:func:`write_masks`), so they overlay the images in any viewer. Generated samples are
    written in ``fmt``.

    Parameters
    ----------
    fmt : {'nii.gz', 'nii', 'png', 'npy'}
        File format of generated data. PNG images are rescaled to 0..255 over the whole
        dataset's range (lossy).
    manifest : DataFrame, optional
        Written as ``manifest.csv``.
    extra_json : dict, optional
        Extra JSON files to write, ``{file_name: object}``.
    extra : callable, optional
        Called with the temporary folder before it is renamed, to add files (figures).
    inputs : sequence of path
        What the run read (its dataset, an audit folder): ``out`` may not be, contain or lie
        inside any of them (:func:`~noisyseg.data.outdir.check_out_dir`).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"fmt: expected one of {list(FORMATS)}, got {fmt!r}")
    suf = FORMATS[fmt]
    images = ds.images
    if fmt == "png" and ds.geometry is None:
        lo, hi = float(images.min()), float(images.max())
        images = np.round((images - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
    every = np.arange(len(ds))
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        (tmp / "images").mkdir()
        for j, sid in enumerate(ds.sample_ids):
            geom: Geometry | None = None if ds.geometry is None else ds.geometry[j]
            if geom is not None and geom.path:
                copy_image_file(geom.path, tmp / "images" / f"{sid}{split_suffix(Path(geom.path))[1]}")
            else:
                write_array(tmp / "images" / f"{sid}{suf}", images[j])
        write_masks(tmp / "masks", ds, every, ds.masks, fmt=fmt)
        if ds.clean_masks is not None:
            write_masks(tmp / "masks_clean", ds, every, ds.clean_masks, fmt=fmt)
        pd.DataFrame({"sample_id": ds.sample_ids, "split": ds.split}).to_csv(
            tmp / "split.csv", index=False)
        (tmp / "dataset.json").write_text(json.dumps(
            {"class_names": list(ds.class_names), "source": ds.source}, indent=2))
        if manifest is not None:
            manifest.to_csv(tmp / "manifest.csv", index=False)
        for fname, obj in (extra_json or {}).items():
            (tmp / fname).write_text(json.dumps(obj, indent=2, default=str))
        if extra is not None:
            extra(tmp)
    return Path(out)
