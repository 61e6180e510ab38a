"""Shared geometry for the error models: signed distances and re-composing label maps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["bbox", "compose", "signed_distance"]


def bbox(binary: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Bounding box of ``binary`` grown by ``margin`` pixels (clipped), or None if empty."""
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(binary.any(axis=0))
    h, w = binary.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))


def signed_distance(binary: np.ndarray) -> np.ndarray:
    """Euclidean signed distance to the boundary of ``binary`` (pixels; < 0 inside).

    The boundary lies half-way between pixels, so ``signed_distance(b) < 0`` is exactly
    ``b`` and ``signed_distance(b) < k`` is ``b`` dilated by a disk of radius ``k``.
    Returns +inf everywhere for an empty mask and -inf for a full one.
    """
    b = np.asarray(binary, dtype=bool)
    if not b.any():
        return np.full(b.shape, np.inf)
    if b.all():
        return np.full(b.shape, -np.inf)
    return np.where(b, 0.5 - ndi.distance_transform_edt(b), ndi.distance_transform_edt(~b) - 0.5)


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
        How far (pixels) a boundary may have moved; bounds the search for the nearest label.

    Returns
    -------
    (H, W) ndarray of ``mask``'s dtype.
    """
    out = mask.copy()
    freed = np.zeros(mask.shape, dtype=bool)
    area = {c: int(np.count_nonzero(mask == c)) for c in regions}
    for c in regions:
        freed |= (mask == c) & ~regions[c]
    for c in sorted(regions, key=lambda k: -area[k]):
        out[regions[c]] = c
        freed &= ~regions[c]
    for c in regions:
        todo = freed & (mask == c)
        box = bbox(todo, reach + 2)
        if box is None:
            continue
        sub_out, sub_todo = out[box], todo[box]
        blocked = sub_todo | (sub_out == c) | freed[box]
        if blocked.all():  # nothing nearby: search the whole image
            box = (slice(None), slice(None))
            sub_out, sub_todo = out, todo
            blocked = todo | (out == c) | freed
        if blocked.all():
            out[todo] = 0
        else:
            _, (iy, ix) = ndi.distance_transform_edt(blocked, return_indices=True)
            sub = out[box]
            sub[sub_todo] = sub_out[iy[sub_todo], ix[sub_todo]]
        freed &= ~todo
    return out
