"""Segmentation networks and their registry.

Public API: :class:`UNet`, :class:`SegNet`, :class:`FCN32`, :func:`build_model`,
:data:`MODELS`, :func:`list_models`.
"""

from noisyseg.models.nets import FCN32, SegNet, UNet
from noisyseg.models.registry import MODELS, build_model, list_models

__all__ = ["FCN32", "MODELS", "SegNet", "UNet", "build_model", "list_models"]
