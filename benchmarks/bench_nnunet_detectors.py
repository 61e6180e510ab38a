"""The cost of noisyseg's per-case training loss inside nnU-Net's own training.

Run: ``python benchmarks/bench_nnunet_detectors.py [--n 10] [--size 128] [--slices 16]
[--epochs 3] [--iterations 20] [--repeats 2] [--out benchmarks/bench_nnunet_detectors.json]``;
prints JSON (and writes it to ``--out``). Needs the ``nnunet`` extra.

- End to end: writes an nnU-Net raw dataset of ``--n`` CT-like cases of ``--slices`` x
  ``--size`` x ``--size`` voxels (3 labels) in a temporary folder, runs
  ``nnUNetv2_plan_and_preprocess -c 2d``, then trains fold 0 with nnU-Net's ``nnUNetTrainer``
  and with ``noisyseg nnunet train``'s trainer (same seed, ``nnUNet_n_proc_DA=0``, on the CPU),
  round robin ``--repeats`` times, and times every ``train_step``. Reports the median step of
  each, the difference, and the trainer's own count of the time spent computing and storing
  the patch losses (``record_seconds``), per iteration and as a share of the plain step;
  the two runs' losses must be identical.
- The recording alone on nnU-Net's usual shapes (2d: 12 patches of 512 x 512, 3d_fullres:
  2 of 128^3, 3 classes, deep supervision): :func:`~noisyseg.run.nnunet.patch_losses` against
  nnU-Net's own loss of the same batch (forward only), both on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from _machine import cpu_model


def write_dataset(raw: Path, n: int, size: int, slices: int) -> None:
    """An nnU-Net raw dataset: boxes of liver holding boxes of tumour, noisy intensities."""
    rng = np.random.default_rng(0)
    for d in ("imagesTr", "labelsTr"):
        (raw / d).mkdir(parents=True)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    for i in range(n):
        lab = np.zeros((slices, size, size), np.uint8)
        oy, ox = rng.integers(0, size // 8, 2)
        s = size // 4
        lab[1:-1, s + oy:3 * s + oy, s + ox:3 * s + ox] = 1
        lab[2:-2, s + s // 2 + oy:2 * s + s // 2 + oy, s + s // 2 + ox:2 * s + s // 2 + ox] = 2
        img = lab * 40.0 + 100.0 + rng.normal(0, 5, lab.shape)
        nib.save(nib.Nifti1Image(lab.T.astype(np.int16), affine), raw / "labelsTr" / f"case_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(img.T.astype(np.float32), affine),
                 raw / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": n, "file_ending": ".nii.gz"}))


def timed_run(ours: bool, root: Path, epochs: int, iterations: int) -> dict:
    """One training of fold 0; per-step seconds and losses."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from noisyseg.run.nnunet import make_trainer

    os.environ["nnUNet_results"] = str(root / ("results_ours" if ours else "results_plain"))
    if ours:
        tr = make_trainer(950, "2d", 0, device="cpu", epochs=epochs, iterations=iterations,
                          val_iterations=1, seed=0)
    else:
        pre = root / "nnUNet_preprocessed" / "Dataset950_Bench"
        plans = json.loads((pre / "nnUNetPlans.json").read_text()) | {"continue_training": False}
        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        tr = nnUNetTrainer(plans, "2d", 0, json.loads((pre / "dataset.json").read_text()),
                           torch.device("cpu"))
        tr.num_epochs, tr.num_iterations_per_epoch, tr.num_val_iterations_per_epoch = \
            epochs, iterations, 1
    steps, losses = [], []
    step = tr.train_step

    def timed(batch):
        t = time.perf_counter()
        out = step(batch)
        steps.append(time.perf_counter() - t)
        losses.append(float(out["loss"]))
        return out

    tr.train_step = timed
    devnull = open(os.devnull, "w")  # nnU-Net prints every epoch
    old, sys.stdout = sys.stdout, devnull
    try:
        tr.run_training()
    finally:
        sys.stdout = old
        devnull.close()
    out = {"steps": steps[iterations:], "losses": losses,  # the first epoch warms up
           "batch_size": int(tr.batch_size),
           "patch_size": [int(v) for v in tr.configuration_manager.patch_size]}
    if ours:
        out["record_seconds"] = tr.record_seconds
    return out


def recording_alone(repeats: int = 5) -> dict:
    """patch_losses against nnU-Net's own loss on nnU-Net's usual batch shapes (CPU)."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from noisyseg.run.nnunet import patch_losses

    out = {}
    g = torch.Generator().manual_seed(0)
    for name, b, shape, levels, batch_dice in (("2d", 12, (512, 512), 7, True),
                                               ("3d_fullres", 2, (128, 128, 128), 5, False)):
        inner = DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False,
                                "ddp": False}, {}, weight_ce=1, weight_dice=1,
                               dice_class=MemoryEfficientSoftDiceLoss)
        w = np.array([1 / 2 ** i for i in range(levels)])
        w[-1] = 0
        loss = DeepSupervisionWrapper(inner, w / w.sum())
        outs, tgts = [], []
        for lvl in range(levels):
            s = tuple(max(4, d // 2 ** lvl) for d in shape)
            outs.append(torch.randn(b, 3, *s, generator=g))
            tgts.append(torch.randint(0, 3, (b, 1, *s), generator=g).float())
        t_loss, t_rec = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            loss(outs, tgts)
            t_loss.append(time.perf_counter() - t)
            t = time.perf_counter()
            patch_losses(loss, outs, tgts)
            t_rec.append(time.perf_counter() - t)
        out[name] = {"batch": b, "patch": list(shape), "nnunet_loss_ms": 1e3 * min(t_loss),
                     "patch_losses_ms": 1e3 * min(t_rec)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("nnUNet_raw", "nnUNet_preprocessed"):
            (root / d).mkdir()
            os.environ[d] = str(root / d)
        write_dataset(root / "nnUNet_raw" / "Dataset950_Bench", args.n, args.size, args.slices)
        t = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("nnUNetv2_plan_and_preprocess")),
                        "-d", "950", "-c", "2d", "-np", "1", "-npfp", "1", "--no_pbar"],
                       check=True, capture_output=True, env=dict(os.environ))
        prep = time.perf_counter() - t
        os.environ["nnUNet_n_proc_DA"] = "0"
        runs: dict[str, list[dict]] = {"plain": [], "ours": []}
        for _ in range(args.repeats):
            for name in ("plain", "ours"):
                runs[name].append(timed_run(name == "ours", root, args.epochs, args.iterations))
    plain = [s for r in runs["plain"] for s in r["steps"]]
    ours = [s for r in runs["ours"] for s in r["steps"]]
    n_iter = args.epochs * args.iterations
    rec = min(r["record_seconds"] / n_iter for r in runs["ours"])
    med_plain, med_ours = statistics.median(plain), statistics.median(ours)
    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "python": platform.python_version()},
        "command": "python benchmarks/bench_nnunet_detectors.py " + " ".join(sys.argv[1:]),
        "dataset": {"cases": args.n, "shape": [args.slices, args.size, args.size],
                    "configuration": "2d", "batch_size": runs["ours"][0]["batch_size"],
                    "patch_size": runs["ours"][0]["patch_size"],
                    "plan_and_preprocess_s": prep},
        "schedule": {"epochs": args.epochs, "iterations": args.iterations,
                     "repeats": args.repeats, "timed_steps_each": len(plain)},
        "same_losses": all(a["losses"] == b["losses"]
                           for a, b in zip(runs["plain"], runs["ours"], strict=True)),
        "step_ms": {"plain_median": 1e3 * med_plain, "with_detector_median": 1e3 * med_ours,
                    "difference_pct": 100 * (med_ours / med_plain - 1)},
        "recording_ms_per_iteration": 1e3 * rec,
        "recording_share_of_plain_step_pct": 100 * rec / med_plain,
        "recording_alone_cpu": recording_alone(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
