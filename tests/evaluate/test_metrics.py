import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyseg.errors import ConfigError
from noisyseg.evaluate import dice, evaluate_masks

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


def _box_shifted_along_axis_0():
    """A 4 x 6 x 6 box and the same box moved one voxel along the first axis."""
    y = np.zeros((1, 8, 10, 10), np.uint8)
    y[0, 2:6, 2:8, 2:8] = 1
    p = np.zeros_like(y)
    p[0, 3:7, 2:8, 2:8] = 1
    return p, y


def test_volume_distances_are_in_mm_per_axis():
    p, y = _box_shifted_along_axis_0()
    # overlap 3 of 4 slices: Dice 2*108/(144+144), IoU 108/180
    r = evaluate_masks(p, y, ("background", "liver"), spacing=(3.0, 1.0, 1.0), tolerance=1.0)
    assert np.isclose(r.mean["dice"], 0.75) and np.isclose(r.mean["iou"], 0.6)
    # the moved faces are one voxel = 3 mm apart along axis 0
    assert np.isclose(r.per_class["liver"]["hd95"], 3.0)
    # within 1 mm only the side walls match: surface Dice between 0 and 1
    assert 0.0 < r.per_class["liver"]["surface_dice"] < 1.0
    # the same shift with thin first-axis voxels is 1 mm, within the tolerance everywhere
    r = evaluate_masks(p, y, ("background", "liver"), spacing=(1.0, 3.0, 3.0), tolerance=1.0)
    assert np.isclose(r.mean["hd95"], 1.0) and np.isclose(r.mean["surface_dice"], 1.0)
    # a tolerance of the whole shift accepts every boundary voxel
    r = evaluate_masks(p, y, ("background", "liver"), spacing=(3.0, 1.0, 1.0), tolerance=3.0)
    assert np.isclose(r.mean["surface_dice"], 1.0)
    # one row per case, with the per-class columns
    (row,) = r.per_sample
    assert set(row) == {"dice", "iou", "hd95", "surface_dice", "dice_liver", "iou_liver",
                        "hd95_liver", "surface_dice_liver"}
    assert np.isclose(row["hd95_liver"], 3.0)


def test_isotropic_spacing_scales_distances():
    rng = np.random.default_rng(1)
    y = (rng.random((2, 6, 12, 12)) < 0.4).astype(np.uint8)
    p = (rng.random((2, 6, 12, 12)) < 0.4).astype(np.uint8)
    one = evaluate_masks(p, y, ("background", "x"), tolerance=1.0)
    two = evaluate_masks(p, y, ("background", "x"), spacing=2.0, tolerance=2.0)
    assert np.isclose(two.mean["hd95"], 2 * one.mean["hd95"])
    assert np.isclose(two.mean["surface_dice"], one.mean["surface_dice"])
    assert two.mean["dice"] == one.mean["dice"]


def test_empty_prediction_has_zero_surface_dice_and_undefined_hd95():
    _, y = _box_shifted_along_axis_0()
    r = evaluate_masks(np.zeros_like(y), y, ("background", "liver"), spacing=(3, 1, 1),
                       tolerance=2.0)
    assert r.per_class["liver"]["surface_dice"] == 0.0
    assert np.isnan(r.mean["hd95"]) and r.per_class["liver"]["hd95_undefined"] == 1


@pytest.mark.parametrize("kwargs", [{"spacing": (1.0, 1.0)}, {"spacing": (1.0, 0.0, 1.0)},
                                    {"spacing": -1.0}, {"tolerance": -0.5}])
def test_bad_spacing_or_tolerance_names_the_parameter(kwargs):
    p, y = _box_shifted_along_axis_0()
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=f"^{name}:"):
        evaluate_masks(p, y, ("background", "liver"), **kwargs)


# ------------------------------------------------------------------ boundary offsets
def test_boundary_offset_of_a_stripe_drawn_two_columns_too_wide_is_one_mm():
    from noisyseg.evaluate import boundary_offset

    ref = np.zeros((6, 9), np.uint8)
    ref[:, :4] = 1
    big = np.zeros_like(ref)
    big[:, :6] = 1
    # big's boundary voxels (column 5) lie 1 mm - 0.25 mm outside ref; ref's (column 3)
    # lie 1.5 mm - 0.25 mm inside big: (0.75 + 1.25) / 2 = 1 mm; the array edge is no boundary
    assert boundary_offset(big, ref, n_classes=2, spacing=(1.0, 0.5))[1] == pytest.approx(1.0)
    assert boundary_offset(ref, big, n_classes=2, spacing=(1.0, 0.5))[1] == pytest.approx(-1.0)
    off = boundary_offset(ref, ref, n_classes=3)
    assert np.isnan(off[0]) and off[1] == 0 and np.isnan(off[2])  # class 2 is absent


def test_boundary_offset_measures_a_3d_dilation_in_mm():
    from noisyseg.corrupt import grow_structures
    from noisyseg.evaluate import boundary_offset

    sp = (2.5, 0.8, 0.8)
    zz, yy, xx = np.mgrid[:24, :48, :48]
    ball = ((((zz - 12) * sp[0]) ** 2 + ((yy - 24) * sp[1]) ** 2 + ((xx - 24) * sp[2]) ** 2)
            < 12.0 ** 2).astype(np.uint8)
    for r in (1.6, 3.2, 5.0):  # within the 2.5 mm slices' discreteness of r
        grown = grow_structures(ball, r, spacing=sp)
        shrunk = grow_structures(ball, -r, spacing=sp)
        assert boundary_offset(grown, ball, n_classes=2, spacing=sp)[1] == pytest.approx(r, abs=0.5)
        assert boundary_offset(shrunk, ball, n_classes=2, spacing=sp)[1] == pytest.approx(-r, abs=0.5)


@given(st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_boundary_offset_is_antisymmetric(seed):
    from noisyseg.evaluate import boundary_offset

    rng = np.random.default_rng(seed)
    a = np.zeros((20, 20), np.uint8)
    b = np.zeros((20, 20), np.uint8)
    for m in (a, b):
        r0, c0 = rng.integers(2, 10, 2)
        m[r0:r0 + rng.integers(3, 9), c0:c0 + rng.integers(3, 9)] = 1
    sp = rng.uniform(0.3, 2.0, 2)
    np.testing.assert_allclose(boundary_offset(a, b, n_classes=2, spacing=sp),
                               -boundary_offset(b, a, n_classes=2, spacing=sp), equal_nan=True)


def test_boundary_offset_errors_name_the_parameter():
    from noisyseg.evaluate import boundary_offset

    with pytest.raises(ConfigError, match="^mask, reference: expected one shape"):
        boundary_offset(np.zeros((4, 4)), np.zeros((4, 5)), n_classes=2)
    with pytest.raises(ConfigError, match="^spacing: expected one positive"):
        boundary_offset(np.zeros((4, 4)), np.zeros((4, 4)), n_classes=2, spacing=(1, 0))


# ------------------------------------------------------------------ signed distances
@st.composite
def _binaries(draw, ndim=2):
    shape = tuple(draw(st.integers(1, 12 if ndim == 3 else 30)) for _ in range(ndim))
    p = draw(st.sampled_from([0.05, 0.3, 0.7]))
    return np.random.default_rng(draw(st.integers(0, 2**16))).random(shape) < p


@given(_binaries(ndim=3), st.lists(st.floats(0.3, 3.0), min_size=3, max_size=3))
def test_signed_distance_is_half_a_voxel_off_the_euclidean_distances(b, sp):
    from scipy import ndimage as ndi

    from noisyseg.evaluate import signed_distance

    if not b.any() or b.all():
        return
    d = signed_distance(b, spacing=sp)
    assert d.dtype == np.float32 and d.shape == b.shape
    np.testing.assert_array_equal(d < 0, b)
    half = 0.5 * min(sp)
    np.testing.assert_allclose(d[~b], ndi.distance_transform_edt(~b, sampling=sp)[~b] - half,
                               rtol=1e-6)
    np.testing.assert_allclose(d[b], half - ndi.distance_transform_edt(b, sampling=sp)[b],
                               rtol=1e-6)


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 6)])
@pytest.mark.parametrize("precise", [True, False])
def test_signed_distance_without_a_boundary_is_far_everywhere(shape, precise):
    """An empty region lies far outside every voxel, a full one far inside (the array's
    edge is no boundary)."""
    from noisyseg.evaluate import signed_distance

    np.testing.assert_array_equal(signed_distance(np.zeros(shape, bool), precise=precise), 1e9)
    np.testing.assert_array_equal(signed_distance(np.ones(shape, bool), precise=precise), -1e9)
    np.testing.assert_array_equal(signed_distance(np.ones(shape, bool), spacing=2.0), -1e9)


@given(_binaries())
def test_signed_distance_chamfer_keeps_the_sign_and_stays_close(b):
    from noisyseg.evaluate import signed_distance

    if not b.any() or b.all():
        return
    exact, approx = signed_distance(b), signed_distance(b, precise=False)
    assert approx.dtype == np.float32
    np.testing.assert_array_equal(approx < 0, b)
    near = np.abs(exact) <= 3
    np.testing.assert_allclose(approx[near], exact[near], atol=0.04)
    # beyond, the distances (0.5 px more than the signed distance's size) within 2%
    np.testing.assert_allclose(np.abs(approx[~near]) + 0.5, np.abs(exact[~near]) + 0.5, rtol=0.02)


def test_signed_distance_chamfer_applies_to_2d_maps_in_pixels_only():
    from noisyseg.evaluate import signed_distance

    b = np.zeros((40, 40), bool)
    b[5:35, 5:35] = True
    assert not np.array_equal(signed_distance(b, precise=False), signed_distance(b))
    np.testing.assert_array_equal(signed_distance(b, spacing=(1.0, 1.0), precise=False),
                                  signed_distance(b, spacing=(1.0, 1.0)))
    np.testing.assert_array_equal(signed_distance(b[None], precise=False), signed_distance(b[None]))
    with pytest.raises(ConfigError, match="^spacing: expected one positive"):
        signed_distance(b, spacing=(1.0, -1.0))
