"""Every reader of every nodule measured against the consensus of the other readers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.errors import ConfigError
from noisyseg.evaluate.raters import rater_statistics

__all__ = ["measure_raters", "nodule_columns"]


def nodule_columns(nodule: Any) -> dict[str, Any]:
    """The identifying columns of a nodule's rows: ``nodule_id``, ``scan_id`` and the spacing (mm)."""
    sz, sy, sx = (float(v) for v in nodule.spacing)
    return {"nodule_id": str(nodule.nodule_id), "scan_id": str(getattr(nodule, "scan_id", "")),
            "spacing_z_mm": sz, "spacing_y_mm": sy, "spacing_x_mm": sx}


def measure_raters(nodules: Sequence[Any], *, level: float = 0.5,
                   progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per (nodule, reader): the reader against the leave-one-out consensus of the others.

    Parameters
    ----------
    nodules : sequence of Nodule
        :class:`~noisyseg.data.lidc.Nodule` objects (or any object with ``nodule_id``,
        ``masks`` ``(R, Z, Y, X)`` bool with ``R >= 2``, ``spacing`` ``(z, y, x)`` mm and
        ``reader_ids``).
    level : float
        Consensus level of the other readers (a share in (0, 1]).
    progress : callable, optional
        ``progress(done, total)`` after each nodule.

    Returns
    -------
    pandas.DataFrame
        ``nodule_id``, ``scan_id``, ``spacing_z_mm``, ``spacing_y_mm``, ``spacing_x_mm``,
        then every column of :func:`~noisyseg.evaluate.raters.rater_statistics` but ``case_id``
        (``reader_id``, ``n_readers``, the volumes and every statistic of
        :data:`~noisyseg.evaluate.raters.STATISTICS`).

    Raises
    ------
    ConfigError
        A nodule with fewer than two readers, or ``level`` outside (0, 1].

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> m = np.zeros((3, 4, 12, 12), bool)
    >>> m[:, :, 3:9, 3:9] = True; m[2, :, 2:10, 2:10] = True  # reader "c" draws wider
    >>> n = SimpleNamespace(nodule_id="P:n1", masks=m, spacing=(2.0, 0.5, 0.5), reader_ids=("a", "b", "c"))
    >>> table = measure_raters([n])
    >>> table[["reader_id", "dice"]].round(3).values.tolist()
    [['a', 0.72], ['b', 0.72], ['c', 0.72]]
    """
    if not 0.0 < float(level) <= 1.0:
        raise ConfigError(f"level: expected a share of readers in (0, 1], got {level}")
    rows: list[dict[str, Any]] = []
    for k, n in enumerate(nodules):
        masks = np.asarray(n.masks, dtype=bool)
        if masks.ndim != 4 or masks.shape[0] < 2:
            raise ConfigError(f"{n.nodule_id}: expected (R, Z, Y, X) masks of R >= 2 readers, got "
                              f"shape {masks.shape}")
        head = nodule_columns(n)
        for row in rater_statistics(masks, tuple(n.spacing), reader_ids=n.reader_ids,
                                    case_id=head["nodule_id"], level=level):
            row.pop("case_id")
            rows.append(head | row)
        if progress is not None:
            progress(k + 1, len(nodules))
    return pd.DataFrame(rows)
