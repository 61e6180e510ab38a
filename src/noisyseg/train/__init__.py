"""Training: a short loop with per-sample bookkeeping and callbacks.

Public API: :class:`TrainConfig`, :class:`Trainer`, :class:`Callback`, :class:`BatchResult`,
:class:`ProgressBar`, :func:`load_checkpoint`, :func:`normalise_images`,
:func:`choose_patch_size`, :data:`IGNORE_INDEX`.
"""

from noisyseg.train.callbacks import BatchResult, Callback, ProgressBar
from noisyseg.train.config import TrainConfig
from noisyseg.train.trainer import (
    IGNORE_INDEX,
    Trainer,
    choose_patch_size,
    load_checkpoint,
    normalise_images,
    select_device,
)

__all__ = ["IGNORE_INDEX", "BatchResult", "Callback", "ProgressBar", "TrainConfig", "Trainer",
           "choose_patch_size", "load_checkpoint", "normalise_images", "select_device"]
