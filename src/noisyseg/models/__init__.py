"""Segmentation networks and their registry.

Public API: :class:`UNet`, :class:`SegNet`, :class:`FCN32`, :func:`build_model`,
:data:`MODELS`, :func:`list_models`; inputs of any size: :class:`PadToMultiple`,
:func:`pad_to_multiple`, :func:`crop_padding`, :func:`padded_shape`, :func:`padding`,
:func:`input_geometry`.
"""

from noisyseg.models.inputs import (
    PadToMultiple,
    crop_padding,
    input_geometry,
    pad_to_multiple,
    padded_shape,
    padding,
)
from noisyseg.models.nets import FCN32, SegNet, UNet
from noisyseg.models.registry import MODELS, build_model, list_models

__all__ = ["FCN32", "MODELS", "PadToMultiple", "SegNet", "UNet", "build_model", "crop_padding",
           "input_geometry", "list_models", "pad_to_multiple", "padded_shape", "padding"]
