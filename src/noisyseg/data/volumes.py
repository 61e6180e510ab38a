"""Volumes as one in-memory 3-D dataset (what a 3-D network trains on), and the way back.

nnU-Net's ``3d_fullres`` configuration trains a 3-D network on patches of the volumes,
resampled to one voxel spacing. :func:`volume_dataset` reads the cases of a
:class:`~noisyseg.data.CaseDataset` one at a time, optionally resamples each to a common
``spacing`` (MONAI's ``Resize``: images trilinearly, masks by nearest neighbour), and pads
them to one grid (a multiple of 16 voxels per axis, so a U-Net of depth 4 fits), giving a
:class:`~noisyseg.data.Samples` of ``(N, D, H, W)`` volumes. Every stage that works on a
Samples (the trainer, the detectors, the refurbisher) then works on them unchanged. The
:class:`VolumeIndex` it returns undoes both steps: :meth:`VolumeIndex.volume` crops the padding
and resamples a label volume back to the case's own grid (one-hot, trilinearly, then argmax,
as nnU-Net resamples segmentations), so masks written from it overlay their images.

Axes are array axes, ``(z, y, x)`` for a volume read by :func:`~noisyseg.data.read_image`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from noisyseg.data.cases import CaseDataset
from noisyseg.data.dataset import Samples
from noisyseg.data.io import Geometry
from noisyseg.errors import ConfigError, DataError

__all__ = ["VolumeIndex", "resampled_shape", "restore_labels", "restore_map", "volume_dataset"]

log = logging.getLogger(__name__)

#: Every axis of the common grid is a multiple of this (a depth-4 U-Net halves it 4 times).
GRID_MULTIPLE = 16


def resampled_shape(shape: Sequence[int], spacing: Sequence[float],
                    target: Sequence[float] | None) -> tuple[int, ...]:
    """The shape of a ``shape`` grid of ``spacing`` mm voxels resampled to ``target`` mm
    (the same physical extent, rounded to whole voxels, at least 1).

    >>> resampled_shape((10, 100, 100), (5.0, 0.8, 0.8), (2.5, 1.6, 1.6))
    (20, 50, 50)
    """
    if target is None:
        return tuple(int(v) for v in shape)
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target, strict=True))


def _resize(array: np.ndarray, shape: tuple[int, ...], mode: str) -> np.ndarray:
    """``(C, *S)`` array resized to ``shape`` with MONAI's ``Resize`` (no anti-aliasing, so
    down- and up-sampling use the same interpolation)."""
    from monai.transforms import Resize

    if tuple(array.shape[1:]) == tuple(shape):
        return array
    out = Resize(spatial_size=shape, mode=mode, anti_aliasing=False)(torch.as_tensor(array))
    return np.asarray(out)


def restore_labels(labels: np.ndarray, shape: Sequence[int], n_classes: int) -> np.ndarray:
    """A label volume put on a grid of ``shape``: each class's indicator is interpolated
    (trilinearly) and the most likely class taken, as nnU-Net resamples segmentations back
    (nearest-neighbour would turn a coarse grid's voxels into blocks)."""
    lab = np.asarray(labels)
    if lab.shape == tuple(shape):
        return lab.astype(np.uint8, copy=False)
    onehot = np.stack([(lab == c) for c in range(n_classes)]).astype(np.float32)
    return _resize(onehot, tuple(shape), "trilinear").argmax(0).astype(np.uint8)


def restore_map(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A float map (per-voxel scores) put on a grid of ``shape``, trilinearly."""
    v = np.asarray(values, dtype=np.float32)
    return v if v.shape == tuple(shape) else _resize(v[None], tuple(shape), "trilinear")[0]


@dataclass(frozen=True, eq=False)
class VolumeIndex:
    """Where each sample of a volume dataset comes from, and how to go back to it.

    Sample ``i`` is case ``i``. Its arrays are the case resampled to ``spacing_mm`` (when set)
    to ``resampled[i]`` voxels, then zero-padded at the far end of each axis to the common
    ``grid``. Built by :func:`volume_dataset`; the constructor's parameters are the
    attributes below.

    Attributes
    ----------
    cases : CaseDataset
        The volumes.
    axis : int
        The axis the per-slice scores and figures go along (0: axial for ``(z, y, x)``).
    shapes : tuple of tuple of int
        Each case's own grid.
    resampled : tuple of tuple of int
        Each case's grid after resampling (equal to ``shapes`` without ``spacing_mm``).
    grid : tuple of int
        The common grid of the dataset's arrays.
    geometry : tuple of Geometry
        Each case's label geometry.
    spacing_mm : tuple of float or None
        The common voxel spacing the cases were resampled to.

    Examples
    --------
    >>> from noisyseg.data import synthetic_ct
    >>> samples, index = volume_dataset(synthetic_ct(n=2, size=32, slices=8, seed=0))
    >>> index.case.tolist(), index.grid, index.spacing(0)
    ([0, 1], (16, 32, 32), (2.5, 0.8, 0.8))
    """

    cases: CaseDataset
    axis: int
    shapes: tuple[tuple[int, ...], ...]
    resampled: tuple[tuple[int, ...], ...]
    grid: tuple[int, ...]
    geometry: tuple[Geometry, ...]
    spacing_mm: tuple[float, ...] | None = None

    sampling = "volumes"
    dims = 3
    size = None  # no in-plane slice resizing (the slice index's ``size``)

    @property
    def case(self) -> np.ndarray:
        """Case index of each sample (the sample's own index)."""
        return np.arange(len(self.shapes))

    def slices_of(self, i: int) -> np.ndarray:
        """Sample indices of case ``i`` (just ``[i]``)."""
        return np.array([i])

    def spacing(self, i: int) -> tuple[float, ...]:
        """Voxel size of case ``i`` in mm (its own grid, where metrics are measured)."""
        return tuple(self.geometry[i].spacing)

    def sample_spacing(self, i: int) -> tuple[float, ...]:
        """Voxel size in mm of sample ``i``'s arrays: the common spacing when the cases were
        resampled, else case ``i``'s own (padding does not change it)."""
        return tuple(self.spacing_mm) if self.spacing_mm is not None else self.spacing(i)

    def crop(self, i: int, array: np.ndarray) -> np.ndarray:
        """Sample ``i``'s array on the common grid without its padding (the resampled case)."""
        return np.asarray(array)[tuple(slice(0, n) for n in self.resampled[i])]

    def volume(self, i: int, masks: np.ndarray) -> np.ndarray:
        """Case ``i``'s label volume from its sample's mask (``(1, *grid)`` or ``grid``):
        padding cropped, resampled back to the case's own grid."""
        m = np.asarray(masks)
        m = m[0] if m.ndim == len(self.grid) + 1 else m
        if m.shape != self.grid:
            raise DataError(f"case {self.cases.sample_ids[i]}: a {m.shape} mask is not on the "
                            f"dataset's {self.grid} grid")
        return restore_labels(self.crop(i, m), self.shapes[i], self.cases.n_classes)

    def volume_from(self, i: int, samples: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Case ``i``'s volume from ``masks`` given for the samples ``samples`` (which hold
        sample ``i``)."""
        row = int(np.flatnonzero(np.asarray(samples) == i)[0])
        return self.volume(i, masks[row])

    def slice_means(self, i: int, values: np.ndarray) -> np.ndarray:
        """Per-voxel values of sample ``i`` (on the grid) averaged over each slice of the case
        along :attr:`axis` (its own grid, so slice numbers are the source file's)."""
        v = restore_map(self.crop(i, values), self.shapes[i])
        return v.mean(axis=tuple(a for a in range(v.ndim) if a != self.axis))


def _trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc ``malloc_trim``; a no-op elsewhere).

    Reading and resampling a case leaves tens of MB of freed temporaries in glibc's arenas
    (its mmap threshold rises after the first large free, so later large buffers come from
    the heap and fragment it); across 200 CT volumes that was ~1.5 GB of RSS holding nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim():  # type: ignore[no-untyped-def]
    """glibc's ``malloc_trim``, or None where there is none."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def check_volume_source(cases: CaseDataset, slice_axis: int, what: str) -> int:
    """Refuse multi-channel data and a bad ``slice_axis`` (naming it) for ``what`` (e.g.
    ``'3-D training'``); returns the axis in 0..2."""
    if cases.n_channels != 1:
        raise ConfigError(f"data: {what} takes one image channel; {cases.source} has "
                          f"{cases.n_channels} ({', '.join(cases.channel_names)})")
    if not isinstance(slice_axis, int) or not -3 <= slice_axis < 3:
        raise ConfigError(f"slice_axis: expected 0, 1 or 2 (an array axis of the volumes), got "
                          f"{slice_axis!r}")
    return slice_axis % 3


def read_volume(cases: CaseDataset, i: int, what: str) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Case ``i``'s image ``(1, D, H, W)``, label volume and label geometry, refusing cases
    that are not volumes (for ``what``) or whose image and label grids differ."""
    img, _ = cases.read_image(i)
    lab, geom = cases.read_label(i)
    if lab.ndim != 3:
        raise ConfigError(f"data: {what} needs volumes; case {cases.sample_ids[i]} has "
                          f"{lab.ndim} spatial dimensions")
    if img.shape[1:] != lab.shape:
        raise DataError(f"{cases.cases[i].label}: label shape {lab.shape} differs from the "
                        f"image's {img.shape[1:]}")
    return img, lab, geom


def _target_spacing(cases: CaseDataset, spacing: str | Sequence[float] | None,
                    geoms: list[Geometry]) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    if isinstance(spacing, str):
        if spacing != "median":
            raise ConfigError(f"spacing: expected 'median' or 3 voxel sizes in mm, got {spacing!r}")
        return tuple(float(v) for v in np.median([g.spacing for g in geoms], axis=0))
    sp = tuple(float(v) for v in spacing)
    if len(sp) != 3 or not all(v > 0 for v in sp):
        raise ConfigError(f"spacing: expected 3 voxel sizes in mm (array order z, y, x) > 0, "
                          f"got {list(spacing)}")
    return sp


def volume_dataset(cases: CaseDataset, *, spacing: str | Sequence[float] | None = None,
                   slice_axis: int = 0) -> tuple[Samples, VolumeIndex]:
    """Every case as one volume on a common grid, as one in-memory 3-D dataset.

    Parameters
    ----------
    cases : CaseDataset
        Volumes (3 spatial dimensions), one image channel.
    spacing : 'median', sequence of 3 float, or None
        Resample every case to this voxel size in mm (array order; ``'median'``: the median
        of the cases' spacings, nnU-Net's choice); None keeps each case's voxels. Undone by
        :meth:`VolumeIndex.volume`.
    slice_axis : int
        The axis per-slice scores go along (0: axial for ``(z, y, x)`` volumes).

    Returns
    -------
    (Samples, VolumeIndex)
        Sample ids are the case ids; ``clean_masks`` when the cases carry clean labels;
        ``corrupted`` per case (its training mask differs from its clean one) when they do,
        else the cases' own flags; ``meta['volumes']`` records the grid and spacing.

    Raises
    ------
    ConfigError
        A bad ``spacing`` or ``slice_axis``, a multi-channel dataset, or 2-D cases.
    DataError
        An unreadable case.

    Examples
    --------
    >>> from noisyseg.data import synthetic_ct
    >>> samples, index = volume_dataset(synthetic_ct(n=2, size=32, slices=8, seed=0))
    >>> samples.images.shape, samples.sample_ids
    ((2, 16, 32, 32), ('ct_0000', 'ct_0001'))
    """
    ax = check_volume_source(cases, slice_axis, "3-D training")
    geoms = [cases.read_label(i)[1] for i in range(len(cases))] if spacing == "median" else None
    target = _target_spacing(cases, spacing, geoms or [])
    with_clean = cases.has_clean_labels
    images, masks, cleans, shapes, resampled, geometry = [], [], [], [], [], []
    for i in range(len(cases)):
        img, lab, geom = read_volume(cases, i, "3-D training")
        shape = resampled_shape(lab.shape, geom.spacing, target)
        images.append(_resize(img.astype(np.float32, copy=False), shape, "trilinear")[0])
        masks.append(_resize(lab[None], shape, "nearest-exact")[0].astype(np.uint8))
        if with_clean:
            clean = cases.read_label(i, clean=True)[0]
            cleans.append(_resize(clean[None], shape, "nearest-exact")[0].astype(np.uint8))
        shapes.append(tuple(int(v) for v in lab.shape))
        resampled.append(shape)
        geometry.append(geom)
        del img, lab
        _trim_heap()
    grid = tuple(int(-(-max(s[a] for s in resampled) // GRID_MULTIPLE) * GRID_MULTIPLE)
                 for a in range(3))

    def pad(arrays: list[np.ndarray], dtype: type, fill: Sequence[float]) -> np.ndarray:
        """The cases on the common grid. Each case's array is released as soon as it is
        copied (``np.empty`` commits memory page by page as it is written), so the padded
        array and the list are never both held whole: peak memory about one copy."""
        out = np.empty((len(arrays), *grid), dtype=dtype)
        for k, f in enumerate(fill):
            a, arrays[k] = arrays[k], None  # type: ignore[call-overload]
            out[k] = f
            out[(k, *(slice(0, n) for n in a.shape))] = a
            del a
            _trim_heap()
        return out

    # images padded with each case's minimum (air in CT), masks with the background
    image_a = pad(images, np.float32, [float(a.min()) for a in images])
    mask_a = pad(masks, np.uint8, [0] * len(masks))
    clean_a = pad(cleans, np.uint8, [0] * len(cleans)) if cleans else None
    del images, masks, cleans
    if clean_a is not None:
        corrupted = np.any(mask_a != clean_a, axis=(1, 2, 3))
    else:
        corrupted = None if cases.corrupted is None else np.asarray(cases.corrupted)
    ds = Samples(image_a, mask_a, cases.class_names, tuple(cases.sample_ids),
                    np.asarray(cases.split), clean_masks=clean_a, corrupted=corrupted,
                    source=cases.source,
                    meta={"volumes": {"grid": list(grid), "spacing_mm": None if target is None
                                      else list(target), "cases": len(cases)},
                          "channel_names": list(cases.channel_names)})
    log.info("%s: %d volumes on a %s grid%s", cases.source, len(ds), "x".join(map(str, grid)),
             "" if target is None else f" at {target} mm")
    return ds, VolumeIndex(cases, ax, tuple(shapes), tuple(resampled), grid, tuple(geometry),
                           target)
