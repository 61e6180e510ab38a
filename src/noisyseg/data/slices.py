"""Volumes as 2-D slices: the in-memory slice dataset a 2-D network trains on, and the way back.

nnU-Net's ``2d`` configuration (and study A, which trained on axial liver slices) trains a 2-D
network on the slices of the volumes along one axis. :func:`slice_dataset` reads the cases of
a :class:`~noisyseg.data.CaseDataset` one at a time and stacks their slices into a
:class:`~noisyseg.data.Samples`, so every stage that works on images (the trainer, the
detectors, the refurbisher) works on volumes unchanged; the :class:`SliceIndex` it returns
maps each slice back to its case and position, and :meth:`SliceIndex.volume` reassembles a
case's slices (undoing any in-plane resizing) on the case's own grid, for per-case metrics
and for label files that overlay their images.

Axes are array axes, ``(z, y, x)`` for a volume read by :func:`~noisyseg.data.read_image`
(axis 0: axial slices of a CT or MR volume stored the usual way).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from noisyseg.data._resize import resize_image, resize_mask, restore_mask
from noisyseg.data.cases import CaseDataset
from noisyseg.data.dataset import Samples
from noisyseg.data.io import Geometry
from noisyseg.data.store import RowStore
from noisyseg.data.volumes import check_volume_source
from noisyseg.errors import ConfigError, DataError

__all__ = ["SliceIndex", "slice_dataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SliceIndex:
    """Where each sample of a slice dataset comes from.

    Built by :func:`slice_dataset`; the constructor's parameters are the attributes below.

    Attributes
    ----------
    cases : CaseDataset
        The volumes.
    axis : int
        The array axis the slices are taken along.
    case : (N,) int ndarray
        Case index (into ``cases``) of each slice sample.
    position : (N,) int ndarray
        Slice number along ``axis`` within its case.
    shapes : tuple of tuple of int
        Spatial shape of every case (array order).
    geometry : tuple of Geometry
        The label geometry of every case (spacing, affine, the file it came from).
    size : int or None
        In-plane size the slices were resized to (None: kept as they are).

    Raises
    ------
    DataError
        From :meth:`volume` and :meth:`volume_from`: masks that are not the case's slices.

    Examples
    --------
    >>> from noisyseg.data import synthetic_ct
    >>> samples, index = slice_dataset(synthetic_ct(n=2, size=32, slices=8, seed=0))
    >>> index.slices_of(1).tolist(), index.spacing(0)
    ([8, 9, 10, 11, 12, 13, 14, 15], (2.5, 0.8, 0.8))
    >>> index.volume(0, samples.masks[index.slices_of(0)]).shape
    (8, 32, 32)
    """

    cases: CaseDataset
    axis: int
    case: np.ndarray
    position: np.ndarray
    shapes: tuple[tuple[int, ...], ...]
    geometry: tuple[Geometry, ...]
    size: int | None = None

    sampling = "slices"
    dims = 2

    def slices_of(self, i: int) -> np.ndarray:
        """Sample indices of case ``i``'s slices, in slice order."""
        return np.flatnonzero(self.case == i)

    def spacing(self, i: int) -> tuple[float, ...]:
        """Voxel size of case ``i`` in mm, per array axis."""
        return tuple(self.geometry[i].spacing)

    def sample_spacing(self, i: int) -> tuple[float, ...]:
        """Pixel size in mm of slice sample ``i`` (its case's in-plane spacing, scaled when
        the slices were resized to :attr:`size`)."""
        c = int(self.case[i])
        plane = self._plane(c)
        sp = [self.geometry[c].spacing[k] for k in plane]
        if self.size:
            sp = [v * self.shapes[c][k] / self.size for v, k in zip(sp, plane, strict=True)]
        return tuple(float(v) for v in sp)

    def _plane(self, c: int) -> list[int]:
        """The in-plane array axes of case ``c`` (both axes of a 2-D image)."""
        n = len(self.shapes[c])
        return list(range(n)) if n == 2 else [k for k in range(n) if k != self.axis]

    def volume_from(self, i: int, samples: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Case ``i``'s volume from ``masks`` given for the slice samples ``samples`` (which
        hold all of case ``i``'s slices, in any order): :meth:`volume` of its rows."""
        samples = np.asarray(samples)
        order = np.argsort(samples, kind="stable")
        rows = order[np.searchsorted(samples, self.slices_of(i), sorter=order)]
        return self.volume(i, masks[rows])

    def volume(self, i: int, slices: np.ndarray) -> np.ndarray:
        """Case ``i``'s label volume from its slices (``(D, h, w)`` in slice order, on the
        slice dataset's grid): resized back in-plane and put on the case's own axes."""
        shape = self.shapes[i]
        plane = tuple(shape[a] for a in self._plane(i))
        stack = np.stack([restore_mask(s, plane) for s in slices]) if self.size else np.asarray(slices)
        if len(shape) == 2:  # a 2-D image: its one slice
            if stack.shape != (1, *shape):
                raise DataError(f"case {self.cases.sample_ids[i]}: {stack.shape[0]} slices of "
                                f"{stack.shape[1:]} do not make its {shape} image")
            return stack[0].astype(np.uint8, copy=False)
        if stack.shape != (shape[self.axis], *plane):
            raise DataError(f"case {self.cases.sample_ids[i]}: {stack.shape[0]} slices of "
                            f"{stack.shape[1:]} do not make its {shape} volume along axis {self.axis}")
        return np.moveaxis(stack, 0, self.axis).astype(np.uint8, copy=False)


def read_case(cases: CaseDataset, i: int) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Case ``i``'s image ``(1, *S)``, label map and label geometry (a volume or a 2-D
    image), refusing a label off its image's grid."""
    img, _ = cases.read_image(i)
    lab, geom = cases.read_label(i)
    if lab.ndim not in (2, 3):
        raise ConfigError(f"data: case {cases.sample_ids[i]} has {lab.ndim} spatial dimensions; "
                          f"slices come from 2-D images or volumes")
    if img.shape[1:] != lab.shape:
        raise DataError(f"{cases.cases[i].label}: label shape {lab.shape} differs from the "
                        f"image's {img.shape[1:]}")
    return img, lab, geom


#: Slice images estimated above this many bytes are kept on disk (:class:`RowStore`).
ON_DISK_BYTES = 1 << 30


def slice_dataset(cases: CaseDataset, *, slice_axis: int = 0, slice_size: int | None = None,
                  on_disk: bool | None = None) -> tuple[Samples, SliceIndex]:
    """The slices of every case along ``slice_axis``, as one 2-D dataset.

    Parameters
    ----------
    cases : CaseDataset
        Volumes (3 spatial dimensions; a 2-D image is a volume of one slice), one image
        channel, read one case at a time.
    slice_axis : int
        Array axis to slice along (0: axial for ``(z, y, x)`` volumes).
    slice_size : int, optional
        Resize every slice in-plane to ``slice_size x slice_size`` (images linearly, masks by nearest
        neighbour; undone by :meth:`SliceIndex.volume`). Needed when the cases' in-plane
        shapes differ.
    on_disk : bool, optional
        Keep the slice images in a temporary file, read a batch at a time
        (:class:`~noisyseg.data.store.RowStore`), instead of in memory; masks stay in memory
        (a quarter of float32 images' size). ``None``: when the first case's slices, times
        the number of cases, exceed :data:`ON_DISK_BYTES` (1 GiB). Either way each array is
        built without a second copy.

    Returns
    -------
    (Samples, SliceIndex)
        Sample ids ``{case_id}:{slice}``; each slice has its case's split; ``clean_masks``
        when the cases carry clean labels; ``corrupted`` per slice (its training mask differs
        from its clean one) when they do, else the cases' ``corrupted`` flags.

    Raises
    ------
    ConfigError
        A bad ``slice_axis`` or ``slice_size``, a multi-channel dataset, or in-plane shapes
        that differ without ``slice_size``.
    DataError
        An unreadable case.

    Examples
    --------
    >>> from noisyseg.data import synthetic_ct
    >>> samples, index = slice_dataset(synthetic_ct(n=2, size=32, slices=8, seed=0))
    >>> samples.images.shape, samples.sample_ids[1]
    ((16, 32, 32), 'ct_0000:1')
    """
    ax = check_volume_source(cases, slice_axis, "2-D slice training")
    size = slice_size
    if size is not None and (not isinstance(size, int) or size < 8):
        raise ConfigError(f"slice_size: expected an in-plane size of at least 8 pixels, got {size!r}")
    images: RowStore | None = None
    masks: RowStore | None = None
    cleans: RowStore | None = None
    owner, pos, shapes, geoms, ids = [], [], [], [], []
    with_clean = cases.has_clean_labels
    plane0 = None
    try:
        for i in range(len(cases)):
            img, lab, geom = read_case(cases, i)
            flat = lab.ndim == 2  # a 2-D image: a volume of one slice
            a_i = 0 if flat else ax
            plane = lab.shape if flat else tuple(s for a, s in enumerate(lab.shape) if a != ax)
            if size is None:
                if plane0 is None:
                    plane0 = plane
                elif plane != plane0:
                    raise ConfigError(f"slice_size: case {cases.sample_ids[i]} has {plane} slices "
                                      f"along axis {ax}, case {cases.sample_ids[0]} {plane0}; give "
                                      f"an in-plane size to resize them to")
            clean = cases.read_label(i, clean=True)[0] if with_clean else None
            if flat:
                img, lab = img[:, None], lab[None]
                clean = None if clean is None else clean[None]
            img_s, lab_s = np.moveaxis(img[0], a_i, 0), np.moveaxis(lab, a_i, 0)
            cln_s = None if clean is None else np.moveaxis(clean, a_i, 0)
            if size is not None:
                img_s = np.stack([resize_image(s, size) for s in img_s])
                lab_s = np.stack([resize_mask(s, size) for s in lab_s])
                if cln_s is not None:
                    cln_s = np.stack([resize_mask(s, size) for s in cln_s])
            if images is None:
                row = img_s.shape[1:]
                if on_disk is None:
                    on_disk = len(cases) * img_s.shape[0] * int(np.prod(row)) * 4 > ON_DISK_BYTES
                images = RowStore(row, np.float32)
                masks = RowStore(row, np.uint8)
                cleans = RowStore(row, np.uint8) if with_clean else None
            images.append(img_s)
            masks.append(lab_s)  # type: ignore[union-attr]
            if cleans is not None and cln_s is not None:
                cleans.append(cln_s)
            k = lab_s.shape[0]
            shape_i = tuple(int(v) for v in (lab.shape[1:] if flat else lab.shape))
            del img, lab, clean, img_s, lab_s, cln_s
            owner.append(np.full(k, i))
            pos.append(np.arange(k))
            shapes.append(shape_i)
            geoms.append(geom)
            ids.extend(f"{cases.sample_ids[i]}:{z}" for z in range(k))
        assert images is not None and masks is not None
        owner_a, pos_a = np.concatenate(owner), np.concatenate(pos)
        # one allocation per in-memory array: the store is read straight into it
        mask_a = np.asarray(masks)
        clean_a = None if cleans is None else np.asarray(cleans)
        image_a = images if on_disk else np.asarray(images)
    finally:
        for store in (masks, cleans) + (() if on_disk else (images,)):
            if store is not None:
                store.close()
    if clean_a is not None:
        corrupted = np.concatenate([np.any(mask_a[j:j + 256] != clean_a[j:j + 256], axis=(1, 2))
                                    for j in range(0, len(mask_a), 256)])
    elif cases.corrupted is not None:
        corrupted = np.asarray(cases.corrupted)[owner_a]
    else:
        corrupted = None
    ds = Samples(image_a, mask_a, cases.class_names, tuple(ids),
                    cases.split[owner_a], clean_masks=clean_a, corrupted=corrupted,
                    source=cases.source,
                    meta={"slices": {"axis": ax, "size": size, "cases": len(cases),
                                     "on_disk": bool(on_disk)},
                          "channel_names": list(cases.channel_names)})
    log.info("%s: %d slices of %d cases along axis %d%s", cases.source, len(ds), len(cases), ax,
             " (images on disk)" if on_disk else "")
    return ds, SliceIndex(cases, ax, owner_a, pos_a, tuple(shapes), tuple(geoms), size)
