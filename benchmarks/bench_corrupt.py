"""Error-model throughput and calibration time (issue targets in docs/results/performance.md).

Run: ``python benchmarks/bench_corrupt.py [--n 300] [--calib-n 1000]``; prints JSON.
One core: OpenCV, BLAS and OpenMP are limited to one thread before any work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from _machine import cpu_model  # noqa: E402

from noisyseg.corrupt import ERROR_MODELS, calibrate  # noqa: E402
from noisyseg.data import synthetic_echo_masks  # noqa: E402
from noisyseg.errors import CalibrationError  # noqa: E402

TARGETS = {"natural": 500, "choppy": 500, "random_flip": 2000, "dilate": 1000, "erode": 1000,
           "shift": 1000, "merge": 1000, "omit": 1000, "boundary": None}
STRENGTH = {"random_flip": 0.1, "merge": 0.3, "omit": 0.3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="masks per throughput measurement")
    ap.add_argument("--calib-n", type=int, default=1000, help="masks for calibration timing")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5,
                    help="throughput runs per model, round robin over the models; 'rate' is the "
                         "best (a shared VM's speed drifts by up to 1.5x between minutes), "
                         "'median' the median")
    args = ap.parse_args()
    masks = synthetic_echo_masks(n=max(args.n, args.calib_n), size=args.size, seed=0)
    out: dict = {"machine": {"cpu": cpu_model(),
                             "cores_used": 1, "python": platform.python_version()},
                 "mask": f"{args.size}x{args.size}, 4 classes (synthetic-echo)",
                 "throughput_masks_per_s": {}, "calibration": {}}
    # round robin: every repeat runs every model once, so a slow minute of the shared VM
    # costs each model one repeat instead of all of one model's repeats
    rates: dict[str, list[float]] = {name: [] for name in ERROR_MODELS}
    for name, model in ERROR_MODELS.items():  # warm-up
        rng = np.random.default_rng(0)
        for m in masks[:10]:
            model(m, STRENGTH.get(name, 3.0), rng=rng)
    for _ in range(args.repeats):
        for name, model in ERROR_MODELS.items():
            s, rng = STRENGTH.get(name, 3.0), np.random.default_rng(0)
            t = time.perf_counter()
            for m in masks[: args.n]:
                model(m, s, rng=rng)
            rates[name].append(args.n / (time.perf_counter() - t))
    for name, r in rates.items():
        out["throughput_masks_per_s"][name] = {
            "rate": round(max(r), 1), "median": round(float(np.median(r)), 1),
            "target": TARGETS[name], "strength": STRENGTH.get(name, 3.0)}
    for name in ERROR_MODELS:
        # deterministic models change in steps (a disk radius, a pixel of shift); a target
        # between two steps cannot be met to +-0.005 (CalibrationError): the next is tried
        for target in (0.90, 0.85, 0.95):
            t = time.perf_counter()
            try:
                cal = calibrate(name, masks[: args.calib_n], target, rng=np.random.default_rng(0))
            except CalibrationError as e:
                out["calibration"].setdefault(name, {}).setdefault("unreachable", []).append(
                    {"target_dice": target, "seconds": round(time.perf_counter() - t, 2),
                     "error": str(e)})
                continue
            out["calibration"].setdefault(name, {}).update(
                {"target_dice": target, "seconds": round(time.perf_counter() - t, 2),
                 "n_masks": cal.n_masks, "evaluations": len(cal.evaluations),
                 "achieved_dice": round(cal.achieved_dice, 4), "strength": round(cal.strength, 4),
                 "target_seconds": 10})
            break
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
