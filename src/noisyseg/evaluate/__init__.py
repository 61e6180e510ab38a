"""Evaluation: pure metrics, used by every stage.

Public API: the project-wide Dice on numpy arrays (:func:`dice`, :func:`dice_per_class`,
:func:`confusion_counts`: the fast path inside error-model calibration and detectors);
test-set metrics on clean masks with MONAI (:func:`evaluate_masks`,
:class:`SegmentationMetrics`: Dice, IoU, HD95 and surface Dice per class); for boundaries in
mm, :func:`signed_distance` and :func:`boundary_offset` (how far one mask's structures lie
outside another's).
"""

from noisyseg.evaluate.metrics import (
    SegmentationMetrics,
    boundary_offset,
    evaluate_masks,
    signed_distance,
)
from noisyseg.evaluate.overlap import confusion_counts, dice, dice_per_class

__all__ = ["SegmentationMetrics", "boundary_offset", "confusion_counts", "dice", "dice_per_class",
           "evaluate_masks", "signed_distance"]
