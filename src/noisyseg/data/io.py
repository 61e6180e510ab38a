"""Reading and writing images and masks of any dimension with their geometry.

Formats: NIfTI (nibabel), MetaImage / NRRD (SimpleITK), PNG and NumPy (no geometry).

Orientation: arrays index the file's axes in reverse, ``(z, y, x)`` for a volume and
``(rows, columns)`` for a 2-D image, with channels first: SimpleITK's (and nnU-Net's) order.
nibabel returns ``(x, y, z)``; :func:`read_image` transposes NIfTI data so both agree, and
:func:`write_image` transposes back. Every file read comes with a :class:`Geometry` (affine,
spacing, source format and dtype, the source path); a mask written with it overlays the
source image exactly in ITK-SNAP or 3D Slicer.

Refused files: every reader raises :class:`~noisyseg.errors.DataError` (one line, naming the
file) for a missing, truncated, corrupt or unsupported file, never another exception. Before
allocating, a reader checks the data size a header declares (shape x bytes per voxel) against
what the file can hold (its size after the header; at most 1100 times its size when
compressed: deflate cannot do better than about 1032:1) and against a limit of ``2**33``
bytes (8 GiB) per file, which the environment variable ``NOISYSEG_MAX_IMAGE_BYTES`` (a number
of bytes) overrides. PNG files are also held to PIL's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS`` pixels).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
import sys
import threading
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from noisyseg.data.outdir import atomic_dir, check_out_dir
from noisyseg.errors import ConfigError, DataError, NoisysegError

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

    Parameters
    ----------
    shape : tuple of int
        Spatial shape, array order.
    spacing : tuple of float
        Voxel size per array axis, in mm.
    affine : tuple of tuples of float
        (4, 4) voxel-to-RAS+ affine, in mm.
    format : str, default ''
        Suffix of the source file.
    dtype : str, default 'uint8'
        Data type stored in the source file.
    path : str or None, default None
        The source file.

    Examples
    --------
    >>> g = Geometry.from_spacing((2, 3), (2.0, 0.5))
    >>> g.shape, g.spacing, g.ndim
    ((2, 3), (2.0, 0.5), 2)
    >>> [float(v) for v in g.with_shape((4, 6)).spacing]
    [1.0, 0.25]
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


#: Environment variable: the most bytes of voxel data a reader allocates for one file.
MAX_IMAGE_BYTES_ENV = "NOISYSEG_MAX_IMAGE_BYTES"
_DEFAULT_MAX_IMAGE_BYTES = 2**33
#: Deflate (gzip, zlib, PNG, zip) expands at most ~1032:1; a header declaring more data than
#: this many times the compressed bytes is corrupt.
_DEFLATE_RATIO = 1100


def _max_image_bytes() -> int:
    """The per-file limit on voxel data: ``NOISYSEG_MAX_IMAGE_BYTES`` or 2**33 bytes."""
    text = os.environ.get(MAX_IMAGE_BYTES_ENV, "").strip()
    if not text:
        return _DEFAULT_MAX_IMAGE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{MAX_IMAGE_BYTES_ENV}={text!r}: expected a positive number of bytes")
    return value


def _check_declared(p: Path, nbytes: int, capacity: int | None, holds: str, *,
                    memory: int | None = None) -> None:
    """Refuse a header declaring ``nbytes`` of data when the file can hold at most
    ``capacity`` bytes (``holds`` says why), or when reading it needs more than the limit."""
    if capacity is not None and nbytes > capacity:
        raise DataError(f"{p}: header declares {nbytes:,} bytes of data, but {holds} (truncated "
                        f"file or corrupt header)")
    limit = _max_image_bytes()
    need = max(nbytes, memory or 0)
    if need > limit:
        raise DataError(f"{p}: reading it needs {need:,} bytes, more than the limit of "
                        f"{limit:,} (set {MAX_IMAGE_BYTES_ENV} to read larger files)")


def _is_read_error(exc: BaseException) -> bool:
    """Whether ``exc`` is what a file parser (nibabel, SimpleITK, PIL, numpy, zipfile, gzip)
    raises for a file it cannot read, rather than a bug."""
    kinds: list[type[BaseException]] = [
        OSError, ValueError, EOFError, RuntimeError, zlib.error, struct.error, KeyError,
        IndexError, TypeError, OverflowError, MemoryError, SyntaxError, zipfile.BadZipFile,
        RecursionError, tokenize.TokenError]  # TokenError: numpy's .npy header parser
    if "nibabel" in sys.modules:
        from nibabel.filebasedimages import ImageFileError
        from nibabel.spatialimages import HeaderDataError, HeaderTypeError
        from nibabel.wrapstruct import WrapStructError

        kinds += [ImageFileError, HeaderDataError, HeaderTypeError, WrapStructError]
    if "PIL.Image" in sys.modules:
        from PIL import Image

        kinds += [Image.DecompressionBombError, Image.DecompressionBombWarning]
    return isinstance(exc, tuple(kinds))


def _read_error(p: Path, exc: BaseException) -> DataError:
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{p}: file not found")
    if isinstance(exc, IsADirectoryError):
        return DataError(f"{p}: is a folder, not a file")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("Exception thrown in SimpleITK"):
        # SimpleITK: "Exception thrown ...: file.cxx:410:", "itk::ERROR: Class(0x..): what",
        # then (NRRD) the details, most specific last
        lines = [re.sub(r"^itk::ERROR: \w+\(0x[0-9a-fA-F]+\): ", "", v) for v in lines[1:]]
        lines = [" / ".join(dict.fromkeys([lines[0], lines[-1]]))] if lines else []
    first = lines[0][:300] if lines else "truncated?"
    return DataError(f"{p}: cannot read file ({type(exc).__name__}: {first})")


@contextmanager
def _reading(p: Path) -> Iterator[None]:
    """Turn what a file parser raises for an unreadable ``p`` into one :class:`DataError`
    (:func:`_read_error`); noisyseg's own errors and anything else (a bug) pass through."""
    try:
        yield
    except NoisysegError:
        raise
    except Exception as exc:
        if not _is_read_error(exc):
            raise
        raise _read_error(p, exc) from exc


def _file_size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError as exc:
        raise _read_error(p, exc) from exc


def _check_nifti(p: Path, img: object) -> None:
    """Refuse a NIfTI header whose data cannot be in the file or is over the limit."""
    proxy = img.dataobj  # type: ignore[attr-defined]  # nibabel's ArrayProxy: what it reads
    shape = tuple(int(v) for v in proxy.shape)
    if any(v < 0 for v in shape):
        raise DataError(f"{p}: header declares a negative dimension {shape}")
    dtype = np.dtype(proxy.dtype)
    count = math.prod(shape)
    nbytes = count * max(dtype.itemsize, 1)
    offset = int(proxy.offset)
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    scaled = not (slope == 1 and inter == 0)
    memory = nbytes + count * 8 if scaled else nbytes  # raw bytes, then float64 values
    size = _file_size(p)
    if p.name.lower().endswith(".gz"):
        capacity, holds = _DEFLATE_RATIO * size - offset, (
            f"{size:,} compressed bytes hold at most {_DEFLATE_RATIO * size:,} (data from byte "
            f"{offset})")
    else:
        capacity, holds = size - offset, f"the file has {size:,} bytes (data from byte {offset})"
    _check_declared(p, nbytes, capacity, holds, memory=memory)


def _head(p: Path, n: int = 1 << 16) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read(n)
    except OSError as exc:
        raise _read_error(p, exc) from exc


def _data_file(p: Path, name: bytes) -> Path | None:
    """The detached data file ``name`` of header ``p`` (None for lists and file patterns)."""
    text = name.decode("utf-8", "replace").strip()
    if not text or text.upper().startswith("LIST") or "%" in text or " " in text:
        return None
    f = Path(text) if Path(text).is_absolute() else p.parent / text
    if not f.is_file():
        raise DataError(f"{p}: its data file {text!r} is not there ({f})")
    return f


def _meta_ints(p: Path, fields: dict[bytes, bytes], key: bytes, n: int | None,
               lo: int, hi: int) -> None:
    """Refuse MetaImage field ``key`` unless it is ``n`` integers in ``[lo, hi]``."""
    if key not in fields:
        return
    words = fields[key].split()
    try:
        values = [int(w) for w in words]
    except ValueError:
        values = []
    if not values or (n is not None and len(values) != n) or not all(lo <= v <= hi for v in values):
        want = f"{n} integer{'s' if n != 1 else ''}" if n else "integers"
        raise DataError(f"{p}: bad MetaImage header field {key.decode('latin1')} = "
                        f"{fields[key][:60].decode('latin1')!r}; expected {want} from {lo} to {hi}")


def _check_meta_fields(p: Path, fields: dict[bytes, bytes]) -> None:
    """Refuse what MetaIO (in SimpleITK) does not survive: it writes past its fixed arrays
    (a crash, not an exception) for NDims beyond 10, so the dimensions are checked first."""
    keys = {k.lower(): k for k in (b"NDims", b"DimSize", b"ElementNumberOfChannels")}
    fields = {keys.get(k, k): v for k, v in fields.items()}
    if b"NDims" not in fields:
        raise DataError(f"{p}: not a MetaImage header (no NDims field before ElementDataFile)")
    _meta_ints(p, fields, b"NDims", 1, 1, 5)  # SimpleITK reads 2- to 5-D images
    _meta_ints(p, fields, b"DimSize", int(fields[b"NDims"]), 1, 2**31 - 1)
    _meta_ints(p, fields, b"ElementNumberOfChannels", 1, 1, 2**16)


def _itk_data(p: Path, suf: str) -> tuple[Path, int, str] | None:
    """Where the data of MetaImage / NRRD header ``p`` lies: ``(file, bytes there, encoding)``
    with encoding ``{'raw', 'deflate', 'text', 'hex'}``; None when unknown (file lists,
    patterns, other encodings, a header longer than 64 KiB)."""
    head = _head(p)
    if suf in (".mha", ".mhd"):
        fields, start, pos = {}, None, 0
        for line in head.splitlines(keepends=True):
            pos += len(line)
            key, sep, val = line.partition(b"=")
            if not sep:
                continue
            k = key.strip().lower()
            fields[k] = val.strip()
            if k == b"elementdatafile":
                start = pos
                break
        _check_meta_fields(p, fields)
        if start is None:
            return None
        encoding = "deflate" if fields.get(b"compresseddata", b"").lower() in (b"true", b"1") \
            else "raw"
        name = fields[b"elementdatafile"]
        if name.upper() == b"LOCAL":
            return p, max(_file_size(p) - start, 0), encoding
    else:
        if not head.startswith(b"NRRD"):
            return None
        end, gap = head.find(b"\n\n"), 2
        crlf = head.find(b"\r\n\r\n")
        if crlf >= 0 and (end < 0 or crlf < end):
            end, gap = crlf, 4
        fields = {}
        for line in (head if end < 0 else head[:end]).splitlines():
            key, sep, val = line.partition(b":")
            if sep and not val.startswith(b"="):
                fields[key.strip().lower()] = val.strip()
        enc = fields.get(b"encoding", b"raw").lower()
        encoding = {b"raw": "raw", b"gzip": "deflate", b"gz": "deflate", b"ascii": "text",
                    b"text": "text", b"txt": "text", b"hex": "hex"}.get(enc)
        if encoding is None:
            return None  # bzip2: no useful bound on its ratio
        name = fields.get(b"data file", fields.get(b"datafile"))
        if name is None:
            if end < 0:
                return None
            return p, max(_file_size(p) - end - gap, 0), encoding
    f = _data_file(p, name)
    return None if f is None else (f, _file_size(f), encoding)


def _itk_component_bytes(pixel_id: int) -> int:
    import SimpleITK as sitk

    try:
        return max(int(sitk.Image([1, 1], pixel_id).GetSizeOfPixelComponent()), 1)
    except RuntimeError:
        return 1


def _check_itk(p: Path, r: object, data: tuple[Path, int, str] | None) -> None:
    """Refuse an ITK header (``r``: an ImageFileReader after ReadImageInformation) whose
    data cannot be in its data file (``data``, see :func:`_itk_data`) or is over the limit."""
    size = tuple(int(v) for v in r.GetSize())  # type: ignore[attr-defined]
    comps = max(int(r.GetNumberOfComponents()), 1)  # type: ignore[attr-defined]
    comp_bytes = _itk_component_bytes(r.GetPixelID())  # type: ignore[attr-defined]
    nbytes = math.prod(size) * comps * comp_bytes
    capacity, holds = None, ""
    if data is not None:
        f, n, encoding = data
        # most decoded bytes per stored byte: deflate ~1032, text one value per character
        capacity = {"raw": n, "deflate": _DEFLATE_RATIO * n, "text": comp_bytes * n,
                    "hex": n // 2}[encoding]
        what = {"raw": "bytes of data", "deflate": "compressed bytes", "text": "characters",
                "hex": "hex digits"}[encoding]
        holds = f"{f} holds {n:,} {what}" + (f" (at most {capacity:,} bytes)"
                                              if encoding == "deflate" else "")
    _check_declared(p, nbytes, capacity, holds)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _check_png(p: Path) -> None:
    """Refuse a PNG whose IHDR declares more pixels than PIL's decompression-bomb limit,
    than its compressed data can hold, or than the limit."""
    from PIL import Image

    head = _head(p, 33)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return  # not a PNG: PIL identifies it or refuses it
    w, h = struct.unpack(">II", head[16:24])
    depth, channels = head[24], _PNG_CHANNELS.get(head[25], 4)
    bomb = Image.MAX_IMAGE_PIXELS
    if bomb is not None and w * h > bomb:
        raise DataError(f"{p}: {w} x {h} pixels, more than PIL's decompression-bomb limit of "
                        f"{bomb:,} pixels (PIL.Image.MAX_IMAGE_PIXELS)")
    raw = h * ((w * channels * depth + 7) // 8 + 1)
    size = _file_size(p)
    _check_declared(p, raw, _DEFLATE_RATIO * size,
                    f"{size:,} compressed bytes hold at most {_DEFLATE_RATIO * size:,}",
                    memory=w * h * 8)  # PIL's pixels (up to 4 bytes) and the grey copy


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

    Raises
    ------
    DataError
        The file is missing, unreadable, truncated, declares more data than it holds or than
        the limit (see the module docstring), or is of an unsupported type.
    """
    p = Path(path)
    _, suf = split_suffix(p)
    with _reading(p):
        if suf in (".nii", ".nii.gz"):
            import nibabel as nib

            img = nib.load(str(p))
            _check_nifti(p, img)
            shape = tuple(int(v) for v in img.shape)
            spatial = shape[:3] if len(shape) >= 3 else shape
            while len(spatial) > 2 and spatial[-1] == 1:
                spatial = spatial[:-1]
            zooms = img.header.get_zooms()[: len(spatial)]
            return Geometry(tuple(spatial[::-1]), tuple(float(z) for z in zooms[::-1]),
                            _tup(img.affine), suf, str(img.get_data_dtype()), str(p))
        if suf in (".mha", ".mhd", ".nrrd", ".nhdr"):
            r = _itk_info(p, suf)
            size, sp = r.GetSize(), r.GetSpacing()
            aff = _affine_from_itk(sp, r.GetOrigin(), r.GetDirection())
            return Geometry(tuple(int(v) for v in size[::-1]), tuple(float(v) for v in sp[::-1]),
                            _tup(aff), suf, _itk_dtype(r.GetPixelID()), str(p))
    arr = read_image(p)[0]
    return replace(Geometry.from_spacing(arr.shape[-2:] if arr.ndim > 2 else arr.shape),
                   format=suf, dtype=str(arr.dtype), path=str(p))


def _itk_info(p: Path, suf: str) -> object:
    """A SimpleITK ImageFileReader of ``p`` after ReadImageInformation, its size checked."""
    import SimpleITK as sitk

    if not p.is_file():
        raise DataError(f"{p}: file not found" if not p.exists() else f"{p}: not a file")
    data = _itk_data(p, suf)  # before SimpleITK: a missing data file gets a clear message
    r = sitk.ImageFileReader()
    r.SetFileName(str(p))
    r.ReadImageInformation()
    _check_itk(p, r, data)
    return r


#: ``np.load`` parses ``.npy`` headers with ``ast.literal_eval``, which is not thread-safe on
#: CPython 3.11 before 3.11.8 (python/cpython#106905: "AST constructor recursion depth
#: mismatch" when threads parse at once); headers are parsed under this lock, the data is
#: read (and decompressed) outside it.
_NPY_HEADER_LOCK = threading.Lock()


def _read_npy_stream(fp: object, name: str, total: int | None, holds: str) -> np.ndarray:
    """The array of a ``.npy`` stream whose decoded size is at most ``total`` bytes
    (``holds`` says why); DataError naming ``name`` for anything malformed."""
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(fp)
    except ValueError as exc:
        raise DataError(f"{name}: not a .npy file (no NumPy magic string)") from exc
    if version not in ((1, 0), (2, 0)):
        raise DataError(f"{name}: unsupported .npy format version {version[0]}.{version[1]}; "
                        f"expected 1.0 or 2.0")
    with _NPY_HEADER_LOCK:
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(fp)
        else:
            shape, fortran, dtype = npf.read_array_header_2_0(fp)
    if dtype.hasobject:
        raise DataError(f"{name}: object arrays are not read (allow_pickle is off)")
    if any(int(v) < 0 for v in shape) or len(shape) > 32:
        raise DataError(f"{name}: bad array shape {shape} in the .npy header")
    count = math.prod(int(v) for v in shape)
    nbytes = count * dtype.itemsize
    available = None if total is None else total - fp.tell()  # type: ignore[attr-defined]
    _check_declared(Path(name), nbytes, available, holds, memory=count)
    arr = np.empty(count, dtype=dtype)
    view, got = memoryview(arr).cast("B"), 0
    while got < view.nbytes:
        n = fp.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise DataError(f"{name}: cannot read file (truncated array: {got:,} of "
                            f"{view.nbytes:,} bytes)")
        got += n
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def read_npy(path: str | Path) -> np.ndarray:
    """``np.load(path, allow_pickle=False)`` for a ``.npy`` file, safe to call from threads
    (see ``_NPY_HEADER_LOCK``).

    Raises
    ------
    DataError
        The file is missing, not a ``.npy`` file, truncated, of an object dtype, or declares
        more data than it holds or than the limit (see the module docstring).
    """
    p = Path(path)
    with _reading(p):
        with open(p, "rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            return _read_npy_stream(fp, str(p), size, f"the file has {size:,} bytes")


def _member_size(info: zipfile.ZipInfo, zip_size: int) -> int:
    """Most bytes zip member ``info`` can decompress to."""
    packed = min(info.compress_size, zip_size)
    if info.compress_type == zipfile.ZIP_STORED:
        return min(info.file_size, packed)
    if info.compress_type == zipfile.ZIP_DEFLATED:
        return min(info.file_size, _DEFLATE_RATIO * packed)
    return info.file_size


def read_npz(path: str | Path, keys: tuple[str, ...] = ()) -> tuple[str, np.ndarray]:
    """The first array of ``keys`` in an ``.npz`` file (or its only array) as ``(key, array)``,
    safe to call from threads.

    Raises
    ------
    DataError
        The file is missing or not a zip file; none of ``keys`` is there and the file holds
        no or several arrays (listing them); the array is malformed (see :func:`read_npy`).
    """
    p = Path(path)
    with _reading(p):
        try:
            with zipfile.ZipFile(p) as zf:
                names = [n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")]
                key = next((k for k in keys if k in names), names[0] if len(names) == 1 else None)
                if key is None:
                    wanted = " or ".join(repr(k) for k in keys)
                    found = f"found {len(names)}: {names[:8]}" if names else "found none"
                    raise DataError(f"{p}: no {wanted + ' ' if keys else ''}array, and not a single "
                                    f"array ({found})")
                info = zf.getinfo(f"{key}.npy")
                total = _member_size(info, _file_size(p))
                with zf.open(info) as fp:
                    return key, _read_npy_stream(fp, f"{p}[{key}]", total,
                                                 f"its zip member holds {total:,} bytes")
        except zipfile.BadZipFile as exc:
            raise DataError(f"{p}: not an .npz (zip) file ({(str(exc).splitlines() or ['?'])[0]})") \
                from exc


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
        The file is missing, unreadable, truncated, of an unsupported type, or declares more
        data than it holds or than the limit (``NOISYSEG_MAX_IMAGE_BYTES``, see the module
        docstring).

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> write_image(d / "a.nii.gz", np.zeros((2, 3, 4), np.uint8))
    >>> arr, geom = read_image(d / "a.nii.gz")
    >>> arr.shape, geom.shape, geom.format
    ((2, 3, 4), (2, 3, 4), '.nii.gz')
    >>> _ = (d / "b.nii.gz").write_bytes((d / "a.nii.gz").read_bytes()[:40])
    >>> read_image(d / "b.nii.gz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.DataError: .../b.nii.gz: cannot read file (...)
    """
    p = Path(path)
    _, suf = split_suffix(p)
    with _reading(p):
        if suf == ".npy":
            arr = read_npy(p)
            geom = Geometry.from_spacing(arr.shape)
        elif suf == ".png":
            from PIL import Image

            _check_png(p)
            with Image.open(p) as im:
                im.load()
                if im.mode in ("RGB", "RGBA", "P", "LA"):
                    im = im.convert("L")
                arr = np.asarray(im)
            geom = Geometry.from_spacing(arr.shape)
        elif suf in (".nii", ".nii.gz"):
            import nibabel as nib

            img = nib.load(str(p))
            _check_nifti(p, img)
            data = np.asanyarray(img.dataobj)
            if data.ndim > 4:
                raise DataError(f"{p}: expected at most 4 dimensions (x, y, z, channel), got "
                                f"the file's shape {data.shape}")
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

            r = _itk_info(p, suf)
            img = r.Execute()  # type: ignore[attr-defined]
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
    return arr, replace(geom, format=suf, path=str(p))


def read_array(path: str | Path) -> np.ndarray:
    """Read a 2-D array from ``path`` (see :func:`read_image`), dropping singleton axes.

    Parameters
    ----------
    path : str or Path
        Any file :func:`read_image` reads whose array has exactly two axes longer than 1.

    Returns
    -------
    ndarray
        (H, W) array in the file's dtype.

    Raises
    ------
    DataError
        The file is missing, unreadable, truncated, or not 2-D.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_image(Path(d) / "a.npy", np.ones((1, 3, 4), np.uint8))
    ...     read_array(Path(d) / "a.npy").shape
    (3, 4)
    """
    raw = read_image(path)[0]
    arr = np.squeeze(raw)
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D image (exactly two axes longer than 1, any "
                        f"others of length 1), got shape {raw.shape}")
    return arr


def write_image(path: str | Path, arr: np.ndarray, geometry: Geometry | None = None, *,
                dtype: str | np.dtype | None = None) -> None:
    """Write ``arr`` (array order, see :class:`Geometry`) with ``geometry``, in the suffix's format.

    NIfTI output whose geometry comes from a NIfTI file copies that file's header (qform and
    sform with their codes, units, description), so the written mask overlays the source
    image exactly; otherwise the affine (NIfTI) or spacing/origin/direction (ITK formats)
    are set from ``geometry``. PNG and NumPy files carry no geometry.

    Parameters
    ----------
    path : str or Path
        Output file; its suffix (one of :data:`FORMATS`' values, or ``.mhd``, ``.nhdr``)
        picks the format.
    arr : ndarray
        Array in array order, channels first when there are several.
    geometry : Geometry, optional
        Where the voxels lie; default: axis-aligned, 1 mm spacing.
    dtype : str or numpy.dtype, optional
        Stored data type (default: ``arr``'s dtype).

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        Unsupported suffix; PNG output of data that is not 2-D uint8; ``arr``'s trailing
        axes do not match ``geometry``'s shape.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     g = Geometry.from_spacing((2, 3, 4), (2.5, 1.0, 1.0))
    ...     write_image(Path(d) / "m.nii.gz", np.ones((2, 3, 4), np.uint8), g)
    ...     arr, geom = read_image(Path(d) / "m.nii.gz")
    ...     arr.shape, geom.spacing
    ((2, 3, 4), (2.5, 1.0, 1.0))
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
    """Write a 2-D array to ``path`` (see :func:`write_image`).

    Parameters
    ----------
    path : str or Path
        Output file; its suffix picks the format.
    arr : ndarray
        (H, W) array (uint8 for PNG).
    geometry : Geometry, optional
        Where the pixels lie; default: axis-aligned, 1 mm spacing.

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        Unsupported suffix; PNG output of data that is not 2-D uint8; ``arr`` does not
        match ``geometry``'s shape.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_array(Path(d) / "m.png", np.eye(3, dtype=np.uint8))
    ...     int(read_array(Path(d) / "m.png").sum())
    3
    """
    write_image(path, arr, geometry)


def copy_image_file(src: str | Path, dst: str | Path) -> None:
    """Copy an image file byte for byte (MetaImage headers with their data file, renamed)."""
    src, dst = Path(src), Path(dst)
    if split_suffix(src)[1] == ".mhd":  # the header names its .raw: rewrite both together
        import SimpleITK as sitk

        sitk.WriteImage(sitk.ReadImage(str(src)), str(dst))
    else:
        shutil.copyfile(src, dst)
