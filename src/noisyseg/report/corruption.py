"""Figures and tables describing simulated label errors."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from noisyseg.corrupt import CaseCorruption, CorruptionResult
from noisyseg.report.figures import CLASS_COLOURS, _contours, plot_contour_grid, save_figure

__all__ = ["corruption_figure", "display_window", "plot_volume_planes", "volume_corruption_figure"]

#: Display window (HU) for CT: the abdominal soft-tissue window of radiology reading rooms.
CT_WINDOW = (-200.0, 250.0)


def display_window(channel_names: tuple[str, ...] | list[str]) -> tuple[float, float] | None:
    """A fixed window for CT (a channel named ``CT``, nnU-Net's convention for Hounsfield
    units); None (percentiles of the image) otherwise."""
    return CT_WINDOW if any(str(c).upper() == "CT" for c in channel_names) else None


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


def volume_corruption_figure(result: CaseCorruption, class_names: tuple[str, ...],
                             path: str | Path) -> Path | None:
    """Save clean (solid) vs corrupted (dashed) contours for the examples kept by
    :func:`~noisyseg.corrupt.corrupt_cases`: three planes per volume (one row per case), one
    panel per 2-D case (a 2-D nnU-Net or folder dataset read case by case); None when there
    are no examples."""
    cfg = result.config
    flat = [e for e in result.examples if e["clean"].ndim == 2]
    if flat:
        fig = plot_contour_grid(np.stack([e["image"] for e in flat]),
                                [np.stack([e["clean"] for e in flat]),
                                 np.stack([e["noisy"] for e in flat])],
                                titles=[f"{e['case_id']} (Dice {e['dice']:.3f})" for e in flat],
                                labels=("clean", "corrupted"), class_names=class_names,
                                caption=f"{cfg['model']} at strength {cfg['strength']:.3g} "
                                        f"({cfg['strength_unit']})")
        return save_figure(fig, path)
    ex = [e for e in result.examples if e["clean"].ndim == 3]
    if not ex:
        return None
    # panels at their physical aspect: the axial plane sets the row height, so each row gets
    # room for its titles above it
    fig, axes = plt.subplots(len(ex), 3, figsize=(10, 3.9 * len(ex) + 0.9), squeeze=False)
    window = display_window(cfg.get("channels", ()))
    for row, e in zip(axes, ex, strict=True):
        plot_volume_planes(e["image"], [e["clean"], e["noisy"]], spacing=e["spacing"],
                           labels=("clean", "corrupted"), class_names=class_names,
                           title=f"{e['case_id']} (Dice {e['dice']:.3f})", axes_row=row,
                           window=window)
    styles = ("solid", "dashed")
    handles = [plt.Line2D([], [], color="k", linestyle=st, label=lab)
               for st, lab in zip(styles, ("clean", "corrupted"), strict=True)]
    handles += [plt.Line2D([], [], color=CLASS_COLOURS[(c - 1) % 7], label=n)
                for c, n in enumerate(class_names) if c > 0]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)
    mode = f", {cfg['mode']}" if cfg.get("mode") else ""
    fig.suptitle(f"{cfg['model']}{mode} at strength {cfg['strength']:.3g} "
                 f"({cfg['strength_unit']}); {cfg['n_corrupted']}/{cfg['n_train']} training "
                 f"cases corrupted, mean Dice {cfg['mean_dice_corrupted']:.3f}", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return save_figure(fig, path)
