"""Label-error detection during training.

Public API: detectors (:class:`LossDetector`, :class:`VOGDetector`,
:class:`OnlineVOGDetector`, :class:`CleanlabDetector`, :class:`DisagreeDetector`,
:func:`make_detector`, :func:`check_detectors`), the score
functions (:func:`vog_scores`, :class:`RunningMoments`, :func:`input_gradients`), flag rules
(:func:`flag`, :func:`flag_mixture`, :func:`flag_top_fraction`, :func:`flag_percentile`),
:func:`detection_metrics`, and the scores from a model's predicted probabilities
(:func:`case_scores`, :data:`PROB_DETECTORS`, :func:`given_label_probability`,
:func:`softmin`; no training).
"""

from noisyseg.detect.detectors import (
    DETECTORS,
    CleanlabDetector,
    Detector,
    DisagreeDetector,
    LossDetector,
    OnlineVOGDetector,
    VOGDetector,
    check_detectors,
    input_gradients,
    make_detector,
    parse_detector,
    validation_bias,
    vog_schedule,
)
from noisyseg.detect.probs import (
    PROB_DETECTORS,
    CaseScores,
    case_scores,
    given_label_probability,
    softmin,
)
from noisyseg.detect.scores import (
    DetectionMetrics,
    RunningMoments,
    add_class_offsets,
    apply_bias,
    boundary_band,
    check_flag_rule,
    class_bias,
    detection_metrics,
    flag,
    flag_mixture,
    flag_percentile,
    flag_top_fraction,
    rms_normalise,
    score_ranks,
    vog_scores,
)

__all__ = [
    "DETECTORS",
    "PROB_DETECTORS",
    "CaseScores",
    "case_scores",
    "given_label_probability",
    "softmin",
    "CleanlabDetector",
    "DetectionMetrics",
    "add_class_offsets",
    "Detector",
    "DisagreeDetector",
    "LossDetector",
    "OnlineVOGDetector",
    "RunningMoments",
    "VOGDetector",
    "apply_bias",
    "boundary_band",
    "check_detectors",
    "check_flag_rule",
    "class_bias",
    "detection_metrics",
    "flag",
    "flag_mixture",
    "flag_percentile",
    "flag_top_fraction",
    "input_gradients",
    "make_detector",
    "parse_detector",
    "rms_normalise",
    "score_ranks",
    "validation_bias",
    "vog_schedule",
    "vog_scores",
]
