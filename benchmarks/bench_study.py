"""Study runner benchmarks: parallel speed-up of the demo grid, and Ray's per-trial overhead.

1. The demo grid (the shipped ``quick`` spec) with ``--workers 2`` against ``--workers 1``
   (target: at least 1.7x). ``--limit N`` runs only the first N trials of the grid.
2. Ray executor against the local executor on the same small trials with the same number of
   parallel slots: overhead per trial = (Ray wall time - local wall time) / trials, with the
   Ray start-up reported apart (target: under 1 s per trial).

Prints one JSON object. Example::

    python benchmarks/bench_study.py            # full demo grid (about 9 minutes here)
    python benchmarks/bench_study.py --limit 6  # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _machine import cpu_model

from noisyseg.study import StudyRunner, StudySpec, load_spec

SMALL = """\
name: ray-overhead
data: synthetic-echo:n=20,size=32,seed=0
train: {epochs: 2, batch_size: 8, model_options: {width: 4}}
grid:
  corrupt.model: [none, natural]
  corrupt.target_dice: [0.9]
  seed: [0, 1, 2, 3, 4, 5, 6, 7]
"""


def _limited(spec: StudySpec, limit: int | None) -> StudySpec:
    if not limit:
        return spec
    keep = spec.trials()[:limit]

    class Limited(StudySpec):
        def trials(self):  # type: ignore[override]
            return keep

    return Limited(**{f: getattr(spec, f) for f in spec.__dataclass_fields__})


def _timed_run(spec: StudySpec, **kw) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        o = StudyRunner(spec, Path(d) / "s", progress=False, **kw).run()
        return time.perf_counter() - t0, o.ran - o.failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="run only the first N demo trials")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    res: dict = {"machine": {"cpu": cpu_model(),
                             "cores": len(os.sched_getaffinity(0))}}
    if not args.skip_demo:
        spec = _limited(load_spec("quick"), args.limit)
        n = len(spec.trials())
        t1, ok1 = _timed_run(spec, workers=1)
        t2, ok2 = _timed_run(spec, workers=2)
        res["demo_grid"] = {"trials": n, "ok": [ok1, ok2], "workers_1_s": round(t1, 1),
                            "workers_2_s": round(t2, 1), "speedup": round(t1 / t2, 2),
                            "target_speedup": 1.7}
    if not args.skip_ray:
        import ray

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "small.yaml"
            p.write_text(SMALL)
            spec = load_spec(p)
        n = len(spec.trials())
        t_local, _ = _timed_run(spec, workers=2)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        t_init = time.perf_counter() - t0
        t_ray, ok = _timed_run(spec, executor="ray", workers=2)
        ray.shutdown()
        res["ray"] = {"trials": n, "ok": ok, "local_workers_2_s": round(t_local, 2),
                      "ray_2_cpus_s": round(t_ray, 2), "ray_init_s": round(t_init, 2),
                      "overhead_per_trial_s": round((t_ray - t_local) / n, 3),
                      "target_overhead_per_trial_s": 1.0}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
