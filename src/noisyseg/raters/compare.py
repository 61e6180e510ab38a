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

import functools
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from noisyseg._validate import check_seed
from noisyseg.corrupt import calibrate, get_model
from noisyseg.errors import CalibrationError, ConfigError, DataError
from noisyseg.evaluate.raters import STATISTICS, distribution_distance, rater_statistics
from noisyseg.raters.measure import case_columns

__all__ = ["DEFAULT_MODELS", "compare_models", "fit_model", "model_modes"]

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

    @functools.wraps(fn)  # the signature ErrorModel reads the model's options from
    def call(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
             spacing: Any = None, **options: Any) -> np.ndarray:
        return fn(mask, strength, rng=rng, spacing=table.get(id(mask), spacing), **options)

    return call


def _status_row(name: str, mode: str, status: str, target: float,
                options: Mapping[str, Any]) -> dict[str, Any]:
    return {"model": name, "mode": mode, "options": _options_text(options), "status": status,
            "target_dice": target, "strength": np.nan, "achieved_dice": np.nan, "n_simulated": 0}


def _options_text(options: Mapping[str, Any]) -> str:
    return json.dumps(dict(sorted(options.items())), sort_keys=True)


@dataclass
class _Draws:
    """The references the simulated readers corrupt, one array and one seed per draw."""

    cases: list[Any]          # the cases kept (non-empty consensus)
    masks: list[np.ndarray]   # draw j of case k: the case's consensus (a copy for j > 0)
    spacings: list[tuple[float, ...]]
    seeds: list[int]
    owner: list[tuple[int, int]]  # (k, j)
    target: float             # the real readers' mean Dice
    ndim: int


def _draws(cases: Sequence[Any], real: pd.DataFrame, *, seed: int, n_sim: int,
           level: float) -> _Draws:
    seed = check_seed(seed)
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 1:
        raise ConfigError(f"n_sim: expected an integer >= 1, got {n_sim!r}")
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
        raise ConfigError(f"real: mean Dice {target} leaves nothing to simulate (expected a value "
                          f"in (0, 1))")
    refs, keep = [], []
    for c in cases:
        ref = c.consensus(level).astype(np.uint8)
        if ref.any():
            refs.append(ref)
            keep.append(c)
    if not keep:
        raise ConfigError("cases: none has a non-empty consensus")
    dims = {r.ndim for r in refs}
    if len(dims) > 1:
        raise ConfigError(f"cases: expected cases of one dimension, got {sorted(dims)}-D cases")
    masks, spacings, seeds, owner = [], [], [], []
    for k, (c, ref) in enumerate(zip(keep, refs, strict=True)):
        draws = np.random.default_rng((seed, k)).integers(0, 2**63 - 1, size=n_sim)
        for j in range(n_sim):
            masks.append(ref if j == 0 else ref.copy())
            spacings.append(tuple(float(v) for v in c.spacing))
            seeds.append(int(draws[j]))
            owner.append((k, j))
    return _Draws(keep, masks, spacings, seeds, owner, target, dims.pop())


def _simulate(d: _Draws, name: str, mode: str, options: Mapping[str, Any], *, tol: float,
              real: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Calibrate one model, mode and options to the real Dice; measure its simulated readers."""
    model = get_model(name)
    volumetric = mode == "volumetric"
    if volumetric:
        model = replace(model, volumetric=_per_mask_spacing(model.volumetric, d.masks, d.spacings))
    extra: dict[str, Any] = {"mode": mode} if d.ndim == 3 else {}
    # calibrate() brackets the strength by its first mask: put the roomiest first
    room = [get_model(name).max_strength_for(mk.shape, mode=mode, spacing=sp)
            for mk, sp in zip(d.masks, d.spacings, strict=True)]
    first = int(np.argmax(room))
    order = [first] + [i for i in range(len(d.masks)) if i != first]
    cal_kw = {"spacing": d.spacings[first]} if volumetric else {}
    try:
        cal = calibrate(model, [d.masks[i] for i in order], d.target,
                        seeds=[d.seeds[i] for i in order], tol=tol, n_classes=2,
                        max_masks=len(d.masks), **extra, **cal_kw, **dict(options))
    except (CalibrationError, DataError, ConfigError) as exc:
        kind = "calibration failed" if isinstance(exc, CalibrationError) else "failed"
        return [], _status_row(name, mode, f"{kind}: {exc}", d.target, options)
    rows = []
    for mk, sp, s, (k, j) in zip(d.masks, d.spacings, d.seeds, d.owner, strict=True):
        kw = {"spacing": sp} if volumetric else {}
        out = model(mk, cal.strength, rng=np.random.default_rng(s), **extra, **kw, **dict(options))
        stack = np.stack([out.astype(bool), mk.astype(bool)])
        head = case_columns(d.cases[k])
        row = rater_statistics(stack, sp, reader_ids=(f"{name}/{mode}#{j}", "consensus"),
                               case_id=head["case_id"], level=0.5)[0]
        rows.append({"model": name, "mode": mode, "options": _options_text(options),
                     "strength": cal.strength, "sim": j} | head | row)
    dist = distribution_distance(real, rows, normalise=True)
    vals = np.array([v for v in dist.values() if np.isfinite(v)])
    return rows, ({"model": name, "mode": mode, "options": _options_text(options), "status": "ok",
                   "target_dice": d.target, "strength": cal.strength,
                   "achieved_dice": cal.achieved_dice, "n_simulated": len(rows)} | dist
                  | {"realism": float(vals.mean()) if vals.size else np.nan})


def _ranked(rows: list[dict[str, Any]]) -> pd.DataFrame:
    distances = pd.DataFrame(rows)
    for col in (*STATISTICS, "realism"):
        if col not in distances:
            distances[col] = np.nan
    distances["rank"] = distances["realism"].rank(method="min").astype("Int64")
    distances = distances.sort_values(["rank", "model", "mode"], na_position="last", kind="stable")
    return distances.reset_index(drop=True)


def compare_models(cases: Sequence[Any], real: pd.DataFrame, *,
                   models: Sequence[str] = DEFAULT_MODELS, modes: Sequence[str] | None = None,
                   options: Mapping[str, Mapping[str, Any]] | None = None,
                   seed: int = 0, n_sim: int = 1, level: float = 0.5, tol: float = 0.005,
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate readers with each error model, calibrated to the real Dice, and rank the models.

    Parameters
    ----------
    cases : sequence of RaterCase or Nodule
        The multi-rater cases whose consensus (of all readers, at ``level``) the models
        corrupt, all 2-D or all 3-D (see :func:`~noisyseg.raters.measure_raters`).
    real : pandas.DataFrame
        The real readers' rows (:func:`~noisyseg.raters.measure_raters`); their mean ``dice``
        is the calibration target.
    models : sequence of str
        Registered error model names.
    modes : sequence of str, optional
        3-D modes (``'slicewise'``, ``'volumetric'``); default each model's modes (2-D cases:
        the 2-D model, listed as ``'slicewise'``).
    options : dict, optional
        Model options by ``"model"`` or ``"model/mode"`` (the latter wins), e.g.
        ``{"natural/volumetric": {"scale": 4.0}}``; default each model's defaults.
    seed : int
        Seeds the per-case generators ``numpy.random.default_rng((seed, k))``.
    n_sim : int
        Simulated masks per case and model.
    level : float
        Consensus level of the reference.
    tol : float
        Calibration tolerance on the mean Dice.
    progress : callable, optional
        ``progress(done, total)`` after each model and mode.

    Returns
    -------
    simulated : pandas.DataFrame
        One row per simulated mask: ``model``, ``mode``, ``options`` (JSON), ``strength``,
        ``sim``, the case's columns and every column of
        :func:`~noisyseg.evaluate.raters.rater_statistics` (``reader_id`` is
        ``"{model}/{mode}#{sim}"``).
    distances : pandas.DataFrame
        One row per model and mode: ``model``, ``mode``, ``options``, ``status`` (``"ok"`` or
        why it failed, e.g. a :class:`~noisyseg.errors.CalibrationError`), ``target_dice``,
        ``strength``, ``achieved_dice``, ``n_simulated``, the normalised distance of each
        statistic of :data:`~noisyseg.evaluate.raters.STATISTICS`, ``realism`` (their mean)
        and ``rank`` (1 is the most realistic; NaN for failed models), sorted by rank.

    Raises
    ------
    ConfigError
        No case with a non-empty consensus, cases of mixed dimensions, a ``real`` table
        without finite ``dice`` or with a mean Dice of 1, a bad ``seed``, ``n_sim``, model or
        mode, or a volumetric mode for 2-D cases.

    Examples
    --------
    >>> from noisyseg.data import RaterCase
    >>> from noisyseg.raters import measure_raters
    >>> m = np.zeros((3, 4, 16, 16), bool); m[:, :, 4:12, 4:12] = True; m[2, :, 3:13, 3:13] = True
    >>> cases = [RaterCase("n1", m, (1.0, 1.0, 1.0), ("a", "b", "c"))]
    >>> sim, dist = compare_models(cases, measure_raters(cases), models=["dilate"], modes=["slicewise"])
    >>> dist[["model", "status", "rank"]].values.tolist()
    [['dilate', 'ok', 1]]
    """
    d = _draws(cases, real, seed=seed, n_sim=n_sim, level=level)
    if d.ndim == 2 and modes is not None and "volumetric" in modes:
        raise ConfigError("modes: 2-D cases have no volumetric mode")
    pairs = model_modes(models, ["slicewise"] if d.ndim == 2 else modes)
    options = dict(options or {})
    sim_rows: list[dict[str, Any]] = []
    dist_rows: list[dict[str, Any]] = []
    for p, (name, mode) in enumerate(pairs):
        opts = dict(options.get(f"{name}/{mode}", options.get(name, {})))
        rows, dist = _simulate(d, name, mode, opts, tol=tol, real=real)
        sim_rows += rows
        dist_rows.append(dist)
        if progress is not None:
            progress(p + 1, len(pairs))
    return pd.DataFrame(sim_rows), _ranked(dist_rows)


def fit_model(cases: Sequence[Any], real: pd.DataFrame, *, model: str, mode: str,
              grid: Mapping[str, Sequence[Any]], seed: int = 0, n_sim: int = 1,
              level: float = 0.5, tol: float = 0.005,
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Search a grid of a model's options for the simulated readers most like the real ones.

    Every combination of the ``grid``'s values is calibrated to the real readers' mean Dice
    and measured as in :func:`compare_models` (the same draws for every combination: common
    random numbers), and ranked by ``realism``.

    Parameters
    ----------
    cases, real, seed, n_sim, level, tol, progress
        As for :func:`compare_models` (``progress`` after each combination).
    model : str
        A registered error model.
    mode : {'slicewise', 'volumetric'}
        The mode fitted (``'slicewise'`` for 2-D cases).
    grid : dict of str to sequence
        Values to try for each option, e.g. ``{"scale": [2, 4, 8]}``.

    Returns
    -------
    pandas.DataFrame
        One row per combination, as ``compare_models``' ``distances``, with one column per
        option of the grid, sorted by rank (1: the best fit).

    Raises
    ------
    ConfigError
        As :func:`compare_models`; an empty grid, an option the model does not take in
        ``mode``.

    Examples
    --------
    >>> from noisyseg.data import RaterCase
    >>> from noisyseg.raters import measure_raters
    >>> m = np.zeros((3, 6, 24, 24), bool); m[:, 1:5, 6:18, 6:18] = True
    >>> m[2, 1:5, 5:19, 5:19] = True
    >>> cases = [RaterCase("n1", m, (1.0, 1.0, 1.0), ("a", "b", "c"))]
    >>> fit = fit_model(cases, measure_raters(cases), model="natural", mode="volumetric",
    ...                 grid={"scale": [2.0, 30.0]})
    >>> sorted(fit["scale"]), fit["rank"].tolist()
    ([2.0, 30.0], [1, 2])
    """
    d = _draws(cases, real, seed=seed, n_sim=n_sim, level=level)
    (name, use), = model_modes([model], [mode])
    allowed = get_model(name).options_for(use, d.ndim)
    if not grid or any(len(list(v)) == 0 for v in grid.values()):
        raise ConfigError("grid: expected at least one value for each option")
    unknown = sorted(set(grid) - set(allowed))
    if unknown:
        raise ConfigError(f"grid: {name} ({use}) has no option(s) {unknown}; expected "
                          f"{sorted(allowed)}")
    keys = list(grid)
    combos = list(itertools.product(*(list(grid[k]) for k in keys)))
    rows = []
    for i, values in enumerate(combos):
        opts = dict(zip(keys, values, strict=True))
        _, dist = _simulate(d, name, use, opts, tol=tol, real=real)
        rows.append(dist | opts)
        if progress is not None:
            progress(i + 1, len(combos))
    return _ranked(rows)
