"""Evaluation on clean masks (MONAI metrics), and the measured training run.

Public API: :func:`evaluate_masks`, :class:`SegmentationMetrics`; :func:`run_session`
(train with detectors and refurbishment attached, evaluate on clean test masks),
:class:`Session`, :class:`RefurbishConfig`, :func:`session_summary`, :func:`check_detectors`.
"""

from noisyseg.evaluate.metrics import SegmentationMetrics, evaluate_masks
from noisyseg.evaluate.session import (
    RefurbishConfig,
    Session,
    check_detectors,
    run_session,
    session_summary,
)

__all__ = ["RefurbishConfig", "SegmentationMetrics", "Session", "check_detectors", "evaluate_masks",
           "run_session", "session_summary"]
