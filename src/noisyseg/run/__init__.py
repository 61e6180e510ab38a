"""A run: one training with its detectors and refurbishment attached, or a ranking from a
model's predictions, and the files they write.

Public API: :func:`run_session` (train, score, refurbish, evaluate on clean test masks),
:class:`Session`, :func:`session_summary` (what ``metrics.json`` holds),
:func:`run_volume_session` (the same on volumes, a 2-D network on their slices, everything
per case) and :class:`VolumeSession`,
:func:`rank_predictions` (score every case from predicted probabilities, no training) and
:class:`Ranking`, and the shared writers :func:`run_tables`, :func:`ranking_tables`,
:func:`score_table`, :func:`table_bytes`, :func:`write_tables` used by the CLI, the Python
API and the study trials.
"""

from noisyseg.run.outputs import (
    CLASS_COLUMNS,
    EVENT_COLUMNS,
    SCORE_COLUMNS,
    SLICE_COLUMNS,
    ranking_tables,
    run_tables,
    score_table,
    table_bytes,
    write_tables,
)
from noisyseg.run.rank import RANK_SPLITS, Ranking, rank_predictions, read_case_prediction
from noisyseg.run.session import (
    MIN_VAL_DICE,
    Session,
    model_check,
    read_trusted,
    run_session,
    session_summary,
)
from noisyseg.run.volumes import VolumeSession, run_volume_session, volume_summary

__all__ = ["CLASS_COLUMNS", "EVENT_COLUMNS", "MIN_VAL_DICE", "RANK_SPLITS", "SCORE_COLUMNS", "SLICE_COLUMNS",
           "Ranking", "Session", "VolumeSession", "model_check", "rank_predictions", "ranking_tables",
           "read_case_prediction", "read_trusted", "run_session", "run_tables",
           "run_volume_session", "score_table", "session_summary", "table_bytes",
           "volume_summary", "write_tables"]
