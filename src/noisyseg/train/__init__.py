"""Training: a short loop with per-sample bookkeeping and callbacks.

Public API: :class:`TrainConfig`, :class:`Trainer`, :class:`Callback`, :class:`BatchResult`,
:class:`ProgressBar`, :func:`load_checkpoint`, :func:`normalise_images`.
"""

from noisyseg.train.callbacks import BatchResult, Callback, ProgressBar
from noisyseg.train.config import TrainConfig
from noisyseg.train.trainer import Trainer, load_checkpoint, normalise_images, select_device

__all__ = ["BatchResult", "Callback", "ProgressBar", "TrainConfig", "Trainer", "load_checkpoint",
           "normalise_images", "select_device"]
