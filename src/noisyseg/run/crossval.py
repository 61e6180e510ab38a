"""Cross-validation inside noisyseg: out-of-fold probabilities for users without a model.

The training cases are split into K folds (seeded); fold k's network trains on the other
folds' training cases (the validation split still picks its best epoch) and predicts its own
fold's cases. Every training case thus gets a prediction from a network that never saw its
label: the out-of-sample probabilities confident learning asks for. :func:`fold_job` is one
fold, run by any study executor (in this process, in pinned worker processes, or on Ray);
:func:`~noisyseg.run.rank_predictions` then ranks the cases from the files it returns.
"""

from __future__ import annotations

import functools
import io
import os
import time
import traceback
from typing import Any

import numpy as np

from noisyseg.data import SegDataset
from noisyseg.errors import ConfigError

__all__ = ["fold_assignment", "fold_dataset", "fold_job", "fold_probabilities"]


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


@functools.lru_cache(maxsize=2)
def _dataset(source: str) -> SegDataset:
    from noisyseg.data import load_dataset

    return load_dataset(source, volumes=False)  # type: ignore[return-value]


def fold_job(config: dict[str, Any], worker: str | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One fold as an executor job; never raises (a failure is reported in the result).

    ``config``: ``data`` (source string), ``train`` (:meth:`TrainConfig.to_dict`), ``fold``,
    ``folds``, ``seed``. Returns ``(result, files)``: the fold's summary (``status``,
    ``error`` when failed) and one ``{case_id}.npz`` (key ``probabilities``, ``(K, H, W)``
    float32, as nnU-Net writes them) per held-out case.
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
