"""A server killed with SIGKILL loses no acknowledged decision and leaves a sound log."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pandas as pd

from noisyseg.review import TOKEN_HEADER, DecisionStore, export_review


def _start(aud):
    proc = subprocess.Popen([sys.executable, "-m", "noisyseg.cli", "review", str(aud), "--port",
                             "0", "--reviewer", "script"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("open http"):
            url = line.split()[1]
            return proc, url.split("/?")[0], url.split("t=")[1]
    raise AssertionError(f"server did not start ({proc.wait()})")


def _post(base, token, sid, decision):
    req = urllib.request.Request(base + "/api/decision", method="POST",
                                 data=json.dumps({"sample_id": sid, "decision": decision}).encode(),
                                 headers={"Content-Type": "application/json", TOKEN_HEADER: token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["decision"]


def test_kill_9_while_posting_loses_no_acknowledged_decision(audit_2d, tmp_path):
    aud = audit_2d[0]
    ids = pd.read_csv(aud / "scores.csv", dtype={"sample_id": str})["sample_id"].unique().tolist()
    plan = [(sid, ("keep", "accept", "reannotate")[k % 3]) for k, sid in enumerate(ids)]
    proc, base, token = _start(aud)
    acked, kills, i = {}, 0, 0
    # a second client keeps posting to the same cases while the first one's server dies
    stop = threading.Event()

    def noise():
        while not stop.is_set():
            try:
                _post(base, token, ids[-1], "keep")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return

    t = threading.Thread(target=noise)
    t.start()
    while i < len(plan):
        sid, dec = plan[i]
        if i == 6 and kills == 0:
            os.kill(proc.pid, signal.SIGKILL)  # right after 6 acknowledged decisions
            proc.wait(10)
            kills += 1
        try:
            assert _post(base, token, sid, dec)["decision"] == dec
            acked[sid] = dec
            i += 1
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert proc.wait(10) is not None
            stop.set()
            t.join()
            proc, base, token = _start(aud)  # reopening resumes the same log
    proc.send_signal(signal.SIGINT)
    proc.wait(20)
    assert kills == 1 and len(acked) == len(ids)
    con = sqlite3.connect(aud / "review.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    latest = DecisionStore(aud / "review.sqlite").latest()
    assert {s: d.decision for s, d in latest.items()} == acked
    rec = export_review(aud, tmp_path / "fixed")
    assert rec["n_reviewed"] == len(ids)
    dec = pd.read_csv(tmp_path / "fixed" / "decisions.csv", dtype={"sample_id": str})
    assert dict(zip(dec["sample_id"], dec["decision"], strict=True)) == acked
