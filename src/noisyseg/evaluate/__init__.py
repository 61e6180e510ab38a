"""Evaluation on clean masks: pure metrics (MONAI's Dice, IoU and HD95 per class).

Public API: :func:`evaluate_masks`, :class:`SegmentationMetrics`; for boundaries in mm,
:func:`signed_distance` and :func:`boundary_offset` (how far one mask's structures lie
outside another's).
"""

from noisyseg.evaluate.metrics import (
    SegmentationMetrics,
    boundary_offset,
    evaluate_masks,
    signed_distance,
)

__all__ = ["SegmentationMetrics", "boundary_offset", "evaluate_masks", "signed_distance"]
