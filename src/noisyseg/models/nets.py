"""Segmentation networks of study A: U-Net, SegNet and FCN32 (2-D or 3-D, any number of classes).

Each starts at ``width`` convolution kernels (study A: 6) that double at each
down-sampling, uses batch norm, and maps ``(N, in_channels, *S)`` to logits
``(N, n_classes, *S)`` where ``S`` has ``spatial_dims`` axes (2: ``H, W``; 3: ``D, H, W``,
the same layers in 3-D, as nnU-Net's ``3d_fullres`` is its ``2d`` network in 3-D).

Each states the input sizes it can process in two attributes, ``size_multiple`` and
``min_size`` (voxels per axis): U-Net and FCN32 every axis a multiple of ``2**depth`` (32 for
FCN32), SegNet any size of at least ``2**depth``. The trainer calls them through
:class:`~noisyseg.models.PadToMultiple`, which pads other sizes and crops the logits back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FCN32", "SegNet", "UNet"]


def _layers(spatial_dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    """Convolution, batch norm and transposed convolution for 2-D or 3-D inputs."""
    if spatial_dims not in (2, 3):
        raise TypeError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return ((nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d) if spatial_dims == 2
            else (nn.Conv3d, nn.BatchNorm3d, nn.ConvTranspose3d))


def _block(cin: int, cout: int, n: int = 2, spatial_dims: int = 2) -> nn.Sequential:
    conv, norm, _ = _layers(spatial_dims)
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [conv(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
                   norm(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _pool(x: torch.Tensor, **kw):  # type: ignore[no-untyped-def]
    return (F.max_pool2d if x.ndim == 4 else F.max_pool3d)(x, 2, **kw)


class UNet(nn.Module):
    """Segment with a U-Net (Ronneberger et al., 2015): batch norm, ``depth`` down-samplings.

    Two 3 x 3 convolutions (batch norm, ReLU) per level; 2 x 2 max-pooling down,
    transposed convolutions up, skip connections concatenated; a 1 x 1 convolution head.
    Maps ``(N, in_channels, *S)`` to logits ``(N, n_classes, *S)``.

    Parameters
    ----------
    in_channels : int, default 1
        Input channels (image modalities).
    n_classes : int, default 2
        Output channels: one logit per class, background included.
    width : int, default 6
        Convolution kernels of the first level (study A: 6); they double at each level.
    depth : int, default 4
        Down-samplings (max-pooling by 2); every input axis must be a multiple of
        ``2**depth`` voxels.
    spatial_dims : {2, 3}, default 2
        2 for ``(N, C, H, W)`` images, 3 for ``(N, C, D, H, W)`` volumes.

    Attributes
    ----------
    down, up, dec : torch.nn.ModuleList
        Encoder blocks, transposed convolutions and decoder blocks.
    head : torch.nn.Module
        The 1 x 1 convolution giving the logits.
    size_multiple, min_size : int
        ``2**depth``: every input axis must be a multiple of it (voxels).

    Raises
    ------
    TypeError
        ``spatial_dims`` is not 2 or 3.

    Examples
    --------
    >>> net = UNet(n_classes=3, width=2, depth=2).eval()
    >>> tuple(net(torch.zeros(1, 1, 16, 16)).shape), net.size_multiple
    ((1, 3, 16, 16), 4)
    >>> net3d = UNet(width=2, depth=1, spatial_dims=3).eval()
    >>> tuple(net3d(torch.zeros(1, 1, 4, 8, 8)).shape)
    (1, 2, 4, 8, 8)
    >>> UNet(spatial_dims=1)
    Traceback (most recent call last):
    ...
    TypeError: spatial_dims must be 2 or 3, got 1
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, *, width: int = 6,
                 depth: int = 4, spatial_dims: int = 2) -> None:
        super().__init__()
        conv, _, upconv = _layers(spatial_dims)
        d = spatial_dims
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0], spatial_dims=d)]
                                  + [_block(chans[i], chans[i + 1], spatial_dims=d)
                                     for i in range(depth)])
        self.up = nn.ModuleList([upconv(chans[i + 1], chans[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.dec = nn.ModuleList([_block(2 * chans[i], chans[i], spatial_dims=d)
                                  for i in reversed(range(depth))])
        self.head = conv(chans[0], n_classes, 1)
        #: Every input axis must be a multiple of this, and at least ``min_size`` (voxels).
        self.size_multiple = self.min_size = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``x``.

        Parameters
        ----------
        x : (N, in_channels, *S) float tensor
            Every axis of ``S`` a multiple of :attr:`size_multiple` voxels.

        Returns
        -------
        (N, n_classes, *S) float tensor
            Unnormalised class scores.
        """
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else _pool(x))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


class SegNet(nn.Module):
    """Segment with a SegNet (Badrinarayanan et al., 2017): unpool with the encoder's indices.

    ``depth`` encoder blocks (two 3 x 3 convolutions, batch norm, ReLU, then 2 x 2
    max-pooling) mirrored by decoder blocks that max-unpool with the pooling indices; a
    1 x 1 convolution head. Maps ``(N, in_channels, *S)`` to logits ``(N, n_classes, *S)``
    for any ``S`` of at least ``2**depth`` voxels per axis (odd sizes included).

    Parameters
    ----------
    in_channels : int, default 1
        Input channels (image modalities).
    n_classes : int, default 2
        Output channels: one logit per class, background included.
    width : int, default 6
        Convolution kernels of the first level (study A: 6); they double at each level.
    depth : int, default 4
        Down-samplings (max-pooling by 2); every input axis must be at least
        ``2**depth`` voxels.
    spatial_dims : {2, 3}, default 2
        2 for ``(N, C, H, W)`` images, 3 for ``(N, C, D, H, W)`` volumes.

    Attributes
    ----------
    enc, dec : torch.nn.ModuleList
        Encoder and decoder blocks.
    head : torch.nn.Module
        The 1 x 1 convolution giving the logits.
    size_multiple : int
        1: any size.
    min_size : int
        ``2**depth`` voxels per axis.

    Raises
    ------
    TypeError
        ``spatial_dims`` is not 2 or 3.

    Examples
    --------
    >>> net = SegNet(width=2, depth=2).eval()
    >>> tuple(net(torch.zeros(1, 1, 16, 16)).shape)
    (1, 2, 16, 16)
    >>> tuple(net(torch.zeros(1, 1, 17, 13)).shape), (net.size_multiple, net.min_size)
    ((1, 2, 17, 13), (1, 4))
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, *, width: int = 6,
                 depth: int = 4, spatial_dims: int = 2) -> None:
        super().__init__()
        conv, _, _ = _layers(spatial_dims)
        d = spatial_dims
        chans = [width * 2**i for i in range(depth)]
        self.enc = nn.ModuleList([_block(in_channels if i == 0 else chans[i - 1], chans[i],
                                         spatial_dims=d) for i in range(depth)])
        self.dec = nn.ModuleList([_block(chans[i], chans[i - 1] if i else chans[0], spatial_dims=d)
                                  for i in reversed(range(depth))])
        self.head = conv(chans[0], n_classes, 1)
        #: Any size (max-unpooling restores odd sizes), at least ``min_size`` voxels per axis.
        self.size_multiple, self.min_size = 1, 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``x``.

        Parameters
        ----------
        x : (N, in_channels, *S) float tensor
            Every axis of ``S`` at least :attr:`min_size` voxels.

        Returns
        -------
        (N, n_classes, *S) float tensor
            Unnormalised class scores.
        """
        stack = []
        unpool = F.max_unpool2d if x.ndim == 4 else F.max_unpool3d
        for blk in self.enc:
            x = blk(x)
            size = x.shape[2:]
            x, idx = _pool(x, return_indices=True)
            stack.append((idx, size))
        for blk in self.dec:
            idx, size = stack.pop()
            x = blk(unpool(x, idx, 2, output_size=size))
        return self.head(x)


class FCN32(nn.Module):
    """Segment with an FCN-32s (Long et al., 2015): VGG-style encoder, 32x up-sampling head.

    ``depth`` VGG-style blocks (two 3 x 3 convolutions in the first two, three after; batch
    norm, ReLU), each followed by 2 x 2 max-pooling; a 1 x 1 convolution classifier; and a
    head up-sampling by ``2**depth`` (32 at the default depth), a learnable transposed
    convolution initialised to bilinear interpolation. Maps ``(N, in_channels, *S)`` to
    logits ``(N, n_classes, *S)``.

    Parameters
    ----------
    in_channels : int, default 1
        Input channels (image modalities).
    n_classes : int, default 2
        Output channels: one logit per class, background included.
    width : int, default 6
        Convolution kernels of the first level (study A: 6); they double at each level.
    depth : int, default 5
        Down-samplings (max-pooling by 2); every input axis must be a multiple of
        ``2**depth`` voxels (32 by default).
    spatial_dims : {2, 3}, default 2
        2 for ``(N, C, H, W)`` images, 3 for ``(N, C, D, H, W)`` volumes.

    Attributes
    ----------
    enc : torch.nn.ModuleList
        Encoder blocks.
    classifier : torch.nn.Sequential
        The 1 x 1 convolutions giving the coarse logits.
    up : torch.nn.Module
        The transposed convolution up-sampling them by ``2**depth``.
    size_multiple, min_size : int
        ``2**depth``: every input axis must be a multiple of it (voxels).

    Raises
    ------
    TypeError
        ``spatial_dims`` is not 2 or 3.

    Examples
    --------
    >>> net = FCN32(width=2, depth=4).eval()
    >>> tuple(net(torch.zeros(1, 1, 16, 16)).shape), net.size_multiple
    ((1, 2, 16, 16), 16)
    >>> FCN32().size_multiple  # the default depth 5: 32
    32
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, *, width: int = 6,
                 depth: int = 5, spatial_dims: int = 2) -> None:
        super().__init__()
        conv, _, upconv = _layers(spatial_dims)
        chans = [width * 2**i for i in range(depth)]
        self.enc = nn.ModuleList([_block(in_channels if i == 0 else chans[i - 1], chans[i],
                                         2 if i < 2 else 3, spatial_dims=spatial_dims)
                                  for i in range(depth)])
        self.classifier = nn.Sequential(conv(chans[-1], chans[-1], 1), nn.ReLU(inplace=True),
                                        conv(chans[-1], n_classes, 1))
        f = 2**depth
        self.up = upconv(n_classes, n_classes, 2 * f, stride=f, padding=f // 2, bias=False)
        self.up.weight.data.copy_(_bilinear_kernel(n_classes, 2 * f, spatial_dims))
        #: Every input axis must be a multiple of this, and at least ``min_size`` (voxels).
        self.size_multiple = self.min_size = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``x``.

        Parameters
        ----------
        x : (N, in_channels, *S) float tensor
            Every axis of ``S`` a multiple of :attr:`size_multiple` voxels.

        Returns
        -------
        (N, n_classes, *S) float tensor
            Unnormalised class scores.
        """
        for blk in self.enc:
            x = _pool(blk(x))
        return self.up(self.classifier(x))


def _bilinear_kernel(channels: int, k: int, spatial_dims: int = 2) -> torch.Tensor:
    """A transposed-convolution kernel that up-samples each channel (bi- or trilinearly)."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt = 1 - torch.abs(og - center) / factor
    kern = filt[:, None] * filt[None, :]
    if spatial_dims == 3:
        kern = kern[:, :, None] * filt[None, None, :]
    w = torch.zeros(channels, channels, *kern.shape)
    for c in range(channels):
        w[c, c] = kern
    return w
