"""Typed Python functions behind each CLI command (everything the CLI does is importable)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisyseg._validate import check_seed, parse_classes
from noisyseg.corrupt import CaseCorruption, CorruptionResult, corrupt_dataset
from noisyseg.data import CaseDataset, absolute_source, load_dataset, source_path, write_folder
from noisyseg.data.outdir import atomic_dir, check_out_dir
from noisyseg.errors import ConfigError
from noisyseg.refurbish import RefurbishConfig
from noisyseg.report import corruption_figure
from noisyseg.train import TrainConfig

__all__ = ["run_audit", "run_corrupt", "run_crossval", "run_demo", "run_rank", "run_study",
           "run_train"]


def run_corrupt(*, data: str, model: str, out: str | Path, target_dice: float | None = None,
                strength: float | None = None, fraction: float = 1.0,
                classes: Sequence[str] | None = None, options: dict[str, Any] | None = None,
                seed: int = 0, fmt: str = "nii.gz", mode: str | None = None, slice_axis: int = 0,
                overwrite: bool = False, figure: bool = True,
                progress: bool = False) -> CorruptionResult | CaseCorruption:
    """Load ``data``, corrupt its training masks and write the dataset to ``out``.

    2-D sources give a folder dataset: ``images/``, ``masks/`` (noisy), ``masks_clean/``,
    ``split.csv``, ``dataset.json``, ``manifest.csv``, ``corruption.json`` (config,
    calibration, seed) and ``examples.png``. Masks of a folder or CAMUS source go back to
    their source files' grid and geometry (the resizing for ``size=`` is undone).

    Volume sources (nnU-Net, Decathlon, a folder of volumes, synthetic-ct) are streamed one
    case at a time and written in their own layout (:class:`~noisyseg.data.layouts.CaseWriter`):
    an nnU-Net dataset stays nnU-Net-trainable, with noisyseg's records in ``noisyseg/``.
    ``mode`` / ``slice_axis`` choose slice-wise or volumetric errors. Either way ``out`` is itself
    a valid ``--data`` source, written atomically.
    """
    from noisyseg.corrupt import corrupt_cases
    from noisyseg.data import CaseDataset
    from noisyseg.report import volume_corruption_figure

    check_seed(seed)
    inputs = [source_path(data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    cls = parse_classes(classes, ds.class_names) if classes else None
    if isinstance(ds, CaseDataset):
        from rich.progress import Progress

        with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp, Progress(disable=not progress,
                                                                   transient=True) as bar:
            task = bar.add_task("corrupting", total=len(ds))
            res = corrupt_cases(ds, model, tmp, strength=strength, target_dice=target_dice,
                                fraction=fraction, classes=cls, seed=seed, mode=mode,
                                slice_axis=slice_axis,
                                fmt=fmt, provenance={"data": data, "format": fmt},
                                progress=lambda i, n: bar.update(task, completed=i),
                                **(options or {}))
            if figure:
                rec = tmp / "noisyseg" if ds.layout in ("nnunet", "msd") else tmp
                res.config["channels"] = list(ds.channel_names)
                volume_corruption_figure(res, ds.class_names, rec / "examples.png")
        return res
    if mode is not None:
        raise ConfigError(f"mode: {data} holds 2-D images; slice-wise and volumetric modes "
                          f"apply to volumes")
    res = corrupt_dataset(ds, model, strength=strength, target_dice=target_dice,
                          fraction=fraction, classes=cls, seed=seed, **(options or {}))
    record = {"config": {**res.config, "data": data, "format": fmt},
              "calibration": res.calibration.to_dict() if res.calibration else None}
    out = Path(out)
    write_folder(res.dataset, out, fmt=fmt, manifest=res.manifest,
                 extra_json={"corruption.json": record}, overwrite=overwrite,
                 extra=(lambda tmp: corruption_figure(res, tmp / "examples.png")) if figure
                 else None, inputs=inputs)
    return res


def run_study(*, spec: str | Path, out: str | Path, executor: str = "local",
              workers: int | None = None, address: str | None = None, cpus_per_trial: int = 1,
              retry_failed: bool = True, report: bool = True, progress: bool = True) -> Any:
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


@dataclass(frozen=True)
class _VolumeView:
    """How a run sees volumes: the network's dimensions and the grid options of each."""

    dims: int = 2
    slice_axis: int = 0
    slice_size: int | None = None
    spacing: str | Sequence[float] | None = None
    tolerance: float = 1.0

    def options(self) -> dict[str, Any]:
        """Keyword options of :func:`~noisyseg.run.run_volume_session` (JSON-serialisable)."""
        return {"dims": self.dims, "slice_axis": self.slice_axis, "slice_size": self.slice_size,
                "spacing": self.spacing if self.spacing is None or isinstance(self.spacing, str)
                else list(self.spacing), "tolerance": self.tolerance}


def _check_image_view(data: str, dims: int, spacing: Any) -> None:
    """Refuse the volume-only options for a dataset of 2-D images."""
    if dims != 2:
        raise ConfigError(f"dims: {data} holds 2-D images; a 3-D network needs volumes")
    if spacing is not None:
        raise ConfigError(f"spacing: {data} holds 2-D images; resampling is for volumes")


def run_train(*, data: str, out: str | Path, config: TrainConfig, overwrite: bool = False,
              progress: bool = True, dims: int = 2, slice_axis: int = 0,
              slice_size: int | None = None, spacing: str | Sequence[float] | None = None,
              tolerance: float = 1.0) -> dict[str, Any]:
    """Train on ``data``'s training masks, evaluate on clean test masks, write a run folder.

    ``out`` receives ``metrics.json`` (test metrics per class and mean, config, seed,
    timing), ``history.csv`` (per epoch: train loss, val Dice, images/s), ``model.pt``
    (weights + config; loads with ``weights_only=True``), ``config.json``,
    ``predictions/`` (the test predictions, one mask file per test sample, in the source
    files' format, grid and geometry: see :func:`~noisyseg.data.folder.write_masks`) and
    ``predictions.png`` (test images, true vs predicted contours). Returns the metrics dict.

    Volumes train a 2-D network on their slices along ``slice_axis``, or with ``dims=3`` a
    3-D network on patches (as :func:`run_audit`);
    ``predictions/`` then holds one label volume per test case on its source grid,
    ``case_metrics.csv`` its Dice, IoU, HD95 and surface Dice (``tolerance`` mm) in mm, and
    ``predictions.png`` the first test case in three planes.
    """
    from noisyseg.data.folder import write_masks
    from noisyseg.report import plot_contour_grid, save_figure
    from noisyseg.run import run_session, session_summary, write_tables
    from noisyseg.train import ProgressBar

    inputs = [source_path(data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    if isinstance(ds, CaseDataset):
        return _volume_train(ds, data=data, out=out, config=config, overwrite=overwrite,
                             progress=progress, view=_VolumeView(dims, slice_axis, slice_size,
                                                                 spacing, tolerance))
    _check_image_view(data, dims, spacing)
    session = run_session(ds, config, callbacks=[ProgressBar(enabled=progress)])
    result = {"data": data, "dataset": ds.summary(), **session_summary(session)}
    test, pred, metrics = session.test_idx, session.test_pred, session.test
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2))
        (tmp / "config.json").write_text(json.dumps({"data": data, **config.to_dict()}, indent=2))
        write_tables(session, tmp)
        session.trainer.save(tmp / "model.pt")
        write_masks(tmp / "predictions", ds, test, pred)
        k = test[:8]
        fig = plot_contour_grid(
            ds.images[k], [ds.truth[k], pred[:8]], labels=("truth", "prediction"),
            titles=[f"{ds.sample_ids[i]}  Dice {metrics.per_sample_dice[j]:.3f}"
                    for j, i in enumerate(k)],
            class_names=ds.class_names,
            caption=f"{config.model}: test mean Dice {metrics.mean['dice']:.3f}")
        save_figure(fig, tmp / "predictions.png")
    return result


def run_rank(*, data: str, probs: Sequence[str | Path], out: str | Path, split: str = "all",
             detector: str = "expected-dice", flag_rule: str = "mixture",
             flag_value: float | None = None, temperature: float = 0.1, slice_axis: int = 0,
             pseudo_labels: bool = False, n_suspects: int = 8, workers: int | None = None,
             overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Rank ``data``'s cases from a model's predictions (no training); write an audit folder.

    ``probs`` are folders of per-case predictions: an nnU-Net results folder (its
    ``fold_X/validation/`` out-of-fold probabilities), a fold or ``nnUNetv2_predict`` output
    folder, or any folder of ``{case}.npz``/``.npy`` probabilities, probability images or
    hard label maps (:mod:`noisyseg.data.predictions`). Cases are read, scored and dropped one
    at a time (:func:`~noisyseg.run.rank_predictions`).

    ``out`` receives what ``noisyseg audit`` writes, from the same writers: ``scores.csv``
    (``label-quality``, ``dice``, ``expected-dice``), ``slice_scores.csv``,
    ``class_scores.csv``, ``detection.json`` (when the dataset says which cases were
    corrupted), ``suspects.png`` and ``suspects/`` (worst slice of volumes in three planes),
    ``rank.json`` (config, prediction files, folds) and, with ``pseudo_labels``,
    ``refurbished/``: the flagged cases' argmax labels in the source layout and geometry.
    Nothing is written when any check fails.

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

    from noisyseg.run import rank_predictions

    inputs = [source_path(data), *probs]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data, lazy=True)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("ranking", total=None)
        ranking = rank_predictions(ds, probs, split=split, detector=detector,
                                   flag_rule=flag_rule, flag_value=flag_value,
                                   temperature=temperature, slice_axis=slice_axis,
                                   workers=workers,
                                   progress=lambda i, n: bar.update(task, completed=i, total=n))
    result = {"data": data, "data_resolved": absolute_source(data),
              "probs": [str(p) for p in probs]}
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        result = _write_ranking(tmp, ds, ranking, result, pseudo_labels=pseudo_labels,
                                n_suspects=n_suspects)
    return result


def _write_ranking(folder: Path, ds: Any, ranking: Any, result: dict[str, Any], *,
                   pseudo_labels: bool, n_suspects: int) -> dict[str, Any]:
    """The audit folder of a ranking (shared by ``rank`` and ``audit --folds``): tables,
    ``detection.json``, ``rank.json``, suspects and, with ``pseudo_labels``, ``refurbished/``.
    Returns what ``rank.json`` holds plus the detection metrics."""
    import numpy as np

    from noisyseg.data.layouts import write_labels
    from noisyseg.run import read_case_prediction, write_tables

    primary = ranking.primary
    order = np.argsort(-ranking.scores[primary], kind="stable")
    flagged = np.flatnonzero(ranking.flags[primary])
    detection = ranking.detection()
    result = {**result, **ranking.config,
              "n_flagged": {d: int(f.sum()) for d, f in ranking.flags.items()},
              "truth_known": ranking.truth is not None,
              "prediction_files": {c: str(p.path.relative_to(folder))
                                   if p.path.is_relative_to(folder) else str(p.path.resolve())
                                   for c, p in ranking.predictions.items()},
              "pseudo_labels": bool(pseudo_labels)}
    write_tables(ranking, folder)
    if detection:
        (folder / "detection.json").write_text(json.dumps(
            {"flag_rule": ranking.config["flag_rule"], "flag_value": ranking.config["flag_value"],
             "detectors": detection}, indent=2))
    (folder / "rank.json").write_text(json.dumps(result, indent=2))
    _suspect_figures(ds, ranking, order[:n_suspects], folder)
    if pseudo_labels:
        masks = []
        for j in flagged:
            i = int(ranking.index[j])
            labels, _ = ds.read_label(i)
            p = read_case_prediction(ds, i, ranking.predictions[ds.sample_ids[i]], labels)
            masks.append(np.argmax(p, axis=0).astype(np.uint8))
        write_labels(folder / "refurbished", ds, ranking.index[flagged], masks)
    return {**result, "detection": detection}


def run_crossval(*, data: str, out: str | Path, config: TrainConfig, folds: int = 5,
                 executor: str = "local", workers: int | None = None, address: str | None = None,
                 cpus_per_trial: int = 1, detector: str = "expected-dice",
                 flag_rule: str = "mixture", flag_value: float | None = None,
                 pseudo_labels: bool = False, n_suspects: int = 8, overwrite: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Audit by cross-validation: K networks, each predicting its held-out fold, then a ranking
    of the training cases from those out-of-fold probabilities (``noisyseg audit --folds K``).

    The folds run through the study executors (``local`` with ``workers`` pinned processes,
    or ``ray``). ``out`` receives what :func:`run_rank` writes, plus
    ``oof/fold_k/validation/{case}.npz`` (the out-of-fold probabilities, laid out as nnU-Net
    writes them, so ``noisyseg rank --probs out/oof`` ranks them again with other options)
    and ``folds.json`` (per fold: cases, best epoch, validation Dice, seconds).

    Raises
    ------
    ConfigError
        Fewer training cases than folds, a bad option, or a fold that failed (its error).
    """
    from rich.progress import Progress

    from noisyseg.run import rank_predictions
    from noisyseg.run.crossval import fold_assignment, fold_job
    from noisyseg.study import make_executor

    inputs = [source_path(data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data, volumes=False)
    fold_assignment(len(ds.indices("train")), folds, seed=config.seed)  # validates folds
    ex = make_executor(executor, workers=workers, address=address, cpus_per_trial=cpus_per_trial)
    jobs = [{"data": data, "train": config.to_dict(), "fold": k, "folds": folds,
             "seed": config.seed} for k in range(folds)]
    summaries = []
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp, Progress(disable=not progress,
                                                               transient=True) as bar:
        task = bar.add_task(f"{folds} folds ({ex.describe()})", total=folds)
        for job, (res, files) in ex.run(jobs, job=fold_job):
            if res.get("status") != "ok":
                raise ConfigError(f"folds: fold {job['fold']} failed: {res.get('error')}")
            fold_dir = tmp / "oof" / f"fold_{job['fold']}" / "validation"  # nnU-Net's layout
            fold_dir.mkdir(parents=True)
            for name, data_bytes in files.items():
                (fold_dir / name).write_bytes(data_bytes)
            summaries.append(res)
            bar.update(task, advance=1)
        ranking = rank_predictions(ds, [tmp / "oof"], split="train", detector=detector,
                                   flag_rule=flag_rule, flag_value=flag_value)
        summaries.sort(key=lambda r: r["fold"])
        (tmp / "folds.json").write_text(json.dumps(
            {"folds": folds, "seed": config.seed, "config": config.to_dict(),
             "executor": ex.describe(), "per_fold": summaries}, indent=2))
        result = _write_ranking(tmp, ds, ranking, {"data": data, "data_resolved": absolute_source(data),
                                                  "folds_run": folds},
                                pseudo_labels=pseudo_labels, n_suspects=n_suspects)
    return result


def _suspect_figures(ds: Any, ranking: Any, top: Any, folder: Path) -> None:
    """``suspects/`` (one figure per top case) and ``suspects.png`` (2-D: a grid of them):
    the given labels against the prediction; volumes in three planes through the worst slice."""
    import numpy as np

    from noisyseg.report import plot_contour_grid, save_figure
    from noisyseg.run import read_case_prediction

    (folder / "suspects").mkdir()
    primary = ranking.primary
    sl = ranking.slices[ranking.slices["detector"] == primary]
    truth = ranking.truth
    imgs, given, preds, titles = [], [], [], []
    for r, j in enumerate(top):
        i = int(ranking.index[j])
        sid = ds.sample_ids[i]
        labels, geom = ds.read_label(i)
        pred = np.argmax(read_case_prediction(ds, i, ranking.predictions[sid], labels), axis=0)
        image = ds.read_image(i)[0][0]
        tag = "" if truth is None else (" (corrupted)" if truth[j] else " (clean)")
        title = f"#{r + 1} {sid}{tag}  {primary} {ranking.scores[primary][j]:.3f}"
        if labels.ndim == 3:
            s = sl.loc[sl["sample_id"] == sid, "score"].to_numpy()
            _volume_suspect(ds, image, labels, pred, geom.spacing, s,
                            ranking.config["slice_axis"], title,
                            folder / "suspects" / f"{r + 1:02d}_{sid}.png")
            continue
        fig = plot_contour_grid(image[None].repeat(2, 0), [np.stack([labels, pred])],
                                titles=["given labels", "prediction"], labels=(title,),
                                class_names=ds.class_names)
        save_figure(fig, folder / "suspects" / f"{r + 1:02d}_{sid}.png")
        imgs.append(image)
        given.append(labels)
        preds.append(pred)
        titles.append(title)
    if imgs and len({a.shape for a in imgs}) == 1:
        fig = plot_contour_grid(np.stack(imgs), [np.stack(given), np.stack(preds)], titles=titles,
                                labels=("given labels", "prediction"), class_names=ds.class_names,
                                caption=f"top suspects by {primary}")
        save_figure(fig, folder / "suspects.png")


def _volume_suspect(ds: Any, image: Any, labels: Any, pred: Any, spacing: tuple[float, ...],
                    slice_scores: Any, axis: int, title: str, path: Path) -> None:
    """A suspect volume in three orthogonal planes through its worst slice (highest slice
    score along ``axis`` among the slices where the given labels or the prediction hold a
    structure, so the planes show one; the middle slice when no score is finite), given
    labels against the prediction, centred in-plane on what the slice holds."""
    import numpy as np

    from noisyseg.report import display_window, plot_volume_planes, save_figure

    s = np.asarray(slice_scores, dtype=float)
    other = tuple(a for a in range(labels.ndim) if a != axis)
    seen = np.any((labels > 0) | (pred > 0), axis=other)
    if seen.any() and np.isfinite(s[seen]).any():
        s = np.where(seen, s, np.nan)
    worst = int(np.nanargmax(s)) if np.isfinite(s).any() else labels.shape[axis] // 2
    fg = np.argwhere((np.take(labels, worst, axis=axis) > 0) | (np.take(pred, worst, axis=axis) > 0))
    rest = fg.mean(0) if len(fg) else np.array([n for a, n in enumerate(labels.shape) if a != axis]) / 2
    centre = [int(v) for v in rest]
    centre.insert(axis, worst)
    fig = plot_volume_planes(image, [labels, pred], spacing=spacing,
                             labels=("given labels", "prediction"), class_names=ds.class_names,
                             centre=tuple(centre), window=display_window(ds.channel_names))
    fig.suptitle(f"{title}; planes through the worst slice ({worst}, axis {axis})", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    save_figure(fig, path)


#: ``audit``'s detectors unless told otherwise, chosen from the detection matrix
#: (docs/detection-matrix.md): per-sample loss ranks every error type on 30% of the masks at
#: AP >= 0.98 and every random one on 70% at >= 0.995; ``disagree`` is the one detector that
#: still ranks majority systematic and structural errors (AP >= 0.98 in all 18 cells), given
#: trusted masks; VOG stays near chance in every cell. The first one picks the suspects and
#: drives refurbishment.
DEFAULT_DETECTORS = ("loss", "disagree")


def run_audit(*, data: str, out: str | Path, config: TrainConfig,
              detectors: Sequence[str] = DEFAULT_DETECTORS, refurbish: RefurbishConfig | None = None,
              flag_rule: str = "mixture", flag_value: float | None = None, n_suspects: int = 8,
              trusted: str | Path | Sequence[str] | None = None, overwrite: bool = False,
              progress: bool = True, dims: int = 2, slice_axis: int = 0,
              slice_size: int | None = None, spacing: str | Sequence[float] | None = None,
              tolerance: float = 1.0) -> dict[str, Any]:
    """Train once with detectors (and optionally refurbishment) attached; write an audit folder.

    ``trusted`` names the masks known to be right (a split, a file of sample ids, or ids) for
    ``disagree`` and calibrated refurbishment; without it they calibrate on the validation
    split, and ``metrics.json`` (``trusted``) and the log say so.

    ``out`` receives ``scores.csv`` (``sample_id, detector, score, rank, flagged``),
    ``score_history.csv`` (per detector and epoch), ``detection.json`` (when the dataset
    says which samples were corrupted), ``suspects.png`` and ``suspects/`` (top suspects:
    image, given mask, prediction), ``metrics.json`` (clean-test metrics, config) and, with
    refurbishment, ``refurbished/`` (final training masks) and ``refurbish_events.csv``;
    ``pseudo_labels/`` holds the final network's labels of every training sample (what
    ``noisyseg review`` offers in place of a given mask).

    Volumes (nnU-Net, Decathlon, a folder of volumes, synthetic-ct) train a 2-D network on
    their slices along ``slice_axis`` (resized in-plane to ``slice_size`` when given), or
    with ``dims=3`` a 3-D network on patches of the volumes (resampled to ``spacing`` mm when
    given, ``config.patch_size`` or one chosen from the data; sliding-window prediction)
    (:func:`noisyseg.run.run_volume_session`): ``scores.csv`` ranks cases, ``slice_scores.csv``
    scores each training slice along ``slice_axis``, ``case_metrics.csv`` holds the test
    cases' Dice, IoU, HD95 and surface Dice (at ``tolerance`` mm) in mm, ``suspects/`` shows
    each top case in three planes through its worst slice, ``pseudo_labels/`` holds label
    volumes on the source grid, and ``refurbished/`` is the whole dataset in its own layout
    (nnU-Net, Decathlon or folder) with the refurbished training labels, ready to train on.
    Returns the metrics dict.

    Raises
    ------
    ConfigError
        No detector, an unknown or repeated one, a bad flag rule or refurbishment setting,
        or a non-empty ``out`` without ``overwrite``.
    """
    import numpy as np

    from noisyseg.data.folder import write_masks
    from noisyseg.detect import check_detectors, check_flag_rule
    from noisyseg.report import plot_contour_grid, save_figure
    from noisyseg.run import run_session, session_summary, write_tables
    from noisyseg.train import ProgressBar

    if not detectors:
        raise ConfigError("detectors: give at least one (vog, vog-online, loss, cleanlab, disagree)")
    check_detectors(detectors, refurbish=refurbish is not None,
                    refurbish_with=None if refurbish is None else refurbish.with_detector)
    check_flag_rule(flag_rule, flag_value)
    inputs = _audit_inputs(data, trusted)
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    if isinstance(ds, CaseDataset):
        return _volume_audit(ds, data=data, out=out, config=config, detectors=detectors,
                             refurbish=refurbish, flag_rule=flag_rule, flag_value=flag_value,
                             n_suspects=n_suspects, trusted=trusted, overwrite=overwrite,
                             progress=progress, view=_VolumeView(dims, slice_axis, slice_size,
                                                                 spacing, tolerance))
    _check_image_view(data, dims, spacing)
    session = run_session(ds, config, detectors=detectors, refurbish=refurbish, flag_rule=flag_rule,
                          flag_value=flag_value, trusted=trusted,
                          callbacks=[ProgressBar(enabled=progress)])
    trainer, idx, truth = session.trainer, session.train_idx, session.truth
    result = _audit_record(data, flag_rule, flag_value, refurbish, detectors,
                           session_summary(session))
    final = session.final_masks()

    # suspects: the top of the first detector's ranking
    top = np.argsort(-session.scores[detectors[0]], kind="stable")[:n_suspects]
    pred_top = trainer.predict(idx[top])
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        write_tables(session, tmp)
        if truth is not None:
            (tmp / "detection.json").write_text(json.dumps(
                {"flag_rule": flag_rule, "flag_value": flag_value,
                 "detectors": {k: v.to_dict() for k, v in session.detection.items()}}, indent=2))
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2))
        (tmp / "suspects").mkdir()
        titles = []
        for r, j in enumerate(top):
            sid = ds.sample_ids[idx[j]]
            tag = "" if truth is None else (" (corrupted)" if truth[j] else " (clean)")
            titles.append(f"#{r + 1} {sid}{tag}")
            fig = plot_contour_grid(ds.images[idx[j]][None].repeat(2, 0),
                                    [np.stack([ds.masks[idx[j]], pred_top[r]])],
                                    titles=["given mask", "model prediction"],
                                    labels=(f"#{r + 1} {sid}{tag}",),
                                    class_names=ds.class_names)
            save_figure(fig, tmp / "suspects" / f"{r + 1:02d}_{sid}.png")
        fig = plot_contour_grid(ds.images[idx[top]], [ds.masks[idx[top]], pred_top],
                                titles=titles, labels=("given mask", "model prediction"),
                                class_names=ds.class_names,
                                caption=f"top suspects by {detectors[0]}")
        save_figure(fig, tmp / "suspects.png")
        if session.refurbisher is not None:
            write_masks(tmp / "refurbished", ds, idx, final)
        for s in range(0, len(idx), 256):  # the final network's labels, for `noisyseg review`
            write_masks(tmp / "pseudo_labels", ds, idx[s:s + 256], trainer.predict(idx[s:s + 256]))
    return result



def _audit_inputs(data: str, trusted: str | Path | Sequence[str] | None) -> list[Path | None]:
    """What an audit reads: its dataset and, when ``trusted`` names a file, that file."""
    inputs = [source_path(data)]
    if isinstance(trusted, (str, Path)) and Path(trusted).is_file():
        inputs.append(Path(trusted))
    return inputs


def _audit_record(data: str, flag_rule: str, flag_value: float | None,
                  refurbish: RefurbishConfig | None, detectors: Sequence[str],
                  summary: dict[str, Any]) -> dict[str, Any]:
    """An audit's ``metrics.json``: its data and flag rule, the run's summary, and the
    refurbishment settings when it refurbished."""
    result: dict[str, Any] = {"data": data, "data_resolved": absolute_source(data),
                              "flag_rule": flag_rule, "flag_value": flag_value,
                              "refurbish": refurbish is not None, **summary}
    if refurbish is not None:
        result["refurbish_config"] = refurbish.to_dict() | {
            "with": refurbish.with_detector or detectors[0]}
    return result


def _volume_audit(ds: CaseDataset, *, data: str, out: str | Path, config: TrainConfig,
                  detectors: Sequence[str], refurbish: RefurbishConfig | None, flag_rule: str,
                  flag_value: float | None, n_suspects: int,
                  trusted: str | Path | Sequence[str] | None, overwrite: bool, progress: bool,
                  view: _VolumeView) -> dict[str, Any]:
    """:func:`run_audit` on volumes: a 2-D network on their slices or a 3-D one on patches,
    everything per case."""
    import numpy as np
    import pandas as pd

    from noisyseg.data.layouts import CaseWriter, write_labels
    from noisyseg.run import run_tables, score_table
    from noisyseg.run.volumes import run_volume_session, volume_summary
    from noisyseg.train import ProgressBar

    inputs = _audit_inputs(data, trusted)
    vs = run_volume_session(ds, config, **view.options(),
                            detectors=detectors, refurbish=refurbish, flag_rule=flag_rule,
                            flag_value=flag_value, trusted=trusted,
                            callbacks=[ProgressBar(enabled=progress)])
    session, trainer, index = vs.session, vs.session.trainer, vs.index
    result = _audit_record(data, flag_rule, flag_value, refurbish, detectors, volume_summary(vs))
    tables = run_tables(session)
    tables["scores.csv"] = score_table(vs.case_ids, vs.scores, vs.flags, vs.truth)
    tables["slice_scores.csv"] = vs.slice_table()
    tables["case_metrics.csv"] = vs.case_metrics_table()
    if session.refurbisher is not None:
        tables["refurbish_events.csv"] = vs.events_table()
    final = session.final_masks()
    top = np.argsort(-vs.scores[detectors[0]], kind="stable")[:n_suspects]
    slice_scores = tables["slice_scores.csv"]
    slice_scores = slice_scores[slice_scores["detector"] == detectors[0]]
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        for name, df in tables.items():
            df.to_csv(tmp / name, index=False)
        if vs.truth is not None:
            (tmp / "detection.json").write_text(json.dumps(
                {"flag_rule": flag_rule, "flag_value": flag_value,
                 "detectors": {k: v.to_dict() for k, v in vs.detection.items()},
                 "slices": {k: v.to_dict() for k, v in vs.slice_detection.items()}}, indent=2))
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2))
        (tmp / "suspects").mkdir()
        predicted: dict[int, Any] = {}  # the final network's label volumes of the top cases

        def predict(i: int) -> Any:
            return predicted.pop(i) if i in predicted else index.volume(
                i, trainer.predict(index.slices_of(i)))

        for r, j in enumerate(top):
            i = int(vs.train_cases[j])
            sid = ds.sample_ids[i]
            tag = "" if vs.truth is None else (" (corrupted)" if vs.truth[j] else " (clean)")
            title = f"#{r + 1} {sid}{tag}  {detectors[0]} {vs.scores[detectors[0]][j]:.3f}"
            labels, geom = ds.read_label(i)
            pred = predicted[i] = predict(i)
            s = slice_scores.loc[slice_scores["sample_id"] == sid].sort_values("slice")["score"]
            _volume_suspect(ds, ds.read_image(i)[0][0], labels, pred, geom.spacing, s.to_numpy(),
                            index.axis, title, tmp / "suspects" / f"{r + 1:02d}_{sid}.png")
        # the final network's labels of every training case, for `noisyseg review`
        for i in vs.train_cases:
            write_labels(tmp / "pseudo_labels", ds, np.array([i]), [predict(int(i))])
        if session.refurbisher is not None:
            writer = CaseWriter(ds, tmp / "refurbished", unchanged="given", clean=False)
            changed = {int(i): k for k, i in enumerate(vs.train_cases) if vs.refurbished[k]}
            for i in range(len(ds)):
                image = ds.read_image(i)[0] if ds.generator is not None else None
                if i in changed:
                    writer.write(i, vs.case_volume(i, final), ds.label_geometry(i), image)
                else:
                    writer.write(i, None, ds.label_geometry(i), image)
            manifest = pd.DataFrame({"sample_id": list(ds.sample_ids), "split": ds.split})
            manifest["label"] = np.where(np.isin(np.arange(len(ds)), list(changed)),
                                         "refurbished", "given")
            writer.finish(manifest, {"audit.json": {"data": data, "refurbish": result.get(
                "refurbish_config"), "n_refurbished_cases": len(changed)}})
    return result


def _volume_train(ds: CaseDataset, *, data: str, out: str | Path, config: TrainConfig,
                  overwrite: bool, progress: bool, view: _VolumeView) -> dict[str, Any]:
    """:func:`run_train` on volumes: a 2-D network on their slices or a 3-D one on patches,
    measured per case."""
    import numpy as np

    from noisyseg.data.layouts import write_labels
    from noisyseg.report import display_window, plot_volume_planes, save_figure
    from noisyseg.run import write_tables
    from noisyseg.run.volumes import run_volume_session, volume_summary
    from noisyseg.train import ProgressBar

    inputs = [source_path(data)]
    vs = run_volume_session(ds, config, **view.options(),
                            callbacks=[ProgressBar(enabled=progress)])
    session, index = vs.session, vs.index
    result: dict[str, Any] = {"data": data, "dataset": ds.summary(), **volume_summary(vs)}
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2))
        (tmp / "config.json").write_text(json.dumps(
            {"data": data, **session.trainer.config.to_dict(), **view.options(),
             "patch_size": list(session.trainer.patch_size)}, indent=2))
        write_tables(session, tmp)
        vs.case_metrics_table().to_csv(tmp / "case_metrics.csv", index=False)
        session.trainer.save(tmp / "model.pt")
        for k, i in enumerate(vs.test_cases):
            pred = vs.test_volume(int(i))
            write_labels(tmp / "predictions", ds, np.array([i]), [pred])
            if k == 0:
                truth, geom = ds.read_label(int(i), clean=True)
                fig = plot_volume_planes(ds.read_image(int(i))[0][0], [truth, pred],
                                         spacing=geom.spacing, labels=("truth", "prediction"),
                                         class_names=ds.class_names,
                                         window=display_window(ds.channel_names))
                trainer = session.trainer
                how = (f"on slices along axis {index.axis}" if vs.dims == 2 else
                       f"3-D on patches of {'x'.join(map(str, trainer.patch_size))}"
                       if trainer.patched else "3-D on whole volumes")
                fig.suptitle(f"{config.model} {how}: test case "
                             f"{ds.sample_ids[int(i)]}, Dice "
                             f"{vs.test.per_sample[0]['dice']:.3f}", fontsize=9)
                fig.tight_layout(rect=(0, 0.08, 1, 0.95))
                save_figure(fig, tmp / "predictions.png")
    return result
