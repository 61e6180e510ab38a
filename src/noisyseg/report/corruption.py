"""Figures and tables describing simulated label errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from noisyseg.corrupt import CorruptionResult
from noisyseg.report.figures import plot_contour_grid, save_figure

__all__ = ["corruption_figure", "corruption_summary"]


def corruption_figure(result: CorruptionResult, path: str | Path, *, n: int = 8) -> Path:
    """Save clean (solid) vs corrupted (dashed) contours for up to ``n`` corrupted samples."""
    ds = result.dataset
    idx = np.flatnonzero(result.manifest["corrupted"].to_numpy())[:n]
    if idx.size == 0:
        idx = ds.indices("train")[:n]
    d = result.manifest["dice_to_clean"].to_numpy()
    cfg = result.config
    fig = plot_contour_grid(
        ds.images[idx], [ds.truth[idx], ds.masks[idx]],
        titles=[f"{ds.sample_ids[i]}  Dice {d[i]:.3f}" for i in idx],
        labels=("clean", "corrupted"), class_names=ds.class_names,
        caption=f"{cfg['model']} at strength {cfg['strength']:.3g} ({cfg['strength_unit']}); "
                f"{cfg['n_corrupted']}/{cfg['n_train']} training masks corrupted, "
                f"mean Dice {cfg['mean_dice_corrupted']:.3f}")
    return save_figure(fig, path)


def corruption_summary(results: dict[str, CorruptionResult]) -> pd.DataFrame:
    """One row per error model: strength, target and achieved Dice, count corrupted."""
    rows = []
    for name, r in results.items():
        m = r.manifest[r.manifest["corrupted"]]
        rows.append({"model": name, "kind": r.config["kind"],
                     "strength": round(r.config["strength"], 4),
                     "unit": r.config["strength_unit"],
                     "target_dice": r.config["target_dice"],
                     "mean_dice": round(float(m["dice_to_clean"].mean()), 4) if len(m) else 1.0,
                     "sd_dice": round(float(m["dice_to_clean"].std()), 4) if len(m) > 1 else 0.0,
                     "n_corrupted": len(m)})
    return pd.DataFrame(rows)
