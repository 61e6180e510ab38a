"""The ``examples.png`` of a corrupted dataset: clean against corrupted contours."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from noisyseg.corrupt.stream import CaseCorruption
from noisyseg.plot import (
    CLASS_COLOURS,
    display_window,
    plot_contour_grid,
    plot_volume_planes,
    save_figure,
)

__all__ = ["corruption_figure"]

def corruption_figure(result: CaseCorruption, class_names: tuple[str, ...],
                             path: str | Path) -> Path | None:
    """Save a figure of clean against corrupted contours for a corruption's examples.

    Draws clean (solid) against corrupted (dashed) contours for the examples kept by
    :func:`~noisyseg.corrupt.corrupt_cases`: one panel per 2-D case, three planes per volume
    (one row per case).

    Parameters
    ----------
    result : CaseCorruption
        The corruption whose ``examples`` and ``config`` are drawn.
    class_names : tuple of str
        Names of labels 0..C-1 (0 is the background), for the legend.
    path : str or Path
        Image file to write (e.g. ``examples.png``).

    Returns
    -------
    Path or None
        Where the figure was saved; None when there are no examples (nothing corrupted).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from noisyseg.corrupt import corrupt_cases
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = corrupt_cases(ds, "dilate", d, strength=1.0)
    ...     corruption_figure(res, ds.class_names, Path(d) / "examples.png").name
    'examples.png'
    """
    cfg = result.config
    flat = [e for e in result.examples if e["clean"].ndim == 2]
    if flat:
        fig = plot_contour_grid(np.stack([e["image"] for e in flat]),
                                [np.stack([e["clean"] for e in flat]),
                                 np.stack([e["noisy"] for e in flat])],
                                titles=[f"{e['case_id']} (Dice {e['dice']:.3f})" for e in flat],
                                labels=("clean", "corrupted"), class_names=class_names,
                                caption=f"{cfg['model']} at strength {cfg['strength']:.3g} "
                                        f"({cfg['strength_unit']}); {cfg['n_corrupted']}/"
                                        f"{cfg['n_train']} training masks corrupted, mean Dice "
                                        f"{cfg['mean_dice_corrupted']:.3f}")
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
