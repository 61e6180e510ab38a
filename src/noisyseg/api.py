"""Typed Python functions behind each CLI command (everything the CLI does is importable)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noisyseg._validate import parse_classes
from noisyseg.corrupt import CorruptionResult, corrupt_dataset
from noisyseg.data import load_dataset, write_folder
from noisyseg.data.io import atomic_dir, check_out_dir
from noisyseg.report import corruption_figure, corruption_summary
from noisyseg.train import TrainConfig

__all__ = ["run_corrupt", "run_demo", "run_train"]


def run_corrupt(*, data: str, model: str, out: str | Path, target_dice: float | None = None,
                strength: float | None = None, fraction: float = 1.0,
                classes: Sequence[str] | None = None, options: dict[str, Any] | None = None,
                seed: int = 0, fmt: str = "nii.gz", overwrite: bool = False,
                figure: bool = True) -> CorruptionResult:
    """Load ``data``, corrupt its training masks and write a folder dataset to ``out``.

    The folder holds ``images/``, ``masks/`` (noisy), ``masks_clean/``, ``split.csv``,
    ``dataset.json``, ``manifest.csv``, ``corruption.json`` (config, calibration, seed)
    and ``examples.png``; it is itself a valid ``--data`` source.
    """
    check_out_dir(out, overwrite=overwrite)
    ds = load_dataset(data)
    cls = parse_classes(classes, ds.class_names) if classes else None
    res = corrupt_dataset(ds, model, strength=strength, target_dice=target_dice,
                          fraction=fraction, classes=cls, seed=seed, **(options or {}))
    record = {"config": {**res.config, "data": data, "format": fmt},
              "calibration": res.calibration.to_dict() if res.calibration else None}
    out = Path(out)
    write_folder(res.dataset, out, fmt=fmt, manifest=res.manifest,
                 extra_json={"corruption.json": record}, overwrite=overwrite,
                 extra=(lambda tmp: corruption_figure(res, tmp / "examples.png")) if figure
                 else None)
    return res


DEMO_MODELS = ("natural", "choppy", "random_flip", "boundary", "merge")


def run_demo(*, out: str | Path = "noisyseg-demo", overwrite: bool = True,
             data: str = "synthetic-echo:n=60,size=128,seed=0",
             target_dice: float = 0.90) -> Path:
    """Corrupt the built-in data with several error models at one target Dice; summarise.

    Writes ``summary.md``, ``summary.csv`` and one ``examples_<model>.png`` per model.
    Returns the path of ``summary.md``.
    """
    ds = load_dataset(data)
    results = {m: corrupt_dataset(ds, m, target_dice=target_dice, seed=0) for m in DEMO_MODELS}
    table = corruption_summary(results)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for m, r in results.items():
            corruption_figure(r, tmp / f"examples_{m}.png", n=4)
        table.to_csv(tmp / "summary.csv", index=False)
        lines = [f"# noisyseg demo: simulated label errors at mean Dice {target_dice}", "",
                 f"Data: `{data}` ({len(ds)} samples; training masks corrupted).", "",
                 table.to_markdown(index=False) if _has_tabulate() else table.to_string(),
                 "", *[f"![{m}](examples_{m}.png)" for m in DEMO_MODELS], ""]
        (tmp / "summary.md").write_text("\n".join(lines))
        (tmp / "config.json").write_text(json.dumps(
            {"data": data, "target_dice": target_dice, "models": list(DEMO_MODELS)}, indent=2))
    return Path(out) / "summary.md"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def run_train(*, data: str, out: str | Path, config: TrainConfig, overwrite: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Train on ``data``'s training masks, evaluate on clean test masks, write a run folder.

    ``out`` receives ``metrics.json`` (test metrics per class and mean, config, seed,
    timing), ``history.csv`` (per epoch: train loss, val Dice, images/s), ``model.pt``
    (weights + config; loads with ``weights_only=True``), ``config.json`` and
    ``predictions.png`` (test images, true vs predicted contours). Returns the metrics dict.
    """
    import time

    import pandas as pd
    import torch

    from noisyseg.evaluate import evaluate_masks
    from noisyseg.report import plot_contour_grid, save_figure
    from noisyseg.train import ProgressBar, Trainer

    check_out_dir(out, overwrite=overwrite)
    ds = load_dataset(data)
    test = ds.indices("test")
    if len(test) == 0:
        test = ds.indices("val")
    t0 = time.perf_counter()
    trainer = Trainer(config, ds, [ProgressBar(enabled=progress)])
    trainer.fit()
    train_s = time.perf_counter() - t0
    pred = trainer.predict(test)
    metrics = evaluate_masks(pred, ds.truth[test], ds.class_names)
    result = {"data": data, "dataset": ds.summary(), "config": config.to_dict(),
              "test": metrics.to_dict() | {"n": int(len(test))},
              "best_epoch": trainer.best_epoch, "best_val_dice": trainer.best_score,
              "interrupted": trainer.interrupted, "train_seconds": round(train_s, 2),
              "device": str(trainer.device), "torch": torch.__version__,
              "threads": torch.get_num_threads()}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2))
        (tmp / "config.json").write_text(json.dumps({"data": data, **config.to_dict()}, indent=2))
        pd.DataFrame(trainer.history).to_csv(tmp / "history.csv", index=False)
        trainer.save(tmp / "model.pt")
        k = test[:8]
        fig = plot_contour_grid(
            ds.images[k], [ds.truth[k], pred[:8]], labels=("truth", "prediction"),
            titles=[f"{ds.sample_ids[i]}  Dice {metrics.per_sample_dice[j]:.3f}"
                    for j, i in enumerate(k)],
            class_names=ds.class_names,
            caption=f"{config.model}: test mean Dice {metrics.mean['dice']:.3f}")
        save_figure(fig, tmp / "predictions.png")
    return result
