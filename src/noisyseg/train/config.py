"""The one serialisable configuration of a training run (copied into every run folder)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from noisyseg._validate import check_seed, check_threads
from noisyseg.errors import ConfigError

__all__ = ["LOSSES", "MEMORY_FORMATS", "PRECISIONS", "TrainConfig"]

#: Values of :attr:`TrainConfig.precision`.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Names of the training losses, the values of :attr:`TrainConfig.loss`: ``dicece`` (Dice +
#: cross-entropy), ``ce`` (cross-entropy) and ``wce`` (study A's class-weighted cross-entropy).
LOSSES = ("dicece", "ce", "wce")
#: Values of :attr:`TrainConfig.memory_format`.
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@dataclass
class TrainConfig:
    """Hold the settings of one training run.

    The one serialisable configuration of a run: :meth:`to_dict` writes it into every run
    folder and :meth:`from_dict` reads it back. Fields are checked (and ``seed``,
    ``threads`` and ``patch_size`` normalised) when the object is made; a mutable
    dataclass.

    Parameters
    ----------
    model : str, default 'unet'
        See Attributes.
    model_options : dict, optional
        See Attributes.
    epochs : int, default 40
        See Attributes.
    steps_per_epoch : int or None, default None
        See Attributes.
    batch_size : int, default 16
        See Attributes.
    lr : float, default 2e-3
        See Attributes.
    loss : {'dicece', 'ce', 'wce'}, default 'dicece'
        See Attributes.
    balanced : bool, default False
        See Attributes.
    augment : bool, default True
        See Attributes.
    seed : int, default 0
        See Attributes.
    device : {'auto', 'cpu', 'cuda'}, default 'auto'
        See Attributes.
    threads : int or None, default None
        See Attributes.
    patch_size : sequence of int or None, default None
        See Attributes.
    precision : {'auto', 'fp32', 'bf16', 'fp16'}, default 'auto'
        See Attributes.
    memory_format : {'auto', 'channels_last', 'contiguous'}, default 'auto'
        See Attributes.

    Attributes
    ----------
    model : str
        Network name (``noisyseg models``), e.g. ``unet`` or ``monai:BasicUNet``. Default
        ``"unet"``.
    model_options : dict
        Keyword options of the network, e.g. ``{"width": 6}``. Default ``{}`` (the
        network's own defaults).
    epochs : int
        Training epochs, at least 1. Default 40.
    steps_per_epoch : int or None
        Mini-batches (optimisation steps) per epoch, at least 1; ``None`` (the default)
        means one pass over the training samples (``ceil(n_train / batch_size)`` steps).
    batch_size : int
        Samples (or patches) per mini-batch, at least 1. Default 16.
    lr : float
        Adam learning rate, > 0 (other Adam settings at PyTorch defaults, as in study A).
        Default 2e-3.
    loss : {'dicece', 'ce', 'wce'}
        Dice + cross-entropy (MONAI), cross-entropy alone, or study A's weighted
        cross-entropy (``wce``: background voxels weighted by the foreground's frequency in
        the training masks, foreground 1, :func:`~noisyseg.train.class_balance_weights`;
        study A's code kept all foreground pixels and that share of the background ones).
        One of :data:`LOSSES`; default ``"dicece"``.
    balanced : bool
        Class-balanced sampling (study A): samples containing rarer classes are drawn more.
        Default False (uniform shuffling).
    augment : bool
        Light augmentation: random translation (up to 1/16 of the size) and intensity scaling
        (a factor in [0.9, 1.1] per sample). Default True.
    seed : int
        0 to 2**32 - 1 (weights, sampling, augmentation). Default 0.
    device : {'auto', 'cpu', 'cuda'}
        Where to train: ``auto`` (the default) picks CUDA when available, else the CPU
        (:func:`~noisyseg.train.select_device`).
    threads : int or None
        CPU threads for PyTorch, at least 1 (``None``, the default: all cores). Set
        process-wide (``torch.set_num_threads``) when the trainer is made.
    patch_size : list of int or None
        Train on random patches of this size (voxels, one entry per spatial axis, 2 or 3
        entries of at least 8) and predict whole samples with MONAI's sliding-window
        inference. ``None`` (the default): whole samples when they fit the voxel budget
        (always for 2-D images), else a patch chosen from the data and the device
        (:func:`~noisyseg.train.choose_patch_size`). A third of the patches are centred on
        a foreground voxel of the training mask (nnU-Net's oversampling). Samples and
        patches of any size work: the network's input is zero-padded to the sizes it can
        process and its logits cropped back (:class:`~noisyseg.models.PadToMultiple`).
    precision : {'auto', 'fp32', 'bf16', 'fp16'}
        Arithmetic of the forward pass (``torch.autocast``; weights and optimiser stay in
        float32). ``auto`` (the default): float16 mixed precision on CUDA (with loss
        scaling), float32 on every CPU. ``bf16``: bfloat16 on either; on a Xeon with AMX a
        training step took 2.4x (2-D) to 3.3x (3-D) less time than float32 on two threads
        (slower on a CPU without native bfloat16: the trainer warns). ``fp16``: CUDA only.
    memory_format : {'auto', 'channels_last', 'contiguous'}
        Memory order of the network and its inputs: the same arithmetic in another order,
        with speed depending on the machine and the thread count. ``auto`` (the default):
        channels-last on CUDA (PyTorch's advice for tensor cores, not measured here) and for
        float32 on one thread of an AVX-512 CPU (1.5x faster in 2-D, 1.8x in 3-D there);
        contiguous otherwise, because PyTorch's channels-last batch norm uses one thread (on
        two threads 1.25x slower in 2-D float32, 2.8x slower in bfloat16). Results differ
        between the two orders in the last bits, so a run reproduces exactly only in the
        same order (``metrics.json`` records the one used).

    Raises
    ------
    ConfigError
        A field out of range or not one of its allowed values: ``seed`` not an integer in
        0..2**32 - 1, ``threads`` not a positive integer, ``epochs``, ``batch_size`` or
        ``steps_per_epoch`` below 1, ``lr`` not positive, ``loss``, ``precision``,
        ``memory_format`` or ``device`` not one of the values above, ``patch_size`` not 2
        or 3 integers of at least 8. The message names the field.

    Examples
    --------
    >>> cfg = TrainConfig(epochs=2, batch_size=4, patch_size=(32, 32))
    >>> cfg.patch_size, cfg.loss, cfg.lr
    ([32, 32], 'dicece', 0.002)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> TrainConfig(epochs=0)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: epochs: must be >= 1, got 0
    """

    model: str = "unet"
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 40
    steps_per_epoch: int | None = None
    batch_size: int = 16
    lr: float = 2e-3
    loss: str = "dicece"
    balanced: bool = False
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    patch_size: list[int] | None = None
    precision: str = "auto"
    memory_format: str = "auto"

    def __post_init__(self) -> None:
        self.seed = check_seed(self.seed)
        self.threads = check_threads(self.threads)
        if self.epochs < 1:
            raise ConfigError(f"epochs: must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch: must be >= 1, got {self.steps_per_epoch}")
        if not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss: expected one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.patch_size is not None:
            ps = self.patch_size
            if (not isinstance(ps, (list, tuple)) or len(ps) not in (2, 3)
                    or not all(isinstance(v, int) and v >= 8 for v in ps)):
                raise ConfigError(f"patch_size: expected 2 or 3 sizes of at least 8 voxels, "
                                  f"got {ps!r}")
            self.patch_size = [int(v) for v in ps]
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, "
                              f"got {self.precision!r}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ConfigError(f"memory_format: expected one of {', '.join(MEMORY_FORMATS)}, "
                              f"got {self.memory_format!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device: expected auto, cpu or cuda, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict (one key per field).

        Returns
        -------
        dict
            ``{field: value}``; :meth:`from_dict` makes the same config from it.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Make a config from :meth:`to_dict`'s output (missing keys take their defaults).

        Parameters
        ----------
        d : dict
            ``{field: value}``.

        Returns
        -------
        TrainConfig

        Raises
        ------
        ConfigError
            A key that names no field, or a value the constructor rejects.
        """
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ConfigError(f"train config: unknown field(s) {sorted(bad)}")
        return cls(**d)
