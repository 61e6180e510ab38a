"""Refurbishment of flagged training masks with pseudo-labels.

Public API: :class:`Refurbisher`, :func:`pseudo_labels`, :func:`check_refurbish_options`,
:data:`MODES`.
"""

from noisyseg.refurbish.refurbisher import MODES, Refurbisher, check_refurbish_options, pseudo_labels

__all__ = ["MODES", "Refurbisher", "check_refurbish_options", "pseudo_labels"]
