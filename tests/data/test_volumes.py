"""Volumes and case layouts: geometry round trips, nnU-Net / Decathlon / folder datasets, and
`noisyseg corrupt` writing them back so that every mask overlays its image."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from noisyseg.data import CaseDataset, load_dataset, read_image, write_image
from noisyseg.data.folder import load_folder, write_folder
from noisyseg.errors import DataError

from ..conftest import run_cli

# an oblique, anisotropic affine (x and y swapped and flipped, 0.7 x 0.8 x 2.5 mm, an origin)
AFFINE = np.array([[0.0, -0.8, 0.0, 12.5],
                   [0.7, 0.0, 0.0, -30.0],
                   [0.0, 0.0, 2.5, 41.0],
                   [0.0, 0.0, 0.0, 1.0]])
SHAPE_XYZ = (20, 18, 8)



def _label(rng, shape=SHAPE_XYZ):
    """(x, y, z) label volume: a box of 1 with a box of 2 inside it, jittered per case."""
    lab = np.zeros(shape, np.uint8)
    ox, oy = rng.integers(0, 3, 2)
    lab[3 + ox:15 + ox, 3 + oy:14 + oy, 1:7] = 1
    lab[6 + ox:10 + ox, 6 + oy:10 + oy, 2:5] = 2
    return lab


def _save(data, path, *, sform_code=2, dtype=None):
    img = nib.Nifti1Image(data, AFFINE)
    img.set_qform(AFFINE, code=1)
    img.set_sform(AFFINE, code=sform_code)
    if dtype is not None:
        img.set_data_dtype(dtype)
    nib.save(img, str(path))


def flat_folder(root):
    """A folder of 12 2-D NIfTI images and int16 masks of 30 x 26 (stored (x, y, 1)) with the
    oblique ``AFFINE``: what a resized training audit must write back exactly."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(7)
    for i in range(12):
        m = np.zeros((30, 26, 1), np.int16)
        m[6 + rng.integers(0, 4):22, 5:20 + rng.integers(0, 4)] = 1
        _save((m * 80 + rng.normal(0, 5, m.shape)).astype(np.float32), root / "images" / f"s{i:02d}.nii.gz")
        _save(m, root / "masks" / f"s{i:02d}.nii.gz")
    return root


def _same_header(a, b):
    ia, ib = nib.load(str(a)), nib.load(str(b))
    assert np.allclose(ia.affine, ib.affine)
    assert int(ia.header["qform_code"]) == int(ib.header["qform_code"])
    assert int(ia.header["sform_code"]) == int(ib.header["sform_code"])
    assert ia.shape == ib.shape
    sa, sb = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    assert np.allclose(sa.GetSpacing(), sb.GetSpacing())
    assert np.allclose(sa.GetOrigin(), sb.GetOrigin())
    assert np.allclose(sa.GetDirection(), sb.GetDirection())


def _nnunet(root, n=5, channels=("CT", "PET"), labels=None):
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "imagesTs").mkdir()
    for i in range(n):
        lab = _label(rng)
        _save(lab, root / "labelsTr" / f"case_{i:03d}.nii.gz", dtype=np.int16)
        for c in range(len(channels)):
            img = (lab * 50 + rng.normal(0, 5, lab.shape)).astype(np.float32)
            _save(img, root / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz")
    _save(np.zeros(SHAPE_XYZ, np.float32), root / "imagesTs" / f"case_999_{0:04d}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {str(c): name for c, name in enumerate(channels)},
        "labels": labels or {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": n, "file_ending": ".nii.gz"}))
    return root


# --------------------------------------------------------------------------- IO
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_write_image_keeps_the_source_geometry(tmp_path, suffix):
    src = tmp_path / "src.nii.gz"
    lab = _label(np.random.default_rng(1))
    _save(lab, src, dtype=np.int16)
    arr, geom = read_image(src)
    assert arr.shape == SHAPE_XYZ[::-1]  # array order (z, y, x)
    assert np.allclose(geom.spacing, (2.5, 0.8, 0.7))
    assert geom.dtype == "int16"
    out = tmp_path / f"out{suffix}"
    write_image(out, arr, geom, dtype=geom.dtype)
    back, g2 = read_image(out)
    assert np.array_equal(back, arr)
    assert np.allclose(g2.affine_array, AFFINE, atol=1e-5)
    s_src, s_out = sitk.ReadImage(str(src)), sitk.ReadImage(str(out))
    assert np.allclose(s_src.GetOrigin(), s_out.GetOrigin(), atol=1e-4)
    assert np.allclose(s_src.GetDirection(), s_out.GetDirection(), atol=1e-6)
    assert np.allclose(s_src.GetSpacing(), s_out.GetSpacing(), atol=1e-6)
    if suffix == ".nii.gz":
        _same_header(src, out)
        assert nib.load(str(out)).get_data_dtype() == np.int16


def test_a_planted_voxel_keeps_its_world_position(tmp_path):
    src = tmp_path / "src.nii.gz"
    lab = np.zeros(SHAPE_XYZ, np.uint8)
    lab[4, 11, 6] = 1  # file index (i, j, k)
    _save(lab, src)
    arr, geom = read_image(src)
    write_image(tmp_path / "o.mha", arr, geom)
    img = sitk.ReadImage(str(tmp_path / "o.mha"))
    z, y, x = np.argwhere(sitk.GetArrayFromImage(img))[0]
    lps = np.array(img.TransformIndexToPhysicalPoint((int(x), int(y), int(z))))
    ras = AFFINE @ np.array([4, 11, 6, 1.0])
    assert np.allclose(lps * [-1, -1, 1], ras[:3], atol=1e-4)


# --------------------------------------------------------------------------- nnU-Net
def test_nnunet_layout_loads_cases_with_channels(tmp_path):
    ds = load_dataset(f"nnunet:{_nnunet(tmp_path / 'Dataset001_Toy')}")
    assert isinstance(ds, CaseDataset) and len(ds) == 5 and ds.layout == "nnunet"
    assert ds.class_names == ("background", "liver", "tumour")
    assert ds.channel_names == ("CT", "PET")
    item = ds[0]
    assert item["image"].shape == (2, *SHAPE_XYZ[::-1]) and item["image"].dtype == np.float32
    assert set(np.unique(item["label"])) == {0, 1, 2}
    assert sorted(ds.summary()["splits"].values()) == [1, 1, 3]


@pytest.mark.parametrize("labels, text", [
    ({"background": 0, "whole": [1, 2], "core": 2}, "region-based"),
    ({"liver": 1}, "background"),
])
def test_nnunet_bad_labels_are_one_line_errors(tmp_path, labels, text, capsys):
    root = _nnunet(tmp_path / "D", labels=labels)
    code = run_cli(["corrupt", "--data", f"nnunet:{root}", "--strength", "1", "--out",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err + capsys.readouterr().out
    assert code == 2 and text in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_nnunet_missing_channel_and_count_are_named(tmp_path):
    root = _nnunet(tmp_path / "D")
    (root / "imagesTr" / "case_002_0001.nii.gz").unlink()
    with pytest.raises(DataError, match="case_002_0001.nii.gz: missing"):
        load_dataset(f"nnunet:{root}")
    root2 = _nnunet(tmp_path / "E")
    dj = json.loads((root2 / "dataset.json").read_text())
    (root2 / "dataset.json").write_text(json.dumps({**dj, "numTraining": 9}))
    with pytest.raises(DataError, match="numTraining is 9 but 5"):
        load_dataset(f"nnunet:{root2}")


def test_corrupt_nnunet_writes_an_nnunet_dataset_that_overlays(tmp_path):
    root = _nnunet(tmp_path / "Dataset001_Toy")
    out = tmp_path / "noisy"
    code = run_cli(["corrupt", "--data", f"nnunet:{root}", "--model", "natural", "--slicewise",
                 "--strength", "1.5", "--out", str(out), "--no-progress"])
    assert code == 0
    assert (out / "dataset.json").read_bytes() == (root / "dataset.json").read_bytes()
    for f in (root / "imagesTr").iterdir():  # images copied byte for byte
        assert (out / "imagesTr" / f.name).read_bytes() == f.read_bytes()
    assert (out / "imagesTs" / "case_999_0000.nii.gz").is_file()
    man = pd.read_csv(out / "noisyseg" / "manifest.csv")
    assert man["corrupted"].sum() == 3 and set(man.loc[man.corrupted, "split"]) == {"train"}
    for _, row in man.iterrows():
        src = root / "labelsTr" / f"{row.sample_id}.nii.gz"
        noisy = out / "labelsTr" / f"{row.sample_id}.nii.gz"
        clean = out / "noisyseg" / "labelsTr_clean" / f"{row.sample_id}.nii.gz"
        assert clean.read_bytes() == src.read_bytes()
        _same_header(src, noisy)
        assert nib.load(str(noisy)).get_data_dtype() == np.int16
        a, b = np.asanyarray(nib.load(str(noisy)).dataobj), np.asanyarray(nib.load(str(src)).dataobj)
        assert (not np.array_equal(a, b)) == bool(row.corrupted)
        if row.corrupted:
            d = 2 * np.sum((a == 1) & (b == 1)) / (np.sum(a == 1) + np.sum(b == 1))
            assert 0.5 < d < 1.0
    # the output is a data source again, which knows its truth and which cases were changed
    back = load_dataset(f"nnunet:{out}")
    assert back.has_clean_labels and back.corrupted.sum() == 3
    assert list(back.split) == list(man["split"])
    rec = json.loads((out / "noisyseg" / "corruption.json").read_text())
    assert rec["config"]["mode"] == "slicewise" and rec["config"]["strength_unit"].startswith("pixels")
    assert (out / "noisyseg" / "examples.png").stat().st_size > 1000


def test_corrupt_with_strength_zero_writes_the_same_voxels(tmp_path):
    root = _nnunet(tmp_path / "D", channels=("CT",))
    out = tmp_path / "o"
    assert run_cli(["corrupt", "--data", f"nnunet:{root}", "--model", "dilate", "--strength", "0",
                 "--out", str(out), "--no-progress"]) == 0
    for f in (root / "labelsTr").iterdir():
        a, b = nib.load(str(out / "labelsTr" / f.name)), nib.load(str(f))
        assert np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
        assert np.allclose(a.affine, b.affine)


# --------------------------------------------------------------------------- Decathlon
def _msd(root, n=4):
    rng = np.random.default_rng(2)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        lab = _label(rng) * np.uint8(2)  # Decathlon-style values 0, 2, 4 -> classes 0, 1, 2
        img = np.stack([lab * 10.0 + c + rng.normal(0, 1, lab.shape) for c in range(2)], axis=-1)
        _save(img.astype(np.float32), root / "imagesTr" / f"prostate_{i:02d}.nii.gz")
        _save(lab, root / "labelsTr" / f"prostate_{i:02d}.nii.gz")
        training.append({"image": f"./imagesTr/prostate_{i:02d}.nii.gz",
                         "label": f"./labelsTr/prostate_{i:02d}.nii.gz"})
        (root / "imagesTr" / f"._prostate_{i:02d}.nii.gz").write_bytes(b"\x00\x05junk")
    training.append({"image": "./imagesTr/._prostate_00.nii.gz",
                     "label": "./labelsTr/._prostate_00.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({
        "name": "Toy", "modality": {"0": "T2", "1": "ADC"},
        "labels": {"0": "background", "2": "PZ", "4": "TZ"}, "numTraining": n,
        "training": training, "test": []}))
    return root


def test_msd_layout_reads_4d_images_and_maps_label_values(tmp_path):
    ds = load_dataset(f"msd:{_msd(tmp_path / 'Task05_Toy')}")
    assert len(ds) == 4 and ds.channel_names == ("T2", "ADC")
    assert ds.class_names == ("background", "PZ", "TZ") and ds.label_values == (0, 2, 4)
    item = ds[1]
    assert item["image"].shape == (2, *SHAPE_XYZ[::-1])
    assert set(np.unique(item["label"])) == {0, 1, 2}


def test_corrupt_msd_writes_values_back(tmp_path):
    root = _msd(tmp_path / "Task05_Toy")
    out = tmp_path / "o"
    assert run_cli(["corrupt", "--data", f"msd:{root}", "--model", "erode", "--strength", "1",
                 "--out", str(out), "--no-progress"]) == 0
    man = pd.read_csv(out / "noisyseg" / "manifest.csv")
    for sid in man.loc[man.corrupted, "sample_id"]:
        f = out / "labelsTr" / f"{sid}.nii.gz"
        assert set(np.unique(np.asanyarray(nib.load(str(f)).dataobj))) <= {0, 2, 4}
        _same_header(root / "labelsTr" / f"{sid}.nii.gz", f)
    assert not any(p.name.startswith("._") for p in (out / "imagesTr").iterdir())


# --------------------------------------------------------------------------- folders
def test_folder_of_volumes_is_read_lazily_and_written_in_its_formats(tmp_path):
    root = tmp_path / "vols"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):
        lab = _label(rng)
        _save(lab.astype(np.float32) * 100, root / "images" / f"v{i}.nii.gz")
        arr, geom = read_image(root / "images" / f"v{i}.nii.gz")
        write_image(root / "masks" / f"v{i}.nrrd", lab.T.copy(), geom)
    ds = load_dataset(str(root))
    assert isinstance(ds, CaseDataset) and ds.layout == "folder" and len(ds) == 4
    out = tmp_path / "o"
    assert run_cli(["corrupt", "--data", str(root), "--model", "shift", "--strength", "2",
                 "--out", str(out), "--no-progress"]) == 0
    for i in range(4):
        a, b = sitk.ReadImage(str(out / "masks" / f"v{i}.nrrd")), sitk.ReadImage(
            str(root / "masks" / f"v{i}.nrrd"))
        assert np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetDirection(), b.GetDirection())
        clean, src = out / "masks_clean" / f"v{i}.nrrd", root / "masks" / f"v{i}.nrrd"
        assert clean.read_bytes() == src.read_bytes()
    assert load_dataset(str(out)).has_clean_labels


def test_2d_nifti_masks_go_back_to_their_grid_and_affine(tmp_path):
    """The bug this issue opened with: 2-D NIfTI masks came back resized, with an identity affine."""
    root = tmp_path / "flat"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    aff = np.diag([0.31, 0.31, 1.0, 1.0])
    aff[:3, 3] = (-40.0, 12.0, 3.0)
    rng = np.random.default_rng(4)
    for i in range(6):
        m = np.zeros((40, 36, 1), np.uint8)
        m[8 + rng.integers(0, 4):30, 6:28 + rng.integers(0, 4)] = 1
        for data, sub in ((m.astype(np.float32) * 80, "images"), (m, "masks")):
            img = nib.Nifti1Image(data, aff)
            img.set_sform(aff, code=1)
            nib.save(img, str(root / sub / f"s{i}.nii.gz"))
    out = tmp_path / "o"
    assert run_cli(["corrupt", "--data", f"{root},size=32", "--model", "dilate", "--strength", "1",
                 "--out", str(out)]) == 0
    for i in range(6):
        a, b = nib.load(str(out / "masks" / f"s{i}.nii.gz")), nib.load(str(root / "masks" / f"s{i}.nii.gz"))
        assert a.shape == b.shape and np.allclose(a.affine, aff)
        img_out, img_src = out / "images" / f"s{i}.nii.gz", root / "images" / f"s{i}.nii.gz"
        assert img_out.read_bytes() == img_src.read_bytes()
    # and the written folder reads back on the source grid
    back = load_folder(out)
    assert back.images.shape[1:] == (36, 40)


def test_write_folder_of_generated_data_has_no_geometry_to_keep(tmp_path):
    ds = load_dataset("synthetic-echo:n=4,size=16")
    write_folder(ds, tmp_path / "o", fmt="nii.gz")
    assert nib.load(str(tmp_path / "o" / "masks" / f"{ds.sample_ids[0]}.nii.gz")).shape == (16, 16)


def test_cross_validation_refuses_volume_options_on_2d_images_clearly(tmp_path, capsys):
    """Volumes take --folds (tests/run/test_crossval_volumes.py); 2-D images refuse what
    only volumes have, in one line, writing nothing."""
    code = run_cli(["audit", "--folds", "2", "--data", "synthetic-echo:n=12,size=32",
                    "--dims", "3", "--out", str(tmp_path / "t"), "--epochs", "1"])
    err = capsys.readouterr().err.replace("\n", " ")
    assert code == 2 and "dims: synthetic-echo:n=12,size=32 holds 2-D images" in err
    assert not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- synthetic-ct
def test_synthetic_ct_is_seeded_per_case_and_ct_like():
    a = load_dataset("synthetic-ct:n=6,size=48,slices=12,seed=3")
    b = load_dataset("synthetic-ct:n=3,size=48,slices=12,seed=3")
    ia, ib = a[2], b[2]
    assert np.array_equal(ia["label"], ib["label"]) and np.array_equal(ia["image"], ib["image"])
    assert ia["geometry"].spacing == (2.5, 0.8, 0.8)
    assert set(np.unique(ia["label"])) >= {0, 1, 2}
    hu = ia["image"][0]
    assert hu.min() < -900 and 20 < np.median(hu[ia["label"] == 1]) < 100


def test_corrupt_synthetic_ct_to_a_target_volume_dice(tmp_path):
    out = tmp_path / "ct"
    assert run_cli(["corrupt", "--data", "synthetic-ct:n=6,size=48,slices=12", "--model", "natural",
                 "--slicewise", "--target-dice", "0.85", "--out", str(out), "--no-progress"]) == 0
    man = pd.read_csv(out / "manifest.csv")
    assert abs(man.loc[man.corrupted, "dice_to_clean"].mean() - 0.85) <= 0.005
    img = nib.load(str(out / "images" / f"{man.sample_id[0]}.nii.gz"))
    assert np.allclose(np.abs(np.diag(img.affine))[:3], (0.8, 0.8, 2.5))
    assert Path(out / "examples.png").is_file()
    assert load_dataset(str(out)).channel_names == ("CT",)  # the folder keeps the modality


def test_train_predictions_and_refurbished_masks_overlay_their_2d_sources(tmp_path):
    """`train`'s predictions/ and `audit --refurbish`'s refurbished/ go back to the source
    grid and header (the oblique AFFINE), like corrupt's masks (the data were resized to
    32 x 32 for training)."""
    from noisyseg.api import run_audit, run_train
    from noisyseg.refurbish import RefurbishConfig
    from noisyseg.train import TrainConfig

    root = flat_folder(tmp_path / "flat")
    cfg = TrainConfig(epochs=2, steps_per_epoch=2, batch_size=4, model_options={"width": 4},
                      threads=1)
    run_train(data=f"{root},size=32", out=tmp_path / "run", config=cfg, progress=False)
    preds = sorted((tmp_path / "run" / "predictions").iterdir())
    run_audit(data=f"{root},size=32", out=tmp_path / "aud", config=cfg, detectors=("loss",),
              refurbish=RefurbishConfig(warmup=1, every=1), flag_rule="top", flag_value=0.5,
              progress=False)
    refurbished = sorted((tmp_path / "aud" / "refurbished").iterdir())
    pseudo = sorted((tmp_path / "aud" / "pseudo_labels").iterdir())
    assert preds and refurbished and [f.name for f in pseudo] == [f.name for f in refurbished]
    for f in preds + refurbished + pseudo:
        _same_header(f, root / "masks" / f.name)
        assert nib.load(str(f)).get_data_dtype() == np.int16


def test_streaming_and_in_memory_corruption_give_the_same_2d_masks(tmp_path):
    """A 2-D folder corrupted in memory (corrupt_dataset) and case by case (corrupt_cases on the
    same folder read lazily) gets the same samples and the same masks for the same seed."""
    from noisyseg.corrupt import corrupt_cases, corrupt_dataset
    from noisyseg.data import synthetic_echo

    src = tmp_path / "echo"
    write_folder(synthetic_echo(n=14, size=32, seed=5), src, fmt="npy")
    res = corrupt_dataset(load_folder(src), "natural", strength=2.0, fraction=0.5, seed=3)
    lazy = load_dataset(str(src), lazy=True)
    assert isinstance(lazy, CaseDataset)
    out = tmp_path / "o"
    out.mkdir()
    cc = corrupt_cases(lazy, "natural", out, strength=2.0, fraction=0.5, seed=3)
    assert np.array_equal(cc.manifest["corrupted"].to_numpy(), res.dataset.corrupted)
    for sid, m in zip(res.dataset.sample_ids, res.dataset.masks, strict=True):
        assert np.array_equal(np.load(out / "masks" / f"{sid}.npy"), m)


def test_a_2d_nnunet_dataset_is_corrupted_case_by_case(tmp_path):
    """nnU-Net also takes 2-D data (one image per case and channel): corrupt streams it,
    keeps each label's header, and draws 2-D examples."""
    root = tmp_path / "Dataset002_Flat"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        lab = np.zeros((24, 20, 1), np.uint8)
        lab[5 + rng.integers(0, 3):18, 4:15 + rng.integers(0, 3)] = 1
        _save(lab, root / "labelsTr" / f"c{i}.nii.gz")
        _save((lab * 60.0 + rng.normal(0, 2, lab.shape)).astype(np.float32),
              root / "imagesTr" / f"c{i}_0000.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MR"}, "labels": {"background": 0, "organ": 1},
        "numTraining": 6, "file_ending": ".nii.gz"}))
    out = tmp_path / "o"
    assert run_cli(["corrupt", "--data", f"nnunet:{root}", "--model", "natural", "--strength", "1",
                 "--fraction", "1", "--out", str(out), "--no-progress"]) == 0
    assert (out / "noisyseg" / "examples.png").exists()
    for f in (root / "labelsTr").iterdir():
        _same_header(out / "labelsTr" / f.name, f)
