"""write_raters: every file, whole or not at all."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from noisyseg.errors import ConfigError
from noisyseg.raters import compare_models, measure_raters, write_raters
from noisyseg.raters.write import FILES, real_summary
from tests.raters.test_compare import dilated_readers


@pytest.fixture(scope="module")
def results():
    nods, _ = dilated_readers(4)
    real = measure_raters(nods)
    sim, dist = compare_models(nods, real, models=("dilate", "natural", "erode"), modes=("volumetric",),
                               seed=2)
    return nods, real, sim, dist


def test_writes_every_file(tmp_path, results):
    nods, real, sim, dist = results
    out = write_raters(tmp_path / "raters", real, sim, dist, config={"seed": 2, "models": ["dilate"],
                                                                  "data": "lidc:min_readers=3"},
                       case=nods[0])
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*FILES, "case_planes.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raters"]  # no temporary folder left
    pd.testing.assert_frame_equal(pd.read_parquet(out / "readers.parquet"), real)
    assert len(pd.read_csv(out / "simulated.csv")) == len(sim)
    back = pd.read_csv(out / "distances.csv")
    assert list(back["model"]) == list(dist["model"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 2 and cfg["versions"]["numpy"] and cfg["models"] == ["dilate"]
    report = (out / "report.md").read_text()
    assert report.startswith("# How realistic are the simulated errors? Measured on LIDC-IDRI's")
    assert "4 nodules (4 with 3 readers; 12 reader outlines)" in report
    assert "| 1 | dilate | volumetric | {} | ok |" in report
    for fig in ("offset_mean.png", "realism.png", "case_planes.png"):
        assert f"]({fig})" in report
        assert (out / fig).read_bytes()[:4] == b"\x89PNG"


def test_refuses_a_non_empty_folder_without_overwrite(tmp_path, results):
    _, real, sim, dist = results
    out = tmp_path / "raters"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        write_raters(out, real, sim, dist, config={})
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raters"]
    write_raters(out, real, sim, dist, config={}, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "report.md").is_file()


def test_an_error_leaves_nothing_half_written(tmp_path, results):
    _, real, sim, dist = results
    with pytest.raises(KeyError):
        write_raters(tmp_path / "raters", real, sim, dist.drop(columns=["status"]), config={})
    assert list(tmp_path.iterdir()) == []


def test_real_summary_medians_and_quartiles(results):
    _, real, _, _ = results
    table = real_summary(real, ["dice", "offset_q50"]).set_index("statistic")
    assert table.loc["dice", "median"] == pytest.approx(real["dice"].median())
    assert table.loc["dice", "q25"] <= table.loc["dice", "median"] <= table.loc["dice", "q75"]
    assert table.loc["offset_q50", "n"] == len(real)
