"""The samples a network trains on, from a dataset of any dimension, and the way back to its
cases.

:func:`sample_view` is the one place that decides what a network sees of a dataset:

- ``images``: 2-D images are their own samples (:class:`ImageIndex`);
- ``slices``: the slices of volumes along an axis, for a 2-D network
  (:func:`~noisyseg.data.slice_dataset`, :class:`~noisyseg.data.SliceIndex`);
- ``volumes``: the volumes themselves, for a 3-D network on patches
  (:func:`~noisyseg.data.volume_dataset`, :class:`~noisyseg.data.VolumeIndex`).

Every index answers the same questions (which case each sample is, the samples of a case,
spacings in mm, a case's label map from its samples' masks), so a run scores, refurbishes
and evaluates per case without asking which view it has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from noisyseg.data.cases import CaseDataset
from noisyseg.data.dataset import Samples
from noisyseg.data.slices import SliceIndex, slice_dataset
from noisyseg.data.volumes import VolumeIndex, volume_dataset
from noisyseg.errors import ConfigError, DataError

__all__ = ["ImageIndex", "SampleIndex", "check_view", "check_view_options", "sample_view"]


@dataclass(frozen=True, eq=False)
class ImageIndex:
    """The samples of a dataset of 2-D images: sample ``i`` is case ``i``, on its own grid.

    Parameters
    ----------
    cases : CaseDataset
        A dataset of 2-D images held in memory (:attr:`CaseDataset.samples` is set).

    Attributes
    ----------
    cases : CaseDataset
        The images, held in memory (:attr:`CaseDataset.samples`).

    Raises
    ------
    DataError
        From :meth:`volume` and :meth:`volume_from`: a mask not on the dataset's grid.

    Examples
    --------
    >>> from noisyseg.data import synthetic_echo
    >>> index = ImageIndex(synthetic_echo(n=4, size=32, seed=0))
    >>> index.case.tolist(), index.slices_of(1).tolist(), index.spacing(0)
    ([0, 1, 2, 3], [1], (1.0, 1.0))
    >>> index.volume(0, np.zeros((1, 32, 32), np.uint8)).shape
    (32, 32)
    """

    cases: CaseDataset

    sampling = "images"
    dims = 2
    axis = None  # images are not sliced
    size = None  # nor resized by the view

    @property
    def case(self) -> np.ndarray:
        """Case index of each sample (the sample's own index)."""
        return np.arange(len(self.cases))

    @property
    def position(self) -> np.ndarray:
        """Slice number of each sample within its case (0: an image is one slice)."""
        return np.zeros(len(self.cases), dtype=np.int64)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Every case's grid (the dataset's one grid)."""
        return (self.cases.shape,) * len(self.cases)

    def slices_of(self, i: int) -> np.ndarray:
        """Sample indices of case ``i`` (just ``[i]``)."""
        return np.array([i])

    def spacing(self, i: int) -> tuple[float, ...]:
        """Pixel size of case ``i`` in mm (1 where the source says nothing)."""
        return tuple(float(v) for v in self.cases.label_geometry(i).spacing)

    sample_spacing = spacing

    def volume(self, i: int, masks: np.ndarray) -> np.ndarray:
        """Case ``i``'s label map from its sample's mask (``(1, H, W)`` or ``(H, W)``)."""
        m = np.asarray(masks)
        m = m[0] if m.ndim == 3 else m
        if m.shape != self.cases.shape:
            raise DataError(f"case {self.cases.sample_ids[i]}: a {m.shape} mask is not on the "
                            f"dataset's {self.cases.shape} grid")
        return m.astype(np.uint8, copy=False)

    def volume_from(self, i: int, samples: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Case ``i``'s label map from ``masks`` given for the samples ``samples`` (which hold
        sample ``i``)."""
        row = int(np.flatnonzero(np.asarray(samples) == i)[0])
        return self.volume(i, masks[row])


#: Any of the three indices.
SampleIndex = ImageIndex | SliceIndex | VolumeIndex


def sample_view(ds: CaseDataset, *, dims: Literal[2, 3] = 2, slice_axis: int = 0,
                slice_size: int | None = None, spacing: str | Sequence[float] | None = None
                ) -> tuple[Samples, SampleIndex]:
    """What a network with ``dims`` spatial dimensions trains on from ``ds``: its samples as
    one in-memory dataset, and the index back to ``ds``'s cases.

    Parameters
    ----------
    ds : CaseDataset
        2-D images held in memory (their own samples) or volumes.
    dims : {2, 3}
        A 2-D network (on images, or on the slices of volumes along ``slice_axis``) or a 3-D
        one (on volumes).
    slice_axis : int
        Volumes: the array axis of the slices, and of the per-slice scores either way.
    slice_size : int, optional
        ``dims=2`` on volumes: in-plane size to resize slices to.
    spacing : 'median', sequence of 3 float, or None
        ``dims=3``: resample every case to this voxel size in mm.

    Returns
    -------
    (Samples, SampleIndex)
        The samples in memory (for 2-D images, the dataset's own :attr:`~CaseDataset.samples`)
        and the index back to the cases.

    Raises
    ------
    ConfigError
        A bad ``dims``, an option of the other ``dims``, a 3-D network or resampling for 2-D
        images, and what :func:`~noisyseg.data.slice_dataset` and
        :func:`~noisyseg.data.volume_dataset` refuse.

    Examples
    --------
    >>> from noisyseg.data import synthetic_echo
    >>> samples, index = sample_view(synthetic_echo(n=4, size=32, seed=0))
    >>> index.sampling, len(samples), index.slices_of(2).tolist()
    ('images', 4, [2])
    """
    check_view(ds, dims=dims, slice_size=slice_size, spacing=spacing)
    if ds.samples is not None:
        return ds.samples, ImageIndex(ds)
    if dims == 3:
        return volume_dataset(ds, spacing=spacing, slice_axis=slice_axis)
    return slice_dataset(ds, slice_axis=slice_axis, slice_size=slice_size)


def check_view(ds: CaseDataset, *, dims: int = 2, slice_size: int | None = None,
               spacing: str | Sequence[float] | None = None, name: str | None = None) -> None:
    """Refuse, before anything is read, the options of :func:`sample_view` that do not fit ``ds``.

    Also refuses options that do not fit each other (:func:`check_view_options`). The error
    is one line naming the option, and the dataset as ``name``.

    Parameters
    ----------
    ds : CaseDataset
        The dataset to view.
    dims : int, default 2
        Spatial dimensions of the network, 2 or 3.
    slice_size : int, optional
        ``dims=2`` on volumes: in-plane size to resize slices to, in pixels.
    spacing : 'median', sequence of 3 float, or None
        ``dims=3``: voxel size in mm to resample every case to.
    name : str, optional
        How errors name the dataset (default: its source, or ``'the dataset'``).

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        A bad ``dims``, ``slice_size`` or ``spacing`` (see :func:`check_view_options`), a 3-D
        network or resampling for 2-D images, or samples on one grid that are not 2-D.

    Examples
    --------
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> check_view(ds, dims=2)
    >>> check_view(ds, dims=3, name="echo")
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: dims: echo holds 2-D images; a 3-D network needs volumes
    """
    check_view_options(dims=dims)
    if ds.samples is not None:
        name = name or ds.source or "the dataset"
        if ds.spatial_dims != 2:
            raise ConfigError(f"data: {name}: samples on one grid are viewed as 2-D images; "
                              f"read volumes as cases")
        if dims != 2:
            raise ConfigError(f"dims: {name} holds 2-D images; a 3-D network needs volumes")
        if spacing is not None:
            raise ConfigError(f"spacing: {name} holds 2-D images; resampling is for volumes")
    check_view_options(dims=dims, slice_size=slice_size, spacing=spacing)


def check_view_options(*, dims: int = 2, slice_size: int | None = None,
                       spacing: str | Sequence[float] | None = None) -> None:
    """Refuse options of :func:`sample_view` that do not fit each other, whatever the data.

    Parameters
    ----------
    dims : int, default 2
        Spatial dimensions of the network, 2 or 3.
    slice_size : int, optional
        In-plane size to resize slices to, in pixels (>= 1; ``dims=2`` only).
    spacing : 'median', sequence of 3 float, or None
        Voxel size in mm to resample volumes to (each > 0; ``dims=3`` only).

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        A ``dims`` other than 2 or 3, ``slice_size`` with ``dims=3`` or below 1, ``spacing``
        with ``dims=2``, or a ``spacing`` that is neither ``'median'`` nor 3 sizes in mm.

    Examples
    --------
    >>> check_view_options(dims=3, spacing="median")
    >>> check_view_options(dims=2, spacing="median")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: spacing: resamples volumes for a 3-D network (dims=3); ...
    """
    if isinstance(dims, bool) or dims not in (2, 3):
        raise ConfigError(f"dims: expected 2 (a 2-D network on slices) or 3 (a 3-D network on "
                          f"patches), got {dims!r}")
    if dims == 3 and slice_size is not None:
        raise ConfigError("slice_size: resizes the slices of a 2-D network (dims=2); a 3-D "
                          "network takes spacing instead")
    if dims == 2 and spacing is not None:
        raise ConfigError("spacing: resamples volumes for a 3-D network (dims=3); a 2-D "
                          "network on slices takes slice_size instead")
    if slice_size is not None and (isinstance(slice_size, bool) or not isinstance(slice_size, int)
                                   or slice_size < 1):
        raise ConfigError(f"slice_size: expected a size >= 1 pixel, got {slice_size!r}")
    if spacing is not None and spacing != "median" and not (
            not isinstance(spacing, str) and len(spacing) == 3 and all(
                isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < math.inf
                for v in spacing)):
        raise ConfigError(f"spacing: expected 'median' or 3 sizes in mm (each > 0), got "
                          f"{spacing!r}")
