"""Ranking from predictions (`noisyseg rank`) against cleanlab, side by side in one run.

Run: ``python benchmarks/bench_rank.py [--n 10000] [--subset 1000] [--volumes 200]``; prints
JSON (docs/results/performance.md). Writes its data under ``--workdir`` (default: a temporary folder;
about 1 GB for the defaults) and removes it at the end unless ``--keep``.

- 2-D: ``--n`` cases of 256 x 256 with 4 classes (synthetic-echo masks, a third of the
  training masks dilated by 3 px), a folder dataset (PNG images and masks) and one
  ``{case}.npz`` per case with key ``probabilities`` (float32, ``np.savez_compressed``, as
  nnU-Net writes them; smooth, confident probabilities of the clean masks).
  * noisyseg: ``noisyseg rank`` end to end in a child process: its wall time and peak RSS;
  * cleanlab: the same files loaded into the ``(N, K, H, W)`` array that
    ``cleanlab.segmentation.rank.get_label_quality_scores`` needs, then that call, in a child
    process with an address-space limit (``--cleanlab-limit-gb``): its time and peak RSS, or
    that it could not run;
  * both on the first ``--subset`` cases: throughput (cases/s, loading included for both) and
    the largest difference between the scores (noisyseg's ``label-quality`` is 1 - cleanlab's).
- 3-D: ``--volumes`` probability volumes of 4 x 64 x 256 x 256 with their label volumes
  (``synthetic-ct``) ranked by ``noisyseg rank``: wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _machine import cpu_model

K = 4


def _probs(mask: np.ndarray, k: int = K, blur: int = 5) -> np.ndarray:
    """Smooth, confident probabilities of ``mask``: one-hot logits x 6, box-blurred."""
    logits = np.stack([(mask == c).astype(np.float32) * 6.0 for c in range(k)])
    if mask.ndim == 2:
        logits = np.stack([cv2.blur(z, (blur, blur)) for z in logits])
    else:
        logits = np.stack([np.stack([cv2.blur(s, (blur, blur)) for s in z]) for z in logits])
    p = np.exp(logits - logits.max(0, keepdims=True))
    return (p / p.sum(0, keepdims=True)).astype(np.float32)


def make_2d(root: Path, n: int) -> dict:
    from PIL import Image

    from noisyseg.corrupt import dilate
    from noisyseg.data import synthetic_echo_masks

    t = time.perf_counter()
    for d in ("data/images", "data/masks", "probs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    corrupted = np.zeros(n, bool)
    chunk = 500
    for start in range(0, n, chunk):
        masks = synthetic_echo_masks(n=min(chunk, n - start), size=256, seed=start + 1)
        for j, m in enumerate(masks):
            i = start + j
            cid = f"case_{i:05d}"
            given = m
            if rng.random() < 1 / 3:
                given = dilate(m, 3.0, rng=rng, classes=(1,))
                corrupted[i] = True
            img = (m * 50 + rng.normal(0, 10, m.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "data/images" / f"{cid}.png")
            Image.fromarray(given.astype(np.uint8)).save(root / "data/masks" / f"{cid}.png")
            np.savez_compressed(root / "probs" / f"{cid}.npz", probabilities=_probs(m))
    ids = [f"case_{i:05d}" for i in range(n)]
    (root / "data/dataset.json").write_text(json.dumps(
        {"class_names": ["background", "lv_cavity", "myocardium", "atrium"]}))
    with open(root / "data/split.csv", "w") as f:
        f.write("sample_id,split\n" + "".join(f"{c},train\n" for c in ids))
    with open(root / "data/manifest.csv", "w") as f:
        f.write("sample_id,corrupted\n" + "".join(
            f"{c},{bool(b)}\n" for c, b in zip(ids, corrupted, strict=True)))
    disk = sum(p.stat().st_size for p in (root / "probs").iterdir())
    return {"cases": n, "seconds_to_write": round(time.perf_counter() - t, 1),
            "probability_files_gb": round(disk / 1e9, 3),
            "probabilities_in_memory_gb": round(n * K * 256 * 256 * 4 / 1e9, 2)}


def make_3d(root: Path, n: int, size: int, slices: int) -> dict:
    from noisyseg.data import synthetic_ct

    t = time.perf_counter()
    ds = synthetic_ct(n=n, size=size, slices=slices, seed=0)
    (root / "probs3d").mkdir(parents=True, exist_ok=True)
    for i, cid in enumerate(ds.sample_ids):
        lab = ds.read_label(i)[0]
        np.savez_compressed(root / "probs3d" / f"{cid}.npz", probabilities=_probs(lab))
    disk = sum(p.stat().st_size for p in (root / "probs3d").iterdir())
    return {"volumes": n, "shape": [K, slices, size, size],
            "seconds_to_write": round(time.perf_counter() - t, 1),
            "probability_files_gb": round(disk / 1e9, 3),
            "probabilities_in_memory_gb": round(n * K * slices * size * size * 4 / 1e9, 2),
            "data": f"synthetic-ct:n={n},size={size},slices={slices}"}


# Peak RSS of a child: VmHWM of its own address space. (ru_maxrss survives fork and exec on
# Linux, so a child would report the parent's peak at fork time when that is larger.)
_VMHWM = """
def vmhwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6
"""

_NOISYSEG = _VMHWM + """
import json, sys, time
from noisyseg.cli import main
t = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_gb": vmhwm()}))
"""

_CLEANLAB = _VMHWM + """
import json, resource, sys, time
import numpy as np
from PIL import Image
root, n, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
if limit > 0:
    b = int(limit * 1e9)
    resource.setrlimit(resource.RLIMIT_AS, (b, b))
from cleanlab.segmentation.rank import get_label_quality_scores
t = time.perf_counter()
try:
    ids = [f"case_{i:05d}" for i in range(n)]
    labels = np.stack([np.asarray(Image.open(f"{root}/data/masks/{c}.png")) for c in ids])
    probs = np.empty((n, 4, 256, 256), np.float32)
    for i, c in enumerate(ids):
        with np.load(f"{root}/probs/{c}.npz") as z:
            probs[i] = z["probabilities"]
    t_load = time.perf_counter() - t
    scores, _ = get_label_quality_scores(labels, probs, verbose=False)
    np.save(f"{root}/cleanlab_scores.npy", scores)
    out = {"ran": True, "load_seconds": t_load, "score_seconds": time.perf_counter() - t - t_load}
except MemoryError as e:
    out = {"ran": False, "error": "MemoryError (address-space limit %.0f GB)" % limit}
out["seconds"] = time.perf_counter() - t
out["peak_rss_gb"] = vmhwm()
print(json.dumps(out))
"""


def _child(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return {"ran": False, "returncode": res.returncode, "error": " | ".join(tail)}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _rank(root: Path, data: str, probs: str, out: str, *extra: str) -> dict:
    r = _child(_NOISYSEG, "rank", "--data", data, "--probs", probs, "--out", out,
               "--no-progress", "--overwrite", *extra)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}


def _streaming(root: Path, cleanlab_seconds: float) -> dict:
    """:func:`noisyseg.run.rank_predictions` on the subset in this process: files read and
    scored (every score, per slice and class), without the CLI's imports and figures."""
    from noisyseg.data import load_dataset
    from noisyseg.run import rank_predictions

    ds = load_dataset(str(root / "data"), lazy=True)
    out = {}
    for workers in (1, 2):
        t = time.perf_counter()
        r = rank_predictions(ds, [root / "probs"], workers=workers)
        sec = time.perf_counter() - t
        out[f"workers_{workers}"] = {"seconds": round(sec, 2),
                                     "cases_per_s": round(len(r.case_ids) / sec, 1),
                                     "speedup_vs_cleanlab_end_to_end": round(cleanlab_seconds / sec, 2)}
    return out


def _kernels(root: Path, n: int) -> dict:
    """Scoring alone on arrays already in memory (no file reading): cleanlab's call against
    noisyseg's label-quality and all three scores, one thread each."""
    from cleanlab.segmentation.rank import get_label_quality_scores
    from PIL import Image

    from noisyseg.detect.probs import case_scores, given_label_probability, softmin

    ids = [f"case_{i:05d}" for i in range(n)]
    labels = np.stack([np.asarray(Image.open(root / "data/masks" / f"{c}.png")) for c in ids])
    probs = np.empty((n, K, 256, 256), np.float32)
    for i, c in enumerate(ids):
        with np.load(root / "probs" / f"{c}.npz") as z:
            probs[i] = z["probabilities"]
    t = time.perf_counter()
    get_label_quality_scores(labels, probs, verbose=False)
    t_cl = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):
        softmin(given_label_probability(labels[i], probs[i]))
    t_lq = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):
        case_scores(labels[i], probs[i])
    t_all = time.perf_counter() - t
    return {"cleanlab_cases_per_s": round(n / t_cl, 1),
            "noisyseg_label_quality_cases_per_s": round(n / t_lq, 1),
            "noisyseg_all_three_scores_cases_per_s": round(n / t_all, 1),
            "speedup_label_quality": round(t_cl / t_lq, 2),
            "speedup_all_three_scores": round(t_cl / t_all, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--subset", type=int, default=1000)
    ap.add_argument("--volumes", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--slices", type=int, default=64)
    ap.add_argument("--cleanlab-limit-gb", type=float, default=20.0,
                    help="address-space limit of the cleanlab child (0: none)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_rank_"))
    root.mkdir(parents=True, exist_ok=True)
    out: dict = {"machine": {"cpu": cpu_model(),
                             "cores": os.cpu_count(), "python": platform.python_version()}}
    try:
        if not (root / "probs").is_dir() or len(list((root / "probs").iterdir())) != args.n:
            shutil.rmtree(root / "probs", ignore_errors=True)
            shutil.rmtree(root / "data", ignore_errors=True)
            out["data_2d"] = make_2d(root, args.n)
        # subset: both sides on the same first cases, loading included
        sub = root / "sub"
        if not sub.is_dir():
            for d in ("data/images", "data/masks", "probs"):
                (sub / d).mkdir(parents=True)
            ids = [f"case_{i:05d}" for i in range(args.subset)]
            for c in ids:
                for d, suf in (("data/images", ".png"), ("data/masks", ".png"), ("probs", ".npz")):
                    os.link(root / d / f"{c}{suf}", sub / d / f"{c}{suf}")
            shutil.copy(root / "data/dataset.json", sub / "data/dataset.json")
        ours = _rank(sub, str(sub / "data"), str(sub / "probs"), str(root / "aud_sub"))
        theirs = _child(_CLEANLAB, str(sub), str(args.subset), str(args.cleanlab_limit_gb))
        import pandas as pd

        s = pd.read_csv(root / "aud_sub" / "scores.csv")
        s = s[s["detector"] == "label-quality"].set_index("sample_id").sort_index()["score"]
        cl = np.load(sub / "cleanlab_scores.npy")
        out["subset"] = {
            "cases": args.subset,
            "noisyseg": {**ours, "cases_per_s": round(args.subset / ours["seconds"], 1)},
            "cleanlab": {**{k: (round(v, 3) if isinstance(v, float) else v)
                            for k, v in theirs.items()},
                         "cases_per_s": round(args.subset / theirs["seconds"], 1)},
            "speedup": round(theirs["seconds"] / ours["seconds"], 2),
            "max_abs_score_difference": float(np.abs((1 - s.to_numpy()) - cl).max()),
            "target_speedup": 5.0}
        out["subset"]["kernel_in_memory"] = _kernels(sub, args.subset)
        out["subset"]["streaming_in_process"] = _streaming(sub, theirs["seconds"])
        out["full_2d"] = {
            "noisyseg": _rank(root, str(root / "data"), str(root / "probs"), str(root / "aud")),
            "cleanlab": _child(_CLEANLAB, str(root), str(args.n), str(args.cleanlab_limit_gb)),
            "target_peak_rss_gb": 1.0}
        det = json.loads((root / "aud" / "detection.json").read_text())["detectors"]
        out["full_2d"]["noisyseg"]["average_precision"] = {
            k: round(v["average_precision"], 4) for k, v in det.items()}
        if args.volumes:
            p3 = root / "probs3d"
            if not p3.is_dir() or len(list(p3.iterdir())) != args.volumes:
                shutil.rmtree(p3, ignore_errors=True)
                out["data_3d"] = make_3d(root, args.volumes, args.size, args.slices)
            else:
                out["data_3d"] = {"volumes": args.volumes, "reused": str(p3),
                                  "data": f"synthetic-ct:n={args.volumes},size={args.size},"
                                          f"slices={args.slices}"}
            r = _rank(root, out["data_3d"]["data"], str(root / "probs3d"), str(root / "aud3d"))
            out["full_3d"] = {"noisyseg": r, "target_peak_rss_gb": 2.0}
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
