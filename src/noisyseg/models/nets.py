"""Segmentation networks of study A: U-Net, SegNet and FCN32 (2-D, any number of classes).

Each starts at ``width`` convolution kernels (study A: 6) that double at each
down-sampling, uses batch norm, and maps ``(N, in_channels, H, W)`` to logits
``(N, n_classes, H, W)``. H and W must be divisible by ``2**depth`` (32 for FCN32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FCN32", "SegNet", "UNet"]


def _block(cin: int, cout: int, n: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) with batch norm and ``depth`` down-samplings."""

    def __init__(self, in_channels: int = 1, n_classes: int = 2, *, width: int = 6,
                 depth: int = 4) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0])]
                                  + [_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.dec = nn.ModuleList([_block(2 * chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al., 2017): the decoder max-unpools with the encoder's indices."""

    def __init__(self, in_channels: int = 1, n_classes: int = 2, *, width: int = 6,
                 depth: int = 4) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth)]
        self.enc = nn.ModuleList([_block(in_channels if i == 0 else chans[i - 1], chans[i])
                                  for i in range(depth)])
        self.dec = nn.ModuleList([_block(chans[i], chans[i - 1] if i else chans[0])
                                  for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stack = []
        for blk in self.enc:
            x = blk(x)
            size = x.shape[-2:]
            x, idx = F.max_pool2d(x, 2, return_indices=True)
            stack.append((idx, size))
        for blk in self.dec:
            idx, size = stack.pop()
            x = blk(F.max_unpool2d(x, idx, 2, output_size=size))
        return self.head(x)


class FCN32(nn.Module):
    """FCN-32s (Long et al., 2015): VGG-style encoder, 1x1 classifier, 32x up-sampling head.

    The head is a learnable transposed convolution initialised to bilinear interpolation.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, *, width: int = 6,
                 depth: int = 5) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth)]
        self.enc = nn.ModuleList([_block(in_channels if i == 0 else chans[i - 1], chans[i],
                                         2 if i < 2 else 3) for i in range(depth)])
        self.classifier = nn.Sequential(nn.Conv2d(chans[-1], chans[-1], 1), nn.ReLU(inplace=True),
                                        nn.Conv2d(chans[-1], n_classes, 1))
        f = 2**depth
        self.up = nn.ConvTranspose2d(n_classes, n_classes, 2 * f, stride=f, padding=f // 2,
                                     bias=False)
        self.up.weight.data.copy_(_bilinear_kernel(n_classes, 2 * f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.enc:
            x = F.max_pool2d(blk(x), 2)
        return self.up(self.classifier(x))


def _bilinear_kernel(channels: int, k: int) -> torch.Tensor:
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt = 1 - torch.abs(og - center) / factor
    w = torch.zeros(channels, channels, k, k)
    for c in range(channels):
        w[c, c] = filt[:, None] * filt[None, :]
    return w
