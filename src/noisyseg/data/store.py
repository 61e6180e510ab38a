"""Rows of one shape kept on disk and read on request: the slice images of large volume sets.

The slices of 200 CT volumes of 64 x 256 x 256 are 3.4 GB of float32 images; held in memory
with their masks they took an audit to 8.8 GB. :class:`RowStore` writes rows to an anonymous
temporary file (deleted by the system when the store is closed or the process ends, even after
a crash) as they are produced, and reads the rows a batch asks for with ``pread``: the file's
pages live in the system's page cache, which the kernel gives back under pressure, not in the
process's resident memory. It supports what the pipeline asks of an image array: ``shape``,
``ndim``, ``dtype``, ``len`` and indexing by an integer, a slice, an integer or boolean array
(rows first, then any further indices), and ``np.asarray`` for the whole thing.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

__all__ = ["RowStore"]


class RowStore:
    """An append-only file of equal-shaped rows, read like a read-only numpy array.

    Parameters
    ----------
    row_shape : tuple of int
        Shape of one row (a slice: ``(H, W)``).
    dtype : numpy dtype
    directory : str, optional
        Where the temporary file goes (default: ``$NOISYSEG_TMPDIR``, else the system's
        temporary directory). Choose a disk, not a RAM-backed ``tmpfs``.

    Examples
    --------
    >>> s = RowStore((2, 3), np.float32)
    >>> s.append(np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    >>> s.shape, float(s[1][0, 0]), s[[1, 0, 1]].shape
    ((2, 2, 3), 6.0, (3, 2, 3))
    """

    def __init__(self, row_shape: tuple[int, ...], dtype: Any, *,
                 directory: str | None = None) -> None:
        self.row_shape = tuple(int(v) for v in row_shape)
        self.dtype = np.dtype(dtype)
        self._row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._file = tempfile.TemporaryFile(dir=directory or os.environ.get("NOISYSEG_TMPDIR"))
        self._fd = self._file.fileno()
        self._n = 0

    # -------------------------------------------------------------- building
    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` (``(k, *row_shape)``, cast to the store's dtype) at the end."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows: expected (k, {', '.join(map(str, self.row_shape))}), "
                             f"got {rows.shape}")
        view = memoryview(rows.reshape(-1).view(np.uint8))
        offset = self._n * self._row_bytes
        while len(view):
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written
        self._n += len(rows)

    def close(self) -> None:
        """Delete the file (also done when the store is garbage-collected)."""
        self._file.close()

    # ------------------------------------------------------------ array-like
    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def nbytes(self) -> int:
        return self._n * self._row_bytes

    def __len__(self) -> int:
        return self._n

    def _read(self, start: int, out: np.ndarray) -> None:
        """Fill ``out`` (contiguous rows) with the rows from ``start`` on."""
        view = memoryview(out.reshape(-1).view(np.uint8))
        offset = start * self._row_bytes
        while len(view):
            got = os.preadv(self._fd, [view], offset)
            if got <= 0:
                raise OSError(f"row store: short read at byte {offset}")
            view, offset = view[got:], offset + got

    def _rows(self, index: np.ndarray) -> np.ndarray:
        """Rows at integer ``index`` (any order, repeats allowed), read in sorted runs."""
        uniq, inverse = np.unique(index, return_inverse=True)
        out = np.empty((len(uniq), *self.row_shape), self.dtype)
        if len(uniq):
            breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(uniq)], strict=True):
                self._read(int(uniq[lo]), out[lo:hi])
        if len(uniq) == len(index) and np.array_equal(uniq, index):
            return out
        return out[inverse.reshape(-1)]

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self._n if int(key) < 0 else 0)
            if not 0 <= i < self._n:
                raise IndexError(f"row {int(key)} out of range for {self._n} rows")
            out = np.empty(self.row_shape, self.dtype)
            self._read(i, out[None])
            return out[rest] if rest else out
        if isinstance(key, slice):
            out = self._rows(np.arange(*key.indices(self._n)))
            lead = 1
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                if idx.shape != (self._n,):
                    raise IndexError(f"boolean index of shape {idx.shape} for {self._n} rows")
                idx = np.flatnonzero(idx)
            idx = idx.astype(np.int64, copy=False)
            flat = np.where(idx < 0, idx + self._n, idx).reshape(-1)
            if flat.size and (flat.min() < 0 or flat.max() >= self._n):
                raise IndexError(f"row index out of range for {self._n} rows")
            out = self._rows(flat).reshape(*idx.shape, *self.row_shape)
            lead = idx.ndim
        return out[(slice(None),) * lead + rest] if rest else out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __reduce__(self) -> tuple:
        # another process cannot share the file descriptor: it gets the rows themselves
        return (np.asarray, (np.asarray(self),))

    def __repr__(self) -> str:
        return f"RowStore(shape={self.shape}, dtype={self.dtype}, on disk)"
