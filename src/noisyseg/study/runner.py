"""Run a study: expand the spec, skip finished trials, run the rest, collect the results.

Study folder::

    DIR/spec.yaml            the spec as last run
    DIR/study.json           name, executor, and the current trial ids with their grid values
    DIR/trials/<id>/         result.json (status, config, result row) and run/ (metrics.json,
                             history.csv, scores.csv, suspects.npz, ...)
    DIR/results.parquet      one row per current trial

A trial folder appears in one rename once everything in it is written, so a runner killed at
any point leaves finished trials whole and unfinished ones absent; re-running the same command
picks up where it stopped. Trial folders whose id is no longer in the spec are *stale*: kept,
left out of ``results.parquet``, and listed by the report.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from noisyseg.errors import ConfigError
from noisyseg.study.executors import Executor, make_executor
from noisyseg.study.spec import StudySpec, TrialConfig, load_spec
from noisyseg.study.trial import TrialOutput

__all__ = ["StudyOutcome", "StudyRunner", "collect_results", "read_study", "read_trial",
           "stale_trials"]


@dataclass
class StudyOutcome:
    """What a run of :class:`StudyRunner` did.

    Parameters
    ----------
    out : Path
        The study folder.
    total : int
        Trials in the spec.
    skipped : int, default 0
        Trials already finished, not run again.
    ran : int, default 0
        Trials run this time.
    failed : int, default 0
        Trials that failed this time.
    failed_ids : list of str
        Their ids.
    seconds : float, default 0.0
        Wall-clock time of the run, in seconds.
    results : Path or None
        The results table written, if any.
    stale : list of str
        Finished trial folders whose id is not in the current spec.

    Examples
    --------
    >>> StudyOutcome(Path("study"), total=4, ran=3, skipped=1).failed
    0
    """

    out: Path
    total: int
    skipped: int = 0
    ran: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    results: Path | None = None
    stale: list[str] = field(default_factory=list)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def read_trial(trial_dir: Path) -> dict[str, Any] | None:
    """A trial's ``result.json``, or ``None`` when it has not finished."""
    p = trial_dir / "result.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_trial(trials_dir: Path, output: TrialOutput) -> Path:
    """Write one trial's folder in a single rename (replacing an earlier failed attempt)."""
    result, files = output
    final = trials_dir / result["trial_id"]
    tmp = trials_dir / f".tmp-{result['trial_id']}-{uuid.uuid4().hex[:8]}"
    (tmp / "run").mkdir(parents=True)
    for name, blob in files.items():
        (tmp / "run" / name).write_bytes(blob)
    (tmp / "result.json").write_text(json.dumps(result, indent=2, default=str))
    if final.exists():
        old = trials_dir / f".old-{result['trial_id']}-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def collect_results(out: str | Path, trial_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Collect one row per finished trial of a study folder.

    Parameters
    ----------
    out : str or Path
        The study folder.
    trial_ids : iterable of str, optional
        Trials to collect (default: the study's current trials, from ``study.json``).

    Returns
    -------
    pandas.DataFrame
        The ``row`` of every finished trial (see :func:`~noisyseg.study.result_row`);
        trials not finished are left out.

    Raises
    ------
    ConfigError
        ``trial_ids`` not given and ``out`` is not a study folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     len(collect_results(d, trial_ids=["t0"]))
    0
    """
    out = Path(out)
    if trial_ids is None:
        trial_ids = [t["id"] for t in read_study(out).get("trials", [])]
    rows = []
    for tid in trial_ids:
        r = read_trial(out / "trials" / tid)
        if r is not None:
            rows.append(r["row"])
    return pd.DataFrame(rows)


def read_study(out: str | Path) -> dict[str, Any]:
    """Read a study folder's ``study.json``.

    Parameters
    ----------
    out : str or Path
        The study folder.

    Returns
    -------
    dict of str to object
        The parsed ``study.json`` (spec, trials, ...).

    Raises
    ------
    ConfigError
        ``out`` holds no ``study.json``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     read_study(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: ...: not a study folder (no study.json); run noisyseg study run first
    """
    out = Path(out)
    p = out / "study.json"
    if not p.is_file():
        raise ConfigError(f"{out}: not a study folder (no study.json); run noisyseg study run first")
    return json.loads(p.read_text())


def stale_trials(out: str | Path) -> list[dict[str, Any]]:
    """List the finished trial folders whose id is not in the study's current spec.

    Parameters
    ----------
    out : str or Path
        The study folder.

    Returns
    -------
    list of dict
        Per stale trial, sorted by id: ``id``, ``name`` and ``status``.

    Raises
    ------
    ConfigError
        ``out`` is not a study folder.

    Examples
    --------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "study.json").write_text(json.dumps({"trials": []}))
    ...     stale_trials(d)
    []
    """
    out = Path(out)
    current = {t["id"] for t in read_study(out).get("trials", [])}
    stale = []
    tdir = out / "trials"
    for d in sorted(tdir.iterdir()) if tdir.is_dir() else []:
        if d.name.startswith(".") or d.name in current:
            continue
        r = read_trial(d)
        if r is not None:
            stale.append({"id": d.name, "name": r.get("name", ""), "status": r.get("status")})
    return stale


class _Lock:
    """An exclusive lock on the study folder, so two runners never write it at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _Lock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise ConfigError(f"out: {self.path.parent}: another study run is using this "
                              "folder") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


class StudyRunner:
    """Run a study spec into a folder, resumably.

    Parameters
    ----------
    spec : StudySpec or str or Path
        A spec, a spec file, or the name of a shipped spec (``quick``).
    out : str or Path
        Study folder (created; an existing study folder is resumed).
    executor : {'local', 'ray'} or Executor, default 'local'
        Where trials run (:func:`~noisyseg.study.make_executor`).
    workers : int, optional
        Parallel trials (``local``: worker processes; ``ray``: CPUs of a local instance).
    address : str, optional
        Ray cluster address (``ray://host:10001`` or ``auto``).
    cpus_per_trial : int, default 1
        CPUs per Ray task.
    retry_failed : bool, default True
        Run trials that failed last time again.
    progress : bool, default True
        Show a live progress view (trials done / running / failed, ETA).

    Raises
    ------
    ConfigError
        A spec that does not load (:func:`~noisyseg.study.load_spec`); ``out`` exists and
        is not a folder, or is not empty and not a study folder; a bad executor option.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "x.txt").write_text("")
    ...     StudyRunner("quick", d, progress=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: out: ...: not empty and not a study folder
    """

    def __init__(self, spec: StudySpec | str | Path, out: str | Path, *,
                 executor: str | Executor = "local", workers: int | None = None,
                 address: str | None = None, cpus_per_trial: int = 1, retry_failed: bool = True,
                 progress: bool = True) -> None:
        self.spec = spec if isinstance(spec, StudySpec) else load_spec(spec)
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"out: {self.out}: exists and is not a folder")
        if (self.out.is_dir() and any(self.out.iterdir())
                and not (self.out / "study.json").is_file()):
            raise ConfigError(f"out: {self.out}: not empty and not a study folder")
        self.executor = executor if isinstance(executor, Executor) else make_executor(
            executor, workers=workers, address=address, cpus_per_trial=cpus_per_trial)
        self.retry_failed, self.progress = retry_failed, progress
        self.trials: list[TrialConfig] = self.spec.trials()

    def pending(self) -> tuple[list[TrialConfig], int]:
        """Trials still to run, and how many are skipped as already finished."""
        todo, skipped = [], 0
        for t in self.trials:
            r = read_trial(self.out / "trials" / t.trial_id)
            if r is not None and (r.get("status") == "ok" or not self.retry_failed):
                skipped += 1
            else:
                todo.append(t)
        return todo, skipped

    def _prepare(self) -> None:
        tdir = self.out / "trials"
        tdir.mkdir(parents=True, exist_ok=True)
        for d in tdir.iterdir():  # debris of a killed run
            if d.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(d, ignore_errors=True)
        (self.out / ".spec.yaml.tmp").write_text(self.spec.source)
        os.replace(self.out / ".spec.yaml.tmp", self.out / "spec.yaml")
        _write_json_atomic(self.out / "study.json", {
            "name": self.spec.name, "description": self.spec.description,
            "spec": self.spec.path, "executor": self.executor.describe(),
            "grid_points": self.spec.grid_points(),
            "trials": [{"id": t.trial_id, "name": t.describe(), "labels": t.labels}
                       for t in self.trials]})

    def write_results(self) -> Path:
        """Write ``results.parquet`` (atomically) from the finished trials."""
        df = collect_results(self.out, [t.trial_id for t in self.trials])
        path = self.out / "results.parquet"
        tmp = self.out / f".results.{uuid.uuid4().hex[:8]}.parquet"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    def run(self) -> StudyOutcome:
        """Run every unfinished trial; return what happened."""
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        with _Lock(self.out / ".lock"):
            self._prepare()
            todo, skipped = self.pending()
            outcome = StudyOutcome(self.out, total=len(self.trials), skipped=skipped)
            configs = [t.to_dict() | {"labels": t.labels} for t in todo]
            view = _ProgressView(len(self.trials), skipped, len(todo), self.executor,
                                 enabled=self.progress)
            try:
                with view:
                    for _cfg, output in self.executor.run(configs):
                        write_trial(self.out / "trials", output)
                        ok = output[0]["status"] == "ok"
                        outcome.ran += 1
                        if not ok:
                            outcome.failed += 1
                            outcome.failed_ids.append(output[0]["trial_id"])
                        view.advance(ok, output[0]["name"])
            finally:
                outcome.results = self.write_results()
            outcome.stale = [s["id"] for s in stale_trials(self.out)]
        outcome.seconds = time.perf_counter() - t0
        return outcome


class _ProgressView:
    """Live view: a bar over all trials, with done / running / failed counts and an ETA."""

    def __init__(self, total: int, skipped: int, todo: int, executor: Executor, *,
                 enabled: bool) -> None:
        self.total, self.skipped, self.todo = total, skipped, todo
        self.enabled = enabled and todo > 0
        self.workers = executor.workers
        self.failed = self.done = 0
        self.label = executor.describe()
        self.progress: Any = None

    def _fields(self) -> dict[str, Any]:
        running = min(self.workers, self.todo - self.done)
        return {"running": running, "failed": self.failed}

    def __enter__(self) -> _ProgressView:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]trials[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}  [red]failed {task.fields[failed]}[/]"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self.progress.start()
        self.task = self.progress.add_task(f"({self.label})", total=self.total,
                                           completed=self.skipped, **self._fields())
        return self

    def advance(self, ok: bool, name: str) -> None:
        self.done += 1
        self.failed += not ok
        if self.progress is not None:
            self.progress.update(self.task, advance=1, **self._fields())
            if not ok:
                self.progress.console.print(f"[red]failed:[/] {name}")

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
