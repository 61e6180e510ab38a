"""Label-error simulation: error models, calibration to a target Dice, dataset corruption.

Public API: the error models (:func:`natural`, :func:`choppy`, :func:`random_flip`,
:func:`boundary`, :func:`dilate`, :func:`erode`, :func:`shift`, :func:`merge`,
:func:`omit`), the registry (:data:`ERROR_MODELS`, :func:`get_model`, :func:`register`),
:func:`calibrate`, :func:`corrupt_dataset` (a dataset held in memory, corrupted in memory)
and :func:`corrupt_cases` (any dataset into a dataset folder: cases streamed one at a time,
or a dataset held in memory written at once). Volumes: every model applies slice by slice
or, where it has one, in its 3-D form (:mod:`noisyseg.corrupt.volumetric`).
:func:`grow_structures` grows or shrinks structures by a distance in mm (2-D or 3-D).
:func:`write_corrupted` corrupts a ``--data`` source into a new dataset folder (what
``noisyseg corrupt`` does), with its ``examples.png`` (:func:`corruption_figure`).
Presets fitted to real raters (``--like lidc``): :class:`Preset`, :func:`read_preset`,
:func:`apply_preset`, :func:`write_preset`, :data:`PRESETS`.
"""

from noisyseg.corrupt.apply import CorruptionResult, corrupt_dataset
from noisyseg.corrupt.calibration import Calibration, calibrate, mean_dice_at
from noisyseg.corrupt.figures import corruption_figure
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
from noisyseg.corrupt.presets import PRESETS, Preset, apply_preset, read_preset, write_preset
from noisyseg.corrupt.stream import CaseCorruption, corrupt_cases
from noisyseg.corrupt.volumetric import grow_structures
from noisyseg.corrupt.write import write_corrupted

__all__ = [
    "PRESETS",
    "Preset",
    "apply_preset",
    "read_preset",
    "write_preset",
    "corruption_figure",
    "write_corrupted",
    "ERROR_MODELS",
    "Calibration",
    "CaseCorruption",
    "CorruptionResult",
    "ErrorModel",
    "boundary",
    "calibrate",
    "choppy",
    "corrupt_cases",
    "corrupt_dataset",
    "dilate",
    "erode",
    "get_model",
    "grow_structures",
    "mean_dice_at",
    "merge",
    "natural",
    "omit",
    "random_flip",
    "register",
    "shift",
]
