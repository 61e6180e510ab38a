"""Studies: grids of trials from one YAML spec, run locally or on Ray, resumable.

Public API: :func:`load_spec`, :class:`StudySpec`, :class:`TrialConfig` (spec and trials),
:class:`StudyRunner` and :func:`collect_results` (running and collecting),
:func:`execute_trial` (one trial), :func:`make_executor`, :class:`LocalExecutor`,
:class:`RayExecutor`.
"""

from noisyseg.study.executors import EXECUTORS, Executor, LocalExecutor, RayExecutor, make_executor
from noisyseg.study.runner import (
    StudyOutcome,
    StudyRunner,
    collect_results,
    read_study,
    stale_trials,
)
from noisyseg.study.spec import SPEC_DIR, AuditSpec, CorruptSpec, StudySpec, TrialConfig, load_spec
from noisyseg.study.trial import execute_trial, result_row

__all__ = ["EXECUTORS", "SPEC_DIR", "AuditSpec", "CorruptSpec", "Executor", "LocalExecutor",
           "RayExecutor", "StudyOutcome", "StudyRunner", "StudySpec", "TrialConfig",
           "collect_results", "execute_trial", "read_study", "load_spec", "make_executor", "result_row",
           "stale_trials"]
