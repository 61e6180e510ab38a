"""Evaluation: pure metrics, used by every stage.

Public API: the project-wide Dice on numpy arrays (:func:`dice`, :func:`dice_per_class`,
:func:`confusion_counts`: the fast path inside error-model calibration and detectors);
test-set metrics on clean masks with MONAI (:func:`evaluate_masks`,
:class:`SegmentationMetrics`: Dice, IoU, HD95 and surface Dice per class); for boundaries in
mm, :func:`signed_distance` and :func:`boundary_offset` (how far one mask's structures lie
outside another's); how one rater's mask differs from the others' (:mod:`noisyseg.evaluate.raters`:
:func:`rater_statistics` per reader and case, surface offsets in mm, their correlation
lengths, slice-to-slice jumps, :func:`variance_components` of a reader's systematic part,
:func:`distribution_distance` between real and simulated statistics).
"""

from noisyseg.evaluate.metrics import (
    SegmentationMetrics,
    boundary_offset,
    evaluate_masks,
    signed_distance,
)
from noisyseg.evaluate.overlap import confusion_counts, dice, dice_per_class
from noisyseg.evaluate.raters import (
    STATISTICS,
    VarianceComponents,
    distribution_distance,
    leave_one_out_consensus,
    rater_statistics,
    surface_offsets,
    variance_components,
)

__all__ = ["STATISTICS", "SegmentationMetrics", "VarianceComponents", "boundary_offset",
           "confusion_counts", "dice", "dice_per_class", "distribution_distance", "evaluate_masks",
           "leave_one_out_consensus", "rater_statistics", "signed_distance", "surface_offsets",
           "variance_components"]
