"""Studies on volumes: each trial corrupts the cases into a temporary folder and trains a
2-D network on their slices; results are per case."""

import json

import numpy as np
import pandas as pd
import pytest

from noisyseg.errors import ConfigError
from noisyseg.report import write_study_report
from noisyseg.study import StudyRunner, load_spec

SPEC = """\
name: vol
data: synthetic-ct:n=6,size=32,slices=4,seed=0
train: {epochs: 1, batch_size: 4, model_options: {width: 4}, threads: 1}
audit: {warmup: 1, every: 1, flag_rule: top, flag_value: 0.5}
grids:
  - corrupt.model: [none, natural]
    corrupt.target_dice: [0.85]
    corrupt.mode: [slicewise]
    seed: [0]
  - corrupt: [{model: dilate, strength: 3, fraction: 0.5, classes: [liver]}]
    audit.detectors: [[loss]]
    audit.refurbish: [true]
    seed: [0]
"""


def test_a_study_on_volumes_runs_per_case(tmp_path):
    spec = tmp_path / "vol.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "study"
    outcome = StudyRunner(load_spec(spec), out, progress=False).run()
    assert outcome.failed == 0, [json.loads(p.read_text()).get("error")
                                 for p in (out / "trials").glob("*/result.json")]
    df = pd.read_parquet(out / "results.parquet").set_index("error_model")
    assert {"surface_dice_mean", "hd95_liver", "dice_liver"} <= set(df.columns)
    nat = df.loc["natural"]
    # calibrated slice-wise on the corrupted cases' volumes
    assert abs(nat["train_label_dice"] - 0.85) < 0.05
    trial = out / "trials" / nat["trial_id"]
    metrics = json.loads((trial / "run" / "metrics.json").read_text())
    assert metrics["corruption"]["mode"] == "slicewise" and metrics["slice_axis"] == 0
    assert metrics["test"]["n"] == len(pd.read_csv(trial / "run" / "case_metrics.csv"))
    dil = df.loc["dilate"]
    assert np.isfinite(dil["ap_loss"]) and dil["refurbish"]
    scores = pd.read_csv(out / "trials" / dil["trial_id"] / "run" / "scores.csv")
    assert scores["sample_id"].str.startswith("ct_").all() and ":" not in "".join(scores["sample_id"])
    assert scores["corrupted"].notna().all()
    assert write_study_report(out)[0].read_text().count("## ") >= 3


def test_mode_is_checked_and_left_out_of_old_trial_ids(tmp_path):
    spec = tmp_path / "vol.yaml"
    spec.write_text(SPEC.replace("[slicewise]", "[sliced]"))
    with pytest.raises(ConfigError, match="corrupt.mode: expected slicewise or volumetric"):
        load_spec(spec)
    spec.write_text(SPEC)
    trials = load_spec(spec).trials()
    nat = next(t for t in trials if t.corrupt and t.corrupt.model == "natural")
    assert nat.to_dict()["corrupt"]["mode"] == "slicewise"
    dil = next(t for t in trials if t.corrupt and t.corrupt.model == "dilate")
    assert "mode" not in dil.to_dict()["corrupt"] and "slice_axis" not in dil.to_dict()["corrupt"]


def test_a_3d_trial_trains_a_3d_network_and_keeps_2d_ids(tmp_path):
    spec = tmp_path / "vol.yaml"
    spec.write_text(SPEC)
    old = {t.trial_id for t in load_spec(spec).trials()}
    spec.write_text(SPEC + "volumes: {dims: 2, slice_axis: 0, tolerance: 1.0}\n")
    assert {t.trial_id for t in load_spec(spec).trials()} == old  # the default adds nothing
    spec.write_text(SPEC.replace("seed: [0]\n  - corrupt", "seed: [0]\n    volumes.dims: [3]\n"
                                 "  - corrupt", 1).replace("slices=4", "slices=8"))
    trials = load_spec(spec).trials()
    three = [t for t in trials if t.volumes.dims == 3]
    assert len(three) == 2 and all("3d" in t.describe() for t in three)
    assert all(t.to_dict()["volumes"]["dims"] == 3 for t in three)
    out = tmp_path / "study"
    outcome = StudyRunner(load_spec(spec), out, progress=False).run()
    assert outcome.failed == 0, [json.loads(p.read_text()).get("error")
                                 for p in (out / "trials").glob("*/result.json")]
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["arch"]) == {"unet-3d", "unet"}
    t3 = df.loc[df["arch"] == "unet-3d", "trial_id"].iloc[0]
    metrics = json.loads((out / "trials" / t3 / "run" / "metrics.json").read_text())
    assert metrics["dims"] == 3 and metrics["grid"] == [16, 32, 32]
    with pytest.raises(ConfigError, match="volumes.dims: expected 2 \\(a 2-D network on slices\\) or 3"):
        spec.write_text(SPEC + "volumes: {dims: 4}\n")
        load_spec(spec)
    with pytest.raises(ConfigError, match="volumes.spacing: resamples volumes for a 3-D network"):
        spec.write_text(SPEC + "volumes: {spacing: [1, 1, 1]}\n")
        load_spec(spec)
