"""Per-sample suspicion scores and the rules that turn them into flags (arrays in, arrays out).

Vocabulary: ``grads`` are input gradients ``(K, N, *S)`` (K checkpoints, N samples, ``S``
the image's ``(H, W)`` or the volume's ``(D, H, W)``);
``scores`` are ``(N,)`` with higher = more suspect; ``flags`` are ``(N,)`` bool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from noisyseg.errors import ConfigError
from noisyseg.evaluate import dice

__all__ = [
    "RunningMoments",
    "add_class_offsets",
    "boundary_band",
    "apply_bias",
    "check_flag_rule",
    "check_vog_reduce",
    "class_bias",
    "detection_metrics",
    "flag",
    "flag_mixture",
    "flag_percentile",
    "flag_top_fraction",
    "rms_normalise",
    "score_ranks",
    "vog_scores",
    "DetectionMetrics",
]


class RunningMoments:
    """Accumulate a per-element running mean and variance (Welford's algorithm).

    Memory does not depend on the number of observations: the variance across K updates
    costs O(N x H x W) memory, not O(K x N x H x W). Each sample keeps its own count, so a
    batch may update any subset of the samples.

    Parameters
    ----------
    shape : tuple of int
        ``(N, *S)``: N samples, each of spatial shape ``S`` (``(H, W)`` or ``(D, H, W)``).

    Attributes
    ----------
    count : (N,) float64 tensor
        Observations seen per sample (0 at the start).
    mean : (N, *S) float64 tensor
        Running mean of the observations per element (0 where none were seen).
    m2 : (N, *S) float64 tensor
        Running sum of squared deviations from the mean per element; ``m2 / count`` is the
        population variance.

    Examples
    --------
    Three observations of sample 0 (none of sample 1) give the population variance of
    ``[1, 3, 5]`` (8/3) and of ``[2, 2, 2]`` (0):

    >>> m = RunningMoments((2, 1, 2))
    >>> for v in (1.0, 3.0, 5.0):
    ...     m.update(torch.tensor([0]), torch.tensor([[[v, 2.0]]]))
    >>> m.count.tolist()
    [3.0, 0.0]
    >>> m.variance().numpy().round(3).tolist()
    [[[2.667, 0.0]], [[0.0, 0.0]]]
    >>> m.mean[0].tolist()
    [[3.0, 2.0]]
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.count = torch.zeros(shape[0], dtype=torch.float64)
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.m2 = torch.zeros(shape, dtype=torch.float64)

    def update(self, index: torch.Tensor, values: torch.Tensor) -> None:
        """Add one observation per sample for the samples at ``index``.

        Parameters
        ----------
        index : (B,) int64 tensor
            Rows (sample positions ``0..N-1``) to update; each at most once per call.
        values : (B, *S) float tensor
            One observation per indexed sample (converted to float64).
        """
        v = values.to(torch.float64)
        n = self.count[index] + 1
        mean = self.mean[index]  # gathered copies, updated in place, scattered back
        delta = v - mean
        mean.addcdiv_(delta, _per_sample(n, v.ndim))
        m2 = self.m2[index]
        m2.addcmul_(delta, v - mean)
        self.mean[index] = mean
        self.m2[index] = m2
        self.count[index] = n

    def variance(self) -> torch.Tensor:
        """Return the population variance per element.

        Returns
        -------
        (N, *S) float64 tensor
            ``m2 / count``; 0 for samples with fewer than 2 observations.
        """
        c = _per_sample(self.count.clamp_min(1), self.m2.ndim)
        return torch.where(_per_sample(self.count, self.m2.ndim) > 1, self.m2 / c,
                           torch.zeros_like(self.m2))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the state for checkpoints.

        Returns
        -------
        dict of str to tensor
            ``{"count": .., "mean": .., "m2": ..}`` (the tensors themselves, not copies).
        """
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a state saved by :meth:`state_dict`.

        Parameters
        ----------
        state : dict of str to tensor
            With keys ``count``, ``mean`` and ``m2``.
        """
        self.count, self.mean, self.m2 = state["count"], state["mean"], state["m2"]


def _per_sample(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """A (N,) tensor shaped to broadcast against (N, *S) arrays of ``ndim`` dimensions."""
    return v.reshape(-1, *([1] * (ndim - 1)))


def boundary_band(masks: np.ndarray, width: int = 3) -> np.ndarray:
    """Mark the pixels within ``width`` pixels of any label boundary.

    A boundary lies between two neighbouring pixels (along any spatial axis) with different
    labels; it is dilated by a square (2-D) or cube (3-D) of side ``2 * width + 1``, sample
    by sample.

    Parameters
    ----------
    masks : (N, *S) integer ndarray
        N label masks (``S = (H, W)`` or ``(D, H, W)``).
    width : int, default 3
        Half-width of the band in pixels (per axis, Chebyshev distance).

    Returns
    -------
    (N, *S) bool ndarray
        True within the band.

    Examples
    --------
    >>> m = np.zeros((1, 1, 8), dtype=np.uint8); m[0, 0, 3:5] = 1
    >>> boundary_band(m, width=1).astype(int).tolist()
    [[[0, 0, 1, 1, 1, 1, 1, 0]]]
    """
    from scipy import ndimage as ndi

    m = np.asarray(masks)
    edge = np.zeros(m.shape, dtype=bool)
    for ax in range(1, m.ndim):
        hi = [slice(None)] * m.ndim
        lo = [slice(None)] * m.ndim
        hi[ax], lo[ax] = slice(1, None), slice(None, -1)
        edge[tuple(hi)] |= m[tuple(hi)] != m[tuple(lo)]
    st = np.zeros((1, *([2 * width + 1] * (m.ndim - 1))), dtype=bool)
    st[0] = True
    return ndi.binary_dilation(edge, structure=st)


def rms_normalise(grads: torch.Tensor) -> torch.Tensor:
    """Scale each gradient map of a batch to unit root-mean-square.

    Used by VOG's ``normalise='rms'``: only changes of a gradient's *pattern* across
    checkpoints then count, not changes of its overall scale. An all-zero map stays zero.

    Parameters
    ----------
    grads : (B, *S) float tensor
        One gradient map per sample.

    Returns
    -------
    (B, *S) float tensor
        ``grads`` divided by each map's RMS (floored at 1e-30).

    Examples
    --------
    >>> g = torch.tensor([[[3.0, -3.0]], [[0.5, 0.5]]])
    >>> rms_normalise(g).tolist()
    [[[1.0, -1.0]], [[1.0, 1.0]]]
    """
    dims = tuple(range(1, grads.ndim))
    return grads / grads.pow(2).mean(dim=dims, keepdim=True).sqrt().clamp_min(1e-30)


def check_vog_reduce(reduce: str, normalise: str) -> None:
    """Raise :class:`ConfigError` unless ``reduce`` is a VOG reduction that fits ``normalise``."""
    if reduce not in ("variance", "std"):
        raise ConfigError(f"vog reduce: expected variance or std, got {reduce!r}")
    if reduce == "std" and normalise == "mean":
        raise ConfigError("vog normalise=mean divides a variance by a squared gradient; use it "
                          "with reduce=variance (rms works with both)")


def vog_scores(variance: np.ndarray | torch.Tensor | RunningMoments, *,
               region: np.ndarray | None = None, normalise: str = "none",
               mean_grad: np.ndarray | None = None, reduce: str = "variance") -> np.ndarray:
    """Compute the Variance of Gradients (VOG) score of every sample.

    Parameters
    ----------
    variance : (N, *S) array, (K, N, *S) array or RunningMoments
        Per-pixel variance of the input gradient across checkpoints; or ``(K, N, *S)``
        gradients, whose variance over K is taken here (the direct computation the running
        moments must equal); or the :class:`RunningMoments` themselves (reduced without
        building the variance map: what the detectors call every epoch). A 4-D array is
        read as ``(K, N, H, W)`` unless ``region`` says it is ``(N, D, H, W)``. Gradients
        are in the input's units per unit score; the score is in their squares (variance)
        or their units (std).
    region : (N, *S) bool ndarray, optional
        Average only over these pixels (e.g. :func:`boundary_band`); all pixels by default.
    normalise : {'none', 'mean'}, default 'none'
        ``'mean'`` divides each sample's score ``v`` by ``g2 + v``, with ``g2`` its mean
        squared mean gradient, making it invariant to the gradient's scale (which varies with
        image contrast) and bounded in [0, 1].
    mean_grad : (N, *S) array, optional
        Mean gradient across checkpoints, needed for ``normalise='mean'`` with a variance
        map; taken from the gradients or the running moments otherwise.
    reduce : {'variance', 'std'}, default 'variance'
        Average the per-pixel variance (study B) or its square root, the per-pixel standard
        deviation (the VOG reference code, Agarwal et al.).

    Returns
    -------
    (N,) float64 ndarray
        One score per sample, higher = more suspect; 0 for a sample with fewer than 2
        observations in the running moments.

    Raises
    ------
    ConfigError
        ``normalise`` or ``reduce`` unknown, ``reduce='std'`` with ``normalise='mean'``, or
        ``normalise='mean'`` on a variance map without ``mean_grad``.

    Examples
    --------
    Gradients of 2 samples at 3 checkpoints; only sample 0's first pixel changes (0, 1, 2:
    variance 2/3, averaged with a constant pixel):

    >>> g = np.zeros((3, 2, 1, 2)); g[:, 0, 0, 0] = [0.0, 1.0, 2.0]
    >>> vog_scores(g).round(3).tolist()
    [0.333, 0.0]
    >>> vog_scores(g, reduce="std").round(3).tolist()
    [0.408, 0.0]

    The running moments give the same scores without keeping the K gradients:

    >>> m = RunningMoments((2, 1, 2))
    >>> for k in range(3):
    ...     m.update(torch.arange(2), torch.as_tensor(g[k]))
    >>> vog_scores(m).round(3).tolist()
    [0.333, 0.0]
    """
    if normalise not in ("none", "mean"):
        raise ConfigError(f"vog normalise: expected none or mean, got {normalise!r}")
    check_vog_reduce(reduce, normalise)
    if isinstance(variance, RunningMoments):
        return _moment_scores(variance, region, normalise, reduce)
    v = torch.as_tensor(variance, dtype=torch.float64)
    if region is not None and v.ndim == np.ndim(region) + 1 or region is None and v.ndim == 4:
        # (K, N, *S) gradients; a 4-D array without a region is read as (K, N, H, W)
        mean_grad = v.mean(0).numpy() if mean_grad is None else mean_grad
        v = v.var(0, unbiased=False)
    if reduce == "std":
        v = v.clamp_min(0).sqrt()
    w = torch.ones_like(v) if region is None else torch.as_tensor(region, dtype=torch.float64)
    dims = tuple(range(1, v.ndim))
    denom = w.sum(dim=dims).clamp_min(1)
    score = (v * w).sum(dim=dims) / denom
    if normalise == "mean":
        if mean_grad is None:
            raise ConfigError("vog normalise='mean' needs mean_grad")
        g2 = (torch.as_tensor(mean_grad, dtype=torch.float64) ** 2 * w).sum(dim=dims) / denom
        score = score / (g2 + score).clamp_min(1e-30)
    return score.numpy()


def _moment_scores(m: RunningMoments, region: np.ndarray | None, normalise: str,
                   reduce: str = "variance") -> np.ndarray:
    """:func:`vog_scores` from running moments: per-sample reductions, no (N, H, W) temporaries
    (but one for ``reduce='std'``, whose square root is per pixel)."""
    m2, mean = m.m2.flatten(1), m.mean.flatten(1)
    if reduce == "std":  # mean over pixels of sqrt(m2 / count)
        w = None if region is None else torch.as_tensor(region, dtype=torch.float64).flatten(1)
        sd = (m2 / m.count.clamp_min(1)[:, None]).clamp_min(0).sqrt()
        total = sd.sum(1) if w is None else torch.einsum("np,np->n", sd, w)
        denom = torch.full_like(m.count, m2.shape[1]) if w is None else w.sum(1).clamp_min(1)
        return torch.where(m.count > 1, total / denom, 0.0).numpy()
    if region is None:
        denom = torch.full_like(m.count, m2.shape[1])
        var_sum = m2.sum(1)
        g2_sum = torch.einsum("np,np->n", mean, mean) if normalise == "mean" else None
    else:
        w = torch.as_tensor(region, dtype=torch.float64).flatten(1)
        denom = w.sum(1).clamp_min(1)
        var_sum = torch.einsum("np,np->n", m2, w)
        g2_sum = torch.einsum("np,np->n", mean * w, mean) if normalise == "mean" else None
    score = torch.where(m.count > 1, var_sum / m.count.clamp_min(1), 0.0) / denom
    if g2_sum is not None:
        g2 = g2_sum / denom
        score = score / (g2 + score).clamp_min(1e-30)
    return score.numpy()


# ------------------------------------------------------------------------------ flags
def flag_top_fraction(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Flag the ``round(fraction * N)`` highest scores (a known or assumed error level).

    Parameters
    ----------
    scores : (N,) float ndarray
        Higher = more suspect.
    fraction : float
        Share of the samples to flag, in [0, 1]; ties are broken by position (first wins).

    Returns
    -------
    (N,) bool ndarray
        Exactly ``round(fraction * N)`` True values (Python's round: half to even).

    Raises
    ------
    ConfigError
        ``fraction`` outside [0, 1].

    Examples
    --------
    >>> flag_top_fraction(np.array([0.1, 0.9, 0.3, 0.8, 0.2]), 0.4).tolist()
    [False, True, False, True, False]
    """
    s = np.asarray(scores, dtype=np.float64)
    if not 0 <= fraction <= 1:
        raise ConfigError(f"flag fraction: expected a value in [0, 1], got {fraction}")
    k = int(round(fraction * len(s)))
    flags = np.zeros(len(s), dtype=bool)
    if k:
        flags[np.argsort(-s, kind="stable")[:k]] = True
    return flags


def flag_percentile(scores: np.ndarray, q: float) -> np.ndarray:
    """Flag the scores strictly above their ``q``-th percentile.

    Parameters
    ----------
    scores : (N,) float ndarray
        Higher = more suspect.
    q : float
        Percentile in [0, 100] (numpy's linear interpolation).

    Returns
    -------
    (N,) bool ndarray

    Raises
    ------
    ConfigError
        ``q`` outside [0, 100].

    Examples
    --------
    The 60th percentile of 1..5 is 3.4:

    >>> flag_percentile(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 60).tolist()
    [False, False, False, True, True]
    """
    if not 0 <= q <= 100:
        raise ConfigError(f"flag percentile: expected 0..100, got {q}")
    s = np.asarray(scores, dtype=np.float64)
    return s > np.percentile(s, q)


def flag_mixture(scores: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Flag scores with an unsupervised two-component Gaussian mixture on log-scores.

    Scores are put on a log scale when all positive (losses and VOG are right-skewed) and
    standardised. A sample is flagged when the component with the higher mean is the more
    probable one.
    No error level is needed. When one component explains the scores (BIC of one component
    is lower), nothing is flagged.

    Parameters
    ----------
    scores : (N,) float ndarray
        Higher = more suspect; fewer than 4 scores, or all equal, flag nothing.
    seed : int, default 0
        Random state of the mixture fits.

    Returns
    -------
    (N,) bool ndarray

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = np.concatenate([rng.normal(1.0, 0.05, 20), rng.normal(5.0, 0.05, 5)])
    >>> f = flag_mixture(s)
    >>> int(f.sum()), bool(f[20:].all())
    (5, True)
    >>> bool(flag_mixture(np.ones(10)).any())
    False
    """
    from sklearn.mixture import GaussianMixture

    s = np.asarray(scores, dtype=np.float64)
    if len(s) < 4 or np.ptp(s) == 0:
        return np.zeros(len(s), dtype=bool)
    x = np.log(s) if s.min() > 0 else s  # positive, skewed scores (loss, VOG): log scale
    x = ((x - x.mean()) / (x.std() + 1e-12))[:, None]
    one = GaussianMixture(1, random_state=seed).fit(x)
    two = GaussianMixture(2, random_state=seed, n_init=3).fit(x)
    if two.bic(x) >= one.bic(x):
        return np.zeros(len(s), dtype=bool)
    hi = int(np.argmax(two.means_.ravel()))
    return two.predict_proba(x)[:, hi] > 0.5


def check_flag_rule(rule: str, value: float | None) -> None:
    """Check that ``rule`` and ``value`` make a valid flag rule (see :func:`flag`).

    Parameters
    ----------
    rule : {'mixture', 'top', 'percentile'}
        The flag rule's name.
    value : float or None
        Its parameter: a fraction in [0, 1] for ``top`` (required), a percentile in
        [0, 100] for ``percentile`` (None: 90), ignored for ``mixture``.

    Raises
    ------
    ConfigError
        ``rule`` unknown, ``top`` without a fraction in [0, 1], or ``percentile`` with a
        value outside [0, 100].

    Examples
    --------
    >>> check_flag_rule("top", 0.1) is None
    True
    >>> check_flag_rule("top", None)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: flag_value: rule 'top' needs a fraction in [0, 1], got None
    """
    if rule not in ("mixture", "top", "percentile"):
        raise ConfigError(f"flag_rule: expected mixture, top or percentile, got {rule!r}")
    if rule == "top" and (value is None or not 0 <= value <= 1):
        raise ConfigError(f"flag_value: rule 'top' needs a fraction in [0, 1], got {value}")
    if rule == "percentile" and value is not None and not 0 <= value <= 100:
        raise ConfigError(f"flag_value: rule 'percentile' needs 0..100, got {value}")


def flag(scores: np.ndarray, rule: str = "mixture", *, value: float | None = None,
         seed: int = 0) -> np.ndarray:
    """Apply a flag rule by name.

    Parameters
    ----------
    scores : (N,) float ndarray
        Higher = more suspect.
    rule : {'mixture', 'top', 'percentile'}, default 'mixture'
        :func:`flag_mixture`, :func:`flag_top_fraction` or :func:`flag_percentile`.
    value : float, optional
        The fraction for ``top`` (required) or the percentile for ``percentile``
        (default 90); ignored by ``mixture``.
    seed : int, default 0
        Random state of ``mixture``.

    Returns
    -------
    (N,) bool ndarray

    Raises
    ------
    ConfigError
        An invalid rule or value (see :func:`check_flag_rule`).

    Examples
    --------
    >>> s = np.array([0.1, 0.9, 0.3, 0.8, 0.2])
    >>> flag(s, "top", value=0.4).tolist()
    [False, True, False, True, False]
    >>> flag(s, "percentile", value=60).tolist()
    [False, True, False, True, False]
    """
    check_flag_rule(rule, value)
    if rule == "mixture":
        return flag_mixture(scores, seed=seed)
    if rule == "top":
        return flag_top_fraction(scores, float(value))  # type: ignore[arg-type]
    return flag_percentile(scores, 90.0 if value is None else value)


def score_ranks(scores: np.ndarray) -> np.ndarray:
    """Rank the scores, highest first (1-based; ties keep their order).

    Parameters
    ----------
    scores : (N,) float ndarray
        Higher = more suspect.

    Returns
    -------
    (N,) int64 ndarray
        Rank of each score: 1 for the highest.

    Examples
    --------
    >>> score_ranks(np.array([0.2, 0.9, 0.5])).tolist()
    [3, 1, 2]
    """
    s = np.asarray(scores, dtype=np.float64)
    rank = np.empty(len(s), dtype=np.int64)
    rank[np.argsort(-s, kind="stable")] = np.arange(1, len(s) + 1)
    return rank


# -------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class DetectionMetrics:
    """Hold the quality of flags and scores against the known corrupted set.

    Returned by :func:`detection_metrics`; frozen.

    Parameters
    ----------
    precision, recall, f1, average_precision, auroc : float
        See Attributes.
    n_flagged, n_corrupted, n : int
        See Attributes.

    Attributes
    ----------
    precision : float
        Share of the flagged samples that are corrupted (0.0 when nothing is flagged).
    recall : float
        Share of the corrupted samples that are flagged (0.0 when none is corrupted).
    f1 : float
        Harmonic mean of precision and recall (0.0 when both are 0).
    average_precision : float
        Average precision of the scores (sklearn's, chance = the share corrupted); NaN when
        the truth is all one class.
    auroc : float
        Area under the ROC curve of the scores (chance 0.5); NaN when the truth is all one
        class.
    n_flagged : int
        Samples flagged.
    n_corrupted : int
        Samples truly corrupted.
    n : int
        Samples scored.

    Examples
    --------
    >>> m = DetectionMetrics(0.5, 1.0, 0.667, 0.8, 0.9, 4, 2, 10)
    >>> m.to_dict()["n_flagged"], m.f1
    (4, 0.667)
    """

    precision: float
    recall: float
    f1: float
    average_precision: float
    auroc: float
    n_flagged: int
    n_corrupted: int
    n: int

    def to_dict(self) -> dict[str, float]:
        """Return the metrics as a JSON-serialisable dict.

        Returns
        -------
        dict
            One entry per field, e.g. ``{"precision": .., ..., "n": ..}``.
        """
        return asdict(self)


def detection_metrics(scores: np.ndarray, flags: np.ndarray, truth: np.ndarray) -> DetectionMetrics:
    """Measure flags (precision, recall, F1) and scores (AP, AUROC) against the truth.

    Parameters
    ----------
    scores : (N,) float ndarray
        Higher = more suspect.
    flags : (N,) bool ndarray
        The samples flagged (e.g. by :func:`flag`).
    truth : (N,) bool ndarray
        Which samples are really corrupted.

    Returns
    -------
    DetectionMetrics
        AP and AUROC are NaN when ``truth`` is all one class.

    Examples
    --------
    Ranked: hit, miss, hit, miss (AP = (1 + 2/3) / 2); the top two are flagged:

    >>> m = detection_metrics(np.array([0.9, 0.8, 0.7, 0.1]),
    ...                       np.array([True, True, False, False]), np.array([1, 0, 1, 0]))
    >>> m.precision, m.recall, m.f1, m.n_flagged, m.n_corrupted, m.n
    (0.5, 0.5, 0.5, 2, 2, 4)
    >>> round(m.average_precision, 3), m.auroc
    (0.833, 0.75)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    t = np.asarray(truth, dtype=bool)
    f = np.asarray(flags, dtype=bool)
    tp = int(np.sum(t & f))
    precision = tp / f.sum() if f.sum() else 0.0
    recall = tp / t.sum() if t.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both = 0 < t.sum() < len(t)
    ap = float(average_precision_score(t, scores)) if both else float("nan")
    auc = float(roc_auc_score(t, scores)) if both else float("nan")
    return DetectionMetrics(float(precision), float(recall), float(f1), ap, auc, int(f.sum()),
                            int(t.sum()), len(t))


def apply_bias(logits: torch.Tensor, bias: np.ndarray | None) -> np.ndarray:
    """Label each pixel with ``argmax(logits + bias)`` over the classes.

    Parameters
    ----------
    logits : (N, C, *S) float tensor
        Network output.
    bias : (C,) float ndarray or None
        Per-class logit offsets (of :func:`class_bias`); None for the plain argmax.

    Returns
    -------
    (N, *S) uint8 ndarray
        Labels (the first class wins ties).

    Examples
    --------
    >>> z = torch.zeros(1, 2, 1, 3); z[0, 1, 0] = torch.tensor([-1.0, 0.5, 2.0])
    >>> apply_bias(z, None).tolist(), apply_bias(z, np.array([0.0, -1.0])).tolist()
    ([[[0, 1, 1]]], [[[0, 0, 1]]])
    """
    z = torch.as_tensor(logits)
    if bias is not None:
        z = add_class_offsets(z, bias)
    return z.argmax(1).numpy().astype(np.uint8)


def add_class_offsets(logits: torch.Tensor, bias: np.ndarray) -> torch.Tensor:
    """Add per-class offsets (of :func:`class_bias`) to logits.

    Parameters
    ----------
    logits : (N, C, *S) float tensor
        Network output.
    bias : (C,) float ndarray
        One offset per class, broadcast over samples and pixels.

    Returns
    -------
    (N, C, *S) tensor
        A new tensor of the logits' dtype.

    Examples
    --------
    >>> z = torch.zeros(1, 2, 1, 2)
    >>> add_class_offsets(z, np.array([0.0, -1.5]))[0, :, 0].tolist()
    [[0.0, 0.0], [-1.5, -1.5]]
    """
    z = torch.as_tensor(logits)
    return z + torch.as_tensor(np.asarray(bias), dtype=z.dtype).reshape(1, -1, *([1] * (z.ndim - 2)))


def class_bias(logits: torch.Tensor, truth: np.ndarray, *, span: float = 6.0,
               steps: tuple[float, ...] = (1.0, 0.25), rounds: int = 2) -> np.ndarray:
    """Fit per-class logit offsets that maximise mean Dice against ``truth``.

    Boundary calibration: a network trained on systematically biased masks (a structure
    drawn too large on most samples) learns the bias; its class boundaries sit where two
    classes' logits cross.
    Adding an offset to one class's logits moves its boundaries in or out, so offsets fitted
    on masks known to be right (the clean validation split) undo a learned bias. Coordinate
    ascent over the foreground classes on a coarse-to-fine grid (``steps``) in
    ``[-span, span]``; the background keeps offset 0.

    Parameters
    ----------
    logits : (N, C, *S) float tensor
        Network output for N samples (``S = (H, W)`` or ``(D, H, W)``), C classes.
    truth : (N, *S) integer ndarray
        The right labels of the same samples.
    span : float, default 6.0
        Largest offset tried, in logit units (offsets lie in ``[-span, span]``).
    steps : tuple of float, default (1.0, 0.25)
        Grid steps in logit units: the first over the whole span, each later one within one
        previous step of the current offset.
    rounds : int, default 2
        Most sweeps over the classes (stops early when a sweep improves nothing).

    Returns
    -------
    (C,) float ndarray
        Offsets; all zero when no offset improves the mean Dice.

    Examples
    --------
    A model that draws the structure one pixel too large on each side; an offset of -1
    on its logits puts the boundaries back:

    >>> z = torch.zeros(1, 2, 1, 8)
    >>> z[0, 1, 0] = torch.tensor([-3.0, 0.5, 1.5, 3.0, 3.0, 1.5, 0.5, -3.0])
    >>> truth = np.zeros((1, 1, 8), dtype=np.uint8); truth[0, 0, 2:6] = 1
    >>> apply_bias(z, None).tolist()
    [[[0, 1, 1, 1, 1, 1, 1, 0]]]
    >>> b = class_bias(z, truth)
    >>> b.tolist(), apply_bias(z, b).tolist()
    ([0.0, -1.0], [[[0, 0, 1, 1, 1, 1, 0, 0]]])
    """
    z = torch.as_tensor(logits, dtype=torch.float32)
    n_classes = z.shape[1]
    bias = np.zeros(n_classes)
    truth = np.asarray(truth, dtype=np.uint8)

    def score(pred: np.ndarray) -> float:
        return float(np.mean(dice(pred, truth, n_classes)))

    best = score(apply_bias(z, bias))
    for _ in range(rounds):
        before = best
        for c in range(1, n_classes):
            # with the other offsets fixed, a pixel is c iff its margin over the best other
            # class exceeds -offset; elsewhere it keeps the best other class
            others = add_class_offsets(z, bias)
            others[:, c] = -torch.inf
            top, rest = others.max(dim=1)
            margin = (z[:, c] - top).numpy()
            rest = rest.numpy().astype(np.uint8)
            for k, step in enumerate(steps):
                lo, hi = (-span, span) if k == 0 else (bias[c] - steps[k - 1], bias[c] + steps[k - 1])
                for v in np.arange(lo, hi + 1e-9, step):
                    if v == bias[c]:
                        continue
                    d = score(np.where(margin + v > 0, np.uint8(c), rest))
                    if d > best + 1e-9:
                        best = d
                        bias = bias.copy()
                        bias[c] = v
        if best <= before + 1e-9:
            break
    return bias
