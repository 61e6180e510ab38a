"""Refurbishment of flagged training masks with pseudo-labels.

Public API: :class:`RefurbishConfig` (the settings), :class:`Refurbisher` (the training
callback), :func:`pseudo_labels`, :data:`MODES`.
"""

from noisyseg.refurbish.config import MODES, PSEUDO_FROM, RefurbishConfig
from noisyseg.refurbish.refurbisher import Refurbisher, pseudo_labels

__all__ = ["MODES", "PSEUDO_FROM", "RefurbishConfig", "Refurbisher", "pseudo_labels"]
