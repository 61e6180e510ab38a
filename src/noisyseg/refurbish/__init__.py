"""Refurbishment of flagged training masks with pseudo-labels.

Public API: :class:`Refurbisher`, :func:`pseudo_labels`.
"""

from noisyseg.refurbish.refurbisher import Refurbisher, pseudo_labels

__all__ = ["Refurbisher", "pseudo_labels"]
