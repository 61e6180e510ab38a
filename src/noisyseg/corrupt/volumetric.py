"""Error models on volumes: slice-wise application of the 2-D models, and volumetric models.

Slice-wise (``mode='slicewise'``): the 2-D model runs on every slice along ``slice_axis`` that
holds a targeted structure, each slice with its own generator (seeded from one draw of the
volume's generator, so the draws do not depend on strength). This is the annotator's error
when contouring slice by slice: study A's Fig. 1 shows natural errors drawn on axial slices
as the jagged surface they make in the sagittal plane. Strength keeps the 2-D unit (pixels
of the slice).

Volumetric (``mode='volumetric'``): the model has a 3-D meaning and its strength is in
millimetres, honouring anisotropic spacing:

- ``dilate`` / ``erode``: a ball of radius ``strength`` mm (voxel centres within it);
- ``shift``: a displacement of ``strength`` mm in a random (or given) 3-D direction;
- ``natural``: every surface moves along its normal by a smooth random field (sd
  ``strength`` mm, correlation length ``scale`` mm): study A's freehand error in 3-D;
- ``boundary``: a smooth random 3-D displacement field (sd ``strength`` mm per axis) warps
  the label map (study B's random boundary error);
- ``random_flip``: voxels flip independently (as in 2-D, over the whole volume);
- ``merge`` / ``omit``: a 3-D structure is relabelled as its neighbour or removed, from the
  side facing the neighbour (or the background), by a fraction of its depth in mm.

New regions are composed slice by slice along the first axis (painted in order of
decreasing area; voxels a structure gave up take the nearest other label in the slice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from noisyseg.corrupt._geometry import (
    Box,
    bbox,
    check_spacing,
    class_boxes,
    compose_boxes,
    grow,
    grown,
    margin_for,
    neighbour,
    pick_source,
    reach_for,
    relabel_by_depth,
)
from noisyseg.errors import ConfigError
from noisyseg.evaluate import signed_distance

__all__ = ["VOLUMETRIC", "grow_structures", "slicewise"]


def slicewise(fn: Callable[..., np.ndarray], mask: np.ndarray, strength: float, *,
              rng: np.random.Generator, slice_axis: int = 0, **options: object) -> np.ndarray:
    """Apply the 2-D error model ``fn`` to every slice of ``mask`` along ``slice_axis``.

    Slice ``k`` is corrupted with its own generator, seeded by the ``k``-th of one draw of
    ``mask.shape[slice_axis]`` integers from ``rng`` (the same draws at every strength); slices
    without foreground are left as they are.

    Parameters
    ----------
    fn : callable
        A 2-D model, ``fn(mask, strength, *, rng, **options) -> mask``.
    mask : (D, H, W) integer ndarray
        Label volume; not modified.
    strength : float
        Passed to ``fn`` (its 2-D unit, e.g. px of the slice).
    rng : numpy.random.Generator
        Draws the per-slice seeds.
    slice_axis : int, default 0
        Axis of the slices (array order: 0 is z, the axial slices); negative counts from
        the end.
    **options
        Passed to ``fn``.

    Returns
    -------
    ndarray
        A new volume of ``mask``'s shape and dtype.

    Raises
    ------
    ConfigError
        ``slice_axis`` out of range for ``mask``.

    Examples
    --------
    >>> from noisyseg.corrupt.models import dilate
    >>> vol = np.zeros((8, 16, 16), np.uint8); vol[2:6, 4:12, 4:12] = 1
    >>> out = slicewise(dilate, vol, 1.0, rng=np.random.default_rng(0))
    >>> out.shape, [int(s.sum()) for s in out[1:7]]  # only slices holding the square grow
    ((8, 16, 16), [0, 100, 100, 100, 100, 0])
    """
    axis = slice_axis
    if not -mask.ndim <= axis < mask.ndim:
        raise ConfigError(f"slice_axis: expected 0..{mask.ndim - 1} for a {mask.ndim}-D mask, "
                          f"got {axis}")
    seeds = rng.integers(0, 2**63 - 1, size=mask.shape[axis])
    src = np.moveaxis(mask, axis, 0)
    out = mask.copy()
    dst = np.moveaxis(out, axis, 0)
    has_fg = src.reshape(src.shape[0], -1).any(axis=1)
    for k in np.flatnonzero(has_fg):
        sl = np.ascontiguousarray(src[k])
        dst[k] = fn(sl, strength, rng=np.random.default_rng(int(seeds[k])), **options)
    return out


# --------------------------------------------------------------------------- models
def dilate3d(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
             spacing: Sequence[float] | None = None,
             classes: Sequence[int] | None = None) -> np.ndarray:
    """Systematic over-segmentation in 3-D: structures grow by a ball of ``strength`` mm."""
    return grow(mask, strength, spacing=check_spacing(spacing, mask.ndim), classes=classes,
                ball=True)


def erode3d(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
            spacing: Sequence[float] | None = None,
            classes: Sequence[int] | None = None) -> np.ndarray:
    """Systematic under-segmentation in 3-D: structures shrink by a ball of ``strength`` mm."""
    return grow(mask, -strength, spacing=check_spacing(spacing, mask.ndim), classes=classes,
                ball=True)


def grow_structures(mask: np.ndarray, distance: float, *,
                    spacing: Sequence[float] | None = None,
                    classes: Sequence[int] | None = None) -> np.ndarray:
    """Grow or shrink the chosen structures of a 2-D or 3-D label map by ``distance`` mm.

    Every boundary moves along its normal by ``distance`` mm: out (the structure grows) when
    positive, in when negative. The structure's signed distance map
    (:func:`noisyseg.evaluate.signed_distance`, exact Euclidean distances honouring
    anisotropic ``spacing``, boundaries half-way between voxels) thresholded at
    ``distance``: the inverse of what :func:`noisyseg.evaluate.boundary_offset` measures, so
    moving by a measured offset undoes it (refurbishment's ``debias`` mode). Grown
    structures are painted over their neighbours; voxels a shrunk one gives up take the
    nearest other label. A 2-D map ``(H, W)`` takes two spacing values and is grown as a
    one-slice volume.

    Parameters
    ----------
    mask : (H, W) or (D, H, W) integer ndarray
        Label map, 0 the background; not modified.
    distance : float
        Distance in mm each boundary moves: > 0 grows, < 0 shrinks, 0 leaves it as it is.
    spacing : sequence of float, optional
        Voxel size in mm per array axis (2 or 3 positive values); default 1 mm.
    classes : sequence of int, optional
        Labels to move; default every foreground label present.

    Returns
    -------
    ndarray
        A new label map of ``mask``'s shape and dtype.

    Raises
    ------
    ConfigError
        ``spacing`` does not hold one positive value per axis of ``mask``.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 1  # 8 x 8 px of 1 mm
    >>> int(grow_structures(mask, 1.0).sum()), int(grow_structures(mask, -1.0).sum())
    (100, 36)
    >>> int(grow_structures(mask, 2.0, spacing=(2.0, 2.0)).sum())  # 2 mm: 1 px of 2 mm
    100
    >>> vol = np.zeros((8, 16, 16), np.uint8); vol[2:6, 4:12, 4:12] = 1
    >>> out = grow_structures(vol, 1.0, spacing=(2.0, 1.0, 1.0))
    >>> out.shape, out.dtype, int(out.sum())  # 1 mm is half a 2-mm slice: 4 slices of 10 x 10
    ((8, 16, 16), dtype('uint8'), 400)
    >>> grow_structures(mask, 1.0, spacing=(1.0,))
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: spacing: expected 2 positive values (mm), got (1.0,)
    """
    m = np.asarray(mask)
    if m.ndim == 2:
        sp2 = check_spacing(spacing, 2)
        return grow_structures(m[None], distance, spacing=(float(sp2.max()), *sp2),
                               classes=classes)[0]
    return grow(m, distance, spacing=check_spacing(spacing, m.ndim), classes=classes)


def _unit_vector(rng: np.random.Generator, azimuth: float | None,
                 elevation: float | None) -> np.ndarray:
    """A direction in array order (z, y, x): uniform on the sphere, or from the given angles.

    ``azimuth``: degrees in the slice plane, counter-clockwise from +x (0: right, 90: up);
    ``elevation``: degrees out of the plane towards +z.
    """
    v = rng.standard_normal(3)  # always drawn: the same draws whatever the options
    if azimuth is None and elevation is None:
        return v / max(float(np.linalg.norm(v)), 1e-12)
    az, el = np.deg2rad(float(azimuth or 0.0)), np.deg2rad(float(elevation or 0.0))
    return np.array([np.sin(el), -np.cos(el) * np.sin(az), np.cos(el) * np.cos(az)])


def shift3d(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
            spacing: Sequence[float] | None = None, classes: Sequence[int] | None = None,
            azimuth: float | None = None, elevation: float | None = None) -> np.ndarray:
    """Misplaced structures in 3-D: a displacement of ``strength`` mm.

    Direction uniform on the sphere per sample, or fixed by ``azimuth`` / ``elevation``
    (degrees) to make the error systematic. Sub-voxel shifts interpolate linearly.
    """
    sp = check_spacing(spacing, mask.ndim)
    vox = _unit_vector(rng, azimuth, elevation) * strength / sp
    margin = tuple(int(np.ceil(abs(v))) + 2 for v in vox)
    parts = {}
    for c, tight in class_boxes(mask, classes).items():
        box = grown(tight, margin, mask.shape)
        sub = (mask[box] == c).astype(np.float32)
        moved = ndi.shift(sub, vox, order=1, mode="nearest", prefilter=False)
        parts[c] = (box, moved >= 0.5)
    return compose_boxes(mask, parts, reach=int(np.ceil(float(np.abs(vox[1:]).max()))) + 1)


def _cubic_weights(n: int, step: float, size: int) -> np.ndarray:
    """(n, size) Catmull-Rom weights sampling a grid of knots ``step`` voxels apart."""
    t = np.arange(n) / step + 1.0  # knot 0 lies one step before voxel 0
    i = np.floor(t).astype(int)
    f = t - i
    w = np.zeros((n, size))
    coef = [(-0.5 * f ** 3 + f ** 2 - 0.5 * f), (1.5 * f ** 3 - 2.5 * f ** 2 + 1),
            (-1.5 * f ** 3 + 2 * f ** 2 + 0.5 * f), (0.5 * f ** 3 - 0.5 * f ** 2)]
    for k, cf in enumerate(coef):
        np.add.at(w, (np.arange(n), np.clip(i - 1 + k, 0, size - 1)), cf)
    return w


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sp: np.ndarray,
                  scale: float, box: Box, n_fields: int) -> np.ndarray:
    """``n_fields`` smooth random fields over ``box``, each N(0, 1) at every voxel.

    Standard normal knots on a grid ``scale`` mm apart covering the whole volume (so the
    draws do not depend on the box, hence not on strength), interpolated by separable
    Catmull-Rom cubics and divided by their exact pointwise standard deviation.
    """
    steps = [max(scale / s, 1.0) for s in sp]
    sizes = [int(np.ceil(n / st)) + 4 for n, st in zip(shape, steps, strict=True)]
    knots = rng.standard_normal((n_fields, *sizes))
    ws = [_cubic_weights(n, st, sz)[b] for n, st, sz, b in zip(shape, steps, sizes, box, strict=True)]
    f = knots
    for ax, w in enumerate(ws):
        f = np.moveaxis(np.tensordot(f, w, axes=([ax + 1], [1])), -1, ax + 1)
    sd = np.ones(())
    for ax, w in enumerate(ws):
        shp = [1] * len(ws)
        shp[ax] = -1
        sd = sd * np.sqrt((w ** 2).sum(axis=1)).reshape(shp)
    return (f / sd).astype(np.float32)


def natural3d(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
              spacing: Sequence[float] | None = None, classes: Sequence[int] | None = None,
              scale: float = 30.0, bias: float = 0.0) -> np.ndarray:
    """Freehand-contouring error in 3-D: every surface moves along its normal by a smooth
    random field (sd ``strength`` mm, correlation length ``scale`` mm; one field per class)
    plus a constant ``bias`` mm (outwards when positive: an annotator who draws wide).

    The random part is clipped at 4 sd. The bias is the systematic part of an annotator's
    error, the field its random part (``noisyseg raters`` measures both); the draws do not
    depend on ``bias``. At ``strength`` 0 the mask is returned unchanged (the bias too: the
    model's strength is what calibration varies).
    """
    if scale <= 0:
        raise ConfigError(f"natural: scale must be > 0 mm, got {scale}")
    if not np.isfinite(bias):
        raise ConfigError(f"natural: bias must be a finite distance in mm, got {bias}")
    sp = check_spacing(spacing, mask.ndim)
    boxes = class_boxes(mask, classes)
    parts = {}
    reach_mm = 4.0 * strength
    grow = reach_mm + abs(float(bias))
    for c in sorted(boxes):
        box = grown(boxes[c], margin_for(grow, sp), mask.shape)
        field = _smooth_field(rng, mask.shape, sp, scale, box, 1)[0]
        sdf = signed_distance(mask[box] == c, spacing=sp)
        parts[c] = (box, sdf < np.clip(field * strength, -reach_mm, reach_mm) + float(bias))
    return compose_boxes(mask, parts, reach=reach_for(grow, sp))


def boundary3d(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
               spacing: Sequence[float] | None = None, classes: Sequence[int] | None = None,
               scale: float = 30.0) -> np.ndarray:
    """Random boundary error in 3-D: a smooth random displacement field (sd ``strength`` mm
    per axis, correlation length ``scale`` mm) warps the label map (nearest neighbour)."""
    if scale <= 0:
        raise ConfigError(f"boundary: scale must be > 0 mm, got {scale}")
    sp = check_spacing(spacing, mask.ndim)
    fg = bbox(mask)
    if fg is None:
        return mask.copy()
    reach_mm = 4.0 * strength
    box = grown(fg, margin_for(reach_mm, sp), mask.shape)
    disp = _smooth_field(rng, mask.shape, sp, scale, box, mask.ndim)
    disp = np.clip(disp * strength, -reach_mm, reach_mm) / sp.reshape((-1,) + (1,) * mask.ndim)
    grid = np.indices(disp.shape[1:], dtype=np.float32)
    for ax in range(mask.ndim):
        grid[ax] += box[ax].start
    warped = ndi.map_coordinates(mask, grid + disp, order=0, mode="nearest")
    out = mask.copy()
    targets = set(class_boxes(mask, classes))
    if targets == set(class_boxes(mask, None)):
        out[box] = warped
        return out
    parts = {c: (box, warped == c) for c in targets}
    return compose_boxes(mask, parts, reach=reach_for(reach_mm, sp))


def merge3d(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
            spacing: Sequence[float] | None = None, classes: Sequence[int] | None = None,
            source: int | None = None, target: int | None = None) -> np.ndarray:
    """Structural error in 3-D: the part of ``source`` within ``strength`` of its depth (mm,
    from ``target``) is labelled ``target`` (default: the label sharing most surface)."""
    if strength > 1:
        raise ConfigError(f"merge: strength is a fraction in [0, 1], got {strength}")
    src = pick_source(mask, classes, source)
    if src is None or not (mask == src).any():
        return mask.copy()
    tgt = neighbour(mask, src, connectivity=1) if target is None else int(target)
    return relabel_by_depth(mask, strength, src, tgt, spacing=check_spacing(spacing, mask.ndim),
                            local=True)


def omit3d(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
           spacing: Sequence[float] | None = None, classes: Sequence[int] | None = None,
           source: int | None = None) -> np.ndarray:
    """Structural error in 3-D: ``source`` is removed from the outside in, by ``strength`` of
    its depth (1 omits the whole structure)."""
    if strength > 1:
        raise ConfigError(f"omit: strength is a fraction in [0, 1], got {strength}")
    src = pick_source(mask, classes, source)
    if src is None:
        return mask.copy()
    return relabel_by_depth(mask, strength, src, 0, spacing=check_spacing(spacing, mask.ndim),
                            local=True)


#: Volumetric implementations and their strength units, by model name.
VOLUMETRIC: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "natural": (natural3d, "mm (sd of the smooth normal displacement of every surface)"),
    "boundary": (boundary3d, "mm (sd of a smooth random 3-D displacement field, per axis)"),
    "dilate": (dilate3d, "mm (ball radius)"),
    "erode": (erode3d, "mm (ball radius)"),
    "shift": (shift3d, "mm (displacement)"),
    "merge": (merge3d, "fraction of the structure relabelled (0..1)"),
    "omit": (omit3d, "fraction of the structure removed (0..1)"),
}
