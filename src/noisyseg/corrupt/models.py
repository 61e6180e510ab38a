"""Error models: functions that simulate annotation errors on one label mask.

Every model has the signature ``fn(mask, strength, *, rng, classes=None, **options)``:

- ``mask`` : (H, W) integer ndarray, any number of classes (0 is the background); volumes
  go through :class:`ErrorModel`, slice by slice or with the model's 3-D form
  (:mod:`noisyseg.corrupt.volumetric`);
- ``strength`` : float >= 0, the size of the error (its unit is in each docstring);
  ``strength == 0`` returns an unchanged copy;
- ``rng`` : :class:`numpy.random.Generator`, the only source of randomness. The random
  draws do not depend on ``strength`` (a model draws standard variates and scales them), so
  with the same generator state the error grows smoothly with strength: this is what makes
  calibration by bisection fast and reproducible (common random numbers);
- ``classes`` : foreground labels to corrupt (default: every foreground label present).

They return a new mask of the same shape and dtype whose labels are a subset of the
declared labels (a model never invents a label). The input is never modified.

Models are registered by name in :data:`ERROR_MODELS`; :func:`get_model` looks them up.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import cv2
import numpy as np
from scipy.interpolate import CubicSpline

from noisyseg._validate import check_label_mask, check_rng
from noisyseg.corrupt._geometry import (
    bbox,
    class_boxes,
    class_counts,
    compose,
    compose_boxes,
    grow,
    grown,
    neighbour,
    pick_source,
    relabel_by_depth,
    signed_distance_near,
    target_classes,
    union,
)
from noisyseg.corrupt.volumetric import VOLUMETRIC, slicewise
from noisyseg.errors import ConfigError, DataError
from noisyseg.evaluate import signed_distance

__all__ = [
    "ERROR_MODELS",
    "ErrorModel",
    "boundary",
    "choppy",
    "dilate",
    "erode",
    "get_model",
    "merge",
    "natural",
    "omit",
    "random_flip",
    "register",
    "shift",
]

ErrorFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class ErrorModel:
    """A registered error model (validates its inputs, then calls ``fn``).

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(mask, strength, *, rng, classes=None, **options) -> mask``.
    unit : str
        What ``strength`` measures, e.g. ``"pixels (sd of contour offsets)"``.
    kind : {'random', 'systematic', 'structural'}
        Random: unbiased per-sample errors; systematic: the same bias on every sample;
        structural: a structure merged, omitted or its boundary misplaced.
    max_strength : callable
        ``max_strength(shape) -> float``: the largest strength worth trying (calibration
        searches ``[0, max_strength]``); ``shape`` in mm for volumetric mode.
    volumetric : callable, optional
        The 3-D form, ``fn(mask, strength, *, rng, spacing, classes=None, **options)``
        (:mod:`noisyseg.corrupt.volumetric`); without it volumes are corrupted slice by slice.
    volume_unit : str
        What ``strength`` measures in volumetric mode.
    """

    name: str
    fn: ErrorFn
    unit: str
    kind: str
    max_strength: Callable[[tuple[int, ...]], float]
    volumetric: ErrorFn | None = None
    volume_unit: str = ""

    @property
    def summary(self) -> str:
        """First line of the model's docstring."""
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    @property
    def options(self) -> dict[str, object]:
        """Model-specific keyword options and their defaults."""
        return dict(_keyword_options(self.fn))

    @property
    def modes(self) -> tuple[str, ...]:
        """How the model applies to a volume: ``'slicewise'`` always, ``'volumetric'`` when it
        has a 3-D implementation."""
        return ("slicewise", "volumetric") if self.volumetric is not None else ("slicewise",)

    def default_mode(self) -> str:
        """The mode used on a volume when none is given: volumetric where the model has one."""
        return self.modes[-1]

    def unit_for(self, mode: str | None = None, ndim: int = 2) -> str:
        """What ``strength`` measures for a mask of ``ndim`` dimensions in ``mode``."""
        if ndim == 2 or (mode or self.default_mode()) == "slicewise":
            return self.unit
        return self.volume_unit

    def options_for(self, mode: str | None = None, ndim: int = 2) -> dict[str, object]:
        """The model options accepted in ``mode`` (they differ between 2-D and volumetric)."""
        if ndim == 2 or (mode or self.default_mode()) == "slicewise" or self.volumetric is None:
            return self.options
        return {k: v for k, v in _keyword_options(self.volumetric) if k != "spacing"}

    def max_strength_for(self, shape: tuple[int, ...], *, mode: str | None = None, slice_axis: int = 0,
                         spacing: Sequence[float] | None = None) -> float:
        """The largest strength worth trying on masks of ``shape`` (calibration's bracket)."""
        if len(shape) == 2:
            return float(self.max_strength(shape))
        if (mode or self.default_mode()) == "slicewise":
            axis = slice_axis % len(shape)
            return float(self.max_strength(tuple(n for i, n in enumerate(shape) if i != axis)))
        sp = np.ones(len(shape)) if spacing is None else np.asarray(spacing, float)
        return float(self.max_strength(tuple(float(n * s) for n, s in zip(shape, sp, strict=True))))

    def __call__(self, mask: np.ndarray, strength: float, *, rng: np.random.Generator,
                 mode: str | None = None, slice_axis: int = 0,
                 spacing: Sequence[float] | None = None,
                 **options: object) -> np.ndarray:
        """Corrupt ``mask`` (2-D, or a volume) at ``strength``.

        Parameters
        ----------
        mask : (H, W) or (D, H, W) integer ndarray
        strength : float
            In the unit of :meth:`unit_for` (pixels in 2-D and slice-wise, mm volumetric).
        rng : numpy.random.Generator
        mode : {'slicewise', 'volumetric'}, optional
            For volumes only (see :mod:`noisyseg.corrupt.volumetric`); default volumetric where
            the model has a 3-D form, else slice-wise.
        slice_axis : int
            Slice axis for slice-wise mode (array order: 0 is z, the axial slices).
        spacing : sequence of float, optional
            Voxel size in mm per array axis, for volumetric mode (default 1 mm).
        """
        m = np.asarray(mask)
        if m.ndim not in (2, 3):
            raise DataError(f"mask: expected a 2-D or 3-D label mask, got shape {m.shape}")
        m = check_label_mask(m, ndim=m.ndim)
        check_rng(rng)
        s = float(strength)
        if not np.isfinite(s) or s < 0:
            raise ConfigError(f"strength: {self.name} needs a finite strength >= 0, got {strength}")
        if mode is not None and mode not in self.modes:
            raise ConfigError(f"mode: {self.name} has modes {list(self.modes)}, got {mode!r}")
        allowed = self.options_for(mode, m.ndim)
        unknown = set(options) - set(allowed)
        if unknown:
            raise ConfigError(f"{self.name}: unknown option(s) {sorted(unknown)}; "
                              f"expected {sorted(allowed)}")
        if s == 0:
            return m.copy()
        if m.ndim == 2:
            out = self.fn(m, s, rng=rng, **options)
        elif (mode or self.default_mode()) == "slicewise":
            out = slicewise(self.fn, m, s, rng=rng, slice_axis=slice_axis, **options)
        else:
            assert self.volumetric is not None
            out = self.volumetric(m, s, rng=rng, spacing=spacing, **options)
        return out.astype(m.dtype, copy=False)


@functools.cache
def _keyword_options(fn: ErrorFn) -> tuple[tuple[str, object], ...]:
    sig = inspect.signature(fn)
    return tuple((k, p.default) for k, p in sig.parameters.items()
                 if p.kind is p.KEYWORD_ONLY and k != "rng")


#: Registered error models by name.
ERROR_MODELS: dict[str, ErrorModel] = {}


def register(name: str, *, unit: str, kind: str,
             max_strength: Callable[[tuple[int, ...]], float]) -> Callable[[ErrorFn], ErrorFn]:
    """Decorator registering ``fn`` as the error model ``name``."""

    def deco(fn: ErrorFn) -> ErrorFn:
        model = ErrorModel(name, fn, unit, kind, max_strength)
        ERROR_MODELS[name] = model

        @functools.wraps(fn)
        def checked(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
                    **options: Any) -> np.ndarray:
            return ERROR_MODELS[name](mask, strength, rng=rng, **options)

        return checked

    return deco


def get_model(name: str) -> ErrorModel:
    """The registered model ``name``; raises :class:`ConfigError` listing the known ones."""
    try:
        return ERROR_MODELS[name]
    except KeyError:
        raise ConfigError(f"model: unknown error model {name!r}; expected one of "
                          f"{sorted(ERROR_MODELS)}") from None


def _quarter(shape: tuple[int, ...]) -> float:
    return min(shape) / 4.0


# --------------------------------------------------------------------------- random models
@register("natural", unit="pixels (sd of the smooth contour offsets)", kind="random",
          max_strength=_quarter)
def natural(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
            classes: Sequence[int] | None = None, points: int = 8,
            form: str = "normal") -> np.ndarray:
    """Freehand-contouring error: each contour moves in and out smoothly (study A's 'natural').

    ``form='normal'`` (default): for each connected component of each class, ``points``
    offsets are drawn from N(0, strength^2) (pixels) at equally spaced angles around the
    component's centroid (random phase) and joined by a closed (periodic) cubic spline. The
    boundary then moves along its normal by the spline's value at each pixel's angle: a
    raster form of study A's "move contour points towards/away from the centre and refill
    the polygon" that also handles holes, non-star shapes and structures touching the
    border. Its errors go out as much as in, on structures of any size.

    ``form='radial'``: study A's own procedure. Every contour (OpenCV's, outer ones and
    holes) gets its closed cubic curve of ``points`` N(0, strength^2) values along its
    length; each contour point moves along the ray from the contour's bounding-box centre,
    towards the centre by the curve's value (away when negative), at sub-pixel precision;
    the polygons are refilled and the holes cut out again. A point moved inwards by more
    than its distance to the centre lands on the far side, and concave contours fold.
    Both forms make structures larger on average (a boundary moved out by ``d`` adds more
    area than one moved in by ``d`` removes): a disc of radius 4 px at ``strength`` 2.4
    comes out 1.33x (normal) and 1.40x (radial) its area, a disc of 15 px at 9 px 1.20x
    and 1.27x (200 draws each; docs/choices.md, "natural: two forms").

    Parameters
    ----------
    strength : float
        Standard deviation of the offsets, in pixels.
    points : int
        Number of control points per contour (study A used "a handful": 5).
    form : {'normal', 'radial'}
        Boundary moved along its normal, or contour points along rays from the centre.
    """
    if points < 3:
        raise ConfigError(f"natural: points must be >= 3, got {points}")
    if form not in ("normal", "radial"):
        raise ConfigError(f"natural: form must be 'normal' or 'radial', got {form!r}")
    if form == "radial":
        return _natural_radial(mask, strength, rng=rng, classes=classes, points=int(points))
    basis = _periodic_basis(int(points))
    n_fine = basis.shape[0]
    # 1) components and their random curves (drawn class by class, component by component)
    comps: list[_Component] = []
    for c, crop in class_boxes(mask, classes).items():
        n, lab, stats, centroids = cv2.connectedComponentsWithStats(
            (mask[crop] == c).view(np.uint8), connectivity=8)
        for k in range(1, n):
            curve = basis @ rng.standard_normal(points) * strength
            comps.append(_Component(c, lab, crop, k, stats[k], centroids[k], curve,
                          rng.uniform(0, 2 * np.pi)))
    if not comps:
        return mask.copy()
    # 2) one working box holding every component grown by its largest offset (+ margin)
    reach = max(int(np.ceil(np.abs(cp.curve).max())) + 1 for cp in comps)
    work = grown(union(cp.box for cp in comps), reach + 3, mask.shape)
    oy, ox = work[0].start, work[1].start
    mw = mask[work]
    regions = {c: mw == c for c in dict.fromkeys(cp.cls for cp in comps)}
    # 3) each component's boundary moves along its normal by the curve at each pixel's angle
    for cp in comps:
        c, lab, k, cen, curve = cp.cls, cp.lab, cp.k, cp.centroid, cp.curve
        m_off = float(np.abs(curve).max())
        cy, cx = cp.crop[0].start, cp.crop[1].start
        by, bx = grown(cp.box, int(np.ceil(m_off)) + 2, mask.shape)
        by0, by1, bx0, bx1 = by.start, by.stop, bx.start, bx.stop
        # the class's component labels in the component's grown box (0 outside the crop)
        sub_lab = np.zeros((by1 - by0, bx1 - bx0), dtype=lab.dtype)
        iy0, ix0 = max(by0, cy), max(bx0, cx)
        iy1, ix1 = min(by1, cy + lab.shape[0]), min(bx1, cx + lab.shape[1])
        sub_lab[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0] = lab[iy0 - cy:iy1 - cy, ix0 - cx:ix1 - cx]
        own = sub_lab == k
        sdf = signed_distance(own, precise=False)
        # angle of every box pixel around the centroid (OpenCV's phase: 30x numpy's arctan2,
        # within 0.01 deg), as an index into the curve's n_fine (a power of two) samples
        gx = np.arange(bx0 - cx, bx1 - cx, dtype=np.float32) - np.float32(cen[0])
        gy = np.arange(by0 - cy, by1 - cy, dtype=np.float32) - np.float32(cen[1])
        ang = cv2.phase(np.repeat(gx[None, :], gy.size, axis=0), np.repeat(gy[:, None], gx.size, axis=1))
        per_rad = n_fine / (2 * np.pi)
        t = ang * np.float32(per_rad) + np.float32(n_fine + 0.5 - cp.phase * per_rad)
        inside = sdf < curve[t.astype(np.int32) & (n_fine - 1)]
        # the component gains the pixels now inside and loses its own pixels now outside;
        # other components' pixels stay as they are (the whole box: far from the boundary
        # ``inside`` is ``own``, so only a band around it changes)
        reg = regions[c][by0 - oy:by1 - oy, bx0 - ox:bx1 - ox]
        reg |= inside
        reg &= inside | ~own
    return compose(mask, regions, reach=reach, box=work)


def _natural_radial(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
                    classes: Sequence[int] | None, points: int) -> np.ndarray:
    """``natural(form='radial')``: contour points moved along rays from the contour's
    bounding-box centre, polygons refilled (sub-pixel: OpenCV's fixed point, 4 bits)."""
    basis = _periodic_basis(points)
    n_fine = basis.shape[0]
    regions: dict[int, np.ndarray] = {}
    reach = 1
    for c, crop in class_boxes(mask, classes).items():
        sub = np.ascontiguousarray(mask[crop] == c, dtype=np.uint8)
        contours, hierarchy = cv2.findContours(sub, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        region = np.zeros(mask.shape, dtype=np.uint8)
        outer, holes = [], []
        for k, cont in enumerate(contours):
            pts = cont[:, 0, :].astype(np.float64) + (crop[1].start, crop[0].start)  # (x, y)
            curve = basis @ rng.standard_normal(points) * strength
            reach = max(reach, int(np.ceil(np.abs(curve).max())) + 1)
            lo, hi = pts.min(0), pts.max(0)
            centre = lo + (hi - lo + 1) / 2.0  # cv2.boundingRect's x + w / 2, as study A
            ray = pts - centre
            norm = np.hypot(ray[:, 0], ray[:, 1])
            unit = np.divide(ray, norm[:, None], out=np.zeros_like(ray), where=norm[:, None] > 0)
            at = (np.arange(len(pts)) * n_fine // len(pts)).astype(np.int64)
            moved = pts - unit * curve[at][:, None]
            poly = np.round(moved * 16).astype(np.int32).reshape(-1, 1, 2)
            (holes if hierarchy[0][k][3] >= 0 else outer).append(poly)
        if outer:
            cv2.fillPoly(region, outer, 1, lineType=cv2.LINE_8, shift=4)
        if holes:
            cv2.fillPoly(region, holes, 0, lineType=cv2.LINE_8, shift=4)
        regions[c] = region.astype(bool)
    if not regions:
        return mask.copy()
    return compose(mask, regions, reach=reach)


class _Component(NamedTuple):
    """One connected component of a class, with its random contour offsets (``natural``)."""

    cls: int
    lab: np.ndarray  # component labels of the class's crop
    crop: tuple[slice, slice]
    k: int  # this component's label in ``lab``
    stats: np.ndarray  # OpenCV's x, y, width, height, area (crop coordinates)
    centroid: np.ndarray  # x, y (crop coordinates)
    curve: np.ndarray  # boundary offset (pixels) at n_fine angles
    phase: float

    @property
    def box(self) -> tuple[slice, slice]:
        """The component's tight bounding box in image coordinates."""
        x, y, bw, bh = (int(v) for v in self.stats[:4])
        return (slice(self.crop[0].start + y, self.crop[0].start + y + bh),
                slice(self.crop[1].start + x, self.crop[1].start + x + bw))


@lru_cache(maxsize=16)
def _periodic_basis(points: int, n_fine: int = 1024) -> np.ndarray:
    """Closed cubic spline through ``points`` equally spaced knots, as a linear map.

    Returns the (n_fine, points) matrix taking knot values to the curve sampled at
    ``n_fine`` equally spaced angles in [0, 2 pi).
    """
    theta = np.linspace(0, 2 * np.pi, points + 1)
    eye = np.vstack([np.eye(points), np.eye(points)[:1]])
    return CubicSpline(theta, eye, bc_type="periodic")(
        np.linspace(0, 2 * np.pi, n_fine, endpoint=False))


@register("choppy", unit="pixels (sd of run end-point offsets)", kind="random",
          max_strength=_quarter)
def choppy(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
           classes: Sequence[int] | None = None, axis: int = 1) -> np.ndarray:
    """Slice-by-slice annotation error: every run of a row moves its ends (study A's 'choppy').

    For every row (``axis=1``) or column (``axis=0``), each run of consecutive pixels of a
    class has its start and end moved independently by round(N(0, strength^2)) pixels.
    The result is a jagged boundary centred on the truth.

    Parameters
    ----------
    strength : float
        Standard deviation of the end-point offsets, in pixels.
    axis : {0, 1}
        1: runs along rows (horizontal jaggedness); 0: along columns.
    """
    if axis not in (0, 1):
        raise ConfigError(f"choppy: axis must be 0 or 1, got {axis}")
    m = mask if axis == 1 else mask.T
    h, w = m.shape
    fg = bbox(m)
    targets = [] if fg is None else target_classes(m[fg], classes)
    if not targets:
        return mask.copy()
    # every label change along a row ends a run of the left label and starts one of the
    # right label: one pass over the rows holding structures finds every run of every class
    r0, r1 = fg[0].start, fg[0].stop
    pad = np.full((r1 - r0, w + 2), -1, dtype=np.int16)
    pad[:, 1:-1] = m[r0:r1]
    at = np.flatnonzero(pad[:, 1:] != pad[:, :-1])
    row, col = np.divmod(at, w + 1)
    left, right = pad[:, :-1].ravel()[at], pad[:, 1:].ravel()[at]
    reach = int(np.ceil(4 * strength)) + 1
    parts = {}
    for c in targets:
        starts, ends = right == c, left == c  # runs in raster order: the i-th start, i-th end
        rs, s, e = row[starts], col[starts], col[ends]
        z = rng.standard_normal((2, rs.size))
        s2 = np.clip(s + np.rint(z[0] * strength).astype(np.int64), 0, w)
        e2 = np.clip(e + np.rint(z[1] * strength).astype(np.int64), 0, w)
        # rows keep their runs: old and new runs lie in the class's rows, between the
        # leftmost start and the rightmost end, old or new
        y0, y1 = int(rs[0]), int(rs[-1]) + 1
        x0, x1 = min(int(s.min()), int(s2.min())), max(int(e.max()), int(e2.max()))
        ok = e2 > s2
        rs, s2, e2 = rs[ok], s2[ok], e2[ok]
        bw = x1 - x0 + 1
        n = (y1 - y0) * bw
        idx = (rs - y0) * bw - x0
        acc = np.bincount(idx + s2, minlength=n) - np.bincount(idx + e2, minlength=n)
        new = np.cumsum(acc.reshape(y1 - y0, bw), axis=1)[:, :-1] > 0
        box = (slice(y0 + r0, y1 + r0), slice(x0, x1))
        parts[c] = (box, new) if axis == 1 else (box[::-1], new.T)
    return compose_boxes(mask, parts, reach=reach)


@register("random_flip", unit="probability that a foreground pixel flips", kind="random",
          max_strength=lambda shape: 1.0)
def random_flip(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
                classes: Sequence[int] | None = None) -> np.ndarray:
    """Classification-style noise: pixels flip independently (study A's 'random').

    Per class, every pixel of the class becomes background with probability ``p`` and every
    background pixel becomes the class with probability ``p * n_class / n_background``, so
    the expected size of every class is unchanged.

    Parameters
    ----------
    strength : float
        The flip probability ``p`` of foreground pixels, in [0, 1].
    """
    if strength > 1:
        raise ConfigError(f"random_flip: strength is a probability in [0, 1], got {strength}")
    # one uniform draw per pixel, as 16-bit integers: probabilities resolve to 1/65536
    u = rng.integers(0, 65536, size=mask.shape, dtype=np.uint16)
    counts = class_counts(mask)
    targets = target_classes(mask, classes, counts)
    n_bg = int(counts[0])
    out = mask.copy()
    fg = mask > 0 if len(targets) == np.count_nonzero(counts[1:]) else np.isin(mask, targets)
    out[fg & (u < round(strength * 65536))] = 0
    if n_bg and targets:
        # background pixel with u in [cum[k-1], cum[k]) becomes targets[k]
        q = np.cumsum([strength * counts[c] / n_bg for c in targets])
        cum = np.rint(np.minimum(q, 1.0) * 65536).astype(np.int64)
        bg = (mask == 0) & (u < cum[-1])
        out[bg] = np.asarray(targets, dtype=mask.dtype)[np.searchsorted(cum, u[bg], side="right")]
    return out


@register("boundary", unit="pixels (sd of a smooth random displacement field)",
          kind="random", max_strength=lambda shape: min(shape) / 8.0)
def boundary(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
             classes: Sequence[int] | None = None, scale: float = 16.0) -> np.ndarray:
    """Random boundary error (study B): every boundary moves under a smooth random warp.

    A random displacement field, smooth over ``scale`` pixels (cubic interpolation of
    standard normal values on a grid of that spacing) and scaled to a standard deviation of
    ``strength`` pixels per axis, warps the label map (nearest neighbour). Shared boundaries
    (cavity/myocardium) move together, so no gaps open between structures. Unbiased: the
    expected displacement is zero.

    Parameters
    ----------
    strength : float
        Standard deviation of the displacement, in pixels.
    scale : float
        Correlation length of the displacement field, in pixels.
    """
    if scale < 1:
        raise ConfigError(f"boundary: scale must be >= 1 pixel, got {scale}")
    h, w = mask.shape
    gh, gw = int(np.ceil(h / scale)) + 1, int(np.ceil(w / scale)) + 1
    coarse = rng.standard_normal((2, gh, gw)).astype(np.float32)
    # cubic up-sampling of the coarse grid; the field is then scaled to sd == strength
    fy, fx = (cv2.resize(c, (int(gw * scale), int(gh * scale)),
                         interpolation=cv2.INTER_CUBIC)[:h, :w] for c in coarse)
    fy *= strength / max(float(fy.std()), 1e-8)
    fx *= strength / max(float(fx.std()), 1e-8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(mask.astype(np.uint8), xx + fx, yy + fy, interpolation=cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_REPLICATE)
    targets = target_classes(mask, classes)
    if targets == target_classes(mask, None):
        return warped.astype(mask.dtype)
    regions = {c: warped == c for c in targets}
    return compose(mask, regions, reach=int(np.ceil(4 * strength)) + 1)


# ----------------------------------------------------------------------- systematic models
@register("dilate", unit="pixels (Euclidean dilation radius)", kind="systematic",
          max_strength=_quarter)
def dilate(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
           classes: Sequence[int] | None = None) -> np.ndarray:
    """Systematic over-segmentation: the chosen structures grow by ``strength`` pixels.

    Dilation by a Euclidean disk (fractional radii allowed), painted over the neighbours.
    Deterministic: ``rng`` is accepted for the common signature and not used.

    Parameters
    ----------
    strength : float
        Dilation radius, in pixels.
    """
    return grow(mask, strength, classes=classes)


@register("erode", unit="pixels (Euclidean erosion radius)", kind="systematic",
          max_strength=_quarter)
def erode(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
          classes: Sequence[int] | None = None) -> np.ndarray:
    """Systematic under-segmentation: the chosen structures shrink by ``strength`` pixels.

    Pixels given up take the nearest other label (an eroded LV cavity thickens the
    myocardium). Deterministic: ``rng`` is accepted for the common signature and not used.

    Parameters
    ----------
    strength : float
        Erosion radius, in pixels.
    """
    return grow(mask, -strength, classes=classes)


@register("shift", unit="pixels (displacement)", kind="systematic",
          max_strength=lambda shape: min(shape) / 2.0)
def shift(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
          classes: Sequence[int] | None = None, angle: float | None = None) -> np.ndarray:
    """Misplaced structures: the chosen structures move by ``strength`` pixels.

    Sub-pixel shifts interpolate the signed distance map, so the error grows smoothly.

    Parameters
    ----------
    strength : float
        Displacement, in pixels.
    angle : float, optional
        Direction in degrees, counter-clockwise from the +column axis (0: right, 90: up).
        The same angle on every sample makes the error systematic; ``None`` draws a
        random direction per sample.
    """
    a = np.deg2rad(rng.uniform(0, 360) if angle is None else float(angle))
    dy, dx = -np.sin(a) * strength, np.cos(a) * strength
    parts = {}
    affine = np.float32([[1, 0, dx], [0, 1, dy]])
    for c, tight in class_boxes(mask, classes).items():
        box = grown(tight, int(np.ceil(strength)) + 2, mask.shape)
        # the sign of the interpolated signed distance only needs it next to the boundary
        sdf = signed_distance_near(mask[box] == c)
        moved = cv2.warpAffine(sdf, affine, (sdf.shape[1], sdf.shape[0]),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        parts[c] = (box, moved < 0)
    return compose_boxes(mask, parts, reach=int(np.ceil(strength)) + 1)


@register("merge", unit="fraction of the structure relabelled (0..1)", kind="structural",
          max_strength=lambda shape: 1.0)
def merge(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
          classes: Sequence[int] | None = None, source: int | None = None,
          target: int | None = None) -> np.ndarray:
    """Structural error: part or all of a structure is labelled as its neighbour.

    Pixels of ``source`` closer to ``target`` than ``strength`` times the source's depth
    are relabelled ``target``: 0.3 moves the LV/LA boundary 30% into the atrium, 1 merges
    the atrium into the cavity. Deterministic.

    Parameters
    ----------
    strength : float
        Fraction in [0, 1] of the source's depth (from the target) relabelled.
    source : int, optional
        Label to merge; default the first of ``classes``, else the largest label present.
    target : int, optional
        Label to merge into; default the foreground label sharing the longest boundary.
    """
    if strength > 1:
        raise ConfigError(f"merge: strength is a fraction in [0, 1], got {strength}")
    counts = class_counts(mask)
    src = pick_source(mask, classes, source, counts=counts)
    if src is None or src not in target_classes(mask, None, counts):
        return mask.copy()
    tgt = neighbour(mask, src, connectivity=2) if target is None else int(target)
    return relabel_by_depth(mask, strength, src, tgt)


@register("omit", unit="fraction of the structure removed (0..1)", kind="structural",
          max_strength=lambda shape: 1.0)
def omit(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
         classes: Sequence[int] | None = None, source: int | None = None) -> np.ndarray:
    """Structural error: a structure is partly or wholly left unlabelled (background).

    Pixels of ``source`` within ``strength`` times its depth of the background are removed,
    from the outside in; 1 omits the structure. Deterministic.

    Parameters
    ----------
    strength : float
        Fraction in [0, 1] of the structure's depth removed.
    source : int, optional
        Label to omit; default the first of ``classes``, else the largest label present.
    """
    if strength > 1:
        raise ConfigError(f"omit: strength is a fraction in [0, 1], got {strength}")
    src = pick_source(mask, classes, source)
    if src is None:
        return mask.copy()
    return relabel_by_depth(mask, strength, src, 0)


def _add_volumetric() -> None:
    """Attach the 3-D forms of :mod:`noisyseg.corrupt.volumetric` (random_flip is already n-D)."""
    from dataclasses import replace

    forms = dict(VOLUMETRIC)
    forms["random_flip"] = (random_flip.__wrapped__,  # type: ignore[attr-defined]
                            "probability that a foreground voxel flips")
    for name, (fn, unit) in forms.items():
        ERROR_MODELS[name] = replace(ERROR_MODELS[name], volumetric=_with_spacing(fn), volume_unit=unit)


def _with_spacing(fn: ErrorFn) -> ErrorFn:
    if "spacing" in inspect.signature(fn).parameters:
        return fn

    @functools.wraps(fn)
    def call(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
             spacing: Sequence[float] | None = None, **options: object) -> np.ndarray:
        return fn(mask, strength, rng=rng, **options)

    return call


_add_volumetric()
