"""The whole raters' analysis from a source string to a folder: what ``noisyseg raters`` does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.corrupt import get_model
from noisyseg.corrupt.presets import Preset
from noisyseg.data.outdir import check_out_dir
from noisyseg.data.raters import RaterCase, load_raters
from noisyseg.raters.compare import DEFAULT_MODELS, compare_models, fit_model, model_modes
from noisyseg.raters.measure import measure_raters
from noisyseg.raters.write import write_raters

__all__ = ["FIT_GRIDS", "RatersResult", "analyse_raters", "fitted_preset"]

#: The options :func:`analyse_raters` searches with ``fit=True``, per model and mode (units:
#: ``scale`` in mm volumetric and pixels slice-wise, ``points`` per outline, ``bias`` in mm:
#: natural's volumetric form as a per-annotator bias plus a smooth random field). Models and
#: modes not listed keep their defaults (they have no option that shapes the error).
FIT_GRIDS: dict[tuple[str, str], dict[str, list[Any]]] = {
    ("natural", "volumetric"): {"scale": [2.0, 3.0, 4.0, 6.0, 10.0, 30.0], "bias": [0.0, 0.1, 0.2]},
    ("natural", "slicewise"): {"points": [4, 6, 8, 12, 16, 24]},
    ("boundary", "volumetric"): {"scale": [2.0, 4.0, 8.0, 16.0, 30.0]},
    ("boundary", "slicewise"): {"scale": [2.0, 4.0, 8.0, 16.0]},
}


@dataclass(frozen=True)
class RatersResult:
    """What :func:`analyse_raters` measured and wrote.

    The constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    out : Path
        The folder written.
    n_cases : int
        Cases (nodules) measured.
    n_outlines : int
        Reader outlines measured (rows of ``readers.csv``).
    target_dice : float
        The real readers' mean Dice against their leave-one-out consensus.
    ranking : pandas.DataFrame
        ``distances.csv``: one row per model and mode, ranked by realism (fitted options
        where ``fit``).
    preset : Preset or None
        The fitted preset (``preset.json``) where ``fit``.

    Examples
    --------
    >>> r = RatersResult(Path("R"), 2, 6, 0.8, pd.DataFrame({"model": ["dilate"]}), None)
    >>> r.best
    'dilate'
    """

    out: Path
    n_cases: int
    n_outlines: int
    target_dice: float
    ranking: pd.DataFrame
    preset: Preset | None

    @property
    def best(self) -> str:
        """``model`` (and ``/mode`` where the table has one) of the most realistic row."""
        row = self.ranking.iloc[0]
        return f"{row['model']}/{row['mode']}" if "mode" in self.ranking else str(row["model"])


def fitted_preset(distances: pd.DataFrame, *, name: str, ndim: int, source: str = "",
                  command: str = "", extra: Mapping[str, Any] | None = None) -> Preset:
    """The preset of a ranking: each model and mode's options, realism and strength.

    Parameters
    ----------
    distances : pandas.DataFrame
        A ranking as :func:`~noisyseg.raters.compare_models` returns it (with its ``options``
        column of JSON); rows whose status is not ``ok`` are left out.
    name, source, command : str
        Written into the preset.
    ndim : int
        Spatial dimensions of the cases (the unit of each strength).
    extra : dict, optional
        More fields for the file (seed, level, number of cases).

    Returns
    -------
    Preset

    Raises
    ------
    ConfigError
        No row is ``ok`` (nothing calibrated).

    Examples
    --------
    >>> d = pd.DataFrame({"model": ["dilate"], "mode": ["volumetric"], "options": ["{}"],
    ...                   "status": ["ok"], "target_dice": [0.8], "strength": [0.5],
    ...                   "realism": [1.2]})
    >>> fitted_preset(d, name="mine", ndim=3).fits["dilate"]["volumetric"]["strength_unit"]
    'mm (ball radius)'
    """
    from noisyseg.errors import ConfigError

    ok = distances[distances["status"] == "ok"]
    if ok.empty:
        raise ConfigError("fit: no model was calibrated to the raters' Dice")
    fits: dict[str, dict[str, dict[str, Any]]] = {}
    for _, row in ok.iterrows():
        mode = str(row["mode"])
        fits.setdefault(str(row["model"]), {})[mode] = {
            "options": json.loads(row["options"]) if isinstance(row["options"], str) else {},
            "realism": float(row["realism"]), "strength": float(row["strength"]),
            "strength_unit": get_model(str(row["model"])).unit_for(mode, ndim)}
    return Preset(name, float(ok["target_dice"].iloc[0]), fits, source, command,
                  dict(extra or {}))


def analyse_raters(*, data: str, out: str | Path, models: Sequence[str] = DEFAULT_MODELS,
                   modes: Sequence[str] | None = None, fit: bool = False, seed: int = 0,
                   n_sim: int = 1, level: float = 0.5, name: str | None = None,
                   command: str = "", overwrite: bool = False,
                   progress: Callable[[str, int, int], None] | None = None) -> RatersResult:
    """Measure real raters, hold every error model against them, optionally fit a preset.

    Parameters
    ----------
    data : str
        A multi-rater source (:func:`~noisyseg.data.load_raters`): ``lidc[:DB][,options]`` or
        ``raters:PATH[,options]``.
    out : str or Path
        The folder to write (:func:`~noisyseg.raters.write_raters`).
    models, modes, seed, n_sim, level
        As for :func:`~noisyseg.raters.compare_models`.
    fit : bool
        Search :data:`FIT_GRIDS` for each model and mode's most realistic options
        (:func:`~noisyseg.raters.fit_model`; the grids hold each model's defaults), rank the
        models with them and write ``fit.csv`` (every option tried) and ``preset.json``
        (``noisyseg corrupt --like out/preset.json``).
    name : str, optional
        The preset's name (default the folder's name).
    command : str
        The command line, recorded in ``config.json`` and the preset.
    overwrite : bool
        Replace a non-empty ``out``.
    progress : callable, optional
        ``progress(stage, done, total)``; stages ``measure``, ``compare``, ``fit``.

    Returns
    -------
    RatersResult

    Notes
    -----
    Cases are read one at a time; what stays in memory is each case's consensus (what the
    error models corrupt, one boolean mask per case) and the 3-D case with the largest
    consensus (``case_planes.png``).

    Raises
    ------
    ConfigError
        A bad source, option, model or mode; ``out`` not empty without ``overwrite`` (checked
        before anything is read).
    DataError
        The raters' files or database cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import write_image
    >>> root = Path(tempfile.mkdtemp())
    >>> for rater, lo, hi in (("a", 4, 12), ("b", 4, 12), ("c", 3, 13)):
    ...     m = np.zeros((4, 16, 16), np.uint8); m[:, lo:hi, lo:hi] = 1
    ...     (root / "in" / rater).mkdir(parents=True); write_image(root / "in" / rater / "c1.nii.gz", m)
    >>> res = analyse_raters(data=f"raters:{root / 'in'}", out=root / "R", models=["dilate"])
    >>> res.n_cases, res.n_outlines, res.best
    (1, 3, 'dilate/slicewise')
    """
    check_out_dir(out, overwrite=overwrite, inputs=[])
    kept: list[RaterCase] = []  # what the models corrupt: each case's consensus only
    largest: dict[str, Any] = {"case": None, "size": -1}  # the 3-D case the figure draws

    def stream() -> Iterator[Any]:
        for c in load_raters(data):
            ref = c.consensus(level)
            kept.append(RaterCase(str(c.case_id), ref[None], tuple(c.spacing), ("consensus",),
                                  str(getattr(c, "group_id", ""))))
            if ref.ndim == 3 and int(ref.sum()) > largest["size"]:
                largest.update(case=c, size=int(ref.sum()))
            yield c

    def tick(stage: str) -> Callable[[int, int], None]:
        return (lambda i, n: progress(stage, i, n)) if progress else (lambda i, n: None)

    real = measure_raters(stream(), level=level, progress=tick("measure"))
    cases = kept
    ndim = int(np.asarray(cases[0].masks).ndim - 1) if cases else 2
    fit_table, preset, best = None, None, {}
    if fit:
        pairs = [p for p in model_modes(models, ["slicewise"] if ndim == 2 else modes)
                 if p in FIT_GRIDS]
        fits = []
        for k, (m, mode) in enumerate(pairs):
            f = fit_model(cases, real, model=m, mode=mode, grid=FIT_GRIDS[(m, mode)], seed=seed,
                          n_sim=n_sim, level=level)
            fits.append(f)
            ok = f[f["status"] == "ok"]
            if not ok.empty:
                best[f"{m}/{mode}"] = json.loads(ok["options"].iloc[0])
            tick("fit")(k + 1, len(pairs))
        fit_table = pd.concat(fits, ignore_index=True) if fits else None
    # the ranking and the simulated readers of the figures: each model with its best options
    sim, distances = compare_models(cases, real, models=models, modes=modes, options=best,
                                    seed=seed, n_sim=n_sim, level=level,
                                    progress=tick("compare"))
    if fit:
        preset = fitted_preset(distances, name=name or Path(out).name, ndim=ndim, source=data,
                               command=command,
                               extra={"seed": seed, "level": level, "n_cases": len(cases),
                                      "n_outlines": len(real)})
    config = {"data": data, "models": list(models), "modes": None if modes is None else list(modes),
              "fit": fit, "seed": seed, "n_sim": n_sim, "level": level, "command": command}
    write_raters(out, real, sim, distances, config=config, case=largest["case"], fit=fit_table,
                 preset=preset, overwrite=overwrite)
    return RatersResult(Path(out), len(cases), len(real), float(distances["target_dice"].iloc[0]),
                        distances, preset)
