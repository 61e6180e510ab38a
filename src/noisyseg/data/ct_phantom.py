"""``synthetic-ct``: a seeded generator of abdominal-CT-like volumes (study A's setting in miniature).

Each case is an axial stack (array order ``(z, y, x)``, anterior at the top, the patient's
right on the image's left, as a radiologist views it) with anisotropic voxels of
0.8 x 0.8 x 2.5 mm and Hounsfield-like intensities:

- air (-1000 HU) around an elliptic body with a subcutaneous fat layer (-100 HU) over
  soft tissue (40 HU), a vertebral body (400 HU) and the aorta (160 HU);
- labelled organs: 1 liver (60 HU, a large lobed shape under the right dome), 2 spleen
  (50 HU), 3 kidneys (150 HU, cortex-enhanced, both sides);
- per case: body size, organ size and position, and smooth random deformations of every
  organ surface vary; Gaussian noise of 15 HU.

Case ``i`` depends only on ``(seed, i)``: asking for more cases never changes earlier ones,
and a case is generated only when it is read (nothing is stored), so a dataset of any size
streams in bounded memory.
"""

from __future__ import annotations

import numpy as np

from noisyseg._validate import check_seed
from noisyseg.data.cases import Case, CaseDataset
from noisyseg.data.dataset import random_split
from noisyseg.data.io import Geometry
from noisyseg.errors import ConfigError

__all__ = ["CT_CLASSES", "CT_LIMITS", "CT_SPACING", "make_ct_case", "synthetic_ct"]

#: Bounds of synthetic-ct's options: ``n`` cases, ``size`` pixels per side, ``slices``,
#: voxels per case (one case is generated at a time) and voxels in all.
CT_LIMITS = {"n": (1, 100_000), "size": (16, 1024), "slices": (4, 1024), "case_voxels": 2**27,
             "voxels": 2**31}

CT_CLASSES = ("background", "liver", "spleen", "kidney")
#: Voxel size in array order (z, y, x), mm.
CT_SPACING = (2.5, 0.8, 0.8)


def _organ(label: np.ndarray, hu: np.ndarray, value: int, intensity: float,
           centre: tuple[float, float, float], radii: tuple[float, float, float],
           axes: tuple[np.ndarray, np.ndarray, np.ndarray], rng: np.random.Generator,
           bumps: float = 0.12, cut: tuple[float, float, float, float] | None = None) -> None:
    """Paint a deformed ellipsoid (normalised coordinates) into ``label`` and ``hu``."""
    zz, yy, xx = axes
    sl = []
    for c, r, ax in zip(centre, radii, axes, strict=True):
        lo, hi = np.searchsorted(ax, c - 1.5 * r), np.searchsorted(ax, c + 1.5 * r)
        sl.append(slice(int(lo), int(max(hi, lo + 1))))
    z, y, x = zz[sl[0]][:, None, None], yy[sl[1]][None, :, None], xx[sl[2]][None, None, :]
    dz, dy, dx = (z - centre[0]) / radii[0], (y - centre[1]) / radii[1], (x - centre[2]) / radii[2]
    q = dz * dz + dy * dy + dx * dx
    # smooth random surface: a few low-frequency waves over the normalised coordinates
    for _ in range(4):
        k = rng.normal(0.0, 2.0, 3)
        q = q + bumps * np.sin(k[0] * dz + k[1] * dy + k[2] * dx + rng.uniform(0, 2 * np.pi))
    inside = q < 1.0
    if cut is not None:  # a concave notch (the gallbladder fossa / hilum side)
        cy, cx, ry, rx = cut
        inside &= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 + 0 * z > 1.0
    label[sl[0], sl[1], sl[2]][inside] = value
    hu[sl[0], sl[1], sl[2]][inside] = intensity


def make_ct_case(shape: tuple[int, int, int], rng: np.random.Generator,
                 *, image: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Draw one CT-like volume and its label map.

    Parameters
    ----------
    shape : tuple of int, (D, H, W)
        Slices, rows, columns (voxels).
    rng : numpy.random.Generator
        Source of all randomness; the same generator state gives the same case.
    image : bool, default True
        Render the intensities (False returns ``None`` for them; the labels are the same).

    Returns
    -------
    image : (D, H, W) float32 ndarray (HU) or None
    label : (D, H, W) uint8 ndarray with values 0..3 (:data:`CT_CLASSES`)

    Examples
    --------
    >>> img, lab = make_ct_case((4, 16, 16), np.random.default_rng(0))
    >>> img.shape, img.dtype, lab.dtype, int(lab.max()) <= 3
    ((4, 16, 16), dtype('float32'), dtype('uint8'), True)
    """
    d, h, w = shape
    # normalised coordinates: x, y in [-1, 1] over the field of view, z in [0, 1] inferior->superior
    zz = np.linspace(0.0, 1.0, d, dtype=np.float32)
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    axes = (zz, yy, xx)
    label = np.zeros(shape, np.uint8)
    body_a, body_b = rng.uniform(0.82, 0.92), rng.uniform(0.58, 0.68)
    hu = np.full(shape, -1000.0, np.float32) if image else np.zeros((1, 1, 1), np.float32)
    ell = (yy[:, None] / body_b) ** 2 + (xx[None, :] / body_a) ** 2
    if image:
        hu[:, ell < 1.0] = -100.0
        hu[:, ell < 0.8] = 40.0
        spine = (yy[:, None] - 0.42 * body_b) ** 2 + (xx[None, :]) ** 2 < (0.11 * body_b) ** 2
        hu[:, spine] = 400.0
        aorta = (yy[:, None] - 0.18 * body_b) ** 2 + (xx[None, :] - 0.07) ** 2 < 0.045 ** 2
        hu[:, aorta] = 160.0
    scratch = hu if image else np.zeros(shape, np.float32)
    j = rng.normal(0.0, 1.0, 12)
    # kidneys, low in the volume and posterior, both labelled 3
    for side in (-1.0, 1.0):
        _organ(label, scratch, 3, 150.0,
               (0.3 + 0.04 * j[0], 0.28 * body_b / 0.63 + 0.03 * j[1], side * (0.3 + 0.03 * j[2])),
               (0.22, 0.11, 0.085), axes, rng, bumps=0.08, cut=None)
    # spleen, on the patient's left (image right), posterior-lateral, high
    _organ(label, scratch, 2, 50.0,
           (0.68 + 0.04 * j[3], 0.12 + 0.03 * j[4], 0.52 + 0.03 * j[5]),
           (0.22 * (1 + 0.1 * j[6]), 0.2, 0.12), axes, rng, bumps=0.1)
    # liver, on the patient's right (image left), anterior, high, with a notch
    cz, cy, cx = 0.66 + 0.04 * j[7], -0.1 + 0.03 * j[8], -0.38 + 0.03 * j[9]
    _organ(label, scratch, 1, 60.0, (cz, cy, cx),
           (0.33 * (1 + 0.1 * j[10]), 0.38, 0.32 * (1 + 0.08 * j[11])), axes, rng,
           bumps=0.15, cut=(cy + 0.2, cx + 0.3, 0.13, 0.11))
    outside = ell >= 0.8 * 0.97
    label[:, outside] = 0  # organs stay within the abdominal wall
    if not image:
        return None, label
    hu[:, outside & (ell < 1.0)] = -100.0  # the wall painted over by an organ's bounding box
    hu[:, ell >= 1.0] = -1000.0
    hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(15.0)
    return hu, label


def synthetic_ct(n: int = 12, size: int = 96, slices: int = 32, seed: int = 0) -> CaseDataset:
    """Generate the built-in 3-D dataset of ``n`` CT-like volumes of ``slices`` x ``size`` x ``size``.

    Cases are generated when read (see module docstring); the split is 70/15/15 (seeded).

    Parameters
    ----------
    n : int, default 12
        Number of volumes.
    size : int, default 96
        Rows and columns per slice, in voxels.
    slices : int, default 32
        Slices per volume.
    seed : int, default 0
        Seed (0 to 2**32 - 1); case ``i`` depends only on ``(seed, i)``.

    Returns
    -------
    CaseDataset
        Lazy dataset of ``n`` cases with one channel (``'CT'``, float32 HU), labels
        :data:`CT_CLASSES` and voxel spacing :data:`CT_SPACING` (mm).

    Raises
    ------
    ConfigError
        ``n``, ``size`` or ``slices`` is not an int within :data:`CT_LIMITS`; the voxels per
        case or in all exceed :data:`CT_LIMITS`; a seed outside ``0..2**32 - 1``.

    Examples
    --------
    >>> ds = synthetic_ct(n=2, size=32, slices=8, seed=0)
    >>> len(ds), ds.class_names == CT_CLASSES
    (2, True)
    """
    for name, value in (("n", n), ("size", size), ("slices", slices)):
        lo, hi = CT_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or \
                not lo <= int(value) <= hi:
            raise ConfigError(f"{name}: synthetic-ct takes {lo} to {hi}, got {value!r}")
    n, size, slices, seed = int(n), int(size), int(slices), check_seed(seed)
    if size * size * slices > CT_LIMITS["case_voxels"]:
        raise ConfigError(f"size x size x slices: synthetic-ct generates at most "
                          f"{CT_LIMITS['case_voxels']} voxels per case, got size={size}, "
                          f"slices={slices}")
    if n * size * size * slices > CT_LIMITS["voxels"]:
        raise ConfigError(f"n x size x size x slices: synthetic-ct makes at most "
                          f"{CT_LIMITS['voxels']} voxels in all, got n={n}, size={size}, "
                          f"slices={slices} ({n * size * size * slices} voxels)")
    shape = (int(slices), int(size), int(size))
    geom = Geometry.from_spacing(shape, CT_SPACING)

    def generate(i: int) -> tuple[np.ndarray, np.ndarray, Geometry]:
        img, lab = make_ct_case(shape, np.random.default_rng([seed, 11, i]))
        assert img is not None
        return img[None], lab, geom

    split = random_split(n, rng=np.random.default_rng([seed, 12]))
    cases = tuple(Case(f"ct_{i:04d}", (), None, str(s)) for i, s in enumerate(split))
    return CaseDataset(cases, CT_CLASSES, "synthetic-ct", channel_names=("CT",),
                       source=f"synthetic-ct:n={n},size={size},slices={slices},seed={seed}",
                       meta={"n": n, "size": size, "slices": slices, "seed": seed,
                             "spacing": list(CT_SPACING), "image_dtype": "int16"},
                       generator=generate)
