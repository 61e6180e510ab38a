"""Volumes trained as 2-D slices: the slice dataset and its way back, case scores from slice
scores, and an audit of an nnU-Net dataset that writes a dataset nnU-Net can train on."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyseg.data import CaseDataset, load_dataset, load_nnunet, slice_dataset
from noisyseg.data.io import Geometry
from noisyseg.errors import ConfigError
from noisyseg.run.session import case_scores_from_slices
from tests.conftest import AFFINE, N_CASES, run_cli


def _generated(shapes, *, channels=1, seed=0):
    """A generated CaseDataset of random label volumes of the given shapes."""
    rng = np.random.default_rng(seed)
    labs = [rng.integers(0, 3, s).astype(np.uint8) for s in shapes]

    def gen(i):
        lab = labs[i]
        img = np.stack([lab * 10.0 + c for c in range(channels)]).astype(np.float32)
        return img, lab, Geometry.from_spacing(lab.shape, (2.5, 0.8, 0.7))

    from noisyseg.data import Case

    cases = tuple(Case(f"c{i}", (), None, "train") for i in range(len(shapes)))
    ds = CaseDataset(cases, ("background", "a", "b"), "synthetic-ct", source="test",
                     channel_names=tuple(f"ch{c}" for c in range(channels)), generator=gen)
    return ds, labs


@settings(max_examples=15, deadline=None)
@given(axis=st.integers(0, 2), depth=st.integers(1, 5))
def test_slices_reassemble_every_case_exactly(axis, depth):
    ds, labs = _generated([(depth, 6, 7), (depth + 1, 6, 7), (depth, 6, 7)])
    if axis != 0:  # in-plane shapes differ along axes 1 and 2 only when depths differ
        ds, labs = _generated([(depth, 6, 7), (depth, 6, 7)])
    sl, index = slice_dataset(ds, slice_axis=axis)
    assert len(sl) == sum(lab.shape[axis] for lab in labs)
    for i, lab in enumerate(labs):
        own = index.slices_of(i)
        np.testing.assert_array_equal(index.position[own], np.arange(lab.shape[axis]))
        np.testing.assert_array_equal(index.volume(i, sl.masks[own]), lab)
        # each slice is the case's image along the axis
        np.testing.assert_array_equal(sl.images[own[-1]], np.take(lab, -1, axis=axis) * 10.0)
    assert sl.sample_ids[0] == "c0:0"


def test_resized_slices_come_back_on_the_case_grid():
    ds, labs = _generated([(3, 8, 10), (2, 12, 6)])
    with pytest.raises(ConfigError, match="^slice_size: case c1 has"):
        slice_dataset(ds)
    sl, index = slice_dataset(ds, slice_size=16)
    assert sl.shape == (16, 16)
    for i, lab in enumerate(labs):
        back = index.volume(i, sl.masks[index.slices_of(i)])
        assert back.shape == lab.shape
        # nearest-neighbour up to 16 and back: every label survives where it was
        np.testing.assert_array_equal(back, lab)


def test_sample_spacing_is_the_spacing_of_each_samples_arrays():
    from noisyseg.data import volume_dataset

    ds, _ = _generated([(3, 8, 10), (3, 8, 10)])  # voxels of 2.5 x 0.8 x 0.7 mm
    _, along_z = slice_dataset(ds)
    assert along_z.sample_spacing(0) == (0.8, 0.7)
    _, along_y = slice_dataset(ds, slice_axis=1)
    assert along_y.sample_spacing(4) == (2.5, 0.7)
    _, resized = slice_dataset(ds, slice_size=16)  # 8 x 10 in-plane -> 16 x 16
    assert resized.sample_spacing(0) == pytest.approx((0.8 * 8 / 16, 0.7 * 10 / 16))
    _, grid = volume_dataset(ds)
    assert grid.sample_spacing(1) == (2.5, 0.8, 0.7)  # padded, not resampled
    _, common = volume_dataset(ds, spacing=(2.0, 1.0, 1.0))
    assert common.sample_spacing(0) == (2.0, 1.0, 1.0)


@pytest.mark.parametrize("kwargs, match", [({"slice_axis": 3}, "^slice_axis:"),
                                           ({"slice_size": 4}, "^slice_size:")])
def test_bad_slicing_names_the_parameter(kwargs, match):
    ds, _ = _generated([(3, 8, 10)])
    with pytest.raises(ConfigError, match=match):
        slice_dataset(ds, **kwargs)


def test_multichannel_volumes_are_refused_clearly():
    ds, _ = _generated([(3, 8, 10)], channels=2)
    with pytest.raises(ConfigError, match="one image channel.*2 \\(ch0, ch1\\)"):
        slice_dataset(ds)


def test_case_score_is_the_mean_over_slices_with_a_structure():
    scores = np.array([9.0, 1.0, 3.0, 5.0, 2.0, 4.0])
    case = np.array([0, 0, 0, 1, 1, 2])
    has = np.array([False, True, True, False, False, True])
    out = case_scores_from_slices(scores, case, has, np.array([1, 0, 2]))
    # case 1 has no structure anywhere: all its slices; case 0: slices 1 and 2 only
    np.testing.assert_allclose(out, [3.5, 2.0, 4.0])


def test_corrupted_slices_are_those_whose_mask_changed(tmp_path):
    out = tmp_path / "noisy"
    assert run_cli(["corrupt", "--data", "synthetic-ct:n=4,size=24,slices=6,seed=0",
                    "--model", "dilate", "--strength", "2", "--fraction", "0.5",
                    "--classes", "liver", "--out", str(out), "--no-progress"]) == 0
    cases = load_dataset(str(out))
    sl, index = slice_dataset(cases)
    changed = np.any(sl.masks != sl.clean_masks, axis=(1, 2))
    np.testing.assert_array_equal(sl.corrupted, changed)
    # only slices of corrupted cases changed
    assert set(index.case[changed]) <= set(np.flatnonzero(cases.corrupted))
    assert changed.any()


def test_audit_of_an_nnunet_dataset_writes_a_trainable_refurbished_dataset(nnunet, tmp_path):
    raw, _, _ = nnunet
    aud = tmp_path / "aud"
    rc = run_cli(["audit", "--data", f"nnunet:{raw}", "--detector", "loss", "--refurbish",
                  "--flag-rule", "top", "--flag-value", "0.5", "--warmup", "1", "--every", "1",
                  "--epochs", "3", "--batch-size", "4", "--width", "4", "--threads", "1",
                  "--tolerance", "2", "--slice-size", "32", "--no-progress", "--out", str(aud)])
    assert rc == 0
    cases = load_nnunet(raw)
    train = [cases.sample_ids[i] for i in cases.indices("train")]
    scores = pd.read_csv(aud / "scores.csv")
    assert sorted(scores["sample_id"]) == sorted(train)  # one row per training case
    slices = pd.read_csv(aud / "slice_scores.csv")
    assert len(slices) == 6 * len(train) and set(slices["slice"]) == set(range(6))
    metrics = json.loads((aud / "metrics.json").read_text())
    assert metrics["slice_axis"] == 0 and metrics["n_slices"] == 6 * N_CASES
    assert metrics["test"]["surface_dice_tolerance_mm"] == 2
    per_case = pd.read_csv(aud / "case_metrics.csv")
    assert {"dice_liver", "hd95_tumour", "surface_dice_liver"} <= set(per_case.columns)
    assert len(per_case) == metrics["test"]["n"]
    assert len(list((aud / "suspects").glob("*.png"))) == len(train)
    assert sorted(p.name for p in (aud / "pseudo_labels").iterdir()) == sorted(
        f"{c}.nii.gz" for c in train)
    # refurbished/: an nnU-Net dataset with every case, loadable as it is
    ref = aud / "refurbished"
    again = load_nnunet(ref)
    assert again.sample_ids == cases.sample_ids
    manifest = pd.read_csv(ref / "noisyseg" / "manifest.csv")
    changed = manifest.loc[manifest["label"] == "refurbished", "sample_id"].tolist()
    assert changed and set(changed) <= set(train)
    events = pd.read_csv(aud / "refurbish_events.csv")
    assert set(events["sample_id"]) == set(changed)
    for cid in cases.sample_ids:
        src, dst = raw / "labelsTr" / f"{cid}.nii.gz", ref / "labelsTr" / f"{cid}.nii.gz"
        assert (ref / "imagesTr" / f"{cid}_0000.nii.gz").read_bytes() == \
            (raw / "imagesTr" / f"{cid}_0000.nii.gz").read_bytes()
        if cid not in changed:
            assert dst.read_bytes() == src.read_bytes()
            continue
        img = nib.load(str(dst))  # overlays its image: same grid, affine, codes and dtype
        assert img.shape == nib.load(str(src)).shape
        np.testing.assert_allclose(img.affine, AFFINE)
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 2
        assert img.get_data_dtype() == np.int16
        assert set(np.unique(np.asarray(img.dataobj))) <= {0, 1, 2}


def test_audit_of_volumes_maps_errors_to_flags(nnunet, tmp_path, capsys):
    raw, _, _ = nnunet
    rc = run_cli(["audit", "--data", f"nnunet:{raw}", "--slice-size", "4", "--epochs", "1",
                  "--out", str(tmp_path / "a"), "--no-progress"])
    assert rc == 2
    assert "--slice-size: expected an in-plane size of at least 8" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_trusted_cases_are_all_their_slices(tmp_path):
    from noisyseg.api import run_audit
    from noisyseg.train import TrainConfig

    data = "synthetic-ct:n=6,size=32,slices=4,seed=0"
    cases = load_dataset(data)
    val = [cases.sample_ids[i] for i in cases.indices("val")]
    (tmp_path / "ok.txt").write_text("# checked by hand\n" + "\n".join(val) + "\n")
    res = run_audit(data=data, out=tmp_path / "a", config=TrainConfig(epochs=1, batch_size=4,
                    threads=1, model_options={"width": 4}), detectors=["disagree"],
                    trusted=tmp_path / "ok.txt", progress=False)
    t = res.trusted
    assert t["cases"] == sorted(val) and t["n"] == 4 * len(val)  # 4 slices per case
    assert t["source"] == f"file {tmp_path / 'ok.txt'}" and t["used_by"] == ["disagree"]
    with pytest.raises(Exception, match="trusted: .*'nope' is not in the dataset"):
        run_audit(data=data, out=tmp_path / "b", config=TrainConfig(epochs=1), trusted=["nope"],
                  detectors=["disagree"], progress=False)


def test_train_on_volumes_writes_predictions_that_overlay_their_images(nnunet, tmp_path):
    raw, _, _ = nnunet
    out = tmp_path / "run"
    rc = run_cli(["train", "--data", f"nnunet:{raw}", "--epochs", "1", "--batch-size", "4",
                  "--width", "4", "--threads", "1", "--slice-size", "32", "--no-progress",
                  "--out", str(out)])
    assert rc == 0
    cases = load_nnunet(raw)
    test = sorted(cases.sample_ids[i] for i in cases.indices("test"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n"] == len(test) and metrics["slice_axis"] == 0
    assert sorted(pd.read_csv(out / "case_metrics.csv")["sample_id"]) == test
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [f"{c}.nii.gz" for c in test]
    for cid in test:
        img = nib.load(str(out / "predictions" / f"{cid}.nii.gz"))
        src = nib.load(str(raw / "labelsTr" / f"{cid}.nii.gz"))
        assert img.shape == src.shape and img.get_data_dtype() == np.int16
        np.testing.assert_allclose(img.affine, AFFINE)
    assert (out / "predictions.png").stat().st_size > 0 and (out / "model.pt").is_file()
