"""Dataset layouts refuse damaged datasets at load time, with one-line errors naming the file.

Each test builds a small valid dataset (nnU-Net v2 raw, Decathlon, folder of volumes or of
2-D images, CAMUS), breaks one thing and checks that loading it raises a
:class:`~noisyseg.errors.NoisysegError` whose message is one line and names what is wrong.
"""

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from noisyseg.data import load_camus, load_dataset, load_folder, synthetic_echo, write_folder
from noisyseg.data.ct_phantom import synthetic_ct
from noisyseg.errors import ConfigError, DataError, NoisysegError

from ..conftest import run_cli

# array order (z, y, x) = (6, 14, 16); nibabel's file order (x, y, z) = (16, 14, 6)
SHAPE = (16, 14, 6)


def _affine(spacing=(0.7, 0.8, 2.5), origin=(12.5, -30.0, 41.0)):
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = origin
    return a


def _save(data, path, affine=None):
    img = nib.Nifti1Image(data, _affine() if affine is None else affine)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, str(path))


def _lab(shape=SHAPE):
    lab = np.zeros(shape, np.uint8)
    lab[3:10, 3:10, 1:5] = 1
    lab[5:8, 5:8, 2:4] = 2
    return lab


def _one_line(err):
    msg = str(err.value)
    assert "\n" not in msg and "\r" not in msg, msg
    return msg


def nnunet(root, n=3, channels=("CT",), labels=None, **extra):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(n):
        _save(_lab(), root / "labelsTr" / f"case_{i}.nii.gz")
        for c in range(len(channels)):
            _save(_lab().astype(np.float32) * 40, root / "imagesTr" / f"case_{i}_{c:04d}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {str(c): n for c, n in enumerate(channels)},
        "labels": labels or {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": n, "file_ending": ".nii.gz", **extra}))
    return root


def msd(root, n=3):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        lab = _lab() * np.uint8(2)
        _save(np.stack([lab * 10.0, lab * 5.0], axis=-1).astype(np.float32),
              root / "imagesTr" / f"p_{i}.nii.gz")
        _save(lab, root / "labelsTr" / f"p_{i}.nii.gz")
        training.append({"image": f"./imagesTr/p_{i}.nii.gz", "label": f"./labelsTr/p_{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({
        "modality": {"0": "T2", "1": "ADC"}, "labels": {"0": "background", "2": "PZ", "4": "TZ"},
        "numTraining": n, "training": training}))
    return root


def volume_folder(root, n=3):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        _save(_lab().astype(np.float32), root / "images" / f"v{i}.nii.gz")
        _save(_lab(), root / "masks" / f"v{i}.nii.gz")
    return root


def png_folder(root, n=4, value=255):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        m = np.zeros((12, 10), np.uint8)
        m[2:8, 2 + i % 3:8] = value
        Image.fromarray((m // 2 + 10).astype(np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray(m).save(root / "masks" / f"s{i}.png")
    return root


# --------------------------------------------------------------------------- 1. grids
def test_nnunet_label_of_another_shape_is_refused_at_load(tmp_path):
    root = nnunet(tmp_path / "D")
    _save(_lab((14, 14, 6)), root / "labelsTr" / "case_1.nii.gz")
    with pytest.raises(DataError) as err:
        load_dataset(f"nnunet:{root}")
    msg = _one_line(err)
    assert "case_1.nii.gz" in msg and "case_1_0000.nii.gz" in msg
    assert "14 x 14 x 6" in msg and "16 x 14 x 6" in msg


def test_corrupt_refuses_a_mismatched_nnunet_label_before_writing(tmp_path, capsys):
    root = nnunet(tmp_path / "D")
    _save(_lab((14, 14, 6)), root / "labelsTr" / "case_1.nii.gz")
    code = run_cli(["corrupt", "--data", f"nnunet:{root}", "--strength", "1", "--out",
                    str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "case_1.nii.gz" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_every_channel_file_must_share_the_label_grid(tmp_path):
    root = nnunet(tmp_path / "D", channels=("CT", "PET"))
    _save(np.zeros((16, 14, 5), np.float32), root / "imagesTr" / "case_2_0001.nii.gz")
    with pytest.raises(DataError, match="case_2_0001.nii.gz") as err:
        load_dataset(f"nnunet:{root}")
    assert "16 x 14 x 5" in _one_line(err)


@pytest.mark.parametrize("affine, what", [
    (_affine(spacing=(0.7, 0.8, 3.0)), "spacing"),
    (_affine(origin=(12.5, -29.0, 41.0)), "origin"),
    (np.array([[0.0, 0.8, 0, 12.5], [0.7, 0, 0, -30.0], [0, 0, 2.5, 41.0], [0, 0, 0, 1.0]]),
     "direction"),
])
def test_label_spacing_origin_and_direction_must_match(tmp_path, affine, what):
    root = nnunet(tmp_path / "D")
    _save(_lab(), root / "labelsTr" / "case_0.nii.gz", affine=affine)
    with pytest.raises(DataError, match=what) as err:
        load_dataset(f"nnunet:{root}")
    msg = _one_line(err)
    assert "case_0.nii.gz" in msg and "case_0_0000.nii.gz" in msg


def test_float_noise_in_the_header_is_tolerated(tmp_path):
    root = nnunet(tmp_path / "D")
    a = _affine(spacing=(0.7 * (1 + 1e-5), 0.8, 2.5), origin=(12.5 + 1e-5, -30.0, 41.0))
    _save(_lab(), root / "labelsTr" / "case_0.nii.gz", affine=a)
    ds = load_dataset(f"nnunet:{root}")
    assert len(ds) == 3 and ds[0]["label"].shape == SHAPE[::-1]


def test_msd_label_must_match_its_4d_image(tmp_path):
    root = msd(tmp_path / "T")
    _save(_lab((16, 14, 7)) * np.uint8(2), root / "labelsTr" / "p_1.nii.gz")
    with pytest.raises(DataError, match="p_1.nii.gz") as err:
        load_dataset(f"msd:{root}")
    assert "16 x 14 x 7" in _one_line(err) and "imagesTr" in str(err.value)


def test_folder_of_volumes_mask_must_match_its_image(tmp_path):
    root = volume_folder(tmp_path / "F")
    _save(_lab(), root / "masks" / "v2.nii.gz", affine=_affine(spacing=(1.0, 0.8, 2.5)))
    with pytest.raises(DataError, match="spacing") as err:
        load_dataset(str(root))
    assert "v2.nii.gz" in _one_line(err)


def test_folder_of_2d_nifti_checks_spacing_too(tmp_path):
    root = tmp_path / "F"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        m = np.zeros((20, 18, 1), np.uint8)
        m[4:12, 4:12] = 1
        _save(m.astype(np.float32), root / "images" / f"s{i}.nii.gz")
        _save(m, root / "masks" / f"s{i}.nii.gz",
              affine=_affine(spacing=(0.5, 0.8, 2.5)) if i == 1 else None)
    with pytest.raises(DataError, match="s1.nii.gz.*spacing") as err:
        load_folder(root)
    _one_line(err)
    with pytest.raises(DataError, match="spacing"):
        load_dataset(str(root), lazy=True)


def test_lazy_2d_folder_checks_shapes_at_load(tmp_path):
    root = png_folder(tmp_path / "F")
    Image.fromarray(np.zeros((12, 11), np.uint8)).save(root / "masks" / "s3.png")
    with pytest.raises(DataError, match="s3.png") as err:
        load_dataset(str(root), lazy=True)
    assert "12 x 11" in _one_line(err)


def test_camus_mask_spacing_must_match(tmp_path):
    d = tmp_path / "training" / "patient0001"
    d.mkdir(parents=True)
    img, gt = sitk.GetImageFromArray(np.ones((30, 20), np.float32)), \
        sitk.GetImageFromArray(np.zeros((30, 20), np.uint8))
    img.SetSpacing((0.3, 0.3))
    gt.SetSpacing((0.3, 0.6))
    sitk.WriteImage(img, str(d / "patient0001_4CH_ED.mhd"))
    sitk.WriteImage(gt, str(d / "patient0001_4CH_ED_gt.mhd"))
    with pytest.raises(DataError, match="patient0001_4CH_ED_gt.mhd.*spacing") as err:
        load_camus(tmp_path, size=16)
    _one_line(err)


# --------------------------------------------------------------------------- 2. names
@pytest.mark.parametrize("where", ["images", "masks"])
def test_a_file_name_that_is_not_utf8_is_refused(tmp_path, where):
    root = png_folder(tmp_path / "F", n=3)
    for sub in ("images", "masks"):
        os.rename(os.fsencode(root / sub / "s1.png"), os.fsencode(root / sub) + b"/case\xff.png")
    with pytest.raises(DataError, match="UTF-8") as err:
        load_dataset(str(root))
    assert "case\\xff.png" in _one_line(err)
    with pytest.raises(DataError, match="UTF-8"):
        load_dataset(str(root), lazy=True)


def test_an_nnunet_label_named_in_latin1_is_refused(tmp_path):
    root = nnunet(tmp_path / "D")
    for old, new in ((b"labelsTr/case_1.nii.gz", b"labelsTr/case\xe9.nii.gz"),
                     (b"imagesTr/case_1_0000.nii.gz", b"imagesTr/case\xe9_0000.nii.gz")):
        os.rename(os.fsencode(root) + b"/" + old, os.fsencode(root) + b"/" + new)
    with pytest.raises(DataError, match="UTF-8") as err:
        load_dataset(f"nnunet:{root}")
    assert "case\\xe9" in _one_line(err)


def test_a_file_name_with_a_newline_is_refused_in_one_line(tmp_path):
    root = png_folder(tmp_path / "F", n=3)
    for sub in ("images", "masks"):
        (root / sub / "s1.png").rename(root / sub / "s\n1.png")
    with pytest.raises(DataError, match="control character") as err:
        load_dataset(str(root))
    _one_line(err)


# --------------------------------------------------------------------------- 3. options
@pytest.mark.parametrize("spec, option", [
    ("synthetic-echo:n=2,size=10000000", "size"),
    ("synthetic-echo:n=100000000,size=8", "n"),
    ("synthetic-echo:n=60000,size=2048", "n x size"),
    ("synthetic-echo:seed=-1", "seed"),
    ("synthetic-echo:seed=99999999999999", "seed"),
    ("synthetic-ct:size=100000", "size"),
    ("synthetic-ct:slices=100000", "slices"),
    ("synthetic-ct:n=100000,size=512,slices=512", "voxels"),
    ("synthetic-ct:seed=-3", "seed"),
    ("synthetic-echo:n=2,n=3", "twice"),
])
def test_synthetic_options_are_bounded(spec, option):
    with pytest.raises(ConfigError, match=option) as err:
        load_dataset(spec)
    _one_line(err)


def test_the_functions_bound_their_options_too():
    with pytest.raises(ConfigError, match="size"):
        synthetic_echo(n=1, size=100_000)
    with pytest.raises(ConfigError, match="seed"):
        synthetic_ct(n=1, seed=-1)


@pytest.mark.parametrize("make, spec", [
    (nnunet, "nnunet:{},seed=-1"), (msd, "msd:{},seed=-1"), (volume_folder, "{},seed=-1"),
    (png_folder, "{},size=100000"), (png_folder, "{},seed=-2"),
])
def test_file_sources_bound_seed_and_size(tmp_path, make, spec):
    root = make(tmp_path / "D")
    with pytest.raises(ConfigError) as err:
        load_dataset(spec.format(root))
    _one_line(err)


@pytest.mark.parametrize("spec", ["/tmp/a\x00b", "/tmp/" + "a" * 300, "nnunet:/tmp/x\udcff"])
def test_odd_paths_are_config_or_data_errors(spec):
    with pytest.raises(NoisysegError) as err:
        load_dataset(spec)
    _one_line(err)


# --------------------------------------------------------------------------- 4. split, manifest, json
@pytest.mark.parametrize("text, match", [
    ("sample_id,split\ns0,train\ns1,val\ns2,test\ns3,train\nghost,train\n", "'ghost'.*not a sample"),
    ("sample_id,split\ns0,train\ns1,val\ns2,test\ns3,train\ns1,test\n", "'s1'.*twice"),
    ("sample_id,split\ns0,train\ns1,val\ns2,test\n", "no split for sample 's3'"),
    ("sample_id,split\ns0,train\ns1,val\ns2,holdout\ns3,train\n", "line 4.*'holdout'"),
    ("id,fold\ns0,train\n", "needs columns"),
    ("", "empty"),
    ('sample_id,split\ns0,train\ns1,"val\ns2,test\n', "cannot parse"),
    ("sample_id,split\ns0,train,extra\ns1,val\n", "cannot parse"),
    ("sample_id,split\ns0,train\ns1,\ns2,test\ns3,train\n", "line 3: no split"),
    (b"sample_id,split\n\xff\xfe,train\n", "cannot parse"),
])
def test_bad_split_csv_names_the_file_and_row(tmp_path, text, match):
    root = png_folder(tmp_path / "F")
    f = root / "split.csv"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    for lazy in (False, True):
        with pytest.raises(DataError, match=match) as err:
            load_dataset(str(root), lazy=lazy)
        assert "split.csv" in _one_line(err)


@pytest.mark.parametrize("text, match", [
    ("sample_id,corrupted\ns0,True\ns1,False\ns2,yes\ns3,False\n", "line 4.*'yes'"),
    ("sample_id,corrupted\ns0,True\ns1,False\ns2,True\n", "'s3'"),
    ("sample_id,corrupted\ns0,True\ns1,False\ns2,True\ns3,True\ns0,False\n", "'s0'.*twice"),
    ("sample_id,corrupted\ns0,True\ns1,False\ns2,True\ns3,True\nzz,False\n", "'zz'.*not a sample"),
    ("", "empty"),
])
def test_bad_manifest_csv_names_the_file_and_row(tmp_path, text, match):
    root = png_folder(tmp_path / "F")
    (root / "manifest.csv").write_text(text)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(str(root))
    assert "manifest.csv" in _one_line(err)


def test_a_written_manifest_reads_back(tmp_path):
    ds = synthetic_echo(n=5, size=16, seed=0)
    man = pd.DataFrame({"sample_id": ds.sample_ids, "corrupted": [True, False] * 2 + [True]})
    write_folder(ds, tmp_path / "o", fmt="npy", manifest=man)
    back = load_folder(tmp_path / "o")
    assert list(back.corrupted) == [True, False, True, False, True]


def _patch_json(root, **changes):
    f = root / "dataset.json"
    dj = json.loads(f.read_text())
    dj.update(changes)
    dj = {k: v for k, v in dj.items() if v is not None}
    f.write_text(json.dumps(dj))


@pytest.mark.parametrize("changes, match", [
    ({"labels": ["background", "liver"]}, "'labels'.*object"),
    ({"labels": {"background": 0, "liver": 1.5}}, "liver"),
    ({"labels": {"background": 0, "liver": True}}, "liver"),
    ({"labels": {"background": 0, "liver": 1, "also_liver": 1}}, "value 1.*twice|twice.*1"),
    ({"labels": {"background": 0, "whole": [1, 2]}}, "region-based"),
    ({"labels": {"background": 0, "liver": 10**12}}, "liver"),
    ({"labels": {"background": 0, "liver": -1}}, "liver"),
    ({"labels": None}, "missing key 'labels'"),
    ({"channel_names": None}, "missing key 'channel_names'"),
    ({"channel_names": ["CT"]}, "channel_names"),
    ({"channel_names": {}}, "channel_names"),
    ({"channel_names": {"1": "CT"}}, "channel_names"),
    ({"file_ending": None}, "missing key 'file_ending'"),
    ({"file_ending": 7}, "file_ending"),
    ({"file_ending": ".tif"}, "file_ending"),
    ({"numTraining": "three"}, "numTraining"),
    ({"numTraining": 7}, "numTraining is 7"),
    ({"dataset": {"case_0": {"images": "imagesTr/case_0_0000.nii.gz",
                             "label": "labelsTr/case_0.nii.gz"}}, "numTraining": 1}, "case_0"),
    ({"dataset": {"case_0": {"images": ["imagesTr/nope.nii.gz"], "label": "labelsTr/case_0.nii.gz"}},
      "numTraining": 1}, "nope.nii.gz: missing"),
])
def test_bad_nnunet_dataset_json(tmp_path, changes, match):
    root = nnunet(tmp_path / "D")
    _patch_json(root, **changes)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"nnunet:{root}")
    assert "dataset.json" in _one_line(err) or "missing" in str(err.value)


@pytest.mark.parametrize("text", ["{", "[1, 2]", "null", '{"labels": 1, "labels": 2}', "\xff"])
def test_dataset_json_that_is_not_an_object(tmp_path, text):
    root = nnunet(tmp_path / "D")
    (root / "dataset.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match="dataset.json") as err:
        load_dataset(f"nnunet:{root}")
    _one_line(err)


@pytest.mark.parametrize("changes, match", [
    ({"labels": {"0": "background", "1": "a", "01": "b"}}, "twice"),
    ({"labels": {"0": "background", "x": "a"}}, "label 'a'"),
    ({"labels": None}, "missing key 'labels'"),
    ({"modality": ["T2", "ADC"]}, "modality"),
    ({"training": {"image": "x"}}, "training"),
    ({"training": [{"image": "./imagesTr/p_0.nii.gz"}]}, "label"),
    ({"training": [{"image": "./imagesTr/p_0.nii.gz", "label": "./labelsTr/p_9.nii.gz"}]},
     "p_9.nii.gz: missing"),
    ({"training": [{"image": "./imagesTr/p_0.nii.gz", "label": "./labelsTr/p_0.nii.gz"}] * 2},
     "p_0.*twice"),
])
def test_bad_msd_dataset_json(tmp_path, changes, match):
    root = msd(tmp_path / "T")
    _patch_json(root, **changes)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"msd:{root}")
    _one_line(err)


def test_msd_num_training_mismatch_warns(tmp_path, caplog):
    root = msd(tmp_path / "T")
    _patch_json(root, numTraining=9)
    ds = load_dataset(f"msd:{root}")
    assert len(ds) == 3 and "numTraining is 9" in caplog.text


# --------------------------------------------------------------------------- 5. 0/255 masks
def test_a_stray_value_in_binary_255_masks_is_refused(tmp_path):
    root = png_folder(tmp_path / "F")
    m = np.asarray(Image.open(root / "masks" / "s2.png")).copy()
    m[0, 0] = 128
    Image.fromarray(m).save(root / "masks" / "s2.png")
    with pytest.raises(DataError, match=r"s2.png: values \[128\] besides 0 and 255") as err:
        load_dataset(str(root))
    _one_line(err)
    with pytest.raises(DataError, match="s2.png"):
        ds = load_dataset(str(root), lazy=True)
        for i in range(len(ds)):
            ds.read_label(i)


def test_binary_255_masks_read_lazily_as_two_classes_and_write_back_255(tmp_path):
    root = png_folder(tmp_path / "F")
    eager, lazy = load_dataset(str(root)), load_dataset(str(root), lazy=True)
    assert lazy.class_names == eager.class_names == ("background", "class_1")
    for i in range(len(lazy)):
        assert np.array_equal(lazy.read_label(i)[0], eager.masks[i])
    assert set(lazy.encode(np.array([0, 1])).tolist()) == {0, 255}


def test_a_written_binary_255_folder_reads_back(tmp_path):
    src = png_folder(tmp_path / "F")
    ds = load_folder(src)
    write_folder(ds, tmp_path / "o")
    assert set(np.unique(np.asarray(Image.open(tmp_path / "o" / "masks" / "s0.png")))) == {0, 255}
    back = load_folder(tmp_path / "o")
    assert np.array_equal(back.masks, ds.masks) and back.class_names == ds.class_names


def test_a_mask_with_more_values_than_declared_classes_is_refused(tmp_path):
    root = volume_folder(tmp_path / "F")
    (root / "dataset.json").write_text(json.dumps({"class_names": ["background", "organ"]}))
    with pytest.raises(DataError, match="v0.nii.gz") as err:
        load_dataset(str(root))[0]
    _one_line(err)


# --------------------------------------------------------------------------- 6. shapes in messages
def test_a_4d_label_reports_its_real_shape(tmp_path):
    root = nnunet(tmp_path / "D")
    _save(np.stack([_lab(), _lab()], axis=-1), root / "labelsTr" / "case_0.nii.gz")
    with pytest.raises(DataError, match="case_0.nii.gz") as err:
        load_dataset(f"nnunet:{root}")
    msg = _one_line(err)
    assert "16 x 14 x 6 x 2" in msg and "1 channels" not in msg


def test_a_degenerate_2d_image_reports_its_real_shape(tmp_path):
    root = png_folder(tmp_path / "F")
    np.save(root / "images" / "s9.npy", np.ones((1, 1), np.float32))
    np.save(root / "masks" / "s9.npy", np.zeros((1, 1), np.uint8))
    with pytest.raises(DataError, match="s9.npy") as err:
        load_folder(root)
    msg = _one_line(err)
    assert "shape ()" not in msg and "(1, 1)" in msg


def test_valid_layouts_still_load(tmp_path):
    a = load_dataset(f"nnunet:{nnunet(tmp_path / 'D', channels=('CT', 'PET'))}")
    assert len(a) == 3 and a[0]["image"].shape == (2, *SHAPE[::-1])
    b = load_dataset(f"msd:{msd(tmp_path / 'T')}")
    assert b.label_values == (0, 2, 4) and b[1]["image"].shape[0] == 2
    c = load_dataset(str(volume_folder(tmp_path / "V")))
    assert c.n_classes == 3 and c[2]["label"].max() == 2
    d = load_folder(png_folder(tmp_path / "P"))
    assert d.masks.max() == 1 and d.meta["mask_scale"] == 255
    assert Path(a.cases[0].label).name == "case_0.nii.gz"
