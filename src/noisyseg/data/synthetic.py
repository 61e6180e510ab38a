"""``synthetic-echo``: a seeded generator of apical four-chamber-like ultrasound images.

Labels follow CAMUS: 0 background, 1 LV cavity, 2 LV myocardium, 3 left atrium. The right
ventricle and right atrium are drawn in the image but labelled background, as in CAMUS.

What makes it hard (so a clean-trained U-Net lands near CAMUS's Dice, not at 0.99):

- a fan-shaped field of view with the apex at the top and near-field clutter over the apex;
- anatomy that varies per sample in size, length, tilt, position and wall thickness, with
  smooth random shape deformations;
- walls whose echo fades when they run parallel to the beam (lateral dropout), and random
  acoustic shadows (whole sectors darkened beyond some depth);
- blurred boundaries, depth attenuation, and correlated multiplicative (Rayleigh) speckle,
  followed by log compression.

Sample ``i`` depends only on ``(seed, i)``: asking for more samples never changes earlier ones.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from noisyseg._validate import check_seed
from noisyseg.data.cases import CaseDataset
from noisyseg.data.dataset import Samples, random_split
from noisyseg.errors import ConfigError

__all__ = ["ECHO_CLASSES", "ECHO_LIMITS", "make_echo_sample", "synthetic_echo",
           "synthetic_echo_masks"]

#: Bounds of synthetic-echo's options: ``n`` samples, ``size`` pixels per side, and
#: ``n * size**2`` pixels in all (the dataset is held in memory: 5 bytes per pixel).
ECHO_LIMITS = {"n": (1, 100_000), "size": (8, 2048), "pixels": 2**30}


def check_echo_options(n: object, size: object, seed: object) -> tuple[int, int, int]:
    """``(n, size, seed)`` as integers within :data:`ECHO_LIMITS`, or :class:`ConfigError`.

    >>> check_echo_options(10, 64, 0)
    (10, 64, 0)
    >>> check_echo_options(2, 10_000_000, 0)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: size: synthetic-echo takes 8 to 2048 pixels, got 10000000
    """
    out = []
    for name, value in (("n", n), ("size", size)):
        lo, hi = ECHO_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or \
                not lo <= int(value) <= hi:
            unit = " samples" if name == "n" else " pixels"
            raise ConfigError(f"{name}: synthetic-echo takes {lo} to {hi}{unit}, got {value!r}")
        out.append(int(value))
    if out[0] * out[1] ** 2 > ECHO_LIMITS["pixels"]:
        raise ConfigError(f"n x size x size: synthetic-echo holds at most {ECHO_LIMITS['pixels']} "
                          f"pixels in memory, got n={out[0]}, size={out[1]} "
                          f"({out[0] * out[1] ** 2} pixels)")
    return out[0], out[1], check_seed(seed)

ECHO_CLASSES = ("background", "lv_cavity", "lv_myocardium", "left_atrium")

_APEX = (0.02, 0.5)  # probe position (row, col) in unit coordinates


def _smooth_profile(rng: np.random.Generator, psi: np.ndarray, amp: float) -> np.ndarray:
    """A smooth random radial deformation 1 + sum_k a_k cos(k psi + phi_k)."""
    out = np.ones_like(psi)
    for k in (2, 3, 4):
        out += rng.normal(0.0, amp / k) * np.cos(k * psi + rng.uniform(0, 2 * np.pi))
    return out


def _ellipse_q(u: np.ndarray, v: np.ndarray, cu: float, a_u: float, a_v: float):
    """Normalised elliptic radius and angle around (cu, 0) in the (u, v) frame."""
    du = (u - cu) / a_u
    dv = v / a_v
    return np.hypot(du, dv), np.arctan2(dv, du)


def make_echo_sample(size: int, rng: np.random.Generator, *,
                     image: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Draw one synthetic echocardiography image and its mask.

    Parameters
    ----------
    size : int
        Image height and width in pixels (not validated here; see :func:`check_echo_options`).
    rng : numpy.random.Generator
        Source of all randomness; the same generator state gives the same sample.
    image : bool, default True
        Render the image (False returns ``None`` for it, about 20x faster; the mask is the
        same either way because the anatomy is drawn first).

    Returns
    -------
    image : (size, size) float32 ndarray in [0, 1], or None
    mask : (size, size) uint8 ndarray with labels 0..3

    Examples
    --------
    >>> img, mask = make_echo_sample(32, np.random.default_rng(0))
    >>> img.shape, img.dtype, mask.dtype, int(mask.max()) <= 3
    ((32, 32), dtype('float32'), dtype('uint8'), True)
    >>> make_echo_sample(32, np.random.default_rng(0), image=False)[0] is None
    True
    """
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    Y, X = (yy + 0.5) / s, (xx + 0.5) / s

    # --- field of view ---------------------------------------------------------------
    dy, dx = Y - _APEX[0], X - _APEX[1]
    r = np.hypot(dy, dx)
    phi = np.arctan2(dx, dy)  # 0 along the beam axis (straight down)
    half_angle = rng.uniform(0.58, 0.68)
    depth = rng.uniform(0.9, 0.97)
    fan = (r < depth) & (np.abs(phi) < half_angle)

    # --- anatomy in an LV-aligned frame (u along the long axis, v across) -----------
    tilt = rng.normal(0.0, 0.10)
    apex = np.array([rng.uniform(0.10, 0.16), 0.5 + rng.normal(0.04, 0.02)])
    length = rng.uniform(0.38, 0.50)
    width = rng.uniform(0.095, 0.135)
    t_side = rng.uniform(0.028, 0.050)  # wall thickness
    t_apex = t_side * rng.uniform(0.8, 1.3)
    axis = np.array([np.cos(tilt), np.sin(tilt)])  # (row, col) direction apex -> base
    perp = np.array([-axis[1], axis[0]])
    ry, rx = Y - apex[0], X - apex[1]
    u = ry * axis[0] + rx * axis[1]
    v = ry * perp[0] + rx * perp[1]

    q_cav, psi_cav = _ellipse_q(u, v, length, length, width)
    cavity = (q_cav < _smooth_profile(rng, psi_cav, 0.06)) & (u <= length)
    q_out, psi_out = _ellipse_q(u, v, length, length + t_apex, width + t_side)
    outer = (q_out < _smooth_profile(rng, psi_out, 0.04)) & (u <= length + 0.2 * t_side)
    myo = outer & ~cavity

    la_h = rng.uniform(0.10, 0.16)
    la_w = width * rng.uniform(0.8, 1.1)
    la_c = length + 0.65 * la_h
    q_la, psi_la = _ellipse_q(u, v - rng.normal(0, 0.01), la_c, la_h, la_w)
    atrium = (q_la < _smooth_profile(rng, psi_la, 0.07)) & (u > length) & ~outer

    # right heart, visible but labelled background (RV on the image's left, i.e. v < 0 side
    # when the LV tilts little)
    gap = t_side
    rv_w = width * rng.uniform(0.7, 1.0)
    rv_len = length * rng.uniform(0.7, 0.9)
    rv_off = width + t_side + gap + rv_w
    side = -1.0 if perp[1] > 0 else 1.0
    q_rv, psi_rv = _ellipse_q(u, v - side * rv_off, length, rv_len, rv_w)
    rv = (q_rv < _smooth_profile(rng, psi_rv, 0.06)) & (u <= length) & ~outer
    rv_wall = (_ellipse_q(u, v - side * rv_off, length, rv_len + 0.6 * t_side,
                          rv_w + 0.6 * t_side)[0] < 1.0) & (u <= length) & ~rv & ~outer
    ra_h = la_h * rng.uniform(0.8, 1.1)
    q_ra, _ = _ellipse_q(u, v - side * rv_off * 0.95, length + 0.7 * ra_h, ra_h, rv_w * 0.9)
    ra = (q_ra < 1.0) & (u > length) & ~atrium & ~outer

    mask = np.zeros((size, size), dtype=np.uint8)
    mask[myo] = 2
    mask[cavity] = 1
    mask[atrium] = 3
    mask[~fan] = 0
    if not image:
        return None, mask

    # --- echogenicity -----------------------------------------------------------------
    blood = cavity | atrium | rv | ra
    walls = myo | rv_wall
    tissue = ndi.gaussian_filter(rng.normal(0.0, 1.0, (size, size)), sigma=0.04 * s)
    tissue = 0.20 + 0.06 * tissue / (tissue.std() + 1e-6)
    echo = tissue.astype(np.float32)
    heart = ndi.gaussian_filter((outer | rv_wall | rv | atrium | ra).astype(np.float32),
                                sigma=0.03 * s)
    peri = np.clip(1.0 - np.abs(heart - 0.25) / 0.12, 0, 1) * rng.uniform(0.15, 0.45)
    echo = echo + peri
    wall_level = rng.uniform(0.55, 0.85)
    echo = np.where(walls, wall_level * (0.85 + 0.75 * (tissue - 0.2)), echo)
    echo = np.where(blood, rng.uniform(0.02, 0.08), echo)

    # specular reflection: walls parallel to the beam return little echo (lateral dropout)
    gy, gx = np.gradient(ndi.gaussian_filter(walls.astype(np.float32), sigma=0.02 * s))
    gnorm = np.hypot(gy, gx) + 1e-6
    cos_inc = np.abs(gy * dy + gx * dx) / (gnorm * (r + 1e-6))
    spec = rng.uniform(0.25, 0.6)
    echo = np.where(walls, echo * (spec + (1 - spec) * cos_inc), echo)

    echo = ndi.gaussian_filter(echo, sigma=max(0.5, 0.009 * s))  # blurred boundaries

    # acoustic shadows: sectors darkened beyond some depth
    for _ in range(rng.integers(0, 3)):
        phi0 = rng.uniform(-half_angle, half_angle)
        w = rng.uniform(0.04, 0.12)
        onset = rng.uniform(0.2, 0.6)
        d = rng.uniform(0.4, 0.85)
        shade = np.exp(-0.5 * ((phi - phi0) / w) ** 2) * np.clip((r - onset) / 0.05, 0, 1)
        echo = echo * (1 - d * shade)

    # near-field clutter over the apex and depth attenuation
    echo = echo + rng.uniform(0.1, 0.4) * np.exp(-r / rng.uniform(0.06, 0.12))
    echo = echo * np.exp(-rng.uniform(0.3, 1.2) * r)

    # correlated Rayleigh speckle (axial correlation shorter than lateral)
    re = ndi.gaussian_filter(rng.normal(size=(size, size)), sigma=(0.45, 0.9))
    im = ndi.gaussian_filter(rng.normal(size=(size, size)), sigma=(0.45, 0.9))
    speckle = np.hypot(re, im)
    speckle /= speckle.mean() + 1e-8
    img = echo * speckle + rng.normal(0, 0.01, (size, size))
    img = np.log1p(20.0 * np.clip(img, 0, None)) / np.log1p(20.0)
    img *= rng.uniform(0.8, 1.1)
    img = np.where(fan, np.clip(img, 0, 1), 0.0)
    return img.astype(np.float32), mask


def synthetic_echo_masks(*, n: int = 500, size: int = 128, seed: int = 0) -> np.ndarray:
    """Generate only the masks of :func:`synthetic_echo` (same seed, same masks), fast.

    Parameters
    ----------
    n : int, default 500
        Number of masks.
    size : int, default 128
        Mask height and width in pixels.
    seed : int, default 0
        Seed (0 to 2**32 - 1); mask ``i`` depends only on ``(seed, i)``.

    Returns
    -------
    (n, size, size) uint8 ndarray
        Labels :data:`ECHO_CLASSES` (0..3).

    Raises
    ------
    ConfigError
        ``n``, ``size`` or ``n * size**2`` outside :data:`ECHO_LIMITS`, or an invalid seed.

    Examples
    --------
    >>> masks = synthetic_echo_masks(n=4, size=32, seed=0)
    >>> masks.shape, masks.dtype
    ((4, 32, 32), dtype('uint8'))
    >>> bool((masks == synthetic_echo(n=4, size=32, seed=0).masks).all())
    True
    """
    n, size, seed = check_echo_options(n, size, seed)
    children = np.random.SeedSequence([int(seed), 0x5EC0]).spawn(int(n))
    return np.stack([make_echo_sample(size, np.random.default_rng(c), image=False)[1]
                     for c in children])


def synthetic_echo(*, n: int = 500, size: int = 128, seed: int = 0) -> CaseDataset:
    """Generate the embedded ``synthetic-echo`` dataset.

    Parameters
    ----------
    n : int
        Number of samples (split 70/15/15 into train/val/test at random, seeded).
    size : int
        Image height and width in pixels.
    seed : int
        Seed (0 to 2**32 - 1); sample ``i`` depends only on ``(seed, i)``.

    Returns
    -------
    CaseDataset
        Images (n, size, size) float32 in [0, 1]; masks with labels :data:`ECHO_CLASSES`.

    Raises
    ------
    ConfigError
        ``n``, ``size`` or ``n * size**2`` outside :data:`ECHO_LIMITS`, a negative seed.

    Examples
    --------
    >>> ds = synthetic_echo(n=6, size=32, seed=1)
    >>> ds.images.shape, ds.class_names[1]
    ((6, 32, 32), 'lv_cavity')
    """
    n, size, seed = check_echo_options(n, size, seed)
    children = np.random.SeedSequence([int(seed), 0x5EC0]).spawn(int(n))
    images = np.empty((n, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=np.uint8)
    for i, child in enumerate(children):
        images[i], masks[i] = make_echo_sample(size, np.random.default_rng(child))
    split = random_split(n, rng=np.random.default_rng([int(seed), 0x5717]))
    ids = tuple(f"echo{i:05d}" for i in range(n))
    return CaseDataset.from_samples(Samples(
        images=images, masks=masks, class_names=ECHO_CLASSES, sample_ids=ids, split=split,
        source=f"synthetic-echo:n={n},size={size},seed={seed}",
        meta={"generator": "synthetic-echo", "n": n, "size": size, "seed": seed}))
