"""Detector overhead and quality, side by side in one run.

Run: ``python benchmarks/bench_detect.py [--epochs 20] [--n 300]``; prints JSON.
Trains the default U-Net on synthetic-echo (128x128) with 30% of the training masks
systematically corrupted (LV cavity dilated by 2 px), three times with the same seed:
no detector, ``vog`` (default schedule, 5 checkpoints), ``vog-online``. Reports the extra
training time of each detector (targets: vog <= 10%, vog-online <= 3%), their average
precision, and the Spearman correlation between the two VOG rankings.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from noisyseg.corrupt import corrupt_dataset
from noisyseg.data import synthetic_echo
from noisyseg.detect import detection_metrics, make_detector
from noisyseg.train import TrainConfig, Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    ds = synthetic_echo(n=args.n, size=128, seed=0)
    noisy = corrupt_dataset(ds, "dilate", strength=2, classes=(1,), fraction=0.3, seed=0).dataset
    cfg = TrainConfig(epochs=args.epochs)
    out: dict = {"epochs": args.epochs, "n": args.n, "threads": torch.get_num_threads(),
                 "seconds": {}, "overhead": {}, "average_precision": {}}
    scores = {}
    for name in (None, "vog", "vog-online", None):  # plain twice: first run warms up
        dets = [make_detector(name)] if name else []
        t = time.perf_counter()
        tr = Trainer(cfg, noisy, dets).fit()
        out["seconds"][name or "none"] = round(time.perf_counter() - t, 2)
        if name:
            truth = noisy.corrupted[tr.train_idx.numpy()]
            scores[name] = dets[0].scores()
            m = detection_metrics(scores[name], np.zeros_like(truth), truth)
            out["average_precision"][name] = round(m.average_precision, 4)
    base = out["seconds"]["none"]
    for name in ("vog", "vog-online"):
        out["overhead"][name] = round(out["seconds"][name] / base - 1, 4)
    out["targets"] = {"vog": 0.10, "vog-online": 0.03}
    out["spearman_vog_vs_online"] = round(float(spearmanr(scores["vog"],
                                                          scores["vog-online"])[0]), 4)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
