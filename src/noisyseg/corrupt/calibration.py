"""Calibrate an error model's strength to a target mean Dice (study A's protocol, done properly)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from noisyseg.corrupt.models import ErrorModel, get_model
from noisyseg.errors import CalibrationError, ConfigError
from noisyseg.evaluate import dice

__all__ = ["Calibration", "calibrate", "mean_dice_at"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """Hold the result of :func:`calibrate`.

    Returned by :func:`calibrate`; frozen.

    Parameters
    ----------
    model : str
        See Attributes.
    target_dice : float
        See Attributes.
    strength : float
        See Attributes.
    achieved_dice : float
        See Attributes.
    n_masks : int
        See Attributes.
    evaluations : list of (float, float), optional
        See Attributes; empty by default.
    options : dict, optional
        See Attributes; empty by default.

    Attributes
    ----------
    model : str
        Error model name (a key of :data:`~noisyseg.corrupt.ERROR_MODELS`).
    target_dice : float
        The mean Dice asked for, in (0, 1).
    strength : float
        The strength found, in the model's unit (:meth:`ErrorModel.unit_for
        <noisyseg.corrupt.ErrorModel.unit_for>`: px in 2-D and slice-wise, mm volumetric, or
        a fraction for ``random_flip``, ``merge`` and ``omit``).
    achieved_dice : float
        Mean Dice of the corrupted masks against the originals at ``strength`` (within
        ``tol`` of ``target_dice``; the volume Dice for volumes).
    n_masks : int
        Number of masks calibrated on (at most ``max_masks``).
    evaluations : list of (float, float)
        Every ``(strength, mean Dice)`` tried, in order; ``[]`` by default.
    options : dict
        Model options used (tuples and arrays as lists, JSON-ready); ``{}`` by default.

    Examples
    --------
    >>> cal = Calibration("dilate", 0.8, 2.0, 0.801, 4)
    >>> cal.evaluations, cal.options
    ([], {})
    >>> cal.to_dict()["strength"]
    2.0
    """

    model: str
    target_dice: float
    strength: float
    achieved_dice: float
    n_masks: int
    evaluations: list[tuple[float, float]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the calibration as a JSON-serialisable dict.

        Returns
        -------
        dict
            The fields by name.
        """
        return asdict(self)


def _seeds(rng: np.random.Generator | None, seeds: Sequence[int] | None, n: int) -> list[int]:
    if seeds is not None:
        if len(seeds) != n:
            raise ConfigError(f"seeds: expected {n} per-mask seeds, got {len(seeds)}")
        return [int(s) for s in seeds]
    if rng is None:
        raise ConfigError("calibrate: pass rng or seeds")
    return rng.integers(0, 2**63 - 1, size=n).tolist()


def mean_dice_at(model: ErrorModel | str, masks: np.ndarray | Sequence[np.ndarray],
                 strength: float, *, seeds: Sequence[int], n_classes: int | None = None,
                 **options: Any) -> float:
    """Compute the mean Dice of masks corrupted at one strength.

    Mask ``i`` is corrupted with the generator seeded ``seeds[i]`` and compared with itself.

    Parameters
    ----------
    model : ErrorModel or str
        The error model or its registered name.
    masks : (N, H, W) integer ndarray, or a sequence of masks of any shape (volumes)
        Clean masks.
    strength : float
        Strength to apply, in the model's unit (e.g. pixels).
    seeds : sequence of int
        One seed per mask; the same seeds give the same random draws at every strength.
    n_classes : int, optional
        Defaults to the largest label + 1.
    **options
        Model options, and ``mode`` / ``slice_axis`` / ``spacing`` for volumes.

    Returns
    -------
    float
        Mean Dice of the corrupted masks against the clean ones.

    Raises
    ------
    ConfigError
        An unknown model name.
    ValueError
        ``seeds`` and ``masks`` of different lengths.

    Examples
    --------
    >>> masks = np.zeros((2, 16, 16), np.uint8); masks[:, 4:12, 4:12] = 1
    >>> round(mean_dice_at("dilate", masks, 1.0, seeds=[0, 1]), 3)
    0.78
    """
    m = get_model(model) if isinstance(model, str) else model
    if n_classes is None:
        n_classes = max(int(np.max(x)) for x in masks) + 1
    if isinstance(masks, np.ndarray) and masks.ndim == 3:
        out = np.stack([m(x, strength, rng=np.random.default_rng(s), **options)
                        for x, s in zip(masks, seeds, strict=True)])
        return float(np.mean(dice(out, masks, n_classes)))
    d = [float(dice(m(x, strength, rng=np.random.default_rng(s), **options)[None], x[None],
                    n_classes)[0]) for x, s in zip(masks, seeds, strict=True)]
    return float(np.mean(d))


def calibrate(model: ErrorModel | str, masks: np.ndarray | Sequence[np.ndarray],
              target_dice: float, *,
              rng: np.random.Generator | None = None, seeds: Sequence[int] | None = None,
              tol: float = 0.005, max_masks: int = 1000, max_evals: int = 40,
              n_classes: int | None = None, **options: Any) -> Calibration:
    """Find the strength at which ``model`` gives mean Dice ``target_dice`` on ``masks``.

    A bracketing search (Illinois false position, falling back to bisection) on strength,
    using common random numbers: mask ``i`` is always corrupted with the generator seeded
    ``seeds[i]``, so the mean Dice is a deterministic, (near) monotone function of strength
    and the search converges in a few evaluations. It stops when the mean Dice lies within
    ``tol`` of the target.

    Parameters
    ----------
    model : str or ErrorModel
        A registered error model name (see ``noisyseg corrupt --list``).
    masks : (N, H, W) integer ndarray, or a sequence of volumes (shapes may differ)
        Clean masks; at most ``max_masks`` of them (chosen at random) are used.
    target_dice : float
        Target mean Dice in (0, 1).
    rng : numpy.random.Generator, optional
        Draws the subset and the per-mask seeds (pass ``rng`` or ``seeds``).
    seeds : sequence of int, optional
        Per-mask seeds, so calibration uses exactly the draws a later corruption will use.
    tol : float
        Tolerance on the mean Dice.
    max_masks : int
        Most masks calibrated on; more are subsampled at random.
    max_evals : int
        Most evaluations of the search once the target is bracketed.
    n_classes : int, optional
        Number of classes including background (default: largest label + 1).
    **options
        Model options (e.g. ``classes=(1,)``), and for volumes ``mode``, ``slice_axis`` and
        ``spacing`` (see :class:`~noisyseg.corrupt.ErrorModel`); the Dice is then the
        volume Dice.

    Returns
    -------
    Calibration

    Raises
    ------
    ConfigError
        An unknown model name, ``target_dice`` outside (0, 1), no masks or masks that are
        not 2-D or 3-D, ``seeds`` of the wrong length, or neither ``rng`` nor ``seeds``.
    CalibrationError
        The target cannot be reached (even the model's largest strength keeps Dice above
        it) or the search did not get within ``tol``.

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.zeros((4, 32, 32), np.uint8); masks[:, 8:24, 8:24] = 1
    >>> cal = calibrate("dilate", masks, 0.8, rng=np.random.default_rng(0))
    >>> abs(cal.achieved_dice - 0.8) <= 0.005
    True
    """
    m = get_model(model) if isinstance(model, str) else model
    if not 0.0 < float(target_dice) < 1.0:
        raise ConfigError(f"target_dice: expected a value in (0, 1), got {target_dice}")
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3 or len(masks) == 0:
            raise ConfigError(f"masks: expected (N, H, W) masks with N >= 1, got {masks.shape}")
    else:
        masks = [np.asarray(x) for x in masks]
        if not masks or any(x.ndim not in (2, 3) for x in masks):
            raise ConfigError("masks: expected at least one 2-D or 3-D mask")
    all_seeds = _seeds(rng, seeds, len(masks))
    if len(masks) > max_masks:
        pick = np.sort((rng or np.random.default_rng(all_seeds[0])).choice(
            len(masks), max_masks, replace=False))
        masks = masks[pick] if isinstance(masks, np.ndarray) else [masks[i] for i in pick]
        all_seeds = [all_seeds[i] for i in pick]
    if n_classes is None:
        n_classes = max(int(np.max(x)) for x in masks) + 1
    target = float(target_dice)
    evals: list[tuple[float, float]] = []

    def f(s: float) -> float:
        d = mean_dice_at(m, masks, s, seeds=all_seeds, n_classes=n_classes, **options)
        evals.append((s, d))
        log.debug("calibrate %s: strength %.5g -> Dice %.4f", m.name, s, d)
        return d

    def done(s: float, d: float) -> Calibration:
        return Calibration(m.name, target, float(s), d, len(masks), evals,
                           {k: list(v) if isinstance(v, tuple | np.ndarray) else v
                            for k, v in options.items()})

    s_max = m.max_strength_for(tuple(masks[0].shape), mode=options.get("mode"),
                               slice_axis=int(options.get("slice_axis", 0)), spacing=options.get("spacing"))
    lo, d_lo = 0.0, 1.0
    hi = min(s_max, s_max / 64 if s_max > 1.0 else 0.05)
    d_hi = f(hi)
    while d_hi > target + tol and hi < s_max:  # expand the bracket
        lo, d_lo = hi, d_hi
        hi = min(hi * 2.0, s_max)
        d_hi = f(hi)
    if abs(d_hi - target) <= tol:
        return done(hi, d_hi)
    if d_hi > target:
        raise CalibrationError(
            f"target_dice: {target}: {m.name} cannot go below mean Dice {d_hi:.3f} on these "
            f"masks (strength {hi:g} is its maximum); choose a higher target or another model")
    side = 0
    for _ in range(max_evals):
        if d_lo - d_hi > 1e-12:
            s = hi - (d_hi - target) * (hi - lo) / (d_hi - d_lo)
            if not lo + 0.02 * (hi - lo) < s < hi - 0.02 * (hi - lo):
                s = 0.5 * (lo + hi)
        else:
            s = 0.5 * (lo + hi)
        d = f(s)
        if abs(d - target) <= tol:
            return done(s, d)
        if d > target:
            lo, d_lo = s, d
            if side == -1:
                d_hi = target + (d_hi - target) * 0.5  # Illinois step
            side = -1
        else:
            hi, d_hi = s, d
            if side == 1:
                d_lo = target + (d_lo - target) * 0.5
            side = 1
        # a bracket narrower than 1e-5 of the range (6e-4 px on 256x256) holds a step
        if hi - lo <= 1e-5 * max(s_max, 1.0):
            break
    best = min(evals, key=lambda e: abs(e[1] - target))
    raise CalibrationError(
        f"target_dice: {target}: {m.name} jumps over the target on these masks (closest: "
        f"Dice {best[1]:.4f} at strength {best[0]:.4g}); the model is too coarse here, "
        f"try more masks or another model")
