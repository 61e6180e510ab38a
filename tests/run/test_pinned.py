"""Fixed-seed runs pinned to their numbers: a 2-D audit with refurbishment, and audits of
volumes with a 2-D and a 3-D network (scores.csv, metrics.json, detection.json).

The pinned values are in ``pinned.json`` beside this file. A change that moves them changes
what a seed produces; regenerate with ``NOISYSEG_REPIN=1 pytest tests/run/test_pinned.py``
only when that is intended, and say why in the commit. Scores are compared to a relative
1e-4 (another CPU's float kernels may round differently), everything else exactly.
"""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from noisyseg.api import run_audit, run_corrupt
from noisyseg.refurbish import RefurbishConfig
from noisyseg.train import TrainConfig

PINNED = Path(__file__).with_name("pinned.json")
_METRIC_KEYS = ("test", "val_dice", "best_epoch", "n_train", "detection", "case_detection",
                "slice_detection")


def _numbers(record):
    """The numbers of a metrics.json worth pinning (no timings, paths or versions)."""
    out = {}

    def walk(v, key):
        if isinstance(v, dict):
            for k, x in sorted(v.items()):
                if any(t in k for t in ("seconds", "time", "per_s", "path", "version",
                                        "resolved", "threads", "device", "rss", "memory")) \
                        or k in ("data", "source", "root"):
                    continue
                walk(x, f"{key}.{k}" if key else k)
        elif isinstance(v, list):
            for k, x in enumerate(v):
                walk(x, f"{key}[{k}]")
        elif isinstance(v, bool) or v is None or isinstance(v, str):
            out[key] = v
        elif isinstance(v, int | float):
            out[key] = float(v)

    walk(record, "")
    return out


def _observe(folder):
    scores = pd.read_csv(folder / "scores.csv")
    obs = {"scores": {f"{r.sample_id}/{r.detector}": [float(r.score), bool(r.flagged)]
                      for r in scores.itertuples()},
           "metrics": _numbers(json.loads((folder / "metrics.json").read_text()))}
    if (folder / "detection.json").is_file():
        obs["detection"] = _numbers(json.loads((folder / "detection.json").read_text()))
    return obs


def _runs(tmp):
    cfg = dict(batch_size=8, seed=0, threads=1, model_options={"width": 4})
    echo = tmp / "echo"
    run_corrupt(data="synthetic-echo:n=24,size=32,seed=1", model="dilate", strength=2.0,
                fraction=0.5, out=echo, seed=0, figure=False)
    yield "2d-audit", run_audit(data=str(echo), out=tmp / "a2", config=TrainConfig(epochs=4, **cfg),
                                detectors=("loss", "vog"), progress=False,
                                refurbish=RefurbishConfig(warmup=2))
    ct = tmp / "ct"
    run_corrupt(data="synthetic-ct:n=6,size=32,slices=8,seed=1", model="dilate", strength=2.0,
                fraction=0.5, out=ct, seed=0, figure=False)
    yield "ct-slices", run_audit(data=str(ct), out=tmp / "s2", config=TrainConfig(epochs=2, **cfg),
                                 detectors=("loss",), progress=False)
    yield "ct-3d", run_audit(data=str(ct), out=tmp / "s3",
                             config=TrainConfig(epochs=2, **(cfg | {"batch_size": 2})),
                             detectors=("loss",), progress=False, dims=3)


def _close(name, key, got, want):
    if isinstance(want, float) and isinstance(got, float):
        assert np.isclose(got, want, rtol=1e-4, atol=1e-6, equal_nan=True), (name, key, got, want)
    else:
        assert got == want, (name, key, got, want)


def test_fixed_seed_audits_keep_their_numbers(tmp_path):
    folders = {"2d-audit": "a2", "ct-slices": "s2", "ct-3d": "s3"}
    observed = {}
    for name, _ in _runs(tmp_path):
        observed[name] = _observe(tmp_path / folders[name])
    if os.environ.get("NOISYSEG_REPIN"):
        PINNED.write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PINNED.read_text())
    assert set(observed) == set(pinned)
    for name, obs in observed.items():
        want = pinned[name]
        assert set(obs) == set(want), name
        for part in obs:
            assert set(obs[part]) == set(want[part]), (name, part,
                                                       set(obs[part]) ^ set(want[part]))
            for key, got in obs[part].items():
                w = want[part][key]
                if isinstance(got, list):
                    _close(name, key, got[0], w[0])
                    assert got[1] == w[1], (name, key, "flagged", got, w)
                else:
                    _close(name, key, got, w)
