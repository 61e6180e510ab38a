"""Simulated readers: each error model calibrated to the real readers' Dice, measured like them.

The protocol of :func:`compare_models`, for each model and each of its 3-D modes:

1. the reference of a nodule is the consensus of all its real readers (``level``), as a
   binary ``uint8`` mask; nodules with an empty consensus are left out;
2. one strength is calibrated over all nodules (:func:`noisyseg.corrupt.calibrate`,
   common random numbers: simulated mask ``j`` of nodule ``k`` is drawn with a seed from
   ``numpy.random.default_rng((seed, k))``) so that the simulated masks' mean Dice against
   the consensus equals the real readers' mean Dice against their leave-one-out consensus;
   volumetric models get each nodule's own spacing;
3. each simulated mask is measured like a real reader, by
   :func:`~noisyseg.evaluate.raters.rater_statistics`, against the consensus it was drawn
   from (the reference a simulated reader of the real readers' consensus has; a real reader
   is measured against the consensus of the *other* readers, which it did not help make);
4. the distance of each statistic's distribution from the real one is the Wasserstein
   distance in units of the real statistic's standard deviation
   (:func:`~noisyseg.evaluate.raters.distribution_distance` with ``normalise=True``);
   ``realism`` is their mean over the statistics (lower is more realistic), and the
   models are ranked by it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from noisyseg._validate import check_seed
from noisyseg.corrupt import calibrate, get_model
from noisyseg.errors import CalibrationError, ConfigError, DataError
from noisyseg.evaluate.raters import STATISTICS, distribution_distance, rater_statistics
from noisyseg.raters.measure import nodule_columns

__all__ = ["DEFAULT_MODELS", "compare_models", "model_modes"]

#: The error models compared by default.
DEFAULT_MODELS = ("natural", "choppy", "boundary", "random_flip", "dilate", "erode")


def model_modes(models: Sequence[str], modes: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The ``(model, mode)`` pairs compared: each model in each of ``modes`` it has.

    Parameters
    ----------
    models : sequence of str
        Registered error model names.
    modes : sequence of str, optional
        ``'slicewise'`` and/or ``'volumetric'``; default every mode of each model.

    Returns
    -------
    list of (str, str)

    Raises
    ------
    ConfigError
        An unknown model or mode, or a model with none of ``modes``.

    Examples
    --------
    >>> model_modes(["choppy", "dilate"])
    [('choppy', 'slicewise'), ('dilate', 'slicewise'), ('dilate', 'volumetric')]
    """
    out = []
    for name in models:
        m = get_model(name)
        if modes is None:
            use = list(m.modes)
        else:
            bad = [x for x in modes if x not in ("slicewise", "volumetric")]
            if bad:
                raise ConfigError(f"modes: expected 'slicewise' and/or 'volumetric', got {bad}")
            use = [x for x in modes if x in m.modes]
            if not use:
                raise ConfigError(f"modes: {name} has modes {list(m.modes)}, none of {list(modes)}")
        out += [(m.name, x) for x in use]
    return out


def _per_mask_spacing(fn: Any, masks: list[np.ndarray], spacings: list[tuple[float, ...]]) -> Any:
    """``fn`` called with the spacing of the mask it is given (looked up by identity)."""
    table = {id(mk): sp for mk, sp in zip(masks, spacings, strict=True)}

    def call(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
             spacing: Any = None, **options: Any) -> np.ndarray:
        return fn(mask, strength, rng=rng, spacing=table.get(id(mask), spacing), **options)

    return call


def _status_row(name: str, mode: str, status: str, target: float) -> dict[str, Any]:
    return {"model": name, "mode": mode, "status": status, "target_dice": target,
            "strength": np.nan, "achieved_dice": np.nan, "n_simulated": 0}


def compare_models(nodules: Sequence[Any], real: pd.DataFrame, *,
                   models: Sequence[str] = DEFAULT_MODELS, modes: Sequence[str] | None = None,
                   seed: int = 0, n_sim: int = 1, level: float = 0.5, tol: float = 0.005,
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate readers with each error model, calibrated to the real Dice, and rank the models.

    Parameters
    ----------
    nodules : sequence of Nodule
        The nodules whose consensus (of all readers, at ``level``) the models corrupt.
    real : pandas.DataFrame
        The real readers' rows (:func:`~noisyseg.raters.measure_raters`); their mean ``dice``
        is the calibration target.
    models : sequence of str
        Registered error model names.
    modes : sequence of str, optional
        3-D modes (``'slicewise'``, ``'volumetric'``); default each model's modes.
    seed : int
        Seeds the per-nodule generators ``numpy.random.default_rng((seed, k))``.
    n_sim : int
        Simulated masks per nodule and model.
    level : float
        Consensus level of the reference.
    tol : float
        Calibration tolerance on the mean Dice.
    progress : callable, optional
        ``progress(done, total)`` after each model and mode.

    Returns
    -------
    simulated : pandas.DataFrame
        One row per simulated mask: ``model``, ``mode``, ``strength``, ``sim``, the nodule's
        columns and every column of :func:`~noisyseg.evaluate.raters.rater_statistics`
        (``reader_id`` is ``"{model}/{mode}#{sim}"``).
    distances : pandas.DataFrame
        One row per model and mode: ``model``, ``mode``, ``status`` (``"ok"`` or why it
        failed, e.g. a :class:`~noisyseg.errors.CalibrationError`), ``target_dice``,
        ``strength``, ``achieved_dice``, ``n_simulated``, the normalised distance of each
        statistic of :data:`~noisyseg.evaluate.raters.STATISTICS`, ``realism`` (their mean)
        and ``rank`` (1 is the most realistic; NaN for failed models), sorted by rank.

    Raises
    ------
    ConfigError
        No nodule with a non-empty consensus, a ``real`` table without finite ``dice`` or with
        a mean Dice of 1, a bad ``seed``, ``n_sim``, model or mode.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from noisyseg.raters import measure_raters
    >>> m = np.zeros((3, 4, 16, 16), bool); m[:, :, 4:12, 4:12] = True; m[2, :, 3:13, 3:13] = True
    >>> nodules = [SimpleNamespace(nodule_id="n1", masks=m, spacing=(1.0, 1.0, 1.0), reader_ids="abc")]
    >>> sim, dist = compare_models(nodules, measure_raters(nodules), models=["dilate"], modes=["slicewise"])
    >>> dist[["model", "status", "rank"]].values.tolist()
    [['dilate', 'ok', 1]]
    """
    seed = check_seed(seed)
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 1:
        raise ConfigError(f"n_sim: expected an integer >= 1, got {n_sim!r}")
    pairs = model_modes(models, modes)
    if not 0.0 < float(level) <= 1.0:
        raise ConfigError(f"level: expected a share of readers in (0, 1], got {level}")
    if "dice" not in real:
        raise ConfigError("real: no column 'dice' (expected measure_raters' table)")
    d = pd.to_numeric(real["dice"], errors="coerce").to_numpy(float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ConfigError("real: no finite Dice to calibrate to")
    target = float(d.mean())
    if not 0.0 < target < 1.0:
        raise ConfigError(f"real: mean Dice {target} leaves nothing to simulate (expected a value in (0, 1))")

    refs, keep = [], []
    for n in nodules:
        c = (np.mean(np.asarray(n.masks, dtype=bool), axis=0) >= level).astype(np.uint8)
        if c.any():
            refs.append(c)
            keep.append(n)
    if not keep:
        raise ConfigError("nodules: none has a non-empty consensus")
    # mask j of nodule k: one array per draw (identity keys the spacing), one seed per draw
    masks, spacings, seeds, owner = [], [], [], []
    for k, (n, c) in enumerate(zip(keep, refs, strict=True)):
        draws = np.random.default_rng((seed, k)).integers(0, 2**63 - 1, size=n_sim)
        for j in range(n_sim):
            masks.append(c if j == 0 else c.copy())
            spacings.append(tuple(float(v) for v in n.spacing))
            seeds.append(int(draws[j]))
            owner.append((k, j))

    sim_rows: list[dict[str, Any]] = []
    dist_rows: list[dict[str, Any]] = []
    for p, (name, mode) in enumerate(pairs):
        model = get_model(name)
        volumetric = mode == "volumetric"
        extra: dict[str, Any] = {"mode": mode}
        if volumetric:
            model = replace(model, volumetric=_per_mask_spacing(model.volumetric, masks, spacings))
        # calibrate() brackets the strength by its first mask: put the roomiest first
        room = [get_model(name).max_strength_for(mk.shape, mode=mode, spacing=sp)
                for mk, sp in zip(masks, spacings, strict=True)]
        order = [int(np.argmax(room))] + [i for i in range(len(masks)) if i != int(np.argmax(room))]
        cal_kw = {"spacing": spacings[order[0]]} if volumetric else {}
        try:
            cal = calibrate(model, [masks[i] for i in order], target, seeds=[seeds[i] for i in order],
                            tol=tol, n_classes=2, max_masks=len(masks), **extra, **cal_kw)
        except (CalibrationError, DataError, ConfigError) as exc:
            kind = "calibration failed" if isinstance(exc, CalibrationError) else "failed"
            dist_rows.append(_status_row(name, mode, f"{kind}: {exc}", target))
            if progress is not None:
                progress(p + 1, len(pairs))
            continue
        rows = []
        for mk, sp, s, (k, j) in zip(masks, spacings, seeds, owner, strict=True):
            kw = {"spacing": sp} if volumetric else {}
            out = model(mk, cal.strength, rng=np.random.default_rng(s), mode=mode, **kw)
            stack = np.stack([out.astype(bool), mk.astype(bool)])
            row = rater_statistics(stack, sp, reader_ids=(f"{name}/{mode}#{j}", "consensus"),
                                   case_id=str(keep[k].nodule_id), level=0.5)[0]
            row.pop("case_id")
            rows.append({"model": name, "mode": mode, "strength": cal.strength, "sim": j}
                        | nodule_columns(keep[k]) | row)
        sim_rows += rows
        dist = distribution_distance(real, rows, normalise=True)
        vals = np.array([v for v in dist.values() if np.isfinite(v)])
        dist_rows.append({"model": name, "mode": mode, "status": "ok", "target_dice": target,
                          "strength": cal.strength, "achieved_dice": cal.achieved_dice,
                          "n_simulated": len(rows)} | dist
                         | {"realism": float(vals.mean()) if vals.size else np.nan})
        if progress is not None:
            progress(p + 1, len(pairs))
    distances = pd.DataFrame(dist_rows)
    for col in (*STATISTICS, "realism"):
        if col not in distances:
            distances[col] = np.nan
    distances["rank"] = distances["realism"].rank(method="min").astype("Int64")
    distances = distances.sort_values(["rank", "model", "mode"], na_position="last", kind="stable")
    return pd.DataFrame(sim_rows), distances.reset_index(drop=True)
