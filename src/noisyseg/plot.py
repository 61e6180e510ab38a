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

#: Colours (hex strings) of foreground classes 1, 2, 3, ...: class ``c`` is drawn in
#: ``CLASS_COLOURS[(c - 1) % 7]`` (colour-blind friendly, Okabe-Ito).
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
    """Draw one panel per image, each with one contour set per entry of ``masks``.

    Up to 4 panels per row, grey images, one colour per foreground class
    (:data:`CLASS_COLOURS`) and a legend of line styles and classes below.

    Parameters
    ----------
    images : (N, H, W) float ndarray
        The images, shown in grey with matplotlib's automatic range.
    masks : sequence of (N, H, W) integer ndarray
        Drawn solid, dashed, dotted, ... in that order (e.g. clean then corrupted).
    titles : sequence of str
        One title per panel.
    labels : sequence of str
        Legend names of the mask sets, e.g. ``("clean", "corrupted")``.
    class_names : sequence of str
        Names of classes 0..C-1 for the legend (class 0, the background, is left out).
    caption : str, default ''
        Figure title above the panels (none when empty).

    Returns
    -------
    matplotlib.figure.Figure
        The figure, open (pass it to :func:`save_figure`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(size=(2, 16, 16))
    >>> clean = np.zeros((2, 16, 16), dtype=np.uint8); clean[:, 4:12, 4:12] = 1
    >>> noisy = clean.copy(); noisy[1, 4:12, 4:14] = 1
    >>> fig = plot_contour_grid(images, [clean, noisy], titles=["a", "b"],
    ...                         labels=["clean", "noisy"], class_names=["background", "lv"])
    >>> len(fig.axes), [ax.get_title() for ax in fig.axes]
    (2, ['a', 'b'])
    >>> save_figure(fig, Path(tempfile.mkdtemp()) / "grid.png").is_file()
    True
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
    """Save ``fig`` atomically (a temporary file renamed) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; closed afterwards.
    path : str or Path
        Destination; its suffix gives the format (PNG without one). The folder must exist.
    dpi : int, default 120
        Resolution in dots per inch.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> fig, ax = plt.subplots(figsize=(2, 2))
    >>> _ = ax.plot([0, 1], [1, 0])
    >>> p = save_figure(fig, Path(tempfile.mkdtemp()) / "line.png", dpi=50)
    >>> p.name, p.is_file(), p.read_bytes()[1:4], plt.fignum_exists(fig.number)
    ('line.png', True, b'PNG', False)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


#: Display window ``(low, high)`` in HU for CT: the abdominal soft-tissue window of radiology
#: reading rooms (see :func:`display_window`).
CT_WINDOW = (-200.0, 250.0)


def display_window(channel_names: tuple[str, ...] | list[str]) -> tuple[float, float] | None:
    """Return the display window of a modality: fixed for CT, None otherwise.

    Parameters
    ----------
    channel_names : tuple or list of str
        The dataset's channel names; a channel named ``CT`` (any case; nnU-Net's
        convention for Hounsfield units) selects the CT window.

    Returns
    -------
    (float, float) or None
        ``(low, high)`` in HU (:data:`CT_WINDOW`) for CT; None otherwise (the figure then
        uses the image's 1st and 99th percentiles).

    Examples
    --------
    >>> display_window(("CT",)), display_window(["T2", "ADC"]) is None
    ((-200.0, 250.0), True)
    """
    return CT_WINDOW if any(str(c).upper() == "CT" for c in channel_names) else None


def plot_volume_planes(image: np.ndarray, masks: list[np.ndarray], *, spacing: tuple[float, ...],
                       labels: tuple[str, ...], class_names: tuple[str, ...], title: str = "",
                       centre: tuple[int, int, int] | None = None, window: tuple[float, float] | None = None,
                       axes_row: np.ndarray | None = None) -> plt.Figure | None:
    """Draw three orthogonal planes (axial, coronal, sagittal) of a volume with contours.

    Planes pass through ``centre`` (default: the centroid of the first mask's foreground);
    each is drawn at its physical aspect ratio from ``spacing`` (array order z, y, x), with
    the patient's head up in the coronal and sagittal planes.

    Parameters
    ----------
    image : (D, H, W) float ndarray
        The volume (array order z, y, x).
    masks : list of (D, H, W) integer ndarray
        Contour sets, drawn solid, dashed, dotted in that order.
    spacing : (float, float, float)
        Voxel size (z, y, x), e.g. in mm; only the ratios matter.
    labels : tuple of str
        Legend names of the mask sets.
    class_names : tuple of str
        Names of classes 0..C-1 for the legend (class 0 left out).
    title : str, default ''
        Prefix of each plane's title.
    centre : (int, int, int), optional
        Voxel (z, y, x) the planes pass through; the first mask's foreground centroid
        (the volume's centre when it is empty) by default.
    window : (float, float), optional
        Grey-value range (e.g. :func:`display_window`); the image's 1st to 99th percentile
        by default.
    axes_row : ndarray of 3 matplotlib Axes, optional
        Draw into these axes (e.g. a row of a larger figure; no legend is added); a new
        figure by default.

    Returns
    -------
    matplotlib.figure.Figure or None
        The new figure with a legend; None when drawing into ``axes_row``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> rng = np.random.default_rng(0)
    >>> vol = rng.normal(size=(6, 12, 12))
    >>> mask = np.zeros((6, 12, 12), dtype=np.uint8); mask[2:5, 3:9, 3:9] = 1
    >>> fig = plot_volume_planes(vol, [mask], spacing=(2.5, 0.8, 0.8), labels=("given",),
    ...                          class_names=("background", "liver"), title="case 0")
    >>> [ax.get_title() for ax in fig.axes]
    ['case 0  axial', 'case 0  coronal', 'case 0  sagittal']
    >>> save_figure(fig, Path(tempfile.mkdtemp()) / "planes.png").is_file()
    True
    >>> fig, row = plt.subplots(1, 3)
    >>> plot_volume_planes(vol, [mask], spacing=(1.0, 1.0, 1.0), labels=("given",),
    ...                    class_names=("background", "liver"), axes_row=row) is None
    True
    >>> plt.close(fig)
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
