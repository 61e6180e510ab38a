"""Detector overhead and quality, side by side in one run.

Run: ``python benchmarks/bench_detect.py [--epochs 40] [--n 300] [--repeats 2]``; prints JSON.
Trains the default U-Net on synthetic-echo (128x128) with 30% of the training masks
systematically corrupted (LV cavity dilated by 2 px) with the same seed: without a
detector, with ``vog`` (default schedule, 5 checkpoints) and with ``vog-online``, round
robin ``--repeats`` times after a one-epoch warm-up; the fastest run of each counts.
Reports the extra training time of each detector (targets: vog <= 10%, vog-online <= 3%),
the time spent inside the detectors' own callbacks, their average precision, and the
Spearman correlation between the two VOG rankings.

Whole runs of the same configuration differ by up to 15% on a shared VM, more than the
targets, so the benchmark also reports each detector's *own* time as a share of the
plain training (``own_share``): the time inside its callbacks plus, for vog-online, the
trainer's input-gradient convolution (``_InputGradient.finish``, timed here). Capturing
the gradient adds no other work to a step: backpropagation computes the first
convolution's output gradient anyway.
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
from noisyseg.train import BatchResult, Callback, TrainConfig, Trainer
from noisyseg.train import trainer as trainer_module


class _Timed(Callback):
    """Runs a detector's hooks and adds up the seconds spent in them."""

    def __init__(self, inner: Callback) -> None:
        self.inner, self.seconds = inner, 0.0

    def _run(self, hook: str, *args: object) -> None:
        t = time.perf_counter()
        getattr(self.inner, hook)(*args)
        self.seconds += time.perf_counter() - t

    def on_train_start(self, trainer: Trainer) -> None:
        self._run("on_train_start", trainer)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._run("on_epoch_start", trainer, epoch)

    def on_batch_end(self, trainer: Trainer, batch: BatchResult) -> None:
        self._run("on_batch_end", trainer, batch)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self._run("on_epoch_end", trainer, epoch, logs)

    def on_checkpoint(self, trainer: Trainer, epoch: int, score: float) -> None:
        self._run("on_checkpoint", trainer, epoch, score)

    def on_train_end(self, trainer: Trainer) -> None:
        self._run("on_train_end", trainer)


class _TimedFinish:
    """Adds up the seconds the trainer spends turning captured gradients into input gradients."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> _TimedFinish:
        cls = trainer_module._InputGradient
        self.original = original = cls.finish

        def finish(grab, scale=1.0):  # noqa: ANN001, ANN202
            t = time.perf_counter()
            try:
                return original(grab, scale)
            finally:
                self.seconds += time.perf_counter() - t
        cls.finish = finish
        return self

    def __exit__(self, *exc: object) -> None:
        trainer_module._InputGradient.finish = self.original


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    ds = synthetic_echo(n=args.n, size=128, seed=0)
    noisy = corrupt_dataset(ds, "dilate", strength=2, classes=(1,), fraction=0.3, seed=0).dataset
    cfg = TrainConfig(epochs=args.epochs)
    out: dict = {"epochs": args.epochs, "n": args.n, "repeats": args.repeats,
                 "threads": torch.get_num_threads(), "seconds": {}, "own_seconds": {},
                 "overhead": {}, "average_precision": {}}
    Trainer(TrainConfig(epochs=1), noisy).fit()  # warm-up
    runs: dict[str, list[float]] = {"none": [], "vog": [], "vog-online": []}
    scores = {}
    for _ in range(args.repeats):
        for name in runs:
            det = make_detector(name) if name != "none" else None
            timed = [_Timed(det)] if det else []
            with _TimedFinish() as fin:
                t = time.perf_counter()
                tr = Trainer(cfg, noisy, timed).fit()
                runs[name].append(round(time.perf_counter() - t, 2))
            if det is not None:
                own = timed[0].seconds + fin.seconds
                out["own_seconds"].setdefault(name, []).append(round(own, 2))
                truth = noisy.corrupted[tr.train_idx.numpy()]
                scores[name] = det.scores()
                m = detection_metrics(scores[name], np.zeros_like(truth), truth)
                out["average_precision"][name] = round(m.average_precision, 4)
    out["seconds"] = runs
    base = min(runs["none"])
    for name in ("vog", "vog-online"):
        out["overhead"][name] = round(min(runs[name]) / base - 1, 4)
        out["own_share"] = out.get("own_share", {}) | {
            name: round(min(out["own_seconds"][name]) / base, 4)}
    out["targets"] = {"vog": 0.10, "vog-online": 0.03}
    out["spearman_vog_vs_online"] = round(float(spearmanr(scores["vog"],
                                                          scores["vog-online"])[0]), 4)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
