"""Training throughput: noisyseg's trainer vs a plain PyTorch loop, and the matmul ceiling.

Run: ``python benchmarks/bench_train.py [--steps 20]``; prints JSON. Both sides run in one
process on the same data (synthetic-echo 128x128, batch 16, all cores):

- ``noisyseg``: :class:`noisyseg.train.Trainer` with the default U-Net (width 6);
- ``plain``: a textbook loop (``DataLoader`` over a ``TensorDataset``, per-sample
  indexing, cross-entropy) over MONAI's BasicUNet with features chosen so its FLOPs per
  image are close to the U-Net's;
- ``ceiling``: FLOP/s of a 2048x2048 fp32 matmul on the same machine;
- ``width_sweep``: the same optimisation step (Adam, cross-entropy, batch 16) for U-Nets of
  other base widths, as a fraction of the ceiling: how far the shortfall at width 6 is the
  network's shape (memory-bound convolutions with few channels) rather than the loop.
FLOPs are counted with ``torch.utils.flop_counter`` (forward + backward).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _machine import cpu_model
from monai.networks.nets import BasicUNet
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from noisyseg.data import synthetic_echo
from noisyseg.models import build_model
from noisyseg.train import TrainConfig, Trainer, normalise_images


def flops_per_image(model: torch.nn.Module, size: int, n_classes: int) -> float:
    x = torch.randn(2, 1, size, size)
    y = torch.randint(0, n_classes, (2, size, size))
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / 2


def matmul_flops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def width_point(width: int, size: int, bs: int, ceiling: float, steps: int = 5) -> dict:
    """Images/s and fraction of the matmul ceiling of a U-Net of base ``width``."""
    torch.manual_seed(0)
    net = build_model("unet", n_classes=4, width=width)
    fl = flops_per_image(net, size, 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(bs, 1, size, size), torch.randint(0, 4, (bs, size, size))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        best = max(best, steps * bs / (time.perf_counter() - t))
    return {"width": width, "images_per_s": round(best, 1), "gflop_per_image": round(fl / 1e9, 3),
            "fraction_of_ceiling": round(best * fl / ceiling, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--widths", default="6,16,32", help="U-Net base widths for the sweep ('' skips it)")
    args = ap.parse_args()
    bs = 16
    ds = synthetic_echo(n=200, size=args.size, seed=0)

    cfg = TrainConfig(epochs=1, steps_per_epoch=args.steps, batch_size=bs, augment=False)
    trainer = Trainer(cfg, ds)
    ours_flops = flops_per_image(build_model("unet", n_classes=4), args.size, 4)
    # warm-up, then time the optimisation steps only (validation excluded)
    Trainer(TrainConfig(epochs=1, steps_per_epoch=2, batch_size=bs), ds).fit()
    trainer.fit()
    ours_ips = trainer.history[-1]["images_per_s"]  # optimisation steps only, no validation

    # plain loop over BasicUNet with similar FLOPs per image
    best = None
    for f0 in (4, 6, 8, 10):
        feats = (f0, f0, 2 * f0, 4 * f0, 8 * f0, f0)
        fl = flops_per_image(BasicUNet(2, 1, 4, features=feats), args.size, 4)
        if best is None or abs(fl - ours_flops) < abs(best[1] - ours_flops):
            best = (feats, fl)
    feats, plain_flops = best
    torch.manual_seed(0)
    net = BasicUNet(2, 1, 4, features=feats)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = normalise_images(ds.images)
    y = torch.as_tensor(ds.masks.astype("int64"))
    loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True, drop_last=True)

    def run(n: int) -> float:
        done, t0 = 0, time.perf_counter()
        while done < n:
            for xb, yb in loader:
                loss = torch.nn.functional.cross_entropy(net(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                done += 1
                if done >= n:
                    break
        return time.perf_counter() - t0

    run(2)
    plain_ips = args.steps * bs / run(args.steps)
    ceiling = matmul_flops()
    out = {
        "machine": {"cpu": cpu_model(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "size": args.size, "batch": bs, "steps": args.steps,
        "noisyseg_unet": {"images_per_s": round(ours_ips, 1),
                          "gflop_per_image": round(ours_flops / 1e9, 3),
                          "gflop_per_s": round(ours_ips * ours_flops / 1e9, 2)},
        "plain_basicunet": {"features": feats, "images_per_s": round(plain_ips, 1),
                            "gflop_per_image": round(plain_flops / 1e9, 3),
                            "gflop_per_s": round(plain_ips * plain_flops / 1e9, 2)},
        "speedup_images_per_s": round(ours_ips / plain_ips, 2),
        "speedup_flop_per_s": round(ours_ips * ours_flops / (plain_ips * plain_flops), 2),
        "matmul_ceiling_gflop_per_s": round(ceiling / 1e9, 1),
        "fraction_of_ceiling": round(ours_ips * ours_flops / ceiling, 3),
        "width_sweep": [width_point(w, args.size, bs, ceiling)
                        for w in (int(v) for v in args.widths.split(",") if v.strip())],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
