"""Review decisions, kept in an append-only SQLite log beside the audit (``review.sqlite``).

Every decision is one row, committed before the server acknowledges it, in write-ahead-log
mode with ``synchronous=FULL``: killing the server (even ``kill -9``), closing the tab or
two tabs posting at once lose nothing and corrupt nothing. A case's decision is its latest
row; earlier rows stay, so the log says who changed what, and when.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from noisyseg.errors import ConfigError, DataError

__all__ = ["DECISIONS", "Decision", "DecisionStore"]

#: What a reviewer can decide for a case: keep the given mask, accept the pseudo-label,
#: send the case back for re-annotation; ``undecided`` withdraws an earlier decision.
DECISIONS = ("keep", "accept", "reannotate", "undecided")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('keep', 'accept', 'reannotate', 'undecided')),
    note TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_case ON decisions (sample_id, seq);
"""

#: Longest note kept (characters); longer ones are refused, not cut.
MAX_NOTE = 2000


@dataclass(frozen=True)
class Decision:
    """One row of the decision log.

    Parameters
    ----------
    seq : int
        Position in the log, from 1.
    sample_id : str
        The case decided on.
    decision : {'keep', 'accept', 'reannotate', 'undecided'}
        What the reviewer decided (:data:`DECISIONS`).
    note : str
        Free text, at most ``MAX_NOTE`` characters.
    reviewer : str
        Who decided.
    time : str
        When, as ISO 8601 text.

    Examples
    --------
    >>> Decision(1, "c0", "accept", "", "ana", "2024-01-01T00:00:00Z").to_dict()["decision"]
    'accept'
    """

    seq: int
    sample_id: str
    decision: str
    note: str
    reviewer: str
    time: str

    def to_dict(self) -> dict[str, object]:
        return {"seq": self.seq, "sample_id": self.sample_id, "decision": self.decision,
                "note": self.note, "reviewer": self.reviewer, "time": self.time}


class DecisionStore:
    """The decision log of one audit folder.

    Parameters
    ----------
    path : Path
        The SQLite file (created when missing).
    cases : collection of str, optional
        The case ids a decision may name; others are refused with :class:`ConfigError`.

    Raises
    ------
    DataError
        ``path`` is not a noisyseg decision log.
    ConfigError
        From :meth:`add`: an unknown case, decision not in :data:`DECISIONS`, no reviewer,
        a note over ``MAX_NOTE`` characters.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     store = DecisionStore(Path(d) / "review.sqlite", cases={"c0", "c1"})
    ...     dec = store.add("c1", "accept", reviewer="ana")
    ...     latest = sorted(store.latest())
    ...     store.close()
    >>> dec.seq, dec.decision, latest
    (1, 'accept', ['c1'])
    """

    def __init__(self, path: str | Path, *, cases: set[str] | frozenset[str] | None = None) -> None:
        self.path = Path(path)
        self.cases = None if cases is None else frozenset(cases)
        self._local = threading.local()
        try:
            con = self._con()
            con.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a noisyseg decision log ({exc})") from exc

    def _con(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared across threads)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            self._local.con = con
        return con

    def add(self, sample_id: str, decision: str, *, reviewer: str, note: str = "") -> Decision:
        """Append a decision and commit it; return the stored row.

        Raises
        ------
        ConfigError
            Unknown case or decision, empty reviewer, a note over :data:`MAX_NOTE` characters.
        """
        if self.cases is not None and sample_id not in self.cases:
            raise ConfigError(f"sample_id: no case {sample_id!r} in this audit")
        if decision not in DECISIONS:
            raise ConfigError(f"decision: expected one of {list(DECISIONS)}, got {decision!r}")
        if not reviewer or not reviewer.strip():
            raise ConfigError("reviewer: give a name")
        if len(note) > MAX_NOTE:
            raise ConfigError(f"note: at most {MAX_NOTE} characters, got {len(note)}")
        time = datetime.now(UTC).isoformat(timespec="milliseconds")
        con = self._con()
        cur = con.execute("INSERT INTO decisions (sample_id, decision, note, reviewer, time) "
                          "VALUES (?, ?, ?, ?, ?)", (sample_id, decision, note, reviewer.strip(), time))
        return Decision(int(cur.lastrowid or 0), sample_id, decision, note, reviewer.strip(), time)

    def history(self, since: int = 0) -> list[Decision]:
        """Every row after ``seq`` ``since``, in order."""
        rows = self._con().execute("SELECT seq, sample_id, decision, note, reviewer, time FROM "
                                   "decisions WHERE seq > ? ORDER BY seq", (int(since),))
        return [Decision(*r) for r in rows]

    def latest(self) -> dict[str, Decision]:
        """Each case's current decision (its latest row); ``undecided`` ones left out."""
        out: dict[str, Decision] = {}
        for d in self.history():
            out[d.sample_id] = d
        return {k: d for k, d in out.items() if d.decision != "undecided"}

    def table(self) -> pd.DataFrame:
        """The current decisions as ``decisions.csv`` holds them (one row per decided case)."""
        cols = ["sample_id", "decision", "note", "reviewer", "time", "seq"]
        rows = [d.to_dict() for d in self.latest().values()]
        return pd.DataFrame(rows, columns=cols).sort_values("seq", ignore_index=True)

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
