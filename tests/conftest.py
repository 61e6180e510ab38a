import json
import os
import textwrap

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")
settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def pytest_addoption(parser):
    parser.addoption("--fuzz-examples", type=int, default=None, metavar="N",
                     help="examples per fuzz test (default: each test's small CI budget; "
                          "the same as NOISYSEG_FUZZ_EXAMPLES=N)")


def pytest_configure(config):
    n = config.getoption("--fuzz-examples")
    if n:
        os.environ["NOISYSEG_FUZZ_EXAMPLES"] = str(n)


def fuzz_settings(default: int, **kwargs):
    """Hypothesis settings of a fuzz test: ``default`` examples in CI, or the budget given
    by ``--fuzz-examples N`` / ``NOISYSEG_FUZZ_EXAMPLES``."""
    n = int(os.environ.get("NOISYSEG_FUZZ_EXAMPLES", default))
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow], **kwargs)


@pytest.fixture(scope="session")
def echo_small():
    from noisyseg.data import synthetic_echo

    return synthetic_echo(n=24, size=48, seed=3)


def run_cli(args):
    """Run the real ``noisyseg`` entry point in-process; return its exit status."""
    from noisyseg.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return exc.code
    return 0


def square_mask(size=32, lo=8, hi=24, label=1):
    m = np.zeros((size, size), np.uint8)
    m[lo:hi, lo:hi] = label
    return m


TINY = """\
name: tiny
description: a tiny test study
data: synthetic-echo:n=20,size=32,seed=0
train: {epochs: 2, batch_size: 8, model_options: {width: 4}, threads: 1}
audit: {warmup: 1, every: 1, flag_rule: top, flag_value: 0.5}
grids:
  - corrupt.model: [none, natural]
    corrupt.target_dice: [0.85]
    seed: [0, 1]
  - corrupt: [{model: dilate, strength: 2, fraction: 0.5, classes: [lv_cavity]}]
    audit.detectors: [none, [loss]]
    audit.refurbish: [false, true]
    seed: [0, 1]
"""


@pytest.fixture()
def tiny_spec(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(textwrap.dedent(TINY))
    return p


# oblique, anisotropic: x and y swapped and flipped, 0.7 x 0.8 x 2.5 mm
AFFINE = np.array([[0.0, -0.8, 0.0, 12.5], [0.7, 0.0, 0.0, -30.0], [0.0, 0.0, 2.5, 41.0],
                   [0.0, 0.0, 0.0, 1.0]])
N_CASES = 6
BAD = "case_002"  # its given label disagrees with the model



def save_nifti(data_xyz, path, dtype=None):
    img = nib.Nifti1Image(data_xyz, AFFINE)
    img.set_qform(AFFINE, code=1)
    img.set_sform(AFFINE, code=2)
    if dtype is not None:
        img.set_data_dtype(dtype)
    nib.save(img, str(path))


def label_zyx(rng):
    """(z, y, x) = (6, 14, 16) labels: a box of 1 with a box of 2 inside."""
    lab = np.zeros((6, 14, 16), np.uint8)
    oy, ox = rng.integers(0, 3, 2)
    lab[1:5, 2 + oy:11 + oy, 3 + ox:13 + ox] = 1
    lab[2:4, 5 + oy:8 + oy, 6 + ox:9 + ox] = 2
    return lab


def soft_probs(lab, k=3, sharp=4.0):
    """Probabilities (K, *S) that favour ``lab``, in SimpleITK order."""
    z = np.stack([(lab == c) * sharp for c in range(k)]).astype(np.float32)
    p = np.exp(z)
    return p / p.sum(0, keepdims=True)


@pytest.fixture()
def nnunet(tmp_path):
    """A raw nnU-Net dataset and a results folder with two folds of validation .npz files
    (plus their segmentations, a fold_all, and .pkl files), as nnUNetv2_train --npz writes."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "Dataset009_Toy"
    for d in ("imagesTr", "labelsTr"):
        (raw / d).mkdir(parents=True)
    res = tmp_path / "results" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    truth = {}
    for i in range(N_CASES):
        cid = f"case_{i:03d}"
        lab = label_zyx(rng)
        truth[cid] = lab
        given = lab.copy()
        if cid == BAD:
            given[given == 2] = 0  # the annotator left structure 2 out
        save_nifti(given.T, raw / "labelsTr" / f"{cid}.nii.gz", dtype=np.int16)
        save_nifti((lab.T * 40 + rng.normal(0, 3, lab.T.shape)).astype(np.float32),
              raw / "imagesTr" / f"{cid}_0000.nii.gz")
        fold = res / f"fold_{i % 2}" / "validation"
        fold.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(fold / f"{cid}.npz", probabilities=soft_probs(lab))
        save_nifti(lab.T, fold / f"{cid}.nii.gz")
        (fold / f"{cid}.pkl").write_bytes(b"properties")
    (res / "fold_all" / "validation").mkdir(parents=True)
    np.savez_compressed(res / "fold_all" / "validation" / "case_000.npz",
                        probabilities=soft_probs(truth["case_000"]))
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": N_CASES, "file_ending": ".nii.gz"}))
    return raw, res, truth
