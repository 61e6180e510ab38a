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
import os
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from noisyseg._validate import check_image, check_labels_in, check_seed
from noisyseg.data._resize import resize_image, resize_mask, restore_mask
from noisyseg.data.dataset import Samples, read_corrupted, read_split
from noisyseg.data.io import (
    FORMATS,
    SUFFIXES,
    Geometry,
    copy_image_file,
    read_header,
    read_image,
    split_suffix,
    write_array,
    write_image,
)
from noisyseg.data.outdir import atomic_dir
from noisyseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    from noisyseg.data.cases import CaseDataset

__all__ = ["FileGrid", "check_file_name", "check_same_grid", "index_folder", "load_folder",
           "pair_folder", "read_grid", "show_path", "write_folder", "write_folder_into",
           "write_masks"]

log = logging.getLogger(__name__)

#: Largest ``size`` a 2-D source resizes to (pixels per side).
MAX_SIZE = 4096


# --------------------------------------------------------------------------- file checks
# Shared by every layout (folder, nnU-Net, Decathlon, CAMUS): names a writer can store, and
# label files on their image's grid, checked from the headers before any voxel is read.
def show_path(path: str | Path) -> str:
    r"""``path`` as one printable line: bytes that are not UTF-8 as ``\xff``, control
    characters escaped.

    >>> show_path("masks/a\nb.png")
    'masks/a\\nb.png'
    """
    text = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def check_file_name(path: str | Path) -> None:
    """Refuse a path that is not valid UTF-8 or holds a control character (a newline, a tab):
    its name becomes a sample id in CSV and Parquet records and in one-line messages.

    Raises
    ------
    DataError
        Naming the file as :func:`show_path` renders it.
    """
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"{show_path(path)}: file name is not valid UTF-8; rename it (sample ids "
                        f"are written to CSV and Parquet records)") from exc
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
        raise DataError(f"{show_path(path)}: file name holds a control character; rename it")


try:  # nibabel's "not an image" error is no OSError or ValueError (an empty .nii.gz)
    from nibabel.filebasedimages import ImageFileError as _ImageFileError
except ImportError:  # pragma: no cover
    class _ImageFileError(Exception):  # type: ignore[no-redef]
        pass


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(str(int(v)) for v in shape) if shape else "()"


@dataclass(frozen=True)
class FileGrid:
    """What a file's header says about its grid (no voxels read).

    Attributes
    ----------
    path : str
    shape : tuple of int
        Spatial shape in array order (:class:`~noisyseg.data.io.Geometry`).
    stored : tuple of int
        The shape as the file stores it (NIfTI's ``(x, y, z[, c])``, ITK's size with its
        components last, a PNG's or NumPy file's array shape): what messages show.
    components : int
        Values per voxel (channels).
    geometry : Geometry or None
        None for formats without geometry (PNG, NumPy).
    """

    path: str
    shape: tuple[int, ...]
    stored: tuple[int, ...]
    components: int
    geometry: Geometry | None


def read_grid(path: str | Path) -> FileGrid:
    """The :class:`FileGrid` of an image or label file, from its header.

    Raises
    ------
    DataError
        The file is missing, unreadable or of an unsupported type.
    """
    p = Path(path)
    suf = split_suffix(p)[1]
    try:
        if suf == ".png":
            from PIL import Image

            with Image.open(p) as im:
                w, h = im.size
            return FileGrid(str(p), (h, w), (h, w), 1, None)
        if suf == ".npy":
            shape = tuple(int(v) for v in np.load(p, mmap_mode="r", allow_pickle=False).shape)
            return FileGrid(str(p), shape, shape, 1, None)
        if suf in (".nii", ".nii.gz"):
            import nibabel as nib

            stored = tuple(int(v) for v in nib.load(str(p)).shape)
            comps = int(np.prod(stored[3:])) if len(stored) > 3 else 1
        elif suf in (".mha", ".mhd", ".nrrd", ".nhdr"):
            import SimpleITK as sitk

            r = sitk.ImageFileReader()
            r.SetFileName(str(p))
            r.ReadImageInformation()
            comps = int(r.GetNumberOfComponents())
            stored = tuple(int(v) for v in r.GetSize()) + ((comps,) if comps > 1 else ())
        else:
            raise DataError(f"{show_path(p)}: unsupported file type {suf!r}; expected one of "
                            f"{SUFFIXES}")
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{show_path(p)}: file not found") from exc
    except (OSError, ValueError, EOFError, RuntimeError, zlib.error, _ImageFileError) as exc:
        first = (str(exc).splitlines() or ["truncated?"])[0]
        raise DataError(f"{show_path(p)}: cannot read file ({type(exc).__name__}: {first})") from exc
    geom = read_header(p)
    return FileGrid(str(p), geom.shape, stored, comps, geom)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(v for v in shape if v != 1)


def check_same_grid(image: FileGrid, label: FileGrid, *, rtol: float = 1e-3,
                    direction_tol: float = 1e-4) -> None:
    """Refuse a label file that is not on its image file's grid.

    Shapes must be equal (singleton axes aside when a file has no geometry); when both files
    carry geometry, spacing must agree to ``rtol`` (relative), the origin to ``rtol`` times
    the voxel size (mm) and the direction cosines to ``direction_tol``. The label must hold
    one value per voxel.

    Raises
    ------
    DataError
        Naming both files and the two shapes, spacings, origins or directions.
    """
    lab, img = show_path(label.path), show_path(image.path)
    if label.components > 1:
        raise DataError(f"{lab}: a label map holds one value per voxel, but the file's shape is "
                        f"{_dims(label.stored)} ({label.components} values per voxel); expected the "
                        f"grid of its image {img} ({_dims(image.stored[:len(image.shape)])})")
    both = image.geometry is not None and label.geometry is not None
    same = image.shape == label.shape if both else _squeezed(image.shape) == _squeezed(label.shape)
    if not same:
        i_shape = image.stored[:len(image.shape)] if image.components > 1 else image.stored
        raise DataError(f"{lab}: label shape {_dims(label.stored)} differs from image shape "
                        f"{_dims(i_shape)} of {img}")
    if not both:
        return
    assert image.geometry is not None and label.geometry is not None
    (s_i, o_i, d_i), (s_l, o_l, d_l) = image.geometry.itk(), label.geometry.itk()
    si, sl = np.asarray(s_i), np.asarray(s_l)
    if np.any(np.abs(si - sl) > rtol * np.maximum(np.abs(si), np.abs(sl))):
        raise DataError(f"{lab}: label spacing {_fmt(s_l)} mm differs from image spacing "
                        f"{_fmt(s_i)} mm of {img}")
    if np.any(np.abs(np.asarray(o_i) - np.asarray(o_l)) > rtol * float(si.max())):
        raise DataError(f"{lab}: label origin {_fmt(o_l)} mm differs from image origin "
                        f"{_fmt(o_i)} mm of {img}")
    if np.any(np.abs(np.asarray(d_i) - np.asarray(d_l)) > direction_tol):
        raise DataError(f"{lab}: label direction {_fmt(d_l)} differs from image direction "
                        f"{_fmt(d_i)} of {img}")


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def index_folder(folder: Path) -> dict[str, Path]:
    """Sample id (file stem) -> file, for the image and mask files of ``folder``."""
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        stem, suf = split_suffix(p)
        if suf not in SUFFIXES or suf == ".raw":
            continue
        check_file_name(p)
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
                classes: tuple[str, ...] | None = None, lazy: bool = False) -> CaseDataset:
    """Load a folder dataset (layout in the module docstring).

    2-D images are held in memory on one grid (resized to ``size`` when given); volumes,
    and 2-D images with ``lazy=True``, are read one case at a time on their files' own
    grids (10,000s of images, or images of different sizes, without resizing).

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    size : int, optional
        Resize every 2-D image to size x size (images bilinear, masks nearest neighbour).
        Required when 2-D images held in memory differ in size.
    seed : int, default 0
        Seed of the random split used when there is no ``split.csv``.
    classes : tuple of str, optional
        Class names (overrides ``dataset.json``).
    lazy : bool, default False
        Read 2-D images one case at a time too.

    Returns
    -------
    CaseDataset
        In memory (:attr:`CaseDataset.samples` set) for 2-D images read eagerly, else read
        one case at a time.

    Raises
    ------
    DataError
        Missing folders, unpaired files, unreadable files, shape mismatches, NaN images,
        labels outside the declared classes, bad ``split.csv``.
    ConfigError
        ``size`` for cases read one at a time; a bad seed.

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import synthetic_echo
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = write_folder(synthetic_echo(n=4, size=32, seed=0), Path(d) / "echo", fmt="png")
    ...     ds = load_folder(Path(d) / "echo")
    ...     len(ds), ds.shape
    (4, (32, 32))
    """
    from noisyseg.data.cases import folder_is_volumetric, read_folder_cases

    if lazy or folder_is_volumetric(Path(path)):
        if size is not None:
            what = "cases read one at a time" if lazy else "volumes"
            raise ConfigError(f"size: resizes 2-D images; {what} are kept on their own grid")
        return read_folder_cases(path, seed=seed, classes=classes)
    root = Path(path)
    check_file_name(root)
    check_seed(seed)
    if size is not None and not 1 <= int(size) <= MAX_SIZE:
        raise ConfigError(f"size: expected 1 to {MAX_SIZE} pixels, got {size}")
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    imgs, masks, cleans = pair_folder(root)
    img_dir = root / "images"
    ids = sorted(imgs)
    for sid in ids:  # every mask on its image's grid, from the headers, before reading
        grid = read_grid(imgs[sid])
        for m in [masks[sid]] + ([] if cleans is None else [cleans[sid]]):
            check_same_grid(grid, read_grid(m))
    images, ms, cms, geoms = [], [], [], []
    for sid in ids:
        raw, geom = read_image(imgs[sid])
        img = check_image(np.squeeze(raw), name=str(imgs[sid]))
        if img.ndim != 2:
            raise DataError(f"{imgs[sid]}: expected a 2-D image (one that is 2-D once axes of "
                            f"length 1 are dropped), got an array of shape {raw.shape} (a folder "
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
    files = [masks[i] for i in ids] + ([] if cleans is None else [cleans[i] for i in ids])
    all_masks = mask_arr if clean_arr is None else np.concatenate([mask_arr, clean_arr])
    binary_255 = _binary_255(files, all_masks, names)
    if binary_255:
        log.info("%s: masks hold only 0 and 255; reading them as binary masks", root)
        mask_arr = (mask_arr == 255).astype(np.uint8)
        clean_arr = None if clean_arr is None else (clean_arr == 255).astype(np.uint8)
    if names is None:
        k = 1 if binary_255 else max(int(all_masks.max()), 1)
        names = tuple(["background"] + [f"class_{i}" for i in range(1, k + 1)])
    for sid, m in zip(ids, mask_arr, strict=True):
        check_labels_in(m, len(names), name=str(masks[sid]))
    if clean_arr is not None and cleans is not None:
        for sid, m in zip(ids, clean_arr, strict=True):
            check_labels_in(m, len(names), name=str(cleans[sid]))

    split = read_split(ids, root, seed=seed)
    corrupted = read_corrupted(ids, root)
    from noisyseg.data.cases import CaseDataset

    return CaseDataset.from_samples(Samples(
        images=np.stack(images), masks=mask_arr, class_names=tuple(names), sample_ids=tuple(ids),
        split=split, clean_masks=clean_arr, corrupted=corrupted, source=str(root),
        meta={"folder": str(root), "size": size, "seed": seed,
              "mask_scale": 255 if binary_255 else 1},
        geometry=tuple(geoms)), root=Path(root))


def binary_255_values(values: set[int], names: tuple[str, ...] | None, path: str | Path) -> bool:
    """Whether masks holding ``values`` are 0/255 binary masks (read as 0/1).

    They are when they hold 255 and nothing but 0 and 255, and the classes are not declared
    or are two. A 255 beside other values is refused unless more than 255 classes are
    declared: a stray value in a binary mask (anti-aliasing, a JPEG round trip) would
    otherwise make 256 classes.

    Raises
    ------
    DataError
        Naming ``path`` (the first file holding a value besides 0 and 255) and its values.
    """
    if 255 not in values or (names is not None and len(names) > 255):
        return False
    stray = sorted(values - {0, 255})
    if stray:
        raise DataError(f"{show_path(path)}: values {stray[:5]} besides 0 and 255; a binary mask must "
                        f"hold only 0 and 255 (or 0 and 1), and a mask of more classes needs its "
                        f"class names in dataset.json")
    return names is None or len(names) == 2


def _binary_255(files: list[Path], masks: np.ndarray, names: tuple[str, ...] | None) -> bool:
    values = set(np.unique(masks).tolist())
    if 255 not in values or (names is not None and len(names) > 255):
        return False
    path = files[0]
    for f, m in zip(files, masks, strict=True):
        if np.any((m != 0) & (m != 255)):
            path = f
            break
    return binary_255_values(values, names, path)


def _read_mask(path: Path) -> tuple[np.ndarray, str]:
    raw = read_image(path)[0]
    m = np.squeeze(raw)
    if m.ndim != 2:
        raise DataError(f"{path}: expected a 2-D mask (one that is 2-D once axes of length 1 are "
                        f"dropped), got an array of shape {raw.shape}")
    dtype = str(m.dtype)
    if np.issubdtype(m.dtype, np.floating):
        if not np.all(np.isfinite(m)) or not np.all(m == np.round(m)):
            raise DataError(f"{path}: mask holds non-integer values")
    elif not np.issubdtype(m.dtype, np.integer) and m.dtype != bool:
        raise DataError(f"{path}: expected integer labels, got dtype {m.dtype}")
    if m.size and (m.min() < 0 or m.max() > 255):
        raise DataError(f"{path}: mask labels must lie in 0..255, found {m.min()}..{m.max()}")
    return m.astype(np.uint8), dtype


def _read_classes(root: Path) -> tuple[str, ...] | None:
    meta = root / "dataset.json"
    if not meta.exists():
        return None
    try:
        names = json.loads(meta.read_text())["class_names"]
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSON and UTF-8 errors too
        raise DataError(f"{meta}: expected JSON with a 'class_names' list ({exc})") from exc
    if not isinstance(names, list) or not 2 <= len(names) <= 256 or \
            not all(isinstance(n, str) for n in names):
        raise DataError(f"{meta}: 'class_names' must list 2 to 256 names, background first")
    return tuple(names)


def write_masks(folder: Path, ds: Samples | CaseDataset, index: np.ndarray, masks: np.ndarray, *,
                fmt: str = "nii.gz") -> list[Path]:
    """Write ``masks`` (of samples ``index`` of ``ds``) into ``folder``, one file per sample.

    The one writer of mask files from a 2-D dataset (corrupt's ``masks/``, audit's
    ``refurbished/``). Samples with a source geometry get their source format, grid (any
    resizing undone, nearest neighbour), header and label dtype; generated ones ``fmt``.
    Returns the paths written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scale = int(ds.meta.get("mask_scale", 1))
    out = []
    for j, m in zip(np.asarray(index), masks, strict=True):
        sid = ds.sample_ids[j]
        geom = None if ds.geometry is None else ds.geometry[j]
        if geom is None:
            write_array(folder / f"{sid}{FORMATS[fmt]}", m)
            out.append(folder / f"{sid}{FORMATS[fmt]}")
            continue
        full = restore_mask(np.asarray(m, dtype=np.uint8), geom.shape)
        if scale != 1:
            full = full * np.uint8(scale)
        dst = folder / f"{sid}{geom.format or FORMATS[fmt]}"
        write_image(dst, full, geom, dtype=geom.dtype)
        out.append(dst)
    return out


def write_folder(ds: CaseDataset, out: str | Path, *, fmt: str = "nii.gz",
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
    ds : CaseDataset
        The dataset to write.
    out : str or Path
        The folder to create.
    fmt : {'nii.gz', 'nii', 'png', 'npy', 'mha', 'nrrd'}, default 'nii.gz'
        File format of generated data (a key of :data:`~noisyseg.data.io.FORMATS`). PNG
        images are rescaled to 0..255 over the whole dataset's range (lossy).
    manifest : DataFrame, optional
        Written as ``manifest.csv``.
    extra_json : dict, optional
        Extra JSON files to write, ``{file_name: object}``.
    extra : callable, optional
        Called with the temporary folder before it is renamed, to add files (figures).
    overwrite : bool, default False
        Replace a non-empty ``out``.
    inputs : sequence of str or Path
        What the run read (its dataset, an audit folder): ``out`` may not be, contain or lie
        inside any of them (:func:`~noisyseg.data.outdir.check_out_dir`).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        ``fmt`` not in :data:`~noisyseg.data.io.FORMATS`; ``out`` is, contains or lies
        inside an input, has a file as a parent, or is not empty without ``overwrite``.
    WriteError
        The folder cannot be created or written.

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import synthetic_echo
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = write_folder(synthetic_echo(n=4, size=32, seed=0), Path(d) / "echo", fmt="npy")
    ...     len(load_folder(out))
    4
    """
    if fmt not in FORMATS:
        raise ConfigError(f"fmt: expected one of {list(FORMATS)}, got {fmt!r}")
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_folder_into(ds, tmp, fmt=fmt, manifest=manifest, extra_json=extra_json)
        if extra is not None:
            extra(tmp)
    return Path(out)


def write_folder_into(ds: CaseDataset, folder: Path, *, fmt: str = "nii.gz",
                      manifest: pd.DataFrame | None = None,
                      extra_json: dict | None = None) -> None:
    """The files of :func:`write_folder`, written into ``folder`` (an existing, empty
    folder: the caller's temporary one, renamed when everything is in it)."""
    if fmt not in FORMATS:
        raise ConfigError(f"fmt: expected one of {list(FORMATS)}, got {fmt!r}")
    suf = FORMATS[fmt]
    tmp = Path(folder)
    images = ds.images
    if fmt == "png" and ds.geometry is None:
        lo, hi = float(images.min()), float(images.max())
        images = np.round((images - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
    every = np.arange(len(ds))
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
