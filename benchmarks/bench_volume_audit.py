"""`noisyseg audit` on volumes (a 2-D network on their slices, or a 3-D one): peak memory and time.

Run: ``python benchmarks/bench_volume_audit.py [--n 200] [--size 256] [--slices 64]
[--slice-size 128 | --dims 3 --spacing 2.5,1.6,1.6]``; prints JSON (docs/results/performance.md).
The audit runs in a child process
on the built-in ``synthetic-ct`` dataset of ``--n`` volumes of ``--slices`` x ``--size`` x
``--size`` with the ``loss`` detector, ``--epochs`` epochs of ``--steps`` steps (memory, not
accuracy, is measured: the slice dataset, one prediction of every training and test slice,
the per-case evaluation and the outputs all happen as in a real audit), and reports the
child's peak RSS (``VmHWM``) and its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from _machine import cpu_model

CHILD = """
import sys
from noisyseg.api import run_audit
from noisyseg.train import TrainConfig
data, out, size, epochs, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
dims, spacing = int(sys.argv[6]), sys.argv[7]
cfg = TrainConfig(epochs=epochs, steps_per_epoch=steps, batch_size=16 if dims == 2 else 2,
                  threads=1)
run_audit(data=data, out=out, config=cfg, detectors=["loss"], progress=False, dims=dims,
          slice_size=None if size == "none" else int(size),
          spacing=None if spacing == "none" else [float(v) for v in spacing.split(",")])
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--slices", type=int, default=64)
    ap.add_argument("--slice-size", type=int, default=None,
                    help="Resize slices in-plane (default: keep them).")
    ap.add_argument("--dims", type=int, default=2, help="2: slices; 3: a 3-D network.")
    ap.add_argument("--spacing", default=None, help="--dims 3: resample to Z,Y,X mm.")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    data = f"synthetic-ct:n={args.n},size={args.size},slices={args.slices},seed=0"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", CHILD, data, os.path.join(tmp, "aud"),
                              str(args.slice_size or "none"), str(args.epochs), str(args.steps),
                              str(args.dims), args.spacing or "none"],
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(res.stderr[-2000:])
    peak_kb = int(res.stdout.strip().splitlines()[-1])
    n_slices = args.n * args.slices
    plane = args.slice_size or args.size
    print(json.dumps({
        "data": data, "dims": args.dims, "spacing": args.spacing,
        "slice_size": args.slice_size, "slices": n_slices,
        **({"slice_arrays_gb": round(n_slices * plane * plane * (4 + 1 + 1) / 1e9, 2)}
           if args.dims == 2 else {}),
        "peak_rss_gb": round(peak_kb / 1e6, 2), "wall_s": round(wall, 1),
        "epochs": args.epochs, "steps_per_epoch": args.steps, "detectors": ["loss"],
        "machine": cpu_model(), "cpus": os.cpu_count(),
        "python": platform.python_version()}, indent=2))


if __name__ == "__main__":
    main()
