"""Statistics for reports: paired tests of two arms across seeds, precision-recall curves."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["PairedTest", "interpolated_precision", "paired_test"]


@dataclass(frozen=True)
class PairedTest:
    """Hold a paired comparison of arm B against arm A over ``n`` pairs.

    Returned by :func:`paired_test`; frozen. A pair is e.g. the same seed in both arms.

    Parameters
    ----------
    n : int
        See Attributes.
    mean_a, mean_b, mean_diff, t_p, wilcoxon_p : float
        See Attributes.

    Attributes
    ----------
    n : int
        Pairs compared (those without a NaN in either arm).
    mean_a, mean_b : float
        Mean of each arm over the pairs (NaN when ``n`` is 0).
    mean_diff : float
        The mean of ``b - a`` (NaN when ``n`` is 0).
    t_p : float
        Two-sided p-value of the paired t-test (NaN for fewer than 2 pairs or zero spread).
    wilcoxon_p : float
        Two-sided p-value of the Wilcoxon signed-rank test (NaN for fewer than 2 pairs or
        all differences zero). With few pairs it cannot be small: with n = 5 the smallest
        exact two-sided p-value is 0.0625.

    Examples
    --------
    >>> r = PairedTest(3, 0.8, 0.85, 0.05, 0.01, 0.25)
    >>> r.to_dict()["mean_diff"], r.n
    (0.05, 3)
    """

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    t_p: float
    wilcoxon_p: float

    def to_dict(self) -> dict[str, float]:
        """Return the test as a JSON-serialisable dict.

        Returns
        -------
        dict
            ``{"n": .., "mean_a": .., "mean_b": .., "mean_diff": .., "t_p": ..,
            "wilcoxon_p": ..}``.
        """
        return asdict(self)


def paired_test(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Compare ``b`` with ``a`` by a paired t-test and a Wilcoxon signed-rank test.

    Both tests are two-sided (scipy's ``ttest_rel`` and exact/normal ``wilcoxon``).

    Parameters
    ----------
    a, b : (n,) float array-like
        Paired measurements (e.g. test Dice per seed), in the same order; pairs with a NaN
        in either arm are dropped.

    Returns
    -------
    PairedTest
        All NaN but ``n`` (0) when no pair is left; p-values NaN for fewer than 2 pairs.

    Raises
    ------
    ValueError
        ``a`` and ``b`` differ in shape.

    Examples
    --------
    >>> r = paired_test(np.array([0.80, 0.82, 0.79]), np.array([0.85, 0.86, 0.85]))
    >>> r.n, round(r.mean_diff, 3)
    (3, 0.05)
    >>> r = paired_test([0.80, 0.82, 0.79, 0.81], [0.85, 0.86, 0.85, 0.84])
    >>> round(r.mean_b, 3), round(r.t_p, 4), r.wilcoxon_p  # 4 pairs: Wilcoxon p >= 0.125
    (0.85, 0.0061, 0.125)
    >>> paired_test([1.0, np.nan], [2.0, 3.0]).n   # the pair with a NaN is dropped
    1
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_test: arms differ in length ({a.shape} vs {b.shape})")
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    n = len(a)
    nan = float("nan")
    if n == 0:
        return PairedTest(0, nan, nan, nan, nan, nan)
    d = b - a
    t_p = w_p = nan
    if n >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if np.std(d) > 0:
                t_p = float(stats.ttest_rel(b, a).pvalue)
            if np.any(d != 0):
                try:
                    w_p = float(stats.wilcoxon(b, a).pvalue)
                except ValueError:
                    w_p = nan
    return PairedTest(n, float(a.mean()), float(b.mean()), float(d.mean()), t_p, w_p)


def interpolated_precision(truth: np.ndarray, scores: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Compute the interpolated precision of ``scores`` at each ``recall``.

    The interpolated precision at recall r is the best precision reached at any recall at
    least r (the usual step-shaped PR curve, averageable across runs).

    Parameters
    ----------
    truth : (n,) bool ndarray
        Which samples are really corrupted.
    scores : (n,) float ndarray
        Higher = more suspect.
    recall : (m,) float ndarray
        Recall values in [0, 1].

    Returns
    -------
    (m,) float ndarray
        Precision in [0, 1] at each ``recall``.

    Examples
    --------
    Ranked: hit, miss, hit, miss. Precision is 1 up to recall 0.5, then 2/3.

    >>> interpolated_precision(np.array([1, 0, 1, 0]), np.array([.9, .8, .7, .1]),
    ...                        np.array([0.0, 0.5, 0.75, 1.0])).round(3).tolist()
    [1.0, 1.0, 0.667, 0.667]
    """
    from sklearn.metrics import precision_recall_curve

    p, r, _ = precision_recall_curve(np.asarray(truth, dtype=bool), np.asarray(scores, float))
    best = np.maximum.accumulate(p)  # r runs from 1 down to 0: best precision at recall >= r[i]
    i = np.searchsorted(-r, -np.asarray(recall, float), side="right") - 1
    return best[np.clip(i, 0, len(best) - 1)]
