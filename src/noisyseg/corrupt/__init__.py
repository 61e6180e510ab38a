"""Label-error simulation: error models, calibration to a target Dice, dataset corruption.

Public API: the error models (:func:`natural`, :func:`choppy`, :func:`random_flip`,
:func:`boundary`, :func:`dilate`, :func:`erode`, :func:`shift`, :func:`merge`,
:func:`omit`), the registry (:data:`ERROR_MODELS`, :func:`get_model`, :func:`register`),
:func:`calibrate` and :func:`corrupt_dataset`.
"""

from noisyseg.corrupt.apply import CorruptionResult, corrupt_dataset
from noisyseg.corrupt.calibrate import Calibration, calibrate, mean_dice_at
from noisyseg.corrupt.models import (
    ERROR_MODELS,
    ErrorModel,
    boundary,
    choppy,
    dilate,
    erode,
    get_model,
    merge,
    natural,
    omit,
    random_flip,
    register,
    shift,
)

__all__ = [
    "ERROR_MODELS",
    "Calibration",
    "CorruptionResult",
    "ErrorModel",
    "boundary",
    "calibrate",
    "choppy",
    "corrupt_dataset",
    "dilate",
    "erode",
    "get_model",
    "mean_dice_at",
    "merge",
    "natural",
    "omit",
    "random_flip",
    "register",
    "shift",
]
