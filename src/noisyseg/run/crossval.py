"""Cross-validation inside noisyseg: out-of-fold probabilities for users without a model.

The training cases are split into K folds (seeded); fold k's network trains on the other
folds' training cases (the validation split still picks its best epoch) and predicts its own
fold's cases. Every training case thus gets a prediction from a network that never saw its
label: the out-of-sample probabilities confident learning asks for. :func:`fold_job` is one
fold, run by any study executor (in this process, in pinned worker processes, or on Ray);
:func:`~noisyseg.run.rank_predictions` then ranks the cases from the files it returns.

Volumes take the run's view (:func:`~noisyseg.run.run_volume_session`): a 2-D network on
their slices or a 3-D one on patches; each held-out case's probabilities are put back on its
own grid, ``(K, *S)`` in array order, as nnU-Net writes them.
"""

from __future__ import annotations

import functools
import io
import os
import time
import traceback
from typing import Any

import numpy as np

from noisyseg.data import CaseDataset, SegDataset
from noisyseg.errors import ConfigError

__all__ = ["fold_assignment", "fold_cases", "fold_case_probabilities", "fold_dataset", "fold_job",
           "fold_probabilities"]


def fold_assignment(n: int, folds: int, *, seed: int = 0) -> np.ndarray:
    """Fold of each of ``n`` cases: a seeded permutation dealt round robin, so fold sizes
    differ by at most one.

    Examples
    --------
    >>> np.bincount(fold_assignment(11, 5, seed=0)).tolist()
    [3, 2, 2, 2, 2]
    """
    if folds < 2:
        raise ConfigError(f"folds: need at least 2 folds, got {folds}")
    if n < folds:
        raise ConfigError(f"folds: {folds} folds need at least {folds} training cases, got {n}")
    out = np.empty(n, dtype=np.int64)
    out[np.random.default_rng([seed, 7]).permutation(n)] = np.arange(n) % folds
    return out


def fold_dataset(ds: SegDataset, fold: int, assignment: np.ndarray) -> tuple[SegDataset, np.ndarray]:
    """Fold ``fold``'s dataset: the other folds' training cases train, the validation cases
    validate, this fold's cases become its test split (the original test cases are left out).

    Returns the dataset and the indices (into ``ds``) of the held-out cases, in the order
    of its test split.
    """
    train = ds.indices("train")
    if len(assignment) != len(train):
        raise ConfigError(f"folds: {len(assignment)} fold ids for {len(train)} training cases")
    hold = train[assignment == fold]
    keep = np.sort(np.concatenate([train, ds.indices("val")]))
    sub = ds.subset(keep)
    split = sub.split.copy()
    split[np.isin(keep, hold)] = "test"
    from dataclasses import replace

    out = replace(sub, split=split)
    return out, keep[out.indices("test")]


def fold_probabilities(ds: SegDataset, config: Any, fold: int, assignment: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train fold ``fold``'s network and predict its held-out cases.

    Returns
    -------
    held_out : (M,) int ndarray
        Indices into ``ds``.
    probs : (M, K, H, W) float32 ndarray
        Softmax probabilities of the best-on-validation weights.
    summary : dict
        Best epoch, validation Dice, training time.
    """
    import torch

    from noisyseg.run.session import run_session

    fds, held = fold_dataset(ds, fold, assignment)
    session = run_session(fds, config)
    tr = session.trainer
    logits = tr.predict_logits(fds.indices("test"))
    probs = torch.softmax(logits, dim=1).numpy().astype(np.float32)
    summary = {"fold": fold, "n_train": int(len(fds.indices("train"))), "n_held_out": int(len(held)),
               "best_epoch": tr.best_epoch, "best_val_dice": tr.best_score,
               "train_seconds": round(session.train_seconds, 2),
               "held_out_test_dice": session.test.mean["dice"]}
    return held, probs, summary


def fold_cases(cases: CaseDataset, fold: int, assignment: np.ndarray) -> tuple[CaseDataset, np.ndarray]:
    """Fold ``fold``'s case dataset: the other folds' training cases train, the validation
    cases validate, this fold's cases join the test split (the original test cases stay
    there, unused by the ranking; cases keep their indices, so generated datasets still
    generate the right case).

    Returns the dataset and the indices of the held-out cases.
    """
    from dataclasses import replace

    train = cases.indices("train")
    if len(assignment) != len(train):
        raise ConfigError(f"folds: {len(assignment)} fold ids for {len(train)} training cases")
    hold = train[assignment == fold]
    held = set(hold.tolist())
    new = tuple(replace(c, split="test") if i in held else c for i, c in enumerate(cases.cases))
    return replace(cases, cases=new), hold


def _softmax(logits: Any) -> np.ndarray:
    import torch

    return torch.softmax(logits.float(), dim=1).numpy().astype(np.float32)


def _on_case_grid(probs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(K, *s)`` probabilities put on a ``shape`` grid (each class map trilinearly, then
    renormalised to sum to one)."""
    import torch
    from monai.transforms import Resize

    if probs.shape[1:] == tuple(shape):
        return probs
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    out = np.asarray(Resize(spatial_size=tuple(shape), mode=mode, anti_aliasing=False)(
        torch.as_tensor(probs)), dtype=np.float32)
    return out / np.maximum(out.sum(0, keepdims=True), 1e-12)


def fold_case_probabilities(cases: CaseDataset, config: Any, fold: int, assignment: np.ndarray,
                            view: dict[str, Any]) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """Train fold ``fold``'s network on volumes (``view``: the options of
    :func:`~noisyseg.run.run_volume_session`) and predict its held-out cases.

    Returns
    -------
    held_out : (M,) int ndarray
        Case indices.
    probs : list of (K, *S) float32 ndarray
        Softmax probabilities of the best-on-validation weights, each on its case's grid.
    summary : dict
    """
    from noisyseg.run.volumes import run_volume_session

    fcases, held = fold_cases(cases, fold, assignment)
    vs = run_volume_session(fcases, config, **view)
    tr, index = vs.session.trainer, vs.index
    probs = []
    for i in held:
        i = int(i)
        shape = index.shapes[i]
        if vs.dims == 3:
            p = _softmax(tr.predict_logits(index.slices_of(i)))[0]  # (K, *grid)
            p = np.stack([index.crop(i, c) for c in p])  # padding off: the resampled case
            probs.append(_on_case_grid(p, shape))
            continue
        sl = _softmax(tr.predict_logits(index.slices_of(i)))  # (S, K, h, w)
        plane = tuple(n for a, n in enumerate(shape) if a != index.axis)
        if sl.shape[2:] != plane:
            sl = np.stack([_on_case_grid(s, plane) for s in sl])
        probs.append(np.moveaxis(sl, 0, 1 + index.axis).astype(np.float32))  # (K, *shape)
    summary = {"fold": fold, "n_train": int(len(vs.train_cases)), "n_held_out": int(len(held)),
               "best_epoch": tr.best_epoch, "best_val_dice": tr.best_score,
               "train_seconds": round(vs.session.train_seconds, 2)}
    return held, probs, summary


@functools.lru_cache(maxsize=2)
def _dataset(source: str) -> SegDataset | CaseDataset:
    from noisyseg.data import load_dataset

    return load_dataset(source)


def fold_job(config: dict[str, Any], worker: str | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One fold as an executor job; never raises (a failure is reported in the result).

    ``config``: ``data`` (source string), ``train`` (:meth:`TrainConfig.to_dict`), ``fold``,
    ``folds``, ``seed`` and, for volumes, ``view`` (the options of
    :func:`~noisyseg.run.run_volume_session`). Returns ``(result, files)``: the fold's
    summary (``status``, ``error`` when failed) and one ``{case_id}.npz`` (key
    ``probabilities``, ``(K, *S)`` float32 in array order, as nnU-Net writes them) per
    held-out case.
    """
    import torch

    from noisyseg.train import TrainConfig

    t0 = time.perf_counter()
    result: dict[str, Any] = {"status": "ok", "fold": config["fold"],
                              "worker": worker or f"pid{os.getpid()}"}
    files: dict[str, bytes] = {}
    try:
        ds = _dataset(config["data"])
        cfg = TrainConfig.from_dict(config["train"])
        if cfg.threads is None:  # the share of cores the executor gave this worker
            cfg = TrainConfig.from_dict(cfg.to_dict() | {"threads": torch.get_num_threads()})
        assignment = fold_assignment(len(ds.indices("train")), int(config["folds"]),
                                     seed=int(config["seed"]))
        if isinstance(ds, CaseDataset):
            held, probs, summary = fold_case_probabilities(ds, cfg, int(config["fold"]),
                                                           assignment, config.get("view", {}))
        else:
            held, probs, summary = fold_probabilities(ds, cfg, int(config["fold"]), assignment)
        result |= summary
        for i, p in zip(held, probs, strict=True):
            buf = io.BytesIO()
            np.savez_compressed(buf, probabilities=p)
            files[f"{ds.sample_ids[i]}.npz"] = buf.getvalue()
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, which raises
        if isinstance(exc, KeyboardInterrupt):
            raise
        result |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()}
        files = {}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result, files
