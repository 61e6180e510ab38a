"""Reading and writing images and masks of any dimension with their geometry.

Formats: NIfTI (nibabel), MetaImage / NRRD (SimpleITK), PNG and NumPy (no geometry).

Orientation: arrays index the file's axes in reverse, ``(z, y, x)`` for a volume and
``(rows, columns)`` for a 2-D image, with channels first: SimpleITK's (and nnU-Net's) order.
nibabel returns ``(x, y, z)``; :func:`read_image` transposes NIfTI data so both agree, and
:func:`write_image` transposes back. Every file read comes with a :class:`Geometry` (affine,
spacing, source format and dtype, the source path); a mask written with it overlays the
source image exactly in ITK-SNAP or 3D Slicer.
"""

from __future__ import annotations

import shutil
import threading
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from noisyseg.data.outdir import atomic_dir, check_out_dir
from noisyseg.errors import ConfigError, DataError

__all__ = [
    "read_npy",
    "read_npz",
    "FORMATS",
    "Geometry",
    "SUFFIXES",
    "atomic_dir",
    "check_out_dir",
    "copy_image_file",
    "read_array",
    "read_header",
    "read_image",
    "split_suffix",
    "write_array",
    "write_image",
]

#: Output formats and their file suffixes.
FORMATS = {"nii.gz": ".nii.gz", "nii": ".nii", "png": ".png", "npy": ".npy", "mha": ".mha",
           "nrrd": ".nrrd"}
#: Suffixes :func:`read_array` understands.
SUFFIXES = (".nii.gz", ".nii", ".png", ".npy", ".mha", ".mhd", ".nrrd", ".nhdr")


def split_suffix(path: Path) -> tuple[str, str]:
    """Split ``path``'s name into stem and a known suffix (``'.nii.gz'`` counts as one)."""
    name = path.name
    for suf in SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)], suf
    return path.stem, path.suffix.lower()


_LPS = np.diag([-1.0, -1.0, 1.0])  # ITK's LPS world <-> nibabel's RAS world


@dataclass(frozen=True)
class Geometry:
    """Where an array's voxels lie in the world, and how its source file stores them.

    Arrays in noisyseg index the file's axes in reverse (``(z, y, x)`` for a volume,
    ``(rows, columns)`` for a 2-D image): SimpleITK's order, and nnU-Net's. Channels, when
    there are several, come first.

    Attributes
    ----------
    shape : tuple of int
        Spatial shape, array order.
    spacing : tuple of float
        Voxel size per array axis, in mm (1.0 for formats without geometry: PNG, NumPy).
    affine : (4, 4) tuple of tuples
        nibabel's affine: file voxel index ``(i, j, k)`` (the reverse of array order) to
        RAS+ world mm. Computed from spacing, origin and direction for ITK formats.
    format : str
        Suffix of the source file (``'.nii.gz'``, ``'.nrrd'``, ...); ``''`` when generated.
    dtype : str
        Data type stored in the source file (labels are written back in it).
    path : str or None
        The source file: writers copy its header (qform/sform codes, units, description).
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    affine: tuple[tuple[float, ...], ...]
    format: str = ""
    dtype: str = "uint8"
    path: str | None = None

    @classmethod
    def from_spacing(cls, shape: tuple[int, ...], spacing: tuple[float, ...] | None = None, *,
                     origin: tuple[float, ...] | None = None, dtype: str = "uint8") -> Geometry:
        """A generated geometry: axis-aligned, LPS directions (the DICOM convention)."""
        sp = tuple(float(v) for v in (spacing or (1.0,) * len(shape)))
        if len(sp) != len(shape):
            raise ConfigError(f"spacing: {len(sp)} values for a {len(shape)}-D shape {shape}")
        xyz = list(sp[::-1]) + [1.0] * (3 - len(sp))
        aff = np.eye(4)
        aff[:3, :3] = _LPS @ np.diag(xyz)
        if origin is not None:
            o = list(origin) + [0.0] * (3 - len(origin))
            aff[:3, 3] = _LPS @ np.asarray(o, dtype=float)
        return cls(tuple(int(v) for v in shape), sp, _tup(aff), "", str(np.dtype(dtype)))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.shape)

    @property
    def affine_array(self) -> np.ndarray:
        """:attr:`affine` as a (4, 4) float64 array."""
        return np.asarray(self.affine, dtype=np.float64)

    def itk(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """``(spacing, origin, direction)`` in ITK's convention (index order, LPS world)."""
        a = self.affine_array
        n = self.ndim
        m = _LPS @ a[:3, :3]
        sp = np.linalg.norm(m, axis=0)
        sp[sp == 0] = 1.0
        d = m / sp
        origin = _LPS @ a[:3, 3]
        return (tuple(float(v) for v in sp[:n]), tuple(float(v) for v in origin[:n]),
                tuple(float(v) for v in d[:n, :n].ravel()))

    def with_shape(self, shape: tuple[int, ...]) -> Geometry:
        """The same world extent sampled on a grid of ``shape`` (voxel centres rescaled)."""
        shape = tuple(int(v) for v in shape)
        if shape == self.shape:
            return self
        f_arr = np.asarray(self.shape, float) / np.asarray(shape, float)
        f = np.ones(3)
        f[: self.ndim] = f_arr[::-1]
        a = self.affine_array.copy()
        # index i' samples i = (i' + 0.5) * f - 0.5 of the source grid
        a[:3, 3] = a[:3, 3] + a[:3, :3] @ (0.5 * f - 0.5)
        a[:3, :3] = a[:3, :3] * f
        return replace(self, shape=shape, spacing=tuple(s * k for s, k in zip(self.spacing, f_arr,
                                                                              strict=True)),
                       affine=_tup(a), path=None)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"shape": list(self.shape), "spacing": [round(v, 6) for v in self.spacing],
                "affine": [list(r) for r in self.affine], "format": self.format,
                "dtype": self.dtype, "path": self.path}


def _tup(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(a))


def _affine_from_itk(spacing: tuple[float, ...], origin: tuple[float, ...],
                     direction: tuple[float, ...]) -> np.ndarray:
    n = len(spacing)
    d = np.eye(3)
    d[:n, :n] = np.asarray(direction, dtype=float).reshape(n, n)
    sp = np.ones(3)
    sp[:n] = spacing
    o = np.zeros(3)
    o[:n] = origin
    a = np.eye(4)
    a[:3, :3] = _LPS @ d @ np.diag(sp)
    a[:3, 3] = _LPS @ o
    return a


def _read_error(p: Path, exc: BaseException) -> DataError:
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{p}: file not found")
    first = str(exc).splitlines()[0] if str(exc) else "truncated?"
    return DataError(f"{p}: cannot read file ({type(exc).__name__}: {first})")


def _itk_dtype(pixel_id: int) -> str:
    """NumPy dtype name of a SimpleITK pixel type (a vector type's component type)."""
    import SimpleITK as sitk

    for name in ("UInt8", "Int8", "UInt16", "Int16", "UInt32", "Int32", "UInt64", "Int64",
                 "Float32", "Float64"):
        if pixel_id in (getattr(sitk, f"sitk{name}"), getattr(sitk, f"sitkVector{name}")):
            return name.lower()
    raise DataError(f"unsupported ITK pixel type {sitk.GetPixelIDValueAsString(pixel_id)!r}")


def read_header(path: str | Path) -> Geometry:
    """The :class:`Geometry` of an image file without reading its voxels (NIfTI, ITK formats).

    The shape excludes channels (a 4-D NIfTI's last axis, an ITK vector image's components).
    """
    p = Path(path)
    _, suf = split_suffix(p)
    try:
        if suf in (".nii", ".nii.gz"):
            import nibabel as nib

            img = nib.load(str(p))
            shape = tuple(int(v) for v in img.shape)
            spatial = shape[:3] if len(shape) >= 3 else shape
            while len(spatial) > 2 and spatial[-1] == 1:
                spatial = spatial[:-1]
            zooms = img.header.get_zooms()[: len(spatial)]
            return Geometry(tuple(spatial[::-1]), tuple(float(z) for z in zooms[::-1]),
                            _tup(img.affine), suf, str(img.get_data_dtype()), str(p))
        if suf in (".mha", ".mhd", ".nrrd", ".nhdr"):
            import SimpleITK as sitk

            r = sitk.ImageFileReader()
            r.SetFileName(str(p))
            r.ReadImageInformation()
            size, sp = r.GetSize(), r.GetSpacing()
            aff = _affine_from_itk(sp, r.GetOrigin(), r.GetDirection())
            return Geometry(tuple(int(v) for v in size[::-1]), tuple(float(v) for v in sp[::-1]),
                            _tup(aff), suf, _itk_dtype(r.GetPixelID()), str(p))
    except (OSError, ValueError, EOFError, RuntimeError, zlib.error) as exc:
        raise _read_error(p, exc) from exc
    arr = read_image(p)[0]
    return replace(Geometry.from_spacing(arr.shape[-2:] if arr.ndim > 2 else arr.shape),
                   format=suf, dtype=str(arr.dtype), path=str(p))


#: ``np.load`` parses ``.npy`` headers with ``ast.literal_eval``, which is not thread-safe on
#: CPython 3.11 before 3.11.8 (python/cpython#106905: "AST constructor recursion depth
#: mismatch" when threads parse at once); headers are parsed under this lock, the data is
#: read (and decompressed) outside it.
_NPY_HEADER_LOCK = threading.Lock()


def _read_npy_stream(fp: object) -> np.ndarray:
    from numpy.lib import format as npf

    version = npf.read_magic(fp)
    with _NPY_HEADER_LOCK:
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npf.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise ValueError("object arrays are not read (allow_pickle is off)")
    count = int(np.prod(shape, dtype=np.int64))
    arr = np.empty(count, dtype=dtype)
    view, got = memoryview(arr).cast("B"), 0
    while got < view.nbytes:
        n = fp.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise EOFError(f"truncated array: {got} of {view.nbytes} bytes")
        got += n
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def read_npy(path: str | Path) -> np.ndarray:
    """``np.load(path, allow_pickle=False)`` for a ``.npy`` file, safe to call from threads
    (see ``_NPY_HEADER_LOCK``)."""
    with open(path, "rb") as fp:
        return _read_npy_stream(fp)


def read_npz(path: str | Path, keys: tuple[str, ...] = ()) -> tuple[str, np.ndarray]:
    """The first array of ``keys`` in an ``.npz`` file (or its only array) as ``(key, array)``,
    safe to call from threads; KeyError listing the keys when none is there."""
    with zipfile.ZipFile(path) as zf:
        names = [n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")]
        key = next((k for k in keys if k in names), names[0] if len(names) == 1 else None)
        if key is None:
            raise KeyError(names)
        with zf.open(f"{key}.npy") as fp:
            return key, _read_npy_stream(fp)


def read_image(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read an image or label file of any dimension with its geometry.

    Parameters
    ----------
    path : str or Path
        NIfTI (``.nii``, ``.nii.gz``; 2-D, 3-D, or 4-D with channels last), ITK formats
        (``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr``; vector images for channels), ``.png``
        (grey, or RGB converted to grey) or ``.npy``.

    Returns
    -------
    array : ndarray
        In the file's dtype, axes in array order (the reverse of the file's index order, see
        :class:`Geometry`), channels first when there are several. Trailing singleton
        spatial axes of NIfTI files (a 2-D image stored as ``(X, Y, 1)``) are dropped.
    geometry : Geometry

    Raises
    ------
    DataError
        The file is missing, unreadable, truncated, or of an unsupported type.
    """
    p = Path(path)
    _, suf = split_suffix(p)
    try:
        if suf == ".npy":
            arr = read_npy(p)
            geom = Geometry.from_spacing(arr.shape)
        elif suf == ".png":
            from PIL import Image

            with Image.open(p) as im:
                im.load()
                if im.mode in ("RGB", "RGBA", "P", "LA"):
                    im = im.convert("L")
                arr = np.asarray(im)
            geom = Geometry.from_spacing(arr.shape)
        elif suf in (".nii", ".nii.gz"):
            import nibabel as nib

            img = nib.load(str(p))
            data = np.asanyarray(img.dataobj)
            if data.ndim > 4:
                raise DataError(f"{p}: expected at most 4 dimensions (x, y, z, channel), got "
                                f"shape {data.shape}")
            channels = data.ndim == 4 and data.shape[3] > 1
            if data.ndim == 4 and not channels:
                data = data[..., 0]
            spatial = data.ndim - (1 if channels else 0)
            while spatial > 2 and data.shape[spatial - 1] == 1:
                data = data[:, :, 0] if not channels else data[:, :, 0, :]
                spatial -= 1
            arr = data.T  # (x, y[, z][, c]) -> ([c, ][z, ]y, x)
            zooms = img.header.get_zooms()[:spatial]
            geom = Geometry(tuple(int(v) for v in arr.shape[-spatial:]),
                            tuple(float(z) for z in zooms[::-1]), _tup(img.affine), suf,
                            str(img.get_data_dtype()), str(p))
        elif suf in (".mha", ".mhd", ".nrrd", ".nhdr"):
            import SimpleITK as sitk

            img = sitk.ReadImage(str(p))
            arr = sitk.GetArrayFromImage(img)
            if img.GetNumberOfComponentsPerPixel() > 1:
                arr = np.moveaxis(arr, -1, 0)
            sp = img.GetSpacing()
            geom = Geometry(tuple(int(v) for v in img.GetSize()[::-1]),
                            tuple(float(v) for v in sp[::-1]),
                            _tup(_affine_from_itk(sp, img.GetOrigin(), img.GetDirection())), suf,
                            str(arr.dtype), str(p))
        else:
            raise DataError(f"{p}: unsupported file type {suf!r}; expected one of {SUFFIXES}")
    except DataError:
        raise
    except (OSError, ValueError, EOFError, RuntimeError, zlib.error) as exc:
        raise _read_error(p, exc) from exc
    return arr, replace(geom, format=suf, path=str(p))


def read_array(path: str | Path) -> np.ndarray:
    """Read a 2-D array from ``path`` (see :func:`read_image`); singleton axes are dropped.

    Raises
    ------
    DataError
        The file is missing, unreadable, truncated, or not 2-D.
    """
    arr = np.squeeze(read_image(path)[0])
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D image, got shape {arr.shape}")
    return arr


def write_image(path: str | Path, arr: np.ndarray, geometry: Geometry | None = None, *,
                dtype: str | np.dtype | None = None) -> None:
    """Write ``arr`` (array order, see :class:`Geometry`) with ``geometry``; format from the suffix.

    NIfTI output whose geometry comes from a NIfTI file copies that file's header (qform and
    sform with their codes, units, description), so the written mask overlays the source
    image exactly; otherwise the affine (NIfTI) or spacing/origin/direction (ITK formats)
    are set from ``geometry``. PNG and NumPy files carry no geometry.

    Parameters
    ----------
    dtype : optional
        Stored data type (default: ``geometry.dtype`` for labels read from a file, else
        ``arr``'s dtype).

    Raises
    ------
    ConfigError
        Unsupported suffix; PNG output of non-uint8 data; ``arr`` does not match
        ``geometry``'s shape.
    """
    p = Path(path)
    _, suf = split_suffix(p)
    a = np.asarray(arr)
    if geometry is not None and tuple(a.shape[-geometry.ndim:]) != geometry.shape:
        raise ConfigError(f"{p}: array shape {a.shape} does not match the geometry's "
                          f"{geometry.shape}")
    out_dtype = np.dtype(dtype) if dtype is not None else a.dtype
    if a.dtype != out_dtype:
        a = a.astype(out_dtype)
    if suf == ".npy":
        np.save(p, a, allow_pickle=False)
    elif suf == ".png":
        from PIL import Image

        if a.dtype != np.uint8 or a.ndim != 2:
            raise ConfigError(f"{p}: PNG output needs 2-D uint8 data, got {a.ndim}-D {a.dtype}")
        Image.fromarray(a).save(p)
    elif suf in (".nii", ".nii.gz"):
        import nibabel as nib

        geom = geometry or Geometry.from_spacing(a.shape)
        header = None
        if geom.path and split_suffix(Path(geom.path))[1] in (".nii", ".nii.gz"):
            try:
                header = nib.load(geom.path).header.copy()
            except (OSError, ValueError, EOFError, zlib.error):
                header = None
        if header is not None:
            data = np.ascontiguousarray(a.T)
            hshape = tuple(header.get_data_shape())
            if data.shape != hshape and hshape[:data.ndim] == data.shape and \
                    int(np.prod(hshape)) == data.size:
                data = data.reshape(hshape)  # keep the source's trailing singleton axes
            img = nib.Nifti1Image(data, None, header=header)
            img.set_qform(*header.get_qform(coded=True))
            img.set_sform(*header.get_sform(coded=True))
        else:
            img = nib.Nifti1Image(np.ascontiguousarray(a.T), geom.affine_array)
            img.set_qform(geom.affine_array, code=1)
            img.set_sform(geom.affine_array, code=1)
        img.header.set_data_dtype(a.dtype)
        img.header.set_slope_inter(1.0, 0.0)
        nib.save(img, str(p))
    elif suf in (".mha", ".mhd", ".nrrd", ".nhdr"):
        import SimpleITK as sitk

        geom = geometry or Geometry.from_spacing(a.shape)
        img = sitk.GetImageFromArray(a, isVector=a.ndim > geom.ndim)
        sp, origin, direction = geom.itk()
        img.SetSpacing(sp)
        img.SetOrigin(origin)
        img.SetDirection(direction)
        sitk.WriteImage(img, str(p), useCompression=True)
    else:
        raise ConfigError(f"{p}: unsupported output format {suf!r}; expected one of "
                          f"{list(FORMATS)}")


def write_array(path: str | Path, arr: np.ndarray, geometry: Geometry | None = None) -> None:
    """Write a 2-D array (see :func:`write_image`)."""
    write_image(path, arr, geometry)


def copy_image_file(src: str | Path, dst: str | Path) -> None:
    """Copy an image file byte for byte (MetaImage headers with their data file, renamed)."""
    src, dst = Path(src), Path(dst)
    if split_suffix(src)[1] == ".mhd":  # the header names its .raw: rewrite both together
        import SimpleITK as sitk

        sitk.WriteImage(sitk.ReadImage(str(src)), str(dst))
    else:
        shutil.copyfile(src, dst)
