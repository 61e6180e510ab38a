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

#: The files every raters' folder holds (``nodule_planes.png`` too where a nodule is given).
FILES = ("readers.parquet", "readers.csv", "simulated.parquet", "simulated.csv", "distances.csv",
         "config.json", "offset_mean.png", "realism.png", "report.md")
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


def _realism_figure(distances: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from noisyseg.plot import save_figure

    ok = distances[distances["status"] == "ok"].sort_values("realism")
    fig, ax = plt.subplots(figsize=(6, 0.35 * max(len(ok), 1) + 1.2))
    ax.barh([_label(r) for _, r in ok.iterrows()], ok["realism"].to_numpy(float), color="#009E73")
    ax.invert_yaxis()
    ax.set_xlabel("realism: mean Wasserstein distance / real sd (lower is closer to the readers)")
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _planes_figure(nodule: Any, level: float, path: Path) -> None:
    from noisyseg.plot import plot_volume_planes, save_figure

    masks = np.asarray(nodule.masks, dtype=bool)
    cons = np.mean(masks, axis=0) >= level
    readers = [m.astype(np.uint8) * (i + 2) for i, m in enumerate(masks)]  # colour 1: the consensus
    fig = plot_volume_planes(np.mean(masks, axis=0), [cons.astype(np.uint8), *readers],
                             spacing=tuple(float(v) for v in nodule.spacing), labels=(),
                             class_names=("", "consensus", *[f"reader {r}" for r in nodule.reader_ids]),
                             title=f"{nodule.nodule_id} (grey: share of readers)", window=(0.0, 1.0))
    save_figure(fig, path)


def _table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _report(real: pd.DataFrame, simulated: pd.DataFrame, distances: pd.DataFrame, config: dict[str, Any],
            planes: bool) -> str:
    n_nod = real["nodule_id"].nunique() if "nodule_id" in real else 0
    per = real.groupby("nodule_id")["n_readers"].first() if n_nod else pd.Series(dtype=int)
    counts = ", ".join(f"{int(c)} with {int(r)} readers" for r, c in per.value_counts().sort_index().items())
    rank = distances[["rank", "model", "mode", "status", "strength", "achieved_dice", "dice", "offset_mean",
                      "offset_sd", "corr_length_in_plane_mm", "corr_length_across_mm",
                      "slice_jump_offset_mm", "realism"]].copy()
    target = _fmt(distances["target_dice"].iloc[0], 4) if len(distances) else ""
    rank["rank"] = rank["rank"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    rank["status"] = rank["status"].map(lambda s: s if len(s) <= 60 else s[:57] + "...")
    lines = [
        "# How realistic are the simulated errors? Measured on LIDC-IDRI's radiologists", "",
        "## What was measured", "",
        f"Each reader of {n_nod} nodules ({counts}; {len(real)} reader outlines) is compared with the "
        f"consensus (level {config.get('level', 0.5)}) of the other readers of the nodule: Dice, volume "
        "ratio, signed surface offsets (mm; positive outside the reference), their correlation lengths "
        "in-plane and across slices, and the slice-to-slice jumps of the per-slice offset and radius.",
        "",
        "Each error model (and 3-D mode) corrupts each nodule's consensus of all readers, at one strength "
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
        "## Figures", "",
        "- ![mean offset, real against simulated](offset_mean.png)",
        "- ![realism per model and mode](realism.png)",
    ]
    if planes:
        lines.append("- ![one nodule's readers over the consensus](nodule_planes.png)")
    lines += ["", f"Simulated outlines: {len(simulated)}; seed {config.get('seed')}; see `config.json`.", ""]
    return "\n".join(lines)


def write_raters(out: str | Path, real: pd.DataFrame, simulated: pd.DataFrame, distances: pd.DataFrame, *,
                 config: dict[str, Any], nodule: Any | None = None, overwrite: bool = False) -> Path:
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
    nodule : Nodule, optional
        A nodule drawn in three planes, its readers over their consensus (``nodule_planes.png``).
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
    >>> from types import SimpleNamespace
    >>> from noisyseg.raters import compare_models, measure_raters
    >>> m = np.zeros((3, 4, 16, 16), bool); m[:, :, 4:12, 4:12] = True; m[2, :, 3:13, 3:13] = True
    >>> nod = [SimpleNamespace(nodule_id="n1", masks=m, spacing=(1.0, 1.0, 1.0), reader_ids="abc")]
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
        if nodule is not None:
            _planes_figure(nodule, float(cfg["level"]), tmp / "nodule_planes.png")
        (tmp / "report.md").write_text(_report(real, simulated, distances, cfg, nodule is not None))
    return Path(out)
