"""Output folders written whole or not at all, never over an input.

Every command that writes a folder (``corrupt``, ``train``, ``audit``, ``rank``, ``review
export``) builds it under a hidden temporary name beside ``--out`` and renames it into place
at the end (:func:`atomic_dir`), so a failure, a full disk or a kill leaves ``--out`` as it
was. The checks of :func:`check_out_dir` run before any work starts:

- an output that is, contains or lies inside one of the run's inputs is refused, whatever
  ``overwrite`` says (``--out`` equal to ``--data`` would replace the dataset);
- a non-empty ``--out`` is refused unless ``overwrite`` is true;
- a path whose parent is a file is refused.

A temporary folder records who made it (host, process id and its start time) in a small
marker file; one whose process has died (``kill -9``, power loss) is removed by the next run
that writes the same ``--out``. Temporary folders of a live process, or of another machine
sharing the file system, are left alone.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from noisyseg.errors import ConfigError, WriteError

__all__ = ["TEMP_MARKER", "atomic_dir", "check_out_dir", "remove_stale_temps"]

#: The file inside a temporary output folder naming the process that is writing it.
TEMP_MARKER = ".noisyseg-writer.json"

#: ``OSError`` numbers that mean "this output cannot be written here", reported in one line.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT,
                 errno.EFBIG, errno.ENAMETOOLONG}


def _resolve(p: str | Path) -> Path:
    return Path(p).expanduser().resolve()


def check_out_dir(out: str | Path, *, overwrite: bool = False,
                  inputs: Iterable[str | Path | None] = ()) -> Path:
    """Check that ``out`` may be written; return it as a :class:`~pathlib.Path`.

    Parameters
    ----------
    out : str or Path
        The folder to write.
    overwrite : bool
        Allow replacing a non-empty ``out`` (never an input).
    inputs : iterable of str or Path
        Files and folders the run reads (``None`` entries are skipped).

    Raises
    ------
    ConfigError
        ``out`` is, contains or lies inside an input; ``out`` or one of its parents is a
        file; ``out`` is not empty and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> check_out_dir(d / "new", inputs=[d / "data"]).name
    'new'
    >>> check_out_dir(d / "data" / "fixed", inputs=[d / "data"])
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: out: ... lies inside the input ...
    """
    out = Path(out)
    target = _resolve(out)
    for inp in inputs:
        if inp is None:
            continue
        src = _resolve(inp)
        if target == src:
            how = "is"
        elif target.is_relative_to(src):
            how = "lies inside"
        elif src.is_relative_to(target):
            how = "contains"
        else:
            continue
        raise ConfigError(f"out: {out} {how} the input {inp}; write the output elsewhere "
                          f"(inputs are never replaced, even with overwrite=True)")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"out: {out} cannot be created: {parent} is a file, not a folder")
            break
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"out: {out} exists and is not empty (overwrite=True replaces it)")
    return out


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22 of proc(5); the name may hold spaces


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = _start_time(pid)
    return started is None or now is None or now == started


def _marker() -> dict[str, object]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}


def remove_stale_temps(out: str | Path) -> list[Path]:
    """Remove the temporary folders of ``out`` left by writers that died; return them.

    Only folders named as :func:`atomic_dir` names them and holding its marker file, written
    on this host by a process that no longer runs, are removed.
    """
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for p in out.parent.glob(f".{out.name}.*-*"):
        kind = p.name[len(out.name) + 2:].partition("-")[0]
        if kind not in ("tmp", "old") or not p.is_dir():
            continue
        try:
            who = json.loads((p / TEMP_MARKER).read_text())
            host, pid, started = who["host"], int(who["pid"]), who.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if host == socket.gethostname() and not _alive(pid, started):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _write_error(out: Path, exc: OSError) -> WriteError:
    where = f" ({exc.filename})" if exc.filename else ""
    return WriteError(f"out: cannot write {out}: {exc.strerror or exc}{where}; nothing was "
                      f"written and the temporary folder was removed")


@contextmanager
def atomic_dir(out: str | Path, *, overwrite: bool = False,
               inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``out``; rename it to ``out`` on success.

    On any error the temporary folder is removed and ``out`` is left as it was; an error of
    the file system (disk full, read-only, permission denied) becomes one
    :class:`~noisyseg.errors.WriteError`. Temporary folders of earlier writers of ``out``
    that died are removed first (:func:`remove_stale_temps`).

    Raises
    ------
    ConfigError
        See :func:`check_out_dir`.
    WriteError
        The folder cannot be created or written.
    """
    inputs = list(inputs)
    out = check_out_dir(out, overwrite=overwrite, inputs=inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise _write_error(out, exc) from exc
    try:
        (tmp / TEMP_MARKER).write_text(json.dumps(_marker()))
        yield tmp
        (tmp / TEMP_MARKER).unlink()
        check_out_dir(out, overwrite=overwrite, inputs=inputs)  # nothing appeared meanwhile
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in _WRITE_ERRNOS:
            raise _write_error(out, exc) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
