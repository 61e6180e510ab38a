"""Fuzz the file readers: a malformed file reads, or gives a one-line DataError naming it.

Every test starts from a small valid file written by noisyseg's own writer (or by nibabel,
SimpleITK, PIL, NumPy), mutates it (truncation, byte flips and integer overwrites, mostly in
the header; header fields rewritten in text headers and in the ``.npy`` header dict; gzip
framing; junk appended; an empty file) and checks the contract of
:mod:`noisyseg.data.io`: either an ndarray and a Geometry come back, or
:class:`~noisyseg.errors.DataError` whose message is one line naming the file; never
another exception, and never more memory than the limit allows (``NOISYSEG_MAX_IMAGE_BYTES``
is set to 64 MiB here).

Examples per test: ``NOISYSEG_FUZZ_EXAMPLES`` (default 50); a large run uses 2000.
"""

from __future__ import annotations

import gzip
import os
import re
import resource
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from noisyseg.data.io import Geometry, read_header, read_image, read_npz, write_image
from noisyseg.data.predictions import read_prediction
from noisyseg.errors import DataError

FUZZ = settings(max_examples=int(os.environ.get("NOISYSEG_FUZZ_EXAMPLES", "50")), deadline=None)
LIMIT = 64 * 2**20
#: Largest growth of the process's peak resident memory one fuzz test may cause.
MAX_RSS_GROWTH = 1024 * 2**20

INTS = [0, 1, 2, 3, 7, 8, 16, 255, 256, 348, 352, 30000, 32767, 65535, 2**31 - 1, 2**32 - 1,
        -1, -2, -32768, -2**31]


@pytest.fixture(scope="module", autouse=True)
def _low_limit():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOISYSEG_MAX_IMAGE_BYTES", str(LIMIT))
        yield


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- valid seed files --------------------------------------------------------------------

_ARR = (np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) * 7) % 50
_GEOM = Geometry.from_spacing((3, 4, 5), (2.0, 0.5, 0.7), origin=(1.0, -2.0, 3.0), dtype="int16")


def _seed_files(kind: str, d: Path) -> tuple[str, dict[str, bytes]]:
    """``(name of the file to read, {file name: bytes})`` of a valid file of ``kind``."""
    d.mkdir(parents=True, exist_ok=True)
    if kind in ("nii", "nii.gz", "mha", "nrrd", "npy"):
        name = f"a.{kind}"
        write_image(d / name, _ARR, _GEOM)
    elif kind == "nii.gz-4d":
        name = "a.nii.gz"
        write_image(d / name, np.stack([_ARR, _ARR]).astype(np.float32), _GEOM)
    elif kind in ("mha-raw", "mhd", "mhd-z", "nrrd-raw", "nhdr", "nhdr-z", "nrrd-vec"):
        suffix = {"mha-raw": ".mha", "mhd": ".mhd", "mhd-z": ".mhd", "nrrd-raw": ".nrrd",
                  "nhdr": ".nhdr", "nhdr-z": ".nhdr", "nrrd-vec": ".nrrd"}[kind]
        name = f"a{suffix}"
        arr = np.moveaxis(np.stack([_ARR] * 3), 0, -1) if kind == "nrrd-vec" else _ARR
        img = sitk.GetImageFromArray(arr, isVector=kind == "nrrd-vec")
        img.SetSpacing((0.7, 0.5, 2.0))
        sitk.WriteImage(img, str(d / name), useCompression=kind in ("mhd-z", "nhdr-z", "nrrd-vec"))
    elif kind in ("png", "png16", "png-rgb", "png-1bit"):
        name = "a.png"
        a = (np.arange(12 * 9).reshape(12, 9) * 3 % 251).astype(np.uint8)
        im = {"png": lambda: Image.fromarray(a),
              "png16": lambda: Image.fromarray(a.astype(np.uint16) * 200),
              "png-rgb": lambda: Image.fromarray(np.stack([a, a // 2, a // 3], -1)),
              "png-1bit": lambda: Image.fromarray(a > 100)}[kind]()
        im.save(d / name)
    else:
        raise AssertionError(kind)
    return name, {p.name: p.read_bytes() for p in d.iterdir()}


KINDS = ["nii", "nii.gz", "nii.gz-4d", "mha", "mha-raw", "mhd", "mhd-z", "nrrd", "nrrd-raw",
         "nrrd-vec", "nhdr", "nhdr-z", "png", "png16", "png-rgb", "png-1bit", "npy"]
_SEEDS: dict[str, tuple[str, dict[str, bytes]]] = {}


def _seed(kind: str) -> tuple[str, dict[str, bytes]]:
    if kind not in _SEEDS:
        _SEEDS[kind] = _seed_files(kind, Path(tempfile.mkdtemp(prefix=f"seed-{kind}-")))
    return _SEEDS[kind]


# -- mutations ---------------------------------------------------------------------------

_NUMBER = re.compile(rb"-?\d+(\.\d+)?")


@st.composite
def _mutated(draw, data: bytes, header: int, text_header: bool) -> bytes:
    """``data`` after 1-4 mutations, biased to its first ``header`` bytes."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        n = len(b)
        op = draw(st.sampled_from(["truncate", "flip", "int", "append", "empty", "number",
                                   "line"] if text_header else
                                  ["truncate", "flip", "int", "append", "empty"]))
        at_header = st.integers(0, max(min(header, n) - 1, 0))
        anywhere = st.integers(0, max(n - 1, 0))
        if op == "truncate":
            del b[draw(st.integers(0, n)):]
        elif op == "flip" and n:
            for _ in range(draw(st.integers(1, 8))):
                i = draw(at_header | anywhere)
                b[i] = draw(st.integers(0, 255))
        elif op == "int" and n >= 8:
            width, fmt = draw(st.sampled_from([(1, "<b"), (2, "<h"), (4, "<i"), (4, "<f"),
                                               (8, "<q"), (2, ">h"), (4, ">i")]))
            i = draw(st.integers(0, max(min(header, n) - width, 0)))
            v = draw(st.sampled_from(INTS) | st.integers(-2**31, 2**31 - 1))
            if fmt.endswith("f"):
                v = float(v)
            elif width < 8:
                v = max(min(v, 2**(8 * width - 1) - 1), -2**(8 * width - 1))
            b[i:i + width] = struct.pack(fmt, v)
        elif op == "append":
            b += draw(st.binary(min_size=1, max_size=64))
        elif op == "empty":
            b = bytearray()
        elif op == "number":
            nums = list(_NUMBER.finditer(bytes(b[:header])))
            if nums:
                m = nums[draw(st.integers(0, len(nums) - 1))]
                new = str(draw(st.sampled_from(INTS + [10**12, 2**63, 3.5, -0.0]))).encode()
                b[m.start():m.end()] = new
        elif op == "line":
            lines = bytes(b[:header]).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = draw(st.sampled_from([b"", b"=", b":", b"ElementDataFile = LIST",
                                             b"ElementDataFile = b.raw", b"encoding: hex",
                                             b"encoding: ascii", b"encoding: bzip2",
                                             b"data file: ../nothere", b"CompressedData = True",
                                             b"NDims = 9", b"dimension: 17",
                                             b"type: double", b"ElementType = MET_DOUBLE",
                                             b"ElementNumberOfChannels = 40000"]))
            b[:header] = b"\n".join(lines)
    return bytes(b)


def _header_len(kind: str, data: bytes) -> tuple[int, bool]:
    if kind.startswith(("mha", "mhd", "nrrd", "nhdr")):
        for mark in (b"ElementDataFile", b"\n\n"):
            i = data.find(mark)
            if i >= 0:
                return data.find(b"\n", i) + 1 or len(data), True
        return len(data), True
    if kind == "nii":
        return 352, False
    if kind.startswith("png"):
        return 64, False
    if kind == "npy":
        return 128, False
    return 40, False


# -- the contract ------------------------------------------------------------------------


def _holds_contract(fn, path: Path, rss0: int):
    try:
        out = fn(path)
    except DataError as exc:
        msg = str(exc)
        assert "\n" not in msg, msg
        assert path.name in msg, msg
        out = None
    growth = _rss() - rss0
    assert growth < MAX_RSS_GROWTH, f"peak memory grew by {growth / 2**20:.0f} MiB"
    return out


def _read_both(path: Path, rss0: int) -> None:
    out = _holds_contract(read_image, path, rss0)
    if out is not None:
        arr, geom = out
        assert isinstance(arr, np.ndarray) and isinstance(geom, Geometry)
    geom = _holds_contract(read_header, path, rss0)
    assert geom is None or isinstance(geom, Geometry)


def _write(d: Path, files: dict[str, bytes]) -> None:
    for p in d.iterdir():
        p.unlink()
    for name, data in files.items():
        (d / name).write_bytes(data)


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_readers_on_mutated_files(kind, data):
    name, files = _seed(kind)
    # mutate the file read, or (detached data) its data file
    target = data.draw(st.sampled_from(sorted(files)), label="target") if len(files) > 1 \
        else name
    raw = files[target]
    if target.endswith(".gz") and data.draw(st.booleans(), label="inside gzip"):
        inner = gzip.decompress(raw)
        h, text = _header_len(kind, inner)
        if kind.startswith("nii"):
            h = 352
        mutated = gzip.compress(data.draw(_mutated(inner, h, text), label="inflated"), mtime=0)
    else:
        h, text = _header_len(kind, raw) if target == name else (16, False)
        mutated = data.draw(_mutated(raw, h, text), label="bytes")
    d = Path(tempfile.mkdtemp(prefix=f"fuzz-{kind}-"))
    try:
        _write(d, {**files, target: mutated})
        _read_both(d / name, _rss())
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


def _npy_header(shape, descr, fortran) -> bytes:
    text = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


_DESCRS = ["<f8", "<f4", "|u1", "<i2", ">i4", "|b1", "<f2", "<c8", "|O", "|V0", "<U3", "|S0",
           "<M8[s]", [("a", "<f4"), ("b", "|u1")], ("<f4", (2, 3)), "<q99", "", "x", 3]


@FUZZ
@given(shape=st.one_of(st.tuples(), st.lists(st.integers(-3, 2**34), max_size=5).map(tuple),
                       st.lists(st.sampled_from([0, 1, 2, 5, 200000]), max_size=6).map(tuple),
                       st.sampled_from([[3, 4], "3,4", None, (2.5,), (True,)])),
       descr=st.sampled_from(_DESCRS), fortran=st.sampled_from([False, True, "x", None, 0]),
       payload=st.binary(max_size=300), npz=st.booleans())
def test_npy_header_dicts(shape, descr, fortran, payload, npz):
    raw = _npy_header(shape, descr, fortran) + payload
    d = Path(tempfile.mkdtemp(prefix="fuzz-npy-"))
    try:
        rss0 = _rss()
        if npz:
            import zipfile

            p = d / "a.npz"
            with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("probabilities.npy", raw)
            out = _holds_contract(lambda q: read_npz(q, ("probabilities",)), p, rss0)
            assert out is None or isinstance(out[1], np.ndarray)
        else:
            p = d / "a.npy"
            p.write_bytes(raw)
            _read_both(p, rss0)
    finally:
        for q in d.iterdir():
            q.unlink()
        d.rmdir()


# -- npz and the prediction readers ------------------------------------------------------

_PROBS = np.random.default_rng(0).dirichlet(np.ones(3), size=(4, 5)).transpose(2, 0, 1)
_LABELS = np.array([[0, 1, 2, 1, 0]] * 4, np.uint8)


def _pred_seeds() -> dict[str, bytes]:
    if "pred" not in _SEEDS:
        d = Path(tempfile.mkdtemp(prefix="seed-pred-"))
        np.savez_compressed(d / "probs.npz", probabilities=_PROBS.astype(np.float32))
        np.savez(d / "softmax.npz", softmax=_PROBS.astype(np.float16))
        np.save(d / "probs.npy", _PROBS.astype(np.float32))
        write_image(d / "probs.nii.gz", _PROBS.astype(np.float32),
                    Geometry.from_spacing((4, 5), dtype="float32"))
        write_image(d / "labels.nii.gz", _LABELS)
        write_image(d / "labels.nrrd", _LABELS)
        np.save(d / "labels.npy", _LABELS.astype(np.float32))
        _SEEDS["pred"] = ("", {p.name: p.read_bytes() for p in d.iterdir()})
    return _SEEDS["pred"][1]


@pytest.mark.parametrize("name", ["probs.npz", "softmax.npz", "probs.npy", "probs.nii.gz",
                                  "labels.nii.gz", "labels.nrrd", "labels.npy"])
@FUZZ
@given(data=st.data())
def test_prediction_readers_on_mutated_files(name, data):
    raw = _pred_seeds()[name]
    mutated = data.draw(_mutated(raw, 96 if name.endswith(".npz") else 352 if ".nii" in name
                                 else 128, False), label="bytes")
    d = Path(tempfile.mkdtemp(prefix="fuzz-pred-"))
    p = d / name
    try:
        p.write_bytes(mutated)
        rss0 = _rss()
        out = _holds_contract(lambda q: read_prediction(q, n_classes=3, shape=(4, 5)), p, rss0)
        if out is not None:
            assert out.shape == (3, 4, 5) and out.dtype == np.float32
        if name.endswith(".npz"):
            out = _holds_contract(lambda q: read_npz(q, ("probabilities", "softmax")), p, rss0)
            assert out is None or isinstance(out[1], np.ndarray)
    finally:
        p.unlink()
        d.rmdir()


def test_seed_files_read_exactly():
    """The unmutated seeds read as written: the fuzz starts from valid files."""
    for kind in KINDS:
        name, files = _seed(kind)
        d = Path(tempfile.mkdtemp(prefix=f"valid-{kind}-"))
        _write(d, files)
        arr, geom = read_image(d / name)
        assert isinstance(arr, np.ndarray) and isinstance(read_header(d / name), Geometry)
        if not kind.startswith(("npy", "nii.gz-4d", "nrrd-vec")):
            assert read_header(d / name).shape == geom.shape
        if kind in ("nii", "nii.gz", "mha", "nrrd", "npy"):
            np.testing.assert_array_equal(arr, _ARR)
        if kind in ("nii", "nii.gz", "mha", "nrrd"):
            np.testing.assert_allclose(geom.affine_array, _GEOM.affine_array, atol=1e-6)
    for name in _pred_seeds():
        d = Path(tempfile.mkdtemp(prefix="valid-pred-"))
        (d / name).write_bytes(_pred_seeds()[name])
        out = read_prediction(d / name, n_classes=3, shape=(4, 5))
        assert out.shape == (3, 4, 5)
