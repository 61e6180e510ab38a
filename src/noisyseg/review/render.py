"""Render one plane of a case as PNG layers the browser stacks: the windowed image, the given
mask, the pseudo-label and their difference (fills or outlines, transparent elsewhere).

Planes follow :func:`~noisyseg.report.plot_volume_planes`: for arrays ordered (z, y, x),
plane 0 is axial (``a[k]``), plane 1 coronal and plane 2 sagittal, both with the head up;
a 2-D case has plane 0 only.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from noisyseg.plot import CLASS_COLOURS

__all__ = ["LAYERS", "auto_window", "cut", "encode_png", "label_layer", "plane_shape", "render", "zoom"]

#: The layers :func:`render` draws.
LAYERS = ("image", "given", "pseudo", "diff")
_DIFF = (255, 0, 255)  # magenta: where the given mask and the pseudo-label disagree
_PALETTE = np.zeros((256, 4), dtype=np.uint8)
for _k in range(1, 256):
    _h = CLASS_COLOURS[(_k - 1) % len(CLASS_COLOURS)].lstrip("#")
    _PALETTE[_k] = (int(_h[0:2], 16), int(_h[2:4], 16), int(_h[4:6], 16), 255)


def cut(a: np.ndarray, plane: int, index: int) -> np.ndarray:
    """Plane ``plane`` of ``a`` at ``index`` (2-D arrays: the array itself)."""
    if a.ndim == 2:
        return a
    if plane == 0:
        return a[index]
    if plane == 1:
        return a[:, index][::-1]
    return a[:, :, index][::-1]


def plane_shape(shape: tuple[int, ...], plane: int) -> tuple[int, int]:
    """(rows, columns) of plane ``plane`` of an array of ``shape``."""
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    z, y, x = shape
    return ((y, x), (z, x), (z, y))[plane]


def auto_window(image: np.ndarray) -> tuple[float, float]:
    """(low, high) display range: the 1st and 99th percentiles (on a subsample of big volumes)."""
    flat = image.reshape(-1)
    if flat.size > 400_000:
        flat = flat[:: flat.size // 200_000]
    lo, hi = np.percentile(flat, [1, 99])
    if hi <= lo:
        lo, hi = float(flat.min()), float(flat.max()) + 1e-6
    return float(lo), float(hi)


def encode_png(arr: np.ndarray) -> bytes:
    """``arr`` (H, W) uint8 grey or (H, W, 4) RGBA as PNG bytes (fast compression)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _outline(lab: np.ndarray) -> np.ndarray:
    """Pixels of a label whose 4-neighbourhood holds another label (the inner boundary)."""
    edge = np.zeros(lab.shape, dtype=bool)
    edge[1:] |= lab[1:] != lab[:-1]
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return edge & (lab > 0)


def label_layer(lab: np.ndarray, *, style: str = "outline", dashed: bool = False) -> np.ndarray:
    """RGBA (H, W, 4) of a label map in the class colours: filled, or its outline (dashed:
    every other pair of pixels along the outline, to tell a second mask apart)."""
    rgba = _PALETTE[lab.astype(np.uint8, copy=False)]
    if style == "outline":
        keep = _outline(lab)
        if dashed:
            yy, xx = np.indices(lab.shape)
            keep &= ((yy + xx) // 2) % 2 == 0
        rgba = np.where(keep[..., None], rgba, 0).astype(np.uint8)
    return np.ascontiguousarray(rgba)


def diff_layer(given: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """RGBA (H, W, 4): magenta where the two label maps differ."""
    out = np.zeros((*given.shape, 4), dtype=np.uint8)
    out[given != pseudo] = (*_DIFF, 255)
    return out


def render(layer: str, *, image: np.ndarray, given: np.ndarray, pseudo: np.ndarray, plane: int,
           index: int, style: str = "outline", window: tuple[float, float] | None = None) -> bytes:
    """One layer of one plane as PNG bytes (see module docstring)."""
    if layer == "image":
        lo, hi = window or auto_window(image)
        sl = cut(image, plane, index).astype(np.float32)
        grey = np.clip((sl - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
        return encode_png(np.ascontiguousarray(grey))
    if layer == "diff":
        return encode_png(diff_layer(cut(given, plane, index), cut(pseudo, plane, index)))
    lab = cut(given if layer == "given" else pseudo, plane, index)
    z = zoom(lab.shape)
    if z > 1:  # small planes: outlines a fraction of a voxel wide, the browser scales it back
        lab = np.repeat(np.repeat(lab, z, axis=0), z, axis=1)
    return encode_png(label_layer(np.ascontiguousarray(lab), style=style, dashed=layer == "pseudo"))


def zoom(shape: tuple[int, ...], *, target: int = 384) -> int:
    """Integer upsampling of a label plane of ``shape`` so its larger side reaches about
    ``target`` pixels (1 for planes that big already, at most 8).

    >>> zoom((32, 32)), zoom((512, 512))
    (8, 1)
    """
    return int(max(1, min(8, target // max(int(max(shape)), 1))))
