"""Command-line interface: thin wrappers that parse options, call one function and print.

Every :class:`~noisyseg.errors.NoisysegError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from noisyseg.errors import ConfigError, NoisysegError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulate, detect and refurbish label errors in segmentation masks.")
console = Console(stderr=True)

DataOpt = Annotated[str, typer.Option("--data", help=(
    "Data source: synthetic-echo[:n=..,size=..,seed=..], synthetic-ct[:n=..,size=..,slices=..], "
    "camus:PATH[,view=..,phase=..,size=..], nnunet:PATH (nnU-Net v2 raw), msd:PATH "
    "(Decathlon task), or a folder PATH[,size=..] of 2-D images or volumes. Volumes: corrupt, "
    "rank, train, audit and studies (a 2-D network on their slices, or --dims 3)."))]


#: Python parameter names (as library errors name them) -> the CLI's flags, where they differ
#: from ``--`` + the name with dashes.
PARAM_FLAGS = {"fmt": "--format", "detectors": "--detector", "mode": "--refurbish-mode",
               "calibrate": "--refurbish-calibrate", "with_detector": "--refurbish-with",
               "band": "--refurbish-band", "region": "--refurbish-region"}
_PARAMS = {"data", "out", "model", "strength", "target_dice", "fraction", "classes", "options",
           "refurbish_with", "flag_rule", "flag_value", "warmup", "every", "confidence", "unflag",
           "pseudo_from", "epochs", "batch_size", "steps_per_epoch", "lr", "loss", "device",
           "threads", "seed", "workers", "cpus_per_trial", "executor", "address", "probs", "split",
           "detector", "temperature", "slice_axis", "slice_size", "tolerance", "folds", "trusted",
           "dims", "spacing", "patch_size", "precision",
           "port", "host", "reviewer", "like", "n_sim", "level",
           *PARAM_FLAGS}


def cli_message(message: str, flags: dict[str, str] | None = None) -> str:
    """A library error message with its leading Python parameter name turned into the flag.

    >>> cli_message("target_dice: expected a value in (0, 1), got 2.0")
    '--target-dice: expected a value in (0, 1), got 2.0'
    >>> cli_message("out: runs/x exists and is not empty (overwrite=True replaces it)")
    '--out: runs/x exists and is not empty (--overwrite replaces it)'
    """
    m = re.match(r"([a-z_]+)[: ]", message)
    if m and m.group(1) in _PARAMS:
        name = m.group(1)
        table = {**PARAM_FLAGS, **(flags or {})}
        message = table.get(name, "--" + name.replace("_", "-")) + message[len(name):]
    return message.replace("overwrite=True", "--overwrite").replace("executor='ray'", "--executor ray")


def _parse_options(values: list[str] | None) -> dict[str, Any]:
    """Parse repeated ``--option key=value`` (values parsed as JSON when possible)."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--option {item!r}: expected key=value")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


@app.command()
def corrupt(
    data: DataOpt = "synthetic-echo",
    model: Annotated[str, typer.Option(help="Error model (see --list).")] = "natural",
    target_dice: Annotated[float | None, typer.Option(
        help="Calibrate the strength to this mean Dice against the clean masks.")] = None,
    strength: Annotated[float | None, typer.Option(
        help="Strength to apply (unit: see --list); instead of --target-dice.")] = None,
    fraction: Annotated[float, typer.Option(
        help="Fraction of training samples to corrupt (the error level).")] = 1.0,
    classes: Annotated[list[str] | None, typer.Option(
        help="Structure(s) to corrupt, by name or label (repeatable); default all.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        help="Model option key=value (repeatable), e.g. --option points=6.")] = None,
    like: Annotated[str | None, typer.Option(
        help="Errors like real raters: a fitted preset, 'lidc' (LIDC-IDRI's radiologists) or a "
             "preset.json from 'noisyseg raters --fit'. Sets the model's options and mode and, "
             "without --target-dice/--strength, the raters' Dice.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample choice and the errors.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output folder (a valid --data PATH).")] = None,
    fmt: Annotated[str, typer.Option("--format", help=(
        "2-D: nii.gz, nii, png or npy; generated volumes: nii.gz, nii, mha or nrrd (file "
        "datasets keep their own formats)."))] = "nii.gz",
    slicewise: Annotated[bool | None, typer.Option(
        "--slicewise/--volumetric",
        help="Volumes: apply the 2-D model slice by slice along --slice-axis (strength in pixels), "
             "or its 3-D form (strength in mm); default volumetric where the model has one.",
        show_default=False)] = None,
    slice_axis: Annotated[int, typer.Option(
        help="Volumes, --slicewise: slice axis in array order (0: axial slices of a z, y, x "
             "volume).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    progress: ProgressOpt = True,
    list_models: Annotated[bool, typer.Option("--list", help="List error models and exit.")] = False,
) -> None:
    """Simulate annotation errors on the training masks and write the dataset (same layout)."""
    from noisyseg.corrupt import ERROR_MODELS

    if list_models:
        table = Table(title="error models (volumes: slice-wise strength in the 2-D unit, "
                            "volumetric strength in mm)")
        for col in ("name", "kind", "modes", "strength: 2-D / slice-wise", "strength: volumetric",
                    "options", "what it does"):
            table.add_column(col, no_wrap=col in ("name", "modes"))
        for name, m in ERROR_MODELS.items():
            vol_opts = m.options_for("volumetric", 3)
            opts = ", ".join(f"{k}={v}" for k, v in m.options.items())
            if m.volumetric is not None and vol_opts != m.options:
                opts += "; volumetric: " + ", ".join(f"{k}={v}" for k, v in vol_opts.items())
            table.add_row(name, m.kind, "\n".join(m.modes), m.unit, m.volume_unit or "-", opts,
                          m.summary)
        Console().print(table)
        return
    if out is None:
        raise ConfigError("--out: required (the folder to write)")
    if target_dice is None and strength is None and like is None:
        target_dice = 0.90
    from noisyseg.api import run_corrupt

    mode = None if slicewise is None else ("slicewise" if slicewise else "volumetric")
    try:
        res = run_corrupt(data=data, model=model, target_dice=target_dice, strength=strength,
                          fraction=fraction, classes=classes, options=_parse_options(option),
                          seed=seed, out=out, fmt=fmt, mode=mode, slice_axis=slice_axis,
                          like=like, overwrite=overwrite, progress=progress)
    except NoisysegError as exc:
        raise type(exc)(cli_message(str(exc), {"mode": "--slicewise/--volumetric"})) from exc
    cfg = res.config
    how = f" ({cfg['mode']})" if cfg.get("mode") else ""
    console.print(f"[green]wrote[/] {out}: {cfg['n_corrupted']}/{cfg['n_train']} training masks "
                  f"corrupted by {cfg['model']}{how} at strength {cfg['strength']:.4g} "
                  f"{cfg['strength_unit'].split(' ')[0]}, mean Dice "
                  f"{cfg['mean_dice_corrupted']:.4f}")


ModelOpt = Annotated[str, typer.Option("--model", help="Network: unet, segnet, fcn32 or monai:NAME.")]
WidthOpt = Annotated[int | None, typer.Option("--width", help="Base width of unet/segnet/fcn32.")]
ModelOptionOpt = Annotated[list[str] | None, typer.Option(
    "--model-option", help="Network option key=value (repeatable), e.g. depth=3.")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
StepsOpt = Annotated[int | None, typer.Option(
    "--steps-per-epoch", help="Mini-batches per epoch (default: one pass over the training set).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Mini-batch size.")]
LrOpt = Annotated[float, typer.Option("--lr", help="Adam learning rate.")]
LossOpt = Annotated[str, typer.Option(
    "--loss", help="dicece (Dice + cross-entropy), ce, or wce (study A's: background weighted "
    "by the foreground's frequency).")]
BalancedOpt = Annotated[bool, typer.Option("--balanced/--no-balanced", help="Class-balanced sampling.")]
AugmentOpt = Annotated[bool, typer.Option("--augment/--no-augment", help="Light augmentation.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed (weights, sampling, augmentation).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="CPU threads.")]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="auto (float16 mixed precision on CUDA, float32 on a CPU), fp32, bf16 "
    "(fast on CPUs with AMX) or fp16 (CUDA).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty --out.")]
SliceAxisOpt = Annotated[int, typer.Option(
    "--slice-axis", help="Volumes: the array axis a 2-D network is trained on slices of (0: "
    "axial for (z, y, x) arrays, as nnU-Net's 2d configuration); with --dims 3, the axis of "
    "the per-slice scores and figures.")]
SliceSizeOpt = Annotated[int | None, typer.Option(
    "--slice-size", help="Volumes: resize slices in-plane to this size (needed when cases "
    "differ in in-plane shape; undone on every volume written).")]
ToleranceOpt = Annotated[float, typer.Option(
    "--tolerance", help="Volumes: surface Dice tolerance in mm for the per-case test metrics.")]
DimsOpt = Annotated[int, typer.Option(
    "--dims", help="Volumes: 2 trains a 2-D network on slices (nnU-Net's 2d), 3 a 3-D network "
    "on patches with sliding-window prediction (3d_fullres).")]
SpacingOpt = Annotated[str | None, typer.Option(
    "--spacing", help="Volumes, --dims 3: resample every case to this voxel size in mm, "
    "'Z,Y,X' in array order or 'median' (undone on every volume written).")]
PatchOpt = Annotated[str | None, typer.Option(
    "--patch-size", help="Training patch, e.g. 64,64,64 (default: whole samples when they "
    "fit, else a patch chosen from the data and the device).")]


def _parse_sizes(value: str | None, name: str, kind: type = int) -> Any:
    """``'64,64,64'`` (or ``64x64x64``) as a list; None stays None; 'median' stays itself."""
    if value is None or value == "median":
        return value
    try:
        return [kind(v) for v in value.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name}: expected numbers separated by commas, got {value!r}") from None


_TRAIN_OPTIONS = ("epochs", "steps_per_epoch", "batch_size", "lr", "loss", "balanced", "augment",
                  "seed", "device", "threads", "precision")


def _train_config(options: dict[str, Any]) -> Any:
    """Build a TrainConfig from a command's parsed options (shared by train and audit)."""
    from noisyseg.train import TrainConfig

    net_opts = _parse_options(options["model_option"])
    if options["width"] is not None:
        net_opts["width"] = options["width"]
    return TrainConfig(model=options["model"], model_options=net_opts,
                       patch_size=_parse_sizes(options["patch_size"], "patch_size"),
                       **{k: options[k] for k in _TRAIN_OPTIONS})


def _test_metrics(res: Any) -> str:
    """A run's test metrics in one line (per case in mm for volumes, per image otherwise)."""
    m, test = res.test["mean"], res.test
    if "surface_dice_tolerance_mm" in test:
        return (f"test cases Dice {m['dice']:.4f}, HD95 {m['hd95']:.2f} mm, surface Dice "
                f"{m['surface_dice']:.4f} at {test['surface_dice_tolerance_mm']:g} mm")
    return f"test Dice {m['dice']:.4f}, IoU {m['iou']:.4f}, HD95 {m['hd95']:.2f} px"


def _print_detection(res: Any) -> None:
    for name, m in res.detection.items():
        console.print(f"{name}: AP {m['average_precision']:.3f}, AUROC {m['auroc']:.3f}, "
                      f"precision {m['precision']:.3f}, recall {m['recall']:.3f}")


@app.command()
def train(
    data: DataOpt = "synthetic-echo", model: ModelOpt = "unet", width: WidthOpt = None,
    model_option: ModelOptionOpt = None, epochs: EpochsOpt = 40, steps_per_epoch: StepsOpt = None,
    batch_size: BatchOpt = 16, lr: LrOpt = 2e-3, loss: LossOpt = "dicece",
    balanced: BalancedOpt = False, augment: AugmentOpt = True, seed: SeedOpt = 0,
    device: DeviceOpt = "auto", threads: ThreadsOpt = None, precision: PrecisionOpt = "auto",
    dims: DimsOpt = 2, slice_axis: SliceAxisOpt = 0, slice_size: SliceSizeOpt = None,
    spacing: SpacingOpt = None, patch_size: PatchOpt = None, tolerance: ToleranceOpt = 1.0,
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/train"),
    overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
) -> None:
    """Train a network on (possibly noisy) training masks; evaluate on clean test masks.

    On volumes: a 2-D network on their slices (or, with --dims 3, a 3-D one on patches),
    evaluated per case in 3-D and in mm."""
    from noisyseg.api import run_train

    cfg = _train_config(locals())
    res = run_train(data=data, out=out, config=cfg, overwrite=overwrite, progress=progress,
                    dims=dims, slice_axis=slice_axis, slice_size=slice_size,
                    spacing=_parse_sizes(spacing, "spacing", float), tolerance=tolerance)
    console.print(f"[green]wrote[/] {out}: {_test_metrics(res)} "
                  f"({res.record['train_seconds']:.0f} s training)")
    _exit_if_interrupted(res)


def _exit_if_interrupted(res: Any) -> None:
    """Exit with status 130 (as an interrupted program does) once a run that Ctrl-C stopped
    early has written its folder with the best weights so far."""
    if res.interrupted:
        console.print(f"[yellow]interrupted[/]: training stopped early; the folder holds the "
                      f"best weights so far (epoch {res.record.get('best_epoch')})",
                      soft_wrap=True)
        raise typer.Exit(130)


@app.command()
def audit(
    data: DataOpt = "synthetic-echo", model: ModelOpt = "unet", width: WidthOpt = None,
    model_option: ModelOptionOpt = None, epochs: EpochsOpt = 40, steps_per_epoch: StepsOpt = None,
    batch_size: BatchOpt = 16, lr: LrOpt = 2e-3, loss: LossOpt = "dicece",
    balanced: BalancedOpt = False, augment: AugmentOpt = True, seed: SeedOpt = 0,
    device: DeviceOpt = "auto", threads: ThreadsOpt = None, precision: PrecisionOpt = "auto",
    detector: Annotated[list[str] | None, typer.Option(
        help="Detector (repeatable): vog, vog-online, loss, cleanlab, disagree, with options as "
             "NAME:key=value,... (e.g. vog:normalise=rms,target=boundary). Default: loss, "
             "disagree (the detection matrix's choice, docs/detection-matrix.md).")] = None,
    refurbish: Annotated[bool, typer.Option(
        help="Replace flagged training masks by pseudo-labels during training.")] = False,
    refurbish_with: Annotated[str | None, typer.Option(
        help="Detector whose flags drive refurbishment (default: the first).")] = None,
    flag_rule: Annotated[str, typer.Option(
        help="mixture (no error level needed), top (fraction) or percentile.")] = "mixture",
    flag_value: Annotated[float | None, typer.Option(
        help="Fraction for 'top', percentile for 'percentile'.")] = None,
    warmup: Annotated[int, typer.Option(help="First epoch that may refurbish.")] = 10,
    every: Annotated[int, typer.Option(help="Re-flag every this many epochs.")] = 5,
    confidence: Annotated[float, typer.Option(
        help="Pseudo-label only pixels predicted with at least this probability.")] = 0.0,
    unflag: Annotated[bool, typer.Option(help="Restore samples no longer flagged.")] = False,
    pseudo_from: Annotated[str, typer.Option(
        help="Pseudo-labels from the current model or the best-on-validation weights so far "
             "(current or best).")] = "current",
    refurbish_calibrate: Annotated[bool, typer.Option(
        help="Pseudo-labels with class boundaries calibrated on the clean validation masks "
             "(undoes a learnt systematic bias).")] = False,
    refurbish_mode: Annotated[str, typer.Option(
        help="What a flagged mask trains on: replace (pseudo-label, given label where unsure), "
             "ignore (pseudo-label, unsure pixels left out of the loss), drop (left out "
             "of the loss), boundary (given labels, boundaries left out of the loss) or "
             "debias (given labels, each structure grown or shrunk by the offset measured "
             "between flagged and trusted masks).")
    ] = "replace",
    refurbish_band: Annotated[int, typer.Option(
        help="With --refurbish-mode boundary: voxels left out on each side of a flagged "
             "mask's boundaries.")] = 2,
    refurbish_region: Annotated[str, typer.Option(
        help="What of a flagged case changes: sample (all of it) or, with --dims 3, slices "
             "(only the slices of the volume that the detector doubts).")] = "sample",
    trusted: Annotated[str | None, typer.Option(
        help="Masks known to be right, for disagree, --refurbish-calibrate and "
             "--refurbish-mode debias: a split (val) "
             "or a file of sample ids (one per line, or a CSV with sample_id). Default: the "
             "validation split, reported as taken to be right.")] = None,
    folds: Annotated[int | None, typer.Option(
        help="Cross-validation instead: train K networks, each predicting its held-out fold, "
             "and rank the training cases from those out-of-fold probabilities (detector: "
             "expected-dice, dice or label-quality; --refurbish writes the flagged cases' "
             "pseudo-labels).")] = None,
    executor: Annotated[str, typer.Option(help="With --folds: local or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(
        help="With --folds: folds trained in parallel (local: pinned processes).")] = None,
    dims: DimsOpt = 2, slice_axis: SliceAxisOpt = 0, slice_size: SliceSizeOpt = None,
    spacing: SpacingOpt = None, patch_size: PatchOpt = None, tolerance: ToleranceOpt = 1.0,
    out: Annotated[Path, typer.Option(help="Audit folder.")] = Path("runs/audit"),
    overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
) -> None:
    """Score every training sample during training, flag suspects, optionally refurbish them.

    On volumes: a 2-D network on their slices (or, with --dims 3, a 3-D one on patches);
    every case scored (scores.csv) and each of its slices (slice_scores.csv); refurbished/ is
    the dataset in its own layout."""
    from noisyseg.api import DEFAULT_DETECTORS, run_audit, run_crossval
    from noisyseg.refurbish import RefurbishConfig

    cfg = _train_config(locals())
    if folds is not None:
        if detector and len(detector) > 1:
            raise ConfigError("detector: with --folds, one of label-quality, dice, expected-dice")
        res = run_crossval(data=data, out=out, config=cfg, folds=folds, executor=executor,
                           workers=workers, detector=detector[0] if detector else "expected-dice",
                           flag_rule=flag_rule, flag_value=flag_value, pseudo_labels=refurbish,
                           overwrite=overwrite, progress=progress, dims=dims,
                           slice_axis=slice_axis, slice_size=slice_size,
                           spacing=_parse_sizes(spacing, "spacing", float))
        _print_detection(res)
        console.print(f"[green]wrote[/] {out}: {res.record['n_cases']} training cases ranked "
                      f"from {folds}-fold out-of-fold probabilities")
        return
    rcfg = RefurbishConfig(with_detector=refurbish_with, warmup=warmup, every=every,
                           confidence=confidence, unflag=unflag, pseudo_from=pseudo_from,
                           calibrate=refurbish_calibrate, mode=refurbish_mode,
                           band=refurbish_band, region=refurbish_region)
    res = run_audit(data=data, out=out, config=cfg, detectors=detector or DEFAULT_DETECTORS,
                    refurbish=rcfg if refurbish else None, flag_rule=flag_rule,
                    flag_value=flag_value, trusted=trusted, overwrite=overwrite,
                    progress=progress, dims=dims, slice_axis=slice_axis, slice_size=slice_size,
                    spacing=_parse_sizes(spacing, "spacing", float), tolerance=tolerance)
    if res.trusted:
        t = res.trusted
        console.print(f"{', '.join(t['used_by'])}: calibrated on {t['n']} masks taken to be "
                      f"right ({t['source']})")
    if not res.truth_known:
        console.print("no ground truth of which samples are corrupted: scores and flags only, "
                      "no detection.json")
    _print_detection(res)
    console.print(f"[green]wrote[/] {out}: {res.seen}; {_test_metrics(res)}")
    _exit_if_interrupted(res)


@app.command()
def rank(
    data: DataOpt = "synthetic-echo",
    probs: Annotated[list[Path] | None, typer.Option(
        help="Folder of predictions (repeatable): an nnU-Net results folder (its "
             "fold_X/validation/), a fold or nnUNetv2_predict output folder, or any folder of "
             "{case}.npz/.npy probabilities, probability images or label maps.")] = None,
    split: Annotated[str, typer.Option(
        help="Cases to rank: all (every labelled case, as nnU-Net's cross-validation "
             "predicts them), train, val or test.")] = "all",
    detector: Annotated[str, typer.Option(
        help="Score whose flags pick suspects and pseudo-labels: expected-dice (1 - Dice "
             "expected under the probabilities), dice (1 - Dice of the argmax) or "
             "label-quality (cleanlab's softmin); all three are written.")] = "expected-dice",
    flag_rule: Annotated[str, typer.Option(
        help="mixture (no error level needed), top (fraction) or percentile.")] = "mixture",
    flag_value: Annotated[float | None, typer.Option(
        help="Fraction for 'top', percentile for 'percentile'.")] = None,
    temperature: Annotated[float, typer.Option(help="Softmin temperature.")] = 0.1,
    slice_axis: Annotated[int, typer.Option(
        help="Volumes: axis of the per-slice scores (array order, 0: axial).")] = 0,
    pseudo_labels: Annotated[bool, typer.Option(
        "--pseudo-labels/--no-pseudo-labels",
        help="Write the flagged cases' predicted labels to refurbished/ (source layout and "
             "geometry).")] = False,
    workers: Annotated[int | None, typer.Option(help="Threads reading and scoring cases.")] = None,
    only_predicted: Annotated[bool, typer.Option(
        "--only-predicted/--all-cases",
        help="Rank only the cases that have a prediction (e.g. some folds still running); "
             "default: every case of --split needs one.")] = False,
    out: Annotated[Path, typer.Option(help="Audit folder.")] = Path("runs/rank"),
    overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
) -> None:
    """Rank every case from a model's predictions (e.g. nnU-Net's out-of-fold ones); no training."""
    from noisyseg.api import run_rank

    if not probs:
        raise ConfigError("probs: give at least one folder of predictions (--probs DIR)")
    res = run_rank(data=data, probs=probs, out=out, split=split, detector=detector,
                   flag_rule=flag_rule, flag_value=flag_value, temperature=temperature,
                   slice_axis=slice_axis, pseudo_labels=pseudo_labels, workers=workers,
                   only_predicted=only_predicted, overwrite=overwrite, progress=progress)
    primary = res.record["detector"]
    console.print(f"ranked {res.seen}; flagged by {primary}: {res.n_flagged[primary]}")
    _print_detection(res)
    console.print(f"[green]wrote[/] {out}")


@app.command()
def raters(
    data: Annotated[str, typer.Option(help=(
        "Multi-rater source: lidc[:DB][,min_readers=3,min_diameter_mm=MM,limit=N] (LIDC-IDRI's "
        "radiologists; pip install noisyseg[lidc]) or raters:PATH[,label=K,min_readers=N] (one "
        "folder per rater, one label file per case)."))] = "lidc",
    out: Annotated[Path | None, typer.Option(help="Output folder (report.md, tables, figures).")
                   ] = None,
    model: Annotated[list[str] | None, typer.Option(
        help="Error model to hold against the raters (repeatable); default natural, choppy, "
             "boundary, random_flip, dilate, erode.")] = None,
    mode: Annotated[list[str] | None, typer.Option(
        help="3-D mode (repeatable): slicewise, volumetric; default each model's modes.")] = None,
    fit: Annotated[bool, typer.Option(
        "--fit/--no-fit",
        help="Fit each model's options to the raters and write preset.json (for "
             "'noisyseg corrupt --like').")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the simulated readers.")] = 0,
    n_sim: Annotated[int, typer.Option(help="Simulated readers per case and model.")] = 1,
    level: Annotated[float, typer.Option(
        help="Consensus level: the share of the other raters a voxel needs.")] = 0.5,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    progress: ProgressOpt = True,
) -> None:
    """How realistic are the simulated errors? Measure real raters, rank the error models."""
    import shlex
    import sys

    from noisyseg.api import run_raters

    if out is None:
        raise ConfigError("--out: required (the folder to write)")
    res = run_raters(data=data, out=out, models=model, modes=mode, fit=fit, seed=seed,
                     n_sim=n_sim, level=level, overwrite=overwrite, progress=progress,
                     command=shlex.join(["noisyseg", *sys.argv[1:]]))
    console.print(f"{res.n_cases} cases, {res.n_outlines} reader outlines; the readers' mean "
                  f"Dice against the others' consensus: {res.target_dice:.3f}")
    table = Table(title="error models by realism (mean Wasserstein distance / real sd; lower "
                        "is closer to the raters)")
    for col in ("rank", "model", "mode", "options", "realism", "strength"):
        table.add_column(col)
    for _, r in res.ranking.iterrows():
        ok = r["status"] == "ok"
        table.add_row("" if not ok else str(int(r["rank"])), str(r["model"]), str(r["mode"]),
                      str(r.get("options", "")), f"{r['realism']:.3f}" if ok else r["status"][:40],
                      f"{r['strength']:.3g}" if ok else "")
    console.print(table)
    console.print(f"[green]wrote[/] {out}" + (f" (preset: {out / 'preset.json'})" if fit else ""))


@app.command("models")
def models_cmd() -> None:
    """List the built-in networks (any monai.networks.nets network works as monai:NAME)."""
    from noisyseg.models import list_models

    table = Table(title="networks")
    table.add_column("name")
    table.add_column("description")
    for name, doc in list_models().items():
        table.add_row(name, doc)
    table.add_row("monai:NAME", "any network in monai.networks.nets, e.g. monai:BasicUNet")
    Console().print(table)


study_app = typer.Typer(no_args_is_help=True, help="Experiment grids from a YAML spec: run, resume, report.")
app.add_typer(study_app, name="study")


@study_app.command("run")
def study_run(
    spec: Annotated[str, typer.Argument(help="Spec file, or a shipped spec: quick, heller2018, "
                                        "islam2026 (see noisyseg study list).")],
    out: Annotated[Path, typer.Option(help="Study folder (an existing one is resumed).")],
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(
        help="Parallel trials (local: worker processes pinned to a share of the cores; ray: "
             "CPUs of a local Ray instance). Default: local 1, ray all cores.")] = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address, e.g. ray://head:10001 or auto (with --executor ray).")] = None,
    cpus_per_trial: Annotated[int, typer.Option(help="CPUs per Ray task.")] = 1,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed/--no-retry-failed", help="Run trials that failed last time again.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report",
                                         help="Write the report at the end.")] = True,
    progress: ProgressOpt = True,
) -> None:
    """Run every unfinished trial of a study spec; write results.parquet (and the report)."""
    from noisyseg.api import run_study

    o = run_study(spec=spec, out=out, executor=executor, workers=workers, address=address,
                  cpus_per_trial=cpus_per_trial, retry_failed=retry_failed, report=report,
                  progress=progress)
    console.print(f"[green]{o.out}[/]: {o.total} trials: {o.skipped} already finished, {o.ran} run "
                  f"now ({o.failed} failed) in {o.seconds:.0f} s; results: {o.results}")
    if o.stale:
        console.print(f"{len(o.stale)} stale trial folder(s) from an earlier spec kept aside")
    if report:
        console.print(f"report: {out / 'report.html'}")
    if o.failed:
        console.print(f"[red]failed:[/] {', '.join(o.failed_ids)} (see trials/<id>/result.json)")


@study_app.command("report")
def study_report_cmd(
    out: Annotated[Path, typer.Argument(help="Study folder.")],
) -> None:
    """Write DIR/report.md and a self-contained DIR/report.html from a study folder."""
    from noisyseg.report import write_study_report

    md, html = write_study_report(out)
    console.print(f"[green]wrote[/] {md} and {html}")


@study_app.command("list")
def study_list() -> None:
    """List the shipped study specs."""
    from noisyseg.study import SPEC_DIR, load_spec

    table = Table(title="shipped study specs")
    for col in ("name", "trials", "description"):
        table.add_column(col)
    for p in sorted(SPEC_DIR.glob("*.yaml")):
        s = load_spec(p)
        table.add_row(p.stem, str(len(s.trials())), s.description)
    Console().print(table)


class _ReviewGroup(TyperGroup):
    """``noisyseg review AUD`` opens the app; ``noisyseg review export AUD`` exports."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["open", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(cls=_ReviewGroup, no_args_is_help=True, help=(
    "Review an audit's suspects in the browser (noisyseg review AUD) and export the "
    "corrected dataset (noisyseg review export AUD --out FIXED)."))
app.add_typer(review_app, name="review")
AuditArg = Annotated[Path, typer.Argument(help="Audit folder (from noisyseg audit or rank).")]
ReviewDataOpt = Annotated[str | None, typer.Option(
    "--data", help="The audited dataset, when it has moved since the audit.")]


@review_app.command("open")
def review_open(
    folder: AuditArg,
    reviewer: Annotated[str | None, typer.Option(
        help="Name signed on every decision (default: your login name).")] = None,
    host: Annotated[str, typer.Option(
        help="Interface to listen on; 127.0.0.1 keeps the app on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (the next free one if taken; 0: any).")] = 8765,
    data: ReviewDataOpt = None,
    browser: Annotated[bool, typer.Option("--browser/--no-browser",
                                          help="Open the page in the default browser.")] = False,
) -> None:
    """Start the review app and print its URL (decisions go to FOLDER/review.sqlite)."""
    from noisyseg.review import serve

    def ready(info: Any) -> None:
        console.print(f"reviewing {folder} as {escape(reviewer or 'your login name')}; "
                      f"decisions are saved to {folder / 'review.sqlite'} as you make them")
        print(f"open {info.url}", flush=True)
        console.print("Ctrl-C stops the server; `noisyseg review export` writes the dataset")
        if browser:
            import webbrowser

            webbrowser.open(info.url)

    serve(folder, reviewer=reviewer, host=host, port=port, data=data, on_ready=ready)


@review_app.command("export")
def review_export(
    folder: AuditArg,
    out: Annotated[Path, typer.Option(help="Folder for the corrected dataset.")],
    data: ReviewDataOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write the corrected dataset in its source layout, with decisions.csv, reannotate.csv."""
    from noisyseg.review import export_review

    rec = export_review(folder, out, data=data, overwrite=overwrite)
    console.print(f"{rec['n_reviewed']} of {rec['n_cases']} cases reviewed: "
                  f"{rec['n_accepted']} pseudo-labels accepted, {rec['n_kept']} kept, "
                  f"{rec['n_reannotate']} to re-annotate")
    console.print(f"[green]wrote[/] {out}")


nnunet_app = typer.Typer(no_args_is_help=True, help=(
    "nnU-Net v2 with noisyseg's detectors inside its own training (the nnunet extra)."))
app.add_typer(nnunet_app, name="nnunet")
#: Library parameter names of ``noisyseg nnunet train``'s errors -> its arguments and flags.
_NNUNET_FLAGS = {"dataset": "DATASET", "configuration": "CONFIGURATION", "fold": "FOLD",
                 "plans": "-p/--plans", "iterations": "--iterations",
                 "val_iterations": "--val-iterations", "window": "--window",
                 "pretrained_weights": "--pretrained-weights", "val_best": "--val-best"}


@nnunet_app.command("train")
def nnunet_train(
    dataset: Annotated[str, typer.Argument(help="nnU-Net dataset id or name (3, Dataset003_Liver).")],
    configuration: Annotated[str, typer.Argument(help="Configuration: 2d, 3d_fullres, ...")],
    fold: Annotated[str, typer.Argument(help="Fold: 0-4 (or more, as nnU-Net allows) or all.")],
    plans: Annotated[str, typer.Option("-p", "--plans", help="Plans identifier.")] = "nnUNetPlans",
    device: Annotated[str, typer.Option(
        "--device", help="auto (cuda when available, else cpu), cuda, cpu or mps.")] = "auto",
    pretrained_weights: Annotated[Path | None, typer.Option(
        "--pretrained-weights", help="nnU-Net checkpoint to start from.")] = None,
    npz: Annotated[bool, typer.Option(
        "--npz", help="Save the validation probabilities (what noisyseg rank reads).")] = False,
    continue_training: Annotated[bool, typer.Option(
        "--c", "--continue", help="Continue from the fold's latest checkpoint.")] = False,
    validation: Annotated[bool, typer.Option(
        "--validation/--no-validation", help="Predict the fold's held-out cases at the end.")] = True,
    val_best: Annotated[bool, typer.Option(
        "--val-best", help="Validate with checkpoint_best.pth instead of the final one.")] = False,
    disable_checkpointing: Annotated[bool, typer.Option(
        "--disable-checkpointing", help="Write no checkpoints.")] = False,
    epochs: Annotated[int | None, typer.Option(
        "--epochs", help="Epochs (default: nnU-Net's 1000).")] = None,
    iterations: Annotated[int | None, typer.Option(
        "--iterations", help="Training iterations per epoch (default: nnU-Net's 250).")] = None,
    val_iterations: Annotated[int | None, typer.Option(
        "--val-iterations", help="Validation iterations per epoch (default: nnU-Net's 50).")] = None,
    window: Annotated[int, typer.Option(
        "--window", help="The score averages the per-epoch losses of the last N epochs.")] = 5,
    flag_rule: Annotated[str, typer.Option(
        "--flag-rule", help="mixture, top or percentile.")] = "mixture",
    flag_value: Annotated[float | None, typer.Option(
        "--flag-value", help="Fraction for top, percentile for percentile.")] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed Python, NumPy and torch before building the trainer (repeatable "
        "with nnUNet_n_proc_DA=0).")] = None,
) -> None:
    """Train one nnU-Net fold as nnUNetv2_train does; write each case's loss to fold_K/noisyseg/."""
    from noisyseg.run.nnunet import train_nnunet

    try:
        res = train_nnunet(dataset, configuration, fold, plans=plans, device=device,
                           pretrained_weights=pretrained_weights, npz=npz,
                           continue_training=continue_training, validation=validation,
                           val_best=val_best, disable_checkpointing=disable_checkpointing,
                           epochs=epochs, iterations=iterations, val_iterations=val_iterations,
                           window=window, flag_rule=flag_rule, flag_value=flag_value, seed=seed)
    except NoisysegError as exc:
        msg = str(exc)
        m = re.match(r"([a-z_]+):", msg)
        if m and m.group(1) in _NNUNET_FLAGS:
            msg = _NNUNET_FLAGS[m.group(1)] + msg[len(m.group(1)):]
        raise type(exc)(cli_message(msg)) from exc
    rec = res.record
    console.print(f"[green]wrote[/] {res.scores_folder}: nnunet-loss of {len(res.case_ids)} "
                  f"training cases (last {min(rec['window'], rec['epochs'])} of {rec['epochs']} "
                  f"epochs), "
                  f"{int(res.flags.sum())} flagged; worst: {', '.join(res.top(3))}")
    if validation:
        console.print(f"validation: {res.fold_folder / 'validation'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("noisyseg-demo"),
    workers: Annotated[int | None, typer.Option(help="Parallel trials (default: up to 2).")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Run the quick study (both studies in miniature) on synthetic-echo; write its report."""
    from noisyseg.api import run_demo

    report = run_demo(out=out, workers=workers, progress=progress)
    console.print(f"[green]demo report[/]: {report} (and {report.with_suffix('.md')})")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        code = app(args=argv, standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors: a bad flag or value
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command group: its help
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        console.print(f"[red]error:[/] {escape(message)}{escape(hint)}", highlight=False,
                      soft_wrap=True)
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except NoisysegError as exc:
        console.print(f"[red]error:[/] {escape(cli_message(str(exc)))}", highlight=False,
                      soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except OSError as exc:  # a file system refusing a write or read the library did not name
        where = f": {exc.filename}" if exc.filename else ""
        console.print(f"[red]error:[/] {escape(exc.strerror or str(exc))}{escape(where)}",
                      highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
