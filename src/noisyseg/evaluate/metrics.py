"""Test-set metrics on clean masks with MONAI: Dice, IoU and HD95 per class.

Empty cases are handled, not crashed on: a class absent from both the prediction and the
truth of a sample is left out of that sample's averages (as in :func:`noisyseg.metrics.dice`);
HD95 is undefined when exactly one of the two is empty; those cases are counted and reported
(``hd95_undefined``) and left out of the HD95 mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou
from monai.networks.utils import one_hot

__all__ = ["SegmentationMetrics", "evaluate_masks"]


@dataclass(frozen=True)
class SegmentationMetrics:
    """Per-class and mean metrics over a test set.

    Attributes
    ----------
    per_class : dict
        ``{class_name: {"dice": .., "iou": .., "hd95": .., "hd95_undefined": n, "n": n}}``
        (means over the samples where the class is present in prediction or truth).
    mean : dict
        ``{"dice": .., "iou": .., "hd95": ..}``: per-sample means over classes, then over
        samples (the project-wide definition of Dice).
    per_sample_dice : list of float
    """

    per_class: dict[str, dict[str, float]]
    mean: dict[str, float]
    per_sample_dice: list[float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


def _nanmean(a: np.ndarray, axis: int | None = None) -> Any:
    with np.errstate(invalid="ignore"):
        cnt = np.sum(~np.isnan(a), axis=axis)
        out = np.where(cnt > 0, np.nansum(a, axis=axis) / np.maximum(cnt, 1), np.nan)
    return out


def evaluate_masks(y_pred: np.ndarray, y: np.ndarray, class_names: Sequence[str], *,
                   spacing: float | None = None) -> SegmentationMetrics:
    """Dice, IoU and 95th-percentile Hausdorff distance of ``y_pred`` against ``y``.

    Parameters
    ----------
    y_pred, y : (N, H, W) integer ndarray
        Predicted and true label masks.
    class_names : sequence of str
        Names of labels 0..C-1 (0 is the background). When the names include
        ``lv_cavity`` and ``lv_myocardium`` an extra pseudo-class ``lv_epicardium``
        (their union) is reported, as is usual for echocardiography.
    spacing : float, optional
        Pixel size (mm) for HD95; pixels when omitted.

    Returns
    -------
    SegmentationMetrics
    """
    n_cls = len(class_names)
    names = list(class_names[1:])
    yp = one_hot(torch.as_tensor(np.asarray(y_pred, dtype=np.int64))[:, None], n_cls)
    yt = one_hot(torch.as_tensor(np.asarray(y, dtype=np.int64))[:, None], n_cls)
    if "lv_cavity" in class_names and "lv_myocardium" in class_names:
        i, j = class_names.index("lv_cavity"), class_names.index("lv_myocardium")
        yp = torch.cat([yp, (yp[:, i:i + 1] + yp[:, j:j + 1]).clamp(max=1)], 1)
        yt = torch.cat([yt, (yt[:, i:i + 1] + yt[:, j:j + 1]).clamp(max=1)], 1)
        names.append("lv_epicardium")
    present_p = yp[:, 1:].flatten(2).any(-1).numpy()
    present_t = yt[:, 1:].flatten(2).any(-1).numpy()
    either = present_p | present_t
    both = present_p & present_t
    d = compute_dice(yp, yt, include_background=False, ignore_empty=False).numpy()
    iou = compute_iou(yp, yt, include_background=False, ignore_empty=False).numpy()
    d = np.where(either, d, np.nan)
    iou = np.where(either, iou, np.nan)
    hd = np.full(d.shape, np.nan)
    if both.any():
        with warnings.catch_warnings():  # empty cases are masked out just below
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            h = compute_hausdorff_distance(yp, yt, include_background=False, percentile=95,
                                           spacing=spacing).numpy()
        hd = np.where(both, h, np.nan)
    per_class = {}
    for k, name in enumerate(names):
        per_class[name] = {"dice": float(_nanmean(d[:, k])), "iou": float(_nanmean(iou[:, k])),
                           "hd95": float(_nanmean(hd[:, k])),
                           "hd95_undefined": int(np.sum(either[:, k] & ~both[:, k])),
                           "n": int(np.sum(either[:, k]))}
    real = slice(0, n_cls - 1)  # the mean excludes the lv_epicardium pseudo-class
    sample_dice = np.where(np.isnan(_nanmean(d[:, real], axis=1)), 1.0, _nanmean(d[:, real], axis=1))
    mean = {"dice": float(np.mean(sample_dice)),
            "iou": float(np.nanmean(np.where(either[:, real].any(1),
                                             _nanmean(iou[:, real], axis=1), 1.0))),
            "hd95": float(np.nanmean(_nanmean(hd[:, real], axis=1)))
            if not np.all(np.isnan(hd[:, real])) else float("nan")}
    return SegmentationMetrics(per_class, mean, [float(v) for v in sample_dice])
