"""Label-quality scores from a model's predicted probabilities (no training).

For a case with given labels ``labels`` (``(*S)`` integers, any dimension) and predicted
class probabilities ``pred_probs`` (``(K, *S)``, summing to one over K), ideally out-of-sample
(cross-validation), three case scores, each also per slice along ``slice_axis``:

- ``label-quality``: cleanlab's softmin label-quality score, the per-pixel probability of
  the given label aggregated by a softmin (temperature 0.1): ``sum(p * w) / sum(w)`` with
  ``w = exp((min p - p) / T)``; equal to
  :func:`cleanlab.segmentation.rank.get_label_quality_scores` (``method='softmin'``);
- ``dice``: ``1 - Dice(argmax, labels)``, the mean over the foreground classes present in
  either of the per-class Dice (noisyseg's Dice everywhere);
- ``expected-dice``: ``1 -`` the expected Dice under the predicted probabilities, per class
  ``2 sum(p_k [labels == k]) / (sum p_k + |labels == k|)`` (the ratio of expectations, exact
  in the limit of many pixels), averaged over the foreground classes present in the labels
  or carrying at least half a voxel of predicted mass.

Scores follow noisyseg's convention: higher is more suspect (``label-quality`` is reported
as ``1 - quality``). Everything works on float32 in one pass over the case, so a case is
read, scored and dropped (:func:`case_scores`), and memory does not grow with the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noisyseg.errors import ConfigError, DataError
from noisyseg.evaluate import confusion_counts

__all__ = ["PROB_DETECTORS", "CaseScores", "case_scores", "given_label_probability",
           "softmin"]

#: The scores :func:`case_scores` computes, in the order of ``CaseScores.scores``.
PROB_DETECTORS = ("label-quality", "dice", "expected-dice")


def given_label_probability(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Return the predicted probability of each pixel's given label.

    Parameters
    ----------
    labels : (*S) integer ndarray
        Given labels in ``0..K-1`` (any number of dimensions).
    pred_probs : (K, *S) float ndarray
        Predicted class probabilities, class axis first.

    Returns
    -------
    (*S) float32 ndarray
        cleanlab's per-pixel label-quality score, ``pred_probs[labels[i], i]`` per pixel.

    Raises
    ------
    DataError
        ``pred_probs`` is not of shape ``(K, *labels.shape)``.

    Examples
    --------
    >>> p = np.array([[[0.9, 0.2]], [[0.1, 0.8]]], dtype=np.float32)
    >>> given_label_probability(np.array([[0, 1]]), p).astype(float).round(3).tolist()
    [[0.9, 0.8]]
    """
    lab = np.asarray(labels)
    probs = np.asarray(pred_probs)
    if probs.shape[1:] != lab.shape:
        raise DataError(f"pred_probs: shape {probs.shape} does not match labels {lab.shape} "
                        f"(expected (K, *labels.shape))")
    n = lab.size
    flat = np.ascontiguousarray(probs, dtype=np.float32).reshape(-1)
    # one gather from the flat array: label k of pixel i sits at k * n + i
    idx = lab.reshape(-1).astype(np.intp) * n + np.arange(n, dtype=np.intp)
    return flat.take(idx).reshape(lab.shape)


def _argmax(probs: np.ndarray) -> np.ndarray:
    """argmax over the first axis (first maximum wins), K vectorised passes: numpy's strided
    argmax over axis 0 is ~10x slower for the few classes of a segmentation."""
    best = probs[0].copy()
    arg = np.zeros(probs.shape[1:], dtype=np.uint8)
    for k in range(1, probs.shape[0]):
        better = probs[k] > best
        arg[better] = k
        np.maximum(best, probs[k], out=best)
    return arg


def softmin(scores: np.ndarray, *, temperature: float = 0.1, axis: int | None = None) -> np.ndarray:
    """Aggregate scores with a softmin: ``sum(s * w) / sum(w)``, ``w = exp((min s - s) / T)``.

    The same number as cleanlab's ``softmin`` (``softmax(1 - s)`` with the max shift),
    computed in float32 with float64 sums. The lowest scores dominate as ``T`` shrinks.

    Parameters
    ----------
    scores : ndarray of float
        Scores in [0, 1] (e.g. per-pixel given-label probabilities).
    temperature : float, default 0.1
        Softmin temperature ``T`` (cleanlab's default), in score units; must be > 0.
    axis : int, optional
        Axis to aggregate over; all elements (a 0-d result) by default.

    Returns
    -------
    float64 ndarray
        The aggregate, of ``scores``' shape without ``axis`` (0-d when ``axis`` is None).

    Raises
    ------
    ConfigError
        ``temperature`` is not > 0.

    Examples
    --------
    >>> round(float(softmin(np.array([0.2, 0.9]))), 4)   # close to the minimum
    0.2006
    >>> softmin(np.array([[1.0, 1.0], [0.0, 1.0]]), axis=1).round(3).tolist()
    [1.0, 0.0]
    >>> round(float(softmin(np.array([0.2, 0.9]), temperature=100.0)), 3)  # ~ the mean
    0.549
    """
    if not temperature > 0:
        raise ConfigError(f"temperature: must be > 0, got {temperature}")
    s = np.asarray(scores, dtype=np.float32)
    lo = s.min(axis=axis, keepdims=True)
    w = np.exp((lo - s) * np.float32(1.0 / temperature))
    return (np.sum(s * w, axis=axis, dtype=np.float64)
            / np.sum(w, axis=axis, dtype=np.float64))


@dataclass(frozen=True)
class CaseScores:
    """Hold the label-quality scores of one case (higher is more suspect).

    Returned by :func:`case_scores`; frozen. The scores are defined in the module
    docstring.

    Parameters
    ----------
    scores, slice_scores, class_dice, class_expected_dice : ndarray
        See Attributes.
    given_voxels, predicted_voxels : ndarray
        See Attributes.

    Attributes
    ----------
    scores : (3,) float64 ndarray
        ``label-quality``, ``dice``, ``expected-dice`` (:data:`PROB_DETECTORS`).
    slice_scores : (D, 3) float64 ndarray
        The same per slice along the slice axis (one row for a 2-D case); NaN for the Dice
        scores of a slice with no foreground in labels or prediction.
    class_dice, class_expected_dice : (K,) float64 ndarray
        Per class (background included), NaN where the class is absent from both.
    given_voxels, predicted_voxels : (K,) int64 ndarray
        Voxels per class in the labels and in the argmax prediction.

    Examples
    --------
    >>> c = case_scores(np.array([[0, 1]]), np.array([[[1.0, 0.0]], [[0.0, 1.0]]]))
    >>> c.scores.tolist(), c.slice_scores.shape, c.given_voxels.tolist()
    ([0.0, 0.0, 0.0], (1, 3), [1, 1])
    """

    scores: np.ndarray
    slice_scores: np.ndarray
    class_dice: np.ndarray
    class_expected_dice: np.ndarray
    given_voxels: np.ndarray
    predicted_voxels: np.ndarray


def _dice_from(inter: np.ndarray, a: np.ndarray, b: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per-class Dice over the last axis; NaN where ``present`` is false."""
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 2.0 * inter / (a + b)
    return np.where(present, d, np.nan)


def _mean_fg(per_class: np.ndarray) -> np.ndarray:
    """Mean over foreground classes (last axis, NaN skipped); 1 where none is present."""
    fg = per_class[..., 1:]
    n = np.sum(~np.isnan(fg), axis=-1)
    total = np.nansum(fg, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), 1.0)


def case_scores(labels: np.ndarray, pred_probs: np.ndarray, *, slice_axis: int = 0,
                temperature: float = 0.1) -> CaseScores:
    """Score one case's given labels against predicted probabilities.

    Parameters
    ----------
    labels : (*S) integer ndarray
        Given labels in ``0..K-1`` (2-D or 3-D).
    pred_probs : (K, *S) float ndarray
        Predicted probabilities (summing to one over K), ideally out-of-sample.
    slice_axis : int, default 0
        Axis of ``labels`` along which slice scores are given (volumes; a 2-D case is one
        slice). Negative values count from the end.
    temperature : float, default 0.1
        Softmin temperature of ``label-quality`` (cleanlab's default 0.1).

    Returns
    -------
    CaseScores
        Case scores clipped to [0, 1], per-slice scores and per-class Dice and voxel counts.

    Raises
    ------
    DataError
        ``labels`` is not 2-D or 3-D, more than 255 classes, or ``pred_probs`` is not of
        shape ``(K, *labels.shape)``.
    ConfigError
        ``temperature`` is not > 0.

    Examples
    --------
    >>> lab = np.array([[0, 1, 1, 0]])
    >>> p = np.stack([1.0 - lab, lab]).astype(np.float32)   # a confident, correct model
    >>> case_scores(lab, p).scores.tolist()
    [0.0, 0.0, 0.0]

    The model calls the second pixel background (probability 0.8): the hard Dice of the
    foreground drops to 2/3, and the softmin is dominated by that pixel's 0.2:

    >>> p[:, 0, 1] = [0.8, 0.2]
    >>> c = case_scores(lab, p)
    >>> c.scores.round(3).tolist(), c.predicted_voxels.tolist()
    ([0.799, 0.333, 0.25], [3, 1])

    A volume gets one row of slice scores per slice (NaN Dice where a slice is empty):

    >>> vol = np.zeros((2, 1, 4), dtype=np.int64); vol[0, 0, 1:3] = 1
    >>> pv = np.stack([1.0 - vol, vol]).astype(np.float32)
    >>> case_scores(vol, pv).slice_scores.tolist()
    [[0.0, 0.0, 0.0], [0.0, nan, nan]]
    """
    lab = np.asarray(labels)
    probs = np.asarray(pred_probs, dtype=np.float32)
    k = probs.shape[0]
    if lab.ndim not in (2, 3):
        raise DataError(f"labels: expected a 2-D or 3-D label map, got shape {lab.shape}")
    if k > 255:
        raise DataError(f"pred_probs: at most 255 classes, got {k}")
    q = given_label_probability(lab, probs)
    pred = _argmax(probs)
    # slices as rows: (D, n); a 2-D case is one slice
    if lab.ndim == 3:
        ax = slice_axis % 3
        d = lab.shape[ax]
        qs = np.moveaxis(q, ax, 0).reshape(d, -1)
        ls = np.moveaxis(lab, ax, 0).reshape(d, -1)
        ps = np.moveaxis(pred, ax, 0).reshape(d, -1)
        mass = np.moveaxis(probs, ax + 1, 1).reshape(k, d, -1).sum(axis=2, dtype=np.float64).T
    else:
        d = 1
        qs, ls, ps = q.reshape(1, -1), lab.reshape(1, -1), pred.reshape(1, -1)
        mass = probs.reshape(k, -1).sum(axis=1, dtype=np.float64)[None]
    # per-slice confusion matrices [slice, predicted, given] (OpenCV's byte histogram)
    conf = confusion_counts(ps.reshape(d, 1, -1), ls.astype(np.uint8, copy=False).reshape(d, 1, -1),
                            k).astype(np.float64)
    given, predicted = conf.sum(axis=1), conf.sum(axis=2)
    inter = np.diagonal(conf, axis1=1, axis2=2)
    # the predicted mass on each class's given pixels is the given-label probability there:
    # one float32 dot per class and slice (10x a weighted bincount)
    soft_inter = np.stack([np.einsum("dn,dn->d", (ls == c).astype(np.float32), qs,
                                     dtype=np.float64) for c in range(k)], axis=1)
    # per slice
    hard = _dice_from(inter, given, predicted, (given + predicted) > 0)
    soft = _dice_from(soft_inter, given, mass, (given > 0) | (mass >= 0.5))
    slice_lq = 1.0 - softmin(qs, temperature=temperature, axis=1).ravel()
    lq = float(slice_lq[0]) if d == 1 else 1.0 - float(softmin(q.ravel(), temperature=temperature))
    slice_dice = 1.0 - _mean_fg(hard)
    slice_exp = 1.0 - _mean_fg(soft)
    empty = (given[:, 1:].sum(axis=1) + predicted[:, 1:].sum(axis=1)) == 0
    slice_dice[empty] = np.nan
    slice_exp[empty] = np.nan
    # per case: sums over slices
    g_all, p_all, i_all = given.sum(0), predicted.sum(0), inter.sum(0)
    m_all, s_all = mass.sum(0), soft_inter.sum(0)
    c_hard = _dice_from(i_all, g_all, p_all, (g_all + p_all) > 0)
    c_soft = _dice_from(s_all, g_all, m_all, (g_all > 0) | (m_all >= 0.5))
    scores = np.array([lq, 1.0 - float(_mean_fg(c_hard)), 1.0 - float(_mean_fg(c_soft))])
    return CaseScores(scores=np.clip(scores, 0.0, 1.0),
                      slice_scores=np.stack([slice_lq, slice_dice, slice_exp], axis=1),
                      class_dice=c_hard, class_expected_dice=c_soft,
                      given_voxels=g_all.astype(np.int64), predicted_voxels=p_all.astype(np.int64))
