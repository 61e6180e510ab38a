import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from noisyseg.data import (
    load_camus,
    load_dataset,
    load_folder,
    parse_source,
    synthetic_echo,
    write_folder,
)
from noisyseg.errors import ConfigError, DataError


def test_synthetic_echo_is_seeded_and_prefix_stable():
    a = synthetic_echo(n=6, size=40, seed=2)
    b = synthetic_echo(n=9, size=40, seed=2)
    np.testing.assert_array_equal(a.images, b.images[:6])
    np.testing.assert_array_equal(a.masks, b.masks[:6])
    c = synthetic_echo(n=6, size=40, seed=3)
    assert not np.array_equal(a.images, c.images)
    assert a.images.dtype == np.float32 and a.masks.dtype == np.uint8
    assert set(np.unique(a.masks)) == {0, 1, 2, 3}
    assert 0 <= a.images.min() and a.images.max() <= 1


def test_synthetic_split_proportions():
    ds = synthetic_echo(n=100, size=16)
    assert ds.summary()["splits"] == {"train": 70, "val": 15, "test": 15}


@pytest.mark.parametrize("spec,expected", [
    ("synthetic-echo", ("synthetic-echo", None, {})),
    ("synthetic-echo:n=5,seed=2", ("synthetic-echo", None, {"n": 5, "seed": 2})),
    ("camus:/d/CAMUS,view=2CH,size=64", ("camus", "/d/CAMUS", {"view": "2CH", "size": 64})),
    ("/my/data,size=32", ("folder", "/my/data", {"size": 32})),
])
def test_parse_source(spec, expected):
    assert parse_source(spec) == expected


@pytest.mark.parametrize("spec,match", [
    ("synthetic-echo:n=abc", "not a valid int"),
    ("synthetic-echo:colour=red", "unknown option 'colour'"),
    ("camus:", "needs a path"),
    ("/definitely/not/here", "neither a known source"),
    ("synthetic-echo:n=0", "must be positive"),
])
def test_bad_sources(spec, match):
    with pytest.raises(ConfigError, match=match):
        load_dataset(spec)


@pytest.mark.parametrize("fmt", ["nii.gz", "png", "npy"])
def test_folder_round_trip(tmp_path, fmt):
    ds = synthetic_echo(n=6, size=24, seed=1)
    noisy = ds.with_masks(np.where(ds.masks == 1, 2, ds.masks).astype(np.uint8))
    write_folder(noisy, tmp_path / "out", fmt=fmt)
    back = load_folder(tmp_path / "out")
    assert back.sample_ids == ds.sample_ids and back.class_names == ds.class_names
    np.testing.assert_array_equal(back.masks, noisy.masks)
    np.testing.assert_array_equal(back.clean_masks, ds.masks)
    np.testing.assert_array_equal(back.split, ds.split)
    if fmt != "png":
        np.testing.assert_allclose(back.images, ds.images, atol=1e-6)
    assert not list(tmp_path.glob(".out.tmp-*"))


def _write_user_folder(root, n=5, shape=(20, 30), ext=".png"):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random(shape) * 255).astype(np.uint8)
        m = np.zeros(shape, np.uint8)
        m[5:15, 5 + i: 20] = 255
        Image.fromarray(img).save(root / "images" / f"s{i}{ext}")
        Image.fromarray(m).save(root / "masks" / f"s{i}{ext}")


def test_user_folder_with_binary_255_masks_and_resize(tmp_path):
    _write_user_folder(tmp_path)
    ds = load_dataset(f"{tmp_path},size=16")
    assert ds.images.shape == (5, 16, 16)
    assert set(np.unique(ds.masks)) == {0, 1}
    assert ds.class_names == ("background", "class_1")


def test_folder_split_csv(tmp_path):
    _write_user_folder(tmp_path)
    pd.DataFrame({"sample_id": [f"s{i}" for i in range(5)],
                  "split": ["train", "train", "val", "test", "train"]}).to_csv(
        tmp_path / "split.csv", index=False)
    ds = load_folder(tmp_path)
    assert list(ds.split) == ["train", "train", "val", "test", "train"]


@pytest.mark.parametrize("breakage,match", [
    ("mismatch", "differs from image shape"),
    ("labels", "outside the declared classes"),
    ("truncated", "cannot read file"),
    ("nan", "NaN"),
    ("unpaired", "no mask with the same stem"),
    ("split", "unknown split 'holdout'"),
])
def test_folder_errors_name_the_file(tmp_path, breakage, match):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        np.save(root / "images" / f"a{i}.npy", np.ones((8, 8), np.float32))
        np.save(root / "masks" / f"a{i}.npy", np.zeros((8, 8), np.uint8))
    (root / "dataset.json").write_text(json.dumps({"class_names": ["background", "fg"]}))
    bad = root / "masks" / "a1.npy"
    if breakage == "mismatch":
        np.save(bad, np.zeros((8, 9), np.uint8))
    elif breakage == "labels":
        np.save(bad, np.full((8, 8), 3, np.uint8))
    elif breakage == "truncated":
        bad.write_bytes(bad.read_bytes()[:40])
    elif breakage == "nan":
        bad = root / "images" / "a1.npy"
        np.save(bad, np.full((8, 8), np.nan, np.float32))
    elif breakage == "unpaired":
        bad = root / "images" / "extra.npy"
        np.save(bad, np.ones((8, 8), np.float32))
    elif breakage == "split":
        bad = root / "split.csv"
        bad.write_text("sample_id,split\na0,train\na1,holdout\na2,test\n")
    with pytest.raises(DataError, match=match) as err:
        load_folder(root)
    assert bad.name in str(err.value)


def test_empty_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_folder(tmp_path)


def _camus_case(rng, shape=(30, 20)):
    img = (rng.random(shape) * 255).astype(np.float32)
    gt = np.zeros(shape, np.float32)
    gt[3:10, 4:16] = 1  # an asymmetric pattern: rows != columns
    gt[10:14, 4:16] = 2
    gt[20:27, 6:12] = 3
    return img, gt


def test_camus_nifti_and_mhd_releases_agree_in_orientation(tmp_path):
    rng = np.random.default_rng(0)
    cases = {f"patient{i:04d}": _camus_case(rng) for i in range(1, 5)}
    nifti = tmp_path / "nifti" / "database_nifti"
    mhd = tmp_path / "mhd" / "training"
    for pid, (img, gt) in cases.items():
        for root, write in ((nifti, "nii"), (mhd, "mhd")):
            d = root / pid
            d.mkdir(parents=True)
            for suffix, arr in (("", img), ("_gt", gt)):
                if write == "nii":  # nibabel stores (x, y): the transpose of (rows, cols)
                    nib.save(nib.Nifti1Image(arr.T.copy(), np.eye(4)),
                             str(d / f"{pid}_4CH_ED{suffix}.nii.gz"))
                else:
                    sitk.WriteImage(sitk.GetImageFromArray(arr), str(d / f"{pid}_4CH_ED{suffix}.mhd"))
    split = tmp_path / "nifti" / "database_split"
    split.mkdir()
    (split / "subgroup_training.txt").write_text("patient0001\npatient0002\n")
    (split / "subgroup_validation.txt").write_text("patient0003\n")
    (split / "subgroup_testing.txt").write_text("patient0004\n")

    a = load_dataset(f"camus:{tmp_path / 'nifti'},view=4CH,phase=ED,size=30")
    b = load_camus(tmp_path / "mhd", size=30)
    assert a.images.shape == (4, 30, 30)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_allclose(a.images, b.images, atol=1e-4)
    assert list(a.split) == ["train", "train", "val", "test"]
    # orientation: the atrium (3) lies below the cavity (1), as in the files' rows
    rows1 = np.nonzero(a.masks[0] == 1)[0].mean()
    rows3 = np.nonzero(a.masks[0] == 3)[0].mean()
    assert rows3 > rows1
    assert a.sample_ids[0] == "patient0001_4CH_ED"


def test_camus_missing_view_is_a_clear_error(tmp_path):
    (tmp_path / "database_nifti" / "patient0001").mkdir(parents=True)
    with pytest.raises(DataError, match="no 2CH ES image"):
        load_camus(tmp_path, view="2CH", phase="ES")
    with pytest.raises(ConfigError, match="view"):
        load_camus(tmp_path, view="3CH")


def test_masks_only_path_gives_the_same_masks():
    from noisyseg.data import synthetic_echo_masks

    np.testing.assert_array_equal(synthetic_echo_masks(n=4, size=32, seed=5),
                                  synthetic_echo(n=4, size=32, seed=5).masks)


def test_an_in_memory_dataset_reads_label_files_written_for_it(tmp_path):
    """A dataset held in memory reads label files as one read case by case: class indices
    on the dataset's grid, the mask scale undone, a resized file brought back; anything else one DataError."""
    import numpy as np
    import pytest

    from noisyseg.data import synthetic_echo, write_array
    from noisyseg.errors import DataError

    ds = synthetic_echo(n=3, size=32, seed=0)
    lab = np.zeros((32, 32), np.uint8)
    lab[4:10, 6:20] = 2
    write_array(tmp_path / "a.npy", lab)
    got, geom = ds.read_label_file(tmp_path / "a.npy")
    assert got.dtype == np.uint8 and np.array_equal(got, lab) and geom.shape == (32, 32)
    write_array(tmp_path / "big.npy", np.kron(lab, np.ones((2, 2), np.uint8)))  # 64 x 64
    assert np.array_equal(ds.read_label_file(tmp_path / "big.npy")[0], lab)
    from dataclasses import replace

    from noisyseg.data import CaseDataset

    scaled = CaseDataset.from_samples(replace(ds.samples, meta={**ds.meta, "mask_scale": 100}))
    write_array(tmp_path / "s.npy", (lab * 100).astype(np.uint8))
    assert np.array_equal(scaled.read_label_file(tmp_path / "s.npy")[0], lab)
    for name, bad, what in [("f.npy", lab + 0.5, "non-integer"),
                            ("k.npy", lab * 3, "not class indices"),
                            ("c.npy", np.stack([lab, lab]), "one value per pixel")]:
        write_array(tmp_path / name, bad)
        with pytest.raises(DataError, match=what):
            ds.read_label_file(tmp_path / name)
