"""Error models on volumes (noisyseg.corrupt.volumetric): the contract over every model and
mode, and hand-checked 3-D forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from noisyseg.corrupt import ERROR_MODELS, calibrate, get_model
from noisyseg.errors import ConfigError
from noisyseg.evaluate import dice

SPACING = (2.5, 0.8, 0.8)  # array order (z, y, x), mm: anisotropic as in abdominal CT
RUNS = [(name, mode) for name in sorted(ERROR_MODELS) for mode in ERROR_MODELS[name].modes]


def _volume(rng=None):
    """(12, 40, 44) labels: an ellipsoid 1 with an ellipsoid 2 touching it, off the borders."""
    rng = rng or np.random.default_rng(0)
    z, y, x = np.mgrid[:12, :40, :44].astype(float)
    cz, cy, cx = 6 + rng.uniform(-0.5, 0.5), 18 + rng.uniform(-2, 2), 20 + rng.uniform(-2, 2)
    m = np.zeros((12, 40, 44), np.uint8)
    m[((z - cz) * 2.5 / 10) ** 2 + ((y - cy) * 0.8 / 10) ** 2 + ((x - cx) * 0.8 / 12) ** 2 < 1] = 1
    m[((z - cz) * 2.5 / 6) ** 2 + ((y - cy) * 0.8 / 5) ** 2 + ((x - cx - 15) * 0.8 / 5) ** 2 < 1] = 2
    return m


def _strength(name, mode):
    return {"random_flip": 0.2, "merge": 0.5, "omit": 0.5}.get(name, 2.0)


@pytest.mark.parametrize(("name", "mode"), RUNS)
def test_contract_on_volumes(name, mode):
    """Input unchanged, zero strength is the identity, shape/dtype/label set kept, seeded."""
    m = _volume()
    before = m.copy()
    model = get_model(name)
    kw = {"spacing": SPACING} if mode == "volumetric" else {}
    out = model(m, _strength(name, mode), rng=np.random.default_rng(1), mode=mode, **kw)
    assert np.array_equal(m, before)
    assert out.shape == m.shape and out.dtype == m.dtype
    assert set(np.unique(out)) <= set(np.unique(m))
    assert not np.array_equal(out, m)
    again = model(m, _strength(name, mode), rng=np.random.default_rng(1), mode=mode, **kw)
    assert np.array_equal(out, again)
    assert np.array_equal(model(m, 0.0, rng=np.random.default_rng(1), mode=mode, **kw), m)


def test_unknown_mode_and_bad_spacing_are_named():
    m = _volume()
    with pytest.raises(ConfigError, match="mode: choppy has modes"):
        get_model("choppy")(m, 1.0, rng=np.random.default_rng(0), mode="volumetric")
    with pytest.raises(ConfigError, match="spacing: expected 3 positive"):
        get_model("dilate")(m, 1.0, rng=np.random.default_rng(0), mode="volumetric",
                            spacing=(1.0, 0.0, 1.0))


@settings(max_examples=15, deadline=None)
@given(radius=st.floats(0.5, 6.0), seed=st.integers(0, 1000))
def test_dilate_and_erode_use_the_euclidean_ball_in_mm(radius, seed):
    """One structure: dilation = voxels within ``radius`` mm of it, erosion = voxels farther
    than ``radius`` mm from the background (exact Euclidean distance, anisotropic spacing)."""
    m = (_volume(np.random.default_rng(seed)) > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    grown = get_model("dilate")(m, radius, rng=rng, mode="volumetric", spacing=SPACING)
    expect = ndi.distance_transform_edt(m == 0, sampling=SPACING) <= radius + 1e-9
    assert np.array_equal(grown == 1, expect)
    shrunk = get_model("erode")(m, radius, rng=rng, mode="volumetric", spacing=SPACING)
    expect = ndi.distance_transform_edt(m == 1, sampling=SPACING) > radius + 1e-9
    assert np.array_equal(shrunk == 1, expect)


def test_shift_by_whole_voxels_is_a_translation():
    """2.5 mm out of the plane (elevation 90) is one slice; 1.6 mm along +x is two columns."""
    m = (_volume() > 0).astype(np.uint8)
    up = get_model("shift")(m, 2.5, rng=np.random.default_rng(0), mode="volumetric",
                            spacing=SPACING, elevation=90.0)
    assert np.array_equal(up, np.roll(m, 1, axis=0))
    right = get_model("shift")(m, 1.6, rng=np.random.default_rng(0), mode="volumetric",
                               spacing=SPACING, azimuth=0.0)
    assert np.array_equal(right, np.roll(m, 2, axis=2))


def test_slicewise_draws_each_slice_with_its_own_generator():
    """Slice k is the 2-D model on slice k with the k-th seed; empty slices are untouched."""
    m = _volume()
    m[0] = 0
    out = get_model("natural")(m, 2.0, rng=np.random.default_rng(5), mode="slicewise")
    seeds = np.random.default_rng(5).integers(0, 2**63 - 1, size=m.shape[0])
    for k in range(m.shape[0]):
        if not m[k].any():
            assert np.array_equal(out[k], m[k])
            continue
        expect = get_model("natural")(m[k], 2.0, rng=np.random.default_rng(int(seeds[k])))
        assert np.array_equal(out[k], expect)
    # along another axis: the sagittal slices change independently of the axial draw
    side = get_model("choppy")(m, 2.0, rng=np.random.default_rng(5), mode="slicewise",
                               slice_axis=2)
    assert not np.array_equal(side, m)
    assert np.array_equal(side[:, :, 0], m[:, :, 0])  # no foreground in the first column


@pytest.mark.parametrize("strength", [1.0, 3.0])
def test_natural_and_boundary_move_voxels_only_near_the_surface(strength):
    """Changes lie within the displacement's clip (4 sd) of the original boundary."""
    m = _volume()
    near = ndi.distance_transform_edt(m == 0, sampling=SPACING)
    inside = ndi.distance_transform_edt(m > 0, sampling=SPACING)
    reach = np.where(m > 0, inside, near)
    for name in ("natural", "boundary"):
        out = get_model(name)(m, strength, rng=np.random.default_rng(2), mode="volumetric",
                              spacing=SPACING)
        changed = out != m
        assert changed.any()
        # a voxel 1 px beyond the clip may change where two structures compose
        assert reach[changed].max() <= 4 * strength + 2 * max(SPACING)


def test_omit_whole_structure_and_merge_into_neighbour():
    m = _volume()
    gone = get_model("omit")(m, 1.0, rng=np.random.default_rng(0), mode="volumetric",
                             spacing=SPACING, source=2)
    assert np.array_equal(gone, np.where(m == 2, 0, m))
    merged = get_model("merge")(m, 1.0, rng=np.random.default_rng(0), mode="volumetric",
                                spacing=SPACING, source=2)
    assert np.array_equal(merged, np.where(m == 2, 1, m))
    half = get_model("merge")(m, 0.5, rng=np.random.default_rng(0), mode="volumetric",
                              spacing=SPACING, source=2)
    lost = (m == 2) & (half == 1)
    # the relabelled half faces the neighbour: closer to structure 1 than what stays
    d = ndi.distance_transform_edt(m != 1, sampling=SPACING)
    assert lost.any() and d[lost].max() <= d[(m == 2) & (half == 2)].min() + 1e-9


@pytest.mark.parametrize(("name", "mode"), [("natural", "slicewise"), ("dilate", "volumetric")])
def test_calibration_reaches_a_target_volume_dice(name, mode):
    vols = [_volume(np.random.default_rng(s)) for s in range(4)]
    kw = {"spacing": SPACING} if mode == "volumetric" else {}
    cal = calibrate(name, vols, 0.85, rng=np.random.default_rng(0), tol=0.02, mode=mode, **kw)
    assert abs(cal.achieved_dice - 0.85) <= 0.02
    # the achieved Dice is the mean volume Dice of the same draws
    seeds = np.random.default_rng(0).integers(0, 2**63 - 1, size=len(vols))
    d = [dice(get_model(name)(v, cal.strength, rng=np.random.default_rng(int(s)), mode=mode,
                              **kw)[None], v[None], 3)[0] for v, s in zip(vols, seeds, strict=True)]
    assert np.mean(d) == pytest.approx(cal.achieved_dice)


def test_grow_structures_moves_boundaries_by_the_signed_distance_in_mm():
    from noisyseg.corrupt import grow_structures

    m = np.zeros((7, 7), np.uint8)
    m[3, 3] = 2
    # the pixel is the square [2.5, 3.5]^2: its neighbours' centres lie 0.5 px outside it,
    # the diagonal ones sqrt(2) - 0.5 = 0.91 px
    np.testing.assert_array_equal(grow_structures(m, 0.4), m)
    plus = grow_structures(m, 0.6)
    assert set(zip(*np.nonzero(plus), strict=True)) == {(3, 3), (2, 3), (4, 3), (3, 2), (3, 4)}
    assert (grow_structures(m, 1.0)[2:5, 2:5] == 2).all() and grow_structures(m, 1.0).sum() == 18
    # rows 1 mm apart, columns 2 mm: 1 mm reaches the rows above and below only
    tall = grow_structures(m, 1.0, spacing=(1.0, 2.0))
    assert set(zip(*np.nonzero(tall), strict=True)) == {(2, 3), (3, 3), (4, 3)}
    # shrinking gives the freed voxels the nearest other label; the array edge stays
    block = np.ones((5, 9), np.uint8)
    block[:, 4:] = 3
    thin = grow_structures(block, -1.0, classes=[3])
    assert (thin[:, :5] == 1).all() and (thin[:, 5:] == 3).all()
    # a one-slice volume behaves as the 2-D map
    np.testing.assert_array_equal(grow_structures(m[None], 1.0, spacing=(5.0, 1.0, 1.0))[0],
                                  grow_structures(m, 1.0))


def test_natural_bias_alone_is_a_growth_by_that_many_mm():
    """With a vanishing random part, natural's bias moves every surface by exactly bias mm:
    the same voxels as grow_structures by that distance (both threshold the signed distance)."""
    from noisyseg.corrupt import grow_structures

    z, y, x = np.ogrid[:12, :24, :24]
    ball = ((((z - 6) * 2.0) ** 2 + (y - 12) ** 2 + (x - 12) ** 2) <= 36).astype(np.uint8)
    sp = (2.0, 1.0, 1.0)
    for bias in (1.0, -1.5):
        out = get_model("natural")(ball, 1e-9, rng=np.random.default_rng(0), mode="volumetric",
                                   spacing=sp, bias=bias)
        np.testing.assert_array_equal(out, grow_structures(ball, bias, spacing=sp))
    # zero bias: the same draws and voxels as without the option
    a = get_model("natural")(ball, 1.0, rng=np.random.default_rng(3), mode="volumetric", spacing=sp)
    b = get_model("natural")(ball, 1.0, rng=np.random.default_rng(3), mode="volumetric", spacing=sp,
                             bias=0.0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="bias"):
        get_model("natural")(ball, 1.0, rng=np.random.default_rng(0), mode="volumetric",
                             bias=float("nan"))
