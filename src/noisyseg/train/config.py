"""The one serialisable configuration of a training run (copied into every run folder)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from noisyseg._validate import check_seed, check_threads
from noisyseg.errors import ConfigError

__all__ = ["LOSSES", "MEMORY_FORMATS", "PRECISIONS", "TrainConfig"]

#: Values of :attr:`TrainConfig.precision`.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Training losses (:attr:`TrainConfig.loss`).
LOSSES = ("dicece", "ce", "wce")
#: Values of :attr:`TrainConfig.memory_format`.
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@dataclass
class TrainConfig:
    """Training settings.

    Attributes
    ----------
    model : str
        Network name (``noisyseg models``), e.g. ``unet`` or ``monai:BasicUNet``.
    model_options : dict
        Keyword options of the network, e.g. ``{"width": 6}``.
    epochs : int
    steps_per_epoch : int or None
        Mini-batches per epoch; ``None`` means one pass over the training samples.
    batch_size : int
    lr : float
        Adam learning rate (other Adam settings at PyTorch defaults, as in study A).
    loss : {'dicece', 'ce', 'wce'}
        Dice + cross-entropy (MONAI), cross-entropy alone, or study A's weighted
        cross-entropy (``wce``: background voxels weighted by the foreground's frequency in
        the training masks, foreground 1, :func:`~noisyseg.train.class_balance_weights`;
        study A's code kept all foreground pixels and that share of the background ones).
    balanced : bool
        Class-balanced sampling (study A): samples containing rarer classes are drawn more.
    augment : bool
        Light augmentation: random translation (up to 1/16 of the size) and intensity scaling.
    seed : int
        0 to 2**32 - 1 (weights, sampling, augmentation).
    device : {'auto', 'cpu', 'cuda'}
    threads : int or None
        CPU threads for PyTorch, at least 1 (``None``: all cores).
    patch_size : list of int or None
        Train on random patches of this size (one entry per spatial axis) and predict whole
        samples with MONAI's sliding-window inference. ``None``: whole samples when they fit
        the voxel budget (always for 2-D images), else a patch chosen from the data and the
        device (:func:`~noisyseg.train.choose_patch_size`). A third of the patches are
        centred on a foreground voxel of the training mask (nnU-Net's oversampling). Samples
        and patches of any size work: the network's input is zero-padded to the sizes it
        can process and its logits cropped back (:class:`~noisyseg.models.PadToMultiple`).
    precision : {'auto', 'fp32', 'bf16', 'fp16'}
        Arithmetic of the forward pass (``torch.autocast``; weights and optimiser stay in
        float32). ``auto``: float16 mixed precision on CUDA (with loss scaling), float32 on
        every CPU. ``bf16``: bfloat16 on either; on a Xeon with AMX a training step took
        2.4x (2-D) to 3.3x (3-D) less time than float32 on two threads (slower on a CPU
        without native bfloat16: the trainer warns). ``fp16``: CUDA only.
    memory_format : {'auto', 'channels_last', 'contiguous'}
        Memory order of the network and its inputs: the same arithmetic in another order,
        with speed depending on the machine and the thread count. ``auto``: channels-last
        on CUDA (PyTorch's advice for tensor cores, not measured here) and for float32 on
        one thread of an AVX-512 CPU (1.5x faster in 2-D, 1.8x in 3-D there); contiguous
        otherwise, because PyTorch's channels-last batch norm uses one thread (on two
        threads 1.25x slower in 2-D float32, 2.8x slower in bfloat16). Results differ
        between the two orders in the last bits, so a run reproduces exactly only in the
        same order (``metrics.json`` records the one used).
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
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ConfigError(f"train config: unknown field(s) {sorted(bad)}")
        return cls(**d)
