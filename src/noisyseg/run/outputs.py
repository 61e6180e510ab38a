"""The writers of a run's output files, shared by ``noisyseg train``/``audit``, the Python API
and the study trials (one writer per file, so the files cannot drift apart).

Tables (CSV):

- ``history.csv``: per epoch, the trainer's logs (train loss, validation Dice, images/s, ...);
- ``scores.csv``: ``sample_id, detector, score, rank, flagged, corrupted`` for every training
  sample and detector (higher score = more suspect; ``corrupted`` empty when unknown);
- ``score_history.csv``: per detector and epoch, AP and AUROC of that epoch's scores (when the
  truth is known);
- ``refurbish_events.csv``: ``epoch, sample_id, action`` (``refurbished``, ``dropped``,
  ``restored``), header only when nothing was refurbished.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from noisyseg.detect import score_ranks
from noisyseg.run.session import Session

__all__ = ["EVENT_COLUMNS", "SCORE_COLUMNS", "run_tables", "table_bytes", "write_tables"]

SCORE_COLUMNS = ["sample_id", "detector", "score", "rank", "flagged", "corrupted"]
EVENT_COLUMNS = ["epoch", "sample_id", "action"]


def scores_frame(session: Session) -> pd.DataFrame:
    """One row per training sample and detector (columns :data:`SCORE_COLUMNS`)."""
    ids = [session.trainer.sample_ids[i] for i in session.train_idx]
    truth = session.truth
    frames = []
    for det, s in session.scores.items():
        frames.append(pd.DataFrame({
            "sample_id": ids, "detector": det, "score": s.astype(float), "rank": score_ranks(s),
            "flagged": session.flags[det].astype(bool),
            "corrupted": pd.array([None] * len(s) if truth is None else truth, dtype="boolean")}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)


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


def write_tables(session: Session, folder: str | Path) -> list[Path]:
    """Write :func:`run_tables` into ``folder``; return the paths written."""
    out = []
    for name, data in table_bytes(session).items():
        p = Path(folder) / name
        p.write_bytes(data)
        out.append(p)
    return out
