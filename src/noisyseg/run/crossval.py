"""Cross-validation inside noisyseg: out-of-fold probabilities for users without a model.

The training cases are split into K folds (seeded); fold k's network trains on the other
folds' training cases (the validation split still picks its best epoch) and predicts its own
fold's cases. Every training case thus gets a prediction from a network that never saw its
label: the out-of-sample probabilities confident learning asks for. :func:`fold_job` is one
fold, run by any study executor (in this process, in pinned worker processes, or on Ray);
:func:`~noisyseg.run.rank_predictions` then ranks the cases from the files it returns.

Each fold is a :func:`~noisyseg.run.run_session` with the run's view (2-D images; volumes
with a 2-D network on their slices or a 3-D one on patches); each held-out case's
probabilities are put back on its own grid, ``(K, *S)`` in array order, as nnU-Net writes
them.
"""

from __future__ import annotations

import functools
import io
import os
import time
import traceback
from typing import Any

import numpy as np

from noisyseg.data import CaseDataset
from noisyseg.errors import ConfigError

__all__ = ["fold_assignment", "fold_cases", "fold_job", "fold_probabilities"]


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


def fold_cases(ds: CaseDataset, fold: int, assignment: np.ndarray
               ) -> tuple[CaseDataset, np.ndarray]:
    """Fold ``fold``'s dataset: the other folds' training cases train, the validation cases
    validate, this fold's cases join the test split (the original test cases stay there,
    unused by the ranking; cases keep their indices, so generated datasets still generate
    the right case).

    Returns the dataset and the indices of the held-out cases, in case order.
    """
    train = ds.indices("train")
    if len(assignment) != len(train):
        raise ConfigError(f"folds: {len(assignment)} fold ids for {len(train)} training cases")
    hold = train[assignment == fold]
    split = np.array(ds.split, dtype=object)
    split[hold] = "test"
    return ds.with_split(split.astype(str)), hold


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


def fold_probabilities(ds: CaseDataset, config: Any, fold: int,
                       assignment: np.ndarray, view: dict[str, Any]
                       ) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """Train fold ``fold``'s network (``view``: the options of
    :func:`~noisyseg.run.run_session`) and predict its held-out cases.

    Returns
    -------
    held_out : (M,) int ndarray
        Case indices.
    probs : list of (K, *S) float32 ndarray
        Softmax probabilities of the best-on-validation weights, each on its case's grid.
    summary : dict
        Best epoch, validation Dice, training time, the held-out cases' mean Dice.
    """
    from noisyseg.run.session import run_session

    fds, held = fold_cases(ds, fold, assignment)
    session = run_session(fds, config, **view)
    tr, index = session.trainer, session.index
    probs = []
    for i in held:
        i = int(i)
        p = _softmax(tr.predict_logits(index.slices_of(i)))  # (samples, K, *sample grid)
        if index.sampling == "images":
            probs.append(p[0])
        elif index.sampling == "volumes":
            p = np.stack([index.crop(i, c) for c in p[0]])  # padding off: the resampled case
            probs.append(_on_case_grid(p, index.shapes[i]))
        else:
            shape = index.shapes[i]
            plane = tuple(n for a, n in enumerate(shape) if a != index.axis)
            if p.shape[2:] != plane:
                p = np.stack([_on_case_grid(s, plane) for s in p])
            probs.append(np.moveaxis(p, 0, 1 + index.axis).astype(np.float32))  # (K, *shape)
    assert session.test is not None
    dice = {int(c): r["dice"] for c, r in zip(session.test_cases, session.test.per_sample,
                                              strict=True)}
    summary = {"fold": fold, "n_train": int(len(session.train_cases)),
               "n_held_out": int(len(held)), "best_epoch": tr.best_epoch,
               "best_val_dice": tr.best_score, "train_seconds": round(session.samples.train_seconds, 2),
               "held_out_dice": float(np.mean([dice[int(i)] for i in held]))}
    return held, probs, summary


@functools.lru_cache(maxsize=2)
def _dataset(source: str) -> CaseDataset:
    from noisyseg.data import load_dataset

    return load_dataset(source)


def fold_job(config: dict[str, Any], worker: str | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One fold as an executor job; never raises (a failure is reported in the result).

    ``config``: ``data`` (source string), ``train`` (:meth:`TrainConfig.to_dict`), ``fold``,
    ``folds``, ``seed`` and ``view`` (the options of :func:`~noisyseg.run.run_session`).
    Returns ``(result, files)``: the fold's summary (``status``, ``error`` when failed) and
    one ``{case_id}.npz`` (key ``probabilities``, ``(K, *S)`` float32 in array order, as
    nnU-Net writes them) per held-out case.
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
        held, probs, summary = fold_probabilities(ds, cfg, int(config["fold"]), assignment,
                                                  config.get("view", {}))
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
