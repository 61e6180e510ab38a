"""The review app (`noisyseg review`): how fast a page opens and moves on, and that a killed
server loses no acknowledged decision.

Run: ``python benchmarks/bench_review.py [--n 10000] [--volumes 200] [--decisions 1000]``;
prints JSON (docs/results/performance.md). Needs Debian's ``chromium`` and ``chromium-driver`` for
the page timings (the HTTP timings and the kill test run without them). Writes its data
under ``--workdir`` (default: a temporary folder, removed unless ``--keep``).

- Audits: ``--n`` 2-D cases of 256 x 256 (a folder of PNG images and masks, a third of the
  LV cavities dilated 3 px; the model's predictions are label maps of the clean masks, NIfTI) and
  ``--volumes`` volumes of 64 x 256 x 256 (``synthetic-ct`` written by ``noisyseg corrupt``
  as NIfTI, liver dilated 4 mm on half; predictions: the clean label volumes), each ranked by
  ``noisyseg rank``.
- Page: headless Chromium opens the URL; ``first_case_ms`` is the time from navigation start
  until every layer of the first case has loaded (the page stamps it, see ``review.js``);
  ``next_case_ms``: pressing ``j`` until the next case's layers have loaded, over
  ``--steps`` cases (median and max). ``server_start_s``: process start to URL printed.
- Kill: a scripted client posts ``--decisions`` decisions (distinct cases, random among
  keep/accept/re-annotate); the server is killed with SIGKILL at a random moment and
  restarted; the client retries what was not acknowledged. Then ``noisyseg review export``:
  every acknowledged decision must be in ``decisions.csv`` and every accepted case's mask
  must be its pseudo-label.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

PY = sys.executable


def make_2d(root: Path, n: int) -> str:
    from PIL import Image

    from noisyseg.corrupt import dilate
    from noisyseg.data import synthetic_echo_masks
    from noisyseg.data.io import Geometry, write_image

    data = root / "echo"
    for d in ("images", "masks"):
        (data / d).mkdir(parents=True, exist_ok=True)
    (root / "pred2d").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for start in range(0, n, 500):
        for j, m in enumerate(synthetic_echo_masks(n=min(500, n - start), size=256, seed=start + 1)):
            cid = f"case_{start + j:05d}"
            given = dilate(m, 3.0, rng=rng, classes=(1,)) if rng.random() < 1 / 3 else m
            img = (m * 50 + rng.normal(0, 10, m.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(img).save(data / "images" / f"{cid}.png")
            Image.fromarray(given.astype(np.uint8)).save(data / "masks" / f"{cid}.png")
            write_image(root / "pred2d" / f"{cid}.nii.gz", m.astype(np.uint8),
                        Geometry.from_spacing(m.shape))
    (data / "dataset.json").write_text(json.dumps(
        {"class_names": ["background", "lv_cavity", "myocardium", "atrium"]}))
    aud = root / "aud2d"
    _cli("rank", "--data", str(data), "--probs", str(root / "pred2d"), "--out", str(aud),
         "--no-progress")
    return str(aud)


def make_3d(root: Path, n: int) -> str:
    data = root / "ct"
    _cli("corrupt", "--data", f"synthetic-ct:n={n},size=256,slices=64", "--model", "dilate",
         "--strength", "4", "--volumetric", "--classes", "liver", "--fraction", "0.5",
         "--out", str(data), "--no-progress")
    aud = root / "aud3d"
    _cli("rank", "--data", str(data), "--probs", str(data / "masks_clean"), "--out", str(aud),
         "--no-progress")
    return str(aud)


def _cli(*args: str) -> None:
    subprocess.run([PY, "-m", "noisyseg.cli", *args], check=True)


def start_server(aud: str, port: int = 0) -> tuple[subprocess.Popen, str, float]:
    t = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "noisyseg.cli", "review", aud, "--port", str(port),
                             "--reviewer", "bench"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("open http"):
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, line.split()[1], time.perf_counter() - t
    raise RuntimeError(f"server did not start ({proc.wait()})")


def page_timings(aud: str, steps: int) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    proc, url, start_s = start_server(aud)
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or ""
    d = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        d.get(url)
        WebDriverWait(d, 60).until(lambda d: d.execute_script("return document.body.dataset.shownMs"))
        first = float(d.execute_script("return document.body.dataset.shownMs"))
        ids = d.execute_script("return fetch('/api/cases?t=' + new URLSearchParams(location.search)"
                               ".get('t')).then(r => r.json()).then(b => b.rows.map(r => r[0]))")
        pos = ids.index(d.execute_script("return document.body.dataset.shown"))
        step_ms = []
        steps = min(steps, len(ids) - pos - 1)
        for k in range(1, steps + 1):
            ActionChains(d).send_keys("j").perform()
            want = ids[pos + k]
            WebDriverWait(d, 30).until(lambda d, w=want: d.execute_script(
                "return document.body.dataset.shown") == w)
            step_ms.append(float(d.execute_script("return document.body.dataset.stepMs")))
            time.sleep(0.3)  # a reviewer looks at the case before moving on (prefetch runs)
        return {"cases": len(ids), "server_start_s": round(start_s, 2),
                "first_case_ms": round(first, 1),
                "next_case_ms_median": round(statistics.median(step_ms), 1),
                "next_case_ms_max": round(max(step_ms), 1), "steps": steps}
    finally:
        d.quit()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def _post(url: str, token: str, body: dict) -> dict:
    req = urllib.request.Request(url.split("/?")[0] + "/api/decision", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          "X-Noisyseg-Token": token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def kill_test(aud: str, n_decisions: int, out: Path, seed: int = 0) -> dict:
    import pandas as pd

    rng = random.Random(seed)
    shutil.rmtree(out, ignore_errors=True)
    log = Path(aud) / "review.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(log) + suffix).unlink(missing_ok=True)
    ids = pd.read_csv(Path(aud) / "scores.csv", dtype={"sample_id": str})["sample_id"].unique()
    cases = rng.sample(list(ids), n_decisions)
    plan = [(c, rng.choice(["keep", "accept", "reannotate"])) for c in cases]
    proc, url, _ = start_server(aud)
    token = url.split("t=")[1]
    kill_at = rng.uniform(0.2, 0.8)  # after this share of the decisions, in a second thread
    acked: dict[str, str] = {}
    kills = 0
    t0 = time.perf_counter()

    def killer(p: subprocess.Popen) -> None:
        while len(acked) < kill_at * n_decisions:
            time.sleep(0.001)
        os.kill(p.pid, signal.SIGKILL)

    threading.Thread(target=killer, args=(proc,), daemon=True).start()
    i = 0
    while i < len(plan):
        sid, dec = plan[i]
        try:
            r = _post(url, token, {"sample_id": sid, "decision": dec})
            assert r["decision"]["decision"] == dec
            acked[sid] = dec
            i += 1
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            try:
                proc.wait(10)  # the server is gone (killed), not merely slow
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"server alive but {sid} failed") from None
            kills += 1
            proc, url, _ = start_server(aud)  # a fresh port, a fresh token: the client re-reads
            token = url.split("t=")[1]
    post_s = time.perf_counter() - t0
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    _cli("review", "export", aud, "--out", str(out))
    dec = pd.read_csv(out / "decisions.csv", dtype={"sample_id": str})
    got = dict(zip(dec["sample_id"], dec["decision"], strict=True))
    missing = [s for s, d in acked.items() if got.get(s) != d]
    accepted = [s for s, d in acked.items() if d == "accept"]
    from noisyseg.data import load_dataset
    from noisyseg.review import open_audit

    view = open_audit(aud)
    fixed = load_dataset(str(out), lazy=True)
    pos = {s: i for i, s in enumerate(fixed.sample_ids)}
    wrong = 0
    for s in accepted[:200]:  # every accepted mask checked against its pseudo-label (up to 200)
        i = int(view.cases.loc[view.cases["sample_id"] == s, "index"].iloc[0])
        given = view.ds.read_label(i)[0]
        wrong += not np.array_equal(fixed.read_label(pos[s])[0], view.read_pseudo(i, given))
    return {"decisions": n_decisions, "acknowledged": len(acked), "kills": kills,
            "killed_after": int(kill_at * n_decisions), "post_seconds": round(post_s, 1),
            "decisions_per_s": round(n_decisions / post_s, 1),
            "acknowledged_missing_from_export": len(missing),
            "accepted_masks_checked": min(len(accepted), 200),
            "accepted_masks_wrong": int(wrong)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--volumes", type=int, default=200)
    ap.add_argument("--decisions", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_review_"))
    root.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "python": platform.python_version()}}
    browser = shutil.which("chromium") and shutil.which("chromedriver")
    try:
        t = time.perf_counter()
        aud2 = str(root / "aud2d") if (root / "aud2d" / "scores.csv").exists() else make_2d(root, args.n)
        res["audit_2d"] = {"cases": args.n, "seconds_to_make": round(time.perf_counter() - t, 1)}
        if browser:
            res["audit_2d"] |= page_timings(aud2, args.steps)
        res["kill_test"] = kill_test(aud2, min(args.decisions, args.n), root / "fixed2d")
        if args.volumes:
            t = time.perf_counter()
            aud3 = str(root / "aud3d") if (root / "aud3d" / "scores.csv").exists() else make_3d(
                root, args.volumes)
            res["audit_3d"] = {"volumes": args.volumes, "shape": [64, 256, 256],
                               "seconds_to_make": round(time.perf_counter() - t, 1)}
            if browser:
                res["audit_3d"] |= page_timings(aud3, args.steps)
        if not browser:
            res["page"] = "not measured: no chromium/chromedriver"
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
