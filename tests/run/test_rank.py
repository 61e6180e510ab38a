"""`noisyseg rank`: nnU-Net-shaped result folders, the checks on predictions, the outputs."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from noisyseg.api import run_rank
from noisyseg.data import load_dataset, synthetic_echo, write_folder
from noisyseg.data.predictions import find_predictions, read_prediction
from noisyseg.errors import DataError

from ..conftest import BAD, N_CASES, run_cli
from ..conftest import soft_probs as _soft


def test_rank_finds_the_folds_and_the_bad_case(nnunet, tmp_path):
    raw, res, truth = nnunet
    out = tmp_path / "aud"
    assert run_cli(["rank", "--data", f"nnunet:{raw}", "--probs", str(res), "--out", str(out),
                 "--flag-rule", "top", "--flag-value", "0.2", "--pseudo-labels",
                 "--no-progress"]) == 0
    info = json.loads((out / "rank.json").read_text())
    assert info["folds"] == ["0", "1"] and info["n_cases"] == N_CASES
    assert all(f.endswith(".npz") for f in info["prediction_files"].values())
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["detector"]) == {"label-quality", "dice", "expected-dice"}
    for _, g in scores.groupby("detector"):
        assert len(g) == N_CASES
        assert g.sort_values("rank")["sample_id"].iloc[0] == BAD
    flagged = scores[(scores["detector"] == "label-quality") & scores["flagged"]]
    assert flagged["sample_id"].tolist() == [BAD]
    # per slice: the bad case's worst slices are those holding structure 2 (z = 2, 3)
    sl = pd.read_csv(out / "slice_scores.csv")
    bad = sl[(sl["sample_id"] == BAD) & (sl["detector"] == "dice")]
    assert len(bad) == 6 and set(bad.nlargest(2, "score")["slice"]) == {2, 3}
    cls = pd.read_csv(out / "class_scores.csv")
    row = cls[(cls["sample_id"] == BAD) & (cls["class"] == "tumour")].iloc[0]
    assert row["given_voxels"] == 0 and row["predicted_voxels"] > 0 and row["dice"] == 0
    assert len(list((out / "suspects").glob("*.png"))) == N_CASES
    # refurbished/ is the whole nnU-Net dataset; the flagged case's label is the model's, on
    # the source grid and header, every other case keeps its own
    ref = out / "refurbished"
    written = ref / "labelsTr" / f"{BAD}.nii.gz"
    src = nib.load(str(raw / "labelsTr" / f"{BAD}.nii.gz"))
    img = nib.load(str(written))
    assert np.allclose(img.affine, src.affine) and img.shape == src.shape
    assert int(img.header["sform_code"]) == 2 and img.get_data_dtype() == np.int16
    assert np.array_equal(np.asarray(img.dataobj).T, truth[BAD])
    assert (ref / "dataset.json").is_file() and len(list((ref / "imagesTr").iterdir())) == N_CASES
    labels = sorted((ref / "labelsTr").iterdir())
    assert len(labels) == N_CASES
    for p in labels:
        if p.name != f"{BAD}.nii.gz":
            assert p.read_bytes() == (raw / "labelsTr" / p.name).read_bytes() or np.array_equal(
                np.asarray(nib.load(str(p)).dataobj), np.asarray(nib.load(str(raw / "labelsTr" /
                                                                            p.name)).dataobj))
    manifest = pd.read_csv(next(ref.rglob("manifest.csv")))
    assert manifest.loc[manifest["label"] == "refurbished", "sample_id"].tolist() == [BAD]


def test_hard_label_maps_when_there_are_no_probabilities(nnunet, tmp_path, caplog):
    raw, res, _ = nnunet
    seg = tmp_path / "segs"
    seg.mkdir()
    for f in (res / "fold_0" / "validation").glob("*.nii.gz"):
        (seg / f.name).write_bytes(f.read_bytes())
    for f in (res / "fold_1" / "validation").glob("*.nii.gz"):
        (seg / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "aud"
    run_rank(data=f"nnunet:{raw}", probs=[seg], out=out, flag_rule="top", flag_value=0.2,
             progress=False)
    scores = pd.read_csv(out / "scores.csv")
    assert scores[scores["detector"] == "dice"].sort_values("rank")["sample_id"].iloc[0] == BAD
    # said, not silent: in the log and in rank.json (probabilities give 0 there)
    assert f"{N_CASES} of {N_CASES} predictions are hard label maps" in caplog.text
    assert json.loads((out / "rank.json").read_text())["hard_label_predictions"] == N_CASES
    run_rank(data=f"nnunet:{raw}", probs=[res], out=tmp_path / "soft", progress=False)
    assert json.loads((tmp_path / "soft" / "rank.json").read_text())["hard_label_predictions"] == 0


def _one_line_error(args, capsys, match, out):
    code = run_cli(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert match in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(("break_it", "match"), [
    ("missing", "1 of 6 cases have no prediction ('case_005'); folds found: 0, 1"),
    ("unknown", "case 'case_999' is not in the dataset"),
    ("twice", "is also predicted in"),
    ("region", "2 classes, but the dataset has 3 (one fewer: sigmoid"),
    ("logits", "do not sum to one"),
    ("nan", "NaN or infinite"),
    ("shape", "does not match the case's labels"),
])
def test_bad_predictions_are_one_line_errors(nnunet, tmp_path, capsys, break_it, match):
    raw, res, truth = nnunet
    v = res / "fold_1" / "validation"
    lab = truth["case_005"]
    if break_it == "missing":
        (v / "case_005.npz").unlink()
        (v / "case_005.nii.gz").unlink()
    elif break_it == "unknown":
        np.savez_compressed(v / "case_999.npz", probabilities=_soft(lab))
    elif break_it == "twice":
        np.savez_compressed(res / "fold_0" / "validation" / "case_005.npz",
                            probabilities=_soft(lab))
    elif break_it == "region":
        np.savez_compressed(v / "case_005.npz", probabilities=_soft(lab)[1:])
    elif break_it == "logits":
        np.savez_compressed(v / "case_005.npz", probabilities=_soft(lab) * 3)
    elif break_it == "nan":
        p = _soft(lab)
        p[0, 0, 0, 0] = np.nan
        np.savez_compressed(v / "case_005.npz", probabilities=p)
    else:  # nibabel's (x, y, z) order instead of SimpleITK's (z, y, x)
        np.savez_compressed(v / "case_005.npz", probabilities=_soft(lab).transpose(0, 3, 2, 1))
    out = tmp_path / "aud"
    _one_line_error(["rank", "--data", f"nnunet:{raw}", "--probs", str(res), "--out", str(out),
                     "--no-progress"], capsys, match, out)


def test_2d_folder_with_npy_probabilities_and_the_truth(tmp_path):
    """A corrupted 2-D folder: detection.json from its manifest; probabilities from the
    clean masks rank the corrupted samples first."""
    from noisyseg.corrupt import corrupt_dataset

    ds = synthetic_echo(n=20, size=32, seed=1)
    res = corrupt_dataset(ds, "dilate", strength=3, fraction=0.5, seed=0, classes=(1,))
    src = tmp_path / "noisy"
    write_folder(res.dataset, src, fmt="npy",
                 manifest=pd.DataFrame({"sample_id": ds.sample_ids,
                                        "corrupted": res.dataset.corrupted}))
    probs = tmp_path / "probs"
    probs.mkdir()
    for sid, m in zip(ds.sample_ids, ds.masks, strict=True):
        np.save(probs / f"{sid}.npy", _soft(m, k=4))
    out = tmp_path / "aud"
    r = run_rank(data=str(src), probs=[probs], out=out, split="train", progress=False)
    det = json.loads((out / "detection.json").read_text())["detectors"]
    assert det["label-quality"]["average_precision"] == pytest.approx(1.0)
    assert r.record["n_cases"] == int((ds.split == "train").sum())
    assert (out / "suspects.png").exists()


def test_find_predictions_prefers_probabilities_and_skips_fold_all(nnunet):
    _, res, _ = nnunet
    found = find_predictions([res])
    assert len(found) == N_CASES
    assert {p.fold for p in found.values()} == {"0", "1"}
    assert all(p.path.suffix == ".npz" for p in found.values())


def test_read_prediction_squeezes_2d_nnunet_arrays(tmp_path):
    p = tmp_path / "c.npz"
    probs = _soft(np.eye(4, dtype=np.uint8), k=2)[:, None]  # (K, 1, H, W)
    np.savez(p, probabilities=probs)
    assert read_prediction(p, n_classes=2, shape=(4, 4)).shape == (2, 4, 4)
    np.savez(p, softmax=probs)  # nnU-Net v1's key
    assert read_prediction(p, n_classes=2, shape=(4, 4)).shape == (2, 4, 4)
    with pytest.raises(DataError, match="classes, but the dataset has 3"):
        read_prediction(p, n_classes=3, shape=(4, 4))


def test_volume_source_ranks_per_slice(tmp_path):
    """synthetic-ct with probabilities from its own labels: nothing is flagged as wrong."""
    ds = load_dataset("synthetic-ct:n=4,size=32,slices=8")
    probs = tmp_path / "p"
    probs.mkdir()
    for i, cid in enumerate(ds.sample_ids):
        np.savez_compressed(probs / f"{cid}.npz", probabilities=_soft(ds.read_label(i)[0], k=4))
    out = tmp_path / "aud"
    run_rank(data="synthetic-ct:n=4,size=32,slices=8", probs=[probs], out=out, progress=False)
    sl = pd.read_csv(out / "slice_scores.csv")
    assert len(sl) == 4 * 8 * 3
    scores = pd.read_csv(out / "scores.csv")
    assert (scores.loc[scores["detector"] == "dice", "score"] == 0).all()


def test_label_maps_stored_as_floats_are_label_maps(tmp_path):
    p = tmp_path / "c.nii.gz"
    lab = np.zeros((5, 6), np.float32)
    lab[1:4, 2:5] = 2.0
    nib.save(nib.Nifti1Image(lab.T[..., None], np.eye(4)), str(p))
    probs = read_prediction(p, n_classes=3, shape=(5, 6))
    assert probs.shape == (3, 5, 6) and np.array_equal(probs.argmax(0), lab.astype(int))
    assert np.array_equal(probs.sum(0), np.ones((5, 6)))


def test_a_missing_fold_is_named_and_only_predicted_ranks_the_rest(nnunet, tmp_path, capsys):
    raw, res, _ = nnunet
    import shutil

    shutil.rmtree(res / "fold_1")  # a fold still training: its cases have no prediction
    args = ["rank", "--data", f"nnunet:{raw}", "--probs", str(res), "--no-progress"]
    assert run_cli([*args, "--out", str(tmp_path / "a")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "folds found: 0;" in err and "--only-predicted" in err and "case_" in err
    assert not (tmp_path / "a").exists()
    assert run_cli([*args, "--only-predicted", "--out", str(tmp_path / "b")]) == 0
    info = json.loads((tmp_path / "b" / "rank.json").read_text())
    fold0 = {p.stem.split(".")[0] for p in (res / "fold_0" / "validation").glob("*.npz")}
    assert info["only_predicted"] and info["n_cases"] == len(fold0) < N_CASES
    scores = pd.read_csv(tmp_path / "b" / "scores.csv")
    assert set(scores["sample_id"]) == fold0
