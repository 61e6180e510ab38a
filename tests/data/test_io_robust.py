"""Malformed files give one-line DataErrors naming the file, before any large allocation.

Each test reproduces one defect of the readers in ``noisyseg.data.io`` and
``noisyseg.data.predictions``: a header that claims more data than the file can hold, a
file cut inside its header, a malformed ``.npy`` / ``.npz``, a misleading shape message.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import zipfile
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.lib import format as npf
from PIL import Image

from noisyseg.data.io import (
    read_array,
    read_header,
    read_image,
    read_npy,
    read_npz,
    write_image,
)
from noisyseg.data.predictions import read_prediction
from noisyseg.errors import ConfigError, DataError

HUGE = (30000, 30000, 30000)
MAX_IMAGE_BYTES_ENV = "NOISYSEG_MAX_IMAGE_BYTES"  # the documented name


def _raises_one_line(fn, path, match: str = "") -> str:
    with pytest.raises(DataError) as info:
        fn(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert path.name in msg
    assert re.search(match, msg), msg
    return msg


def _nifti(path, arr=None):
    write_image(path, np.arange(60, dtype=np.int16).reshape(3, 4, 5) if arr is None else arr)
    return path


def _set_dims(raw: bytes, dims: tuple[int, ...]) -> bytes:
    h = bytearray(raw)
    struct.pack_into("<8h", h, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    return bytes(h)


# -- NIfTI -------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [read_image, read_header])
@pytest.mark.parametrize("cut", [0, 40, 200, 347])
def test_nii_gz_cut_inside_its_header(tmp_path, fn, cut):
    p = _nifti(tmp_path / "a.nii.gz")
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:cut]))
    _raises_one_line(fn, p, "cannot read file")


@pytest.mark.parametrize("fn", [read_image, read_header])
def test_nii_gz_cut_inside_its_gzip_stream(tmp_path, fn):
    p = _nifti(tmp_path / "a.nii.gz")
    p.write_bytes(p.read_bytes()[:30])
    _raises_one_line(fn, p, "cannot read file")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("fn", [read_image, read_header])
def test_nifti_header_declaring_30000_cubed_voxels(tmp_path, suffix, fn):
    p = _nifti(tmp_path / f"a{suffix}")
    raw = p.read_bytes()
    if suffix == ".nii":
        p.write_bytes(_set_dims(raw, HUGE))
    else:
        p.write_bytes(gzip.compress(_set_dims(gzip.decompress(raw), HUGE)))
    _raises_one_line(fn, p, "declares 54,000,000,000,000 bytes")


def test_nii_declaring_a_little_more_than_the_file_holds(tmp_path):
    p = _nifti(tmp_path / "a.nii")
    p.write_bytes(p.read_bytes()[:-1])
    _raises_one_line(read_image, p, "the file has .* bytes")


def test_nii_gz_beyond_what_its_compressed_size_can_hold(tmp_path):
    p = _nifti(tmp_path / "a.nii.gz")
    # 2 GB of int16 in a file of about 100 bytes: no deflate stream expands that much
    p.write_bytes(gzip.compress(_set_dims(gzip.decompress(p.read_bytes()), (1000, 1000, 1000))))
    _raises_one_line(read_image, p, "compressed bytes hold at most")


def test_limit_from_the_environment(tmp_path, monkeypatch):
    p = _nifti(tmp_path / "a.nii.gz", np.zeros((10, 10, 10), np.float32))
    assert read_image(p)[0].shape == (10, 10, 10)
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "3999")
    _raises_one_line(read_image, p, f"4,000 bytes, more than the limit of 3,999 .*{MAX_IMAGE_BYTES_ENV}")
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "4000")
    assert read_image(p)[0].shape == (10, 10, 10)
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "lots")
    with pytest.raises(ConfigError, match=f"{MAX_IMAGE_BYTES_ENV}='lots': expected a positive"):
        read_image(p)


def test_nifti_of_five_dimensions_reports_the_files_shape(tmp_path):
    p = tmp_path / "a.nii"
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4, 2, 2), np.uint8), np.eye(4)), str(p))
    _raises_one_line(read_image, p, r"at most 4 dimensions .*shape \(2, 3, 4, 2, 2\)")


# -- ITK formats -------------------------------------------------------------------------


def _itk(path, compress):
    img = sitk.GetImageFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    sitk.WriteImage(img, str(path), useCompression=compress)
    return path


def _edit_header(path, old: bytes, new: bytes):
    raw = path.read_bytes()
    assert old in raw
    path.write_bytes(raw.replace(old, new, 1))


@pytest.mark.parametrize("name,compress,old,new", [
    ("a.mha", True, b"DimSize = 5 4 3", b"DimSize = 30000 30000 30000"),
    ("a.mha", False, b"DimSize = 5 4 3", b"DimSize = 30000 30000 30000"),
    ("a.mhd", False, b"DimSize = 5 4 3", b"DimSize = 30000 30000 30000"),
    ("a.mhd", True, b"DimSize = 5 4 3", b"DimSize = 30000 30000 30000"),
    ("a.nrrd", True, b"sizes: 5 4 3", b"sizes: 30000 30000 30000"),
    ("a.nrrd", False, b"sizes: 5 4 3", b"sizes: 30000 30000 30000"),
    ("a.nhdr", False, b"sizes: 5 4 3", b"sizes: 30000 30000 30000"),
    ("a.nhdr", True, b"sizes: 5 4 3", b"sizes: 30000 30000 30000"),
    ("a.mha", False, b"DimSize = 5 4 3", b"DimSize = 5 4 4"),
    ("a.nrrd", False, b"sizes: 5 4 3", b"sizes: 5 4 4"),
])
@pytest.mark.parametrize("fn", [read_image, read_header])
def test_itk_header_declaring_more_than_its_data_file(tmp_path, name, compress, old, new, fn):
    p = _itk(tmp_path / name, compress)
    _edit_header(p, old, new)
    _raises_one_line(fn, p, "declares .* bytes of data, but .* holds")


@pytest.mark.parametrize("name,field", [("a.mhd", b"ElementDataFile = a."),
                                        ("a.nhdr", b"data file: a.")])
def test_itk_detached_data_file_missing(tmp_path, name, field):
    p = _itk(tmp_path / name, False)
    _edit_header(p, field, field.replace(b"a.", b"gone."))
    _raises_one_line(read_image, p, "data file 'gone.* is not there")


@pytest.mark.parametrize("name", ["a.mha", "a.mhd", "a.nrrd", "a.nhdr"])
@pytest.mark.parametrize("compress", [True, False])
def test_itk_valid_files_read_as_before(tmp_path, name, compress):
    p = _itk(tmp_path / name, compress)
    arr, geom = read_image(p)
    np.testing.assert_array_equal(arr, np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    assert geom.shape == read_header(p).shape == (3, 4, 5)


# -- PNG ---------------------------------------------------------------------------------


def _png_with_size(path, w, h):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    raw = bytearray(path.read_bytes())
    struct.pack_into(">II", raw, 16, w, h)
    struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


def test_png_decompression_bomb(tmp_path):
    p = _png_with_size(tmp_path / "a.png", 100_000, 100_000)
    _raises_one_line(read_image, p, "decompression-bomb limit")


def test_png_declaring_more_than_its_compressed_data(tmp_path):
    p = _png_with_size(tmp_path / "a.png", 9000, 9000)
    _raises_one_line(read_image, p, "compressed bytes hold at most")


def test_png_not_a_png(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(b"hello, not an image")
    _raises_one_line(read_image, p, "cannot read file")


@pytest.mark.parametrize("mode,dtype", [("L", np.uint8), ("I;16", np.uint16)])
def test_png_valid_files_read_as_before(tmp_path, mode, dtype):
    p = tmp_path / "a.png"
    a = (np.arange(1200).reshape(30, 40) % 200).astype(dtype)
    Image.fromarray(a).save(p)
    assert Image.open(p).mode == mode
    np.testing.assert_array_equal(read_image(p)[0], a)


# -- NumPy -------------------------------------------------------------------------------


def _npy(path, header: dict | str, payload: bytes = b"\0" * 16, version=(1, 0)) -> None:
    if isinstance(header, dict):
        header = repr(header)
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    fmt = "<H" if version == (1, 0) else "<I"
    path.write_bytes(b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(text)) + text + payload)


@pytest.mark.parametrize("fn", [read_npy, read_image])
def test_npy_header_declaring_200000_squared(tmp_path, fn):
    p = tmp_path / "a.npy"
    _npy(p, {"descr": "<f8", "fortran_order": False, "shape": (200000, 200000)})
    _raises_one_line(fn, p, "declares 320,000,000,000 bytes of data, but the file has")


@pytest.mark.parametrize("header,match", [
    ({"descr": "<f8", "fortran_order": False, "shape": (-2, 4)}, "bad array shape"),
    ({"descr": "<f8", "fortran_order": False, "shape": (2**40, 2**40)}, "declares"),
    ({"descr": "<f8", "fortran_order": False, "shape": (2**32, 2**32)}, "declares"),
    ({"descr": "|V0", "fortran_order": False, "shape": (2**40,)}, "limit"),
    ({"descr": "<f8", "fortran_order": "yes", "shape": (2,)}, "cannot read file"),
    ({"descr": "<f8", "shape": (2,)}, "cannot read file"),
    ({"descr": "<q99", "fortran_order": False, "shape": (2,)}, "cannot read file"),
    ({"descr": "|O", "fortran_order": False, "shape": (2,)}, "object arrays"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2,", "cannot read file"),
    ("[1, 2, 3]", "cannot read file"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (" + "9" * 5000 + ",)}", "cannot read file"),
])
def test_npy_malformed_headers(tmp_path, header, match):
    p = tmp_path / "a.npy"
    _npy(p, header)
    _raises_one_line(read_npy, p, match)


@pytest.mark.parametrize("version", [(3, 0), (9, 9), (0, 0)])
def test_npy_unsupported_version(tmp_path, version):
    p = tmp_path / "a.npy"
    _npy(p, {"descr": "<f8", "fortran_order": False, "shape": (2,)}, version=(1, 0))
    raw = bytearray(p.read_bytes())
    raw[6:8] = bytes(version)
    p.write_bytes(bytes(raw))
    _raises_one_line(read_npy, p, "unsupported .npy format version|cannot read file")


@pytest.mark.parametrize("data", [b"", b"\x93NUM", b"PK\x03\x04 not numpy at all"])
def test_npy_not_numpy(tmp_path, data):
    p = tmp_path / "a.npy"
    p.write_bytes(data)
    _raises_one_line(read_npy, p, "not a .npy file|cannot read file")


def test_npy_fortran_order_reads_as_before(tmp_path):
    a = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    np.save(tmp_path / "f.npy", a)
    np.testing.assert_array_equal(read_npy(tmp_path / "f.npy"), a)


def test_npy_truncated_payload(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.arange(100, dtype=np.float64))
    p.write_bytes(p.read_bytes()[:-8])
    _raises_one_line(read_npy, p, "the file has")


def test_npz_not_a_zip(tmp_path):
    p = tmp_path / "a.npz"
    p.write_bytes(b"definitely not a zip file")
    _raises_one_line(lambda q: read_npz(q, ("probabilities",)), p, "not an .npz")


def test_npz_without_arrays(tmp_path):
    p = tmp_path / "a.npz"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("readme.txt", "hello")
    _raises_one_line(lambda q: read_npz(q, ("probabilities",)), p, "found none")


def test_npz_several_arrays_without_the_key(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, a=np.zeros(2), b=np.ones(2))
    _raises_one_line(lambda q: read_npz(q, ("probabilities", "softmax")), p,
                     r"no 'probabilities' or 'softmax' array.*\['a', 'b'\]")


@pytest.mark.parametrize("compress", [True, False])
def test_npz_member_declaring_200000_squared(tmp_path, compress):
    p = tmp_path / "a.npz"
    buf = io.BytesIO()
    npf.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                     "shape": (200000, 200000)})
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        zf.writestr("probabilities.npy", buf.getvalue() + b"\0" * 64)
    _raises_one_line(lambda q: read_npz(q, ("probabilities",)), p, "declares")


def test_npz_corrupt_member(tmp_path):
    p = tmp_path / "a.npz"
    np.savez_compressed(p, probabilities=np.random.default_rng(0).random((3, 8, 8)))
    raw = bytearray(p.read_bytes())
    raw[60:90] = b"\xff" * 30
    p.write_bytes(bytes(raw))
    _raises_one_line(lambda q: read_npz(q, ("probabilities",)), p, "")


# -- shape messages ----------------------------------------------------------------------


def test_read_array_reports_the_files_shape(tmp_path):
    p = tmp_path / "one.npy"
    np.save(p, np.zeros((1, 1), np.uint8))
    _raises_one_line(read_array, p, r"expected a 2-D image .*got shape \(1, 1\)")
    np.save(p, np.zeros((3, 4, 5), np.uint8))
    _raises_one_line(read_array, p, r"got shape \(3, 4, 5\)")
    np.save(p, np.zeros((1, 4, 5), np.uint8))
    assert read_array(p).shape == (4, 5)


# -- predictions -------------------------------------------------------------------------


def _pred(p):
    return read_prediction(p, n_classes=3, shape=(4, 5))


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(b"junk"), "not an .npz"),
    (lambda p: np.savez(p, a=np.zeros((3, 4, 5)), b=np.zeros((3, 4, 5))), "'probabilities'"),
    (lambda p: np.savez(p, probabilities=np.array(0.5)), "class axis|shape"),
    (lambda p: np.savez(p, probabilities=np.zeros((3, 4, 5), "f4,f4")), "structured"),
    (lambda p: np.savez(p, probabilities=np.full((4, 5), 2**40, np.int64)), "not the dataset's"),
    (lambda p: np.savez(p, probabilities=np.full((4, 5), 1e30)), "not the dataset's"),
    (lambda p: np.savez(p, probabilities=np.full((4, 5), -3.0)), "not the dataset's"),
    (lambda p: np.savez(p, probabilities=np.zeros((3, 4, 5), np.complex64)), "expected float"),
])
def test_prediction_files_malformed(tmp_path, make, match):
    p = tmp_path / "case_000.npz"
    make(p)
    _raises_one_line(_pred, p, match)


def test_prediction_label_map_with_huge_values_allocates_no_table(tmp_path):
    p = tmp_path / "case_000.npy"
    np.save(p, np.full((4, 5), 2**40, np.int64))
    _raises_one_line(_pred, p, r"values \[1099511627776\] that are not the dataset's labels")


def test_prediction_of_a_truncated_image(tmp_path):
    p = tmp_path / "case_000.nii.gz"
    write_image(p, np.zeros((4, 5), np.uint8))
    p.write_bytes(p.read_bytes()[:25])
    _raises_one_line(_pred, p, "cannot read file")


def test_prediction_valid_files_read_as_before(tmp_path):
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=(4, 5)).transpose(2, 0, 1)
    np.savez_compressed(tmp_path / "a.npz", probabilities=probs.astype(np.float32))
    np.testing.assert_allclose(_pred(tmp_path / "a.npz"), probs, atol=1e-6)
    lab = np.array([[0, 1, 2, 1, 0]] * 4, np.uint8)
    write_image(tmp_path / "b.nii.gz", lab)
    np.testing.assert_array_equal(_pred(tmp_path / "b.nii.gz").argmax(0), lab)
    np.save(tmp_path / "c.npy", lab.astype(np.float32))
    np.testing.assert_array_equal(_pred(tmp_path / "c.npy").argmax(0), lab)
