"""The review page driven as a person uses it: headless Chromium (Debian's chromium and
chromium-driver, which `.ci/run` installs) against a real `noisyseg review` server."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from noisyseg.data import load_dataset
from noisyseg.review import TOKEN_HEADER, DecisionStore, export_review

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER) and os.environ.get("NOISYSEG_REQUIRE_BROWSER"):
    raise RuntimeError("NOISYSEG_REQUIRE_BROWSER is set but chromium/chromedriver are missing")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=(
    "needs a Chromium and its chromedriver (apt-get install chromium chromium-driver)"))


def start_server(aud, *, reviewer="tester", port=0):
    """`noisyseg review AUD` in a child process; (process, URL) once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "noisyseg.cli", "review", str(aud), "--port",
                             str(port), "--reviewer", reviewer], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    deadline = time.time() + 120
    seen = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("open http"):
            return proc, line.split()[1]
    proc.kill()
    raise AssertionError("server did not start: " + "".join(seen))


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    d = webdriver.Chrome(options=opts, service=Service(DRIVER))
    yield d
    d.quit()


def _ready(d, sid=None, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout).until(
        lambda d: (r := d.execute_script("return document.body.dataset.ready")) and (
            sid is None or r == sid) and r)


def _keys(d, keys):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(d).send_keys(keys).perform()


def _wait(cond, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_note_typed_before_deciding_survives_a_refresh(audit_2d, browser):
    """A reviewer types a note and presses Esc; before they decide, the page re-renders its
    decision panel (another reviewer's decision arrives by the poll, or the save of the
    previous case returns late): the note must stay, and go with the decision."""
    from selenium.webdriver.common.keys import Keys

    aud = audit_2d[0]
    d = browser
    proc, url = start_server(aud)
    try:
        d.get(url)
        first = _ready(d)
        _keys(d, "c")
        _keys(d, "draft note")
        _keys(d, Keys.ESCAPE)
        other = next(r[0] for r in d.execute_script(
            "return fetch('/api/cases?t=' + new URLSearchParams(location.search).get('t'))"
            ".then(r => r.json()).then(b => b.rows)") if r[0] != first)
        token = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["t"][0]
        base = url.split("/?")[0].rstrip("/")
        req = urllib.request.Request(base + "/api/decision", method="POST", data=json.dumps(
            {"sample_id": other, "decision": "keep"}).encode(), headers={
            "Content-Type": "application/json", TOKEN_HEADER: token})
        urllib.request.urlopen(req, timeout=10).read()
        # the page polls every 4 s; wait until it has seen the other decision
        _wait(lambda: d.execute_script(
            "return document.getElementById('progress').textContent").startswith("1 "), 15)
        assert d.find_element("id", "note").get_attribute("value") == "draft note"
        _keys(d, "k")
        store = DecisionStore(aud / "review.sqlite")
        _wait(lambda: first in store.latest())
        assert store.latest()[first].note == "draft note"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_a_reviewer_goes_through_the_suspects_with_the_keyboard(audit_2d, browser, tmp_path):
    aud, _, clean, _ = audit_2d
    d = browser
    proc, url = start_server(aud)
    try:
        d.get(url)
        first = _ready(d)
        ids = [r[0] for r in d.execute_script(
            "return fetch('/api/cases?t=' + new URLSearchParams(location.search).get('t'))"
            ".then(r => r.json()).then(b => b.rows)")]
        assert first == ids[0]  # the page opens at the top suspect
        store = DecisionStore(aud / "review.sqlite")
        _keys(d, "k")                       # keep #1, on to #2
        _ready(d, ids[1])
        _keys(d, "a")                       # accept #2's pseudo-label, on to #3
        _ready(d, ids[2])
        _keys(d, "c")                       # write a note: its letters are text, not commands
        _keys(d, "LA cut off at the apex")
        from selenium.webdriver.common.keys import Keys

        _keys(d, Keys.ESCAPE)
        _keys(d, "r")                       # re-annotate #3, on to #4
        _ready(d, ids[3])
        _wait(lambda: len(store.latest()) == 3)
        latest = store.latest()
        assert [latest[s].decision for s in ids[:3]] == ["keep", "accept", "reannotate"]
        assert latest[ids[2]].note == "LA cut off at the apex"
        assert {v.reviewer for v in latest.values()} == {"tester"}
        _keys(d, "p")                       # back to #3: the page shows its decision
        _ready(d, ids[2])
        assert "re-annotate" in d.find_element("id", "current").text
        # layers: the difference is off until 3 is pressed, then drawn
        diff = d.find_element("css selector", ".plane img[data-layer=diff]")
        assert not diff.is_displayed()
        _keys(d, "3")
        _wait(lambda: diff.is_displayed() and d.execute_script("return arguments[0].naturalWidth", diff) > 0)
        d.save_screenshot(str(tmp_path / "review.png"))
        # reload: nothing lost, and the page resumes at the first undecided case
        d.refresh()
        _ready(d, ids[3])
        assert d.find_element("id", "progress").text == f"3 / {len(ids)} decided"
        # a second tab decides too; the first sees it within a poll
        first_tab = d.current_window_handle
        d.switch_to.new_window("tab")
        d.get(url)
        _ready(d, ids[3])
        _keys(d, "k")
        _ready(d, ids[4])
        d.close()
        d.switch_to.window(first_tab)
        _wait(lambda: d.find_element("id", "progress").text == f"4 / {len(ids)} decided", 15)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    out = tmp_path / "fixed"
    export_review(aud, out)
    fixed = load_dataset(str(out))
    assert np.array_equal(fixed.masks[fixed.sample_ids.index(ids[1])], clean[ids[1]])


def test_volumes_start_at_the_worst_slice_and_the_arrows_move_through_it(audit_nnunet, browser):
    aud = audit_nnunet[0]
    d = browser
    d.get("about:blank")
    d.get_log("browser")  # the earlier page's errors (its server is gone)
    proc, url = start_server(aud)
    try:
        d.get(url)
        assert _ready(d) == "case_002"
        planes = d.find_elements("css selector", ".plane")
        assert [p.find_element("css selector", ".title span").text for p in planes] == [
            "axial", "coronal", "sagittal"]
        idx = planes[0].find_element("css selector", ".idx")
        start = int(idx.text.split("/")[0])
        assert start - 1 in (2, 3)  # the worst slice (1-based on the page)
        d.execute_script("document.querySelector('.plane').dispatchEvent(new MouseEvent('mouseenter'))")
        from selenium.webdriver.common.keys import Keys

        _keys(d, Keys.ARROW_RIGHT)
        _wait(lambda: int(idx.text.split("/")[0]) == start + 1)
        imgs = planes[0].find_elements("css selector", "img")
        _wait(lambda: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
                          for i in imgs if i.is_displayed()))
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
