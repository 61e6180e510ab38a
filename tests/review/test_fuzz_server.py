"""Fuzzing the review server's HTTP API: whatever arrives, the answer is below 500 and a
refused request stores nothing.

``NOISYSEG_FUZZ_EXAMPLES`` sets the examples per test (40 by default; 2000 for a long run).
"""

import json
import os
import re
import urllib.parse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from noisyseg.review import TOKEN_HEADER, DecisionStore, make_app, open_audit
from noisyseg.review.store import DECISIONS

from ..conftest import soft_probs

TOKEN = "fuzz-token"
FUZZ = settings(max_examples=int(os.environ.get("NOISYSEG_FUZZ_EXAMPLES", "40")), deadline=None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(client on 127.0.0.1, view, store) over a ranked audit of 10 echo images. One app for
    every example: each checks the store against itself, before and after its request."""
    from noisyseg.api import run_rank
    from noisyseg.data import synthetic_echo, write_folder

    tmp = tmp_path_factory.mktemp("fuzz")
    ds = synthetic_echo(n=10, size=32, seed=2)
    write_folder(ds, tmp / "data", fmt="png")
    (tmp / "probs").mkdir()
    for sid, m in zip(ds.sample_ids, ds.masks, strict=True):
        np.save(tmp / "probs" / f"{sid}.npy", soft_probs(m, k=4))
    run_rank(data=str(tmp / "data"), probs=[tmp / "probs"], out=tmp / "aud", progress=False)
    view = open_audit(tmp / "aud")
    store = DecisionStore(tmp / "aud" / "review.sqlite", cases=set(view.cases["sample_id"]))
    app = make_app(view, store, reviewer="fuzz", token=TOKEN)
    client = TestClient(app, base_url="http://127.0.0.1:8765", client=("127.0.0.1", 50000))
    yield client, view, store
    store.close()


# ------------------------------------------------------------------ strategies
_LOCAL = re.compile(r"localhost|127\.0\.0\.1|::1|0:0:0:0:0:0:0:1", re.IGNORECASE)
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
good_hosts = st.sampled_from(["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST",
                              "127.0.0.1"])
bad_hosts = st.one_of(
    st.sampled_from(["evil.com", "evil.com:8765", "127.0.0.1.evil.com", "localhost.evil.com",
                     "testserver", "0.0.0.0:8765", "[::2]", "", "[::1", "127.0.0.1:80:80",
                     "127.0.0.1@evil.com", "127.0.0.1/x", "xn--lcalhost-7za"]),
    printable.filter(lambda h: not _LOCAL.search(h)))
good_origins = st.sampled_from([None, "http://127.0.0.1:8765", "http://localhost:3000",
                                "https://[::1]:8765", "http://LOCALHOST"])
bad_origins = st.one_of(
    st.sampled_from(["null", "http://evil.com", "https://127.0.0.1.evil.com", "ftp://127.0.0.1",
                     "http://127.0.0.1:8765/x", "http://127.0.0.1@evil.com", "127.0.0.1", "",
                     "http://[::1", "file://", "chrome-extension://abc"]),
    printable.filter(lambda o: not _LOCAL.search(o)))
numbers = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-inf", "1e999", "-0", "0x10", " 1", "1_0", "\u0661",
                     "9" * 5000, "0" * 400 + "1", "1.5", "+2"]),
    st.text(max_size=20))
render_keys = st.sampled_from(["row", "layer", "plane", "index", "style", "lo", "hi", "since", "t"])
queries = st.dictionaries(st.one_of(render_keys, st.text(max_size=10)),
                          st.one_of(numbers, st.sampled_from(
                              ["image", "given", "pseudo", "diff", "outline", "fill", "secret"])),
                          max_size=8)
surrogates = st.characters(categories=["Cs"])
texts = st.one_of(st.text(max_size=30), st.text(surrogates, min_size=1, max_size=3),
                  st.text(st.characters(codec="utf-8"), max_size=3000))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=20)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "", "application/x-www-form-urlencoded", "application/jsonx",
                                 "multipart/form-data; boundary=x", "APPLICATION/JSON"])


@st.composite
def decision_bodies(draw, sample_ids):
    """Bytes of a POST body: near-valid decisions, any JSON, deep nesting or raw bytes."""
    kind = draw(st.sampled_from(["decision", "json", "deep", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=3000))
    if kind == "deep":
        depth = draw(st.integers(1, 6000))
        o, c = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (o * depth + "0" + c * depth).encode()
    if kind == "json":
        value = draw(json_values)
    else:
        value = {"sample_id": draw(st.one_of(st.sampled_from(sample_ids), texts, json_values)),
                 "decision": draw(st.one_of(st.sampled_from(DECISIONS), texts, json_values)),
                 "note": draw(st.one_of(texts, json_values))}
        if draw(st.booleans()):
            value[draw(texts)] = draw(json_values)
    return json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


def _q(params):
    return urllib.parse.urlencode(params, encoding="utf-8", errors="surrogatepass")


def _get(c, url, **kw):
    r = c.get(url, **kw)
    assert r.status_code < 500, (url, r.status_code, r.text[:200])
    return r


# ------------------------------------------------------------------ reads
@FUZZ
@given(params=queries, token=st.booleans(), path=st.sampled_from(["/api/render", "/api/cases",
                                                                  "/api/decisions", "/"]))
def test_reads_with_any_query_answer_below_500(server, params, token, path):
    c, _, store = server
    before = store.history()
    if token:
        params = {**params, "t": TOKEN}
    _get(c, f"{path}?{_q(params)}")
    assert store.history() == before


@FUZZ
@given(raw=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=80))
def test_raw_query_strings_answer_below_500(server, raw):
    c, _, _ = server
    for path in ("/api/render", "/api/decisions", "/api/cases"):
        _get(c, f"{path}?t={TOKEN}&{raw}")


@FUZZ
@given(row=st.one_of(numbers, st.text(max_size=30)), params=queries)
def test_case_rows_of_any_spelling_answer_below_500(server, row, params):
    c, view, _ = server
    r = _get(c, f"/api/case/{urllib.parse.quote(row, safe='', errors='surrogatepass')}?"
                f"{_q({**params, 't': TOKEN})}")
    if r.status_code == 200:
        assert 0 <= r.json()["row"] < len(view.cases)


@FUZZ
@given(host=bad_hosts, path=st.sampled_from(["/", "/api/cases", "/api/case/0", "/static/review.js",
                                             "/api/decisions?since=0"]))
def test_a_foreign_host_is_refused_on_every_read(server, host, path):
    c, _, _ = server
    sep = "&" if "?" in path else "?"
    r = _get(c, f"{path}{sep}t={TOKEN}", headers={"host": host})
    assert r.status_code == 400 and b"sample_id" not in r.content


# ------------------------------------------------------------------ the write
def _tagged(good, bad):
    return st.one_of(good.map(lambda v: (True, v)), bad.map(lambda v: (False, v)))


@FUZZ
@given(data=st.data(), ctype=content_types, host=_tagged(good_hosts, bad_hosts),
       origin=_tagged(good_origins, bad_origins),
       token=st.sampled_from([TOKEN, TOKEN, "wrong", "", TOKEN + " "]))
def test_any_post_answers_below_500_and_a_refused_one_stores_nothing(server, data, ctype, host,
                                                                     origin, token):
    c, view, store = server
    (host_ok, host), (origin_ok, origin) = host, origin
    body = data.draw(decision_bodies(list(view.cases["sample_id"])))
    headers = {"host": host, "content-type": ctype, TOKEN_HEADER: token}
    if origin is not None:
        headers["origin"] = origin
    before = store.history()
    r = c.post("/api/decision", content=body, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text[:200])
    after = store.history()
    if r.status_code != 200:
        assert "error" in r.json() and after == before
        if not host_ok:
            assert r.status_code == 400
        elif token != TOKEN or not origin_ok:
            assert r.status_code == 403
        return
    # stored: everything about the request was right, and it is the one new row
    assert host_ok and origin_ok and token == TOKEN and ctype.lower().startswith("application/json")
    assert len(after) == len(before) + 1 and after[-1].to_dict() == r.json()["decision"]
    sent = json.loads(body)
    assert (after[-1].sample_id, after[-1].decision, after[-1].note) == (
        sent["sample_id"], sent["decision"], sent.get("note", ""))


@FUZZ
@given(size=st.integers(16_385, 200_000), chunked=st.booleans())
def test_large_bodies_are_refused_with_413(server, size, chunked):
    c, view, store = server
    before = store.history()
    sid = view.cases["sample_id"].iloc[0]
    body = json.dumps({"sample_id": sid, "decision": "keep", "note": "x" * size}).encode()
    content = iter([body[i:i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    r = c.post("/api/decision", content=content,
               headers={"content-type": "application/json", TOKEN_HEADER: TOKEN})
    assert r.status_code == 413 and store.history() == before
