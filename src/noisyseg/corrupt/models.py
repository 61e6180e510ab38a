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
    """Hold a registered error model: validate its inputs, then call ``fn`` (2-D or 3-D).

    Built by :func:`register` and looked up with :func:`get_model`; frozen. Calling it
    corrupts a 2-D mask or a volume (:meth:`__call__`).

    Parameters
    ----------
    name : str
        See Attributes.
    fn : callable
        See Attributes.
    unit : str
        See Attributes.
    kind : {'random', 'systematic', 'structural'}
        See Attributes.
    max_strength : callable
        See Attributes.
    volumetric : callable, optional
        See Attributes; default ``None`` (volumes go slice by slice).
    volume_unit : str, optional
        See Attributes; default ``""``.

    Attributes
    ----------
    name : str
        Registered name, e.g. ``"dilate"`` (the key in :data:`ERROR_MODELS`).
    fn : callable
        The 2-D model, ``fn(mask, strength, *, rng, classes=None, **options) -> mask``.
    unit : str
        What ``strength`` measures in 2-D and slice-wise, e.g.
        ``"pixels (Euclidean dilation radius)"``.
    kind : {'random', 'systematic', 'structural'}
        Random: unbiased per-sample errors; systematic: the same bias on every sample;
        structural: a structure merged, omitted or its boundary misplaced.
    max_strength : callable
        ``max_strength(shape) -> float``: the largest strength worth trying (calibration
        searches ``[0, max_strength]``); ``shape`` in px, or in mm for volumetric mode.
    volumetric : callable or None
        The 3-D form, ``fn(mask, strength, *, rng, spacing, classes=None, **options)``
        (:mod:`noisyseg.corrupt.volumetric`); ``None``: volumes are corrupted slice by slice.
    volume_unit : str
        What ``strength`` measures in volumetric mode (``""`` without a 3-D form).

    Examples
    --------
    >>> m = get_model("dilate")
    >>> m.kind, m.modes, m.unit_for(ndim=3)
    ('systematic', ('slicewise', 'volumetric'), 'mm (ball radius)')
    >>> vol = np.zeros((8, 16, 16), np.uint8); vol[2:6, 4:12, 4:12] = 1  # 4 slices of 8 x 8
    >>> int(m(vol, 1.0, rng=np.random.default_rng(0)).sum())  # 1-mm ball: 4 * 96 + 2 * 64
    512
    >>> int(m(vol, 1.0, rng=np.random.default_rng(0), mode="slicewise").sum())  # 4 * 10 * 10
    400
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
        """str: First line of the model's docstring (what ``noisyseg corrupt --list`` shows).

        Examples
        --------
        >>> get_model("erode").summary.split(":")[0]
        'Shrink the chosen structures by ``strength`` pixels'
        """
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    @property
    def options(self) -> dict[str, object]:
        """dict: Model-specific keyword options of the 2-D model and their defaults.

        Examples
        --------
        >>> get_model("natural").options
        {'classes': None, 'points': 8, 'form': 'normal'}
        """
        return dict(_keyword_options(self.fn))

    @property
    def modes(self) -> tuple[str, ...]:
        """tuple of str: How the model applies to a volume: ``'slicewise'`` always,
        ``'volumetric'`` too when it has a 3-D implementation.

        Examples
        --------
        >>> get_model("choppy").modes, get_model("shift").modes
        (('slicewise',), ('slicewise', 'volumetric'))
        """
        return ("slicewise", "volumetric") if self.volumetric is not None else ("slicewise",)

    def default_mode(self) -> str:
        """Return the mode used on a volume when none is given: volumetric where there is one.

        Returns
        -------
        {'slicewise', 'volumetric'}

        Examples
        --------
        >>> get_model("choppy").default_mode(), get_model("natural").default_mode()
        ('slicewise', 'volumetric')
        """
        return self.modes[-1]

    def unit_for(self, mode: str | None = None, ndim: int = 2) -> str:
        """Return what ``strength`` measures for a mask of ``ndim`` dimensions in ``mode``.

        Parameters
        ----------
        mode : {'slicewise', 'volumetric'}, optional
            Default :meth:`default_mode`; ignored for 2-D masks.
        ndim : int, default 2
            Dimensions of the mask (2 or 3).

        Returns
        -------
        str
            :attr:`unit` (px) in 2-D and slice-wise, :attr:`volume_unit` (mm) volumetric.

        Examples
        --------
        >>> m = get_model("shift")
        >>> m.unit_for(), m.unit_for("slicewise", 3), m.unit_for("volumetric", 3)
        ('pixels (displacement)', 'pixels (displacement)', 'mm (displacement)')
        """
        if ndim == 2 or (mode or self.default_mode()) == "slicewise":
            return self.unit
        return self.volume_unit

    def options_for(self, mode: str | None = None, ndim: int = 2) -> dict[str, object]:
        """Return the model options accepted in ``mode`` (2-D and volumetric forms differ).

        Parameters
        ----------
        mode : {'slicewise', 'volumetric'}, optional
            Default :meth:`default_mode`; ignored for 2-D masks.
        ndim : int, default 2
            Dimensions of the mask (2 or 3).

        Returns
        -------
        dict
            Option names and their defaults (``spacing`` left out: it is not an option).

        Examples
        --------
        >>> get_model("shift").options_for("volumetric", 3)
        {'classes': None, 'azimuth': None, 'elevation': None}
        """
        if ndim == 2 or (mode or self.default_mode()) == "slicewise" or self.volumetric is None:
            return self.options
        return {k: v for k, v in _keyword_options(self.volumetric) if k != "spacing"}

    def max_strength_for(self, shape: tuple[int, ...], *, mode: str | None = None, slice_axis: int = 0,
                         spacing: Sequence[float] | None = None) -> float:
        """Return the largest strength worth trying on masks of ``shape`` (calibration's bracket).

        Parameters
        ----------
        shape : tuple of int
            Mask shape, (H, W) or (D, H, W), in voxels.
        mode : {'slicewise', 'volumetric'}, optional
            Default :meth:`default_mode`; ignored for 2-D shapes.
        slice_axis : int, default 0
            Slice axis in slice-wise mode (left out of ``shape``).
        spacing : sequence of float, optional
            Voxel size in mm per axis for volumetric mode (default 1 mm): the volume's
            extent in mm goes to :attr:`max_strength`.

        Returns
        -------
        float
            In the unit of :meth:`unit_for` (px, mm or a fraction).

        Examples
        --------
        >>> m = get_model("dilate")  # a quarter of the smallest side: 32 px, 8 * 2.5 mm
        >>> m.max_strength_for((64, 32)), m.max_strength_for((8, 64, 64), spacing=(2.5, 1, 1))
        (8.0, 5.0)
        """
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
            Label mask, 0 the background; not modified.
        strength : float
            Size of the error, >= 0, in the unit of :meth:`unit_for` (px in 2-D and
            slice-wise, mm volumetric, or a fraction); 0 returns an unchanged copy.
        rng : numpy.random.Generator
            The only source of randomness.
        mode : {'slicewise', 'volumetric'}, optional
            For volumes only (see :mod:`noisyseg.corrupt.volumetric`); default volumetric where
            the model has a 3-D form, else slice-wise.
        slice_axis : int, default 0
            Slice axis for slice-wise mode (array order: 0 is z, the axial slices).
        spacing : sequence of float, optional
            Voxel size in mm per array axis, for volumetric mode (default 1 mm).
        **options
            Model options (:meth:`options_for`), e.g. ``classes=(1,)``.

        Returns
        -------
        ndarray
            The corrupted mask, a new array of ``mask``'s shape and dtype.

        Raises
        ------
        DataError
            ``mask`` is not a 2-D or 3-D integer array.
        TypeError
            ``rng`` is not a :class:`numpy.random.Generator`.
        ConfigError
            ``strength`` negative or not finite, a ``mode`` the model lacks, an unknown
            option, or an invalid option value or ``spacing`` (raised by the model).

        Examples
        --------
        >>> mask = np.zeros((8, 8), np.int64); mask[2:6, 2:6] = 1
        >>> out = get_model("erode")(mask, 1.0, rng=np.random.default_rng(0))
        >>> out.dtype, int(out.sum())  # 4 x 4 -> 2 x 2
        (dtype('int64'), 4)
        >>> get_model("erode")(mask, 1.0, rng=np.random.default_rng(0), width=2)
        Traceback (most recent call last):
        ...
        noisyseg.errors.ConfigError: erode: unknown option(s) ['width']; expected ['classes']
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


#: Registered error models by name (:class:`ErrorModel`, filled by :func:`register`): the
#: random ``natural``, ``choppy``, ``random_flip`` and ``boundary``, the systematic ``dilate``,
#: ``erode`` and ``shift``, and the structural ``merge`` and ``omit``; the registry behind
#: ``noisyseg corrupt --list`` and :func:`get_model`.
ERROR_MODELS: dict[str, ErrorModel] = {}


def register(name: str, *, unit: str, kind: str,
             max_strength: Callable[[tuple[int, ...]], float]) -> Callable[[ErrorFn], ErrorFn]:
    """Return a decorator registering ``fn`` as the error model ``name``.

    The decorator stores ``ErrorModel(name, fn, unit, kind, max_strength)`` in
    :data:`ERROR_MODELS` (replacing a model of that name) and returns ``fn`` wrapped by the
    model's checks (:meth:`ErrorModel.__call__`: it then also takes volumes). Options are
    ``fn``'s keyword-only parameters after ``rng``; the first line of its docstring is the
    model's :attr:`~ErrorModel.summary`.

    Parameters
    ----------
    name : str
        Model name, the key in :data:`ERROR_MODELS`.
    unit : str
        What ``strength`` measures in 2-D, e.g. ``"pixels (displacement)"``.
    kind : {'random', 'systematic', 'structural'}
        The kind of error (not validated).
    max_strength : callable
        ``max_strength(shape) -> float``: the largest strength calibration tries on masks of
        ``shape`` (px; mm for volumetric mode).

    Returns
    -------
    callable
        The decorator: ``fn -> checked fn``.

    Examples
    --------
    >>> @register("keep", unit="pixels (unused)", kind="systematic",
    ...           max_strength=lambda shape: 1.0)
    ... def keep(mask, strength, *, rng, classes=None):
    ...     "Return the mask unchanged."
    ...     return mask.copy()
    >>> get_model("keep").summary, get_model("keep").options
    ('Return the mask unchanged.', {'classes': None})
    >>> keep(np.zeros((8, 8), np.uint8), -1.0, rng=np.random.default_rng(0))
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: strength: keep needs a finite strength >= 0, got -1.0
    >>> del ERROR_MODELS["keep"]  # leave the registry as it was
    """

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
    """Return the registered error model ``name`` (a key of :data:`ERROR_MODELS`).

    Parameters
    ----------
    name : str
        Model name, e.g. ``"natural"`` (see ``noisyseg corrupt --list``).

    Returns
    -------
    ErrorModel

    Raises
    ------
    ConfigError
        An unknown name; the message lists the known ones.

    Examples
    --------
    >>> sorted(ERROR_MODELS)
    ['boundary', 'choppy', 'dilate', 'erode', 'merge', 'natural', 'omit', 'random_flip', 'shift']
    >>> get_model("natural").kind
    'random'
    >>> get_model("blur")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: model: unknown error model 'blur'; expected one of [...]
    """
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
    """Move every contour in and out smoothly: freehand-contouring error (study A's 'natural').

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
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or in 3-D (``mode``).
    strength : float
        Standard deviation of the offsets, in px (>= 0; 0 returns an unchanged copy).
    rng : numpy.random.Generator
        The only source of randomness.
    classes : sequence of int, optional
        Foreground labels to corrupt; default every foreground label present.
    points : int, default 8
        Number of control points per contour, >= 3 (study A used "a handful": 5).
    form : {'normal', 'radial'}, default 'normal'
        Boundary moved along its normal, or contour points along rays from the centre.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, its labels a subset
        of ``mask``'s.

    Other Parameters
    ----------------
    mode, slice_axis, spacing : optional
        For volumes: see :meth:`ErrorModel.__call__`. The 3-D form (the default on volumes)
        takes ``strength`` in mm and the option ``scale`` (correlation length, mm, default
        30) instead of ``points`` and ``form``.

    Raises
    ------
    ConfigError
        ``points < 3`` or an unknown ``form`` (at ``strength > 0``), ``strength`` negative or
        not finite, an unknown option or ``mode``, or (volumes) ``scale <= 0`` or a bad
        ``spacing``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 1  # an 8 x 8 square
    >>> out = natural(mask, 1.0, rng=np.random.default_rng(0))
    >>> out.shape, out.dtype, np.unique(out).tolist()
    ((16, 16), dtype('uint8'), [0, 1])
    >>> from noisyseg.evaluate import dice
    >>> 0.8 < float(dice(out[None], mask[None], 2)[0]) < 1.0  # a 1-px error on an 8-px square
    True
    >>> np.array_equal(out, natural(mask, 1.0, rng=np.random.default_rng(0)))  # same seed
    True
    >>> natural(mask, 1.0, rng=np.random.default_rng(0), form="radial").shape
    (16, 16)
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
    """Move both ends of every run of a row: slice-by-slice annotation error (study A's 'choppy').

    For every row (``axis=1``) or column (``axis=0``), each run of consecutive pixels of a
    class has its start and end moved independently by round(N(0, strength^2)) pixels.
    The result is a jagged boundary centred on the truth.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice (choppy has no 3-D form).
    strength : float
        Standard deviation of the end-point offsets, in px (>= 0; 0 returns an unchanged copy).
    rng : numpy.random.Generator
        The only source of randomness.
    classes : sequence of int, optional
        Foreground labels to corrupt; default every foreground label present.
    axis : {0, 1}, default 1
        1: runs along rows (horizontal jaggedness); 0: along columns.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, its labels a subset
        of ``mask``'s.

    Other Parameters
    ----------------
    mode, slice_axis : optional
        For volumes: see :meth:`ErrorModel.__call__` (slice-wise only).

    Raises
    ------
    ConfigError
        ``axis`` not 0 or 1 (at ``strength > 0``), ``strength`` negative or not finite, an
        unknown option, or ``mode='volumetric'``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 1  # an 8 x 8 square
    >>> out = choppy(mask, 1.0, rng=np.random.default_rng(0))
    >>> out.shape, out.dtype, np.unique(out).tolist()
    ((16, 16), dtype('uint8'), [0, 1])
    >>> bool((out != mask).any()), bool((out.any(axis=1) == mask.any(axis=1)).all())  # same rows
    (True, True)
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
    """Flip pixels independently: classification-style noise (study A's 'random').

    Per class, every pixel of the class becomes background with probability ``p`` and every
    background pixel becomes the class with probability ``p * n_class / n_background``, so
    the expected size of every class is unchanged.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or as a whole (``mode``, the default).
    strength : float
        The flip probability ``p`` of foreground pixels, in [0, 1] (0 returns an unchanged
        copy).
    rng : numpy.random.Generator
        The only source of randomness.
    classes : sequence of int, optional
        Foreground labels to corrupt; default every foreground label present.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, its labels a subset
        of ``mask``'s.

    Other Parameters
    ----------------
    mode, slice_axis : optional
        For volumes: see :meth:`ErrorModel.__call__`.

    Raises
    ------
    ConfigError
        ``strength`` above 1, negative or not finite, or an unknown option or ``mode``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 1  # an 8 x 8 square
    >>> rng = np.random.default_rng(0)
    >>> out = random_flip(mask, 0.2, rng=rng)
    >>> out.shape, out.dtype, np.unique(out).tolist()
    ((16, 16), dtype('uint8'), [0, 1])
    >>> sizes = [int(random_flip(mask, 0.2, rng=rng).sum()) for _ in range(200)]
    >>> bool(abs(np.mean(sizes) - 64) < 2)  # the expected size is unchanged
    True
    >>> random_flip(mask, 1.5, rng=rng)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: random_flip: strength is a probability in [0, 1], got 1.5
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
    """Warp every boundary with a smooth random displacement field (study B's boundary error).

    A random displacement field, smooth over ``scale`` pixels (cubic interpolation of
    standard normal values on a grid of that spacing) and scaled to a standard deviation of
    ``strength`` pixels per axis, warps the label map (nearest neighbour). Shared boundaries
    (cavity/myocardium) move together, so no gaps open between structures. Unbiased: the
    expected displacement is zero.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or in 3-D (``mode``).
    strength : float
        Standard deviation of the displacement per axis, in px (>= 0; 0 returns an
        unchanged copy).
    rng : numpy.random.Generator
        The only source of randomness.
    classes : sequence of int, optional
        Foreground labels to corrupt; default every foreground label present.
    scale : float, default 16.0
        Correlation length of the displacement field, in px (>= 1).

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, its labels a subset
        of ``mask``'s.

    Other Parameters
    ----------------
    mode, slice_axis, spacing : optional
        For volumes: see :meth:`ErrorModel.__call__`. The 3-D form (the default on volumes)
        takes ``strength`` and ``scale`` in mm (``scale`` default 30 mm).

    Raises
    ------
    ConfigError
        ``scale < 1`` (at ``strength > 0``; volumes: ``scale <= 0`` mm or a bad ``spacing``),
        ``strength`` negative or not finite, or an unknown option or ``mode``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 2:8] = 1; mask[4:12, 8:14] = 2
    >>> out = boundary(mask, 1.0, rng=np.random.default_rng(0), scale=8.0)
    >>> out.shape, out.dtype, np.unique(out).tolist()
    ((16, 16), dtype('uint8'), [0, 1, 2])
    >>> bool((out != mask).any())
    True
    >>> np.array_equal(out, boundary(mask, 1.0, rng=np.random.default_rng(0), scale=8.0))
    True
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
    """Grow the chosen structures by ``strength`` pixels: systematic over-segmentation.

    Dilation by a Euclidean disk (fractional radii allowed), painted over the neighbours.
    Deterministic: ``rng`` is accepted for the common signature and not used.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or in 3-D (``mode``).
    strength : float
        Dilation radius, in px (>= 0; 0 returns an unchanged copy).
    rng : numpy.random.Generator
        Accepted for the common signature; not used (deterministic).
    classes : sequence of int, optional
        Foreground labels to corrupt; default every foreground label present.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, its labels a subset
        of ``mask``'s.

    Other Parameters
    ----------------
    mode, slice_axis, spacing : optional
        For volumes: see :meth:`ErrorModel.__call__`. The 3-D form (the default on volumes)
        dilates by a ball of radius ``strength`` mm.

    Raises
    ------
    ConfigError
        ``strength`` negative or not finite, an unknown option or ``mode``, or (volumes) a
        bad ``spacing``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 1  # an 8 x 8 square
    >>> out = dilate(mask, 1.0, rng=np.random.default_rng(0))
    >>> int(out.sum())  # each side moves out by 1 px: 10 x 10
    100
    >>> from noisyseg.evaluate import dice
    >>> round(float(dice(out[None], mask[None], 2)[0]), 3)  # 2 * 64 / (64 + 100)
    0.78
    >>> ring = np.zeros((16, 16), np.uint8); ring[2:14, 2:14] = 2; ring[4:12, 4:12] = 1
    >>> np.bincount(dilate(ring, 1.0, rng=np.random.default_rng(0), classes=[1]).ravel())
    array([112, 100,  44])
    """
    return grow(mask, strength, classes=classes)


@register("erode", unit="pixels (Euclidean erosion radius)", kind="systematic",
          max_strength=_quarter)
def erode(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
          classes: Sequence[int] | None = None) -> np.ndarray:
    """Shrink the chosen structures by ``strength`` pixels: systematic under-segmentation.

    Pixels given up take the nearest other label (an eroded LV cavity thickens the
    myocardium). Deterministic: ``rng`` is accepted for the common signature and not used.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or in 3-D (``mode``).
    strength : float
        Erosion radius, in px (>= 0; 0 returns an unchanged copy).
    rng : numpy.random.Generator
        Accepted for the common signature; not used (deterministic).
    classes : sequence of int, optional
        Foreground labels to corrupt; default every foreground label present.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, its labels a subset
        of ``mask``'s.

    Other Parameters
    ----------------
    mode, slice_axis, spacing : optional
        For volumes: see :meth:`ErrorModel.__call__`. The 3-D form (the default on volumes)
        erodes by a ball of radius ``strength`` mm.

    Raises
    ------
    ConfigError
        ``strength`` negative or not finite, an unknown option or ``mode``, or (volumes) a
        bad ``spacing``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 1  # an 8 x 8 square
    >>> int(erode(mask, 1.0, rng=np.random.default_rng(0)).sum())  # 8 x 8 -> 6 x 6
    36
    >>> ring = np.zeros((16, 16), np.uint8); ring[2:14, 2:14] = 2; ring[4:12, 4:12] = 1
    >>> np.bincount(ring.ravel()).tolist()  # background, cavity, myocardium
    [112, 64, 80]
    >>> out = erode(ring, 1.0, rng=np.random.default_rng(0), classes=[1])
    >>> np.bincount(out.ravel()).tolist()  # the 28 px given up join the myocardium
    [112, 36, 108]
    """
    return grow(mask, -strength, classes=classes)


@register("shift", unit="pixels (displacement)", kind="systematic",
          max_strength=lambda shape: min(shape) / 2.0)
def shift(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
          classes: Sequence[int] | None = None, angle: float | None = None) -> np.ndarray:
    """Move the chosen structures by ``strength`` pixels: misplaced structures.

    Sub-pixel shifts interpolate the signed distance map, so the error grows smoothly.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or in 3-D (``mode``).
    strength : float
        Displacement, in px (>= 0; 0 returns an unchanged copy).
    rng : numpy.random.Generator
        Draws the direction (always drawn, used only when ``angle`` is ``None``).
    classes : sequence of int, optional
        Foreground labels to corrupt; default every foreground label present.
    angle : float, optional
        Direction in degrees, counter-clockwise from the +column axis (0: right, 90: up).
        The same angle on every sample makes the error systematic; ``None`` (default) draws
        a random direction per sample.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, its labels a subset
        of ``mask``'s.

    Other Parameters
    ----------------
    mode, slice_axis, spacing : optional
        For volumes: see :meth:`ErrorModel.__call__`. The 3-D form (the default on volumes)
        moves by ``strength`` mm, in the direction of the options ``azimuth`` and
        ``elevation`` (degrees; default random) instead of ``angle``.

    Raises
    ------
    ConfigError
        ``strength`` negative or not finite, an unknown option or ``mode``, or (volumes) a
        bad ``spacing``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 1  # an 8 x 8 square
    >>> out = shift(mask, 2.0, rng=np.random.default_rng(0), angle=0)  # 2 px to the right
    >>> int(out.sum()), np.flatnonzero(out.any(axis=0)).tolist()
    (64, [6, 7, 8, 9, 10, 11, 12, 13])
    >>> np.flatnonzero(shift(mask, 2.0, rng=np.random.default_rng(0), angle=90).any(axis=1))
    array([2, 3, 4, 5, 6, 7, 8, 9])
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
    """Relabel part or all of a structure as its neighbour: a structural error.

    Pixels of ``source`` closer to ``target`` than ``strength`` times the source's depth
    are relabelled ``target``: 0.3 moves the LV/LA boundary 30% into the atrium, 1 merges
    the atrium into the cavity. Deterministic.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or in 3-D (``mode``).
    strength : float
        Fraction in [0, 1] of the source's depth (from the target) relabelled (0 returns
        an unchanged copy).
    rng : numpy.random.Generator
        Accepted for the common signature; not used (deterministic).
    classes : sequence of int, optional
        Candidate sources (the first present is used) when ``source`` is not given.
    source : int, optional
        Label to merge; default the first of ``classes``, else the largest label present.
    target : int, optional
        Label to merge into; default the foreground label sharing the longest boundary.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, ``mask`` itself (a copy)
        when no source is present.

    Other Parameters
    ----------------
    mode, slice_axis, spacing : optional
        For volumes: see :meth:`ErrorModel.__call__`. The 3-D form (the default on volumes)
        measures the depth in mm.

    Raises
    ------
    ConfigError
        ``strength`` above 1, negative or not finite, an unknown option or ``mode``, or
        (volumes) a bad ``spacing``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 2:8] = 1; mask[4:12, 8:14] = 2
    >>> np.bincount(mask.ravel()).tolist()  # two 8 x 6 structures side by side
    [160, 48, 48]
    >>> half = merge(mask, 0.5, rng=np.random.default_rng(0), source=2, target=1)
    >>> np.bincount(half.ravel()).tolist()  # 3 of label 2's 6 columns become label 1
    [160, 72, 24]
    >>> np.bincount(merge(mask, 1.0, rng=np.random.default_rng(0)).ravel()).tolist()
    [160, 96]
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
    """Leave part or all of a structure unlabelled (background): a structural error.

    Pixels of ``source`` within ``strength`` times its depth of the background are removed,
    from the outside in; 1 omits the structure. Deterministic.

    Parameters
    ----------
    mask : (H, W) integer ndarray
        Label mask, 0 the background; not modified. A (D, H, W) volume is corrupted slice
        by slice or in 3-D (``mode``).
    strength : float
        Fraction in [0, 1] of the structure's depth removed (0 returns an unchanged copy).
    rng : numpy.random.Generator
        Accepted for the common signature; not used (deterministic).
    classes : sequence of int, optional
        Candidate labels (the first present is used) when ``source`` is not given.
    source : int, optional
        Label to omit; default the first of ``classes``, else the largest label present.

    Returns
    -------
    ndarray
        The corrupted mask: a new array of ``mask``'s shape and dtype, ``mask`` itself (a copy)
        when no source is present.

    Other Parameters
    ----------------
    mode, slice_axis, spacing : optional
        For volumes: see :meth:`ErrorModel.__call__`. The 3-D form (the default on volumes)
        measures the depth in mm.

    Raises
    ------
    ConfigError
        ``strength`` above 1, negative or not finite, an unknown option or ``mode``, or
        (volumes) a bad ``spacing``.
    DataError
        ``mask`` is not a 2-D or 3-D integer array.
    TypeError
        ``rng`` is not a :class:`numpy.random.Generator`.

    Examples
    --------
    >>> mask = np.zeros((16, 16), np.uint8); mask[4:12, 2:8] = 1; mask[4:12, 8:14] = 2
    >>> out = omit(mask, 0.5, rng=np.random.default_rng(0), source=2)
    >>> np.bincount(out.ravel()).tolist()  # label 2 keeps its 4 x 4 core
    [192, 48, 16]
    >>> np.bincount(omit(mask, 1.0, rng=np.random.default_rng(0)).ravel()).tolist()
    [208, 48]
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
