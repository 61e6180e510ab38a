"""The review app over HTTP: what it serves, the token, path traversal, malformed requests."""

import io

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from noisyseg.plot import CT_WINDOW
from noisyseg.review import TOKEN_HEADER, DecisionStore, make_app, open_audit
from noisyseg.review.render import label_layer, zoom

TOKEN = "s3cret-token"
W = {TOKEN_HEADER: TOKEN}


@pytest.fixture()
def client_2d(audit_2d):
    aud = audit_2d[0]
    view = open_audit(aud)
    store = DecisionStore(aud / "review.sqlite", cases=set(view.cases["sample_id"]))
    return TestClient(make_app(view, store, reviewer="ann", token=TOKEN),
                      base_url="http://127.0.0.1:8765"), view, store


def _png(resp):
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(resp.content)))


def test_cases_come_ranked_with_every_detector(client_2d, audit_2d):
    c, view, _ = client_2d
    body = c.get(f"/api/cases?t={TOKEN}").json()
    assert body["n"] == 14 and body["primary"] == "expected-dice"
    assert body["detectors"][0] == "expected-dice" and len(body["detectors"]) == 3
    scores = [r[2] for r in body["rows"]]
    assert scores == sorted(scores, reverse=True) and [r[1] for r in body["rows"]] == list(range(1, 15))
    # the probabilities follow the clean masks: the 7 corrupted cases rank first
    noisy = audit_2d[3]
    assert all(noisy[r[0]] for r in body["rows"][:7]) and not any(noisy[r[0]] for r in body["rows"][7:])
    assert body["corrupted"][:7] == [True] * 7 and body["log"] == [] and body["seq"] == 0


def test_case_layers_are_the_given_mask_and_the_pseudo_label(client_2d, audit_2d):
    c, view, _ = client_2d
    clean = audit_2d[2]
    meta = c.get(f"/api/case/0?t={TOKEN}").json()
    sid = meta["sample_id"]
    assert meta["shape"] == [32, 32] and len(meta["planes"]) == 1
    given = view.ds.read_label(int(view.cases["index"][0]))[0]
    assert meta["labels_differ"] == int((given != clean[sid]).sum()) > 0
    q = f"t={TOKEN}&row=0&plane=0&index=0"
    img = _png(c.get(f"/api/render?{q}&layer=image"))
    assert img.shape == (32, 32) and img.dtype == np.uint8 and img.max() > img.min()
    z = zoom((32, 32))
    fill = _png(c.get(f"/api/render?{q}&layer=pseudo&style=fill"))
    assert fill.shape == (32 * z, 32 * z, 4)
    assert np.array_equal(fill[::z, ::z, 3] > 0, clean[sid] > 0)  # the pseudo-label = the truth
    diff = _png(c.get(f"/api/render?{q}&layer=diff"))
    assert np.array_equal(diff[..., 3] > 0, given != clean[sid])
    outline = _png(c.get(f"/api/render?{q}&layer=given&style=outline"))
    assert 0 < (outline[..., 3] > 0).sum() < (given > 0).sum() * z * z
    # a window from the page changes the grey levels
    dark = _png(c.get(f"/api/render?{q}&layer=image&lo=0&hi=100000"))
    assert dark.max() < img.max()


def test_outline_is_the_inner_boundary():
    lab = np.zeros((7, 7), np.uint8)
    lab[2:5, 2:5] = 2
    a = label_layer(lab, style="outline")[..., 3] > 0
    expect = lab > 0
    expect[3, 3] = False  # the one interior pixel
    assert np.array_equal(a, expect)


def test_decisions_are_stored_and_polled(client_2d):
    c, view, store = client_2d
    sid = view.cases["sample_id"][0]
    r = c.post("/api/decision", json={"sample_id": sid, "decision": "accept", "note": "ok"}, headers=W)
    assert r.status_code == 200 and r.json()["decision"]["seq"] == 1
    assert store.latest()[sid].reviewer == "ann"
    polled = c.get(f"/api/decisions?since=0&t={TOKEN}").json()
    assert polled["seq"] == 1 and polled["rows"][0]["decision"] == "accept"
    assert c.get(f"/api/decisions?since=1&t={TOKEN}").json()["rows"] == []
    assert c.get(f"/api/cases?t={TOKEN}").json()["log"][0]["sample_id"] == sid


@pytest.mark.parametrize(("method", "url", "kw", "status"), [
    ("get", "/", {}, 403),
    ("get", "/?t=wrong", {}, 403),
    ("get", "/api/cases", {}, 403),
    ("get", "/api/cases?t=wrong", {}, 403),
    ("get", "/api/render?row=0&layer=image&plane=0", {}, 403),
    # a write needs the header: a token in the URL (which any page can put there) is not enough
    ("post", f"/api/decision?t={TOKEN}", {"json": {"sample_id": "echo00000", "decision": "keep"}}, 403),
    ("post", "/api/decision", {"json": {"sample_id": "echo00000", "decision": "keep"},
                               "headers": {TOKEN_HEADER: "wrong"}}, 403),
])
def test_the_token_guards_every_request(client_2d, method, url, kw, status):
    c, _, store = client_2d
    assert getattr(c, method)(url, **kw).status_code == status
    assert store.history() == []


@pytest.mark.parametrize("url", [
    "/static/../../../../etc/passwd", "/static/..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/%2e%2e/%2e%2e/etc/passwd", "/static/index.html/../../scores.csv",
    "/static/review.sqlite", "/scores.csv", "/../scores.csv", "/aud/scores.csv",
    f"/api/case/..%2F..%2Fetc%2Fpasswd?t={TOKEN}", f"/api/case/-1?t={TOKEN}",
    f"/api/case/14?t={TOKEN}", f"/api/render?t={TOKEN}&row=../../etc/passwd&layer=image&plane=0",
])
def test_only_the_apps_files_and_the_audits_cases_are_served(client_2d, url):
    c, _, _ = client_2d
    r = c.get(url)
    assert r.status_code in (400, 404) and b"root:" not in r.content
    assert b"sample_id" not in r.content


def test_static_files_are_served(client_2d):
    c, _, _ = client_2d
    assert "noisyseg review" in c.get(f"/?t={TOKEN}").text
    assert c.get("/static/review.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/static/review.css").status_code == 200


@pytest.mark.parametrize(("kw", "status"), [
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b"sample_id=a", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415),
    ({"json": {"sample_id": "echo00000"}}, 400),
    ({"json": {"sample_id": "echo00000", "decision": "delete"}}, 400),
    ({"json": {"sample_id": "nope", "decision": "keep"}}, 400),
    ({"json": {"sample_id": "echo00000", "decision": "keep", "note": 5}}, 400),
    ({"json": {"sample_id": "echo00000", "decision": "keep", "note": "x" * 20000}}, 413),
])
def test_malformed_writes_get_4xx_and_change_nothing(client_2d, kw, status):
    c, view, store = client_2d
    headers = {**W, **kw.pop("headers", {})}
    r = c.post("/api/decision", headers=headers, **kw)
    assert r.status_code == status and "error" in r.json()
    assert store.history() == []


@pytest.mark.parametrize("query", [
    "row=0&layer=secret&plane=0", "row=0&layer=image&plane=3", "row=x&layer=image&plane=0",
    "row=0&layer=image&plane=0&lo=nan&hi=1", "row=0&layer=given&plane=0&style=glow",
    "row=99&layer=image&plane=0",
])
def test_malformed_reads_get_4xx(client_2d, query):
    c, _, _ = client_2d
    assert c.get(f"/api/render?t={TOKEN}&{query}").status_code in (400, 404)


def test_volumes_open_at_the_worst_slice_in_three_planes(audit_nnunet):
    aud, raw, truth = audit_nnunet
    view = open_audit(aud)
    c = TestClient(make_app(view, DecisionStore(aud / "review.sqlite"), reviewer="ann", token=TOKEN),
                   base_url="http://127.0.0.1:8765")
    meta = c.get(f"/api/case/0?t={TOKEN}").json()
    assert meta["sample_id"] == "case_002"  # structure 2 left out: the worst case
    assert meta["shape"] == [6, 14, 16] and meta["spacing"] == pytest.approx([2.5, 0.8, 0.7])
    assert [p["name"] for p in meta["planes"]] == ["axial", "coronal", "sagittal"]
    assert meta["worst_slice"] in (2, 3) and meta["planes"][0]["start"] == meta["worst_slice"]
    assert [(p["rows"], p["cols"]) for p in meta["planes"]] == [(14, 16), (6, 16), (6, 14)]
    assert meta["window"] == list(CT_WINDOW)  # the CT channel gets the fixed CT window
    for plane, n in ((0, 6), (1, 14), (2, 16)):
        q = f"t={TOKEN}&row=0&plane={plane}&index={n - 1}&layer=image"
        assert c.get(f"/api/render?{q}").status_code == 200
        assert c.get(f"/api/render?{q.replace(f'index={n - 1}', f'index={n}')}").status_code == 404
    # the pseudo-label in the worst axial slice holds structure 2; the given mask does not
    z = zoom((14, 16))
    q = f"t={TOKEN}&row=0&plane=0&index={meta['worst_slice']}&style=fill"
    pseudo = _png(c.get(f"/api/render?{q}&layer=pseudo"))[::z, ::z]
    given = _png(c.get(f"/api/render?{q}&layer=given"))[::z, ::z]
    lab = truth["case_002"][meta["worst_slice"]]
    assert np.array_equal(pseudo[..., 3] > 0, lab > 0)
    assert np.array_equal(given[..., 3] > 0, np.isin(lab, [1]))
