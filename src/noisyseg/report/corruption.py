"""Figures and tables describing simulated label errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyseg.corrupt import CorruptionResult
from noisyseg.report.figures import plot_contour_grid, save_figure

__all__ = ["corruption_figure"]


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

