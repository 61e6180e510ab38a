"""Resizing images (bilinear, anti-aliased) and masks (nearest neighbour) to a square size."""

from __future__ import annotations

import numpy as np
from skimage.transform import resize

__all__ = ["resize_image", "resize_mask", "restore_mask"]


def resize_image(image: np.ndarray, size: int | None) -> np.ndarray:
    """``image`` as float32, resized to size x size unless ``size`` is None or already met."""
    img = np.asarray(image, dtype=np.float32)
    if size is None or img.shape == (size, size):
        return img
    return resize(img, (size, size), order=1, anti_aliasing=True,
                  preserve_range=True).astype(np.float32)


def resize_mask(mask: np.ndarray, size: int | None) -> np.ndarray:
    """``mask`` as uint8, resized with nearest-neighbour so no new labels appear."""
    m = np.asarray(mask).astype(np.uint8)
    if size is None or m.shape == (size, size):
        return m
    return resize(m, (size, size), order=0, anti_aliasing=False,
                  preserve_range=True).astype(np.uint8)


def restore_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` put back on a grid of ``shape`` (nearest neighbour): undoes :func:`resize_mask`."""
    m = np.asarray(mask)
    if m.shape == tuple(shape):
        return m
    return resize(m, shape, order=0, anti_aliasing=False, preserve_range=True).astype(m.dtype)
