"""The shared geometry against direct (slow, obviously correct) computations."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from noisyseg.corrupt import _geometry
from noisyseg.corrupt._geometry import (
    _distance_from,
    bbox,
    compose,
    distance_inside,
    nearest_fill,
    signed_distance_near,
)
from noisyseg.corrupt.models import merge, omit
from noisyseg.evaluate import signed_distance


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
            np.testing.assert_allclose(_distance_from(binary, src, bbox(src)),
                                       distance_inside(binary)[src], rtol=1e-6)
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
    m = b.astype(np.uint8)
    if not m.any():
        return
    for sign in (1, -1):
        fast = _geometry.grow(m, sign * radius)
        try:
            _geometry._DISK_MAX = -1.0  # force the distance-transform path
            slow = _geometry.grow(m, sign * radius)
        finally:
            _geometry._DISK_MAX = 8.0
        np.testing.assert_array_equal(fast, slow)


# ------------------------------------------------------------------ n-D helpers
@st.composite
def volumes(draw, max_classes=3):
    """(D, H, W) label maps: random boxes of 1..max_classes labels."""
    shape = (draw(st.integers(1, 6)), draw(st.integers(3, 20)), draw(st.integers(3, 20)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    m = np.zeros(shape, np.uint8)
    for _ in range(draw(st.integers(0, 4))):
        lo = [int(rng.integers(0, n)) for n in shape]
        hi = [a + int(rng.integers(1, n + 1)) for a, n in zip(lo, shape, strict=True)]
        m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = rng.integers(1, max_classes + 1)
    return m


@given(volumes(), st.lists(st.integers(0, 3), min_size=3, max_size=3))
def test_nd_bbox_and_class_boxes_match_numpy(m, margin):
    from noisyseg.corrupt._geometry import class_boxes

    def direct(b, pad):
        idx = np.argwhere(b)
        if idx.size == 0:
            return None
        return tuple(slice(max(int(lo) - p, 0), min(int(hi) + 1 + p, n))
                     for lo, hi, p, n in zip(idx.min(0), idx.max(0), pad, b.shape, strict=True))

    assert bbox(m, margin) == direct(m, margin)
    assert bbox(m, 2) == direct(m, (2, 2, 2))
    assert bbox(m[0], margin[1:]) == direct(m[0], margin[1:])  # the 2-D (OpenCV) path
    boxes = class_boxes(m, None)
    assert list(boxes) == sorted(int(c) for c in np.unique(m) if c)
    for c, box in boxes.items():
        assert box == direct(m == c, (0, 0, 0))
    assert list(class_boxes(m, [2, 9])) == ([2] if (m == 2).any() else [])


@given(volumes(), st.integers(1, 3), st.integers(1, 3))
def test_neighbour_is_the_label_most_often_next_to_the_source(m, source, connectivity):
    from noisyseg.corrupt._geometry import neighbour

    structure = ndimage.generate_binary_structure(3, connectivity)
    src = m == source
    ring = ndimage.binary_dilation(src, structure) & ~src
    counts = np.bincount(m[ring], minlength=4)
    counts[0] = 0
    got = neighbour(m, source, connectivity=connectivity)
    if not counts.any():
        assert got == 0
    else:
        assert counts[got] == counts.max() and got == int(np.argmax(counts))
    if connectivity <= 2:  # the 2-D (OpenCV) path counts the same as the n-D one
        for k in range(m.shape[0]):
            assert neighbour(m[k], source, connectivity=connectivity) == \
                neighbour(m[k:k + 1], source, connectivity=connectivity)


def test_neighbour_connectivity_decides_whether_corners_touch():
    from noisyseg.corrupt._geometry import neighbour

    m = np.zeros((6, 6), np.uint8)
    m[1:3, 1:3] = 1
    m[3:5, 3:5] = 2  # touches 1 at a corner only
    assert neighbour(m, 1, connectivity=1) == 0
    assert neighbour(m, 1, connectivity=2) == 2


@given(volumes(), st.integers(1, 3), st.integers(0, 3), st.sampled_from([0.23, 0.61, 1.0]),
       st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=3, max_size=3), st.booleans())
@settings(max_examples=60)
def test_relabel_by_depth_follows_its_definition(m, source, target, strength, sp, local):
    """Against the definition on the whole array (scipy; voxel sizes whose distances are
    exact in floating point, so equal distances tie exactly). ``local`` looks for the target
    only in the source's box grown by one element (the joint box for a foreground target
    present: it holds every target element) and relabels all of the source without one."""
    from noisyseg.corrupt._geometry import relabel_by_depth

    got = relabel_by_depth(m, strength, source, target, spacing=sp, local=local)
    src, tgt = m == source, m == target
    want = m.copy()
    if src.any():
        box = bbox(src, 1) if local and not (target != 0 and tgt.any()) else bbox(m >= 0)
        if strength >= 1 or (local and not tgt[box].any()):
            want[src] = target
        else:
            free = ~tgt[box] if tgt.any() else src[box]  # no target: depth from own boundary
            d = np.zeros(m.shape)
            d[box] = ndimage.distance_transform_edt(free, sampling=sp)
            want[src & (d <= strength * d[src].max())] = target
    np.testing.assert_array_equal(got, want)


@given(binaries(min_side=3), st.integers(1, 60), st.booleans())
@settings(max_examples=60)
def test_grow_in_pixels_equals_the_signed_distance_definition(b, k, out):
    """The 2-D fast paths (disk kernels, OpenCV distances) give ``signed_distance < d``;
    distances k / 8 + 0.01 never tie with a lattice distance."""
    m = b.astype(np.uint8)
    if not m.any():
        return
    d = (k / 8 + 0.01) * (1 if out else -1)
    np.testing.assert_array_equal(_geometry.grow(m, d), _geometry.grow(m, d, spacing=(1.0, 1.0)))
    if out:  # one structure on background: nothing to compose
        np.testing.assert_array_equal(_geometry.grow(m, d) == 1, signed_distance(b) < d)


@given(binaries(min_side=3), st.floats(0.3, 5.0),
       st.lists(st.sampled_from([0.5, 0.8, 1.0, 2.5]), min_size=2, max_size=2))
def test_grow_by_a_ball_in_2d_uses_the_euclidean_disk_in_mm(b, radius, sp):
    m = b.astype(np.uint8)
    if not m.any():
        return
    grown = _geometry.grow(m, radius, spacing=sp, ball=True)
    np.testing.assert_array_equal(grown == 1,
                                  ndimage.distance_transform_edt(m == 0, sampling=sp) <= radius + 1e-9)
    shrunk = _geometry.grow(m, -radius, spacing=sp, ball=True)
    if b.all():  # no boundary inside the array: nothing to erode
        np.testing.assert_array_equal(shrunk, m)
    else:
        np.testing.assert_array_equal(
            shrunk == 1, ndimage.distance_transform_edt(m == 1, sampling=sp) > radius + 1e-9)
