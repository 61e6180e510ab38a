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
    """Per-element running mean and variance (Welford), memory independent of the count.

    Holds ``count`` (N,), ``mean`` and ``m2`` of shape ``(N, *S)`` as float64 tensors, so
    the variance across K updates costs O(N x H x W) memory, not O(K x N x H x W).
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.count = torch.zeros(shape[0], dtype=torch.float64)
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.m2 = torch.zeros(shape, dtype=torch.float64)

    def update(self, index: torch.Tensor, values: torch.Tensor) -> None:
        """Add one observation ``values`` (B, H, W) for the samples at ``index`` (B,)."""
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
        """Population variance per element (0 where fewer than 2 observations)."""
        c = _per_sample(self.count.clamp_min(1), self.m2.ndim)
        return torch.where(_per_sample(self.count, self.m2.ndim) > 1, self.m2 / c,
                           torch.zeros_like(self.m2))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """State for checkpoints."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`."""
        self.count, self.mean, self.m2 = state["count"], state["mean"], state["m2"]


def _per_sample(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """A (N,) tensor shaped to broadcast against (N, *S) arrays of ``ndim`` dimensions."""
    return v.reshape(-1, *([1] * (ndim - 1)))


def boundary_band(masks: np.ndarray, width: int = 3) -> np.ndarray:
    """Pixels within ``width`` (a square or cube, per axis) of any label boundary:
    (N, *S) masks -> (N, *S) bool."""
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
    """Scale each gradient map of a (B, *S) batch to unit root-mean-square.

    Used by VOG's ``normalise='rms'``: only changes of a gradient's *pattern* across
    checkpoints then count, not changes of its overall scale.
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
    """Variance of Gradients per sample from a per-pixel variance map.

    Parameters
    ----------
    variance : (N, *S) array, (K, N, *S) array or RunningMoments
        Per-pixel variance of the input gradient across checkpoints; or ``(K, N, *S)``
        gradients, whose variance over K is taken here (the direct computation the running
        moments must equal); or the :class:`RunningMoments` themselves (reduced without
        building the variance map: what the detectors call every epoch). A 4-D array is
        read as ``(K, N, H, W)`` unless ``region`` says it is ``(N, D, H, W)``.
    region : (N, *S) bool ndarray, optional
        Average only over these pixels (e.g. :func:`boundary_band`); all pixels otherwise.
    normalise : {'none', 'mean'}
        ``'mean'`` divides each sample's score by its mean squared gradient, making it
        invariant to the gradient's scale (which varies with image contrast).
    mean_grad : (N, *S) array, optional
        Mean gradient across checkpoints, needed for ``normalise='mean'``.
    reduce : {'variance', 'std'}
        Average the per-pixel variance (study B) or its square root, the per-pixel standard
        deviation (the VOG reference code, Agarwal et al.).

    Returns
    -------
    (N,) float64 ndarray
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
    """Flag the ``round(fraction * N)`` highest scores (known or assumed error level)."""
    s = np.asarray(scores, dtype=np.float64)
    if not 0 <= fraction <= 1:
        raise ConfigError(f"flag fraction: expected a value in [0, 1], got {fraction}")
    k = int(round(fraction * len(s)))
    flags = np.zeros(len(s), dtype=bool)
    if k:
        flags[np.argsort(-s, kind="stable")[:k]] = True
    return flags


def flag_percentile(scores: np.ndarray, q: float) -> np.ndarray:
    """Flag scores strictly above their ``q``-th percentile (0..100)."""
    if not 0 <= q <= 100:
        raise ConfigError(f"flag percentile: expected 0..100, got {q}")
    s = np.asarray(scores, dtype=np.float64)
    return s > np.percentile(s, q)


def flag_mixture(scores: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Unsupervised rule: a two-component Gaussian mixture on log-scores.

    Scores are put on a log scale when all positive (losses and VOG are right-skewed) and
    standardised. A sample is flagged when the component with the higher mean is the more
    probable one.
    No error level is needed. When one component explains the scores (BIC of one component
    is lower), nothing is flagged.
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
    """Raise :class:`ConfigError` unless ``rule`` and ``value`` make a valid flag rule."""
    if rule not in ("mixture", "top", "percentile"):
        raise ConfigError(f"flag_rule: expected mixture, top or percentile, got {rule!r}")
    if rule == "top" and (value is None or not 0 <= value <= 1):
        raise ConfigError(f"flag_value: rule 'top' needs a fraction in [0, 1], got {value}")
    if rule == "percentile" and value is not None and not 0 <= value <= 100:
        raise ConfigError(f"flag_value: rule 'percentile' needs 0..100, got {value}")


def flag(scores: np.ndarray, rule: str = "mixture", *, value: float | None = None,
         seed: int = 0) -> np.ndarray:
    """Apply a flag rule by name: ``mixture`` (default), ``top`` (fraction) or ``percentile``."""
    check_flag_rule(rule, value)
    if rule == "mixture":
        return flag_mixture(scores, seed=seed)
    if rule == "top":
        return flag_top_fraction(scores, float(value))  # type: ignore[arg-type]
    return flag_percentile(scores, 90.0 if value is None else value)


def score_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score, highest first (ties keep their order).

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
    """Quality of flags and scores against the known corrupted set."""

    precision: float
    recall: float
    f1: float
    average_precision: float
    auroc: float
    n_flagged: int
    n_corrupted: int
    n: int

    def to_dict(self) -> dict[str, float]:
        """JSON-serialisable form."""
        return asdict(self)


def detection_metrics(scores: np.ndarray, flags: np.ndarray, truth: np.ndarray) -> DetectionMetrics:
    """Precision, recall and F1 of ``flags``; average precision and AUROC of ``scores``.

    AP and AUROC are NaN when ``truth`` is all one class.
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
    """Labels ``argmax(logits + bias)``: (N, C, *S) logits, (C,) offsets -> (N, *S) uint8."""
    z = torch.as_tensor(logits)
    if bias is not None:
        z = add_class_offsets(z, bias)
    return z.argmax(1).numpy().astype(np.uint8)


def add_class_offsets(logits: torch.Tensor, bias: np.ndarray) -> torch.Tensor:
    """(N, C, *S) logits plus (C,) per-class offsets (of :func:`class_bias`)."""
    z = torch.as_tensor(logits)
    return z + torch.as_tensor(np.asarray(bias), dtype=z.dtype).reshape(1, -1, *([1] * (z.ndim - 2)))


def class_bias(logits: torch.Tensor, truth: np.ndarray, *, span: float = 6.0,
               steps: tuple[float, ...] = (1.0, 0.25), rounds: int = 2) -> np.ndarray:
    """Per-class logit offsets that maximise mean Dice against ``truth`` (boundary calibration).

    A network trained on systematically biased masks (a structure drawn too large on most
    samples) learns the bias; its class boundaries sit where two classes' logits cross.
    Adding an offset to one class's logits moves its boundaries in or out, so offsets fitted
    on masks known to be right (the clean validation split) undo a learned bias. Coordinate
    ascent over the foreground classes on a coarse-to-fine grid (``steps``) in
    ``[-span, span]``; the background keeps offset 0.

    Parameters
    ----------
    logits : (N, C, H, W) tensor
    truth : (N, *S) integer ndarray
        The right labels of the same samples.

    Returns
    -------
    (C,) float ndarray
        Offsets; all zero when no offset improves the mean Dice.
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
