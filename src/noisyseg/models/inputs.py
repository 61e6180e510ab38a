"""Inputs of any size: pad to the sizes a network can process, crop its output back.

A U-Net with ``depth`` down-samplings needs every spatial size divisible by ``2**depth``;
real samples (a 77 x 65 slice) have any size. As nnU-Net does (``pad_nd_image`` and its
sliding window), the input ``(N, C, *S)`` is padded with zeros in normalised space (the
image mean) to the next multiple, the difference split between both ends of each axis (one
more voxel at the far end when it is odd), and the logits ``(N, K, *P)`` are cropped back to
``(N, K, *S)``, so that losses, scores, predictions and input gradients only ever see the
sample's own voxels. Sizes that are already multiples are not padded at all: the network
is called on the input as it is.

A network states what it can process with two integer attributes, ``size_multiple`` and
``min_size`` (every axis a multiple of the first and at least the second; see
:func:`input_geometry`); one that states nothing is called unpadded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PadToMultiple", "crop_padding", "input_geometry", "pad_to_multiple", "padded_shape",
           "padding"]


def padded_shape(shape: Sequence[int], *, multiple: int = 1, min_size: int = 1) -> tuple[int, ...]:
    """Return the smallest sizes of at least ``shape`` and ``min_size`` that are multiples of
    ``multiple``, one per axis (voxels).

    Parameters
    ----------
    shape : sequence of int
        Spatial sizes, in voxels.
    multiple : int, default 1
        Every padded size is a multiple of it (>= 1).
    min_size : int, default 1
        Every padded size is at least this, in voxels (>= 1).

    Returns
    -------
    tuple of int
        The padded sizes, one per axis of ``shape``.

    Raises
    ------
    ValueError
        ``multiple`` or ``min_size`` below 1.

    Examples
    --------
    >>> padded_shape((77, 65), multiple=16)
    (80, 80)
    >>> padded_shape((9, 20, 27), multiple=16)
    (16, 32, 32)
    >>> padded_shape((64, 7), multiple=1, min_size=16)
    (64, 16)
    >>> padded_shape((8, 8), multiple=0)
    Traceback (most recent call last):
    ...
    ValueError: multiple and min_size must be >= 1, got 0 and 1
    """
    if multiple < 1 or min_size < 1:
        raise ValueError(f"multiple and min_size must be >= 1, got {multiple} and {min_size}")
    return tuple(-(-max(int(s), min_size) // multiple) * multiple for s in shape)


def padding(shape: Sequence[int], *, multiple: int = 1, min_size: int = 1
            ) -> tuple[tuple[int, int], ...]:
    """Return the voxels added ``(before, after)`` on each axis of ``shape`` to reach
    :func:`padded_shape`: half the difference before, the rest after (nnU-Net's split).

    Parameters
    ----------
    shape : sequence of int
        Spatial sizes, in voxels.
    multiple : int, default 1
        Every padded size is a multiple of it (>= 1).
    min_size : int, default 1
        Every padded size is at least this, in voxels (>= 1).

    Returns
    -------
    tuple of (int, int)
        ``(before, after)`` voxels per axis; ``after`` is ``before`` or one more.

    Raises
    ------
    ValueError
        ``multiple`` or ``min_size`` below 1.

    Examples
    --------
    >>> padding((77, 65), multiple=16)
    ((1, 2), (7, 8))
    >>> padding((64, 64), multiple=16)
    ((0, 0), (0, 0))
    """
    target = padded_shape(shape, multiple=multiple, min_size=min_size)
    return tuple(((t - int(s)) // 2, (t - int(s)) - (t - int(s)) // 2)
                 for s, t in zip(shape, target, strict=True))


def pad_to_multiple(x: torch.Tensor, *, multiple: int = 1, min_size: int = 1
                    ) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad the spatial axes of ``x`` to :func:`padded_shape`.

    Parameters
    ----------
    x : (N, C, *S) float tensor
        Batch of images (2-D) or volumes (3-D), in normalised intensities (zero pads the
        mean).
    multiple : int, default 1
        Every padded spatial size is a multiple of it (>= 1).
    min_size : int, default 1
        Every padded spatial size is at least this, in voxels (>= 1).

    Returns
    -------
    padded : (N, C, *P) float tensor
        ``x`` itself (not a copy) when no axis needs padding.
    region : tuple of slice
        Where ``x`` lies in ``padded``, one slice per spatial axis: ``crop_padding(y, region)``
        maps any ``(N, K, *P)`` output back to ``(N, K, *S)``.

    Raises
    ------
    ValueError
        ``multiple`` or ``min_size`` below 1.

    Examples
    --------
    >>> xp, region = pad_to_multiple(torch.ones(1, 1, 3, 4), multiple=4)
    >>> tuple(xp.shape), region
    ((1, 1, 4, 4), (slice(0, 3, None), slice(0, 4, None)))
    >>> float(xp.sum()), tuple(crop_padding(xp, region).shape)
    (12.0, (1, 1, 3, 4))
    """
    spatial = tuple(x.shape[2:])
    pads = padding(spatial, multiple=multiple, min_size=min_size)
    region = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, spatial, strict=True))
    if not any(lo or hi for lo, hi in pads):
        return x, region
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]  # F.pad wants the last axis first
    return F.pad(x, flat, mode="constant", value=0.0), region


def crop_padding(y: torch.Tensor, region: Sequence[slice]) -> torch.Tensor:
    """Crop the ``region`` of :func:`pad_to_multiple` out of ``y``: (N, K, *P) -> (N, K, *S).

    Parameters
    ----------
    y : (N, K, *P) tensor
        An output on the padded grid (e.g. logits); any number of channels ``K``.
    region : sequence of slice
        One slice per spatial axis, as :func:`pad_to_multiple` returns it.

    Returns
    -------
    (N, K, *S) tensor
        A view of ``y`` (no copy).

    Examples
    --------
    >>> xp, region = pad_to_multiple(torch.ones(1, 1, 5, 6), multiple=8)
    >>> y = crop_padding(xp, region)
    >>> tuple(y.shape), bool((y == 1).all()), y.data_ptr() == xp[:, :, 1:6, 1:7].data_ptr()
    ((1, 1, 5, 6), True, True)
    """
    return y[(slice(None), slice(None), *region)]


def input_geometry(net: nn.Module) -> tuple[int, int]:
    """Return the ``(size_multiple, min_size)`` a network states for its input sizes.

    Parameters
    ----------
    net : torch.nn.Module
        A network, with or without integer attributes ``size_multiple`` and ``min_size``.

    Returns
    -------
    (int, int)
        Every input axis must be a multiple of the first and at least the second (voxels);
        1 for an attribute the network lacks (``(1, 1)``: it is called on inputs as they
        are).

    Examples
    --------
    >>> from noisyseg.models import SegNet, UNet
    >>> input_geometry(UNet(depth=3)), input_geometry(SegNet(depth=3))
    ((8, 8), (1, 8))
    >>> input_geometry(torch.nn.Identity())
    (1, 1)
    """
    return int(getattr(net, "size_multiple", 1)), int(getattr(net, "min_size", 1))


class PadToMultiple(nn.Module):
    """Wrap a network to take inputs of any size: pad them, run it, crop its logits back.

    Inputs are padded by :func:`pad_to_multiple` and the logits cropped by
    :func:`crop_padding`.

    Inputs ``(N, C, *S)`` give logits ``(N, K, *S)``; gradients with respect to the input
    have the input's shape. Inputs that need no padding go to the network unchanged, so the
    results are those of the network itself. The wrapper adds no state: ``state_dict`` and
    ``load_state_dict`` are the network's, with the network's keys (checkpoints written
    with or without the wrapper load into either).

    Parameters
    ----------
    net : torch.nn.Module
        Maps ``(N, C, *P)`` to ``(N, K, *P)`` for every ``P`` of :func:`padded_shape`.
    multiple : int, optional
        Every padded axis is a multiple of it; default (``None``) what the network states
        (:func:`input_geometry`).
    min_size : int, optional
        Every padded axis is at least this, in voxels; default (``None``) what the network
        states.

    Attributes
    ----------
    net : torch.nn.Module
        The wrapped network.
    multiple, min_size : int
        The geometry used.

    Examples
    --------
    >>> from noisyseg.models import UNet
    >>> model = PadToMultiple(UNet(width=2, depth=2)).eval()
    >>> model.multiple, model.padding((7, 10))
    (4, ((0, 1), (1, 1)))
    >>> tuple(model(torch.zeros(1, 1, 7, 10)).shape)
    (1, 2, 7, 10)
    >>> sorted(model.state_dict()) == sorted(model.net.state_dict())  # the network's keys
    True
    """

    def __init__(self, net: nn.Module, *, multiple: int | None = None,
                 min_size: int | None = None) -> None:
        super().__init__()
        self.net = net
        stated = input_geometry(net)
        self.multiple = int(stated[0] if multiple is None else multiple)
        self.min_size = int(stated[1] if min_size is None else min_size)

    def padding(self, shape: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Return the voxels added ``(before, after)`` per axis to an input of spatial ``shape``.

        Parameters
        ----------
        shape : sequence of int
            Spatial sizes of an input, in voxels.

        Returns
        -------
        tuple of (int, int)
            As :func:`padding` with this wrapper's ``multiple`` and ``min_size``.
        """
        return padding(shape, multiple=self.multiple, min_size=self.min_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the network's logits for ``x``, at ``x``'s spatial size.

        Parameters
        ----------
        x : (N, C, *S) float tensor
            Any ``S``.

        Returns
        -------
        (N, K, *S) float tensor
            The network's output on the padded input, cropped back to ``S``.
        """
        xp, region = pad_to_multiple(x, multiple=self.multiple, min_size=self.min_size)
        out = self.net(xp)
        return out if xp is x else crop_padding(out, region)

    # the network's own state, under the network's own keys
    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "",  # type: ignore[override]
                   keep_vars: bool = False) -> dict[str, Any]:
        return self.net.state_dict(*args, destination=destination, prefix=prefix,
                                   keep_vars=keep_vars)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,  # type: ignore[override]
                        assign: bool = False) -> Any:
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}, min_size={self.min_size}"
