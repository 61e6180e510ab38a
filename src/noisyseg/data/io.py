"""Reading and writing single 2-D arrays: PNG, NumPy, NIfTI and MetaImage.

Orientation: arrays are ``(H, W)`` with rows running down the image (depth, for ultrasound).
nibabel returns the transpose of that for 2-D NIfTI files (it indexes ``(x, y)``), SimpleITK
returns ``(y, x)``; :func:`read_array` transposes NIfTI data so both agree, and
:func:`write_array` transposes back, so a file written here opens the same way in ITK-SNAP.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from noisyseg.errors import ConfigError, DataError

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "atomic_dir",
    "check_out_dir",
    "read_array",
    "split_suffix",
    "write_array",
]

#: Output formats and their file suffixes.
FORMATS = {"nii.gz": ".nii.gz", "nii": ".nii", "png": ".png", "npy": ".npy"}
#: Suffixes :func:`read_array` understands.
SUFFIXES = (".nii.gz", ".nii", ".png", ".npy", ".mhd", ".nrrd")


def split_suffix(path: Path) -> tuple[str, str]:
    """Split ``path``'s name into stem and a known suffix (``'.nii.gz'`` counts as one)."""
    name = path.name
    for suf in SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)], suf
    return path.stem, path.suffix.lower()


def read_array(path: str | Path) -> np.ndarray:
    """Read a 2-D array from ``path``.

    Parameters
    ----------
    path : str or Path
        ``.png`` (grey or RGB, RGB is converted to grey), ``.npy``, ``.nii``/``.nii.gz``
        or ``.mhd``/``.nrrd``. Singleton dimensions are dropped.

    Returns
    -------
    (H, W) ndarray in the file's dtype.

    Raises
    ------
    DataError
        The file is missing, unreadable, truncated, or not 2-D.
    """
    p = Path(path)
    _, suf = split_suffix(p)
    try:
        if suf == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif suf == ".png":
            from PIL import Image

            with Image.open(p) as im:
                im.load()
                if im.mode in ("RGB", "RGBA", "P", "LA"):
                    im = im.convert("L")
                arr = np.asarray(im)
        elif suf in (".nii", ".nii.gz"):
            import nibabel as nib

            arr = np.asarray(nib.load(str(p)).dataobj)
            arr = np.squeeze(arr)
            if arr.ndim == 2:
                arr = arr.T
        elif suf in (".mhd", ".nrrd"):
            import SimpleITK as sitk

            arr = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        else:
            raise DataError(f"{p}: unsupported file type {suf!r}; expected one of {SUFFIXES}")
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{p}: file not found") from exc
    except (OSError, ValueError, EOFError, RuntimeError, zlib.error) as exc:
        raise DataError(f"{p}: cannot read file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'truncated?'})") from exc
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim != 2:
        raise DataError(f"{p}: expected a 2-D image, got shape {arr.shape}")
    return arr


def write_array(path: str | Path, arr: np.ndarray) -> None:
    """Write a 2-D array, choosing the format from ``path``'s suffix (see :data:`FORMATS`)."""
    p = Path(path)
    _, suf = split_suffix(p)
    a = np.asarray(arr)
    if suf == ".npy":
        np.save(p, a, allow_pickle=False)
    elif suf == ".png":
        from PIL import Image

        if a.dtype != np.uint8:
            raise ConfigError(f"{p}: PNG output needs uint8 data, got {a.dtype}")
        Image.fromarray(a).save(p)
    elif suf in (".nii", ".nii.gz"):
        import nibabel as nib

        img = nib.Nifti1Image(np.ascontiguousarray(a.T), affine=np.eye(4))
        img.header.set_data_dtype(a.dtype)
        nib.save(img, str(p))
    else:
        raise ConfigError(f"{p}: unsupported output format {suf!r}; expected one of "
                          f"{list(FORMATS)}")


def check_out_dir(out: str | Path, *, overwrite: bool = False) -> Path:
    """Raise :class:`ConfigError` if ``out`` exists, is not empty, and ``overwrite`` is false."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(f"out: {out} exists and is not empty (overwrite=True replaces it)")
    return out


@contextmanager
def atomic_dir(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``out``; rename it to ``out`` on success.

    On any error the temporary folder is removed and ``out`` is left as it was.

    Raises
    ------
    ConfigError
        ``out`` exists, is not empty and ``overwrite`` is false.
    """
    out = check_out_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
