"""3-D training throughput: noisyseg's trainer vs a plain MONAI loop, same network, same patches.

Run: ``python benchmarks/bench_3d_train.py [--steps 20] [--device auto]``; prints JSON. Both
sides run in one process on the same in-memory volumes (synthetic-CT, 64 x 128 x 128 voxels,
4 classes), train the same 3-D U-Net (noisyseg's, width 6) with Adam on patches of
``--patch`` voxels, batch ``--batch``, a third of them centred on foreground:

- ``noisyseg``: :class:`noisyseg.train.Trainer` on a volume dataset (patches cropped from
  the volumes held as one tensor, z-scored per volume, Dice + cross-entropy per sample;
  network and batches channels-last, ``--precision`` as the trainer's, default ``auto``:
  float32 on a CPU);
- ``monai``: the loop of MONAI's 3-D tutorials: a ``CacheDataset`` of dicts (z-scoring cached),
  ``RandCropByPosNegLabeld`` (pos 1, neg 2) and ``RandScaleIntensityd`` per draw, a
  ``DataLoader``, ``DiceCELoss``; float32, contiguous as the tutorials;
- ``monai_channels_last``: the same loop with the network and batches channels-last, to
  show how much of the difference is the memory order;
- ``monai_bf16``: the same loop (contiguous) under bfloat16 autocast, to show how much of
  the difference is the precision.

Throughput is patches per second over ``--steps`` optimisation steps after 3 warm-up steps
(validation excluded), ``--repeats`` times each side, alternating; ``speedup`` is the ratio of
the medians. On a CUDA device the MONAI loop uses float16 mixed precision, on a CPU float32.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from _machine import cpu_model


def volumes(n: int, size: int, slices: int):
    from noisyseg.data import load_dataset, volume_dataset

    cases = load_dataset(f"synthetic-ct:n={n},size={size},slices={slices},seed=0")
    ds, _ = volume_dataset(cases)
    return ds


def bench_noisyseg(ds, patch, batch, steps, device, precision="auto") -> float:
    from noisyseg.train import Callback, TrainConfig, Trainer

    class Clock(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_batch_end(self, trainer, batch) -> None:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    clock = Clock()
    cfg = TrainConfig(epochs=1, steps_per_epoch=steps + 3, batch_size=batch, patch_size=list(patch),
                      lr=1e-3, balanced=True, device=device, seed=0, precision=precision)
    Trainer(cfg, ds, [clock]).fit()
    t = clock.times
    return steps * batch / (t[-1] - t[2])


def settings(ds, patch, device, precision) -> dict:
    """The precision and memory order noisyseg's trainer resolves ``auto`` to here."""
    from noisyseg.train import TrainConfig, Trainer

    cfg = TrainConfig(device=device, precision=precision, patch_size=list(patch))
    return Trainer(cfg, ds).settings


def bench_monai(ds, patch, batch, steps, device, channels_last=False, bf16=False) -> float:
    from monai.data import CacheDataset, DataLoader
    from monai.losses import DiceCELoss
    from monai.transforms import (
        Compose,
        NormalizeIntensityd,
        RandCropByPosNegLabeld,
        RandScaleIntensityd,
    )

    from noisyseg.models import build_model

    torch.manual_seed(0)
    dev = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    train = ds.indices("train")
    items = [{"image": ds.images[i][None], "label": ds.masks[i][None]} for i in train]
    xform = Compose([
        NormalizeIntensityd(keys="image"),
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=patch,
                               pos=1, neg=2, num_samples=1),
        RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
    ])
    data = CacheDataset(items, xform, progress=False)
    loader = DataLoader(data, batch_size=batch, shuffle=True, num_workers=0)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    net = build_model("unet", n_classes=ds.n_classes, spatial_dims=3).to(dev, memory_format=fmt)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    cuda = dev.type == "cuda"
    dtype = torch.bfloat16 if bf16 else torch.float16
    scaler = torch.amp.GradScaler(enabled=cuda and not bf16)
    times, done = [], 0
    while done < steps + 3:
        for b in loader:
            x, y = b["image"].as_tensor().to(dev, memory_format=fmt), b["label"].to(dev)
            with torch.autocast(dev.type, dtype=dtype, enabled=cuda or bf16):
                out = net(x)
            loss = loss_fn(out.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())
            done += 1
            if done >= steps + 3:
                break
    return steps * batch / (times[-1] - times[2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--slices", type=int, default=64)
    ap.add_argument("--patch", type=int, nargs=3, default=[32, 64, 64])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="auto", help="noisyseg's (auto, fp32, bf16, fp16)")
    args = ap.parse_args()
    ds = volumes(args.n, args.size, args.slices)
    patch = tuple(args.patch)
    # alternate the two sides so a slow spell of the machine hits both
    ours, theirs, theirs_cl, theirs_bf = [], [], [], []
    for _ in range(args.repeats):
        ours.append(bench_noisyseg(ds, patch, args.batch, args.steps, args.device,
                                   args.precision))
        theirs.append(bench_monai(ds, patch, args.batch, args.steps, args.device))
        theirs_cl.append(bench_monai(ds, patch, args.batch, args.steps, args.device,
                                     channels_last=True))
        theirs_bf.append(bench_monai(ds, patch, args.batch, args.steps, args.device,
                                     bf16=True))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(json.dumps({
        "machine": {"cpu": cpu_model(),
                    "cores": len(os.sched_getaffinity(0)), "threads": torch.get_num_threads(),
                    "gpu": gpu, "torch": torch.__version__},
        "volumes": [args.n, args.slices, args.size, args.size], "patch": list(patch),
        "batch": args.batch, "steps": args.steps, "noisyseg_precision": args.precision,
        "noisyseg_patches_per_s": [round(v, 2) for v in ours],
        "monai_patches_per_s": [round(v, 2) for v in theirs],
        "noisyseg_settings": settings(ds, patch, args.device, args.precision),
        "monai_channels_last_patches_per_s": [round(v, 2) for v in theirs_cl],
        "speedup": round(float(np.median(ours) / np.median(theirs)), 3),
        "monai_bf16_patches_per_s": [round(v, 2) for v in theirs_bf],
        "speedup_over_monai_channels_last": round(float(np.median(ours) / np.median(theirs_cl)), 3),
        "speedup_over_monai_bf16": round(float(np.median(ours) / np.median(theirs_bf)), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
