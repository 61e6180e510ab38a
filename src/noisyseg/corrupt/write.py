"""Corrupting a dataset named by a ``--data`` string into a new dataset folder: what
``noisyseg corrupt`` and :func:`noisyseg.api.run_corrupt` do."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from noisyseg._validate import check_seed, parse_classes
from noisyseg.corrupt.figures import corruption_figure
from noisyseg.corrupt.stream import CaseCorruption, corrupt_cases
from noisyseg.data import load_dataset, source_path
from noisyseg.data.outdir import atomic_dir, check_out_dir

__all__ = ["write_corrupted"]


def write_corrupted(*, data: str, model: str, out: str | Path, target_dice: float | None = None,
                    strength: float | None = None, fraction: float = 1.0,
                    classes: Sequence[str] | None = None, options: dict[str, Any] | None = None,
                    seed: int = 0, fmt: str = "nii.gz", mode: str | None = None,
                    slice_axis: int = 0, overwrite: bool = False, figure: bool = True,
                    progress: Callable[[int, int], None] | None = None
                    ) -> CaseCorruption:
    """Load ``data``, corrupt its training masks and write the dataset to ``out`` (atomically;
    nothing is written when a check fails). See :func:`noisyseg.api.run_corrupt` for what
    the folder holds; ``progress(i, n)`` is called as volumes are written.
    """
    check_seed(seed)
    inputs = [source_path(data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    cls = parse_classes(classes, ds.class_names) if classes else None
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        res = corrupt_cases(ds, model, tmp, strength=strength, target_dice=target_dice,
                            fraction=fraction, classes=cls, seed=seed, mode=mode,
                            slice_axis=slice_axis, fmt=fmt,
                            provenance={"data": data, "format": fmt}, progress=progress,
                            **(options or {}))
        if figure:
            rec = tmp / "noisyseg" if ds.layout in ("nnunet", "msd") else tmp
            res.config["channels"] = list(ds.channel_names)
            corruption_figure(res, ds.class_names, rec / "examples.png")
    return res
