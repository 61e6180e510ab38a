"""Error models on volumes: throughput, calibration time, and bounded-memory `corrupt`.

Run: ``python benchmarks/bench_volumes.py [--n 12] [--calib-n 100] [--stream-n 200]``;
prints JSON (docs/results/performance.md). Throughput and calibration run on one core (OpenCV,
BLAS and OpenMP limited to one thread). The streaming part runs ``noisyseg corrupt`` on a
built-in ``synthetic-ct`` dataset of ``--stream-n`` volumes of 64 x 256 x 256 in a child
process and reports its peak RSS (the child's ``VmHWM``) and throughput: the dataset's arrays alone
(float32 image + uint8 label per volume) exceed 4 GB at 200 volumes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from _machine import cpu_model  # noqa: E402

from noisyseg.corrupt import ERROR_MODELS, calibrate  # noqa: E402
from noisyseg.data import synthetic_ct  # noqa: E402

#: issue targets, volumes/s on one core, for 64 x 256 x 256 label volumes
TARGETS = {("natural", "slicewise"): 8, ("choppy", "slicewise"): 8,
           ("dilate", "volumetric"): 20, ("erode", "volumetric"): 20}
STRENGTH = {"random_flip": 0.1, "merge": 0.3, "omit": 0.3}


def _stream(n: int, size: int, slices: int, out: str) -> dict:
    """Run `noisyseg corrupt` on synthetic-ct in a child process; its peak RSS and time."""
    # peak RSS: the child's own VmHWM (ru_maxrss survives fork and exec on Linux, so it
    # would report this process's peak at fork time when that is larger)
    code = (
        "import sys, time\n"
        "from noisyseg.cli import main\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(time.perf_counter() - t, hwm)\n"
    )
    args = ["corrupt", "--data", f"synthetic-ct:n={n},size={size},slices={slices}",
            "--model", "natural", "--slicewise", "--target-dice", "0.85", "--fraction", "1.0",
            "--out", out, "--no-progress"]
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True)
    secs, rss_kb = res.stdout.strip().splitlines()[-1].split()
    return {"volumes": n, "shape": [slices, size, size], "command": "noisyseg " + " ".join(args),
            "array_bytes_gb": round(n * slices * size * size * 5 / 1e9, 2),
            "seconds": round(float(secs), 1), "volumes_per_s": round(n / float(secs), 2),
            "peak_rss_gb": round(int(rss_kb) / 1e6, 3), "target_peak_rss_gb": 2.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="volumes per throughput measurement")
    ap.add_argument("--calib-n", type=int, default=100, help="volumes for the calibration timing")
    ap.add_argument("--stream-n", type=int, default=200, help="volumes for the streaming run "
                    "(0 skips it)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--slices", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="throughput runs per model and mode, "
                    "round robin; 'rate' is the best, 'median' the median")
    args = ap.parse_args()
    ds = synthetic_ct(n=max(args.n, args.calib_n), size=args.size, slices=args.slices, seed=0)
    spacing = ds.label_geometry(0).spacing
    out: dict = {"machine": {"cpu": cpu_model(),
                             "cores_used": 1, "python": platform.python_version()},
                 "volume": f"{args.slices}x{args.size}x{args.size} voxels of "
                           f"{'x'.join(map(str, spacing))} mm, 4 classes (synthetic-ct)",
                 "throughput_volumes_per_s": {}, "calibration": {}}
    labels = [ds.read_label(i)[0] for i in range(args.n)]
    runs = [(name, mode) for name, m in ERROR_MODELS.items() for mode in m.modes]
    rates: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
    for _ in range(args.repeats):
        for name, mode in runs:
            s = STRENGTH.get(name, 2.0)
            kw = {"spacing": spacing} if mode == "volumetric" else {}
            rng = np.random.default_rng(0)
            t = time.perf_counter()
            for lab in labels:
                ERROR_MODELS[name](lab, s, rng=rng, mode=mode, **kw)
            rates[(name, mode)].append(args.n / (time.perf_counter() - t))
    for (name, mode), r in rates.items():
        m = ERROR_MODELS[name]
        out["throughput_volumes_per_s"][f"{name} {mode}"] = {
            "rate": round(max(r), 2), "median": round(float(np.median(r)), 2),
            "target": TARGETS.get((name, mode)), "strength": STRENGTH.get(name, 2.0),
            "unit": m.unit_for(mode, 3)}
    masks = [ds.read_label(i)[0] for i in range(args.calib_n)]
    for name in ("natural", "choppy"):
        t = time.perf_counter()
        cal = calibrate(name, masks, 0.90, rng=np.random.default_rng(0), mode="slicewise")
        out["calibration"][f"{name} slicewise"] = {
            "target_dice": 0.90, "seconds": round(time.perf_counter() - t, 2),
            "n_volumes": cal.n_masks, "evaluations": len(cal.evaluations),
            "achieved_dice": round(cal.achieved_dice, 4), "strength": round(cal.strength, 4),
            "target_seconds": 30}
    del masks, labels
    if args.stream_n:
        with tempfile.TemporaryDirectory() as tmp:
            out["streaming_corrupt"] = _stream(args.stream_n, args.size, args.slices,
                                               os.path.join(tmp, "noisy"))
    out["this_process_peak_rss_gb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
