import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from noisyseg.cli import main
from noisyseg.study import StudyRunner, execute_trial, load_spec, stale_trials


def _cli(args):
    try:
        main(args)
    except SystemExit as exc:
        return exc.code
    return 0


def _results(out):
    return {d.name: json.loads((d / "result.json").read_text())
            for d in (out / "trials").iterdir() if (d / "result.json").is_file()}


def test_run_writes_one_row_per_trial_and_resumes_without_redoing(tiny_spec, tmp_path):
    out = tmp_path / "study"
    spec = load_spec(tiny_spec)
    o = StudyRunner(spec, out, progress=False).run()
    n = len(spec.trials())
    assert (o.total, o.ran, o.failed, o.skipped) == (n, n, 0, 0)
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == n and df["trial_id"].is_unique and (df["status"] == "ok").all()
    for col in ("arch", "error_model", "target_dice", "error_level", "detector", "refurbish", "seed",
                "dice_mean", "iou_mean", "hd95_mean", "dice_lv_cavity", "train_label_dice",
                "ap_loss", "auroc_loss", "precision_loss", "recall_loss", "f1_loss",
                "refurb_dice_gain", "train_seconds"):
        assert col in df, col
    # the control trains on clean masks; the calibrated natural errors hit the target Dice
    assert (df.loc[df.error_model == "none", "train_label_dice"] == 1.0).all()
    nat = df[df.error_model == "natural"]
    assert np.allclose(nat["corrupted_label_dice"], 0.85, atol=0.0051)
    # every trial folder holds its run files and config
    tid = df.loc[df.detector == "loss", "trial_id"].iloc[0]
    run = out / "trials" / tid / "run"
    for f in ("metrics.json", "history.csv", "scores.csv", "suspects.npz"):
        assert (run / f).is_file(), f
    scores = pd.read_csv(run / "scores.csv")
    assert set(scores.columns) >= {"sample_id", "detector", "score", "rank", "flagged", "corrupted"}

    before = {k: (out / "trials" / k / "result.json").stat().st_mtime_ns for k in _results(out)}
    again = StudyRunner(spec, out, progress=False).run()
    assert (again.ran, again.skipped) == (0, n)
    after = {k: (out / "trials" / k / "result.json").stat().st_mtime_ns for k in _results(out)}
    assert before == after


def test_same_seed_same_numbers(tiny_spec):
    trial = load_spec(tiny_spec).trials()[1]
    cfg = trial.to_dict() | {"labels": trial.labels}
    a, _ = execute_trial(cfg)
    b, _ = execute_trial(cfg)
    assert a["status"] == "ok"
    assert a["row"]["dice_mean"] == b["row"]["dice_mean"]


def test_a_crashing_trial_is_recorded_and_retried(tiny_spec, tmp_path):
    text = tiny_spec.read_text().replace("classes: [lv_cavity]", "classes: [spleen]")
    tiny_spec.write_text(text)
    out = tmp_path / "study"
    spec = load_spec(tiny_spec)
    o = StudyRunner(spec, out, progress=False).run()
    assert o.failed == 6 and o.ran == len(spec.trials())  # every dilate trial, not the others
    res = _results(out)
    bad = [r for r in res.values() if r["status"] == "failed"]
    assert len(bad) == 6 and all("spleen" in r["error"] for r in bad)
    df = pd.read_parquet(out / "results.parquet")
    assert (df["status"] == "failed").sum() == 6 and df["trial_id"].is_unique
    skip = StudyRunner(spec, out, retry_failed=False, progress=False).run()
    assert skip.ran == 0
    retry = StudyRunner(spec, out, progress=False).run()
    assert retry.ran == 6 and retry.failed == 6


def test_changed_spec_gives_new_ids_and_stale_results(tiny_spec, tmp_path):
    out = tmp_path / "study"
    StudyRunner(load_spec(tiny_spec), out, progress=False).run()
    tiny_spec.write_text(tiny_spec.read_text().replace("corrupt.model: [none, natural]",
                                                       "corrupt.model: [none, choppy]"))
    o = StudyRunner(load_spec(tiny_spec), out, progress=False).run()
    assert o.ran == 2 and len(o.stale) == 2  # the natural trials are stale, choppy ones new
    assert {s["id"] for s in stale_trials(out)} == set(o.stale)
    df = pd.read_parquet(out / "results.parquet")
    assert "natural" not in set(df["error_model"]) and len(df) == o.total
    from noisyseg.report import write_study_report

    md, _ = write_study_report(out)
    assert "Stale results" in md.read_text()


def test_sigkill_at_any_point_then_rerun_gives_each_trial_once(tiny_spec, tmp_path):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "noisyseg.cli", "study", "run", str(tiny_spec), "--out", str(out),
           "--workers", "2", "--no-progress", "--no-report"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_results(out) if (out / "trials").is_dir() else {}) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {k: json.dumps(v, sort_keys=True) for k, v in _results(out).items()}
    assert 2 <= len(first) < 10
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    final = _results(out)
    n = len(load_spec(tiny_spec).trials())
    assert len(final) == n and all(r["status"] == "ok" for r in final.values())
    # finished work was not redone
    assert all(json.dumps(final[k], sort_keys=True) == v for k, v in first.items())
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == n and df["trial_id"].is_unique
    assert not [p for p in (out / "trials").iterdir() if p.name.startswith(".")]


def test_ray_executor_runs_the_same_trials_with_the_same_numbers(tiny_spec, tmp_path):
    pytest.importorskip("ray")
    spec = load_spec(tiny_spec)
    local = tmp_path / "local"
    StudyRunner(spec, local, progress=False).run()
    ray_out = tmp_path / "ray"
    o = StudyRunner(spec, ray_out, executor="ray", workers=2, progress=False).run()
    assert o.ran == len(spec.trials()) and o.failed == 0
    a = pd.read_parquet(local / "results.parquet").set_index("trial_id").sort_index()
    b = pd.read_parquet(ray_out / "results.parquet").set_index("trial_id").sort_index()
    assert list(a.index) == list(b.index)
    assert b["worker"].str.startswith("ray:").all()
    np.testing.assert_allclose(a["dice_mean"], b["dice_mean"], rtol=0, atol=1e-6)


def test_cli_bad_spec_and_bad_options_exit_2(tiny_spec, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_spec.read_text().replace("epochs: 2", "epochz: 2"))
    assert _cli(["study", "run", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "train.epochz" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert _cli(["study", "run", str(tiny_spec), "--out", str(tmp_path / "y"),
                 "--executor", "slurm"]) == 2
    assert _cli(["study", "run", str(tiny_spec), "--out", str(tmp_path / "z"),
                 "--address", "ray://x:1"]) == 2
    assert _cli(["study", "report", str(tmp_path)]) == 2
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    assert _cli(["study", "run", str(tiny_spec), "--out", str(full)]) == 2
    assert "not a study folder" in capsys.readouterr().err
