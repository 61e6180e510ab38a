"""The writers of a run's output files, shared by ``noisyseg train``/``audit``, the Python API
and the study trials (one writer per file, so the files cannot drift apart).

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

from pathlib import Path

import numpy as np
import pandas as pd

from noisyseg.detect import score_ranks
from noisyseg.run.rank import Ranking
from noisyseg.run.session import Session

__all__ = ["CLASS_COLUMNS", "EVENT_COLUMNS", "SCORE_COLUMNS", "SLICE_COLUMNS", "ranking_tables",
           "run_tables", "score_table", "table_bytes", "write_tables"]

SCORE_COLUMNS = ["sample_id", "detector", "score", "rank", "flagged", "corrupted"]
SLICE_COLUMNS = ["sample_id", "slice", "detector", "score"]
CLASS_COLUMNS = ["sample_id", "class", "given_voxels", "predicted_voxels", "dice", "expected_dice"]
EVENT_COLUMNS = ["epoch", "sample_id", "action"]


def score_table(ids: list[str] | tuple[str, ...], scores: dict[str, np.ndarray],
                flags: dict[str, np.ndarray], truth: np.ndarray | None) -> pd.DataFrame:
    """``scores.csv``: one row per sample and detector (columns :data:`SCORE_COLUMNS`).

    The one builder of the table, for in-training detectors (:func:`scores_frame`) and for
    rankings from predictions (:func:`ranking_tables`).
    """
    frames = []
    for det, s in scores.items():
        frames.append(pd.DataFrame({
            "sample_id": list(ids), "detector": det, "score": np.asarray(s, dtype=float),
            "rank": score_ranks(s), "flagged": np.asarray(flags[det], dtype=bool),
            "corrupted": pd.array([None] * len(s) if truth is None else truth, dtype="boolean")}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)


def scores_frame(session: Session) -> pd.DataFrame:
    """One row per training sample and detector (columns :data:`SCORE_COLUMNS`)."""
    ids = [session.trainer.sample_ids[i] for i in session.train_idx]
    return score_table(ids, session.scores, session.flags, session.truth)


def ranking_tables(ranking: Ranking) -> dict[str, pd.DataFrame]:
    """A ranking's tables by file name: ``scores.csv``, ``slice_scores.csv`` (columns
    :data:`SLICE_COLUMNS`) and ``class_scores.csv`` (:data:`CLASS_COLUMNS`)."""
    return {"scores.csv": score_table(ranking.case_ids, ranking.scores, ranking.flags,
                                      ranking.truth),
            "slice_scores.csv": ranking.slices[SLICE_COLUMNS],
            "class_scores.csv": ranking.classes[CLASS_COLUMNS]}


def run_tables(session: Session) -> dict[str, pd.DataFrame]:
    """The run's tables by file name: ``history.csv`` always, the detector tables when
    detectors ran, ``refurbish_events.csv`` when refurbishment was on."""
    tables = {"history.csv": pd.DataFrame(session.trainer.history)}
    if session.scores:
        tables["scores.csv"] = scores_frame(session)
        tables["score_history.csv"] = pd.DataFrame(session.history)
    if session.refurbisher is not None:
        tables["refurbish_events.csv"] = pd.DataFrame(session.refurbisher.events,
                                                      columns=EVENT_COLUMNS)
    return tables


def table_bytes(session: Session) -> dict[str, bytes]:
    """:func:`run_tables` as CSV bytes (what a study trial sends back to the study folder)."""
    return {name: df.to_csv(index=False).encode() for name, df in run_tables(session).items()}


def write_tables(run: Session | Ranking, folder: str | Path) -> list[Path]:
    """Write a session's :func:`run_tables` (or a ranking's :func:`ranking_tables`) into
    ``folder``; return the paths written."""
    out = []
    tables = (table_bytes(run) if isinstance(run, Session) else
              {n: df.to_csv(index=False).encode() for n, df in ranking_tables(run).items()})
    for name, data in tables.items():
        p = Path(folder) / name
        p.write_bytes(data)
        out.append(p)
    return out
