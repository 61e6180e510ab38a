"""Evaluation on clean masks (MONAI metrics).

Public API: :func:`evaluate_masks`, :class:`SegmentationMetrics`.
"""

from noisyseg.evaluate.metrics import SegmentationMetrics, evaluate_masks

__all__ = ["SegmentationMetrics", "evaluate_masks"]
