"""Corrupt any dataset into a dataset folder: cases read, corrupted and written one at a time
(volumes; nnU-Net / Decathlon / folder layouts), or all at once for a dataset held in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noisyseg.corrupt.apply import manifest_table, select_samples
from noisyseg.corrupt.calibration import Calibration, calibrate
from noisyseg.data.cases import CaseDataset
from noisyseg.data.layouts import CaseWriter
from noisyseg.errors import ConfigError
from noisyseg.evaluate import dice

__all__ = ["CaseCorruption", "corrupt_cases"]

#: Mask bytes the calibration may hold in memory (it runs the model on these masks
#: several times); more corrupted cases than fit are calibrated on a random subset.
CALIBRATION_BYTES = 1 << 30


@dataclass(frozen=True)
class CaseCorruption:
    """Hold the output of :func:`corrupt_cases`.

    Parameters
    ----------
    manifest, calibration, config, examples, dataset
        See Attributes.

    Attributes
    ----------
    manifest : DataFrame
        One row per case: ``sample_id, split, corrupted, dice_to_clean, model, strength, mode``.
    calibration : Calibration or None
        Set when a target Dice was given.
    config : dict
        Everything needed to reproduce the result.
    examples : list of dict
        Up to ``n_examples`` corrupted cases kept for figures: ``case_id, image, clean,
        noisy, spacing, dice``.
    dataset : CaseDataset or None
        The corrupted dataset, held in memory, when ``ds`` was (None: read it from ``out``).

    Examples
    --------
    >>> import pandas as pd
    >>> CaseCorruption(pd.DataFrame(), None).examples
    []
    """

    manifest: pd.DataFrame
    calibration: Calibration | None
    config: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    dataset: CaseDataset | None = None


def corrupt_cases(ds: CaseDataset, model: str, out: str | Path, *, strength: float | None = None,
                  target_dice: float | None = None, fraction: float = 1.0,
                  classes: tuple[int, ...] | None = None, seed: int = 0, mode: str | None = None,
                  slice_axis: int = 0, tol: float = 0.005, fmt: str = "nii.gz",
                  max_calibration_cases: int = 100, n_examples: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  provenance: dict[str, Any] | None = None, **options: Any) -> CaseCorruption:
    """Corrupt a random fraction of a dataset's training cases and write every case to a folder.

    A dataset held in memory (:attr:`~noisyseg.data.CaseDataset.samples`: the 2-D sources)
    is corrupted at once by :func:`~noisyseg.corrupt.corrupt_dataset` and written as a folder
    dataset (:func:`~noisyseg.data.write_folder`), its masks back on their source files'
    grid; the result carries it in memory too.

    The selection and per-case seeds follow :func:`~noisyseg.corrupt.corrupt_dataset`
    (which cases from ``(seed, 1)``, case ``i``'s generator from ``(seed, 2)``), so a 2-D
    dataset gives the same masks either way. Cases are read, corrupted and written one at a
    time; with a target Dice, the strength is calibrated first on the corrupted cases'
    clean masks (on a random subset of at most ``max_calibration_cases`` that fits in
    :data:`CALIBRATION_BYTES`) with exactly the draws applied afterwards.

    Parameters
    ----------
    ds : CaseDataset
        The dataset (held in memory or read one case at a time).
    model : str
        Registered error model name.
    out : str or Path
        An existing empty folder (the caller makes it atomic).
    strength : float, optional
        Strength to apply, in the model's unit (e.g. pixels or mm). Exactly one of
        ``strength`` and ``target_dice`` must be given.
    target_dice : float, optional
        Calibrate the strength to this mean Dice of the corrupted cases, in (0, 1).
    fraction : float
        Fraction of training cases to corrupt, in [0, 1].
    classes : tuple of int, optional
        Foreground labels to corrupt (default: all).
    seed : int
        Seed of the selection and of every case's generator.
    mode : {'slicewise', 'volumetric'}, optional
        How the model applies to a volume (default: volumetric where it has a 3-D form).
    slice_axis : int
        Slice axis for slice-wise mode (array order: 0 is z, axial slices).
    tol : float
        Tolerance on the mean Dice when calibrating.
    fmt : str
        Image file format of the cases written (default ``nii.gz``).
    max_calibration_cases : int
        Most cases the strength is calibrated on.
    n_examples : int, optional
        Corrupted cases kept for figures (default 8 of a dataset of 2-D images held in
        memory, else 2).
    progress : callable, optional
        Called ``progress(done, total)`` after each case.
    provenance : dict, optional
        Added to the config written in ``corruption.json`` (the ``--data`` string, ...).
    **options
        Further model options.

    Returns
    -------
    CaseCorruption

    Raises
    ------
    ConfigError
        What :func:`~noisyseg.corrupt.corrupt_dataset` refuses, and ``mode`` for 2-D images.
    CalibrationError
        ``target_dice`` cannot be reached (see :func:`~noisyseg.corrupt.calibrate`).

    Examples
    --------
    >>> import os, tempfile
    >>> from noisyseg.data import synthetic_echo
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = corrupt_cases(synthetic_echo(n=4, size=32, seed=0), "dilate", d, strength=1.0)
    ...     "corruption.json" in os.listdir(d)
    True
    >>> res.config["n_corrupted"], len(res.examples)
    (2, 2)
    """
    if ds.samples is not None:
        return _corrupt_in_memory(ds, model, Path(out), strength=strength,
                                  target_dice=target_dice, fraction=fraction, classes=classes,
                                  seed=seed, mode=mode, tol=tol, fmt=fmt,
                                  n_examples=8 if n_examples is None else n_examples,
                                  progress=progress, provenance=provenance, options=options)
    n_examples = 2 if n_examples is None else n_examples
    m, train, chosen, sample_seeds = select_samples(
        ds, model, strength=strength, target_dice=target_dice, fraction=fraction,
        classes=classes, seed=seed, options=options, mode=mode)
    n_bad = len(chosen)
    first = ds.label_geometry(int(chosen[0]) if n_bad else 0)
    volume = first.ndim == 3
    eff_mode = (mode or m.default_mode()) if volume else None
    kw: dict[str, Any] = dict(options)
    if volume:
        kw.update(mode=eff_mode, slice_axis=slice_axis)
    cal = None
    if target_dice is not None:
        if n_bad == 0:
            raise ConfigError("target_dice: no training case to corrupt (fraction is 0 "
                              "or the dataset has no training split)")
        per_case = int(np.prod(first.shape))
        cap = max(1, min(max_calibration_cases, CALIBRATION_BYTES // max(per_case, 1)))
        cal_idx = chosen if n_bad <= cap else np.sort(
            np.random.default_rng([seed, 3]).choice(chosen, cap, replace=False))
        masks = [ds.read_label(int(i), clean=True)[0] for i in cal_idx]
        cal = _calibrate_cases(m, masks, [sample_seeds[i] for i in cal_idx], ds, cal_idx,
                               target_dice, tol, kw, volume and eff_mode == "volumetric")
        strength = cal.strength
        del masks
    strength = float(strength)  # type: ignore[arg-type]
    flags = np.zeros(len(ds), dtype=bool)
    flags[chosen] = True
    writer = CaseWriter(ds, Path(out), fmt=fmt)
    dices = np.ones(len(ds))
    examples: list[dict[str, Any]] = []
    for i in range(len(ds)):
        image = ds.read_image(i)[0] if ds.generator is not None else None
        if flags[i]:
            clean, geom = ds.read_label(i, clean=True)
            extra = {"spacing": geom.spacing} if volume and eff_mode == "volumetric" else {}
            noisy = m(clean, strength, rng=np.random.default_rng(sample_seeds[i]), **kw, **extra)
            dices[i] = float(dice(noisy[None], clean[None], ds.n_classes)[0])
            writer.write(i, noisy, geom, image)
            if len(examples) < n_examples:
                img = image if image is not None else ds.read_image(i)[0]
                examples.append({"case_id": ds.cases[i].case_id, "image": img[0], "clean": clean,
                                 "noisy": noisy, "spacing": geom.spacing, "dice": dices[i]})
        else:
            geom = ds.label_geometry(i)
            writer.write(i, None, geom, image)
        if progress is not None:
            progress(i + 1, len(ds))
    unit = m.unit_for(eff_mode, first.ndim)
    manifest = manifest_table(ds, m, flags, dices, strength,
                              mode=np.where(flags, eff_mode or "2d", ""))
    config = {"model": m.name, "kind": m.kind, "strength": strength, "strength_unit": unit,
              "mode": eff_mode, "slice_axis": slice_axis if eff_mode == "slicewise" else None,
              "target_dice": target_dice, "fraction": fraction, "n_corrupted": n_bad,
              "n_train": int(len(train)), "seed": seed, "layout": ds.layout,
              "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
              "source": ds.source,
              "mean_dice_corrupted": float(dices[flags].mean()) if n_bad else 1.0}
    config.update(provenance or {})
    writer.finish(manifest, {"corruption.json": {
        "config": config, "calibration": cal.to_dict() if cal else None}})
    return CaseCorruption(manifest, cal, config, examples)


def _corrupt_in_memory(ds: CaseDataset, model: str, out: Path, *, strength: float | None,
                       target_dice: float | None, fraction: float,
                       classes: tuple[int, ...] | None, seed: int, mode: str | None, tol: float,
                       fmt: str, n_examples: int, progress: Callable[[int, int], None] | None,
                       provenance: dict[str, Any] | None, options: dict[str, Any]
                       ) -> CaseCorruption:
    """:func:`corrupt_cases` of a dataset held in memory."""
    from noisyseg.corrupt.apply import corrupt_dataset
    from noisyseg.data.folder import write_folder_into

    if mode is not None and ds.spatial_dims == 2:
        raise ConfigError(f"mode: {ds.source or 'the dataset'} holds 2-D images; slice-wise and "
                          f"volumetric modes apply to volumes")
    res = corrupt_dataset(ds, model, strength=strength, target_dice=target_dice,
                          fraction=fraction, classes=classes, seed=seed, tol=tol, **options)
    config = {**res.config, **(provenance or {})}
    write_folder_into(res.dataset, out, fmt=fmt, manifest=res.manifest, extra_json={
        "corruption.json": {"config": config,
                            "calibration": res.calibration.to_dict() if res.calibration else None}})
    if progress is not None:
        progress(len(ds), len(ds))
    out_ds, d = res.dataset, res.manifest["dice_to_clean"].to_numpy()
    examples = [{"case_id": out_ds.sample_ids[i], "image": out_ds.images[i],
                 "clean": out_ds.truth[i], "noisy": out_ds.masks[i],
                 "spacing": out_ds.label_geometry(int(i)).spacing, "dice": float(d[i])}
                for i in np.flatnonzero(res.manifest["corrupted"].to_numpy())[:n_examples]]
    return CaseCorruption(res.manifest, res.calibration, config, examples, dataset=out_ds)


def _calibrate_cases(m: Any, masks: list[np.ndarray], seeds: list[int], ds: CaseDataset,
                     idx: np.ndarray, target: float, tol: float, kw: dict[str, Any],
                     per_case_spacing: bool) -> Calibration:
    """:func:`calibrate` on volumes; volumetric models get each case's own spacing."""
    if not per_case_spacing:
        return calibrate(m, masks, target, seeds=seeds, tol=tol, n_classes=ds.n_classes, **kw)
    spacings = [ds.label_geometry(int(i)).spacing for i in idx]
    if len(set(spacings)) == 1:
        return calibrate(m, masks, target, seeds=seeds, tol=tol, n_classes=ds.n_classes,
                         spacing=spacings[0], **kw)
    from dataclasses import replace

    wrapped = replace(m, volumetric=_per_mask_spacing(m.volumetric, masks, spacings))
    return calibrate(wrapped, masks, target, seeds=seeds, tol=tol, n_classes=ds.n_classes,
                     spacing=spacings[0], **kw)


def _per_mask_spacing(fn: Any, masks: list[np.ndarray], spacings: list[tuple[float, ...]]) -> Any:
    table = {id(mk): sp for mk, sp in zip(masks, spacings, strict=True)}

    def call(mask: np.ndarray, strength: float, *, rng: np.random.Generator,
             spacing: Any = None, **options: Any) -> np.ndarray:
        return fn(mask, strength, rng=rng, spacing=table.get(id(mask), spacing), **options)

    return call
