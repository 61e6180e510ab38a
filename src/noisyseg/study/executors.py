"""Where trials run: in this process, in N pinned worker processes, or as Ray tasks.

An executor takes trial configs and yields ``(config, (result, files))`` as trials finish, in
any order. Trials never raise (see :func:`~noisyseg.study.trial.execute_trial`); a worker
that dies (killed, out of memory) becomes a failed result too. Any other job with the same
contract (``job(config, worker=...) -> (result, files)``, never raising, a top-level
function so that worker processes can import it) runs the same way: the cross-validation
folds of ``noisyseg audit --folds`` (:func:`~noisyseg.run.crossval.fold_job`) do.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from noisyseg.errors import ConfigError
from noisyseg.study.trial import TrialOutput, execute_trial

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "core_shares",
           "failed_output", "make_executor"]

log = logging.getLogger(__name__)
EXECUTORS = ("local", "ray")

#: ``job(config, worker=name) -> (result, files)``; never raises.
Job = Callable[..., TrialOutput]


def failed_output(config: dict[str, Any], error: BaseException | str,
                  job: Job = execute_trial) -> TrialOutput:
    """The result of a job whose worker died before it could report (a trial's result for
    trials; ``{"status": "failed", "error": ...}`` for other jobs)."""
    if job is not execute_trial:
        return {"status": "failed", "error": error if isinstance(error, str) else
                f"{type(error).__name__}: {error}"}, {}
    from noisyseg.study.spec import TrialConfig
    from noisyseg.study.trial import trial_result

    trial = TrialConfig.from_dict({k: v for k, v in config.items() if k != "labels"},
                                  config.get("labels", {}))
    msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    tb = "" if isinstance(error, str) else "".join(traceback.format_exception(error))
    return trial_result(trial, {"status": "failed", "error": msg, "traceback": tb}), {}


def core_shares(workers: int, cores: Sequence[int] | None = None) -> list[list[int]]:
    """Split the cores this process may use into ``workers`` disjoint shares.

    With more workers than cores, shares are single cores used round-robin.

    Examples
    --------
    >>> core_shares(2, [0, 1, 2, 3])
    [[0, 1], [2, 3]]
    >>> core_shares(3, [0, 1])
    [[0], [1], [0]]
    """
    cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
    if workers >= len(cores):
        return [[cores[i % len(cores)]] for i in range(workers)]
    base, extra = divmod(len(cores), workers)
    out, start = [], 0
    for i in range(workers):
        n = base + (i < extra)
        out.append(cores[start:start + n])
        start += n
    return out


def _pin_worker(queue: Any) -> None:
    """Process-pool initializer: take a core share, pin to it, size PyTorch's thread pool."""
    cores = queue.get()
    os.environ["OMP_NUM_THREADS"] = str(len(cores))
    try:
        os.sched_setaffinity(0, cores)
    except (AttributeError, OSError):  # not Linux, or cores not allowed: run unpinned
        pass
    import torch

    torch.set_num_threads(len(cores))
    global _WORKER_NAME
    _WORKER_NAME = f"cores{','.join(map(str, cores))}"


_WORKER_NAME = "main"


def _run_pinned(job: Job, config: dict[str, Any]) -> TrialOutput:
    return job(config, worker=_WORKER_NAME)


class Executor:
    """Base class of executors: ``run(configs)`` yields ``(config, output)`` as trials finish.

    A subclass sets :attr:`name` and :attr:`workers` and implements :meth:`run`.

    Raises
    ------
    NotImplementedError
        From :meth:`run` of the base class itself.

    Examples
    --------
    >>> Executor().describe()
    'executor x1'
    """

    name = "executor"
    workers = 1

    def run(self, configs: Sequence[dict[str, Any]], job: Job = execute_trial
            ) -> Iterator[tuple[dict[str, Any], TrialOutput]]:
        """Run ``job`` on every config (default: study trials); yield each as it finishes."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the progress view."""
        return f"{self.name} x{self.workers}"


class LocalExecutor(Executor):
    """Trials on this machine: sequentially in this process, or in ``workers`` processes.

    Each worker process is pinned to its own share of the cores (:func:`core_shares`) and
    runs PyTorch with that many threads, so workers do not fight over cores.

    Parameters
    ----------
    workers : int, default 1
        Worker processes; 1 runs every trial in this process.

    Raises
    ------
    ConfigError
        ``workers`` below 1.

    Examples
    --------
    >>> ex = LocalExecutor(workers=1)
    >>> def job(config, worker=None):
    ...     return {"status": "ok", "x": config["x"] * 2}, {}
    >>> [out[0]["x"] for _, out in ex.run([{"x": 1}, {"x": 2}], job)]
    [2, 4]
    >>> LocalExecutor(workers=0)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: workers: must be >= 1, got 0
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"workers: must be >= 1, got {workers}")
        self.workers = workers

    def run(self, configs: Sequence[dict[str, Any]], job: Job = execute_trial
            ) -> Iterator[tuple[dict[str, Any], TrialOutput]]:
        if self.workers == 1 or len(configs) <= 1:
            for cfg in configs:
                yield cfg, job(cfg, worker="main")
            return
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
        n = min(self.workers, len(configs))
        queue = ctx.Queue()
        for share in core_shares(n):
            queue.put(share)
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_pin_worker, initargs=(queue,))
        try:
            pending = {pool.submit(_run_pinned, job, cfg): cfg for cfg in configs}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    cfg = pending.pop(fut)
                    try:
                        out = fut.result()
                    except BrokenProcessPool as exc:
                        out = failed_output(cfg, f"worker process died ({exc})", job)
                    except Exception as exc:  # noqa: BLE001 - recorded as a failed trial
                        out = failed_output(cfg, exc, job)
                    yield cfg, out
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


class RayExecutor(Executor):
    """Trials as Ray tasks, on an existing cluster (``address``) or a local Ray instance.

    Each task asks for ``cpus_per_trial`` CPUs and runs PyTorch with that many threads. The
    cluster's nodes need noisyseg installed (same version); results travel back to this
    process, which alone writes the study folder, so nodes need no shared file system. Data
    sources are read where the task runs: a folder or CAMUS path must exist on every node
    (``synthetic-echo`` needs nothing).

    Parameters
    ----------
    workers : int, optional
        CPUs of a local Ray instance (default: the number of cores).
    address : str, optional
        Ray cluster address (``ray://host:10001`` or ``auto``); default: start a local
        instance.
    cpus_per_trial : int, default 1
        CPUs each task asks for (and PyTorch threads it runs).

    Raises
    ------
    ConfigError
        ``workers`` or ``cpus_per_trial`` below 1; from :meth:`run`: Ray is not installed,
        or the cluster at ``address`` cannot be reached.

    Examples
    --------
    >>> RayExecutor(2, cpus_per_trial=1).name
    'ray'
    """

    name = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None,
                 cpus_per_trial: int = 1) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers: must be >= 1, got {workers}")
        if cpus_per_trial < 1:
            raise ConfigError(f"cpus_per_trial: must be >= 1, got {cpus_per_trial}")
        self.address, self.cpus_per_trial = address, cpus_per_trial
        self.workers = workers or len(os.sched_getaffinity(0))

    def describe(self) -> str:
        where = self.address or "local Ray"
        return f"ray ({where}, {self.cpus_per_trial} CPU/trial)"

    def run(self, configs: Sequence[dict[str, Any]], job: Job = execute_trial
            ) -> Iterator[tuple[dict[str, Any], TrialOutput]]:
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is a dependency
            raise ConfigError("executor: ray is not installed (pip install ray)") from None
        started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING}
            if self.address is None:
                kw["num_cpus"] = self.workers * self.cpus_per_trial
            try:
                ray.init(address=self.address, **kw)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"address: {self.address}: cannot connect to Ray "
                                  f"({str(exc).splitlines()[0]})") from None
            started = True
        task = ray.remote(num_cpus=self.cpus_per_trial, max_retries=0)(_ray_trial)
        try:
            refs = {task.remote(job, cfg, self.cpus_per_trial): cfg for cfg in configs}
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    cfg = refs.pop(ref)
                    try:
                        out = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - worker crash: a failed trial
                        out = failed_output(cfg, f"Ray task failed: {str(exc).splitlines()[0]}",
                                            job)
                    yield cfg, out
        finally:
            if started:
                ray.shutdown()


def _ray_trial(job: Job, config: dict[str, Any], threads: int) -> TrialOutput:
    import socket

    import torch

    torch.set_num_threads(threads)
    return job(config, worker=f"ray:{socket.gethostname()}:{os.getpid()}")


def make_executor(name: str, *, workers: int | None = None, address: str | None = None,
                  cpus_per_trial: int = 1) -> Executor:
    """Make an executor by name (``local`` or ``ray``).

    Parameters
    ----------
    name : {'local', 'ray'}
        The executor (:data:`EXECUTORS`).
    workers : int, optional
        Parallel trials; default 1 for ``local`` (one trial at a time using every core) and
        the number of cores for a local Ray instance.
    address : str, optional
        Ray cluster address (``ray`` only).
    cpus_per_trial : int, default 1
        CPUs per Ray task (``ray`` only).

    Returns
    -------
    Executor
        A :class:`LocalExecutor` or :class:`RayExecutor`.

    Raises
    ------
    ConfigError
        An unknown ``name``, ``address`` with ``local``, or what the executor refuses
        (``workers`` or ``cpus_per_trial`` below 1).

    Examples
    --------
    >>> make_executor("local", workers=2).describe()
    'local x2'
    >>> make_executor("dask")
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: executor: expected one of local, ray, got 'dask'
    """
    if name == "local":
        if address is not None:
            raise ConfigError("address: only with executor='ray'")
        return LocalExecutor(workers or 1)
    if name == "ray":
        return RayExecutor(workers, address=address, cpus_per_trial=cpus_per_trial)
    raise ConfigError(f"executor: expected one of {', '.join(EXECUTORS)}, got {name!r}")
