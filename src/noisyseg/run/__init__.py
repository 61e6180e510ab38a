"""A run: one training with its detectors and refurbishment attached, or a ranking from a
model's predictions, and the run folder it writes.

Public API:

- the runs behind the commands, each writing its folder and returning a :class:`RunResult`:
  :func:`train_run`, :func:`audit_run`, :func:`rank_run`, :func:`folds_run`; and
  :func:`read_run` (a folder's :class:`RunResult`, read back);
- the run folder's one writer and one reader per file (:mod:`noisyseg.run.folder`):
  :func:`write_run_json` / :func:`read_run_json` (``run.json``: kind and format version),
  :func:`write_record`, :func:`write_detection`, :func:`write_table` / :func:`read_table`,
  :data:`TABLES`, :data:`RUN_KINDS`, :data:`FORMAT_VERSION`;
- the measurements: :func:`run_session` (train on a dataset of any dimension, score,
  refurbish and evaluate on clean test labels, everything per case) and :class:`Session`,
  :func:`summary` (what ``metrics.json`` holds), :func:`rank_predictions` (score every case
  from predicted probabilities) and :class:`Ranking`; the tables built from them
  (:func:`run_tables`, :func:`ranking_tables`, :func:`score_table`).
"""

from noisyseg.run.commands import (
    DEFAULT_DETECTORS,
    RunResult,
    VolumeView,
    audit_run,
    folds_run,
    rank_run,
    read_run,
    train_run,
)
from noisyseg.run.folder import (
    FORMAT_VERSION,
    RECORDS,
    RUN_KINDS,
    TABLES,
    RunInfo,
    encode_json,
    encode_run_json,
    encode_table,
    read_run_json,
    read_table,
    write_detection,
    write_record,
    write_run_json,
    write_table,
)
from noisyseg.run.rank import RANK_SPLITS, Ranking, rank_predictions, read_case_prediction
from noisyseg.run.samples import MIN_VAL_DICE, model_check, read_trusted
from noisyseg.run.session import Session, run_session, summary
from noisyseg.run.tables import (
    CLASS_COLUMNS,
    EVENT_COLUMNS,
    SCORE_COLUMNS,
    SLICE_COLUMNS,
    ranking_tables,
    run_tables,
    score_table,
)

__all__ = ["CLASS_COLUMNS", "DEFAULT_DETECTORS", "EVENT_COLUMNS", "FORMAT_VERSION", "MIN_VAL_DICE",
           "RANK_SPLITS", "RECORDS", "RUN_KINDS", "SCORE_COLUMNS", "SLICE_COLUMNS", "TABLES", "Ranking",
           "RunInfo", "RunResult", "Session", "VolumeView", "audit_run",
           "encode_json", "encode_run_json", "encode_table", "folds_run", "model_check", "rank_predictions",
           "rank_run", "ranking_tables", "read_case_prediction", "read_run", "read_run_json",
           "read_table", "read_trusted", "run_session", "run_tables", "score_table", "summary",
           "train_run", "write_detection",
           "write_record", "write_run_json", "write_table"]
