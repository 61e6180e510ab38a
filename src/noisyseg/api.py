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

__all__ = ["run_corrupt", "run_demo"]


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
