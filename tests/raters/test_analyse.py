"""Fitting error models to raters, the whole analysis, `noisyseg raters` and `corrupt --like`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from noisyseg.cli import app
from noisyseg.corrupt import get_model, read_preset
from noisyseg.data import RaterCase, write_image
from noisyseg.errors import ConfigError
from noisyseg.raters import analyse_raters, compare_models, fit_model, measure_raters
from tests.conftest import run_cli
from tests.raters.test_compare import ellipsoid, nodule

runner = CliRunner()


def planted_readers(n: int = 10, *, scale: float = 3.0, bias: float = 0.5) -> tuple[list, pd.DataFrame]:
    """Two readers draw each ellipsoid exactly; a third is natural's volumetric error at
    (scale, bias) of it. The consensus of all three is the ellipsoid, so simulated readers
    with the planted options are draws from the very distribution of the real third reader."""
    nods = []
    for k in range(n):
        c = ellipsoid((16, 28, 28), (8, 14, 14),
                      (4.0 + 0.5 * (k % 3), 6 + 0.4 * k, 7 + 0.3 * (k % 2))).astype(np.uint8)
        r = get_model("natural")(c, 0.6, rng=np.random.default_rng(100 + k), mode="volumetric",
                                 spacing=(1.0, 1.0, 1.0), scale=scale, bias=bias)
        nods.append(nodule(k, np.stack([r.astype(bool), c.astype(bool), c.astype(bool)]),
                           ids=("third", "a", "b")))
    real = measure_raters(nods)
    return nods, real[real["reader_id"] == "third"].reset_index(drop=True)


def test_fit_recovers_the_planted_options():
    nods, real = planted_readers()
    fit = fit_model(nods, real, model="natural", mode="volumetric",
                    grid={"scale": [3.0, 30.0], "bias": [0.0, 0.5]})
    assert len(fit) == 4 and (fit["status"] == "ok").all()
    best = fit.iloc[0]
    assert (best["scale"], best["bias"], best["rank"]) == (3.0, 0.5, 1)
    assert json.loads(best["options"]) == {"bias": 0.5, "scale": 3.0}
    # calibrated to the real third reader's Dice
    assert abs(best["achieved_dice"] - real["dice"].mean()) <= 0.005
    # the planted strength (0.6 mm) is what calibration finds, to the spread of 10 draws
    assert best["strength"] == pytest.approx(0.6, abs=0.1)


def test_fit_refuses_an_option_the_model_lacks_and_an_empty_grid():
    nods, real = planted_readers(2)
    with pytest.raises(ConfigError, match=r"no option\(s\) \['points'\]"):
        fit_model(nods, real, model="natural", mode="volumetric", grid={"points": [4]})
    with pytest.raises(ConfigError, match="at least one value"):
        fit_model(nods, real, model="natural", mode="volumetric", grid={"scale": []})


def test_compare_takes_options_per_model_and_mode():
    nods, real = planted_readers(3)
    _, dist = compare_models(nods, real, models=["natural"], modes=["volumetric"],
                             options={"natural": {"scale": 30.0},
                                      "natural/volumetric": {"scale": 3.0, "bias": 0.5}})
    assert json.loads(dist["options"].iloc[0]) == {"bias": 0.5, "scale": 3.0}


def two_d_cases(n: int = 6) -> list[RaterCase]:
    out = []
    for k in range(n):
        yy, xx = np.indices((32, 32))
        c = ((yy - 16) ** 2 / (6 + k % 3) ** 2 + (xx - 16) ** 2 / (8 + k % 2) ** 2) <= 1
        wide = np.zeros_like(c)
        wide[1:-1, 1:-1] = c[1:-1, 1:-1] | c[:-2, 1:-1] | c[2:, 1:-1] | c[1:-1, :-2] | c[1:-1, 2:]
        out.append(RaterCase(f"c{k}", np.stack([wide, c, c]), (0.5, 0.5), ("wide", "a", "b")))
    return out


def test_two_d_raters_measure_and_compare():
    cases = two_d_cases()
    real = measure_raters(cases)
    assert real["spacing_z_mm"].isna().all() and (real["spacing_y_mm"] == 0.5).all()
    wide = real[real["reader_id"] == "wide"]
    # one pixel wider than the others' consensus everywhere: +0.5 mm at 0.5 mm pixels
    assert np.allclose(wide["offset_q50"], 0.5)
    sim, dist = compare_models(cases, wide, models=["dilate", "natural"])
    assert set(dist["mode"]) == {"slicewise"} and (dist["status"] == "ok").all()
    assert dist["model"].iloc[0] == "dilate"  # the planted error ranks first
    with pytest.raises(ConfigError, match="no volumetric mode"):
        compare_models(cases, wide, models=["dilate"], modes=["volumetric"])


def write_folder_of_raters(root, n: int = 4) -> str:
    for case in two_d_cases(n):
        for rater, m in zip(case.reader_ids, case.masks, strict=True):
            (root / rater).mkdir(parents=True, exist_ok=True)
            write_image(root / rater / f"{case.case_id}.nii.gz", m.astype(np.uint8))
    return f"raters:{root}"


def test_analyse_with_fit_writes_a_preset_that_corrupt_reads(tmp_path):
    data = write_folder_of_raters(tmp_path / "in")
    res = analyse_raters(data=data, out=tmp_path / "R", models=["natural", "dilate"], fit=True,
                         command="noisyseg raters ...")
    names = {p.name for p in (tmp_path / "R").iterdir()}
    assert {"readers.csv", "distances.csv", "report.md", "fit.csv", "preset.json"} <= names
    assert "case_planes.png" not in names  # 2-D cases: no planes
    fit = pd.read_csv(tmp_path / "R" / "fit.csv")
    assert sorted(fit["points"].dropna().astype(int)) == [4, 6, 8, 12, 16, 24]
    preset = read_preset(tmp_path / "R" / "preset.json")
    assert preset.source == data and preset.command == "noisyseg raters ..."
    assert preset.target_dice == pytest.approx(res.target_dice)
    best_points = json.loads(fit.sort_values("realism")["options"].iloc[0])
    assert preset.options("natural", "slicewise") == best_points
    report = (tmp_path / "R" / "report.md").read_text()
    assert "## Fitted options" in report and "## Systematic against random" in report
    # the raters are named across cases: each one's systematic part is measured
    assert "| wide |" in report
    out = tmp_path / "C"
    r = runner.invoke(app, ["corrupt", "--data", "synthetic-echo:n=6,size=48", "--model", "natural",
                            "--like", str(tmp_path / "R" / "preset.json"), "--out", str(out),
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "corruption.json").read_text())["config"]
    assert cfg["options"] == best_points and cfg["target_dice"] == pytest.approx(res.target_dice)
    assert cfg["like"] == str(tmp_path / "R" / "preset.json")


def test_cli_raters(tmp_path, capsys):
    data = write_folder_of_raters(tmp_path / "in", 3)
    r = runner.invoke(app, ["raters", "--data", data, "--out", str(tmp_path / "R"), "--model", "dilate",
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "3 cases, 9 reader outlines" in r.output and "dilate" in r.output
    cfg = json.loads((tmp_path / "R" / "config.json").read_text())
    assert cfg["data"] == data and cfg["models"] == ["dilate"] and cfg["command"].startswith("noisyseg")
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, match in ((["--data", data], "--out"),
                        (["--data", "raters:/no/such/folder", "--out", str(tmp_path / "X")],
                         "no such folder"),
                        (["--data", "lidc:bogus=1", "--out", str(tmp_path / "X")], "unknown option 'bogus'"),
                        (["--data", data, "--out", str(tmp_path / "R")], "not empty"),
                        (["--data", data, "--out", str(tmp_path / "X"), "--model", "nope"], "nope")):
        code = run_cli(["raters", *args, "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written
