"""Datasets: one in-memory representation and the sources that produce it.

Public API: :class:`SegDataset`, :func:`load_dataset` (from a ``--data`` string),
:func:`synthetic_echo`, :func:`load_camus`, :func:`load_folder`, :func:`write_folder`.
"""

from noisyseg.data.camus import CAMUS_CLASSES, load_camus
from noisyseg.data.dataset import SPLITS, SegDataset, random_split
from noisyseg.data.folder import load_folder, write_folder
from noisyseg.data.io import read_array, write_array
from noisyseg.data.sources import SOURCES, load_dataset, parse_source
from noisyseg.data.synthetic import (
    ECHO_CLASSES,
    make_echo_sample,
    synthetic_echo,
    synthetic_echo_masks,
)

__all__ = [
    "CAMUS_CLASSES",
    "ECHO_CLASSES",
    "SOURCES",
    "SPLITS",
    "SegDataset",
    "load_camus",
    "load_dataset",
    "load_folder",
    "make_echo_sample",
    "parse_source",
    "random_split",
    "read_array",
    "synthetic_echo",
    "synthetic_echo_masks",
    "write_array",
    "write_folder",
]
