import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from noisyseg.cli import app
from noisyseg.data import load_dataset

from .conftest import run_cli

runner = CliRunner()



def test_corrupt_writes_a_folder_that_is_a_data_source(tmp_path):
    out = tmp_path / "noisy"
    code = run_cli(["corrupt", "--data", "synthetic-echo:n=20,size=32", "--model", "natural",
                 "--target-dice", "0.9", "--fraction", "0.5", "--out", str(out)])
    assert code in (0, None)
    for f in ("images", "masks", "masks_clean", "manifest.csv", "examples.png",
              "corruption.json", "split.csv", "dataset.json"):
        assert (out / f).exists(), f
    man = pd.read_csv(out / "manifest.csv")
    assert list(man.columns) == ["sample_id", "split", "corrupted", "dice_to_clean", "model",
                                 "strength"]
    assert man["corrupted"].sum() == round(0.5 * (man["split"] == "train").sum())
    assert abs(man.loc[man["corrupted"], "dice_to_clean"].mean() - 0.9) <= 0.005
    rec = json.loads((out / "corruption.json").read_text())
    assert rec["config"]["seed"] == 0 and rec["calibration"]["target_dice"] == 0.9
    ds = load_dataset(str(out))
    np.testing.assert_array_equal(ds.corrupted, man["corrupted"].to_numpy())
    assert (ds.masks != ds.clean_masks).any()


def test_corrupt_list_and_classes_by_name(tmp_path):
    res = runner.invoke(app, ["corrupt", "--list"])
    assert res.exit_code == 0 and "random_flip" in res.output and "dilate" in res.output
    out = tmp_path / "o"
    code = run_cli(["corrupt", "--data", "synthetic-echo:n=10,size=32", "--model", "dilate",
                 "--strength", "2", "--classes", "lv_cavity", "--format", "npy",
                 "--out", str(out)])
    assert code in (0, None)
    ds = load_dataset(str(out))
    changed = ds.masks != ds.clean_masks
    assert (ds.masks[changed] == 1).all()  # only the cavity grew


@pytest.mark.parametrize("args,match", [
    (["--model", "nope"], "unknown error model"),
    (["--target-dice", "1.2"], "--target-dice"),
    (["--target-dice", "0.9", "--strength", "1"], "exactly one"),
    (["--classes", "aorta"], "unknown class 'aorta'"),
    (["--data", "camus:/no/such"], "no such folder"),
    (["--format", "jpeg"], "--format"),
    (["--option", "points"], "key=value"),
])
def test_bad_options_give_one_line_and_exit_2(tmp_path, args, match):
    out = tmp_path / "out"
    base = ["corrupt", "--data", "synthetic-echo:n=8,size=24", "--out", str(out)]
    if "--data" in args:
        base = ["corrupt", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "noisyseg.cli", *base, *args],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert match in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_out_not_overwritten_without_flag(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert run_cli(["corrupt", "--data", "synthetic-echo:n=8,size=24", "--out", str(out)]) == 2
    assert (out / "keep.txt").exists()


def test_demo_runs_the_quick_study_and_writes_its_report(tmp_path, monkeypatch):
    from noisyseg.study import spec as spec_module
    from tests.conftest import TINY

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "quick.yaml").write_text(TINY)  # the real quick.yaml takes minutes
    monkeypatch.setattr(spec_module, "SPEC_DIR", specs)
    out = tmp_path / "demo"
    assert run_cli(["demo", "--out", str(out), "--no-progress"]) in (0, None)
    for f in ("report.md", "report.html", "results.parquet", "study.json"):
        assert (out / f).is_file(), f
    assert "## Test Dice by error condition" in (out / "report.md").read_text()


@pytest.mark.parametrize("args,match", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--model", "resnet"], "unknown network"),
    (["train", "--loss", "focal"], "--loss"),
    (["train", "--precision", "half"], "--precision: expected one of auto, fp32, bf16, fp16"),
    (["audit", "--precision", "fp16", "--device", "cpu"], "--precision: fp16 needs a CUDA"),
    (["audit", "--detector", "magic"], "unknown detector 'magic'"),
    (["audit", "--detector", "vog:target=nope"], "--detector vog:target=nope: vog target"),
    (["audit", "--detector", "vog:speed=9"], "expected key=value options"),
    (["audit", "--detector", "disagree:every=0"], "disagree: every and max_val must be >= 1"),
    (["audit", "--flag-rule", "vibes"], "--flag-rule"),
    (["audit", "--refurbish", "--refurbish-mode", "erase"], "--refurbish-mode: expected one of"),
    (["audit", "--refurbish", "--refurbish-mode", "boundary", "--refurbish-band", "0"],
     "--refurbish-band: must be >= 1, got 0"),
    (["audit", "--refurbish", "--refurbish-mode", "debias", "--refurbish-calibrate"],
     "--refurbish-calibrate: mode 'debias' measures the model against the trusted masks"),
])
def test_train_and_audit_bad_options(tmp_path, args, match):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "noisyseg.cli", *args, "--data",
                           "synthetic-echo:n=12,size=32", "--epochs" if "--epochs" not in args
                           else "--seed", "1", "--width", "4", "--model-option", "depth=2",
                           "--no-progress", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert match in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_train_cli_writes_arun_cli(tmp_path):
    out = tmp_path / "run"
    code = run_cli(["train", "--data", "synthetic-echo:n=16,size=32", "--epochs", "1",
                 "--width", "4", "--model-option", "depth=2", "--no-progress", "--out", str(out)])
    assert code in (0, None)
    assert json.loads((out / "metrics.json").read_text())["config"]["epochs"] == 1


def test_markdown_table():
    from noisyseg.report import markdown_table

    df = pd.DataFrame({"model": ["natural", "choppy"], "dice": [0.9, 0.85]})
    assert markdown_table(df).splitlines() == [
        "| model | dice |", "|---|---|", "| natural | 0.9 |", "| choppy | 0.85 |"]
