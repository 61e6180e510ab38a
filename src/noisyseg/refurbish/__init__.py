"""Refurbishment of flagged training masks with pseudo-labels.

Public API: :class:`RefurbishConfig` (the settings), :class:`Refurbisher` (the training
callback), :func:`pseudo_labels`, :func:`systematic_offset` and :func:`debias_masks` (the
``debias`` mode), :data:`MODES`.
"""

from noisyseg.refurbish.config import MODES, PSEUDO_FROM, RefurbishConfig
from noisyseg.refurbish.refurbisher import (
    Refurbisher,
    debias_masks,
    pseudo_labels,
    systematic_offset,
)

__all__ = ["MODES", "PSEUDO_FROM", "RefurbishConfig", "Refurbisher", "debias_masks",
           "pseudo_labels", "systematic_offset"]
