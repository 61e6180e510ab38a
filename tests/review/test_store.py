"""The decision log: append-only, latest row wins, safe across threads and processes."""

import multiprocessing as mp
import sqlite3
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noisyseg.errors import ConfigError, DataError
from noisyseg.review import DECISIONS, DecisionStore


def test_latest_decision_wins_and_the_history_stays(tmp_path):
    s = DecisionStore(tmp_path / "r.sqlite", cases={"a", "b"})
    s.add("a", "keep", reviewer="ann")
    s.add("b", "reannotate", reviewer="ann", note="LA cut off")
    d = s.add("a", "accept", reviewer="bob", note="pseudo-label is better")
    assert d.seq == 3 and d.reviewer == "bob"
    latest = s.latest()
    assert {k: v.decision for k, v in latest.items()} == {"a": "accept", "b": "reannotate"}
    assert latest["b"].note == "LA cut off"
    assert [r.decision for r in s.history()] == ["keep", "reannotate", "accept"]
    assert [r.seq for r in s.history(since=2)] == [3]
    s.add("b", "undecided", reviewer="ann")  # withdrawn: no longer a decision
    assert set(s.latest()) == {"a"}
    assert s.table()["sample_id"].tolist() == ["a"]


def test_reopening_resumes(tmp_path):
    DecisionStore(tmp_path / "r.sqlite").add("x", "keep", reviewer="ann")
    again = DecisionStore(tmp_path / "r.sqlite")
    assert again.latest()["x"].decision == "keep"
    con = sqlite3.connect(tmp_path / "r.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(("args", "match"), [
    (("zzz", "keep", "ann", ""), "no case 'zzz'"),
    (("a", "delete", "ann", ""), "decision: expected one of"),
    (("a", "keep", "  ", ""), "reviewer: give a name"),
    (("a", "keep", "ann", "x" * 2001), "note: at most 2000"),
])
def test_bad_decisions_are_refused_and_not_written(tmp_path, args, match):
    s = DecisionStore(tmp_path / "r.sqlite", cases={"a"})
    sid, decision, reviewer, note = args
    with pytest.raises(ConfigError, match=match):
        s.add(sid, decision, reviewer=reviewer, note=note)
    assert s.history() == []


def test_not_a_database_is_a_clear_error(tmp_path):
    p = tmp_path / "r.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="not a noisyseg decision log"):
        DecisionStore(p)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(DECISIONS)), max_size=30))
def test_latest_is_the_last_decision_per_case(tmp_path_factory, ops):
    s = DecisionStore(tmp_path_factory.mktemp("log") / "r.sqlite")
    expect = {}
    for sid, dec in ops:
        s.add(sid, dec, reviewer="r")
        expect[sid] = dec
    assert {k: v.decision for k, v in s.latest().items()} == {
        k: v for k, v in expect.items() if v != "undecided"}


def test_two_writers_at_once_lose_nothing(tmp_path):
    """Two tabs = two server threads posting at once; two processes on one file too."""
    path = tmp_path / "r.sqlite"
    s = DecisionStore(path)

    def post(tag):
        for i in range(50):
            s.add(f"{tag}{i}", "keep", reviewer=tag)

    threads = [threading.Thread(target=post, args=(t,)) for t in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    procs = [mp.get_context("spawn").Process(target=_post_many, args=(str(path), t)) for t in "pq"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = s.history()
    assert len(rows) == 200 and len({r.sample_id for r in rows}) == 200
    assert [r.seq for r in rows] == list(range(1, 201))


def _post_many(path, tag):
    s = DecisionStore(path)
    for i in range(50):
        s.add(f"{tag}{i}", "accept", reviewer=tag)
