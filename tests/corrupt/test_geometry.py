"""The shared geometry against direct (slow, obviously correct) computations."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from noisyseg.corrupt._geometry import (
    bbox,
    compose,
    distance_inside,
    nearest_fill,
    signed_distance,
    signed_distance_near,
)
from noisyseg.corrupt.models import _distance_from, merge, omit


@st.composite
def binaries(draw, min_side=1):
    h = draw(st.integers(min_side, 30))
    w = draw(st.integers(min_side, 30))
    p = draw(st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]))
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).random((h, w)) < p


@given(binaries(), st.integers(0, 4))
def test_bbox_matches_numpy(b, margin):
    rows, cols = np.flatnonzero(b.any(axis=1)), np.flatnonzero(b.any(axis=0))
    if rows.size == 0:
        assert bbox(b, margin) is None
        return
    h, w = b.shape
    assert bbox(b, margin) == (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
                               slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))


@given(binaries())
def test_distance_inside_is_exact_euclidean(b):
    if b.all():
        return
    np.testing.assert_allclose(distance_inside(b), ndimage.distance_transform_edt(b), atol=1e-4)


@given(binaries())
def test_signed_distance_near_is_exact_next_to_the_boundary_and_clipped_beyond(b):
    exact, near = signed_distance(b), signed_distance_near(b)
    assert near.dtype == np.float32 and near.shape == b.shape
    close = np.abs(exact) <= np.sqrt(2.0) - 0.5 + 1e-4
    np.testing.assert_allclose(near[close], exact[close], atol=1e-4)
    np.testing.assert_array_equal(near[~close], np.where(b[~close], -1.5, 1.5))


@given(binaries(min_side=2), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_signed_distance_near_interpolates_to_the_exact_sign(b, dy, dx):
    """Sub-pixel warps (what ``shift`` does) give the same region as the exact distances."""
    import cv2

    aff = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (b.shape[1], b.shape[0])
    exact = np.clip(signed_distance(b), -100, 100)
    warp = [cv2.warpAffine(d, aff, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) < 0
            for d in (exact, signed_distance_near(b))]
    np.testing.assert_array_equal(warp[0], warp[1])


@given(binaries(min_side=2))
@settings(max_examples=60)
def test_nearest_fill_gives_the_label_of_a_nearest_free_pixel(b):
    """OpenCV numbers free pixels in raster order; the lookup relies on it."""
    h, w = b.shape
    labels = np.random.default_rng(h * 31 + w).integers(1, 5, size=(h, w)).astype(np.uint8)
    blocked, todo = b, b.copy()
    if blocked.all() or not todo.any():
        return
    got = nearest_fill(labels, todo, blocked)
    fy, fx = np.nonzero(~blocked)
    for (y, x), lab in zip(np.argwhere(todo), got, strict=True):
        d = np.hypot(fy - y, fx - x)
        # OpenCV's 5x5 chamfer may pick a pixel up to ~2% farther than the nearest
        assert d[labels[fy, fx] == lab].min() <= d.min() * 1.03 + 1e-9


def _two_structures(seed):
    rng = np.random.default_rng(seed)
    m = np.zeros((48, 48), np.uint8)
    for c in (1, 2, 3):
        y, x = rng.integers(4, 44, 2)
        a, b = rng.integers(2, 12, 2)
        m[max(y - a, 0):y + a, max(x - b, 0):x + b] = c
    return m


@given(st.integers(0, 10_000), st.integers(0, 2))
def test_compose_in_a_box_equals_compose_of_the_whole_image(seed, grow):
    m = _two_structures(seed)
    c = int(np.random.default_rng(seed).integers(1, 4))
    if not (m == c).any():
        return
    region = ndimage.binary_erosion(m == c, iterations=grow + 1)
    box = bbox(m == c, 8)
    whole = compose(m, {c: region}, reach=grow + 2)
    boxed = compose(m, {c: region[box]}, reach=grow + 2, box=box)
    np.testing.assert_array_equal(boxed, whole)


@given(st.integers(0, 10_000))
def test_cropped_distances_equal_whole_image_distances(seed):
    m = _two_structures(seed)
    for src_label in (1, 2, 3):
        src = m == src_label
        if not src.any():
            continue
        for binary in (src, m != 0, m != (src_label % 3 + 1)):
            if binary[src].all() and not (~binary).any():
                continue
            np.testing.assert_allclose(_distance_from(binary, src), distance_inside(binary)[src],
                                       rtol=1e-6)
        for s in (0.23, 0.61):  # against the definition (scipy); strengths avoid exact ties
            got = omit(m, s, rng=np.random.default_rng(0), source=src_label)
            d = ndimage.distance_transform_edt(m != 0)
            want = m.copy()
            want[src & (d <= s * d[src].max())] = 0
            np.testing.assert_array_equal(got, want)
            tgt = src_label % 3 + 1
            if (m == tgt).any():
                got = merge(m, s, rng=np.random.default_rng(0), source=src_label, target=tgt)
                d = ndimage.distance_transform_edt(m != tgt)
                want = m.copy()
                want[src & (d <= s * d[src].max())] = tgt
                np.testing.assert_array_equal(got, want)


@given(binaries(min_side=3), st.floats(0.1, 7.9))
def test_disk_kernels_give_exactly_the_euclidean_dilation_and_erosion(b, radius):
    from noisyseg.corrupt import models

    m = b.astype(np.uint8)
    if not m.any():
        return
    for sign in (1, -1):
        fast = models._grow(m, sign * radius, None)
        try:
            models._DISK_MAX = -1.0  # force the distance-transform path
            slow = models._grow(m, sign * radius, None)
        finally:
            models._DISK_MAX = 8.0
        np.testing.assert_array_equal(fast, slow)
