"""Mask agreement used by every stage: the project-wide definition of Dice (numpy).

Dice between two masks means, everywhere in noisyseg, the mean over the foreground classes
present in *either* mask of the per-class Dice; two masks with no foreground at all agree
perfectly (Dice 1). The evaluation stage computes the same numbers with MONAI's metrics for
trained models; this module is the fast numpy path used inside error-model calibration, where
it runs thousands of times (see ``benchmarks/bench_corrupt.py``).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["confusion_counts", "dice", "dice_per_class"]


def confusion_counts(y_pred: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Count the per-sample confusion matrices of two label masks.

    Parameters
    ----------
    y_pred, y : (N, *S) or (H, W) integer ndarray
        Label masks of equal shape with labels in ``0..n_classes-1``: a stack of N masks
        of any dimension (pass a single volume as ``vol[None]``), or one 2-D mask.
    n_classes : int
        Number of classes including background.

    Returns
    -------
    (N, C, C) int64 ndarray
        ``counts[n, i, j]`` is the number of pixels with ``y_pred == i`` and ``y == j``;
        a 2-D input gives ``N = 1``.

    Raises
    ------
    ValueError
        If ``y_pred`` and ``y`` differ in shape.

    Examples
    --------
    >>> a = np.array([[0, 1, 1, 0]], np.uint8); b = np.array([[0, 1, 0, 0]], np.uint8)
    >>> confusion_counts(a, b, 2).tolist()
    [[[2, 0], [1, 1]]]
    """
    a = np.asarray(y_pred)
    b = np.asarray(y)
    if a.shape != b.shape:
        raise ValueError(f"y_pred and y must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    n = a.shape[0]
    k = int(n_classes)
    if k * k <= 256 and a[0].size < 2**24 and a.dtype == b.dtype == np.uint8:
        # the common case (uint8 masks, <= 16 classes): joint labels fit in a byte and
        # OpenCV's histogram counts them ~4x faster than a 64-bit bincount
        joint = a * np.uint8(k) + b
        # OpenCV takes 2-D arrays: a volume is counted as one (D * H, W) image
        return np.stack([cv2.calcHist([np.ascontiguousarray(j).reshape(-1, j.shape[-1])], [0],
                                      None, [k * k], [0, k * k])
                         for j in joint]).astype(np.int64).reshape(n, k, k)
    idx = a.reshape(n, -1).astype(np.int64) * k + b.reshape(n, -1)
    idx += (np.arange(n, dtype=np.int64) * k * k)[:, None]
    return np.bincount(idx.ravel(), minlength=n * k * k).reshape(n, k, k)


def dice_per_class(y_pred: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Compute the Dice of each foreground class for each sample.

    Parameters
    ----------
    y_pred, y : (N, *S) or (H, W) integer ndarray
        Predicted and reference label masks of equal shape, labels in ``0..n_classes-1``.
    n_classes : int
        Number of classes including background.

    Returns
    -------
    (N, C-1) float64 ndarray
        Dice of classes ``1..C-1``; NaN where the class is absent from both masks.

    Raises
    ------
    ValueError
        If ``y_pred`` and ``y`` differ in shape.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0, 1, 1, 0]]); b = np.array([[0, 1, 0, 0]])
    >>> dice_per_class(a, b, 2).round(3).tolist()
    [[0.667]]
    """
    cm = confusion_counts(y_pred, y, n_classes)
    tp = np.diagonal(cm, axis1=1, axis2=2)[:, 1:].astype(np.float64)
    pred = cm.sum(axis=2)[:, 1:]
    true = cm.sum(axis=1)[:, 1:]
    denom = (pred + true).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, 2.0 * tp / denom, np.nan)
    return out


def dice(y_pred: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> np.ndarray | float:
    """Compute the mean foreground Dice of each sample.

    The mean runs over the foreground classes present in either mask (the project-wide
    definition of Dice); a sample with no foreground in either mask has Dice 1.

    Parameters
    ----------
    y_pred, y : (N, *S) or (H, W) integer ndarray
        Predicted and reference label masks of equal shape.
    n_classes : int, optional
        Number of classes including background. Defaults to ``max(label) + 1`` over both
        masks; values below 2 are raised to 2.

    Returns
    -------
    float or (N,) float64 ndarray
        A float (Dice) for 2-D inputs, else one Dice per sample; 1.0 where neither mask has
        foreground.

    Raises
    ------
    ValueError
        If ``y_pred`` and ``y`` differ in shape.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 2, 0]]); b = np.array([[1, 0, 2, 2]])
    >>> round(float(dice(a, b)), 4)  # class 1: 2/3, class 2: 2/3
    0.6667
    >>> dice(np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8)).tolist()
    [1.0, 1.0]
    """
    a = np.asarray(y_pred)
    b = np.asarray(y)
    if n_classes is None:
        n_classes = int(max(a.max(initial=0), b.max(initial=0))) + 1
    per = dice_per_class(a, b, max(int(n_classes), 2))
    count = np.sum(~np.isnan(per), axis=1)
    m = np.where(count > 0, np.nansum(per, axis=1) / np.maximum(count, 1), 1.0)
    return float(m[0]) if a.ndim == 2 else m
