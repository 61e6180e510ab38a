"""How one rater's mask differs from the others': statistics to compare real and simulated errors.

Masks are boolean arrays of 2 or 3 spatial dimensions, volumes ``(z, y, x)`` with slices
along axis 0 (the plane a radiologist draws in), a stack of raters ``(R, *S)``; spacing is
in mm per axis (voxels when omitted). Each rater is measured against a reference, usually
the consensus of the *other* raters (:func:`leave_one_out_consensus`).

Definitions (all distances in mm):

- **Boundary** (:func:`boundary`): the voxels of a region with a face neighbour outside it;
  the array's edge is not a boundary.
- **Surface offset** (:func:`surface_offsets`): for each boundary voxel of the rater's mask,
  the distance from its centre to the nearest boundary voxel centre of the reference
  (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``), positive where the
  voxel lies outside the reference, negative inside. Both boundaries lie half a voxel inside
  their regions' true outlines, so the half voxels cancel exactly, for any spacing: a
  region drawn one voxel larger along an axis measures one voxel size along that axis, one
  slice too many measures one slice spacing, and a mask against itself measures 0
  everywhere. Summarised by :func:`offset_summary` (mean, sd, quantiles 5-95%).
- **Per-slice offsets** (:func:`slice_offsets`): the same in 2-D within each slice (the
  slice's in-plane boundary against the reference's outline on that slice), the error of
  the outline a rater draws slice by slice; slices where either outline is missing are left
  out (the extent along z is what the 3-D offsets measure).
- **Correlation length** (:func:`correlation_length`): how far along the surface an offset
  stays alike. Offsets are centred on their mean; every pair of points (within one group)
  is binned by its distance (bins of ``bin_width``); the autocorrelation of a bin is the
  mean product of the pair's centred offsets over their variance. The length is the
  distance where it first falls below ``1/e``, interpolated linearly from distance 0
  (autocorrelation 1) through the bins' mean distances. An offset field that stays
  correlated over the whole surface (a rigid offset included, whose variance is zero) gets
  the largest pair distance: the length is censored at the surface's extent. In-plane
  (:func:`offset_correlation_lengths`): the per-slice offsets, pairs within a slice, bins of
  the in-plane voxel size; across slices: the series of per-slice mean offsets against
  slice position, bins of the slice spacing.
- **Slice jumps** (:func:`slice_jumps`): what a choppy slice-by-slice contour error shows in
  a coronal or sagittal view, the mean absolute change between adjacent slices of the
  per-slice mean offset, and of the per-slice equivalent-radius difference
  ``sqrt(area / pi) - sqrt(reference area / pi)``, over slices where both masks are drawn.
- **Systematic against random** (:func:`variance_components`): per rater across cases, the
  mean offset it keeps (systematic) and the spread of its per-case mean offset (random), and
  their pooled one-way random-effects variance components.

:func:`rater_statistics` gives all of them per rater of one case as rows for a DataFrame;
:func:`distribution_distance` compares two tables of such rows (real against simulated
raters) by the Wasserstein distance of each statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from noisyseg.errors import ConfigError

__all__ = [
    "STATISTICS",
    "VarianceComponents",
    "boundary",
    "correlation_length",
    "distribution_distance",
    "leave_one_out_consensus",
    "offset_correlation_lengths",
    "offset_summary",
    "rater_statistics",
    "slice_jumps",
    "slice_offsets",
    "surface_offsets",
    "variance_components",
    "volume_ratio",
]

#: Quantiles (percent) of :func:`offset_summary`.
QUANTILES = (5, 25, 50, 75, 95)
#: The per-rater statistics of :func:`rater_statistics` that :func:`distribution_distance` compares.
STATISTICS = ("dice", "volume_ratio", "offset_mean", "offset_sd",
              *(f"offset_q{q:02d}" for q in QUANTILES),
              "corr_length_in_plane_mm", "corr_length_across_mm",
              "slice_jump_offset_mm", "slice_jump_radius_mm")
_INV_E = 1.0 / math.e


def _spacing(spacing: float | Sequence[float] | None, ndim: int) -> np.ndarray:
    sp = np.ones(ndim) if spacing is None else np.asarray(spacing, dtype=float)
    if sp.ndim == 0:
        sp = np.full(ndim, float(sp))
    if sp.shape != (ndim,) or not np.all(np.isfinite(sp)) or not np.all(sp > 0):
        raise ConfigError(f"spacing: expected one positive voxel size or one per spatial axis "
                          f"({ndim}), got {spacing!r}")
    return sp


def _pair(mask: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(mask).astype(bool), np.asarray(reference).astype(bool)
    if a.shape != b.shape:
        raise ConfigError(f"mask, reference: expected one shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ConfigError(f"mask: expected a 2-D or 3-D mask, got shape {a.shape}")
    return a, b


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ConfigError(f"axis: expected an axis of a {ndim}-D mask, got {axis}")
    return axis % ndim


def leave_one_out_consensus(masks: np.ndarray, i: int, *, level: float = 0.5) -> np.ndarray:
    """The consensus of every rater but ``i``: voxels at least ``level`` of them marked.

    Parameters
    ----------
    masks : (R, *S) bool ndarray
        ``R >= 2`` raters' masks on one grid.
    i : int
        The rater left out.
    level : float
        Share of the other raters, in (0, 1] (pylidc's ``consensus``: ``mean >= level``;
        with two others, 0.5 is their union).

    Returns
    -------
    (*S) bool ndarray

    Raises
    ------
    ConfigError
        Fewer than two raters, ``i`` out of range or ``level`` outside (0, 1].

    Examples
    --------
    >>> m = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], bool)
    >>> leave_one_out_consensus(m, 2).astype(int).tolist()
    [1, 1, 1, 0]
    >>> leave_one_out_consensus(m, 2, level=1.0).astype(int).tolist()
    [1, 1, 0, 0]
    """
    m = np.asarray(masks).astype(bool)
    if m.ndim < 2 or m.shape[0] < 2:
        raise ConfigError(f"masks: expected (R, *S) with R >= 2 raters, got shape {m.shape}")
    if not -m.shape[0] <= i < m.shape[0]:
        raise ConfigError(f"i: expected a rater 0..{m.shape[0] - 1}, got {i}")
    if not 0.0 < float(level) <= 1.0:
        raise ConfigError(f"level: expected a share of raters in (0, 1], got {level}")
    others = np.delete(m, i % m.shape[0], axis=0)
    return others.mean(axis=0) >= float(level)


def volume_ratio(mask: np.ndarray, reference: np.ndarray) -> float:
    """Volume of ``mask`` over that of ``reference`` (voxel counts; NaN for an empty reference).

    Examples
    --------
    >>> volume_ratio(np.ones((2, 3), bool), np.eye(2, 3, dtype=bool))
    3.0
    """
    a, b = np.asarray(mask).astype(bool), np.asarray(reference).astype(bool)
    if a.shape != b.shape:
        raise ConfigError(f"mask, reference: expected one shape, got {a.shape} and {b.shape}")
    nb = int(b.sum())
    return float(a.sum()) / nb if nb else math.nan


def boundary(mask: np.ndarray, *, axes: Sequence[int] | None = None) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (along ``axes``): ``(*S)`` bool.

    Parameters
    ----------
    mask : (*S) bool ndarray
    axes : sequence of int, optional
        Axes whose neighbours count (all by default; ``(1, 2)``: each slice's own 2-D
        boundary). The array's edge is not a boundary.

    Returns
    -------
    (*S) bool ndarray

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int(boundary(m).sum()), int(boundary(m, axes=[1]).sum())
    (8, 6)
    """
    from scipy import ndimage as ndi

    b = np.asarray(mask).astype(bool)
    structure = ndi.generate_binary_structure(b.ndim, 1)
    if axes is not None:
        keep = {_axis(a, b.ndim) for a in axes}
        centre = (1,) * b.ndim
        for ax in set(range(b.ndim)) - keep:
            for side in (0, 2):
                idx = list(centre)
                idx[ax] = side
                structure[tuple(idx)] = False
    return b & ~ndi.binary_erosion(b, structure=structure, border_value=1)


def _offsets_at(edge: np.ndarray, ref: np.ndarray, ref_edge: np.ndarray, sp: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    dist = ndi.distance_transform_edt(~ref_edge, sampling=sp)
    return np.where(ref[edge], -dist[edge], dist[edge]) + 0.0  # + 0.0: no -0.0


def surface_offsets(mask: np.ndarray, reference: np.ndarray, *,
                    spacing: float | Sequence[float] | None = None) -> np.ndarray:
    """Signed distance of each boundary voxel of ``mask`` to the boundary of ``reference``, mm.

    Parameters
    ----------
    mask, reference : (*S) bool ndarray
        2-D or 3-D masks of one shape.
    spacing : float or sequence of float, optional
        Voxel size in mm per axis (voxels when omitted).

    Returns
    -------
    (n,) float64 ndarray
        One value per voxel of ``boundary(mask)``, in the order of ``np.argwhere``:
        positive outside ``reference``, negative inside, 0 on its boundary. Empty when either
        mask has no boundary.

    Raises
    ------
    ConfigError
        Masks of different shapes, or a bad ``spacing``.

    Examples
    --------
    >>> ref = np.zeros((4, 8), bool); ref[:, :3] = True
    >>> big = np.zeros_like(ref); big[:, :5] = True  # drawn two columns too far right
    >>> surface_offsets(big, ref, spacing=(1.0, 0.5)).tolist()
    [1.0, 1.0, 1.0, 1.0]
    >>> surface_offsets(ref, big, spacing=(1.0, 0.5)).tolist()
    [-1.0, -1.0, -1.0, -1.0]
    """
    a, b = _pair(mask, reference)
    sp = _spacing(spacing, a.ndim)
    edge, ref_edge = boundary(a), boundary(b)
    if not edge.any() or not ref_edge.any():
        return np.zeros(0)
    # every distance needed runs between voxels of the two boundaries: their joint box suffices
    both = np.argwhere(edge | ref_edge)
    box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(both.min(0), both.max(0), strict=True))
    return _offsets_at(edge[box], b[box], ref_edge[box], sp)


def slice_offsets(mask: np.ndarray, reference: np.ndarray, *,
                  spacing: float | Sequence[float] | None = None,
                  axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice 2-D surface offsets of a 3-D ``mask`` against ``reference``, mm.

    Within each slice along ``axis``, each voxel of the slice's own outline of ``mask``
    (:func:`boundary` with the in-plane axes) is measured against the outline of
    ``reference`` on the same slice, as :func:`surface_offsets` does in 2-D. Slices where
    either has no outline are left out.

    Parameters
    ----------
    mask, reference : (Z, Y, X) bool ndarray
    spacing : float or sequence of float, optional
        Voxel size in mm per axis.
    axis : int
        The slice axis.

    Returns
    -------
    points : (n, 3) int64 ndarray
        Voxel indices of the measured outline voxels (in the order of ``np.argwhere``).
    offsets : (n,) float64 ndarray

    Raises
    ------
    ConfigError
        Masks that are not 3-D or of different shapes, a bad ``spacing`` or ``axis``.

    Examples
    --------
    >>> ref = np.zeros((3, 4, 8), bool); ref[:, :, :3] = True
    >>> big = ref.copy(); big[1, :, 3] = True  # the middle slice drawn one column too far
    >>> pts, off = slice_offsets(big, ref, spacing=(2.5, 1.0, 0.5))
    >>> pts[:, 0].tolist(), off.tolist()[:5]
    ([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [0.0, 0.0, 0.0, 0.0, 0.5])
    """
    a, b = _pair(mask, reference)
    if a.ndim != 3:
        raise ConfigError(f"mask: expected a 3-D mask for per-slice offsets, got shape {a.shape}")
    ax = _axis(axis, 3)
    sp = _spacing(spacing, 3)
    plane = [d for d in range(3) if d != ax]
    edge, ref_edge = boundary(a, axes=plane), boundary(b, axes=plane)
    pts, offs = [], []
    for k in range(a.shape[ax]):
        e, re_ = np.take(edge, k, axis=ax), np.take(ref_edge, k, axis=ax)
        if not e.any() or not re_.any():
            continue
        offs.append(_offsets_at(e, np.take(b, k, axis=ax), re_, sp[plane]))
        p2 = np.argwhere(e)
        pts.append(np.insert(p2, ax, k, axis=1))
    if not pts:
        return np.zeros((0, 3), np.int64), np.zeros(0)
    return np.concatenate(pts).astype(np.int64), np.concatenate(offs)


def offset_summary(offsets: np.ndarray) -> dict[str, float]:
    """Count, mean, sd (population) and quantiles 5, 25, 50, 75, 95 of offsets (NaN when empty).

    Examples
    --------
    >>> s = offset_summary(np.arange(101.0))
    >>> s["offset_n"], s["offset_mean"], s["offset_q05"], s["offset_q95"]
    (101.0, 50.0, 5.0, 95.0)
    """
    v = np.asarray(offsets, dtype=float).ravel()
    out = {"offset_n": float(v.size)}
    if v.size == 0:
        out |= {"offset_mean": math.nan, "offset_sd": math.nan}
        out |= {f"offset_q{q:02d}": math.nan for q in QUANTILES}
        return out
    out |= {"offset_mean": float(v.mean()), "offset_sd": float(v.std())}
    out |= {f"offset_q{q:02d}": float(x) for q, x in zip(QUANTILES, np.percentile(v, QUANTILES),
                                                        strict=True)}
    return out


def correlation_length(points: np.ndarray, values: np.ndarray, *, bin_width: float,
                       groups: np.ndarray | None = None, max_points: int = 2000) -> float:
    """Distance over which ``values`` at ``points`` stay correlated (the 1/e length), mm.

    The estimator of the module notes: an empirical autocorrelogram of the centred values
    over pair distance, in bins of ``bin_width``, and the distance where it first falls
    below ``1/e`` (linear interpolation from 1 at distance 0); censored at the largest pair
    distance where it never does (or where the values do not vary).

    Parameters
    ----------
    points : (n, d) or (n,) float ndarray
        Positions in mm.
    values : (n,) float ndarray
    bin_width : float
        Width of the distance bins, mm (e.g. the voxel size).
    groups : (n,) ndarray, optional
        Pair only points of one group (e.g. of one slice); all points form one group by
        default. The mean and variance are those of all values.
    max_points : int
        A larger group is thinned to this many points, evenly spaced in its order.

    Returns
    -------
    float
        NaN where there is no pair.

    Raises
    ------
    ConfigError
        Shapes that do not match, or a non-positive ``bin_width`` or ``max_points``.

    Examples
    --------
    >>> s = np.arange(200.0)  # points every 1 mm along a line
    >>> round(correlation_length(s, np.cos(s / 20.0), bin_width=1.0), 1)  # ideal cos(d/20): 23.9 mm
    22.3
    >>> correlation_length(s, np.ones(200), bin_width=1.0)  # a rigid offset: censored at the extent
    199.0
    >>> correlation_length(s, np.resize([1.0, -1.0], 200), bin_width=1.0) < 1.0
    True
    """
    from scipy.spatial.distance import pdist
    from scipy.stats import binned_statistic

    v = np.asarray(values, dtype=float).ravel()
    p = np.asarray(points, dtype=float)
    p = p.reshape(-1, 1) if p.ndim == 1 else p
    if p.ndim != 2 or p.shape[0] != v.size:
        raise ConfigError(f"points, values: expected (n, d) points for n values, got {p.shape} "
                          f"and {v.shape}")
    if not float(bin_width) > 0:
        raise ConfigError(f"bin_width: expected a positive distance (mm), got {bin_width}")
    if int(max_points) < 2:
        raise ConfigError(f"max_points: expected an integer >= 2, got {max_points}")
    g = np.zeros(v.size, int) if groups is None else np.asarray(groups).ravel()
    if g.shape != v.shape:
        raise ConfigError(f"groups: expected one group per value ({v.size}), got shape {g.shape}")
    u = v - v.mean() if v.size else v
    dists, prods = [], []
    for key in np.unique(g):
        idx = np.flatnonzero(g == key)
        if idx.size > max_points:
            idx = idx[np.linspace(0, idx.size - 1, int(max_points)).round().astype(int)]
        if idx.size < 2:
            continue
        dists.append(pdist(p[idx]))
        i, j = np.triu_indices(idx.size, 1)
        prods.append(u[idx[i]] * u[idx[j]])
    if not dists:
        return math.nan
    d, prod = np.concatenate(dists), np.concatenate(prods)
    extent = float(d.max())
    var = float(np.mean(u * u))
    if var <= 1e-18 * max(1.0, float(np.mean(v * v))) or extent == 0.0:
        return extent
    edges = np.arange(0.0, extent + bin_width, bin_width)
    if edges[-1] <= extent:
        edges = np.append(edges, edges[-1] + bin_width)
    rho, _, _ = binned_statistic(d, prod, "mean", bins=edges)
    centre, _, _ = binned_statistic(d, d, "mean", bins=edges)
    prev_d, prev_r = 0.0, 1.0
    for dc, r in zip(centre, rho / var, strict=True):
        if not np.isfinite(r):
            continue  # an empty bin
        if r < _INV_E:
            return float(prev_d + (prev_r - _INV_E) * (dc - prev_d) / (prev_r - r))
        prev_d, prev_r = float(dc), float(r)
    return extent


def offset_correlation_lengths(mask: np.ndarray, reference: np.ndarray, *,
                               spacing: float | Sequence[float] | None = None,
                               axis: int = 0) -> tuple[float, float]:
    """Correlation lengths of the surface offset in-plane and across slices, mm.

    Parameters
    ----------
    mask, reference : (*S) bool ndarray
        2-D or 3-D masks of one shape.
    spacing : float or sequence of float, optional
        Voxel size in mm per axis.
    axis : int
        The slice axis of 3-D masks.

    Returns
    -------
    in_plane, across_slices : float
        In-plane: :func:`correlation_length` of the per-slice offsets (:func:`slice_offsets`)
        over in-plane distance, pairs within a slice, bins of the largest in-plane voxel size
        (for 2-D masks, of :func:`surface_offsets`). Across slices: that of the per-slice
        mean offsets over slice position, bins of the slice spacing (NaN for 2-D masks).
        NaN where there is no pair.

    Examples
    --------
    >>> ref = np.zeros((6, 20, 20), bool); ref[:, :, :8] = True
    >>> big = np.zeros_like(ref); big[:, :, :10] = True  # a rigid offset of 2 columns
    >>> offset_correlation_lengths(big, ref, spacing=(2.0, 1.0, 1.0))  # censored at the extents
    (19.0, 10.0)
    """
    a, b = _pair(mask, reference)
    sp = _spacing(spacing, a.ndim)
    if a.ndim == 2:
        pts = np.argwhere(boundary(a)) * sp
        off = surface_offsets(a, b, spacing=sp)
        if off.size == 0:
            return math.nan, math.nan
        return correlation_length(pts, off, bin_width=float(sp.max())), math.nan
    ax = _axis(axis, 3)
    plane = [d for d in range(3) if d != ax]
    pts, off = slice_offsets(a, b, spacing=sp, axis=ax)
    if off.size == 0:
        return math.nan, math.nan
    in_plane = correlation_length(pts[:, plane] * sp[plane], off, bin_width=float(sp[plane].max()),
                                  groups=pts[:, ax])
    ks, inv = np.unique(pts[:, ax], return_inverse=True)
    means = np.bincount(inv, weights=off) / np.bincount(inv)
    across = correlation_length(ks * sp[ax], means, bin_width=float(sp[ax]))
    return in_plane, across


def slice_jumps(mask: np.ndarray, reference: np.ndarray, *,
                spacing: float | Sequence[float] | None = None, axis: int = 0) -> dict[str, float]:
    """How much a 3-D rater's per-slice error changes from one slice to the next, mm.

    Parameters
    ----------
    mask, reference : (Z, Y, X) bool ndarray
    spacing : float or sequence of float, optional
        Voxel size in mm per axis.
    axis : int
        The slice axis.

    Returns
    -------
    dict
        ``slice_jump_offset_mm``: mean ``|m[k+1] - m[k]|`` of the per-slice mean offsets
        ``m`` (:func:`slice_offsets`); ``slice_jump_radius_mm``: the same for the per-slice
        equivalent-radius difference ``sqrt(A/pi) - sqrt(B/pi)`` (areas in mm^2 of ``mask``
        and ``reference`` on the slice), over adjacent slices where both masks are drawn;
        ``slice_pairs``: the number of adjacent pairs of the first. NaN where there is no pair.

    Raises
    ------
    ConfigError
        Masks that are not 3-D or of different shapes, a bad ``spacing`` or ``axis``.

    Examples
    --------
    >>> ref = np.zeros((4, 10, 10), bool); ref[:, :, :4] = True
    >>> rater = ref.copy(); rater[1, :, 4:6] = True  # one slice drawn 2 columns too wide
    >>> slice_jumps(rater, ref, spacing=(2.5, 1.0, 1.0))["slice_jump_offset_mm"]  # (2 + 2 + 0) / 3
    1.3333333333333333
    """
    a, b = _pair(mask, reference)
    if a.ndim != 3:
        raise ConfigError(f"mask: expected a 3-D mask for slice jumps, got shape {a.shape}")
    ax = _axis(axis, 3)
    sp = _spacing(spacing, 3)
    plane = tuple(d for d in range(3) if d != ax)
    pixel = float(np.prod(sp[list(plane)]))
    pts, off = slice_offsets(a, b, spacing=sp, axis=ax)
    m = np.full(a.shape[ax], np.nan)
    if off.size:
        ks, inv = np.unique(pts[:, ax], return_inverse=True)
        m[ks] = np.bincount(inv, weights=off) / np.bincount(inv)
    area_a, area_b = a.sum(axis=plane) * pixel, b.sum(axis=plane) * pixel
    r = np.where((area_a > 0) & (area_b > 0), np.sqrt(area_a / np.pi) - np.sqrt(area_b / np.pi), np.nan)

    def mean_jump(x: np.ndarray) -> tuple[float, int]:
        dx = np.abs(np.diff(x))
        dx = dx[np.isfinite(dx)]
        return (float(dx.mean()) if dx.size else math.nan), int(dx.size)

    jump_m, n_m = mean_jump(m)
    jump_r, _ = mean_jump(r)
    return {"slice_jump_offset_mm": jump_m, "slice_jump_radius_mm": jump_r, "slice_pairs": float(n_m)}


def rater_statistics(masks: np.ndarray, spacing: float | Sequence[float] | None = None, *,
                     reader_ids: Sequence[str] | None = None, case_id: str = "",
                     level: float = 0.5) -> list[dict[str, Any]]:
    """Every statistic of the module for each rater of one case, against the others' consensus.

    Parameters
    ----------
    masks : (R, *S) bool ndarray
        ``R >= 2`` raters' masks of one case, 2-D or 3-D (slices along the first spatial axis).
    spacing : float or sequence of float, optional
        Voxel size in mm per spatial axis.
    reader_ids : sequence of str, optional
        One name per rater (``"0"``, ``"1"``, ... by default).
    case_id : str
        Written into every row.
    level : float
        Consensus level of :func:`leave_one_out_consensus`.

    Returns
    -------
    list of dict
        One row per rater: ``case_id``, ``reader_id``, ``n_readers``, ``volume_mm3`` (area in
        mm^2 for 2-D masks), ``reference_volume_mm3``, ``dice`` (the project's Dice,
        :func:`noisyseg.evaluate.dice`), ``volume_ratio``, the :func:`offset_summary` of the
        surface offsets (``offset_n``, ``offset_mean``, ``offset_sd``, ``offset_q05`` ..
        ``offset_q95``), ``corr_length_in_plane_mm``, ``corr_length_across_mm``
        (:func:`offset_correlation_lengths`) and the :func:`slice_jumps` (NaN for 2-D);
        NaN where a statistic is undefined (an empty reference).

    Raises
    ------
    ConfigError
        Fewer than two raters, masks that are not 2-D or 3-D, a bad ``spacing``, or
        ``reader_ids`` of the wrong length.

    Examples
    --------
    >>> masks = np.zeros((3, 12, 12), bool)  # two raters draw a 6 x 6 square, one an 8 x 8
    >>> masks[0, 2:8, 2:8] = masks[1, 2:8, 2:8] = True; masks[2, 1:9, 1:9] = True
    >>> rows = rater_statistics(masks, 0.5, case_id="c1")  # 0.5 mm pixels
    >>> [(r["reader_id"], round(r["dice"], 3), r["offset_q50"]) for r in rows]
    [('0', 0.72, -0.5), ('1', 0.72, -0.5), ('2', 0.72, 0.5)]
    """
    from noisyseg.evaluate.overlap import dice

    m = np.asarray(masks).astype(bool)
    if m.ndim not in (3, 4) or m.shape[0] < 2:
        raise ConfigError(f"masks: expected (R, *S) with R >= 2 raters of 2-D or 3-D masks, got "
                          f"shape {m.shape}")
    sp = _spacing(spacing, m.ndim - 1)
    ids = [str(i) for i in range(m.shape[0])] if reader_ids is None else [str(r) for r in reader_ids]
    if len(ids) != m.shape[0]:
        raise ConfigError(f"reader_ids: expected {m.shape[0]} names, got {len(ids)}")
    voxel = float(np.prod(sp))
    rows = []
    for i, rid in enumerate(ids):
        a = m[i]
        ref = leave_one_out_consensus(m, i, level=level)
        agreement = float(dice(a[None].astype(np.uint8), ref[None].astype(np.uint8), 2)[0])
        row: dict[str, Any] = {"case_id": case_id, "reader_id": rid, "n_readers": m.shape[0],
                               "volume_mm3": float(a.sum()) * voxel,
                               "reference_volume_mm3": float(ref.sum()) * voxel,
                               "dice": agreement,
                               "volume_ratio": volume_ratio(a, ref)}
        row |= offset_summary(surface_offsets(a, ref, spacing=sp))
        in_plane, across = offset_correlation_lengths(a, ref, spacing=sp)
        row |= {"corr_length_in_plane_mm": in_plane, "corr_length_across_mm": across}
        if a.ndim == 3:
            row |= slice_jumps(a, ref, spacing=sp)
        else:
            row |= {"slice_jump_offset_mm": math.nan, "slice_jump_radius_mm": math.nan,
                    "slice_pairs": math.nan}
        rows.append(row)
    return rows


def _column(table: Any, name: str) -> np.ndarray:
    """A column of rows (a sequence of mappings) or of a column table (a mapping, a DataFrame)."""
    if isinstance(table, Mapping) or hasattr(table, "columns"):
        if name not in table:
            raise ConfigError(f"{name}: no such column in the table")
        return np.asarray(table[name], dtype=object)
    rows = list(table)
    if rows and not all(name in r for r in rows):
        raise ConfigError(f"{name}: no such column in the table")
    return np.asarray([r[name] for r in rows], dtype=object)


@dataclass(frozen=True)
class VarianceComponents:
    """Systematic (between-group) against random (within-group) parts of a per-case value.

    Attributes
    ----------
    per_group : list of dict
        One row per group (a rater): ``group``, ``n`` (cases), ``mean`` (the systematic
        part it keeps), ``sd`` (sample sd across its cases: the random part) and
        ``systematic_share`` = ``mean**2 / mean(x**2)``, the share of its mean squared value
        its mean explains.
    between : float
        Variance of the groups' true means (one-way random-effects ANOVA, moment estimate
        ``(MSB - MSW) / n0``, floored at 0); NaN with fewer than two groups.
    within : float
        Pooled within-group variance (``MSW``).
    systematic_fraction : float
        ``between / (between + within)`` (an intraclass correlation).
    grand_mean : float
    n, n_groups : int
        Values and groups used (non-finite values are left out).
    """

    per_group: list[dict[str, Any]] = field(default_factory=list)
    between: float = math.nan
    within: float = math.nan
    systematic_fraction: float = math.nan
    grand_mean: float = math.nan
    n: int = 0
    n_groups: int = 0


def variance_components(table: Any, *, value: str = "offset_mean",
                        group: str = "reader_id") -> VarianceComponents:
    """Split a per-(rater, case) statistic into each rater's systematic and random parts.

    Parameters
    ----------
    table : sequence of dict, mapping of columns, or pandas DataFrame
        Rows such as :func:`rater_statistics` gives, over many cases.
    value : str
        The column decomposed (a rater's per-case mean offset by default).
    group : str
        The column naming the rater (or any grouping: ``"case_id"`` asks how much of the
        value the case sets).

    Returns
    -------
    VarianceComponents

    Raises
    ------
    ConfigError
        A column missing from the table.

    Examples
    --------
    >>> rows = [{"reader_id": "A", "offset_mean": x} for x in (1.0, 2.0, 3.0)]
    >>> rows += [{"reader_id": "B", "offset_mean": -1.0} for _ in range(3)]
    >>> vc = variance_components(rows)
    >>> round(vc.between, 4), vc.within, round(vc.systematic_fraction, 4)
    (4.3333, 0.5, 0.8966)
    >>> [(g["group"], g["mean"], g["sd"]) for g in vc.per_group]
    [('A', 2.0, 1.0), ('B', -1.0, 0.0)]
    """
    vals = _column(table, value)
    keys = _column(table, group)
    x = np.array([float(v) if v is not None else math.nan for v in vals], dtype=float)
    ok = np.isfinite(x)
    x, keys = x[ok], keys[ok]
    if x.size == 0:
        return VarianceComponents()
    names = sorted({str(k) for k in keys})
    per, means, counts, ss = [], [], [], 0.0
    for name in names:
        xs = x[np.array([str(k) == name for k in keys])]
        mu = float(xs.mean())
        msq = float(np.mean(xs * xs))
        per.append({"group": name, "n": int(xs.size), "mean": mu,
                    "sd": float(xs.std(ddof=1)) if xs.size > 1 else math.nan,
                    "systematic_share": mu * mu / msq if msq > 0 else math.nan})
        means.append(mu)
        counts.append(xs.size)
        ss += float(((xs - mu) ** 2).sum())
    n, g = int(x.size), len(names)
    grand = float(x.mean())
    cnt, mu_g = np.asarray(counts, float), np.asarray(means)
    within = ss / (n - g) if n > g else math.nan
    between = math.nan
    if g > 1 and np.isfinite(within):
        msb = float((cnt * (mu_g - grand) ** 2).sum()) / (g - 1)
        n0 = (n - float((cnt * cnt).sum()) / n) / (g - 1)
        between = max(0.0, (msb - within) / n0)
    total = between + within
    frac = between / total if np.isfinite(total) and total > 0 else math.nan
    return VarianceComponents(per_group=per, between=between, within=within, systematic_fraction=frac,
                              grand_mean=grand, n=n, n_groups=g)


def distribution_distance(real: Any, simulated: Any, *, statistics: Sequence[str] | None = None,
                          normalise: bool = False) -> dict[str, float]:
    """Wasserstein distance between the real and simulated distributions of each statistic.

    Parameters
    ----------
    real, simulated : sequence of dict, mapping of columns, or pandas DataFrame
        Tables of :func:`rater_statistics` rows.
    statistics : sequence of str, optional
        Columns compared (default: :data:`STATISTICS`).
    normalise : bool
        Divide each distance by the standard deviation of the real values (a distance in
        units of the real spread, comparable across statistics).

    Returns
    -------
    dict
        ``{statistic: distance}`` (``scipy.stats.wasserstein_distance`` over the finite
        values, in the statistic's unit); NaN where either side has none.

    Raises
    ------
    ConfigError
        A statistic missing from either table.

    Examples
    --------
    >>> real = [{"dice": d} for d in (0.8, 0.9)]
    >>> sim = [{"dice": d} for d in (0.7, 0.8)]
    >>> round(distribution_distance(real, sim, statistics=["dice"])["dice"], 6)
    0.1
    """
    from scipy.stats import wasserstein_distance

    out = {}
    for name in STATISTICS if statistics is None else statistics:
        a = np.array([float(v) if v is not None else math.nan for v in _column(real, name)], float)
        b = np.array([float(v) if v is not None else math.nan for v in _column(simulated, name)], float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size == 0 or b.size == 0:
            out[name] = math.nan
            continue
        dist = float(wasserstein_distance(a, b))
        if normalise:
            sd = float(a.std())
            dist = dist / sd if sd > 0 else math.nan
        out[name] = dist
    return out
