"""Corrupt a chosen fraction of a dataset's training masks (the error level)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from noisyseg._validate import check_fraction, check_seed
from noisyseg.corrupt.calibration import Calibration, calibrate
from noisyseg.corrupt.models import ErrorModel, get_model
from noisyseg.data import CaseDataset
from noisyseg.errors import ConfigError
from noisyseg.evaluate import dice

__all__ = ["CorruptionResult", "corrupt_dataset"]


@dataclass(frozen=True)
class CorruptionResult:
    """Hold the output of :func:`corrupt_dataset`.

    Parameters
    ----------
    dataset, manifest, calibration, config
        See Attributes.

    Attributes
    ----------
    dataset : CaseDataset
        Training masks corrupted where ``manifest.corrupted``; ``clean_masks`` holds the truth.
    manifest : DataFrame
        One row per sample: ``sample_id, split, corrupted, dice_to_clean, model, strength``.
    calibration : Calibration or None
        Set when a target Dice was given.
    config : dict
        Everything needed to reproduce the result (model, options, strength, fraction, seed).

    Examples
    --------
    >>> from noisyseg.data import synthetic_echo
    >>> res = corrupt_dataset(synthetic_echo(n=4, size=32, seed=0), "dilate", strength=1.0)
    >>> isinstance(res, CorruptionResult), res.calibration is None
    (True, True)
    """

    dataset: CaseDataset
    manifest: pd.DataFrame
    calibration: Calibration | None
    config: dict[str, Any] = field(default_factory=dict)


def choose_samples(train: np.ndarray, n: int, fraction: float, seed: int
                   ) -> tuple[np.ndarray, list[int]]:
    """Which training samples to corrupt and every sample's seed: ``round(fraction * len(train))``
    of ``train`` drawn from ``(seed, 1)``, sample ``i``'s generator seeded by the ``i``-th child
    of ``SeedSequence((seed, 2))``. Shared by the in-memory and the streaming corruption, so a
    2-D dataset gets the same masks either way."""
    n_bad = int(round(fraction * len(train)))
    seed = check_seed(seed)
    chosen = np.sort(np.random.default_rng([seed, 1]).choice(train, n_bad, replace=False))
    seeds = [int(s.generate_state(1, np.uint64)[0])
             for s in np.random.SeedSequence([seed, 2]).spawn(n)]
    return chosen, seeds


class Selection(NamedTuple):
    """A checked corruption request: its model and which samples it corrupts."""

    model: ErrorModel
    train: np.ndarray  # the training samples' indices
    chosen: np.ndarray  # the corrupted ones (sorted)
    seeds: list[int]  # every sample's generator seed


def select_samples(ds: CaseDataset, model: str, *, strength: float | None,
                   target_dice: float | None, fraction: float,
                   classes: tuple[int, ...] | None, seed: int, options: dict[str, Any],
                   mode: str | None = None) -> Selection:
    """Check a corruption request and choose its samples (:func:`choose_samples`).

    ``classes``, when given, are added to ``options`` (the model's keyword options).

    Raises
    ------
    ConfigError
        An unknown model or ``mode``, both or neither of ``strength`` and ``target_dice``,
        or a ``fraction`` outside [0, 1].
    """
    m = get_model(model)
    if (strength is None) == (target_dice is None):
        raise ConfigError("strength: give exactly one of strength and target_dice")
    if mode is not None and mode not in m.modes:
        raise ConfigError(f"mode: {m.name} has modes {list(m.modes)}, got {mode!r}")
    check_fraction(fraction, name="fraction")
    if classes is not None:
        options["classes"] = tuple(int(c) for c in classes)
    train = ds.indices("train")
    chosen, seeds = choose_samples(train, len(ds), fraction, seed)
    return Selection(m, train, chosen, seeds)


def manifest_table(ds: CaseDataset, model: ErrorModel, flags: np.ndarray,
                   dices: np.ndarray, strength: float, **columns: Any) -> pd.DataFrame:
    """One row per sample: ``sample_id, split, corrupted, dice_to_clean, model, strength``,
    then ``columns``."""
    return pd.DataFrame({
        "sample_id": list(ds.sample_ids), "split": ds.split, "corrupted": flags,
        "dice_to_clean": np.round(dices, 6), "model": np.where(flags, model.name, "none"),
        "strength": np.where(flags, strength, 0.0), **columns,
    })


def corrupt_dataset(ds: CaseDataset, model: str, *, strength: float | None = None,
                    target_dice: float | None = None, fraction: float = 1.0,
                    classes: tuple[int, ...] | None = None, seed: int = 0,
                    tol: float = 0.005, **options: Any) -> CorruptionResult:
    """Apply an error model to a random ``fraction`` of the *training* samples.

    Validation and test masks are never touched. Which samples are corrupted is drawn from
    ``(seed, 1)``; sample ``i`` is corrupted with its own generator, seeded by the ``i``-th
    child of ``SeedSequence((seed, 2))``; so the same call always gives the same dataset.

    Parameters
    ----------
    ds : CaseDataset
        A dataset held in memory (:attr:`~noisyseg.data.CaseDataset.samples`); to corrupt a
        dataset read one case at a time into a folder, :func:`~noisyseg.corrupt.corrupt_cases`.
    model : str
        Registered error model name.
    strength : float, optional
        Strength to apply (unit in the model's docstring). Exactly one of ``strength`` and
        ``target_dice`` must be given.
    target_dice : float, optional
        Calibrate the strength so the corrupted samples' mean Dice against their clean
        masks is ``target_dice`` (within ``tol``), using exactly the draws applied here.
    fraction : float
        Fraction of training samples to corrupt, in [0, 1].
    classes : tuple of int, optional
        Foreground labels to corrupt (default: all).
    seed : int
        Seed of the selection and of every sample's generator.
    tol : float
        Tolerance on the mean Dice when calibrating to ``target_dice``.
    **options
        Further model options.

    Returns
    -------
    CorruptionResult

    Raises
    ------
    ConfigError
        An unknown model, both or neither of ``strength`` and ``target_dice``, a
        ``fraction`` outside [0, 1], a bad ``seed``, or ``target_dice`` with no training
        sample to corrupt; and what :func:`~noisyseg.corrupt.calibrate` refuses.
    CalibrationError
        ``target_dice`` cannot be reached (see :func:`~noisyseg.corrupt.calibrate`).

    Examples
    --------
    >>> from noisyseg.data import synthetic_echo
    >>> ds = synthetic_echo(n=4, size=32, seed=0)
    >>> res = corrupt_dataset(ds, "dilate", strength=1.0, seed=0)
    >>> res.manifest["corrupted"].tolist()  # only the training samples
    [True, False, False, True]
    >>> res.manifest["dice_to_clean"].round(3).tolist()
    [0.614, 1.0, 1.0, 0.592]
    """
    m, train, chosen, sample_seeds = select_samples(
        ds, model, strength=strength, target_dice=target_dice, fraction=fraction,
        classes=classes, seed=seed, options=options)
    n_bad = len(chosen)
    clean = ds.truth
    cal = None
    if target_dice is not None:
        if n_bad == 0:
            raise ConfigError("target_dice: no training sample to corrupt (fraction is 0 "
                              "or the dataset has no training split)")
        cal = calibrate(m, clean[chosen], target_dice, seeds=[sample_seeds[i] for i in chosen],
                        rng=np.random.default_rng([seed, 3]), tol=tol, n_classes=ds.n_classes,
                        **options)
        strength = cal.strength
    strength = float(strength)  # type: ignore[arg-type]  # given, or set by calibration
    masks = clean.copy()
    for i in chosen:
        masks[i] = m(clean[i], strength, rng=np.random.default_rng(sample_seeds[i]), **options)
    flags = np.zeros(len(ds), dtype=bool)
    flags[chosen] = True
    d = dice(masks, clean, ds.n_classes)
    manifest = manifest_table(ds, m, flags, d, strength)
    config = {"model": m.name, "kind": m.kind, "strength": float(strength),
              "strength_unit": m.unit, "target_dice": target_dice, "fraction": fraction,
              "n_corrupted": n_bad, "n_train": int(len(train)), "seed": seed,
              "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
              "source": ds.source,
              "mean_dice_corrupted": float(d[flags].mean()) if n_bad else 1.0}
    out = ds.with_masks(masks, corrupted=flags, corruption=config)
    return CorruptionResult(out, manifest, cal, config)
