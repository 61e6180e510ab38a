import numpy as np

from noisyseg.evaluate import evaluate_masks
from noisyseg.metrics import dice

NAMES = ("background", "lv_cavity", "lv_myocardium", "left_atrium")


def test_hand_made_masks():
    y = np.zeros((1, 10, 10), np.uint8)
    y[0, 2:6, 2:6] = 1  # 16 px
    p = np.zeros_like(y)
    p[0, 2:6, 2:4] = 1  # 8 px, all inside
    r = evaluate_masks(p, y, NAMES[:2])
    assert np.isclose(r.per_class["lv_cavity"]["dice"], 2 * 8 / 24)
    assert np.isclose(r.per_class["lv_cavity"]["iou"], 8 / 16)
    assert np.isclose(r.mean["dice"], 2 * 8 / 24)
    assert r.per_class["lv_cavity"]["hd95"] > 0


def test_matches_numpy_dice_and_handles_empty_cases():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, (5, 12, 12)).astype(np.uint8)
    p = rng.integers(0, 4, (5, 12, 12)).astype(np.uint8)
    p[0][p[0] == 3] = 0  # class 3 predicted empty in sample 0: HD95 undefined there
    y[1][y[1] == 2] = 0
    p[1][p[1] == 2] = 0  # class 2 absent from both in sample 1: left out
    r = evaluate_masks(p, y, NAMES)
    np.testing.assert_allclose(r.per_sample_dice, dice(p, y, 4))
    assert np.isclose(r.mean["dice"], dice(p, y, 4).mean())
    assert r.per_class["left_atrium"]["hd95_undefined"] == 1
    assert r.per_class["lv_myocardium"]["n"] == 4
    assert "lv_epicardium" in r.per_class
    assert np.isfinite(r.mean["hd95"])


def test_all_empty_is_perfect_not_nan():
    z = np.zeros((2, 8, 8), np.uint8)
    r = evaluate_masks(z, z, NAMES[:2])
    assert r.mean["dice"] == 1.0
