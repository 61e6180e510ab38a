"""Evaluation on clean masks: pure metrics (MONAI's Dice, IoU and HD95 per class).

Public API: :func:`evaluate_masks`, :class:`SegmentationMetrics`.
"""

from noisyseg.evaluate.metrics import SegmentationMetrics, evaluate_masks

__all__ = ["SegmentationMetrics", "evaluate_masks"]
