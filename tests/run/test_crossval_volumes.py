"""``audit --folds`` on volumes: a 2-D network on the slices, or a 3-D one on patches, per
fold; every training case's out-of-fold probabilities on its own grid; a folder the review
opens."""

import json

import numpy as np
import pandas as pd
import pytest

from noisyseg.data import load_dataset
from noisyseg.review import open_audit
from tests.conftest import run_cli

DATA = "synthetic-ct:n=8,size=32,slices=6,seed=2"


@pytest.mark.parametrize("dims", [2, 3])
def test_folds_on_volumes_rank_every_training_case_from_its_own_grid(tmp_path, dims):
    corrupted = tmp_path / "ct"
    assert run_cli(["corrupt", "--data", DATA, "--model", "dilate", "--strength", "2",
                    "--fraction", "0.5", "--out", str(corrupted), "--seed", "0"]) == 0
    out = tmp_path / f"folds{dims}"
    args = ["audit", "--data", str(corrupted), "--folds", "2", "--epochs", "1", "--width", "4",
            "--batch-size", "4", "--threads", "1", "--dims", str(dims), "--out", str(out),
            "--no-progress"]
    assert run_cli(args) == 0
    ds = load_dataset(str(corrupted))
    train = set(np.asarray(ds.sample_ids)[ds.indices("train")])
    files = sorted((out / "oof").glob("fold_*/validation/*.npz"))
    assert {f.stem for f in files} == train and len(files) == len(train)
    for f in files:  # (K, *S) on the case's own grid, a distribution per voxel
        p = np.load(f)["probabilities"]
        i = ds.sample_ids.index(f.stem)
        assert p.shape == (ds.n_classes, *ds.read_label(i)[0].shape) and p.dtype == np.float32
        assert np.allclose(p.sum(0), 1, atol=1e-4) and (p >= 0).all()
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["sample_id"]) == train
    assert json.loads((out / "run.json").read_text())["kind"] == "folds"
    folds = json.loads((out / "folds.json").read_text())
    assert folds["view"]["dims"] == dims and sum(f["n_held_out"] for f in folds["per_fold"]) == len(train)
    assert (out / "detection.json").is_file()  # the corrupted dataset says which cases were hit
    sl = pd.read_csv(out / "slice_scores.csv")
    assert set(sl["sample_id"]) == train and sl["slice"].max() == 5  # 6 slices along axis 0
    view = open_audit(out)
    assert view.kind == "rank" and set(view.cases["sample_id"]) == train
    case = view.case(int(view.cases["index"].iloc[0]))
    assert case.pseudo.shape == case.given.shape
