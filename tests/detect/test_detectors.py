"""Detectors and refurbishment on tiny data with planted errors."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from noisyseg.api import run_audit
from noisyseg.corrupt import corrupt_dataset
from noisyseg.data import synthetic_echo, write_folder
from noisyseg.detect import detection_metrics, input_gradients, make_detector
from noisyseg.errors import ConfigError
from noisyseg.refurbish import RefurbishConfig, Refurbisher, pseudo_labels
from noisyseg.train import TrainConfig, Trainer


def _cfg(**kw):
    base = dict(model="unet", model_options={"width": 6, "depth": 2}, epochs=6,
                batch_size=8, threads=2, lr=5e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def planted():
    ds = synthetic_echo(n=60, size=32, seed=0)
    return corrupt_dataset(ds, "omit", strength=1.0, fraction=0.3, seed=0,
                           classes=(1,)).dataset


@pytest.fixture(scope="module")
def trained(planted):
    dets = [make_detector(n) for n in ("loss", "vog", "vog-online", "cleanlab", "disagree")]
    tr = Trainer(_cfg(), planted, dets).fit()
    return tr, dets


@pytest.mark.parametrize("k", range(5))
def test_every_detector_ranks_planted_errors_above_chance(planted, trained, k):
    tr, dets = trained
    det = dets[k]
    truth = planted.corrupted[tr.train_idx.numpy()]
    s = det.scores()
    assert s.shape == truth.shape and np.isfinite(s).all()
    m = detection_metrics(s, np.zeros_like(truth), truth)
    assert m.auroc > 0.5, (det.name, m)
    assert det.history and det.history[-1][1] is s


def test_input_gradients_are_per_sample(planted):
    model = _cfg().model
    from noisyseg.models import build_model

    net = build_model(model, n_classes=4, width=4, depth=2).eval()
    x = torch.randn(3, 1, 32, 32)
    y = torch.as_tensor(planted.masks[:3].astype(np.int64))
    g = input_gradients(net, x, y)
    g0 = input_gradients(net, x[:1], y[:1])
    torch.testing.assert_close(g[:1], g0)  # eval-mode batch norm: samples independent
    assert g.shape == (3, 32, 32)


def test_pseudo_labels_keep_given_label_where_unsure():
    probs = torch.tensor([[[[0.9, 0.4]], [[0.1, 0.6]]]])  # (1, 2, 1, 2)
    given = np.array([[[1, 0]]])
    np.testing.assert_array_equal(pseudo_labels(probs, given, confidence=0.7), [[[0, 0]]])
    np.testing.assert_array_equal(pseudo_labels(probs, given), [[[0, 1]]])
    # ignore: the unsure pixel is left out of the loss instead of keeping the given label
    np.testing.assert_array_equal(pseudo_labels(probs, given, confidence=0.7, ignore=True),
                                  [[[0, 255]]])


def test_refurbishment_touches_only_training_samples(planted):
    det = make_detector("loss")
    ref = Refurbisher(det, RefurbishConfig(warmup=2, every=2), rule="top", value=0.3)
    tr = Trainer(_cfg(epochs=4), planted, [det, ref]).fit()
    changed = (tr.train_targets.numpy() != planted.masks).any(axis=(1, 2))
    assert changed.any()
    assert set(np.flatnonzero(changed)) <= set(tr.train_idx.tolist())
    assert {e["action"] for e in ref.events} == {"refurbished"}
    # flags are sticky without unflag: two rounds of the top 30% flag between 30% and 60%
    k = round(0.3 * len(tr.train_idx))
    assert k <= int(ref.flagged.sum()) <= 2 * k
    # round one refurbishes k samples; round two re-refurbishes every flagged sample
    assert len(ref.events) == k + int(ref.flagged.sum())


def test_audit_outputs(tmp_path, planted):
    src = tmp_path / "noisy"
    write_folder(planted, src, fmt="npy",
                 manifest=pd.DataFrame({"sample_id": planted.sample_ids,
                                        "corrupted": planted.corrupted}))
    out = tmp_path / "aud"
    res = run_audit(data=str(src), out=out, config=_cfg(epochs=4),
                    detectors=("loss", "vog"),
                    refurbish=RefurbishConfig(warmup=2, every=1, mode="ignore", confidence=0.9),
                    flag_rule="top", flag_value=0.3,
                    progress=False)
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["sample_id", "detector", "score", "rank", "flagged", "corrupted"]
    # the truth column agrees with the manifest the folder was written with
    truth = dict(zip(planted.sample_ids, planted.corrupted, strict=True))
    assert all(truth[s] == c for s, c in zip(scores["sample_id"], scores["corrupted"], strict=True))
    n_train = int((planted.split == "train").sum())
    assert len(scores) == 2 * n_train
    for _, g in scores.groupby("detector"):
        assert sorted(g["rank"]) == list(range(1, n_train + 1))
    det = json.loads((out / "detection.json").read_text())["detectors"]
    assert set(det) == {"loss", "vog"} and 0 <= det["loss"]["average_precision"] <= 1
    assert (out / "suspects.png").exists() and len(list((out / "suspects").glob("*.png"))) == 8
    refurbished = list((out / "refurbished").glob("*.npy"))
    assert len(refurbished) == n_train
    # unsure pixels were left out of the loss but are exported with the model's label
    assert max(int(np.load(f).max()) for f in refurbished) < planted.n_classes
    assert res.record["refurbish_config"]["mode"] == "ignore"
    assert res.record["refurbish_dice"]["all_train_before"] <= 1.0


def test_audit_without_truth_says_so(tmp_path):
    out = tmp_path / "aud"
    res = run_audit(data="synthetic-echo:n=20,size=32", out=out, config=_cfg(epochs=2),
                    detectors=("loss",), progress=False)
    assert not res.truth_known and not (out / "detection.json").exists()
    assert (out / "scores.csv").exists()


def test_bad_detector():
    with pytest.raises(ConfigError, match="unknown detector 'magic'"):
        make_detector("magic")
