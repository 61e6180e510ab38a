"""Shared geometry for the error models: distances and re-composing label maps.

Distances use OpenCV's exact Euclidean distance transform (``DIST_MASK_PRECISE``), about
8x faster than ``scipy.ndimage.distance_transform_edt`` on 256x256 masks and identical in
value (``benchmarks/bench_corrupt.py``; ``tests/corrupt/test_geometry.py`` checks equality).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["bbox", "compose", "distance_inside", "signed_distance"]

_BIG = 1e9


def bbox(binary: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Bounding box of ``binary`` grown by ``margin`` pixels (clipped), or None if empty."""
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(binary.any(axis=0))
    h, w = binary.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))


def distance_inside(binary: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) of each True pixel to the nearest False pixel; 0 on False.

    Pixels of an all-True input get a large finite value (1e9).
    """
    b = np.ascontiguousarray(binary, dtype=np.uint8)
    if b.all():
        return np.full(b.shape, _BIG, dtype=np.float32)
    return cv2.distanceTransform(b, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def signed_distance(binary: np.ndarray) -> np.ndarray:
    """Euclidean signed distance to the boundary of ``binary`` (pixels; < 0 inside).

    The boundary lies half-way between pixels, so ``signed_distance(b) < 0`` is exactly
    ``b`` and ``signed_distance(b) < k`` moves the boundary out by ``k`` pixels (pixel
    centres within ``k + 0.5`` of ``b``'s centres join). Returns a large positive
    value (1e9) everywhere for an empty mask, negative for a full one.

    Parameters
    ----------
    binary : (H, W) bool ndarray

    Returns
    -------
    (H, W) float32 ndarray
    """
    b = np.asarray(binary, dtype=bool)
    return np.where(b, 0.5 - distance_inside(b), distance_inside(~b) - 0.5)


def nearest_fill(labels: np.ndarray, todo: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Labels of the nearest pixel outside ``blocked`` for each pixel in ``todo``.

    Returns the filled values, shape ``(count_nonzero(todo),)``; 0 where nothing is free.
    """
    if blocked.all():
        return np.zeros(int(np.count_nonzero(todo)), dtype=labels.dtype)
    _, idx = cv2.distanceTransformWithLabels(np.ascontiguousarray(blocked, dtype=np.uint8),
                                             cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    free = ~blocked
    lut = np.zeros(int(np.count_nonzero(free)) + 1, dtype=labels.dtype)
    lut[idx[free]] = labels[free]
    return lut[idx[todo]]


def compose(mask: np.ndarray, regions: dict[int, np.ndarray], *, reach: int) -> np.ndarray:
    """Replace the regions of some classes in ``mask`` by new ones.

    New regions are painted over the original map in order of decreasing original area, so
    a small structure stays on top of a large one. Pixels a class gave up and no new region
    claimed take the label of the nearest pixel of *another* label: a shrunk LV cavity
    leaves myocardium behind, not a gap of background.

    Parameters
    ----------
    mask : (H, W) integer ndarray
    regions : dict of int to (H, W) bool ndarray
        The new region of each changed class.
    reach : int
        How far (pixels) a boundary may have moved; bounds the search for the nearest label
        (the whole image is searched when nothing lies within reach).

    Returns
    -------
    (H, W) ndarray of ``mask``'s dtype.
    """
    out = mask.copy()
    changed = np.zeros(mask.shape, dtype=bool)
    for c, r in regions.items():
        changed |= r != (mask == c)
    box = bbox(changed, reach + 2)
    if box is None:
        return out
    # all changes lie inside ``box``: work on views of the crop
    sub, m = out[box], mask[box]
    regs = {c: r[box] for c, r in regions.items()}
    lost = {c: (m == c) & ~r for c, r in regs.items()}
    for c in sorted(regs, key=lambda k: -int(np.count_nonzero(m == k))):
        sub[regs[c]] = c
    claimed = np.zeros(m.shape, dtype=bool)
    for r in regs.values():
        claimed |= r
    freed = np.zeros(m.shape, dtype=bool)
    for c in regs:
        lost[c] &= ~claimed
        freed |= lost[c]
    for c, todo in lost.items():
        if not todo.any():
            continue
        blocked = freed | (sub == c)
        if blocked.all():  # nothing of another label nearby: search the whole image
            full_todo = np.zeros(mask.shape, dtype=bool)
            full_todo[box] = todo
            full_blocked = out == c
            full_blocked[box] = blocked
            out[full_todo] = nearest_fill(out, full_todo, full_blocked)
        else:
            sub[todo] = nearest_fill(sub, todo, blocked)
        freed &= ~todo
    return out
