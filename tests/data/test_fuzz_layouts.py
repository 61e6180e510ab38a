"""Fuzzing the dataset layouts: malformed datasets and ``--data`` strings.

The contract: :func:`~noisyseg.data.load_dataset` either loads a dataset whose every case
reads, or raises a :class:`~noisyseg.errors.NoisysegError` with a one-line message that names
a file or an option; never another exception, never a hang or a large allocation.

``NOISYSEG_FUZZ_EXAMPLES`` sets the number of examples per test (30 by default, about a
minute for the file; 2000 for a long run).
"""

import json
import os
import shutil
import string
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from noisyseg.data import CaseDataset, load_dataset, parse_source
from noisyseg.data.ct_phantom import CT_LIMITS
from noisyseg.data.folder import show_path
from noisyseg.data.synthetic import ECHO_LIMITS
from noisyseg.errors import NoisysegError

FUZZ = settings(max_examples=int(os.environ.get("NOISYSEG_FUZZ_EXAMPLES", "30")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SHAPE = (8, 7, 4)  # nibabel's (x, y, z)


def _nii(data, path, spacing=(0.8, 0.8, 2.0)):
    img = nib.Nifti1Image(data, np.diag([*spacing, 1.0]))
    nib.save(img, str(path))


def _lab(i, shape=SHAPE):
    lab = np.zeros(shape, np.uint8)
    lab[2:6, 2:5, 1:3] = 1
    lab[3:5, 3:4, 1 + i % 2] = 2
    return lab


def build_nnunet(root):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(3):
        _nii(_lab(i), root / "labelsTr" / f"case_{i}.nii.gz")
        for c in range(2):
            _nii(_lab(i).astype(np.float32) * (c + 1), root / "imagesTr" / f"case_{i}_{c:04d}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0, "a": 1, "b": 2},
        "numTraining": 3, "file_ending": ".nii.gz"}))


def build_msd(root):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(3):
        lab = _lab(i) * np.uint8(2)
        _nii(np.stack([lab * 1.0, lab * 2.0], -1).astype(np.float32), root / "imagesTr" / f"p{i}.nii.gz")
        _nii(lab, root / "labelsTr" / f"p{i}.nii.gz")
        training.append({"image": f"./imagesTr/p{i}.nii.gz", "label": f"./labelsTr/p{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({
        "modality": {"0": "T2", "1": "ADC"}, "labels": {"0": "background", "2": "x", "4": "y"},
        "numTraining": 3, "training": training}))


def build_folder_2d(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        m = np.zeros((10, 9), np.uint8)
        m[2:7, 2 + i % 2:7] = 255
        Image.fromarray(m // 3).save(root / "images" / f"s{i}.png")
        Image.fromarray(m).save(root / "masks" / f"s{i}.png")
    (root / "split.csv").write_text("sample_id,split\ns0,train\ns1,train\ns2,val\ns3,test\n")
    (root / "manifest.csv").write_text("sample_id,corrupted\ns0,True\ns1,False\ns2,False\ns3,False\n")


def build_folder_3d(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "masks_clean").mkdir()
    for i in range(3):
        _nii(_lab(i).astype(np.float32), root / "images" / f"v{i}.nii.gz")
        _nii(_lab(i), root / "masks" / f"v{i}.nii.gz")
        _nii(_lab(i + 1), root / "masks_clean" / f"v{i}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"class_names": ["background", "a", "b"]}))
    (root / "split.csv").write_text("sample_id,split\nv0,train\nv1,val\nv2,test\n")


LAYOUTS = {"nnunet": (build_nnunet, "nnunet:{}"), "msd": (build_msd, "msd:{}"),
           "folder2d": (build_folder_2d, "{}"), "folder2d-lazy": (build_folder_2d, "{}"),
           "folder3d": (build_folder_3d, "{}")}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    base = tmp_path_factory.mktemp("templates")
    out = {}
    for name, (build, _) in LAYOUTS.items():
        build(base / name)
        out[name] = base / name
    return out


# --------------------------------------------------------------------------- mutations
ODD_NAMES = st.one_of(
    st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and "\x00" not in s
                                             and s not in (".", "..")),
    st.sampled_from([b"case\xff.nii.gz", b"s\xe9.png", "a\nb.png", "s0 .png", "S0.png",
                     "s0.PNG", "._s0.png", "s0.nii.gz.png", "x" * 200 + ".png", "s0.raw",
                     "café.nii.gz", "s0.npy", "case_0_0002.nii.gz", "case_9.nii.gz"]),
)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                    | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=8)
CELL = st.one_of(st.sampled_from(["s0", "s1", "s2", "s3", "v0", "v1", "case_0", "p1", "train",
                                  "val", "test", "True", "False", "", " s1 ", "NA", "nan"]),
                 st.text(alphabet=string.printable, max_size=6))


def _files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def mutate(root, data):
    """Apply one to three random breakages to the dataset in ``root``."""
    for _ in range(data.draw(st.integers(1, 3), label="n_mutations")):
        kind = data.draw(st.sampled_from(["json_text", "json_key", "csv", "remove", "rename",
                                          "reshape", "stray", "truncate", "values"]), label="kind")
        files = _files(root)
        meta = root / "dataset.json"
        if kind == "json_text" and meta.is_file():
            text = meta.read_text()
            cut = data.draw(st.integers(0, len(text)))
            meta.write_text(data.draw(st.sampled_from([text[:cut], text[cut:], text.replace('"', "'"),
                                                       json.dumps(data.draw(JSON))])))
        elif kind == "json_key" and meta.is_file():
            try:
                dj = json.loads(meta.read_text())
            except ValueError:
                continue
            if not isinstance(dj, dict):
                continue
            key = data.draw(st.sampled_from(sorted(dj) + ["dataset", "class_names", "channel_names"]))
            if data.draw(st.booleans()):
                dj.pop(key, None)
            else:
                dj[key] = data.draw(JSON)
            meta.write_text(json.dumps(dj))
        elif kind == "csv":
            name = data.draw(st.sampled_from(["split.csv", "manifest.csv", "noisyseg/split.csv"]))
            (root / name).parent.mkdir(exist_ok=True)
            header = data.draw(st.sampled_from(["sample_id,split", "sample_id,corrupted", "id,x", ""]))
            rows = data.draw(st.lists(st.lists(CELL, min_size=1, max_size=3), max_size=6))
            (root / name).write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
        elif kind == "remove" and files:
            data.draw(st.sampled_from(files)).unlink()
        elif kind == "rename" and files:
            f = data.draw(st.sampled_from(files))
            new = data.draw(ODD_NAMES)
            dst = os.fsencode(f.parent) + b"/" + (new if isinstance(new, bytes) else os.fsencode(new))
            try:
                os.rename(os.fsencode(f), dst)
            except OSError:
                pass
        elif kind == "reshape" and files:
            f = data.draw(st.sampled_from([p for p in files if p.name.endswith((".nii.gz", ".png"))]
                                          or files))
            if f.name.endswith(".nii.gz"):
                shape = data.draw(st.sampled_from([(7, 7, 4), (8, 7, 4, 2), (8, 7), (8, 7, 4, 1),
                                                   (1, 1, 1)]))
                _nii(np.ones(shape, np.uint8), f, spacing=data.draw(st.sampled_from(
                    [(0.8, 0.8, 2.0), (0.8, 0.8, 2.5), (1e-9, 1, 1)])))
            elif f.suffix == ".png":
                Image.fromarray(np.full(data.draw(st.sampled_from([(10, 8), (1, 1), (10, 9)])), 7,
                                        np.uint8)).save(f)
        elif kind == "stray":
            sub = data.draw(st.sampled_from(["", "images", "masks", "imagesTr", "labelsTr", "noisyseg"]))
            d = root / sub
            if d.is_dir():
                name = data.draw(ODD_NAMES)
                raw = os.fsencode(d) + b"/" + (name if isinstance(name, bytes) else os.fsencode(name))
                try:
                    with open(raw, "wb") as fh:
                        fh.write(data.draw(st.binary(max_size=64)))
                except OSError:
                    pass
        elif kind == "truncate" and files:
            f = data.draw(st.sampled_from(files))
            blob = f.read_bytes()
            f.write_bytes(blob[: data.draw(st.integers(0, max(len(blob) - 1, 0)))])
        elif kind == "values":
            masks = [p for p in files if p.parent.name in ("masks", "labelsTr")]
            if masks:
                f = data.draw(st.sampled_from(masks))
                v = data.draw(st.sampled_from([3, 5, 128, 254, 255, 1000, -1]))
                if f.name.endswith(".nii.gz"):
                    arr = _lab(0).astype(np.int16)
                    arr[0, 0, 0] = v
                    _nii(arr, f)
                elif f.suffix == ".png" and 0 <= v <= 255:
                    try:
                        m = np.asarray(Image.open(f).convert("L")).copy()
                    except OSError:  # a stray file of random bytes
                        continue
                    m[0, 0] = v
                    Image.fromarray(m).save(f)


def check_contract(spec, root=None, *, lazy=False, read_all=True):
    """Load ``spec`` and read every case; any failure must be a one-line NoisysegError that
    names the dataset's files (under ``root``) or an option."""
    try:
        ds = load_dataset(spec, lazy=lazy)
        if read_all and isinstance(ds, CaseDataset):
            for i in range(len(ds)):
                item = ds[i]
                assert item["label"].shape == item["image"].shape[1:]
        elif read_all:
            assert ds.masks.shape == ds.images.shape
        return ds
    except NoisysegError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
        if root is not None:
            assert str(root) in msg or show_path(root) in msg, msg
        else:
            assert "data:" in msg or ":" in msg, msg
        return None


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@FUZZ
@given(data=st.data())
def test_malformed_datasets_load_or_fail_cleanly(templates, layout, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        shutil.copytree(templates[layout], root)
        mutate(root, data)
        check_contract(LAYOUTS[layout][1].format(root), root, lazy=layout == "folder2d-lazy")


def test_the_templates_are_valid(templates):
    for name, path in templates.items():
        ds = check_contract(LAYOUTS[name][1].format(path), path, lazy=name == "folder2d-lazy")
        assert ds is not None and len(ds) >= 3, name


# --------------------------------------------------------------------------- --data strings
NUMBER = st.one_of(st.integers(-5, 6).map(str), st.integers(2**31, 2**80).map(str),
                   st.integers(-2**80, -1).map(str), st.sampled_from(["1e3", "0x10", "", " 3",
                                                                       "٣", "3.0", "1_0", "nan",
                                                                       "9" * 5000]),
                   st.text(max_size=5))
KEYS = st.sampled_from(["n", "size", "seed", "slices", "view", "phase", "classes", "colour", "",
                        "N", " n"])


@st.composite
def specs(draw):
    name = draw(st.sampled_from(["synthetic-echo", "synthetic-ct", "camus", "nnunet", "msd",
                                 "folder", "", "synthetic", draw(st.text(max_size=8))]))
    sep = draw(st.sampled_from([":", ",", "", "::"]))
    path = draw(st.sampled_from(["", "/nonexistent/x", "relative/none", "\x00", "\udcff",
                                 draw(st.text(max_size=10))]))
    opts = draw(st.lists(st.tuples(KEYS, st.sampled_from(["=", "", "=="]), NUMBER), max_size=4))
    body = ",".join(f"{k}{eq}{v}" for k, eq, v in opts)
    return f"{name}{sep}{path}{',' if path and body else ''}{body}"


def _small_enough(spec):
    """Whether a spec that parses names a generated dataset cheap to build (the contract
    allows large valid ones; the fuzz does not build them)."""
    try:
        name, _, opts = parse_source(spec)
    except NoisysegError:
        return True
    if name == "synthetic-echo":
        n, size = opts.get("n", 500), opts.get("size", 128)
        return not (ECHO_LIMITS["n"][0] <= n and ECHO_LIMITS["size"][0] <= size) or \
            n * size * size <= 40 * 32 * 32 or n * size * size > ECHO_LIMITS["pixels"] or \
            n > ECHO_LIMITS["n"][1] or size > ECHO_LIMITS["size"][1]
    if name == "synthetic-ct":
        n, size, sl = opts.get("n", 12), opts.get("size", 96), opts.get("slices", 32)
        lo_ok = n >= 1 and size >= CT_LIMITS["size"][0] and sl >= CT_LIMITS["slices"][0]
        return not lo_ok or size * size * sl <= 32 * 32 * 8 or size * size * sl > CT_LIMITS["case_voxels"] \
            or size > CT_LIMITS["size"][1] or sl > CT_LIMITS["slices"][1] or n > CT_LIMITS["n"][1]
    return True


@FUZZ
@given(spec=specs())
def test_random_data_strings_fail_cleanly_or_load_small(spec):
    if not _small_enough(spec):  # valid and big: within the bounds, but not built here
        return
    ds = check_contract(spec, read_all=False)
    if isinstance(ds, CaseDataset) and ds.generator is not None:
        ds[0]


@FUZZ
@given(spec=st.text(max_size=40))
def test_arbitrary_text_as_data_fails_cleanly(spec):
    if not _small_enough(spec):
        return
    check_contract(spec, read_all=False)
