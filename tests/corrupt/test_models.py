"""Contract tests over every registered error model, plus hand-checked behaviour per model."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from noisyseg.corrupt import (
    ERROR_MODELS,
    choppy,
    dilate,
    erode,
    get_model,
    merge,
    natural,
    omit,
    random_flip,
    shift,
)
from noisyseg.errors import ConfigError
from noisyseg.evaluate import dice

from ..conftest import square_mask

ALL = sorted(ERROR_MODELS)


def _strength(name, frac):
    """A strength at ``frac`` of a sensible range for a 24..40 pixel mask."""
    top = {"random_flip": 1.0, "merge": 1.0, "omit": 1.0}.get(name, 6.0)
    return frac * top


@st.composite
def masks(draw):
    """Masks with 1-3 foreground classes: blobs, holes, border-touching, single pixels."""
    h = draw(st.integers(8, 40))
    w = draw(st.integers(8, 40))
    k = draw(st.integers(1, 3))
    m = np.zeros((h, w), np.uint8)
    kind = draw(st.sampled_from(["empty", "full", "pixel", "blobs", "ring", "border"]))
    if kind == "full":
        m[:] = draw(st.integers(1, k))
    elif kind == "pixel":
        m[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = draw(st.integers(1, k))
    elif kind in ("blobs", "border"):
        for _ in range(draw(st.integers(1, 4))):
            y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            y1, x1 = y0 + draw(st.integers(1, h)), x0 + draw(st.integers(1, w))
            if kind == "border":
                y0 = 0
            m[y0:y1, x0:x1] = draw(st.integers(1, k))
    elif kind == "ring":
        m[2:-2, 2:-2] = 1
        m[4:-4, 4:-4] = 0 if k == 1 else 2
    return m


@pytest.mark.parametrize("name", ALL)
@given(mask=masks(), frac=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_contract(name, mask, frac, seed):
    """Never crashes; shape, dtype and label set kept; input untouched; 0 is identity."""
    model = get_model(name)
    before = mask.copy()
    s = _strength(name, frac)
    out = model(mask, s, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(mask, before)
    assert out.shape == mask.shape and out.dtype == mask.dtype
    assert set(np.unique(out)) <= set(np.unique(mask)) | {0}
    zero = model(mask, 0.0, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(zero, mask)


@pytest.mark.parametrize("name", ALL)
def test_dice_falls_as_strength_grows(name, echo_small):
    """With common random numbers, mean Dice is non-increasing over a strength ladder."""
    ms = echo_small.masks[:8]
    top = ERROR_MODELS[name].max_strength(ms.shape[1:])
    ladder = [0.0] + [top * f for f in (0.05, 0.15, 0.4)]
    means = []
    for s in ladder:
        out = np.stack([get_model(name)(m, s, rng=np.random.default_rng(i))
                        for i, m in enumerate(ms)])
        means.append(float(np.mean(dice(out, ms, 4))))
    assert means[0] == 1.0
    assert all(b <= a + 0.02 for a, b in zip(means, means[1:], strict=False)), means
    assert means[-1] < 0.95, means


def test_dilate_erode_by_hand():
    m = square_mask(20, 5, 15)  # 10x10 square
    d = dilate(m, 1, rng=np.random.default_rng(0))
    # boundary half-way between pixels moves out by 1: pixels whose centre lies within
    # 1.5 of a square pixel centre join: the 4 sides (40) and the 4 diagonal corners (1.41)
    assert int(d.sum()) == 100 + 40 + 4
    assert int(dilate(m, 0.4, rng=np.random.default_rng(0)).sum()) == 100  # < 1 px: nothing
    e = erode(m, 1, rng=np.random.default_rng(0))
    assert int(e.sum()) == 64  # 8x8 left


def test_erode_gives_pixels_to_the_neighbour_not_background():
    m = np.zeros((30, 30), np.uint8)
    m[5:25, 5:25] = 2  # myocardium
    m[10:20, 10:20] = 1  # cavity inside
    e = erode(m, 2, rng=np.random.default_rng(0), classes=(1,))
    assert int((e == 1).sum()) == 36
    assert int((e == 0).sum()) == int((m == 0).sum())  # no gap of background opened
    assert int((e == 2).sum()) == int((m == 2).sum()) + 64


def test_random_flip_keeps_expected_foreground_fraction():
    m = square_mask(200, 50, 150)
    outs = [random_flip(m, 0.3, rng=np.random.default_rng(i)) for i in range(5)]
    frac = np.mean([o.mean() for o in outs])
    assert abs(frac - m.mean()) < 0.01
    # 30% of the foreground flipped away
    assert abs(np.mean([(o[m == 1] == 0).mean() for o in outs]) - 0.3) < 0.01


def test_choppy_moves_run_ends_only_along_rows():
    m = square_mask(40, 10, 30)
    out = choppy(m, 3, rng=np.random.default_rng(0))
    rows_before = np.flatnonzero(m.any(axis=1))
    rows_after = np.flatnonzero(out.any(axis=1))
    assert set(rows_after) <= set(rows_before)  # runs never leave their row
    assert not np.array_equal(out, m)


def test_shift_moves_by_strength_pixels_in_the_given_direction():
    m = square_mask(40, 10, 20)
    out = shift(m, 5, rng=np.random.default_rng(0), angle=0)  # right
    np.testing.assert_array_equal(out[:, 5:], m[:, :-5])
    up = shift(m, 3, rng=np.random.default_rng(0), angle=90)
    np.testing.assert_array_equal(up[:-3], m[3:])


def test_merge_and_omit():
    m = np.zeros((20, 20), np.uint8)
    m[2:10, 2:18] = 1
    m[10:18, 2:18] = 3
    full = merge(m, 1.0, rng=np.random.default_rng(0))
    assert set(np.unique(full)) == {0, 1} and int((full == 1).sum()) == int((m > 0).sum())
    half = merge(m, 0.5, rng=np.random.default_rng(0))
    assert 0 < int((half == 3).sum()) < int((m == 3).sum())
    # the boundary moved into the atrium: remaining atrium rows are the far ones
    assert np.flatnonzero((half == 3).any(axis=1)).min() > 10
    gone = omit(m, 1.0, rng=np.random.default_rng(0), source=1)
    assert not (gone == 1).any() and int((gone == 3).sum()) == int((m == 3).sum())


def test_natural_is_reproducible_and_smooth():
    m = np.zeros((64, 64), np.uint8)
    yy, xx = np.mgrid[:64, :64]
    m[(yy - 32) ** 2 + (xx - 32) ** 2 < 15**2] = 1
    a = natural(m, 2.0, rng=np.random.default_rng(7))
    b = natural(m, 2.0, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert 0.8 < dice(a, m) < 1.0
    # smooth offsets keep one connected blob
    from scipy import ndimage as ndi

    assert ndi.label(a)[1] == 1


def test_natural_radial_moves_contour_points_along_rays_from_the_centre():
    yy, xx = np.mgrid[:48, :48]
    disc = (((yy - 24) ** 2 + (xx - 24) ** 2) <= 10 ** 2).astype(np.uint8)
    # no offset: the refilled contour is the mask itself (sub-pixel polygon of pixel centres)
    np.testing.assert_array_equal(natural(disc, 0.0, rng=np.random.default_rng(0), form="radial"),
                                  disc)
    # a ring (a hole) keeps its hole
    ring = disc.copy()
    ring[((yy - 24) ** 2 + (xx - 24) ** 2) <= 4 ** 2] = 0
    out = natural(ring, 0.0, rng=np.random.default_rng(0), form="radial")
    np.testing.assert_array_equal(out, ring)
    a = natural(disc, 2.0, rng=np.random.default_rng(3), form="radial")
    np.testing.assert_array_equal(a, natural(disc, 2.0, rng=np.random.default_rng(3), form="radial"))
    assert 0.75 < dice(a, disc) < 1.0
    # on a disc, the ray from the centre is the normal: the radius along each ray is
    # 10 px minus the curve there, so it stays within 10 +- (the largest offset) px
    r = np.hypot(yy - 24, xx - 24)[a.astype(bool)]
    assert r.max() < 10 + 2.0 * 4
    # both forms make structures larger on average (area grows with the radius squared)
    small = (((yy[:21, :21] - 10) ** 2 + (xx[:21, :21] - 10) ** 2) <= 4 ** 2).astype(np.uint8)
    assert small.sum() == 49
    for form in ("normal", "radial"):
        mean_area = np.mean([natural(small, 2.4, rng=np.random.default_rng(k), form=form).sum()
                             for k in range(60)])
        assert mean_area > 1.15 * 49, form
    with pytest.raises(ConfigError, match="^natural: form must be 'normal' or 'radial'"):
        natural(disc, 1.0, rng=np.random.default_rng(0), form="polar")


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_strength_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="strength"):
        natural(square_mask(), bad, rng=np.random.default_rng(0))


def test_unknown_option_and_model():
    with pytest.raises(ConfigError, match="unknown option"):
        get_model("natural")(square_mask(), 1.0, rng=np.random.default_rng(0), wiggle=3)
    with pytest.raises(ConfigError, match="unknown error model 'nope'"):
        get_model("nope")


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="Generator"):
        natural(square_mask(), 1.0, rng=np.random.RandomState(0))
