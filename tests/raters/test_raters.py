"""Rater statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from noisyseg.errors import ConfigError
from noisyseg.evaluate.raters import (
    STATISTICS,
    boundary,
    correlation_length,
    distribution_distance,
    leave_one_out_consensus,
    offset_correlation_lengths,
    offset_summary,
    rater_statistics,
    slice_jumps,
    slice_offsets,
    surface_offsets,
    variance_components,
    volume_ratio,
)


def ball(shape, centre, radius, spacing):
    grid = np.indices(shape).astype(float)
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True)) <= radius ** 2


def slab(shape, ends):
    """(Z, Y, X): on slice k, columns < ends[k] (every row)."""
    m = np.zeros(shape, bool)
    for k, e in enumerate(ends):
        m[k, :, :e] = True
    return m


# ---- consensus, Dice, volume ----

def test_leave_one_out_consensus():
    m = np.zeros((4, 6), bool)
    m[0, :2] = m[1, :3] = m[2, :4] = m[3, :5] = True
    # leaving rater 3 out: >= 50% of three is two of them
    assert leave_one_out_consensus(m, 3).tolist() == [True] * 3 + [False] * 3
    assert leave_one_out_consensus(m, -1).tolist() == leave_one_out_consensus(m, 3).tolist()
    assert leave_one_out_consensus(m, 0, level=1.0).sum() == 3
    for bad in ({"i": 4}, {"i": 0, "level": 0.0}):
        with pytest.raises(ConfigError):
            leave_one_out_consensus(m, **bad)
    with pytest.raises(ConfigError, match="R >= 2"):
        leave_one_out_consensus(m[:1], 0)


def test_dice_and_volume_ratio_by_formula():
    masks = np.zeros((3, 10, 10), bool)
    masks[0, 0:4, 0:4] = True        # 16
    masks[1, 0:4, 0:4] = True
    masks[2, 2:6, 0:4] = True        # 16, 8 shared with the others
    rows = rater_statistics(masks, (1.0, 1.0))
    # rater 2 against the union of 0 and 1 (= their square): 2 * 8 / (16 + 16)
    assert rows[2]["dice"] == pytest.approx(0.5)
    # rater 0 against >= 50% of {1, 2}: their union, 24 pixels; overlap 16
    assert rows[0]["dice"] == pytest.approx(2 * 16 / (16 + 24))
    assert rows[0]["volume_ratio"] == pytest.approx(16 / 24)
    assert math.isnan(volume_ratio(masks[0], np.zeros((10, 10), bool)))


# ---- surface offsets ----

def test_slab_one_voxel_larger_measures_one_voxel():
    sp = (2.5, 0.7, 0.5)
    ref, big = slab((4, 6, 20), [10] * 4), slab((4, 6, 20), [11] * 4)
    off = surface_offsets(big, ref, spacing=sp)
    assert off.size == 4 * 6 and np.all(off == 0.5)
    s = offset_summary(off)
    assert s["offset_mean"] == 0.5 and s["offset_sd"] == 0.0
    assert np.all(surface_offsets(ref, big, spacing=sp) == -0.5)


def test_one_slice_too_many_measures_the_slice_spacing():
    ref = np.zeros((8, 5, 5), bool)
    ref[2:6] = True
    more = np.zeros_like(ref)
    more[2:7] = True
    off = surface_offsets(more, ref, spacing=(2.5, 0.7, 0.7))
    # boundary: the bottom cap (on the reference's) and the top cap, one slice above it
    assert sorted(set(off.tolist())) == [0.0, 2.5]
    assert (off == 2.5).sum() == (off == 0.0).sum() == 25


def test_sphere_one_voxel_larger():
    sp = (0.5, 0.5, 0.5)
    ref = ball((40, 40, 40), (20, 20, 20), 6.0, sp)
    big = ball((40, 40, 40), (20, 20, 20), 6.5, sp)
    s = offset_summary(surface_offsets(big, ref, spacing=sp))
    # one voxel (0.5 mm) out everywhere: exactly on faces, sqrt(2) voxels across staircase steps
    assert s["offset_q50"] == 0.5 and s["offset_q05"] == 0.5
    assert s["offset_mean"] == pytest.approx(0.5, rel=0.15)
    assert s["offset_sd"] < 0.2 * 0.5 * 2


def test_shifted_disc_is_symmetric_about_zero():
    disc = ball((60, 60), (30, 30), 10.0, (1, 1))
    shifted = np.roll(disc, 3, axis=1)
    s = offset_summary(surface_offsets(shifted, disc, spacing=(0.8, 0.8)))
    assert s["offset_q50"] == 0.0
    assert s["offset_q05"] == pytest.approx(-s["offset_q95"]) and s["offset_q95"] == pytest.approx(3 * 0.8)
    assert abs(s["offset_mean"]) < 0.1 * 3 * 0.8


def test_empty_masks_give_no_offsets():
    z = np.zeros((5, 5), bool)
    m = z.copy()
    m[1:3, 1:3] = True
    assert surface_offsets(m, z).size == 0 and surface_offsets(z, m).size == 0
    assert math.isnan(offset_summary(surface_offsets(m, z))["offset_mean"])
    with pytest.raises(ConfigError, match="one shape"):
        surface_offsets(m, z[:4])
    with pytest.raises(ConfigError, match="spacing"):
        surface_offsets(m, m, spacing=(1.0, -1.0))


def test_boundary_axes():
    m = np.zeros((3, 5, 5), bool)
    m[:, 1:4, 1:4] = True
    assert boundary(m).sum() == 3 * 8  # the array's edge (slices 0 and 2) is not a boundary
    m[0] = False
    assert boundary(m).sum() == 9 + 8  # the lower slice's face is now a boundary
    assert boundary(m, axes=(1, 2)).sum() == 2 * 8


# ---- correlation length ----

def test_correlation_length_constant_smooth_and_iid():
    s = np.arange(300.0)
    assert correlation_length(s, np.full(300, 2.0), bin_width=1.0) == 299.0  # censored
    smooth = correlation_length(s, np.sin(s / 15.0), bin_width=1.0)
    iid = correlation_length(s, np.random.default_rng(0).normal(size=300), bin_width=1.0)
    assert smooth > 10.0 and iid < 1.0
    assert math.isnan(correlation_length(s[:1], s[:1], bin_width=1.0))
    # groups: only pairs within a group; two points per group, 1 mm apart, opposite values
    g = np.repeat(np.arange(150), 2)
    assert correlation_length(s, np.resize([1.0, -1.0], 300), bin_width=1.0, groups=g) < 1.0
    with pytest.raises(ConfigError, match="bin_width"):
        correlation_length(s, s, bin_width=0.0)


def test_offset_correlation_length_of_masks():
    rng = np.random.default_rng(1)
    h = 60
    ref = np.zeros((h, 50), bool)
    ref[:, :20] = True
    rigid, iid, smooth = (np.zeros_like(ref) for _ in range(3))
    e_iid = rng.integers(-3, 4, h)
    e_smooth = np.round(3 * np.sin(2 * np.pi * np.arange(h) / h)).astype(int)
    for y in range(h):
        rigid[y, :22] = True
        iid[y, :20 + e_iid[y]] = True
        smooth[y, :20 + e_smooth[y]] = True
    assert offset_correlation_lengths(rigid, ref)[0] == h - 1  # a constant offset: the extent
    short = offset_correlation_lengths(iid, ref)[0]
    long = offset_correlation_lengths(smooth, ref)[0]
    assert short < 4.0 < 8.0 < long
    assert math.isnan(offset_correlation_lengths(iid, ref)[1])  # no slices in 2-D


def test_across_slices_correlation():
    rng = np.random.default_rng(2)
    n = 40
    ref = slab((n, 4, 30), [12] * n)
    choppy = slab((n, 4, 30), 12 + rng.integers(-2, 3, n))
    drift = slab((n, 4, 30), 12 + np.round(2 * np.sin(np.arange(n) / 8.0)).astype(int))
    sp = (2.0, 1.0, 1.0)
    assert offset_correlation_lengths(choppy, ref, spacing=sp)[1] < 2.0
    assert offset_correlation_lengths(drift, ref, spacing=sp)[1] > 6.0
    # the slices' offsets are constant in-plane: censored at the slice's extent (3 rows)
    assert offset_correlation_lengths(choppy, ref, spacing=sp)[0] == 3.0


# ---- per-slice offsets and slice jumps ----

def test_slice_offsets_and_jumps_by_hand():
    d = np.array([0, 2, -1, -1, 3])
    ref, rater = slab((5, 4, 20), [10] * 5), slab((5, 4, 20), 10 + d)
    sp = (2.5, 0.8, 0.5)
    pts, off = slice_offsets(rater, ref, spacing=sp)
    per_slice = [off[pts[:, 0] == k] for k in range(5)]
    assert [set(v.tolist()) for v in per_slice] == [{x * 0.5} for x in d]
    j = slice_jumps(rater, ref, spacing=sp)
    assert j["slice_jump_offset_mm"] == pytest.approx(np.abs(np.diff(d)).mean() * 0.5)
    area = 4 * 0.8 * 0.5
    r = np.sqrt((10 + d) * area / np.pi) - np.sqrt(10 * area / np.pi)
    assert j["slice_jump_radius_mm"] == pytest.approx(np.abs(np.diff(r)).mean())
    assert j["slice_pairs"] == 4


def test_extruded_shape_has_no_slice_jumps():
    disc, big = ball((30, 30), (15, 15), 6.0, (1, 1)), ball((30, 30), (15, 15), 8.0, (1, 1))
    ref, rater = np.zeros((10, 30, 30), bool), np.zeros((10, 30, 30), bool)
    ref[2:8], rater[2:8] = disc, big  # the same outline on every slice, capped at both ends
    j = slice_jumps(rater, ref, spacing=(2.5, 0.7, 0.7))
    assert j["slice_jump_offset_mm"] == 0.0 and j["slice_jump_radius_mm"] == 0.0
    assert j["slice_pairs"] == 5
    with pytest.raises(ConfigError, match="3-D"):
        slice_jumps(disc, big)


# ---- systematic against random ----

def test_variance_components_by_hand():
    rows = [{"reader_id": "A", "case_id": f"c{i}", "offset_mean": x} for i, x in enumerate((1.0, 2.0, 3.0))]
    rows += [{"reader_id": "B", "case_id": f"c{i}", "offset_mean": -1.0} for i in range(3)]
    rows += [{"reader_id": "B", "case_id": "c3", "offset_mean": math.nan}]  # left out
    vc = variance_components(rows)
    # MSB = 3 * (1.5^2 + 1.5^2) = 13.5, MSW = (2 + 0) / 4 = 0.5, n0 = 3
    assert vc.between == pytest.approx((13.5 - 0.5) / 3) and vc.within == pytest.approx(0.5)
    assert vc.systematic_fraction == pytest.approx((13 / 3) / (13 / 3 + 0.5))
    assert (vc.n, vc.n_groups, vc.grand_mean) == (6, 2, 0.5)
    a, b = vc.per_group
    assert (a["group"], a["n"], a["mean"], a["sd"]) == ("A", 3, 2.0, 1.0)
    assert a["systematic_share"] == pytest.approx(4 / (14 / 3)) and b["systematic_share"] == 1.0
    # the same table as columns (a DataFrame)
    pd = pytest.importorskip("pandas")
    vc2 = variance_components(pd.DataFrame(rows))
    assert vc2.between == pytest.approx(vc.between)
    # no reader effect: identical readers -> between 0
    same = [{"reader_id": r, "offset_mean": x} for r in "AB" for x in (1.0, 2.0, 3.0)]
    assert variance_components(same).between == 0.0
    with pytest.raises(ConfigError, match="no such column"):
        variance_components(rows, value="nope")


# ---- distribution distance ----

def test_distribution_distance():
    real = [{"offset_mean": x, "dice": 0.8} for x in (0.0, 1.0, 2.0)]
    sim = [{"offset_mean": x + 0.5, "dice": math.nan} for x in (0.0, 1.0, 2.0)]
    d = distribution_distance(real, sim, statistics=["offset_mean", "dice"])
    assert d["offset_mean"] == pytest.approx(0.5) and math.isnan(d["dice"])
    dn = distribution_distance(real, sim, statistics=["offset_mean"], normalise=True)
    assert dn["offset_mean"] == pytest.approx(0.5 / np.std([0.0, 1.0, 2.0]))
    with pytest.raises(ConfigError):
        distribution_distance(real, sim, statistics=["nope"])


# ---- the table of one case ----

def test_rater_statistics_rows_3d_inputs_unchanged():
    sp = (2.5, 0.7, 0.7)
    masks = np.stack([ball((8, 30, 30), (4, 15, 15), r, sp) for r in (5.0, 5.5, 6.0, 7.0)])
    before = masks.copy()
    rows = rater_statistics(masks, sp, reader_ids=["a", "b", "c", "d"], case_id="n1")
    assert np.array_equal(masks, before)
    assert [r["reader_id"] for r in rows] == ["a", "b", "c", "d"]
    assert all(set(STATISTICS) <= set(r) and r["case_id"] == "n1" and r["n_readers"] == 4 for r in rows)
    assert rows[0]["offset_mean"] < 0 < rows[3]["offset_mean"]
    assert all(math.isfinite(r[k]) for r in rows for k in STATISTICS)
    d = distribution_distance(rows, rows)
    assert all(v == 0.0 for v in d.values())
    with pytest.raises(ConfigError, match="reader_ids"):
        rater_statistics(masks, sp, reader_ids=["a"])


def test_rater_statistics_2d():
    masks = np.zeros((4, 20, 20), bool)
    masks[:, 5:15, 5:15] = True
    masks[3, 5:15, 15] = True  # one column (0.5 mm) wider
    rows = rater_statistics(masks, 0.5)
    assert rows[0]["dice"] == 1.0 and rows[3]["offset_q95"] == 0.5 and rows[3]["offset_q05"] == 0.0
    assert math.isnan(rows[0]["slice_jump_offset_mm"]) and math.isnan(rows[0]["corr_length_across_mm"])


# ---- properties ----

@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_properties(data):
    shape = data.draw(st.tuples(st.integers(2, 10), st.integers(2, 10), st.integers(2, 10)))
    a = data.draw(arrays(bool, shape))
    b = data.draw(arrays(bool, shape))
    sp = data.draw(st.tuples(*[st.floats(0.3, 3.0)] * 3))
    a0, b0 = a.copy(), b.copy()
    # a mask against itself: every offset 0
    assert np.all(surface_offsets(a, a, spacing=sp) == 0.0)
    rows = rater_statistics(np.stack([a, b]), sp)
    assert rows[0]["dice"] == pytest.approx(rows[1]["dice"])  # symmetric with two raters
    assert np.array_equal(a, a0) and np.array_equal(b, b0)
    ra, rb = volume_ratio(a, b), volume_ratio(b, a)
    if a.any() and b.any():
        assert ra * rb == pytest.approx(1.0)
    off = surface_offsets(a, b, spacing=sp)
    assert off.size in (0, int(boundary(a).sum()))
    # offsets are signed by inside/outside the reference
    if off.size:
        inside = b[boundary(a)]
        assert np.all(off[inside] <= 0) and np.all(off[~inside] > 0)
