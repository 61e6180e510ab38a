"""The review's robustness contract: Host and Origin checks, hostile request bodies, broken
audit files (one-line DataError naming the file) and the audit's model check on the page."""

import json
import shutil
import signal
import subprocess
import sys
import urllib.parse

import pytest
from starlette.testclient import TestClient

from noisyseg.errors import DataError
from noisyseg.review import TOKEN_HEADER, DecisionStore, export_review, make_app, open_audit

TOKEN = "s3cret-token"
W = {TOKEN_HEADER: TOKEN}
BASE = "http://127.0.0.1:8765"


@pytest.fixture()
def app_2d(audit_2d):
    """(TestClient on 127.0.0.1 over the production default hosts, view, store)."""
    aud = audit_2d[0]
    view = open_audit(aud)
    store = DecisionStore(aud / "review.sqlite", cases=set(view.cases["sample_id"]))
    app = make_app(view, store, reviewer="ann", token=TOKEN)
    return TestClient(app, base_url=BASE, client=("127.0.0.1", 50000)), view, store


def _ok(view):
    return {"sample_id": str(view.cases["sample_id"].iloc[0]), "decision": "keep"}


# ------------------------------------------------------------------ 1. Host (DNS rebinding)
@pytest.mark.parametrize("host", [
    "evil.com", "evil.com:8765", "127.0.0.1.evil.com", "localhost.evil.com:8765", "testserver",
    "[::2]:8765", "0.0.0.0:8765", "127.0.0.2", "", "bad host", "[::1",
])
def test_a_foreign_host_header_is_refused_everywhere(app_2d, host):
    c, view, store = app_2d
    h = {"host": host}
    for r in (c.get(f"/?t={TOKEN}", headers=h), c.get(f"/api/cases?t={TOKEN}", headers=h),
              c.get(f"/api/case/0?t={TOKEN}", headers=h), c.get("/static/review.js", headers=h),
              c.post("/api/decision", json=_ok(view), headers={**W, **h})):
        assert r.status_code in (400, 403, 421), (host, r.request.url)
        assert "error" in r.json() and b"sample_id" not in r.content
    assert store.history() == []


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "127.0.0.1", "localhost:8765", "LocalHost",
                                  "[::1]:8765", "[::1]", "localhost."])
def test_the_local_names_are_accepted(app_2d, host):
    c, view, store = app_2d
    assert c.get(f"/api/cases?t={TOKEN}", headers={"host": host}).status_code == 200
    r = c.post("/api/decision", json=_ok(view), headers={**W, "host": host})
    assert r.status_code == 200 and len(store.history()) == 1


def test_allowed_hosts_names_the_hosts(audit_2d):
    aud = audit_2d[0]
    view = open_audit(aud)
    app = make_app(view, DecisionStore(aud / "review.sqlite"), reviewer="ann", token=TOKEN,
                   allowed_hosts=["review.lab"])
    c = TestClient(app, base_url="http://review.lab:8765", client=("10.0.0.2", 50000))
    assert c.get(f"/api/cases?t={TOKEN}").status_code == 200
    assert c.get(f"/api/cases?t={TOKEN}", headers={"host": "127.0.0.1"}).status_code == 400


def test_serve_accepts_its_own_host_and_the_local_names():
    from noisyseg.review.server import allowed_hosts_for

    assert set(allowed_hosts_for("127.0.0.1")) == {"127.0.0.1", "localhost", "::1"}
    assert "review.lab" in allowed_hosts_for("review.lab")
    assert "::1" in allowed_hosts_for("::1") and "evil.com" not in allowed_hosts_for("0.0.0.0")


def test_the_real_server_refuses_a_rebound_host(audit_2d):
    """`noisyseg review` end to end: Host evil.com gets 400, its own URL's host works."""
    import http.client

    aud = audit_2d[0]
    proc = subprocess.Popen([sys.executable, "-m", "noisyseg.cli", "review", str(aud), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = next((ln.split()[1] for ln in proc.stdout if ln.startswith("open http")), None)
        assert url, f"server did not start ({proc.poll()})"
        u = urllib.parse.urlparse(url)
        token = urllib.parse.parse_qs(u.query)["t"][0]

        def get(host):
            con = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            con.putrequest("GET", f"/api/cases?t={token}", skip_host=True)
            con.putheader("Host", host)
            con.endheaders()
            r = con.getresponse()
            body = r.read()
            con.close()
            return r.status, body

        status, body = get(f"evil.com:{u.port}")
        assert status == 400 and b"sample_id" not in body
        assert get(u.netloc)[0] == 200 and get(f"localhost:{u.port}")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


# ------------------------------------------------------------------ 2. Origin on writes
@pytest.mark.parametrize("origin", [
    "http://evil.com", "https://evil.com:8765", "null", "http://127.0.0.1.evil.com:8765",
    "ftp://127.0.0.1:8765", "http://127.0.0.1@evil.com", "127.0.0.1", "http://", "http://[::1",
    "http://127.0.0.1:8765/path",
])
def test_a_write_from_a_foreign_origin_is_refused(app_2d, origin):
    c, view, store = app_2d
    r = c.post("/api/decision", json=_ok(view), headers={**W, "origin": origin})
    assert r.status_code == 403 and "error" in r.json()
    assert store.history() == []


@pytest.mark.parametrize("origin", [None, "http://127.0.0.1:8765", "http://localhost:9000",
                                    "https://[::1]:8765", "http://LOCALHOST"])
def test_a_write_from_the_page_or_without_origin_is_stored(app_2d, origin):
    c, view, store = app_2d
    h = {**W} if origin is None else {**W, "origin": origin}
    assert c.post("/api/decision", json=_ok(view), headers=h).status_code == 200
    assert len(store.history()) == 1


# ------------------------------------------------------------------ 3-4. hostile bodies
J = {"content-type": "application/json"}


@pytest.mark.parametrize("body", [
    b'{"sample_id": "%s", "decision": "keep", "note": "\\ud800"}',
    b'{"sample_id": "%s", "decision": "keep", "note": "ok \\udfff then"}',
    b'{"sample_id": "%s\\ud800", "decision": "keep"}',
    b'{"sample_id": "%s", "decision": "keep\\udc00"}',
    b'{"sample_id": "%s", "decision": "keep", "\\ud800": 1}',
])
def test_a_lone_surrogate_gets_400_and_changes_nothing(app_2d, body):
    c, view, store = app_2d
    sid = _ok(view)["sample_id"].encode()
    r = c.post("/api/decision", content=body.replace(b"%s", sid), headers={**W, **J})
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    assert store.history() == []


def _deep(sid, depth):
    inner = b"[" * depth + b"]" * depth
    return b'{"sample_id": "%s", "decision": "keep", "x": %s}' % (sid.encode(), inner)


@pytest.mark.parametrize(("make", "status"), [
    (lambda sid: _deep(sid, 5000), 400),
    (lambda sid: _deep(sid, 100), 400),
    (lambda sid: b"[" * 5000 + b"]" * 5000, 400),
    (lambda sid: b'{"a":' * 2500 + b"1" + b"}" * 2500, 400),
    (lambda sid: b"null", 400), (lambda sid: b"1", 400), (lambda sid: b'"keep"', 400),
    (lambda sid: b"true", 400), (lambda sid: b"", 400), (lambda sid: b"\xff\xfe{", 400),
    (lambda sid: b'{"sample_id": "%s", "decision": "keep", "n": %s}' % (sid.encode(), b"9" * 5000), 400),
    (lambda sid: b'{"sample_id": "%s", "decision": "keep", "p": "%s"}' % (sid.encode(), b"x" * 70_000), 413),
])
def test_hostile_bodies_get_4xx_and_change_nothing(app_2d, make, status):
    c, view, store = app_2d
    r = c.post("/api/decision", content=make(_ok(view)["sample_id"]), headers={**W, **J})
    assert r.status_code == status and "error" in r.json()
    assert store.history() == []


def test_a_huge_streamed_body_is_cut_off_with_413(app_2d):
    """No Content-Length (chunked): refused all the same."""
    c, view, store = app_2d

    def chunks():
        for _ in range(1000):  # 64 MiB
            yield b" " * 65536

    r = c.post("/api/decision", content=chunks(), headers={**W, **J})
    assert r.status_code == 413 and store.history() == []


@pytest.mark.parametrize("length", ["abc", "-5", "99999999999999999999"])
def test_a_bad_content_length_gets_4xx(app_2d, length):
    c, view, store = app_2d
    r = c.post("/api/decision", content=json.dumps(_ok(view)).encode(),
               headers={**W, **J, "content-length": length})
    assert 400 <= r.status_code < 500 and store.history() == []


def test_a_token_that_is_not_ascii_gets_403_not_500(app_2d):
    c, view, store = app_2d
    assert c.get("/api/cases?t=%C3%A9t%C3%A9").status_code == 403
    assert c.get("/?t=%C3%A9").status_code == 403
    r = c.post("/api/decision", json=_ok(view), headers={TOKEN_HEADER: "\u00e9t\u00e9".encode("latin-1")})
    assert r.status_code == 403 and store.history() == []


# ------------------------------------------------------------------ 5. broken audit files
@pytest.mark.parametrize(("text", "what"), [
    ("", "empty"),
    ("\n\n", "empty"),
    ('sample_id,detector,score,flagged\n"echo00000,dice,0.5,True\n', "not a valid CSV"),
    ("sample_id,detector,score,flagged\na,b,1,True,extra,more\n", "not a valid CSV"),
    ("sample_id,score\necho00000,0.5\n", "missing columns"),
    ("sample_id,detector,score,flagged\necho00000,dice,high,True\n", "score"),
    ("sample_id,detector,score,flagged\necho00000,dice,0.5,maybe\n", "flagged"),
    ("sample_id,detector,score,flagged\necho00000,dice,0.5,True\necho00000,dice,0.7,False\n",
     "twice"),
    ("sample_id,detector,score,flagged\n,dice,0.5,True\n", "sample_id"),
    ("sample_id,detector,score,flagged\necho00000,,0.5,True\n", "detector"),
    ("sample_id,detector,score,flagged,corrupted\necho00000,dice,0.5,True,perhaps\n", "corrupted"),
    ("sample_id,detector,score,flagged\n", "no scores"),
])
def test_a_broken_scores_csv_is_a_data_error_naming_it(audit_2d, tmp_path, text, what):
    aud = audit_2d[0]
    (aud / "scores.csv").write_text(text)
    with pytest.raises(DataError, match=what) as exc:
        open_audit(aud)
    msg = str(exc.value)
    assert "scores.csv" in msg and "\n" not in msg
    with pytest.raises(DataError, match="scores.csv"):
        export_review(aud, tmp_path / "fixed")


def test_a_binary_scores_csv_is_a_data_error(audit_2d):
    aud = audit_2d[0]
    (aud / "scores.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50)
    with pytest.raises(DataError, match="scores.csv"):
        open_audit(aud)


@pytest.mark.parametrize(("text", "what"), [
    ("", "empty"),
    ('sample_id,detector,slice,score\n"echo00000,expected-dice,0,0.5\n', "not a valid CSV"),
    ("sample_id,score\necho00000,0.5\n", "missing columns"),
    ("sample_id,detector,slice,score\necho00000,expected-dice,first,0.5\n", "slice"),
    ("sample_id,detector,slice,score\necho00000,expected-dice,0,bad\n", "score"),
])
def test_a_broken_slice_scores_csv_is_a_data_error_naming_it(audit_2d, text, what):
    aud = audit_2d[0]
    (aud / "slice_scores.csv").write_text(text)
    with pytest.raises(DataError, match=what) as exc:
        open_audit(aud)
    assert "slice_scores.csv" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(("name", "text", "what"), [
    ("rank.json", "{not json", "not valid JSON"),
    ("rank.json", "[1, 2]", "expected a JSON object"),
    ("rank.json", "", "not valid JSON"),
    ("rank.json", "[" * 5000 + "]" * 5000, "not valid JSON|expected a JSON object"),
    ("metrics.json", "{not json", "not valid JSON"),
    ("metrics.json", '"a string"', "expected a JSON object"),
])
def test_a_broken_record_is_a_data_error_naming_it(audit_2d, name, text, what):
    aud = audit_2d[0]
    if name == "metrics.json":
        (aud / "rank.json").unlink()
        _set_kind(aud, "audit")
    (aud / name).write_text(text)
    with pytest.raises(DataError, match=what) as exc:
        open_audit(aud)
    assert name in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(("key", "value"), [
    ("slice_axis", "sideways"), ("detectors", 5), ("prediction_files", ["a.npy"]),
    ("prediction_files", {"echo00000": 5}), ("data", 7),
])
def test_a_record_field_of_the_wrong_type_is_a_data_error(audit_2d, key, value):
    aud = audit_2d[0]
    rec = json.loads((aud / "rank.json").read_text())
    rec[key] = value
    if key == "data":
        rec.pop("data_resolved")
    (aud / "rank.json").write_text(json.dumps(rec))
    with pytest.raises(DataError, match=f"rank.json.*{key}"):
        open_audit(aud)


def test_the_cli_says_one_line_and_exits_2(audit_2d, tmp_path):
    from ..conftest import run_cli

    aud = audit_2d[0]
    (aud / "scores.csv").write_text('sample_id,detector,score,flagged\n"oops,dice,1,True\n')
    assert run_cli(["review", "export", str(aud), "--out", str(tmp_path / "fixed")]) == 2


def _set_kind(aud, kind):
    """Say in ``run.json`` that the folder holds a run of ``kind``."""
    info = json.loads((aud / "run.json").read_text())
    from noisyseg.run import RECORDS

    (aud / "run.json").write_text(json.dumps(info | {"kind": kind, "record": RECORDS[kind]}))


@pytest.mark.parametrize(("text", "what"), [
    ("{not json", "not valid JSON"), ('{"kind": "nonsense", "format_version": 1}', "kind"),
    ('{"kind": "rank", "format_version": 99}', "newer"),
    ('{"kind": "rank", "format_version": "1"}', "format_version"),
    ('{"kind": "rank", "format_version": 1, "files": "scores.csv"}', "files"),
])
def test_a_broken_run_json_is_a_data_error_naming_it(audit_2d, text, what):
    aud = audit_2d[0]
    (aud / "run.json").write_text(text)
    with pytest.raises(DataError, match=what) as exc:
        open_audit(aud)
    assert "run.json" in str(exc.value) and "\n" not in str(exc.value)


def test_run_json_names_the_kind_and_the_review_believes_it(audit_2d):
    aud = audit_2d[0]
    info = json.loads((aud / "run.json").read_text())
    assert info["kind"] == "rank" and info["format_version"] == 1 and "scores.csv" in info["files"]
    _set_kind(aud, "audit")  # an audit's record is metrics.json, which this folder lacks
    with pytest.raises(DataError, match="metrics.json is missing"):
        open_audit(aud)
    (aud / "metrics.json").write_text("{}")
    _set_kind(aud, "train")
    with pytest.raises(DataError, match="training without detectors"):
        open_audit(aud)
    _set_kind(aud, "nnunet")  # one nnU-Net fold's training losses: ranked, then reviewed
    with pytest.raises(DataError, match="nnU-Net fold.*noisyseg rank --probs"):
        open_audit(aud)
    (aud / "run.json").unlink()
    with pytest.raises(DataError, match="no run.json"):
        open_audit(aud)


# ------------------------------------------------------------------ 6. the model check
def _as_audit(aud, src, check):
    """Turn the ranked folder into what ``noisyseg audit`` writes (metrics.json and
    pseudo_labels/), with ``check`` as its model check (None: no key)."""
    rec = json.loads((aud / "rank.json").read_text())
    (aud / "rank.json").unlink()
    rec.pop("prediction_files")
    if check is not None:
        rec["model_check"] = check
    (aud / "metrics.json").write_text(json.dumps(rec))
    _set_kind(aud, "audit")
    (aud / "pseudo_labels").mkdir()
    for p in (src / "masks").iterdir():
        shutil.copy(p, aud / "pseudo_labels" / p.name)


FAILED = {"val_dice": 0.41, "floor": 0.7, "passed": False,
          "message": "the final network's validation Dice 0.41 is below the floor 0.70"}


@pytest.mark.parametrize(("check", "banner"), [
    (FAILED, FAILED),
    ({**FAILED, "val_dice": None, "message": "no validation split"}, {**FAILED, "val_dice": None,
                                                                      "message": "no validation split"}),
    ({"val_dice": 0.9, "floor": 0.7, "passed": True, "message": "ok"},
     {"val_dice": 0.9, "floor": 0.7, "passed": True, "message": "ok"}),
    (None, None),
])
def test_the_model_check_reaches_the_page(audit_2d, check, banner):
    aud, src = audit_2d[:2]
    _as_audit(aud, src, check)
    view = open_audit(aud)
    c = TestClient(make_app(view, DecisionStore(aud / "review.sqlite"), reviewer="ann", token=TOKEN),
                   base_url=BASE)
    body = c.get(f"/api/cases?t={TOKEN}").json()
    assert body["kind"] == "audit" and body["model_check"] == banner


def test_a_non_finite_val_dice_is_sent_as_null(audit_2d):
    aud, src = audit_2d[:2]
    _as_audit(aud, src, None)
    rec = json.loads((aud / "metrics.json").read_text())
    (aud / "metrics.json").write_text(json.dumps(rec)[:-1] + ', "model_check": {"val_dice": NaN, '
                                      '"floor": 0.7, "passed": false, "message": "diverged"}}')
    view = open_audit(aud)
    c = TestClient(make_app(view, DecisionStore(aud / "review.sqlite"), reviewer="ann", token=TOKEN),
                   base_url=BASE)
    r = c.get(f"/api/cases?t={TOKEN}")
    assert r.status_code == 200 and r.json()["model_check"]["val_dice"] is None


@pytest.mark.parametrize("check", ["failed", {"passed": "no", "message": "x"},
                                   {"passed": False, "message": 3}, {"passed": False, "message": "x",
                                                                     "floor": "high"}])
def test_a_malformed_model_check_is_a_data_error(audit_2d, check):
    aud, src = audit_2d[:2]
    _as_audit(aud, src, check)
    with pytest.raises(DataError, match="metrics.json.*model_check"):
        open_audit(aud)


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")
@pytest.mark.parametrize("check", [FAILED, {**FAILED, "passed": True, "message": ""}, None])
def test_the_page_shows_a_failed_model_check_above_the_cases(audit_2d, tmp_path, check):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from .test_browser import _ready, start_server

    aud, src = audit_2d[:2]
    _as_audit(aud, src, check)
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium")
    d = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    proc, url = start_server(aud)
    try:
        d.get(url)
        _ready(d)
        banner = d.find_element("id", "trust")
        if check is not FAILED:
            assert not banner.is_displayed()
            return
        assert banner.is_displayed() and FAILED["message"] in banner.text
        assert "not worth accepting" in banner.text
        side = d.find_element("id", "side")
        assert banner.rect["y"] + banner.rect["height"] <= side.rect["y"]  # above the case list
        d.save_screenshot(str(tmp_path / "banner.png"))
    finally:
        d.quit()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
