"""Every reader of every nodule measured against the consensus of the other readers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.errors import ConfigError
from noisyseg.evaluate.raters import rater_statistics

__all__ = ["case_columns", "measure_raters"]


def case_columns(case: Any) -> dict[str, Any]:
    """The identifying columns of a case's rows: ``case_id``, ``group_id`` and the spacing (mm).

    ``spacing_z_mm`` is NaN for a 2-D case.
    """
    sp = [float(v) for v in case.spacing]
    sz = sp[0] if len(sp) == 3 else float("nan")
    return {"case_id": str(case.case_id), "group_id": str(getattr(case, "group_id", "")),
            "spacing_z_mm": sz, "spacing_y_mm": sp[-2], "spacing_x_mm": sp[-1]}


def measure_raters(cases: Iterable[Any], *, level: float = 0.5,
                   progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per (case, reader): the reader against the leave-one-out consensus of the others.

    Parameters
    ----------
    cases : iterable of RaterCase or Nodule
        Multi-rater cases (:class:`~noisyseg.data.RaterCase`, :class:`~noisyseg.data.Nodule`,
        or any object with ``case_id``, ``masks`` ``(R, *S)`` bool with ``R >= 2`` and 2 or 3
        spatial dimensions, ``spacing`` in mm per spatial axis, ``reader_ids`` and optionally
        ``group_id``), consumed one at a time: an iterator such as
        :func:`~noisyseg.data.load_raters` gives keeps one case in memory.
    level : float
        Consensus level of the other readers (a share in (0, 1]).
    progress : callable, optional
        ``progress(done, total)`` after each case (``total`` None for an iterator).

    Returns
    -------
    pandas.DataFrame
        ``case_id``, ``group_id``, ``spacing_z_mm`` (NaN for 2-D), ``spacing_y_mm``,
        ``spacing_x_mm``, then every column of
        :func:`~noisyseg.evaluate.raters.rater_statistics` but ``case_id`` (``reader_id``,
        ``n_readers``, the volumes and every statistic of
        :data:`~noisyseg.evaluate.raters.STATISTICS`).

    Raises
    ------
    ConfigError
        A case with fewer than two readers or masks that are not 2-D or 3-D, or ``level``
        outside (0, 1].

    Examples
    --------
    >>> from noisyseg.data import RaterCase
    >>> m = np.zeros((3, 4, 12, 12), bool)
    >>> m[:, :, 3:9, 3:9] = True; m[2, :, 2:10, 2:10] = True  # reader "c" draws wider
    >>> case = RaterCase("n1", m, (2.0, 0.5, 0.5), ("a", "b", "c"))
    >>> table = measure_raters([case])
    >>> table[["reader_id", "dice"]].round(3).values.tolist()
    [['a', 0.72], ['b', 0.72], ['c', 0.72]]
    """
    if not 0.0 < float(level) <= 1.0:
        raise ConfigError(f"level: expected a share of readers in (0, 1], got {level}")
    rows: list[dict[str, Any]] = []
    total = len(cases) if isinstance(cases, Sized) else None
    for k, c in enumerate(cases):
        masks = np.asarray(c.masks, dtype=bool)
        if masks.ndim not in (3, 4) or masks.shape[0] < 2:
            raise ConfigError(f"{c.case_id}: expected (R, *S) masks of R >= 2 readers and 2 or 3 "
                              f"spatial dimensions, got shape {masks.shape}")
        head = case_columns(c)
        for row in rater_statistics(masks, tuple(c.spacing), reader_ids=c.reader_ids,
                                    case_id=head["case_id"], level=level):
            rows.append(head | row)
        if progress is not None:
            progress(k + 1, total)
    return pd.DataFrame(rows)
