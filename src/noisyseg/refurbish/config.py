"""The refurbishment settings: one declaration, used by the Python API, the CLI and study specs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from noisyseg.errors import ConfigError

__all__ = ["MODES", "PSEUDO_FROM", "REGIONS", "RefurbishConfig"]

#: What a flagged mask becomes: ``replace`` (pseudo-label, the given label where the model
#: is unsure), ``ignore`` (pseudo-label, unsure pixels left out of the loss), ``drop``
#: (the whole mask left out of the loss), ``boundary`` (the given mask, its boundaries
#: left out of the loss) or ``debias`` (the given mask, each structure grown or shrunk by
#: the systematic offset measured between flagged and trusted masks).
MODES = ("replace", "ignore", "drop", "boundary", "debias")
#: Which weights make the pseudo-labels (values of :attr:`RefurbishConfig.pseudo_from`):
#: ``current`` (the model as it is at the flagging epoch) or ``best`` (the best-on-validation
#: weights so far).
PSEUDO_FROM = ("current", "best")
#: What of a flagged sample a refurbishment changes: all of it, or (a 3-D network's volumes)
#: only the slices its detector doubts.
REGIONS = ("sample", "slices")


@dataclass(frozen=True)
class RefurbishConfig:
    """Hold when and how flagged training masks are refurbished (pseudo-labels and more).

    The settings of :class:`~noisyseg.refurbish.Refurbisher`; checked when made, frozen.

    Parameters
    ----------
    with_detector : str or None, default None
        See Attributes.
    warmup : int, default 10
        See Attributes.
    every : int, default 5
        See Attributes.
    confidence : float, default 0.0
        See Attributes.
    unflag : bool, default False
        See Attributes.
    pseudo_from : {'current', 'best'}, default 'current'
        See Attributes.
    calibrate : bool, default False
        See Attributes.
    mode : {'replace', 'ignore', 'drop', 'boundary', 'debias'}, default 'replace'
        See Attributes.
    band : int, default 2
        See Attributes.
    region : {'sample', 'slices'}, default 'sample'
        See Attributes.

    Attributes
    ----------
    with_detector : str or None
        Name of the detector whose flags drive refurbishment; None (the default): the first
        detector of the run. Written as ``with`` by :meth:`to_dict`.
    warmup : int
        First epoch (1-based, at least 1) that may refurbish. Default 10.
    every : int
        Re-flag every this many epochs (at least 1) from ``warmup`` on. Default 5.
    confidence : float
        Pseudo-label only pixels predicted with at least this probability, in [0, 1];
        default 0.0 (every pixel takes the prediction).
    unflag : bool
        Give samples that are no longer flagged their given masks back; default False
        (once flagged, a sample stays flagged).
    pseudo_from : {'current', 'best'}
        Pseudo-labels (or, with ``mode='debias'``, the predictions the offsets are
        measured against) from the current model (the default) or from the
        best-on-validation weights so far (validation masks are clean, so under heavy
        systematic errors this is an early-learning model that has not yet fitted the bias).
        One of :data:`PSEUDO_FROM`.
    calibrate : bool
        Pseudo-labels with per-class logit offsets fitted on the clean validation masks
        (:func:`noisyseg.detect.class_bias`): a model that learnt a systematic bias then
        labels with the validation masks' boundaries instead of copying the bias. Default
        False; not with ``mode='debias'``.
    mode : {'replace', 'ignore', 'drop', 'boundary', 'debias'}
        What unsure pixels of a flagged mask train on: the given label, nothing, or (drop)
        no pixel of a flagged mask is trained on; ``boundary`` makes no pseudo-label: a
        flagged mask trains on its given labels except within ``band`` voxels of any of its
        label boundaries, where systematic errors (a structure drawn too large, too small or
        shifted) live. It needs no model better than the labels, only a detector that finds
        the flagged masks; the network learns where boundaries go from the unflagged masks.
        ``debias`` makes no pseudo-label either: it measures, per structure, how far the
        flagged masks' boundaries lie outside the model's prediction, minus how far the
        trusted masks' boundaries do (the model's own bias cancels; median over samples,
        in mm, see :func:`noisyseg.evaluate.boundary_offset`), and grows or shrinks that
        structure in every flagged mask by the difference (offsets under half a voxel are
        left alone). It undoes a systematic over- or under-segmentation while keeping the
        annotator's shapes, so it helps where the network is no better than the labels.
        One of :data:`MODES`; default ``replace``.
    band : int
        Half-width in voxels (per axis: a square or cube around each boundary voxel, at
        least 1) of the band a flagged mask leaves out with ``mode='boundary'``; cover the
        error's size (a 3 mm dilation at 0.8 mm voxels: 4). Default 2.
    region : {'sample', 'slices'}
        What of a flagged sample changes. ``sample``: all of it (a 2-D image, a slice of a
        volume for a 2-D network, a whole volume for a 3-D one). ``slices``, for a 3-D
        network (``dims=3``): only the slices of a flagged volume (along the run's slice
        axis) that the detector doubts, as a 2-D network on slices refurbishes only its
        flagged slices: at every flagging, each slice of every training volume gets the
        mean of the detector's voxel map over it, the flag rule picks the doubted slices
        among all of them, and a flagged volume changes on those slices only (none: it
        keeps its given labels). The rest of the volume keeps its given labels. Default
        ``sample``.

    Raises
    ------
    ConfigError
        A setting out of range: ``mode``, ``region`` or ``pseudo_from`` not one of its
        values, ``warmup``, ``every`` or ``band`` below 1, ``confidence`` outside [0, 1], or
        ``calibrate`` with ``mode='debias'``; the message names the attribute.

    Examples
    --------
    >>> cfg = RefurbishConfig(mode="ignore", confidence=0.9)
    >>> cfg.to_dict()["mode"], cfg.warmup, cfg.every
    ('ignore', 10, 5)
    >>> list(RefurbishConfig().to_dict())[:2]
    ['with', 'warmup']
    >>> RefurbishConfig(confidence=1.5)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: confidence: expected a probability in [0, 1], got 1.5
    """

    with_detector: str | None = None
    warmup: int = 10
    every: int = 5
    confidence: float = 0.0
    unflag: bool = False
    pseudo_from: str = "current"
    calibrate: bool = False
    mode: str = "replace"
    band: int = 2
    region: str = "sample"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("warmup", "every", "band"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.confidence <= 1:
            raise ConfigError(f"confidence: expected a probability in [0, 1], got {self.confidence}")
        if self.mode == "debias" and self.calibrate:
            raise ConfigError("calibrate: mode 'debias' measures the model against the trusted "
                              "masks itself; calibrate applies to 'replace' and 'ignore'")
        if self.region not in REGIONS:
            raise ConfigError(f"region: expected one of {', '.join(REGIONS)}, got {self.region!r}")
        if self.pseudo_from not in PSEUDO_FROM:
            raise ConfigError(f"pseudo_from: expected one of {', '.join(PSEUDO_FROM)}, "
                              f"got {self.pseudo_from!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict.

        Returns
        -------
        dict
            ``{field: value}``, ``with_detector`` written as ``with`` (first).
        """
        d = asdict(self)
        return {"with": d.pop("with_detector"), **d}
