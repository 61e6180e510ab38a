"""End to end: nnU-Net datasets whose slices (77 x 65) and volumes (9 x 20 x 27) are no
multiple of the network's 16 train, audit and write every label file on the source grid."""

import json

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import AFFINE, run_cli, save_nifti

N_CASES = 6


def _raw(root, shape_zyx, seed=0):
    """A raw nnU-Net dataset of ``N_CASES`` cases of ``shape_zyx``: a noisy bright box of
    label 1 (one case's annotator left half of it out)."""
    rng = np.random.default_rng(seed)
    raw = root / "Dataset011_Odd"
    for d in ("imagesTr", "labelsTr"):
        (raw / d).mkdir(parents=True)
    for i in range(N_CASES):
        lab = np.zeros(shape_zyx, np.uint8)
        lo = [int(rng.integers(1, max(2, s // 4))) for s in shape_zyx]
        lab[tuple(slice(a, a + s // 2) for a, s in zip(lo, shape_zyx, strict=True))] = 1
        img = (lab * 40 + rng.normal(0, 5, lab.shape)).astype(np.float32)
        if i == 2:
            lab[..., : shape_zyx[-1] // 2] = 0
        save_nifti(lab.T, raw / "labelsTr" / f"case_{i:03d}.nii.gz", dtype=np.int16)
        save_nifti(img.T, raw / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "box": 1},
        "numTraining": N_CASES, "file_ending": ".nii.gz"}))
    return raw


def _assert_on_source_grid(folder, raw, at_least):
    files = sorted(folder.glob("*.nii.gz"))
    assert len(files) >= at_least
    for f in files:
        img = nib.load(str(f))
        src = nib.load(str(raw / "labelsTr" / f.name))
        assert img.shape == src.shape, f.name
        np.testing.assert_allclose(img.affine, AFFINE)
        assert set(np.unique(np.asarray(img.dataobj))) <= {0, 1}


COMMON = ["--epochs", "2", "--batch-size", "4", "--width", "4", "--threads", "1",
          "--no-progress"]


@pytest.mark.parametrize("dims", [2, 3])
def test_audit_of_odd_sizes_writes_labels_on_the_source_grid(tmp_path, dims):
    shape = (3, 77, 65) if dims == 2 else (9, 20, 27)
    raw = _raw(tmp_path, shape)
    out = tmp_path / "aud"
    rc = run_cli(["audit", "--data", f"nnunet:{raw}", "--dims", str(dims),
                  "--detector", "loss", "--detector", "vog-online", "--refurbish",
                  "--flag-rule", "top", "--flag-value", "0.5", "--warmup", "1", "--every", "1",
                  *COMMON, "--out", str(out)])
    assert rc == 0
    _assert_on_source_grid(out / "pseudo_labels", raw, at_least=1)
    _assert_on_source_grid(out / "refurbished" / "labelsTr", raw, at_least=N_CASES)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dims"] == dims


def test_train_on_odd_slices_writes_predictions_on_the_source_grid(tmp_path):
    raw = _raw(tmp_path, (3, 77, 65), seed=1)
    out = tmp_path / "run"
    rc = run_cli(["train", "--data", f"nnunet:{raw}", *COMMON, "--out", str(out)])
    assert rc == 0
    _assert_on_source_grid(out / "predictions", raw, at_least=1)
