"""Run one trial: corrupt the training masks, train with detectors attached, measure.

:func:`execute_trial` is what every executor runs (in-process, in a worker process or as a Ray
task). It never raises: a crash becomes a result with ``status: failed`` and the error, so one
bad trial does not stop a study. It returns the result row and the run folder's files as bytes,
so the process that owns the study folder writes them, wherever the trial ran.
"""

from __future__ import annotations

import functools
import io
import json
import os
import time
import traceback
from typing import Any

import numpy as np

from noisyseg.study.spec import TrialConfig

__all__ = ["TrialOutput", "execute_trial", "result_row", "trial_result"]

TrialOutput = tuple[dict[str, Any], dict[str, bytes]]


@functools.lru_cache(maxsize=4)
def _dataset(source: str) -> Any:
    from noisyseg.data import load_dataset

    return load_dataset(source)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def result_row(trial: TrialConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """Flatten a trial's measurements into one row of ``results.parquet``.

    Columns: ``trial_id, status, name, arch, error_model, target_dice, strength,
    error_level, detector, refurbish, seed``, then the grid fields (``grid.<field>``), test
    metrics ``{dice,iou,hd95}_{mean,<class>}``, ``train_label_dice`` (mean Dice of all
    training masks to the clean ones), ``corrupted_label_dice``, detection
    ``{ap,auroc,precision,recall,f1,n_flagged}_<detector>``, refurbishment
    ``refurb_dice_{before,after,gain}``, ``n_refurbished``, timings and ``error``.

    Parameters
    ----------
    trial : TrialConfig
        The trial.
    summary : dict of str to object
        What the trial measured (``metrics.json``'s content, plus ``status`` and timings);
        missing entries give missing columns or None.

    Returns
    -------
    dict of str to object
        The row; NaN values are None (JSON has no NaN).

    Raises
    ------
    KeyError
        A ``detection`` entry without one of the metrics above, or a ``refurbish_dice``
        without ``all_train_before`` / ``all_train_after``.

    Examples
    --------
    >>> from noisyseg.study import load_spec
    >>> trial = load_spec("quick").trials()[0]
    >>> row = result_row(trial, {"status": "ok", "train_label_dice": 1.0})
    >>> row["error_model"], row["error_level"], row["train_label_dice"], row["target_dice"]
    ('none', 0.0, 1.0, None)
    """
    c = trial.corrupt
    row: dict[str, Any] = {
        "trial_id": trial.trial_id, "status": summary.get("status", "ok"),
        "name": trial.describe(),
        "arch": trial.train.model + ("-3d" if trial.volumes.dims == 3 else ""),
        "error_model": "none" if c is None else c.model,
        "target_dice": np.nan if c is None or c.target_dice is None else c.target_dice,
        "error_level": 0.0 if c is None else c.fraction,
        "detector": "+".join(trial.audit.detectors) or "none",
        "refurbish": trial.audit.refurbish, "seed": trial.seed}
    row |= {f"grid.{k}": json.dumps(v) if isinstance(v, dict | list) else v
            for k, v in trial.labels.items()}
    row["strength"] = summary.get("corruption", {}).get("strength", 0.0 if c is None else np.nan)
    if c is not None:  # volumes: slice-wise or volumetric; a preset fitted to real raters
        mode = summary.get("corruption", {}).get("mode") or c.mode
        if mode:
            row["error_mode"] = mode
        if c.like is not None:
            row["like"] = c.like
    row["train_label_dice"] = summary.get("train_label_dice", np.nan)
    row["corrupted_label_dice"] = summary.get("corruption", {}).get("mean_dice_corrupted", np.nan)
    test = summary.get("test")
    if test:
        for metric, v in test["mean"].items():
            row[f"{metric}_mean"] = v
        for cls, vals in test["per_class"].items():
            for metric in ("dice", "iou", "hd95"):
                row[f"{metric}_{cls}"] = vals.get(metric, np.nan)
    for det, m in summary.get("detection", {}).items():
        for key, col in (("average_precision", "ap"), ("auroc", "auroc"), ("precision", "precision"),
                         ("recall", "recall"), ("f1", "f1"), ("n_flagged", "n_flagged")):
            row[f"{col}_{det}"] = m[key]
    rd = summary.get("refurbish_dice")
    if rd:
        row["refurb_dice_before"] = rd["all_train_before"]
        row["refurb_dice_after"] = rd["all_train_after"]
        row["refurb_dice_gain"] = rd["all_train_after"] - rd["all_train_before"]
    if "n_refurbished" in summary:
        row["n_refurbished"] = summary["n_refurbished"]
    for key in ("best_epoch", "train_seconds", "corrupt_seconds", "trial_seconds", "threads",
                "worker"):
        if key in summary:
            row[key] = summary[key]
    for det, s in summary.get("detector_seconds", {}).items():
        row[f"seconds_{det}"] = s
    if summary.get("error"):
        row["error"] = summary["error"]
    # JSON has no NaN: missing values are None (NaN again in the parquet table)
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}


def _corrupted(trial: TrialConfig, ds: Any, tmp: Any, summary: dict[str, Any]) -> Any:
    """The trial's dataset with its training masks corrupted (written case by case into the
    temporary folder ``tmp``; kept in memory too when ``ds`` is held in memory), the
    corruption's record in ``summary``."""
    from noisyseg.corrupt import corrupt_cases
    from noisyseg.data import load_dataset

    c = trial.corrupt
    if c is None:
        return ds
    cls = None
    if c.classes:
        from noisyseg._validate import parse_classes

        cls = parse_classes(c.classes, ds.class_names)
    mode, options = c.mode, dict(c.options)
    if c.like is not None:
        from noisyseg.corrupt.presets import apply_preset

        ndim = ds.spatial_dims if ds.samples is not None else ds.label_geometry(0).ndim
        mode, options, _ = apply_preset(c.like, c.model, ndim=ndim, mode=c.mode, options=c.options,
                                        target_dice=c.target_dice, strength=c.strength)
    res = corrupt_cases(ds, c.model, tmp, strength=c.strength, target_dice=c.target_dice,
                        fraction=c.fraction, classes=cls, seed=trial.seed, mode=mode,
                        slice_axis=c.slice_axis, n_examples=0, **options)
    summary["corruption"] = res.config | {"source": trial.data}
    if c.like is not None:
        summary["corruption"]["like"] = c.like
    return res.dataset if res.dataset is not None else load_dataset(str(tmp))


def _run(trial: TrialConfig, files: dict[str, bytes], summary: dict[str, Any]) -> None:
    """A trial: the training masks corrupted, a network trained on them with the trial's
    detectors (2-D images; volumes with a 2-D network on their slices or a 3-D one on
    patches, as ``trial.volumes`` says), scores and clean-test metrics per case."""
    import tempfile
    from pathlib import Path

    import torch

    from noisyseg.evaluate import dice
    from noisyseg.run import encode_table, run_session, run_tables
    from noisyseg.run import summary as run_summary

    with tempfile.TemporaryDirectory(prefix="noisyseg-trial-") as tmp:
        t0 = time.perf_counter()
        ds = _corrupted(trial, _dataset(trial.data), Path(tmp), summary)
        summary["corrupt_seconds"] = round(time.perf_counter() - t0, 3)
        train = ds.indices("train")
        summary["train_label_dice"] = float(np.mean(
            [dice(ds.read_label(int(i))[0][None], ds.read_label(int(i), clean=True)[0][None],
                  ds.n_classes).mean() for i in train])) if len(train) else float("nan")
        a = trial.audit
        cfg = trial.train
        if cfg.threads is None:  # respect the share of cores the executor gave this worker
            cfg = type(cfg).from_dict(cfg.to_dict() | {"threads": torch.get_num_threads()})
        session = run_session(ds, cfg, **trial.volumes.options(), detectors=a.detectors,
                              refurbish=a.refurbish_config() if a.refurbish else None,
                              flag_rule=a.flag_rule, flag_value=a.flag_value)
        summary |= run_summary(session)
        files |= {name: encode_table(name, df) for name, df in run_tables(session).items()}
        if session.sampling == "images":
            files |= _image_examples(ds, session, a.detectors)
        summary["class_names"] = list(ds.class_names)


def _image_examples(ds: Any, session: Any, detectors: Any) -> dict[str, bytes]:
    """The arrays the study report draws from a trial on 2-D images: ``suspects.npz`` (the
    top six of the first detector), ``examples.npz`` (three corrupted training masks beside
    their clean ones) and ``test_examples.npz`` (three test predictions)."""
    files = {}
    idx, truth, train = session.train_cases, session.truth, ds.indices("train")
    ids = [ds.sample_ids[i] for i in idx]
    if session.scores:
        lead = session.scores[detectors[0]]
        top = np.argsort(-lead, kind="stable")[:6]
        files["suspects.npz"] = _npz(
            images=ds.images[idx[top]], given=ds.masks[idx[top]],
            predicted=session.trainer.predict(idx[top]), clean=ds.truth[idx[top]],
            sample_ids=np.array([ids[j] for j in top]),
            corrupted=np.zeros(len(top), bool) if truth is None else truth[top],
            scores=lead[top], detector=np.array(detectors[0]))
    if ds.corrupted is not None and ds.corrupted[train].any():
        bad = train[ds.corrupted[train]][:3]
        files["examples.npz"] = _npz(images=ds.images[bad], clean=ds.truth[bad],
                                     noisy=ds.masks[bad], sample_ids=np.array(
                                         [ds.sample_ids[i] for i in bad]))
    test = session.samples.test_idx[:3]
    files["test_examples.npz"] = _npz(images=ds.images[test], truth=ds.truth[test],
                                      predicted=session.samples.test_pred[:3])
    return files


def execute_trial(config: dict[str, Any], worker: str | None = None) -> TrialOutput:
    """Run one trial from its normalised config dict; never raises.

    Parameters
    ----------
    config : dict
        :meth:`TrialConfig.to_dict` plus ``labels``.
    worker : str, optional
        Recorded in the result (which worker ran it).

    Returns
    -------
    (result, files)
        ``result`` holds ``trial_id, status ('ok' | 'failed'), config, row`` (the flat row of
        ``results.parquet``) and, when failed, ``error`` and ``traceback``; ``files`` maps a
        run-folder file name to its bytes (``metrics.json``, ``history.csv``, ``scores.csv``,
        ``suspects.npz``, ...).

    Notes
    -----
    Never raises: any exception becomes a ``'failed'`` result. No example: a trial trains
    a network.
    """
    t0 = time.perf_counter()
    labels = config.get("labels", {})
    trial = TrialConfig.from_dict({k: v for k, v in config.items() if k != "labels"}, labels)
    summary: dict[str, Any] = {"status": "ok", "worker": worker or f"pid{os.getpid()}"}
    files: dict[str, bytes] = {}
    try:
        _run(trial, files, summary)
    except BaseException as exc:  # noqa: BLE001 - a crashed trial is recorded, not raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        summary |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()}
        files = {}
    summary["trial_seconds"] = round(time.perf_counter() - t0, 2)
    from noisyseg.run import encode_json, encode_run_json

    files["metrics.json"] = encode_json(summary)
    if summary["status"] == "ok":
        files["run.json"] = encode_run_json("audit" if trial.audit.detectors else "train",
                                            data=trial.data, files=files)
    return trial_result(trial, summary), files


def trial_result(trial: TrialConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """The ``result.json`` of a trial: id, status, name, config, grid labels, result row and,
    when failed, the error and traceback."""
    result = {"trial_id": trial.trial_id, "status": summary["status"], "name": trial.describe(),
              "config": trial.to_dict(), "labels": trial.labels, "row": result_row(trial, summary)}
    if summary["status"] == "failed":
        result |= {"error": summary["error"], "traceback": summary.get("traceback", "")}
    return result
