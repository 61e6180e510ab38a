"""Figures a person can put in a paper: contours over images, one panel per sample."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["CLASS_COLOURS", "plot_contour_grid", "save_figure"]

#: Colours of foreground classes 1, 2, 3, ... (colour-blind friendly, Okabe-Ito).
CLASS_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


def _contours(ax: plt.Axes, mask: np.ndarray, *, style: str, width: float) -> None:
    for c in range(1, int(mask.max()) + 1):
        b = mask == c
        if b.any():
            ax.contour(b.astype(float), levels=[0.5], colors=[CLASS_COLOURS[(c - 1) % 7]],
                       linewidths=width, linestyles=style)


def plot_contour_grid(images: np.ndarray, masks: Sequence[np.ndarray], *,
                      titles: Sequence[str], labels: Sequence[str],
                      class_names: Sequence[str], caption: str = "") -> plt.Figure:
    """One panel per image, each with one contour set per entry of ``masks``.

    Parameters
    ----------
    images : (N, H, W) float ndarray
    masks : sequence of (N, H, W) integer ndarray
        Drawn solid, dashed, dotted, ... in that order (e.g. clean then corrupted).
    titles : sequence of str
        One title per panel.
    labels : sequence of str
        Legend names of the mask sets, e.g. ``("clean", "corrupted")``.
    class_names : sequence of str
        Names of classes 0..C-1 for the legend.
    """
    n = len(images)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    # constrained layout keeps every title clear of the row above (tight_layout let long
    # titles of the second row slip under the first row's images)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 3.1 * rows + 0.6), squeeze=False,
                             layout="constrained")
    styles = ("solid", "dashed", "dotted", "dashdot")
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray", interpolation="nearest")
        for j, m in enumerate(masks):
            _contours(ax, m[i], style=styles[j % 4], width=1.4 if j == 0 else 1.0)
        ax.set_title(titles[i], fontsize=8)
    handles = [plt.Line2D([], [], color="k", linestyle=styles[j % 4], label=lab)
               for j, lab in enumerate(labels)]
    handles += [plt.Line2D([], [], color=CLASS_COLOURS[(c - 1) % 7], label=name)
                for c, name in enumerate(class_names) if c > 0]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
               fontsize=8, frameon=False)
    if caption:
        fig.suptitle(caption, fontsize=9)
    return fig


def save_figure(fig: plt.Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Save ``fig`` atomically (temporary file renamed) and close it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
