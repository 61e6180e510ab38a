"""Shared n-D geometry of the error models: boxes, distances, growing, relabelling, composing.

Every helper takes label maps and binary arrays of any dimension (2-D masks ``(H, W)``,
volumes ``(D, H, W)``); a box is a tuple of slices, one per axis. The 2-D models
(:mod:`noisyseg.corrupt.models`) and the volumetric ones (:mod:`noisyseg.corrupt.volumetric`)
both build on them. On 2-D arrays three helpers take an OpenCV path with the same result
as their n-D code, because it makes the models faster (``benchmarks/bench_geometry.py``,
256x256 masks, one core; ``tests/corrupt/test_geometry.py`` checks the paths agree):
:func:`bbox` (``cv2.boundingRect``: dilate 1.17x, erode 1.12x, shift 1.14x, merge 1.09x),
:func:`distance_inside` (``cv2.distanceTransform``: merge 1.6x, omit 2.7x) and the 3x3
dilation in :func:`neighbour` (merge 1.11x). :func:`grow` moves 2-D boundaries in pixels
with disk kernels (``cv2.dilate`` / ``cv2.erode``) up to a radius of 8.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage as ndi

from noisyseg.errors import ConfigError
from noisyseg.evaluate import signed_distance

__all__ = [
    "Box",
    "bbox",
    "check_spacing",
    "class_boxes",
    "class_counts",
    "compose",
    "compose_boxes",
    "distance_inside",
    "grow",
    "grown",
    "margin_for",
    "nearest_fill",
    "neighbour",
    "pick_source",
    "reach_for",
    "relabel_by_depth",
    "signed_distance_near",
    "target_classes",
    "union",
]

Box = tuple[slice, ...]

_BIG = 1e9


def check_spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    """Voxel size per axis (mm) as a float array; ones when ``spacing`` is None.

    Raises
    ------
    ConfigError
        When ``spacing`` does not hold ``ndim`` positive values.
    """
    sp = np.ones(ndim) if spacing is None else np.asarray(spacing, dtype=float)
    if sp.shape != (ndim,) or not np.all(sp > 0):
        raise ConfigError(f"spacing: expected {ndim} positive values (mm), got {spacing}")
    return sp


# --------------------------------------------------------------------------- boxes
def grown(box: Box, margin: int | Sequence[int], shape: tuple[int, ...]) -> Box:
    """``box`` grown by ``margin`` elements (one value, or one per axis), clipped to ``shape``."""
    if type(margin) is int or isinstance(margin, np.integer):
        return tuple([slice(max(b.start - margin, 0), min(b.stop + margin, n))
                      for b, n in zip(box, shape, strict=True)])
    return tuple([slice(max(b.start - m, 0), min(b.stop + m, n))
                  for b, m, n in zip(box, margin, shape, strict=True)])


def tight_box(binary: np.ndarray) -> Box | None:
    """Bounding box of ``binary``'s non-zero elements in any dimension (numpy), or None if
    there are none; :func:`bbox` takes OpenCV's faster path for 2-D maps."""
    b = np.asarray(binary)
    axes = []
    for ax in range(b.ndim):
        nz = np.flatnonzero(b.any(axis=tuple(a for a in range(b.ndim) if a != ax)))
        if nz.size == 0:
            return None
        axes.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return tuple(axes)


def bbox(binary: np.ndarray, margin: int | Sequence[int] = 0) -> Box | None:
    """Bounding box of ``binary``'s non-zero elements grown by ``margin`` (clipped), or None
    if there are none."""
    b = np.asarray(binary)
    if b.ndim == 2:
        if b.dtype == bool:
            b = b.view(np.uint8)
        elif b.dtype != np.uint8:  # OpenCV takes the non-zero pixels of an 8-bit image
            b = (b != 0).view(np.uint8)
        x, y, bw, bh = cv2.boundingRect(b)
        if bw == 0:
            return None
        if type(margin) is int or isinstance(margin, np.integer):
            h, w = b.shape
            return (slice(max(y - margin, 0), min(y + bh + margin, h)),
                    slice(max(x - margin, 0), min(x + bw + margin, w)))
        tight: Box = (slice(y, y + bh), slice(x, x + bw))
    else:
        found = tight_box(b)
        if found is None:
            return None
        tight = found
    return tight if isinstance(margin, (int, np.integer)) and margin == 0 else \
        grown(tight, margin, b.shape)


def union(boxes: Iterable[Box]) -> Box:
    """The smallest box holding all ``boxes``."""
    bs = list(boxes)
    return tuple([slice(min([b[a].start for b in bs]), max([b[a].stop for b in bs]))
                  for a in range(len(bs[0]))])


def margin_for(distance: float, spacing: np.ndarray | None = None) -> int | tuple[int, ...]:
    """Margin around a structure moved by ``distance`` (mm, or elements without
    ``spacing``): 2 more than the elements it spans, per axis with ``spacing``."""
    if spacing is None:
        return math.ceil(abs(distance)) + 2
    return tuple([math.ceil(abs(distance) / s) + 2 for s in spacing])


def reach_for(distance: float, spacing: np.ndarray | None = None) -> int:
    """How far (in-plane pixels, the unit of :func:`compose_boxes`) a boundary moved by
    ``distance`` (mm, or pixels without ``spacing``) may have travelled, plus one."""
    if spacing is None:
        return math.ceil(abs(distance)) + 1
    return math.ceil(abs(distance) / spacing[-2:].min()) + 1


# --------------------------------------------------------------------------- classes
def class_counts(mask: np.ndarray) -> np.ndarray:
    """Element count per label 0..max (OpenCV's histogram is ~2x faster for uint8 masks)."""
    if mask.dtype == np.uint8 and mask.size < 2**31:
        flat = np.ascontiguousarray(mask).reshape(-1, mask.shape[-1])  # OpenCV: 2-D only
        hist = cv2.calcHist([flat], [0], None, [256], [0, 256])
        return hist.ravel()[: int(mask.max()) + 1].astype(np.int64)
    return np.bincount(mask.ravel(), minlength=1)


def target_classes(mask: np.ndarray, classes: Sequence[int] | None,
                   counts: np.ndarray | None = None) -> list[int]:
    """The foreground labels present in ``mask`` (ascending), restricted to ``classes``."""
    if counts is None:
        counts = class_counts(mask)
    present = (np.flatnonzero(counts[1:]) + 1).tolist()
    if classes is None:
        return present
    wanted = {int(k) for k in classes}
    return [c for c in present if c in wanted]


def class_boxes(mask: np.ndarray, classes: Sequence[int] | None) -> dict[int, Box]:
    """Tight bounding box of each targeted class present (see :func:`target_classes`).

    Works inside the bounding box of all foreground first, so a structure occupying a
    small part of the array costs little.
    """
    fg = bbox(mask)
    if fg is None:
        return {}
    crop = mask[fg]
    out = {}
    for c in target_classes(crop, classes):
        b: Box = bbox(crop == c)  # type: ignore[assignment]  # c is present
        out[c] = tuple([slice(f.start + s.start, f.start + s.stop) for f, s in zip(fg, b, strict=True)])
    return out


def pick_source(mask: np.ndarray, classes: Sequence[int] | None, source: int | None, *,
                counts: np.ndarray | None = None) -> int | None:
    """The structure a structural error changes: ``source`` when given, else the first of
    ``classes`` present, else the largest label present; None when no class is present.
    ``counts``: :func:`class_counts` of ``mask``, when the caller has them."""
    if source is not None:
        return int(source)
    cand = target_classes(mask, classes, counts)
    if not cand:
        return None
    return cand[0] if classes is not None else cand[-1]


@lru_cache(maxsize=8)
def _structure(ndim: int, connectivity: int) -> np.ndarray:
    return ndi.generate_binary_structure(ndim, connectivity)


def neighbour(mask: np.ndarray, source: int, *, connectivity: int = 1) -> int:
    """The foreground label sharing the most boundary with ``source`` (0 if none).

    Counts the labels of the elements next to ``source``; ``connectivity`` as in
    :func:`scipy.ndimage.generate_binary_structure` (1: elements sharing a face,
    ``mask.ndim``: also those sharing only a corner).
    """
    box = bbox(mask == source, 1)
    if box is None:
        return 0
    m = mask[box]
    src = m == source
    structure = _structure(m.ndim, connectivity)
    if m.ndim == 2:
        around = cv2.dilate(src.view(np.uint8), structure.view(np.uint8)).astype(bool)
    else:
        around = ndi.binary_dilation(src, structure)
    counts = np.bincount(m[around & ~src].ravel(), minlength=int(mask.max()) + 1)
    counts[0] = 0
    return int(counts.argmax()) if counts.any() else 0


# --------------------------------------------------------------------------- distances
def distance_inside(binary: np.ndarray, *, spacing: Sequence[float] | None = None,
                    precise: bool = True) -> np.ndarray:
    """Euclidean distance of each True element to the nearest False one; 0 on False.

    Elements of an all-True input get a large finite value (1e9). Elements beyond the array
    count as neither. In 2-D without ``spacing``: pixels, float32, by OpenCV (exact, or
    with ``precise=False`` its 5x5 chamfer approximation: 3.4x faster, off by at most
    0.04 px within 3 px of the boundary and by < 2% further out). Otherwise: exact, in the
    unit of ``spacing`` (one value per axis), float64, by SciPy.
    """
    if spacing is None and np.ndim(binary) == 2:
        b = np.ascontiguousarray(binary, dtype=np.uint8)
        if b.all():
            return np.full(b.shape, _BIG, dtype=np.float32)
        return cv2.distanceTransform(b, cv2.DIST_L2, cv2.DIST_MASK_PRECISE if precise else 5)
    b = np.asarray(binary, dtype=bool)
    if b.all():
        return np.full(b.shape, _BIG)
    return ndi.distance_transform_edt(b, sampling=spacing)


def _distance_from(binary: np.ndarray, src: np.ndarray, tight: Box, *,
                   spacing: Sequence[float] | None = None) -> np.ndarray:
    """Exact distance of each ``src`` element (raster order) to the nearest False of ``binary``.

    Computed in ``src``'s bounding box ``tight`` grown by r elements (half its smallest side)
    when that is exact: an element outside the box lies at least r + 1 elements from every
    source element along some axis, so when each source element finds a False element
    within that distance inside the box, the box's answer is the whole array's. Otherwise
    the whole array is searched.
    """
    r = min(s.stop - s.start for s in tight) // 2 + 2
    box = grown(tight, r, src.shape)
    d = distance_inside(binary[box], spacing=spacing)[src[box]]
    bound = r + 1 if spacing is None else (r + 1) * float(np.min(spacing))
    if d.size and float(d.max()) <= bound:
        return d
    return distance_inside(binary, spacing=spacing)[src]


def relabel_by_depth(mask: np.ndarray, strength: float, source: int, target: int, *,
                     spacing: Sequence[float] | None = None, local: bool = False) -> np.ndarray:
    """Relabel the part of ``source`` facing ``target`` as ``target``, by a fraction of its depth.

    The elements of ``source`` whose distance to the nearest ``target`` element is at most
    ``strength`` times the largest such distance are relabelled (all of ``source`` when
    ``strength >= 1``). Distances are exact Euclidean, in the unit of ``spacing`` (pixels
    without it); where ``mask`` holds no ``target``, they are from ``source``'s own boundary.

    Parameters
    ----------
    mask : (*S) integer ndarray
    strength : float
        Fraction of the depth relabelled, >= 0.
    source, target : int
        Labels; ``target`` 0 removes part of ``source``.
    spacing : sequence of float, optional
        Voxel size per axis.
    local : bool
        Look for ``target`` only next to ``source``: in its bounding box (with the target's,
        for a foreground target present) grown by one element. Without a ``target`` element
        there, all of ``source`` is relabelled. The volumetric models' definition.

    Returns
    -------
    (*S) ndarray of ``mask``'s dtype.
    """
    src = mask == source
    tight = bbox(src)
    if tight is None:
        return mask.copy()
    out = mask.copy()
    s = src[tight]
    if strength >= 1:
        out[tight][s] = target
        return out
    tgt = mask == target
    if target != 0 and tgt.any():  # every target element lies in the joint box: exact there
        box = grown(bbox(src | tgt), 1, mask.shape)  # type: ignore[arg-type]
        d = distance_inside(~tgt[box], spacing=spacing)[src[box]]
    elif local:
        box = grown(tight, 1, mask.shape)
        if not tgt[box].any():
            out[tight][s] = target
            return out
        d = distance_inside(~tgt[box], spacing=spacing)[src[box]]
    elif tgt.any():
        d = _distance_from(~tgt, src, tight, spacing=spacing)
    else:
        d = _distance_from(src, src, tight, spacing=spacing)
    sel = s.copy()
    sel[s] = d <= strength * float(d.max())
    out[tight][sel] = target
    return out


# signed_distance_near: a 3x3 filter codes each pixel as 128 * b + 16 * (diagonal
# neighbours in b) + (4-neighbours in b); a table maps the code to the signed distance
_NEAR_KERNEL = np.array([[16, 1, 16], [1, 128, 1], [16, 1, 16]], np.float32)


def _near_table() -> np.ndarray:
    r2 = float(np.sqrt(2.0)) - 0.5
    table = np.zeros(256, np.float32)
    for code in range(197):
        inside, rest = divmod(code, 128)
        n8, n4 = divmod(rest, 16)
        if inside:
            table[code] = -0.5 if n4 < 4 else (-r2 if n8 < 4 else -1.5)
        else:
            table[code] = 0.5 if n4 > 0 else (r2 if n8 > 0 else 1.5)
    return table


_NEAR_TABLE = _near_table()


def signed_distance_near(binary: np.ndarray) -> np.ndarray:
    """:func:`~noisyseg.evaluate.signed_distance` of a 2-D map, exact within one pixel of the
    boundary, clipped to +-1.5.

    A pixel whose 8-neighbourhood holds both labels lies 1 or sqrt(2) from a pixel of the
    other label (signed distance +-0.5 or +-(sqrt(2) - 0.5)); every other pixel is at least
    2 away and gets +-1.5. Bilinear interpolation between pixel centres therefore gives the
    exact signed distance's sign everywhere (a 2x2 cell with both signs holds only pixels
    next to the boundary), from one 3x3 filter instead of two distance transforms (about
    2.5x faster). Pixels beyond the image count as neither label, as in the exact version.

    Parameters
    ----------
    binary : (H, W) bool ndarray

    Returns
    -------
    (H, W) float32 ndarray
    """
    b = np.ascontiguousarray(binary, dtype=np.uint8)
    # replicated borders: a neighbour beyond the image is the pixel itself, or (for a
    # diagonal) one of its 4-neighbours, which decides first anyway
    code = cv2.filter2D(b, -1, _NEAR_KERNEL, borderType=cv2.BORDER_REPLICATE)
    return cv2.LUT(code, _NEAR_TABLE)


# --------------------------------------------------------------------------- growing
_DISK_MAX = 8.0  # in pixels; larger radii: a distance transform beats a big kernel


@lru_cache(maxsize=64)
def _ellipse(radius: float, ry: float = 1.0, rx: float = 1.0, *, strict: bool = False,
             tol: float = 0.0) -> np.ndarray:
    """2-D kernel of the offsets (i, j) with (i ry)^2 + (j rx)^2 < radius^2 (``strict``) or
    <= radius^2 + ``tol``.

    ``tol`` absorbs the rounding of offsets in mm (products of voxel sizes); offsets in
    pixels are exact. Erosion keeps a pixel iff no outside pixel lies within
    |distance| + 0.5 pixels (<=); dilation adds one iff a structure pixel lies within
    distance + 0.5 (<): the Euclidean definitions, so these kernels give exactly the
    distance transform's pixels.
    """
    ni, nj = int(np.floor(radius / ry + tol)), int(np.floor(radius / rx + tol))
    ii, jj = np.mgrid[-ni:ni + 1, -nj:nj + 1]
    d2 = (ii * ry) ** 2 + (jj * rx) ** 2
    return ((d2 < radius * radius) if strict else (d2 <= radius * radius + tol)).astype(np.uint8)


def _ball_morph(sub: np.ndarray, radius: float, sp: np.ndarray, *, dilate: bool,
                edge: tuple[bool, bool]) -> np.ndarray:
    """Dilate (or erode) a (D, H, W) or (H, W) boolean array by a ball of ``radius`` mm.

    The ball is a stack of in-plane ellipses, one per slice offset ``dz`` (radius
    sqrt(r^2 - (dz sz)^2)); OpenCV morphs every slice with each, and the offsets are OR-ed
    (dilation) or AND-ed (erosion). ``edge``: whether the box's first/last slice is the
    volume's (beyond it, erosion treats the outside as inside, as OpenCV does in-plane).
    """
    if sub.ndim == 2:
        return _ball_morph(sub[None], radius, np.r_[1.0, sp], dilate=dilate, edge=(True, True))[0]
    d = sub.shape[0]
    nz = int(np.floor(radius / sp[0] + 1e-9))
    u8 = np.ascontiguousarray(sub, dtype=np.uint8)
    op = cv2.dilate if dilate else cv2.erode
    border = 0 if dilate else 1
    out = np.zeros(sub.shape, dtype=bool) if dilate else np.ones(sub.shape, dtype=bool)
    for dz in range(0, nz + 1):
        r = float(np.sqrt(max(radius * radius - (dz * sp[0]) ** 2, 0.0)))
        k = _ellipse(r, float(sp[1]), float(sp[2]), tol=1e-9)
        morphed = np.stack([op(u8[z], k, borderType=cv2.BORDER_CONSTANT, borderValue=border)
                            for z in range(d)]).astype(bool)
        for s in ((0,) if dz == 0 else (dz, -dz)):
            shifted = np.zeros(sub.shape, dtype=bool)
            # shifted[z] = morphed[z + s] where it exists
            lo, hi = max(0, -s), min(d, d - s)
            if hi > lo:
                shifted[lo:hi] = morphed[lo + s:hi + s]
            if not dilate:  # beyond the volume's first/last slice counts as inside
                if s > 0 and edge[1]:
                    shifted[max(hi, 0):] = True
                if s < 0 and edge[0]:
                    shifted[:min(lo, d)] = True
            if dilate:
                out |= shifted
            else:
                out &= shifted
    return out


def _grown_pixels(sub: np.ndarray, distance: float) -> np.ndarray:
    """``signed_distance(sub) < distance`` of a 2-D region in pixels, by a disk kernel up to
    radius :data:`_DISK_MAX` (the same pixels, ~4x faster), else by OpenCV's distances."""
    if abs(distance) <= _DISK_MAX:
        disk = _ellipse(abs(distance) + 0.5, strict=distance >= 0)
        if distance >= 0:
            return cv2.dilate(sub.view(np.uint8), disk, borderType=cv2.BORDER_CONSTANT,
                              borderValue=0) > 0
        return cv2.erode(sub.view(np.uint8), disk, borderType=cv2.BORDER_CONSTANT,
                         borderValue=1) > 0
    if distance >= 0:  # outside distance - 0.5 < distance
        return sub | (distance_inside(~sub) < distance + 0.5)
    return distance_inside(sub) > 0.5 - distance  # inside distance > |distance| + 0.5


def grow(mask: np.ndarray, distance: float, *, spacing: Sequence[float] | None = None,
         classes: Sequence[int] | None = None, ball: bool = False) -> np.ndarray:
    """Move the chosen classes' boundaries by ``distance``: out when positive, in when negative.

    Each boundary lies half-way between elements and moves along its normal: an element
    belongs to the grown structure iff its signed distance to the structure
    (:func:`~noisyseg.evaluate.signed_distance`) is below ``distance``. With ``ball``, the
    structure is dilated (eroded) by a Euclidean ball of radius ``|distance|`` instead:
    elements whose centre lies within it of a structure element's centre join (those within
    it of an outside element's centre leave). Grown structures are painted over their
    neighbours; elements a shrunk one gives up take the nearest other label
    (:func:`compose_boxes`).

    Parameters
    ----------
    mask : (H, W) or (D, H, W) integer ndarray
    distance : float
        In the unit of ``spacing`` (pixels without it).
    spacing : sequence of float, optional
        Element size per axis (validated by the caller). A 2-D map without it is grown with
        disk kernels and OpenCV's distances.
    classes : sequence of int, optional
        Labels to grow (default: every foreground label present).
    ball : bool
        Dilate or erode by a ball instead of moving the boundary (2-D or 3-D).

    Returns
    -------
    ndarray of ``mask``'s shape and dtype.
    """
    sp = None if spacing is None else np.asarray(spacing, dtype=float)
    margin = margin_for(max(distance, 0.0), sp)
    parts = {}
    for c, tight in class_boxes(mask, classes).items():
        box = grown(tight, margin, mask.shape)
        sub = mask[box] == c
        if ball:
            edge = (box[0].start == 0, box[0].stop == mask.shape[0])
            parts[c] = (box, _ball_morph(sub, abs(distance), np.ones(mask.ndim) if sp is None else sp,
                                         dilate=distance >= 0, edge=edge))
        elif sp is None and mask.ndim == 2:
            parts[c] = (box, _grown_pixels(sub, distance))
        else:
            parts[c] = (box, signed_distance(sub, spacing=sp) < distance)
    return compose_boxes(mask, parts, reach=reach_for(distance, sp))


# --------------------------------------------------------------------------- composing
def nearest_fill(labels: np.ndarray, todo: np.ndarray, blocked: np.ndarray, *,
                 within: float | None = None) -> np.ndarray | None:
    """Labels of the nearest pixel outside ``blocked`` for each pixel in ``todo`` (2-D).

    Returns the filled values, shape ``(count_nonzero(todo),)``; 0 where nothing is free.
    With ``within``, returns None instead when some ``todo`` pixel has no free pixel within
    that distance (the caller then searches a larger area).
    """
    if blocked.all():
        return None if within is not None else np.zeros(int(np.count_nonzero(todo)), labels.dtype)
    b8 = np.ascontiguousarray(blocked, dtype=np.uint8)
    dist, idx = cv2.distanceTransformWithLabels(b8, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    if within is not None and cv2.minMaxLoc(dist, np.ascontiguousarray(todo, dtype=np.uint8))[1] > within:
        return None
    # OpenCV numbers the free (zero) pixels 1, 2, ... in raster order, the order of
    # boolean indexing, so the label of free pixel ``i`` is ``labels[b8 == 0][i - 1]``
    free = labels[b8 == 0]
    lut = np.empty(free.size + 1, labels.dtype)
    lut[0] = 0
    lut[1:] = free
    return lut[idx[todo]]


def compose(mask: np.ndarray, regions: dict[int, np.ndarray], *, reach: int,
            box: Box | None = None) -> np.ndarray:
    """Replace the regions of some classes in a 2-D ``mask`` by new ones.

    New regions are painted over the original map in order of decreasing original area, so
    a small structure stays on top of a large one. Pixels a class gave up and no new region
    claimed take the label of the nearest pixel of *another* label: a shrunk LV cavity
    leaves myocardium behind, not a gap of background.

    Parameters
    ----------
    mask : (H, W) integer ndarray
    regions : dict of int to (H, W) bool ndarray
        The new region of each changed class (of ``mask[box]``'s shape when ``box`` is given).
    reach : int
        How far (pixels) a boundary may have moved; bounds the search for the nearest label
        (the whole image is searched when nothing lies within reach).
    box : pair of slices, optional
        The part of ``mask`` the regions cover; every change lies inside it.

    Returns
    -------
    (H, W) ndarray of ``mask``'s dtype.
    """
    out = mask.copy()
    outer = box or (slice(0, mask.shape[0]), slice(0, mask.shape[1]))
    m_outer = mask[outer]
    changed = np.zeros(m_outer.shape, dtype=bool)
    for c, r in regions.items():
        changed |= r != (m_outer == c)
    inner = bbox(changed, reach + 2)
    if inner is None:
        return out
    regs = {c: r[inner] for c, r in regions.items()}
    box = tuple(slice(o.start + i.start, o.start + i.stop) for o, i in zip(outer, inner, strict=True))
    # all changes lie inside ``box``: work on views of the crop
    sub, m = out[box], mask[box]
    for c in sorted(regs, key=lambda k: -int(np.count_nonzero(m == k))):
        sub[regs[c]] = c
    # a pixel still labelled c that c's new region leaves out was given up by c and claimed
    # by no other new region
    lost = {}
    freed = np.zeros(m.shape, dtype=bool)
    for c, r in regs.items():
        todo = (sub == c) & ~r
        if todo.any():
            lost[c] = todo
            freed |= todo
    for c, todo in lost.items():
        # first look near the pixels to fill (a free pixel outside that box is farther than
        # ``within``; lost rings of width ``reach`` of two or three classes may lie between
        # a pixel and its label), then in the whole crop, then in the whole image
        near = bbox(todo, 3 * reach + 2)
        got = nearest_fill(sub[near], todo[near], freed[near] | (sub[near] == c),
                           within=3 * reach + 1)
        if got is not None:
            sub[near][todo[near]] = got
            freed &= ~todo
            continue
        blocked = freed | (sub == c)
        if blocked.all():  # nothing of another label nearby: search the whole image
            full_todo = np.zeros(mask.shape, dtype=bool)
            full_todo[box] = todo
            full_blocked = out == c
            full_blocked[box] |= freed
            out[full_todo] = nearest_fill(out, full_todo, full_blocked)
        else:
            sub[todo] = nearest_fill(sub, todo, blocked)
        freed &= ~todo
    return out


def compose_boxes(mask: np.ndarray, parts: dict[int, tuple[Box, np.ndarray]], *,
                  reach: int) -> np.ndarray:
    """:func:`compose` for new regions given as ``{class: (box, region inside box)}``, n-D.

    The regions are pasted into one work box holding them all, grown in-plane (the last
    two axes) by ``reach + 2`` (room for the nearest-label search), so no full-size array is
    built. A 2-D map is composed in that box of the whole image; a volume slice by slice
    over the leading axes, each slice of the work box on its own (the nearest-label search
    stays in the slice's box).

    Parameters
    ----------
    mask : (*L, H, W) integer ndarray
    parts : dict of int to (box, bool ndarray)
        Each changed class's box and its new region there (of the box's shape); outside
        its box a class stays as it is.
    reach : int
        How far (in-plane pixels) a boundary may have moved.

    Returns
    -------
    ndarray of ``mask``'s shape and dtype.
    """
    if not parts:
        return mask.copy()
    lead = mask.ndim - 2
    work = grown(union([b for b, _ in parts.values()]),
                 (0,) * lead + (reach + 2,) * 2 if lead else reach + 2, mask.shape)
    mw = mask[work]
    origin = [w.start for w in work]
    regions = {}
    for c, (b, r) in parts.items():
        new = mw == c  # outside the class's own box nothing changes
        new[tuple([slice(s.start - o, s.stop - o) for s, o in zip(b, origin, strict=True)])] = r
        regions[c] = new
    if lead == 0:
        return compose(mask, regions, reach=reach, box=work)
    out = mask.copy()
    ow = out[work]
    for idx in np.ndindex(mw.shape[:lead]):
        regs = {c: np.ascontiguousarray(r[idx]) for c, r in regions.items()}
        if all(np.array_equal(r, mw[idx] == c) for c, r in regs.items()):
            continue
        ow[idx] = compose(np.ascontiguousarray(mw[idx]), regs, reach=reach)
    return out
