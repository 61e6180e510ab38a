"""Refurbishment of flagged training masks with pseudo-labels.

Public API: :class:`Refurbisher`, :func:`pseudo_labels`, :func:`check_refurbish_options`.
"""

from noisyseg.refurbish.refurbisher import Refurbisher, check_refurbish_options, pseudo_labels

__all__ = ["Refurbisher", "check_refurbish_options", "pseudo_labels"]
