"""Training: a short loop with per-sample bookkeeping and callbacks.

Public API: :class:`TrainConfig`, :class:`Trainer`, :class:`Callback`, :class:`BatchResult`,
:class:`ProgressBar`, :func:`load_checkpoint`, :func:`normalise_images`,
:func:`choose_patch_size`, :func:`class_balance_weights` (the ``wce`` loss's weights), :data:`IGNORE_INDEX`,
:data:`LOSSES`.
"""

from noisyseg.train.callbacks import BatchResult, Callback, ProgressBar
from noisyseg.train.config import LOSSES, TrainConfig
from noisyseg.train.trainer import (
    IGNORE_INDEX,
    Trainer,
    choose_patch_size,
    class_balance_weights,
    load_checkpoint,
    normalise_images,
    select_device,
)

__all__ = ["IGNORE_INDEX", "LOSSES", "BatchResult", "Callback", "ProgressBar", "TrainConfig",
           "Trainer", "choose_patch_size", "class_balance_weights", "load_checkpoint",
           "normalise_images", "select_device"]
