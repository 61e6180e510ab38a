"""Figure primitives every stage draws with: contours over 2-D images, one panel per sample
(:func:`plot_contour_grid`), a volume in three orthogonal planes (:func:`plot_volume_planes`),
the display window of a modality (:func:`display_window`), and :func:`save_figure`.

A utility below every stage (like :mod:`noisyseg.evaluate`): the run folder's suspect and
prediction figures, the corruption examples and the study report all use these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["CLASS_COLOURS", "CT_WINDOW", "display_window", "plot_contour_grid", "plot_volume_planes",
           "save_figure"]

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


#: Display window (HU) for CT: the abdominal soft-tissue window of radiology reading rooms.
CT_WINDOW = (-200.0, 250.0)


def display_window(channel_names: tuple[str, ...] | list[str]) -> tuple[float, float] | None:
    """A fixed window for CT (a channel named ``CT``, nnU-Net's convention for Hounsfield
    units); None (percentiles of the image) otherwise."""
    return CT_WINDOW if any(str(c).upper() == "CT" for c in channel_names) else None


def plot_volume_planes(image: np.ndarray, masks: list[np.ndarray], *, spacing: tuple[float, ...],
                       labels: tuple[str, ...], class_names: tuple[str, ...], title: str = "",
                       centre: tuple[int, int, int] | None = None, window: tuple[float, float] | None = None,
                       axes_row: np.ndarray | None = None) -> plt.Figure | None:
    """Three orthogonal planes (axial, coronal, sagittal) of a volume with contour sets.

    Planes pass through ``centre`` (default: the centroid of the first mask's foreground);
    each is drawn at its physical aspect ratio from ``spacing`` (array order z, y, x), with
    the patient's head up in the coronal and sagittal planes.
    """
    fig = None
    if axes_row is None:
        fig, axes_row = plt.subplots(1, 3, figsize=(10, 3.6), squeeze=True)
    if centre is None:
        fg = np.argwhere(masks[0] > 0)
        centre = tuple(int(v) for v in (fg.mean(0) if len(fg) else np.array(image.shape) // 2))
    z, y, x = centre
    sz, sy, sx = spacing
    lo, hi = window or (float(np.percentile(image, 1)), float(np.percentile(image, 99)))
    planes = [("axial", lambda a: a[z], sy / sx), ("coronal", lambda a: a[:, y][::-1], sz / sx),
              ("sagittal", lambda a: a[:, :, x][::-1], sz / sy)]
    styles = ("solid", "dashed", "dotted")
    for ax, (name, cut, aspect) in zip(axes_row, planes, strict=True):
        ax.imshow(cut(image), cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        for j, m in enumerate(masks):
            _contours(ax, cut(m), style=styles[j % 3], width=1.4 if j == 0 else 1.0)
        ax.set_title(f"{title}  {name}".strip(), fontsize=8)
        ax.axis("off")
    if fig is not None:
        handles = [plt.Line2D([], [], color="k", linestyle=styles[j % 3], label=lab)
                   for j, lab in enumerate(labels)]
        handles += [plt.Line2D([], [], color=CLASS_COLOURS[(c - 1) % 7], label=n)
                    for c, n in enumerate(class_names) if c > 0]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
                   frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
