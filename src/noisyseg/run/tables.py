"""The tables of a run, built from what it measured (written by :mod:`noisyseg.run.folder`,
for ``noisyseg train``/``audit``/``rank``, the Python API and the study trials alike).

Tables (CSV):

- ``history.csv``: per epoch, the trainer's logs (train loss, validation Dice, images/s, ...);
- ``scores.csv``: ``sample_id, detector, score, rank, flagged, corrupted`` for every training
  sample and detector (higher score = more suspect; ``corrupted`` empty when unknown);
- ``score_history.csv``: per detector and epoch, AP and AUROC of that epoch's scores (when the
  truth is known);
- ``refurbish_events.csv``: ``epoch, sample_id, action`` (``refurbished``, ``dropped``,
  ``restored``), header only when nothing was refurbished;
- rankings from predictions (``noisyseg rank``): ``scores.csv`` as above,
  ``slice_scores.csv`` (``sample_id, slice, detector, score``: go straight to the bad slices)
  and ``class_scores.csv`` (per case and class: voxels given and predicted, Dice, expected
  Dice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from noisyseg.detect import score_ranks
from noisyseg.run.folder import TABLES
from noisyseg.run.rank import Ranking
from noisyseg.run.session import Session

__all__ = ["CLASS_COLUMNS", "EVENT_COLUMNS", "SCORE_COLUMNS", "SLICE_COLUMNS", "ranking_tables",
           "run_tables", "score_table"]

SCORE_COLUMNS = list(TABLES["scores.csv"])
SLICE_COLUMNS = list(TABLES["slice_scores.csv"])
CLASS_COLUMNS = list(TABLES["class_scores.csv"])
EVENT_COLUMNS = list(TABLES["refurbish_events.csv"])


def score_table(ids: list[str] | tuple[str, ...], scores: dict[str, np.ndarray],
                flags: dict[str, np.ndarray], truth: np.ndarray | None) -> pd.DataFrame:
    """Build ``scores.csv``: one row per sample and detector (columns :data:`SCORE_COLUMNS`).

    The one builder of the table, for in-training detectors (:func:`run_tables`) and for
    rankings from predictions (:func:`ranking_tables`).

    Parameters
    ----------
    ids : list or tuple of str
        Sample ids, N of them.
    scores : dict of str to (N,) float ndarray
        Per detector, its score of each sample (higher = more suspect).
    flags : dict of str to (N,) bool ndarray
        Per detector, which samples it flags; needs every key of ``scores``.
    truth : (N,) bool ndarray or None
        Which samples carry simulated errors; ``None`` gives an empty ``corrupted`` column.

    Returns
    -------
    pandas.DataFrame
        ``rank`` 1 is the most suspect sample of its detector; an empty table with the
        columns when ``scores`` is empty.

    Raises
    ------
    KeyError
        ``flags`` lacks a detector of ``scores``.

    Examples
    --------
    >>> t = score_table(["a", "b"], {"dice": np.array([0.1, 0.9])},
    ...                 {"dice": np.array([False, True])}, None)
    >>> t[["sample_id", "rank", "flagged"]].values.tolist()
    [['a', 2, False], ['b', 1, True]]
    """
    frames = []
    for det, s in scores.items():
        frames.append(pd.DataFrame({
            "sample_id": list(ids), "detector": det, "score": np.asarray(s, dtype=float),
            "rank": score_ranks(s), "flagged": np.asarray(flags[det], dtype=bool),
            "corrupted": pd.array([None] * len(s) if truth is None else truth, dtype="boolean")}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)


def ranking_tables(ranking: Ranking) -> dict[str, pd.DataFrame]:
    """Build a ranking's tables, by file name.

    Parameters
    ----------
    ranking : Ranking
        What :func:`~noisyseg.run.rank_predictions` found.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``scores.csv`` (:func:`score_table`), ``slice_scores.csv`` (columns
        :data:`SLICE_COLUMNS`) and ``class_scores.csv`` (:data:`CLASS_COLUMNS`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from noisyseg.data import synthetic_echo
    >>> from noisyseg.run import rank_predictions
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for sid, m in zip(ds.sample_ids, ds.masks):
    ...         np.save(Path(d) / f"{sid}.npy", 0.6 * np.eye(4, dtype=np.float32)[m].transpose(2, 0, 1) + 0.1)
    ...     tables = ranking_tables(rank_predictions(ds, [d], workers=1))
    >>> sorted(tables), len(tables["scores.csv"])
    (['class_scores.csv', 'scores.csv', 'slice_scores.csv'], 12)
    """
    return {"scores.csv": score_table(ranking.case_ids, ranking.scores, ranking.flags,
                                      ranking.truth),
            "slice_scores.csv": ranking.slices[SLICE_COLUMNS],
            "class_scores.csv": ranking.classes[CLASS_COLUMNS]}


def run_tables(session: Session) -> dict[str, pd.DataFrame]:
    """Build a training run's tables, by file name.

    ``history.csv`` always; with detectors ``scores.csv`` (per case) and
    ``score_history.csv`` (per detector and epoch, on the samples); ``refurbish_events.csv``
    when refurbishment was on; on volumes ``case_metrics.csv`` and, with detectors,
    ``slice_scores.csv``. No example: a :class:`~noisyseg.run.Session` comes from training
    (:func:`~noisyseg.run.run_session`).

    Parameters
    ----------
    session : Session
        A finished training run.

    Returns
    -------
    dict of str to pandas.DataFrame
        The tables above, each with at least its :data:`~noisyseg.run.folder.TABLES` columns.
    """
    run = session.samples
    tables = {"history.csv": pd.DataFrame(run.trainer.history)}
    if session.scores:
        tables["scores.csv"] = score_table(session.case_ids, session.scores, session.flags,
                                           session.truth)
        tables["score_history.csv"] = pd.DataFrame(run.history)
    if session.refurbisher is not None:
        tables["refurbish_events.csv"] = session.events_table()
    if session.sampling != "images":
        if session.scores:
            tables["slice_scores.csv"] = session.slice_table()
        tables["case_metrics.csv"] = session.case_metrics_table()
    return tables
