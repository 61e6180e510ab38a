"""Every nnU-Net dataset noisyseg writes passes nnU-Net's own integrity check and 2-D
preprocessing (``nnUNetv2_plan_and_preprocess -c 2d --verify_dataset_integrity``), and nnU-Net
then trains on exactly the labels noisyseg meant: the noisy ones, the refurbished ones, the
accepted pseudo-labels."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noisyseg.review import DecisionStore
from tests.conftest import run_cli
from tests.nnunet.conftest import BAD, CrossVal, PlanAndPreprocess, nnunet_env, read_label

if os.environ.get("NOISYSEG_REQUIRE_NNUNET"):  # CI: the extra must be there, never skipped
    import nnunetv2  # noqa: F401
else:
    pytest.importorskip("nnunetv2")


@dataclass(frozen=True)
class Written:
    crossval: CrossVal
    runs: dict[str, PlanAndPreprocess]


@pytest.fixture(scope="module")
def written(tiny_raw, tmp_path_factory, request):
    """nnU-Net running on every nnU-Net dataset noisyseg writes from ``tiny_raw``, by writer:
    ``corrupt`` (the corrupted dataset), ``audit`` (``audit --refurbish``: its refurbished/),
    ``rank`` (``rank --pseudo-labels`` of ``crossval``'s predictions: its refurbished/),
    ``review`` (``review export`` of that ranking, :data:`BAD`'s pseudo-label accepted).
    Each nnU-Net run starts as soon as its dataset is written and goes on beside the next
    writer (``crossval``'s own preprocessing included)."""
    root = tmp_path_factory.mktemp("written")
    raw_root = Path(nnunet_env(root)["nnUNet_raw"])
    data = f"nnunet:{tiny_raw.folder}"
    runs: dict[str, PlanAndPreprocess] = {}
    try:
        out = raw_root / "Dataset902_Noisy"
        assert run_cli(["corrupt", "--data", data, "--model", "natural", "--slicewise",
                        "--strength", "1", "--fraction", "0.5", "--seed", "0",
                        "--out", str(out), "--no-progress"]) == 0
        runs["corrupt"] = PlanAndPreprocess(out, root, 902)
        aud = root / "audit"
        assert run_cli(["audit", "--data", data, "--detector", "loss", "--refurbish",
                        "--flag-rule", "top", "--flag-value", "0.5", "--warmup", "4",
                        "--every", "2", "--epochs", "10", "--batch-size", "8", "--width", "8",
                        "--threads", "1", "--slice-size", "32", "--no-progress",
                        "--out", str(aud)]) == 0
        runs["audit"] = PlanAndPreprocess(aud / "refurbished", root, 903)
        crossval = request.getfixturevalue("crossval")
        rank = root / "rank"
        assert run_cli(["rank", "--data", data, "--probs", str(crossval.results),
                        "--flag-rule", "top", "--flag-value", "0.2", "--pseudo-labels",
                        "--no-progress", "--out", str(rank)]) == 0
        runs["rank"] = PlanAndPreprocess(rank / "refurbished", root, 904)
        store = DecisionStore(rank / "review.sqlite")
        store.add(BAD, "accept", reviewer="ann", note="tumour missed by the model")
        store.add("case_000", "reannotate", reviewer="ann", note="check the liver")
        store.add("case_001", "keep", reviewer="ann", note="")
        out = raw_root / "Dataset905_Reviewed"
        assert run_cli(["review", "export", str(rank), "--out", str(out)]) == 0
        runs["review"] = PlanAndPreprocess(out, root, 905)
        yield Written(crossval, runs)
    finally:
        for run in runs.values():
            run.stop()


def test_corrupt_writes_a_dataset_nnunet_preprocesses(written):
    crossval = written.crossval
    pre = written.runs["corrupt"].result()
    out = written.runs["corrupt"].dataset
    assert pre.cases == tuple(sorted(crossval.truth))
    manifest = pd.read_csv(out / "noisyseg" / "manifest.csv").set_index("sample_id")
    assert manifest["corrupted"].any()
    for cid in pre.cases:
        noisy = read_label(out / "labelsTr" / f"{cid}.nii.gz")
        np.testing.assert_array_equal(pre.label(cid), noisy)  # nnU-Net trains on the noisy label
        np.testing.assert_array_equal(read_label(out / "noisyseg" / "labelsTr_clean" /
                                                 f"{cid}.nii.gz"), crossval.truth[cid])
        assert np.array_equal(noisy, crossval.truth[cid]) != manifest.loc[cid, "corrupted"], cid


def test_audit_refurbished_folder_is_a_dataset_nnunet_preprocesses(written):
    crossval = written.crossval
    pre = written.runs["audit"].result()
    ref = written.runs["audit"].dataset
    assert pre.cases == tuple(sorted(crossval.truth))
    manifest = pd.read_csv(ref / "noisyseg" / "manifest.csv").set_index("sample_id")
    assert (manifest["label"] == "refurbished").any()
    for cid in pre.cases:
        np.testing.assert_array_equal(pre.label(cid), read_label(ref / "labelsTr" / f"{cid}.nii.gz"))
        if manifest.loc[cid, "label"] == "given":
            np.testing.assert_array_equal(pre.label(cid), crossval.truth[cid])


def test_rank_pseudo_labels_folder_is_a_dataset_nnunet_preprocesses(written):
    crossval = written.crossval
    pre = written.runs["rank"].result()
    assert pre.cases == tuple(sorted(crossval.truth))
    for cid in pre.cases:  # the flagged case's pseudo-label, every other case as given
        want = crossval.predicted[cid] if cid == BAD else crossval.truth[cid]
        np.testing.assert_array_equal(pre.label(cid), want)


def test_review_export_is_a_dataset_nnunet_preprocesses(written):
    crossval = written.crossval
    pre = written.runs["review"].result()
    out = written.runs["review"].dataset
    assert (out / "dataset.json").read_text() == (crossval.raw / "dataset.json").read_text()
    assert pre.cases == tuple(sorted(crossval.truth))
    assert not np.array_equal(crossval.predicted[BAD], crossval.truth[BAD])
    for cid in pre.cases:  # the accepted pseudo-label; every other case as given
        want = crossval.predicted[cid] if cid == BAD else crossval.truth[cid]
        np.testing.assert_array_equal(pre.label(cid), want)
    review = json.loads((out / "noisyseg" / "review.json").read_text())
    assert (review["n_accepted"], review["n_kept"], review["n_reannotate"]) == (1, 1, 1)
