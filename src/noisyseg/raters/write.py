"""The raters' folder: tables, figures and a short markdown report, written whole or not at all."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.data.outdir import atomic_dir
from noisyseg.evaluate.raters import STATISTICS

__all__ = ["FILES", "write_raters"]

#: The files every raters' folder holds (``case_planes.png`` too where a 3-D case is given).
FILES = ("readers.parquet", "readers.csv", "simulated.parquet", "simulated.csv", "distances.csv",
         "config.json", "offset_mean.png", "realism.png", "correlation.png", "report.md")
_PACKAGES = ("noisyseg", "numpy", "scipy", "pandas", "matplotlib", "pyarrow", "pylidc")
#: The statistics of the report's table of real readers.
REPORT_STATISTICS = ("dice", "volume_ratio", "offset_mean", "offset_sd", "corr_length_in_plane_mm",
                     "corr_length_across_mm", "slice_jump_offset_mm", "slice_jump_radius_mm")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _fmt(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return ""
    return str(int(v)) if isinstance(x, (int, np.integer)) else f"{v:.{digits}g}"


def real_summary(real: pd.DataFrame, statistics: Sequence[str] = REPORT_STATISTICS) -> pd.DataFrame:
    """Median, quartiles and count of the finite values of each statistic of the real readers.

    Examples
    --------
    >>> real_summary(pd.DataFrame({"dice": [0.7, 0.8, 0.9]}), ["dice"]).round(3).values.tolist()
    [['dice', 0.8, 0.75, 0.85, 3]]
    """
    rows = []
    for s in statistics:
        x = pd.to_numeric(real[s], errors="coerce").to_numpy(float) if s in real else np.array([])
        x = x[np.isfinite(x)]
        q = np.quantile(x, [0.5, 0.25, 0.75]) if x.size else [np.nan] * 3
        rows.append({"statistic": s, "median": float(q[0]), "q25": float(q[1]), "q75": float(q[2]),
                     "n": int(x.size)})
    return pd.DataFrame(rows)


def _label(row: Any) -> str:
    return f"{row['model']} ({row['mode']})"


def _offset_figure(real: pd.DataFrame, simulated: pd.DataFrame, distances: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from noisyseg.plot import save_figure

    ok = distances[distances["status"] == "ok"]
    n = max(len(ok), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    r = pd.to_numeric(real["offset_mean"], errors="coerce").dropna().to_numpy(float)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, d) in zip(axes.flat, ok.iterrows(), strict=False):
        ax.axis("on")
        sel = simulated[(simulated["model"] == d["model"]) & (simulated["mode"] == d["mode"])]
        s = pd.to_numeric(sel["offset_mean"], errors="coerce").dropna().to_numpy(float)
        both = np.concatenate([r, s]) if s.size else r
        bins = np.linspace(*(np.quantile(both, [0.005, 0.995]) if both.size else (-1.0, 1.0)), 41) \
            if both.size and np.ptp(both) > 0 else 20
        ax.hist(r, bins=bins, density=True, alpha=0.5, label="readers", color="#0072B2")
        ax.hist(s, bins=bins, density=True, alpha=0.5, label="simulated", color="#D55E00")
        ax.set_title(f"{_label(d)}  W/sd={_fmt(d['offset_mean'], 2)}", fontsize=8)
        ax.set_xlabel("mean surface offset (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)


def _correlation_figure(real: pd.DataFrame, simulated: pd.DataFrame, distances: pd.DataFrame,
                        path: Path, top: int = 3) -> None:
    """How far offsets stay alike: the correlation lengths of the real readers against those of
    the ``top`` most realistic models (in-plane; across slices for 3-D cases)."""
    import matplotlib.pyplot as plt

    from noisyseg.plot import save_figure

    cols = [c for c in ("corr_length_in_plane_mm", "corr_length_across_mm")
            if c in real and pd.to_numeric(real[c], errors="coerce").notna().any()]
    cols = cols or ["corr_length_in_plane_mm"]
    ok = distances[distances["status"] == "ok"].head(top)
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.0), squeeze=False)
    for ax, col in zip(axes.flat, cols, strict=True):
        r = pd.to_numeric(real.get(col, pd.Series(dtype=float)), errors="coerce").dropna()
        series = [("readers", r.to_numpy(float))]
        for _, d in ok.iterrows():
            sel = simulated[(simulated["model"] == d["model"]) & (simulated["mode"] == d["mode"])]
            series.append((_label(d), pd.to_numeric(sel.get(col, pd.Series(dtype=float)),
                                                    errors="coerce").dropna().to_numpy(float)))
        both = np.concatenate([x for _, x in series if x.size]) if any(x.size for _, x in series) \
            else np.array([0.0, 1.0])
        hi = float(np.quantile(both, 0.98)) if both.size else 1.0
        bins = np.linspace(0.0, max(hi, 1e-6), 31)
        for (name, x), colour in zip(series, ("#0072B2", "#D55E00", "#009E73", "#CC79A7"),
                                     strict=False):
            ax.hist(np.clip(x, 0, hi), bins=bins, density=True, histtype="step", lw=1.5,
                    label=name, color=colour)
        ax.set_xlabel(col.replace("corr_length_", "correlation length ").replace("_mm", " (mm)")
                      .replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)


def _realism_figure(distances: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from noisyseg.plot import save_figure

    ok = distances[distances["status"] == "ok"].sort_values("realism")
    fig, ax = plt.subplots(figsize=(6, 0.35 * max(len(ok), 1) + 1.8))
    ax.barh([_label(r) for _, r in ok.iterrows()], ok["realism"].to_numpy(float), color="#009E73")
    ax.invert_yaxis()
    ax.set_xlabel("realism: mean Wasserstein distance / real sd (lower is closer to the readers)")
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _planes_figure(nodule: Any, level: float, path: Path) -> None:
    from noisyseg.plot import plot_volume_planes, save_figure

    masks = np.asarray(nodule.masks, dtype=bool)
    cons = nodule.consensus(level)
    readers = [m.astype(np.uint8) * (i + 2) for i, m in enumerate(masks)]  # colour 1: the consensus
    fig = plot_volume_planes(np.mean(masks, axis=0), [cons.astype(np.uint8), *readers],
                             spacing=tuple(float(v) for v in nodule.spacing), labels=(),
                             class_names=("", "consensus", *[f"reader {r}" for r in nodule.reader_ids]),
                             title=f"{nodule.case_id} (grey: share of readers)", window=(0.0, 1.0))
    save_figure(fig, path)


def _table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _components(real: pd.DataFrame) -> list[str]:
    """The report's section on systematic against random offsets."""
    from noisyseg.evaluate.raters import variance_components

    if real.empty or "offset_mean" not in real:
        return []
    lines = ["## Systematic against random", ""]
    per_reader = real.groupby("reader_id")["case_id"].nunique()
    if len(per_reader) and per_reader.max() > 1:
        vc = variance_components(real, value="offset_mean", group="reader_id")
        lines += [f"Each reader's mean surface offset across the cases it outlined (its systematic "
                  f"part) against the spread of its per-case mean offset (the random part): "
                  f"{_fmt(vc.systematic_fraction)} of the variance of the per-case mean offset "
                  f"lies between readers (between {_fmt(vc.between)} mm^2, within "
                  f"{_fmt(vc.within)} mm^2).", "",
                  _table(pd.DataFrame(vc.per_group).rename(columns={"group": "reader"})), ""]
    else:
        vc = variance_components(real, value="offset_mean", group="case_id")
        lines += ["The source does not name its readers across cases (LIDC-IDRI's database "
                  "identifies annotations, not radiologists), so no reader's systematic part "
                  "can be measured. What the case sets instead: "
                  f"{_fmt(vc.systematic_fraction)} of the variance of a reader's mean surface "
                  f"offset lies between cases (between {_fmt(vc.between)} mm^2, within "
                  f"{_fmt(vc.within)} mm^2; mean {_fmt(vc.grand_mean)} mm over {vc.n} "
                  "outlines).", ""]
    return lines


def _fit_lines(fit: pd.DataFrame | None, distances: pd.DataFrame) -> list[str]:
    """The report's section on the fitted options (``fit.csv``, ``preset.json``)."""
    if fit is None or fit.empty:
        return []
    rows = []
    for (model, mode), f in fit.groupby(["model", "mode"], sort=False):
        ok = f[f["status"] == "ok"].sort_values("realism")
        if ok.empty:
            continue
        rows.append({"model": model, "mode": mode, "best options": ok["options"].iloc[0],
                     "realism": ok["realism"].iloc[0], "worst options": ok["options"].iloc[-1],
                     "worst realism": ok["realism"].iloc[-1], "tried": len(f)})
    return ["## Fitted options", "",
            "Each model's options searched for the simulated readers most like the real ones "
            "(`fit.csv`: every option tried); the ranking above uses the best. `preset.json` "
            "holds them: `noisyseg corrupt --like preset.json --model NAME`.", "",
            _table(pd.DataFrame(rows)) if rows else "(no fit calibrated)", ""]


def _report(real: pd.DataFrame, simulated: pd.DataFrame, distances: pd.DataFrame, config: dict[str, Any],
            planes: bool, fit: pd.DataFrame | None = None) -> str:
    n_nod = real["case_id"].nunique() if "case_id" in real else 0
    per = real.groupby("case_id")["n_readers"].first() if n_nod else pd.Series(dtype=int)
    source = str(config.get("data", ""))
    who = "LIDC-IDRI's radiologists" if source.split(":")[0].split(",")[0] == "lidc" \
        else f"the raters of {source}" if source else "real raters"
    cases = "nodules" if who.startswith("LIDC") else "cases"
    counts = ", ".join(f"{int(c)} with {int(r)} readers" for r, c in per.value_counts().sort_index().items())
    rank = distances[["rank", "model", "mode", "options", "status", "strength", "achieved_dice",
                      "dice", "offset_mean",
                      "offset_sd", "corr_length_in_plane_mm", "corr_length_across_mm",
                      "slice_jump_offset_mm", "realism"]].copy()
    target = _fmt(distances["target_dice"].iloc[0], 4) if len(distances) else ""
    rank["rank"] = rank["rank"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    rank["status"] = rank["status"].map(lambda s: s if len(s) <= 60 else s[:57] + "...")
    lines = [
        f"# How realistic are the simulated errors? Measured on {who}", "",
        "## What was measured", "",
        f"Each reader of {n_nod} {cases} ({counts}; {len(real)} reader outlines) is compared with the "
        f"consensus (level {config.get('level', 0.5)}) of the other readers of the case: Dice, volume "
        "ratio, signed surface offsets (mm; positive outside the reference), their correlation lengths "
        "in-plane and across slices, and the slice-to-slice jumps of the per-slice offset and radius.",
        "",
        "Each error model (and 3-D mode) corrupts each case's consensus of all readers, at one strength "
        "calibrated so that the mean Dice against the consensus equals the readers' mean Dice against "
        f"their leave-one-out consensus ({target}"
        "); each simulated mask is then measured with the same statistics against the consensus it was "
        "drawn from. A statistic's distance is the Wasserstein distance between the real and simulated "
        "distributions over the real standard deviation; `realism` is the mean over the statistics "
        f"({len(STATISTICS)}), lower being closer to the radiologists.", "",
        "## The real readers", "",
        _table(real_summary(real)), "",
        "## Ranking of the error models", "",
        _table(rank), "",
        "Columns `dice` .. `slice_jump_offset_mm` are normalised distances; `distances.csv` holds every "
        "statistic's.", "",
        *_components(real),
        *_fit_lines(fit, distances),
        "## Figures", "",
        "- ![mean offset, real against simulated](offset_mean.png)",
        "- ![realism per model and mode](realism.png)",
        "- ![correlation lengths, real against the most realistic models](correlation.png)",
    ]
    if planes:
        lines.append("- ![one case's readers over the consensus](case_planes.png)")
    lines += ["", f"Simulated outlines: {len(simulated)}; seed {config.get('seed')}; see `config.json`.", ""]
    return "\n".join(lines)


def write_raters(out: str | Path, real: pd.DataFrame, simulated: pd.DataFrame, distances: pd.DataFrame, *,
                 config: dict[str, Any], case: Any | None = None, fit: pd.DataFrame | None = None,
                 preset: Any | None = None, overwrite: bool = False) -> Path:
    """Write the real and simulated readers' tables, the model ranking, figures and a report.

    Parameters
    ----------
    out : str or Path
        The folder, built under a temporary name and renamed into place
        (:func:`~noisyseg.data.outdir.atomic_dir`): nothing half-written on error.
    real : pandas.DataFrame
        :func:`~noisyseg.raters.measure_raters`' table.
    simulated, distances : pandas.DataFrame
        :func:`~noisyseg.raters.compare_models`' tables.
    config : dict
        The run's settings (``seed``, ``level``, models, ...), written to ``config.json`` with the
        package versions.
    case : RaterCase or Nodule, optional
        A 3-D case drawn in three planes, its readers over their consensus (``case_planes.png``).
    fit : pandas.DataFrame, optional
        Every option tried by :func:`~noisyseg.raters.fit_model` (``fit.csv``).
    preset : Preset, optional
        The fitted preset (``preset.json``, :func:`~noisyseg.corrupt.presets.write_preset`).
    overwrite : bool
        Replace a non-empty ``out``.

    Returns
    -------
    Path
        ``out``, holding :data:`FILES`.

    Raises
    ------
    ConfigError
        ``out`` is not empty and ``overwrite`` is false, or is a file.
    WriteError
        The folder cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> from noisyseg.data import RaterCase
    >>> from noisyseg.raters import compare_models, measure_raters
    >>> m = np.zeros((3, 4, 16, 16), bool); m[:, :, 4:12, 4:12] = True; m[2, :, 3:13, 3:13] = True
    >>> nod = [RaterCase("n1", m, (1.0, 1.0, 1.0), ("a", "b", "c"))]
    >>> real = measure_raters(nod)
    >>> sim, dist = compare_models(nod, real, models=["dilate"], modes=["slicewise"])
    >>> out = write_raters(Path(tempfile.mkdtemp()) / "raters", real, sim, dist, config={"seed": 0})
    >>> sorted(p.name for p in out.iterdir()) == sorted(FILES)
    True
    """
    cfg = _json_safe({**config, "versions": _versions()})
    cfg.setdefault("seed", None)
    cfg.setdefault("level", 0.5)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        real.to_parquet(tmp / "readers.parquet", index=False)
        real.to_csv(tmp / "readers.csv", index=False)
        simulated.to_parquet(tmp / "simulated.parquet", index=False)
        simulated.to_csv(tmp / "simulated.csv", index=False)
        distances.to_csv(tmp / "distances.csv", index=False)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        _offset_figure(real, simulated if len(simulated) else pd.DataFrame(columns=["model", "mode",
                                                                                    "offset_mean"]),
                       distances, tmp / "offset_mean.png")
        _realism_figure(distances, tmp / "realism.png")
        _correlation_figure(real, simulated, distances, tmp / "correlation.png")
        planes = case is not None and np.asarray(case.masks).ndim == 4
        if planes:
            _planes_figure(case, float(cfg["level"]), tmp / "case_planes.png")
        if fit is not None:
            fit.to_csv(tmp / "fit.csv", index=False)
        if preset is not None:
            from noisyseg.corrupt.presets import write_preset

            write_preset(tmp / "preset.json", preset)
        (tmp / "report.md").write_text(_report(real, simulated, distances, cfg, planes, fit))
    return Path(out)
