"""A run: one training with its detectors and refurbishment attached, and the files it writes.

Public API: :func:`run_session` (train, score, refurbish, evaluate on clean test masks),
:class:`Session`, :func:`session_summary` (what ``metrics.json`` holds), and the shared
writers :func:`run_tables`, :func:`table_bytes`, :func:`write_tables` used by the CLI, the
Python API and the study trials.
"""

from noisyseg.run.outputs import EVENT_COLUMNS, SCORE_COLUMNS, run_tables, table_bytes, write_tables
from noisyseg.run.session import Session, run_session, session_summary

__all__ = ["EVENT_COLUMNS", "SCORE_COLUMNS", "Session", "run_session", "run_tables", "session_summary",
           "table_bytes", "write_tables"]
