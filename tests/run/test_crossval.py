"""Cross-validation inside noisyseg (`audit --folds K`): folds, held-out predictions, ranking."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from noisyseg.api import run_crossval
from noisyseg.corrupt import corrupt_dataset
from noisyseg.data import synthetic_echo, write_folder
from noisyseg.errors import ConfigError
from noisyseg.run.crossval import fold_assignment, fold_cases
from noisyseg.train import TrainConfig


@given(n=st.integers(2, 60), k=st.integers(2, 6), seed=st.integers(0, 100))
def test_folds_cover_every_case_once_and_balance(n, k, seed):
    if n < k:
        with pytest.raises(ConfigError, match="folds"):
            fold_assignment(n, k, seed=seed)
        return
    a = fold_assignment(n, k, seed=seed)
    counts = np.bincount(a, minlength=k)
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert np.array_equal(a, fold_assignment(n, k, seed=seed))


@pytest.mark.parametrize("data", ["synthetic-echo:n=30,size=32,seed=0",
                                  "synthetic-ct:n=9,size=16,slices=4,seed=0"])
def test_a_fold_holds_out_its_cases_and_keeps_validation_and_test(data):
    from noisyseg.data import load_dataset

    ds = load_dataset(data)
    train = ds.indices("train")
    a = fold_assignment(len(train), 3, seed=0)
    fds, held = fold_cases(ds, 1, a)
    assert held.tolist() == train[a == 1].tolist()
    assert fds.sample_ids == ds.sample_ids  # cases keep their indices
    assert fds.indices("train").tolist() == train[a != 1].tolist()
    assert fds.indices("val").tolist() == ds.indices("val").tolist()
    assert fds.indices("test").tolist() == sorted([*held, *ds.indices("test")])


def test_crossval_audit_predicts_every_training_case_out_of_fold(tmp_path):
    ds = synthetic_echo(n=24, size=32, seed=2)
    res = corrupt_dataset(ds, "dilate", strength=3, fraction=0.5, seed=0, classes=(1,))
    src = tmp_path / "noisy"
    write_folder(res.dataset, src, fmt="npy",
                 manifest=pd.DataFrame({"sample_id": ds.sample_ids,
                                        "corrupted": res.dataset.corrupted}))
    out = tmp_path / "aud"
    cfg = TrainConfig(epochs=2, batch_size=8, model_options={"width": 4}, threads=1)
    r = run_crossval(data=str(src), out=out, config=cfg, folds=3, flag_rule="top",
                     flag_value=0.5, pseudo_labels=True, progress=False)
    train_ids = {ds.sample_ids[i] for i in ds.indices("train")}
    files = sorted((out / "oof").glob("fold_*/validation/*.npz"))
    assert {f.stem for f in files} == train_ids and len(files) == len(train_ids)
    folds = json.loads((out / "folds.json").read_text())["per_fold"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    assert sum(f["n_held_out"] for f in folds) == len(train_ids)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["sample_id"]) == train_ids
    assert r.truth_known and (out / "detection.json").exists()
    assert len(list((out / "refurbished").iterdir())) == r.n_flagged[r.record["detector"]]
    with np.load(files[0]) as z:
        p = z["probabilities"]
    assert p.shape == (4, 32, 32) and np.allclose(p.sum(0), 1, atol=1e-5)


def test_more_folds_than_cases_is_named(tmp_path):
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ConfigError, match="folds: 50 folds need at least 50"):
        run_crossval(data="synthetic-echo:n=20,size=32", out=tmp_path / "a", config=cfg,
                     folds=50, progress=False)
    assert not (tmp_path / "a").exists()
