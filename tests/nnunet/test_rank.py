"""`noisyseg rank` on a results folder written by nnU-Net's own prediction exporter: the
``fold_X/validation/{case}.npz`` probabilities (with their ``.pkl`` and label maps) of a
5-fold cross-validation made with nnU-Net's own split."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.nnunet.conftest import BAD, LABELS, N_CASES, read_label

if os.environ.get("NOISYSEG_REQUIRE_NNUNET"):  # CI: the extra must be there, never skipped
    import nnunetv2  # noqa: F401
else:
    pytest.importorskip("nnunetv2")


def test_rank_reads_nnunet_exports_and_ranks_the_wrong_case_worst(crossval, tmp_path):
    res = crossval.results
    for cid, fold in crossval.fold_of.items():  # nnU-Net wrote what nnUNetv2_train --npz writes
        for suffix in (".npz", ".pkl", ".nii.gz"):
            assert (res / f"fold_{fold}" / "validation" / f"{cid}{suffix}").is_file()
    out = tmp_path / "aud"
    assert run_cli(["rank", "--data", f"nnunet:{crossval.raw}", "--probs", str(res),
                    "--flag-rule", "top", "--flag-value", "0.2", "--no-progress",
                    "--out", str(out)]) == 0
    info = json.loads((out / "rank.json").read_text())
    assert info["n_cases"] == N_CASES
    assert info["folds"] == [str(f) for f in sorted(set(crossval.fold_of.values()))]
    assert info["prediction_files"] == {
        cid: str(res / f"fold_{fold}" / "validation" / f"{cid}.npz")
        for cid, fold in crossval.fold_of.items()}
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["detector"]) == {"label-quality", "dice", "expected-dice"}
    for det, g in scores.groupby("detector"):
        assert sorted(g["sample_id"]) == sorted(crossval.truth), det  # every case, once
        assert sorted(g["rank"]) == list(range(1, N_CASES + 1)), det
        worst = g.sort_values("rank").iloc[0]
        assert worst["sample_id"] == BAD, det
        assert (g.loc[g["sample_id"] != BAD, "score"] < worst["score"]).all(), det
    flagged = scores[(scores["detector"] == "expected-dice") & scores["flagged"]]
    assert flagged["sample_id"].tolist() == [BAD]
    # the tumour is what the model missed: given in the label, absent from the prediction
    cls = pd.read_csv(out / "class_scores.csv")
    row = cls[(cls["sample_id"] == BAD) & (cls["class"] == "tumour")].iloc[0]
    tumour = int((crossval.truth[BAD] == LABELS["tumour"]).sum())
    assert row["given_voxels"] == tumour and row["predicted_voxels"] == 0
    # per slice: the bad case's wrong slices are exactly those holding tumour (z = 2..5)
    sl = pd.read_csv(out / "slice_scores.csv")
    bad = sl[(sl["sample_id"] == BAD) & (sl["detector"] == "dice")].set_index("slice")["score"]
    has_tumour = (crossval.truth[BAD] == LABELS["tumour"]).any(axis=(1, 2))
    assert sorted(bad.index) == list(range(len(has_tumour)))
    assert set(bad[bad > 0].index) == set(np.flatnonzero(has_tumour))


def test_rank_reads_nnunet_label_maps_alone(crossval, tmp_path):
    """The exporter's label maps without its probabilities (nnUNetv2_train without --npz)."""
    maps = tmp_path / "validation"
    maps.mkdir()
    for cid, fold in crossval.fold_of.items():
        f = crossval.results / f"fold_{fold}" / "validation" / f"{cid}.nii.gz"
        (maps / f.name).write_bytes(f.read_bytes())
    np.testing.assert_array_equal(read_label(maps / f"{BAD}.nii.gz"), crossval.predicted[BAD])
    out = tmp_path / "aud"
    assert run_cli(["rank", "--data", f"nnunet:{crossval.raw}", "--probs", str(maps),
                    "--no-progress", "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv")
    dice = scores[scores["detector"] == "dice"].set_index("sample_id")["score"]
    assert sorted(dice.index) == sorted(crossval.truth)
    assert dice.idxmax() == BAD and (dice.drop(BAD) == 0).all()
