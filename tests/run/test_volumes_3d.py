"""Volumes with a 3-D network: the common grid and its way back, patches and sliding windows,
per-slice scores from voxel maps, and an audit of an nnU-Net dataset with --dims 3 that writes
a dataset nnU-Net can train on."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyseg.data import CaseDataset, Samples, load_dataset, load_nnunet, volume_dataset
from noisyseg.data.io import Geometry
from noisyseg.data.volumes import resampled_shape, restore_labels
from noisyseg.detect import make_detector
from noisyseg.errors import ConfigError
from noisyseg.models import build_model
from noisyseg.train import TrainConfig, Trainer, choose_patch_size, load_checkpoint
from tests.conftest import AFFINE, run_cli


def _generated(shapes, spacings):
    """A generated CaseDataset of random label volumes of the given shapes and spacings."""
    rng = np.random.default_rng(0)
    labs = [rng.integers(0, 3, s).astype(np.uint8) for s in shapes]

    def gen(i):
        return (labs[i] * 10.0)[None].astype(np.float32), labs[i], Geometry.from_spacing(
            labs[i].shape, spacings[i])

    from noisyseg.data import Case

    cases = tuple(Case(f"c{i}", (), None, "train") for i in range(len(shapes)))
    return CaseDataset(cases, ("background", "a", "b"), "synthetic-ct", source="test",
                       channel_names=("CT",), generator=gen), labs


@settings(max_examples=10, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(1, 20), st.integers(1, 20), st.integers(1, 20)),
                       min_size=1, max_size=3))
def test_volumes_come_back_exactly_from_the_padded_grid(shapes):
    cases, labs = _generated(shapes, [(2.0, 1.0, 1.0)] * len(shapes))
    ds, index = volume_dataset(cases)
    assert ds.images.shape[1:] == index.grid and all(g % 16 == 0 for g in index.grid)
    assert all(g >= max(s[a] for s in shapes) for a, g in enumerate(index.grid))
    for i, lab in enumerate(labs):
        np.testing.assert_array_equal(index.volume(i, ds.masks[i]), lab)
        np.testing.assert_array_equal(index.volume_from(i, np.arange(len(ds)), ds.masks), lab)


def test_resampling_to_a_common_spacing_is_undone_on_output():
    # hand-computed: 10 x 0.8 mm -> 4 voxels of 2 mm; 12 x 2 mm stays 12
    assert resampled_shape((10, 12, 5), (0.8, 2.0, 3.0), (2.0, 2.0, 1.5)) == (4, 12, 10)
    assert resampled_shape((10, 12, 5), (0.8, 2.0, 3.0), None) == (10, 12, 5)
    # a 4 mm box on a 1 mm grid, resampled to 2 mm and back
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:6, 2:6, 2:6] = 1
    cases, _ = _generated([(8, 8, 8)], [(1.0, 1.0, 1.0)])
    gen = cases.generator
    cases = CaseDataset(cases.cases, cases.class_names, cases.layout, source="t",
                        channel_names=("CT",),
                        generator=lambda i: (lab[None] * 1.0, lab, gen(i)[2]))
    ds, index = volume_dataset(cases, spacing=(2.0, 2.0, 2.0))
    assert index.resampled[0] == (4, 4, 4) and index.spacing_mm == (2.0, 2.0, 2.0)
    assert ds.meta["volumes"]["spacing_mm"] == [2.0, 2.0, 2.0]
    np.testing.assert_array_equal(ds.masks[0][:4, :4, :4][1:3, 1:3, 1:3] > 0, True)
    back = index.volume(0, ds.masks[0])
    assert back.shape == lab.shape
    # faces and interiors come back exactly; trilinear interpolation of each class rounds
    # the corners (where 3 faces meet, the class holds 0.75^3 of the weight)
    np.testing.assert_array_equal(back[3:5, 3:5, 3:5], lab[3:5, 3:5, 3:5])
    np.testing.assert_array_equal(back[:, :, :2], 0)
    np.testing.assert_array_equal(back[:2], 0)
    from noisyseg.evaluate import dice
    assert dice(back[None], lab[None], 3)[0] > 0.85
    assert index.spacing(0) == (1.0, 1.0, 1.0)  # metrics are measured on the case's own grid
    # 'median' takes the median of the cases' spacings
    cases2, _ = _generated([(4, 4, 4)] * 3, [(1.0, 1.0, 1.0), (3.0, 1.0, 2.0), (2.0, 1.0, 1.0)])
    assert volume_dataset(cases2, spacing="median")[1].spacing_mm == (2.0, 1.0, 1.0)


def test_labels_go_back_by_interpolating_each_class_not_by_blocks():
    coarse = np.zeros((2, 2, 2), np.uint8)
    coarse[1] = 1  # the upper half is class 1
    up = restore_labels(coarse, (4, 4, 4), 2)
    np.testing.assert_array_equal(up[2:], 1)
    np.testing.assert_array_equal(up[:2], 0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"spacing": (1.0, 2.0)}, "spacing: expected 3 voxel sizes"),
    ({"spacing": "mean"}, "spacing: expected 'median'"),
    ({"slice_axis": 3}, "slice_axis: expected 0, 1 or 2"),
])
def test_bad_volume_options_name_the_parameter(kwargs, match):
    cases, _ = _generated([(4, 4, 4)], [(1.0, 1.0, 1.0)])
    with pytest.raises(ConfigError, match=match):
        volume_dataset(cases, **kwargs)


@pytest.mark.parametrize("name", ["unet", "segnet", "fcn32", "monai:BasicUNet"])
def test_every_network_exists_in_3d(name):
    model = build_model(name, n_classes=3, spatial_dims=3, **({} if name.startswith("monai")
                                                               else {"width": 2}))
    out = model(torch.zeros(1, 1, 32, 32, 32))
    assert out.shape == (1, 3, 32, 32, 32)
    assert any(isinstance(m, torch.nn.Conv3d) for m in model.modules())


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(st.integers(16, 300), st.integers(16, 300), st.integers(16, 300)),
       budget=st.sampled_from([32**3, 64**3, 128**3]))
def test_a_chosen_patch_fits_the_budget_and_the_sample(shape, budget):
    patch = choose_patch_size(shape, budget=budget, divisor=16)
    assert all(16 <= p <= s for p, s in zip(patch, shape, strict=True))
    if np.prod(shape) <= budget:
        assert patch == list(shape)
    else:
        assert np.prod(patch) <= budget
        assert all(p % 16 == 0 or p == s for p, s in zip(patch, shape, strict=True))


def test_hand_computed_patches():
    assert choose_patch_size((32, 64, 64), budget=64**3) == [32, 64, 64]
    assert choose_patch_size((64, 256, 256), budget=64**3) == [64, 64, 64]
    # 200x160x160: 200->96, 160->80, 160->80, 96->48, 80->32 (4.1M voxels down to 123k)
    assert choose_patch_size((200, 160, 160), budget=2**18) == [48, 32, 80]


def _toy_volumes(n=6, shape=(16, 32, 32), seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    masks = []
    for _ in range(n):
        c = rng.uniform(8, 24, 2)
        masks.append((((y - c[0]) ** 2 + (x - c[1]) ** 2 < 25) & (z > 4) & (z < 12)).astype(np.uint8))
    masks = np.array(masks)
    images = (masks + rng.normal(0, 0.3, masks.shape)).astype(np.float32)
    split = np.array(["train"] * (n - 2) + ["val", "test"])
    return Samples(images, masks, ("background", "blob"), tuple(f"v{i}" for i in range(n)),
                      split)


def test_patches_are_inside_the_volume_and_a_third_are_centred_on_foreground():
    ds = _toy_volumes()
    trainer = Trainer(TrainConfig(epochs=1, batch_size=2, patch_size=[16, 16, 16], threads=1,
                                  model_options={"width": 2}), ds)
    assert trainer.patched and trainer.patch_size == (16, 16, 16)
    fg_hits, n = 0, 300
    only = np.zeros((1, 16, 32, 32), np.int64)
    only[0, 8, 30, 30] = 1  # one foreground voxel in a corner
    x = torch.zeros(1, 1, 16, 32, 32)
    for _ in range(n):
        xp, yp, origin = trainer._crop(x, torch.as_tensor(only))
        assert xp.shape == (1, 1, 16, 16, 16) and yp.shape == (1, 16, 16, 16)
        assert (origin >= 0).all() and (origin + 16 <= torch.tensor([16, 32, 32])).all()
        fg_hits += int(yp.sum())
    # uniform patches hold that voxel with chance 1/17 * 1/17 per axis pair; oversampling 1/3
    assert 0.25 < fg_hits / n < 0.45


def test_a_3d_trainer_predicts_whole_volumes_with_sliding_windows(tmp_path):
    ds = _toy_volumes()
    dets = [make_detector(d) for d in ("loss", "vog", "cleanlab", "disagree")]
    trainer = Trainer(TrainConfig(epochs=2, batch_size=2, patch_size=[16, 16, 16], threads=1,
                                  model_options={"width": 2}), ds, dets).fit()
    pred = trainer.predict(ds.indices("test"))
    assert pred.shape == (1, 16, 32, 32)
    assert trainer.history[-1]["images_per_s"] > 0
    for det in dets:
        assert det.scores().shape == (4,)
        assert det.voxel_scores(trainer, np.array([0, 3])).shape == (2, 16, 32, 32)
    # the checkpoint knows it is a 3-D network
    trainer.save(tmp_path / "m.pt")
    model, ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["spatial_dims"] == 3 and ckpt["patch_size"] == [16, 16, 16]
    assert any(isinstance(m, torch.nn.Conv3d) for m in model.modules())


def test_online_vog_refuses_patches_smaller_than_the_volume():
    ds = _toy_volumes()
    trainer = Trainer(TrainConfig(epochs=1, batch_size=2, patch_size=[16, 16, 16], threads=1,
                                  model_options={"width": 2}), ds, [make_detector("vog-online")])
    with pytest.raises(ConfigError, match="vog-online needs each step to see whole samples"):
        trainer.fit()


def test_a_3d_session_scores_cases_and_their_slices():
    from noisyseg.run import run_session, summary

    cases = load_dataset("synthetic-ct:n=6,size=32,slices=16,seed=0")
    vs = run_session(cases, TrainConfig(epochs=2, batch_size=2, threads=1,
                                        model_options={"width": 2}), dims=3,
                     detectors=["loss", "disagree"], flag_rule="top", flag_value=0.5,
                     tolerance=2.0)
    n_train = len(cases.indices("train"))
    assert vs.dims == 3 and all(len(s) == n_train for s in vs.scores.values())
    table = vs.slice_table()
    assert len(table) == 2 * 16 * n_train  # two detectors, 16 axial slices per case
    assert set(table["slice"]) == set(range(16))
    record = summary(vs)
    assert record["dims"] == 3 and record["grid"] == [16, 32, 32]
    assert record["patch_size"] == [16, 32, 32] and record["inference"] == "whole volume"
    assert record["test"]["n"] == len(vs.test_cases)
    for i in vs.test_cases:
        assert vs.test_volume(int(i)).shape == cases.read_label(int(i))[0].shape


def test_options_of_the_other_dims_are_refused():
    from noisyseg.run import run_session

    cases = load_dataset("synthetic-ct:n=6,size=32,slices=16,seed=0")
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ConfigError, match="slice_size: resizes the slices"):
        run_session(cases, cfg, dims=3, slice_size=32)
    with pytest.raises(ConfigError, match="spacing: resamples volumes for a 3-D network"):
        run_session(cases, cfg, dims=2, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="dims: expected 2"):
        run_session(cases, cfg, dims=4)


def test_3d_audit_of_an_nnunet_dataset_writes_a_trainable_refurbished_dataset(nnunet, tmp_path):
    raw, _, _ = nnunet
    aud = tmp_path / "aud"
    rc = run_cli(["audit", "--data", f"nnunet:{raw}", "--dims", "3", "--spacing", "2.5,1.6,1.4",
                  "--detector", "loss", "--detector", "cleanlab", "--refurbish",
                  "--flag-rule", "top", "--flag-value", "0.5", "--warmup", "1", "--every", "1",
                  "--epochs", "2", "--batch-size", "2", "--width", "2", "--threads", "1",
                  "--no-progress", "--out", str(aud)])
    assert rc == 0
    cases = load_nnunet(raw)
    train = [cases.sample_ids[i] for i in cases.indices("train")]
    assert sorted(pd.read_csv(aud / "scores.csv")["sample_id"].unique()) == sorted(train)
    slices = pd.read_csv(aud / "slice_scores.csv")
    assert len(slices) == 2 * 6 * len(train) and set(slices["slice"]) == set(range(6))
    metrics = json.loads((aud / "metrics.json").read_text())
    assert metrics["dims"] == 3 and metrics["spacing_mm"] == [2.5, 1.6, 1.4]
    assert metrics["grid"] == [16, 16, 16]  # 6x14x16 at 2.5x0.8x0.7 mm -> 6x7x8, padded
    assert len(list((aud / "suspects").glob("*.png"))) == len(train)
    ref = aud / "refurbished"
    assert load_nnunet(ref).sample_ids == cases.sample_ids
    manifest = pd.read_csv(ref / "noisyseg" / "manifest.csv")
    changed = manifest.loc[manifest["label"] == "refurbished", "sample_id"].tolist()
    assert changed and set(changed) <= set(train)
    for cid in cases.sample_ids:
        src, dst = raw / "labelsTr" / f"{cid}.nii.gz", ref / "labelsTr" / f"{cid}.nii.gz"
        if cid not in changed:
            assert dst.read_bytes() == src.read_bytes()
            continue
        img = nib.load(str(dst))  # back on the source grid, with the source header
        assert img.shape == nib.load(str(src)).shape
        np.testing.assert_allclose(img.affine, AFFINE)
        assert img.get_data_dtype() == np.int16


def test_dims_3_on_images_is_a_clear_error(tmp_path, capsys):
    rc = run_cli(["audit", "--data", "synthetic-echo:n=6,size=32", "--dims", "3",
                  "--out", str(tmp_path / "a"), "--no-progress"])
    assert rc == 2
    assert "--dims: synthetic-echo:n=6,size=32 holds 2-D images" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    rc = run_cli(["train", "--data", "synthetic-ct:n=6,size=32,slices=16", "--dims", "3",
                  "--patch-size", "16,a", "--out", str(tmp_path / "b"), "--no-progress"])
    assert rc == 2
    assert "--patch-size: expected numbers separated by commas" in capsys.readouterr().err


def test_3d_train_writes_predictions_on_the_source_grid(nnunet, tmp_path):
    raw, _, _ = nnunet
    out = tmp_path / "run"
    rc = run_cli(["train", "--data", f"nnunet:{raw}", "--dims", "3", "--epochs", "1",
                  "--batch-size", "2", "--width", "2", "--threads", "1", "--no-progress",
                  "--out", str(out)])
    assert rc == 0
    cases = load_nnunet(raw)
    test = sorted(cases.sample_ids[i] for i in cases.indices("test"))
    config = json.loads((out / "config.json").read_text())
    assert config["dims"] == 3 and config["patch_size"] == [16, 16, 16]
    assert config["balanced"] is True  # what the trainer ran with
    for cid in test:
        img = nib.load(str(out / "predictions" / f"{cid}.nii.gz"))
        assert img.shape == nib.load(str(raw / "labelsTr" / f"{cid}.nii.gz")).shape
        np.testing.assert_allclose(img.affine, AFFINE)
        assert img.get_data_dtype() == np.int16
    model, ckpt = load_checkpoint(out / "model.pt")
    assert ckpt["spatial_dims"] == 3


def test_calibrated_refurbishment_of_volumes_replaces_whole_cases():
    from noisyseg.refurbish import RefurbishConfig
    from noisyseg.run import run_session

    cases = load_dataset("synthetic-ct:n=6,size=32,slices=16,seed=0")
    vs = run_session(cases, TrainConfig(epochs=2, batch_size=2, threads=1,
                                        model_options={"width": 2}), dims=3,
                     detectors=["loss"], flag_rule="top", flag_value=0.5,
                     refurbish=RefurbishConfig(warmup=1, every=1, calibrate=True,
                                               confidence=0.5))
    ref = vs.refurbisher
    assert ref.biases and len(ref.biases[0]["bias"]) == cases.n_classes
    assert vs.refurbished.sum() == ref.flagged.sum() > 0
    events = vs.events_table()
    assert set(events["slices"]) == {16}  # a whole case: all its axial slices


def test_3d_refurbishment_per_region_changes_only_the_doubted_slices(monkeypatch):
    """region='slices': a flagged volume changes on the slices the detector doubts (the flag
    rule over every training slice's mean voxel score), nowhere else."""
    from noisyseg.refurbish import RefurbishConfig
    from noisyseg.run import run_session, session

    calls = []
    factory = session._doubted_slices

    def recording(*args):
        doubted = factory(*args)

        def wrapped(trainer, detector, positions):
            out = doubted(trainer, detector, positions)
            calls.append((np.asarray(positions).copy(), out.copy()))
            return out

        return wrapped

    monkeypatch.setattr(session, "_doubted_slices", recording)
    cases = load_dataset("synthetic-ct:n=6,size=32,slices=16,seed=0")
    vs = run_session(cases, TrainConfig(epochs=3, batch_size=2, threads=1,
                                        model_options={"width": 2}), dims=3,
                     detectors=["loss"], flag_rule="top", flag_value=0.5,
                     refurbish=RefurbishConfig(warmup=1, every=1, region="slices"))
    assert len(calls) == 3  # one flagging per epoch
    positions, doubted = calls[-1]
    n_train = len(vs.train_cases)
    assert doubted.shape == (len(positions), 16)
    assert doubted.sum() <= n_train * 16 // 2  # the top half of all training slices at most
    final = vs.final_masks()
    given = np.stack([cases.read_label(int(i))[0] for i in vs.train_cases])
    changed = np.any(final != given, axis=(2, 3))  # (cases, axial slices)
    assert changed.any()
    for k in range(n_train):
        if k in positions:  # a flagged case: changed on doubted slices only
            assert not (changed[k] & ~doubted[list(positions).index(k)]).any()
        else:
            assert not changed[k].any()
    events = vs.events_table()
    last = events[(events["epoch"] == 3) & (events["action"] == "refurbished")]
    assert sorted(last["slices"]) == sorted(doubted.sum(1).tolist())


def test_refurbishment_per_region_is_for_a_3d_network():
    from noisyseg.refurbish import RefurbishConfig
    from noisyseg.run import run_session

    cases = load_dataset("synthetic-ct:n=6,size=32,slices=4,seed=0")
    with pytest.raises(ConfigError, match="region: 'slices'.*dims=3"):
        run_session(cases, TrainConfig(epochs=1), detectors=["loss"],
                    refurbish=RefurbishConfig(region="slices"))
    with pytest.raises(ConfigError, match="region: expected one of sample, slices"):
        RefurbishConfig(region="voxels")


def test_3d_debias_audit_records_offsets_in_mm_and_writes_labels_on_the_source_grid(nnunet,
                                                                                    tmp_path):
    raw, _, _ = nnunet
    aud = tmp_path / "aud"
    rc = run_cli(["audit", "--data", f"nnunet:{raw}", "--dims", "3", "--spacing", "2.5,1.6,1.4",
                  "--detector", "loss", "--refurbish", "--refurbish-mode", "debias",
                  "--flag-rule", "top", "--flag-value", "0.5", "--warmup", "1", "--every", "1",
                  "--epochs", "2", "--batch-size", "2", "--width", "2", "--threads", "1",
                  "--no-progress", "--out", str(aud)])
    assert rc == 0
    metrics = json.loads((aud / "metrics.json").read_text())
    offsets = metrics["refurbish_offsets_mm"]
    assert [o["epoch"] for o in offsets] == [1, 2]
    assert all(set(o["offset_mm"]) == {"liver", "tumour"} for o in offsets)
    assert metrics["trusted"]["used_by"] == ["refurbish debias"]
    events = pd.read_csv(aud / "refurbish_events.csv")
    assert set(events["action"]) == {"debiased"}
    for cid in set(events["sample_id"]):
        img = nib.load(str(aud / "refurbished" / "labelsTr" / f"{cid}.nii.gz"))
        assert img.shape == nib.load(str(raw / "labelsTr" / f"{cid}.nii.gz")).shape
        np.testing.assert_allclose(img.affine, AFFINE)


def test_audit_refurbish_region_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "aud"
    args = ["audit", "--data", "synthetic-ct:n=6,size=32,slices=8,seed=0", "--dims", "3",
            "--epochs", "2", "--width", "2", "--batch-size", "2", "--threads", "1",
            "--detector", "loss", "--refurbish", "--warmup", "1", "--every", "1",
            "--flag-rule", "top", "--flag-value", "0.5", "--no-progress", "--out", str(out)]
    assert run_cli([*args, "--refurbish-region", "slices"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["refurbish_config"]["region"] == "slices"
    events = pd.read_csv(out / "refurbish_events.csv")
    assert (events.loc[events["action"] == "refurbished", "slices"] <= 8).all()
    assert (out / "refurbished" / "manifest.csv").is_file()
    capsys.readouterr()
    assert run_cli([*args[:3], *args[5:], "--refurbish-region", "slices",
                    "--out", str(tmp_path / "b")]) == 2  # --dims 2
    err = capsys.readouterr().err
    assert "region" in err and "dims=3" in err and len(err.strip().splitlines()) == 1
