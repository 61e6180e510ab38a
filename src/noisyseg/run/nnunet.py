"""nnU-Net v2's own training with noisyseg's per-case training-loss detector attached.

:func:`train_nnunet` trains one fold exactly as ``nnUNetv2_train DATASET CONFIG FOLD`` does
(nnU-Net's ``nnUNetTrainer``: its plans, data loading, patch sampling, augmentation, loss,
optimiser and schedule) and records, at every training iteration, nnU-Net's loss of each patch
of the batch. The trainer is a subclass of ``nnUNetTrainer`` that only adds bookkeeping around
three of its hooks (``_build_loss``, ``train_step``, the epoch hooks); it never copies the
loop, and the losses, gradients and weights of a run are those of ``nnUNetTrainer`` with the
same seed (``tests/nnunet/test_trainer.py`` checks it).

The score
---------
``nnunet-loss``: nnU-Net's training loss (soft Dice + cross-entropy, ``DC_and_CE_loss`` as
nnU-Net builds it: Dice without background, ``batch_dice`` of the plans), applied to each patch
on its own, at the highest resolution of the deep-supervision outputs, computed under
``torch.no_grad()`` from the network output and the target that the training step already has.
A case's score is the loss detector's (:class:`~noisyseg.detect.LossDetector`, whose code
computes it): per epoch the mean over the patches drawn from that case, then the mean of those
per-epoch means over the last ``window`` epochs (epochs that drew no patch of the case do not
count). Higher = more suspect. A patch's loss is taken before the optimiser step of its
iteration, as nnU-Net's logged ``train_loss`` is; nnU-Net's loss with Dice is at least -1, so
scores can be negative.

What is written
---------------
Into the fold folder, ``nnUNet_results/DatasetXXX/nnUNetTrainer__PLANS__CONFIG/fold_K/``, a
noisyseg run folder ``noisyseg/`` (:data:`SCORES_FOLDER`; kind ``nnunet``):
``scores.csv`` (one row per training case of the fold), ``metrics.json`` (the settings, the
patches per case, the time spent), ``detection.json`` when the raw dataset's
``noisyseg/manifest.csv`` (``noisyseg corrupt``) says which cases were corrupted, and
``run.json``. ``state.json`` beside it holds the detector's state at nnU-Net's last checkpoint,
so that ``--c`` continues the scores too.

The trainer's class is named ``nnUNetTrainer`` (nnU-Net names the results folder and the
checkpoints' ``trainer_name`` after the class): what it trains is ``nnUNetTrainer``'s model,
so ``nnUNetv2_predict``, ``nnUNetv2_find_best_configuration`` and ``noisyseg rank --probs``
use the folder as a default nnU-Net training.

nnunetv2 is imported inside functions only: noisyseg imports without the ``nnunet`` extra.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import torch

from noisyseg.data.dataset import read_corrupted
from noisyseg.detect import LossDetector, check_flag_rule, detection_metrics, flag
from noisyseg.errors import ConfigError, DataError
from noisyseg.run.folder import (
    read_numbers,
    read_run_json,
    read_table,
    write_detection,
    write_record,
    write_run_json,
    write_table,
)
from noisyseg.run.tables import score_table

__all__ = ["NNUNET_LOSS", "SCORES_FOLDER", "CaseLosses", "NnunetTraining", "make_trainer",
           "patch_losses", "read_fold_scores", "train_nnunet", "trainer_class",
           "write_fold_scores"]

log = logging.getLogger(__name__)

#: The detector's name in ``scores.csv`` (and the extra column of ``noisyseg rank``).
NNUNET_LOSS = "nnunet-loss"
#: The noisyseg run folder inside nnU-Net's fold folder.
SCORES_FOLDER = "noisyseg"
#: The devices nnU-Net trains on (``auto``: cuda when torch has it, else cpu).
DEVICES = ("auto", "cuda", "cpu", "mps")
_STATE = "state.json"
_CUDA = torch.device("cuda")  # nnUNetTrainer's default device


# ------------------------------------------------------------------ the score
def patch_losses(loss: torch.nn.Module, output: Any, target: Any) -> torch.Tensor:
    """nnU-Net's loss of each patch of a batch, at the highest resolution, without gradient.

    Parameters
    ----------
    loss : torch.nn.Module
        The trainer's loss (``nnUNetTrainer._build_loss()``): a ``DeepSupervisionWrapper``
        around ``DC_and_CE_loss`` (or the bare loss without deep supervision).
    output : (B, C, *S) float tensor, or a list of them (deep supervision, highest first)
        The network's logits.
    target : (B, 1, *S) tensor, or a list of them
        The labels (nnU-Net's targets, one per output).

    Returns
    -------
    (B,) float32 tensor on the output's device
        ``loss(output[i:i+1], target[i:i+1])`` of the inner loss for each patch ``i``.
    """
    inner = loss.loss if hasattr(loss, "weight_factors") and hasattr(loss, "loss") else loss
    out0 = output[0] if isinstance(output, list | tuple) else output
    tgt0 = target[0] if isinstance(target, list | tuple) else target
    with torch.no_grad():
        out0 = out0.detach()
        return torch.stack([torch.as_tensor(inner(out0[i:i + 1], tgt0[i:i + 1])).float()
                            for i in range(out0.shape[0])])


class CaseLosses:
    """Per-case training loss of nnU-Net's patches: the loss detector's score, per case id.

    A thin adapter: the scores are :class:`~noisyseg.detect.LossDetector`'s, fed with the
    case of each patch, so the definition (per-epoch mean, mean of the last ``window``
    epochs) is the one ``noisyseg audit --detector loss`` uses.

    Parameters
    ----------
    case_ids : sequence of str
        The training cases of the fold (the order of the scores).
    window : int
        Epochs averaged (the last ``window``).

    Raises
    ------
    ConfigError
        ``window`` < 1.
    """

    def __init__(self, case_ids: Sequence[str], *, window: int = 5) -> None:
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
            raise ConfigError(f"window: expected a whole number of epochs >= 1, got {window!r}")
        self.case_ids = tuple(str(c) for c in case_ids)
        self.window = int(window)
        self._pos = {c: i for i, c in enumerate(self.case_ids)}
        self._detector = LossDetector(window=self.window)
        n = len(self.case_ids)
        # LossDetector reads the dataset's size, the training indices and their ids
        self._detector.on_train_start(cast(Any, SimpleNamespace(
            train_idx=torch.arange(n), dataset=range(n), sample_ids=self.case_ids)))
        self.epoch_patches: list[np.ndarray] = []  # patches per case, one array per epoch
        self._count = np.zeros(n, dtype=np.int64)

    def epoch_start(self, epoch: int) -> None:
        """Start epoch ``epoch`` (0-based)."""
        self._detector.on_epoch_start(cast(Any, None), epoch)
        self._count = np.zeros(len(self.case_ids), dtype=np.int64)

    def add(self, keys: Sequence[str], losses: torch.Tensor | np.ndarray) -> None:
        """Record the ``(B,)`` losses of one batch's patches, drawn from cases ``keys``.

        Raises
        ------
        DataError
            A key that is not a training case of the fold.
        """
        try:
            pos = np.array([self._pos[str(k)] for k in keys], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"keys: nnU-Net drew a patch of case {exc.args[0]!r}, which is not "
                            f"a training case of the fold") from None
        values = torch.as_tensor(np.asarray(losses, dtype=np.float64)).reshape(-1)
        self._detector.on_batch_end(cast(Any, None), cast(Any, SimpleNamespace(
            indices=pos, losses=values)))
        np.add.at(self._count, pos, 1)

    def epoch_end(self, epoch: int) -> None:
        """End epoch ``epoch``: its per-case means join the window."""
        self._detector.on_epoch_end(cast(Any, None), epoch, {})
        self.epoch_patches.append(self._count.copy())

    @property
    def epochs(self) -> int:
        """Epochs recorded."""
        return len(self.epoch_patches)

    def scores(self) -> np.ndarray:
        """(N,) float64 scores of :attr:`case_ids` (0 for a case no patch of the window came
        from, as the loss detector does); zeros before the first epoch ends."""
        s = self._detector.scores()
        return np.zeros(len(self.case_ids)) if s is None else np.asarray(s, dtype=np.float64)

    def window_patches(self) -> np.ndarray:
        """(N,) int64 patches per case in the scoring window."""
        if not self.epoch_patches:
            return np.zeros(len(self.case_ids), dtype=np.int64)
        return np.sum(self.epoch_patches[-self.window:], axis=0)

    def state_dict(self) -> dict[str, Any]:
        """What a continued training needs: the window's per-epoch means and counts."""
        d = self._detector
        return {"case_ids": list(self.case_ids), "window": self.window,
                "epoch_losses": [e.tolist() for e in d.epoch_losses[-self.window:]],
                "epoch_patches": [e.tolist() for e in self.epoch_patches[-self.window:]],
                "epochs": self.epochs, "history": d.state_dict()["history"][-1:]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; DataError when it is another fold's (other cases)."""
        if list(state.get("case_ids", [])) != list(self.case_ids):
            raise DataError("state: the saved detector state is for other training cases "
                            "(another split?)")
        self._detector.epoch_losses = [np.asarray(e, dtype=np.float64)
                                       for e in state["epoch_losses"]]
        self._detector.load_state_dict({"history": state["history"]})
        self.epoch_patches = [np.asarray(e, dtype=np.int64) for e in state["epoch_patches"]]


# ------------------------------------------------------------------ the trainer
@functools.cache
def trainer_class() -> type:
    """nnU-Net's ``nnUNetTrainer`` with the per-case loss recorded (see the module docstring).

    The class is named ``nnUNetTrainer``: its results folder, checkpoints and validation are
    those of nnU-Net's default trainer.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as Base

    class NoisysegTrainer(Base):  # type: ignore[misc, valid-type]
        """``nnUNetTrainer`` plus the per-case training loss (``self.case_losses``)."""

        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = _CUDA) -> None:
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.noisyseg_window = 5
            self.noisyseg_flag_rule = "mixture"
            self.noisyseg_flag_value: float | None = None
            self.noisyseg_seed: int | None = None
            self.noisyseg_truth: np.ndarray | None = None
            self.noisyseg_data = ""
            self.case_losses: CaseLosses | None = None
            self.record_seconds = 0.0  # time spent computing and storing the patch losses
            self._recording = False
            self._batch_losses: torch.Tensor | None = None
            self._pending_state: dict[str, Any] | None = None
            self._started = time.perf_counter()

        # the loss: nnU-Net's, returned unchanged; per-patch values on the side
        def _build_loss(self) -> Any:
            return _RecordingLoss(super()._build_loss(), self)

        def train_step(self, batch: dict) -> dict:
            self._recording, self._batch_losses = True, None
            try:
                out = super().train_step(batch)
            finally:
                self._recording = False
            t = time.perf_counter()
            if self.case_losses is not None and self._batch_losses is not None:
                self.case_losses.add(list(batch["keys"]), self._batch_losses.cpu().numpy())
            self.record_seconds += time.perf_counter() - t
            return out

        def on_train_start(self) -> None:
            super().on_train_start()
            tr_keys, val_keys = self.do_split()
            self.case_losses = CaseLosses(sorted(map(str, tr_keys)), window=self.noisyseg_window)
            if self._pending_state is not None:
                self.case_losses.load_state_dict(self._pending_state)
            self.noisyseg_truth = _truth(self, self.case_losses.case_ids,
                                         sorted({*map(str, tr_keys), *map(str, val_keys)}))

        def on_train_epoch_start(self) -> None:
            super().on_train_epoch_start()
            if self.case_losses is not None:
                self.case_losses.epoch_start(self.current_epoch)

        def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
            super().on_train_epoch_end(train_outputs)
            if self.case_losses is not None:
                self.case_losses.epoch_end(self.current_epoch)

        def on_train_end(self) -> None:
            super().on_train_end()
            if self.local_rank == 0 and self.case_losses is not None:
                write_fold_scores(self.output_folder, self.case_losses.case_ids,
                                  self.case_losses.scores(), flag_rule=self.noisyseg_flag_rule,
                                  flag_value=self.noisyseg_flag_value, truth=self.noisyseg_truth,
                                  record=_trainer_record(self))

        def save_checkpoint(self, filename: str) -> None:
            super().save_checkpoint(filename)
            if (self.local_rank == 0 and not self.disable_checkpointing
                    and self.case_losses is not None):
                folder = Path(self.output_folder) / SCORES_FOLDER
                folder.mkdir(parents=True, exist_ok=True)
                (folder / _STATE).write_text(json.dumps(
                    {"checkpoint": Path(filename).name, **self.case_losses.state_dict()}))

        def load_checkpoint(self, filename_or_checkpoint: Any) -> None:
            super().load_checkpoint(filename_or_checkpoint)
            state = Path(self.output_folder) / SCORES_FOLDER / _STATE
            if state.is_file():
                self._pending_state = json.loads(state.read_text())
            else:
                log.warning("%s: no detector state saved; nnunet-loss starts again at epoch %d",
                            state, self.current_epoch)

    NoisysegTrainer.__name__ = NoisysegTrainer.__qualname__ = "nnUNetTrainer"
    return NoisysegTrainer


class _RecordingLoss(torch.nn.Module):
    """nnU-Net's loss, unchanged; during a training step also the loss of each patch."""

    def __init__(self, loss: torch.nn.Module, trainer: Any) -> None:
        super().__init__()
        self.inner = loss
        object.__setattr__(self, "_trainer", trainer)  # not a submodule

    def forward(self, output: Any, target: Any) -> torch.Tensor:
        result = self.inner(output, target)
        tr = self._trainer
        if tr._recording:
            t = time.perf_counter()
            tr._batch_losses = patch_losses(self.inner, output, target)
            tr.record_seconds += time.perf_counter() - t
        return result


def _truth(trainer: Any, train_ids: Sequence[str], all_ids: list[str]) -> np.ndarray | None:
    """Which training cases ``noisyseg corrupt`` corrupted, from the raw dataset's
    ``noisyseg/manifest.csv`` when there is one (None otherwise)."""
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        return None
    records = Path(raw) / trainer.plans_manager.dataset_name / "noisyseg"
    if not (records / "manifest.csv").is_file():
        return None
    truth = read_corrupted(all_ids, records)
    if truth is None:
        return None
    pos = {c: i for i, c in enumerate(all_ids)}
    return truth[[pos[c] for c in train_ids]]


# ------------------------------------------------------------------ the run folder
def write_fold_scores(fold_folder: str | Path, case_ids: Sequence[str], scores: np.ndarray, *,
                      flag_rule: str = "mixture", flag_value: float | None = None,
                      truth: np.ndarray | None = None,
                      record: dict[str, Any] | None = None) -> Path:
    """Write per-case ``nnunet-loss`` scores as the noisyseg run folder ``fold_folder/noisyseg``.

    Parameters
    ----------
    fold_folder : path
        nnU-Net's ``fold_K`` folder.
    case_ids : sequence of str
        The fold's training cases.
    scores : (N,) float ndarray
        Their scores, higher = more suspect.
    flag_rule, flag_value
        :func:`~noisyseg.detect.flag`'s rule.
    truth : (N,) bool ndarray, optional
        Which cases carry simulated errors (adds ``detection.json``).
    record : dict, optional
        The settings and measurements for ``metrics.json`` (its ``data`` goes to
        ``run.json``).

    Returns
    -------
    Path
        The folder; an earlier one is replaced (its ``state.json`` kept).

    Raises
    ------
    ConfigError
        A bad flag rule.
    """
    case_ids = tuple(str(c) for c in case_ids)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(case_ids),):
        raise ValueError(f"scores: expected shape ({len(case_ids)},), got {scores.shape}")
    folder = Path(fold_folder) / SCORES_FOLDER
    tmp = folder.with_name(SCORES_FOLDER + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    flags = flag(scores, flag_rule, value=flag_value)
    write_table(tmp, "scores.csv", score_table(case_ids, {NNUNET_LOSS: scores},
                                               {NNUNET_LOSS: flags}, truth))
    detection = {}
    if truth is not None:
        detection = {NNUNET_LOSS: detection_metrics(scores, flags, truth).to_dict()}
        write_detection(tmp, flag_rule=flag_rule, flag_value=flag_value, detectors=detection)
    rec = dict(record or {})
    data = str(rec.get("data", ""))
    rec.update({"data": data, "data_resolved": str(rec.get("data_resolved", data)),
                "detector": NNUNET_LOSS, "detectors": [NNUNET_LOSS], "n_cases": len(case_ids),
                "flag_rule": flag_rule, "flag_value": flag_value,
                "n_flagged": {NNUNET_LOSS: int(flags.sum())}, "truth_known": truth is not None,
                "detection": detection})
    write_record(tmp, "metrics.json", rec)
    if (folder / _STATE).is_file():  # the checkpoint state stays beside the scores
        shutil.copy2(folder / _STATE, tmp / _STATE)
    write_run_json(tmp, "nnunet", data=data)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _trainer_record(trainer: Any) -> dict[str, Any]:
    """``metrics.json`` of a trainer's run: its dataset, settings, patches and times."""
    cl: CaseLosses = trainer.case_losses
    patches = cl.window_patches()
    return {
        "data": trainer.noisyseg_data, "dataset": trainer.plans_manager.dataset_name,
        "plans": trainer.plans_manager.plans_name, "configuration": trainer.configuration_name,
        "fold": trainer.fold, "trainer": "nnUNetTrainer",
        "nnunet_folder": str(trainer.output_folder),
        "score": "nnU-Net's DC_and_CE loss of each patch at the highest resolution; per case "
                 "the mean of its per-epoch means over the last `window` epochs",
        "window": cl.window, "epochs": cl.epochs, "num_epochs": trainer.num_epochs,
        "iterations_per_epoch": trainer.num_iterations_per_epoch,
        "batch_size": trainer.batch_size,
        "patch_size": [int(v) for v in trainer.configuration_manager.patch_size],
        "patches": dict(zip(cl.case_ids, patches.tolist(), strict=True)),
        "patches_in_window": int(patches.sum()),
        "unseen_in_window": [c for c, p in zip(cl.case_ids, patches, strict=True) if p == 0],
        "seed": trainer.noisyseg_seed, "device": str(trainer.device),
        "seconds": time.perf_counter() - trainer._started,
        "record_seconds": trainer.record_seconds,
    }


def read_fold_scores(fold_folder: str | Path) -> dict[str, float] | None:
    """The ``nnunet-loss`` score of each training case of an nnU-Net fold folder, from its
    ``noisyseg/`` run folder; None when the fold has none.

    Raises
    ------
    DataError
        A ``noisyseg/`` folder that is not a noisyseg nnU-Net run, or a bad ``scores.csv``.
    """
    folder = Path(fold_folder) / SCORES_FOLDER
    if not (folder / "run.json").is_file():
        return None
    info = read_run_json(folder)
    if info.kind != "nnunet":
        raise DataError(f"{folder}: run.json says kind {info.kind!r}, expected 'nnunet' "
                        f"(noisyseg nnunet train)")
    path = folder / "scores.csv"
    table = read_table(path, ("sample_id", "detector", "score"))
    table = table[table["detector"] == NNUNET_LOSS]
    if table.empty:
        raise DataError(f"{path}: no {NNUNET_LOSS} scores")
    if table["sample_id"].duplicated().any():
        raise DataError(f"{path}: case {table['sample_id'][table['sample_id'].duplicated()].iloc[0]!r}"
                        f" is scored twice")
    values = _finite_scores(path, table)
    return dict(zip(table["sample_id"].astype(str), values, strict=True))


def _finite_scores(path: Path, table: Any) -> list[float]:
    """The ``score`` column as finite floats; DataError naming the first bad cell."""
    s = read_numbers(path, table, "score")
    bad = ~np.isfinite(s.to_numpy())
    if bad.any():
        raise DataError(f"{path}: score {s.iloc[int(bad.argmax())]} of case "
                        f"{table['sample_id'].iloc[int(bad.argmax())]!r} is not finite")
    return [float(v) for v in s]


# ------------------------------------------------------------------ construction and run
def _resolve_dataset(dataset: str | int) -> str:
    """nnU-Net's dataset name for an id or a name; DataError when nnU-Net knows none, or
    several with that id."""
    from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets

    text = str(dataset).strip()
    if text.startswith("Dataset"):
        return text
    try:
        k = int(text)
    except ValueError:
        raise DataError(f"dataset: expected an nnU-Net dataset id (e.g. 3) or name "
                        f"(DatasetXXX_Name), got {dataset!r}") from None
    found = [str(c) for c in find_candidate_datasets(k)]
    if not found:
        raise DataError(f"dataset: no nnU-Net dataset with id {k} in nnUNet_preprocessed "
                        f"({os.environ.get('nnUNet_preprocessed')}), nnUNet_raw or "
                        f"nnUNet_results")
    if len(found) > 1:
        raise DataError(f"dataset: several nnU-Net datasets have id {k} ({', '.join(found)}); "
                        f"name one")
    return found[0]


def _check_env() -> None:
    for var in ("nnUNet_preprocessed", "nnUNet_results"):
        if not os.environ.get(var):
            raise ConfigError(f"{var}: not set (nnU-Net's folders; see nnU-Net's "
                              f"documentation/setting_up_paths.md)")


def _parse_fold(fold: int | str) -> int | str:
    if isinstance(fold, bool):
        raise ConfigError(f"fold: expected a whole number >= 0 or 'all', got {fold!r}")
    if isinstance(fold, str) and fold.strip() == "all":
        return "all"
    try:
        k = int(str(fold).strip())
    except ValueError:
        raise ConfigError(f"fold: expected a whole number >= 0 or 'all', got {fold!r}") from None
    if k < 0:
        raise ConfigError(f"fold: expected a whole number >= 0 or 'all', got {fold!r}")
    return k


def _positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
        raise ConfigError(f"{name}: expected a whole number >= 1, got {value!r}")


def make_trainer(dataset: str | int, configuration: str, fold: int | str, *,
                 plans: str = "nnUNetPlans", device: str = "auto", epochs: int | None = None,
                 iterations: int | None = None, val_iterations: int | None = None,
                 window: int = 5, flag_rule: str = "mixture", flag_value: float | None = None,
                 seed: int | None = None, continue_training: bool = False) -> Any:
    """Build nnU-Net's trainer with the per-case loss attached, as ``nnUNetv2_train`` does.

    Parameters
    ----------
    dataset : str or int
        nnU-Net dataset id or name (``3``, ``Dataset003_Liver``).
    configuration : str
        A configuration of the plans (``2d``, ``3d_fullres``, ...).
    fold : int or 'all'
    plans : str
        Plans identifier (``nnUNetPlans``, ``nnUNetResEncUNetMPlans``, ...).
    device : {'auto', 'cuda', 'cpu', 'mps'}
        ``auto``: cuda when torch has it, else cpu.
    epochs, iterations, val_iterations : int, optional
        Override nnU-Net's 1000 epochs, 250 training and 50 validation iterations per epoch
        (short schedules for tests; default: nnU-Net's).
    window : int
        Epochs of the score (the last ``window``).
    flag_rule, flag_value
        How the scores become flags (:func:`~noisyseg.detect.flag`).
    seed : int, optional
        Seeds Python's, NumPy's and torch's global generators before the trainer is built
        (nnU-Net draws from them); with ``nnUNet_n_proc_DA=0`` a CPU run is then repeatable.
    continue_training : bool
        As ``nnUNetv2_train --c`` (the plans' ``continue_training``).

    Raises
    ------
    ConfigError
        nnU-Net's folders not set, bad fold, configuration, device, schedule or flag rule.
    DataError
        A dataset nnU-Net does not know, or one not preprocessed with ``plans``.
    """
    _check_env()
    k = _parse_fold(fold)
    if device not in DEVICES:
        raise ConfigError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda is not available here (torch "
                          f"{torch.__version__}); use --device cpu")
    for name, value in (("epochs", epochs), ("iterations", iterations),
                        ("val_iterations", val_iterations), ("window", window)):
        _positive(name, value)
    check_flag_rule(flag_rule, flag_value)
    name = _resolve_dataset(dataset)
    base = Path(os.environ["nnUNet_preprocessed"]) / name
    plans_file = base / f"{plans}.json"
    if not base.is_dir():
        raise DataError(f"dataset: {base} does not exist (run nnUNetv2_plan_and_preprocess "
                        f"-d {name} first)")
    if not plans_file.is_file():
        raise DataError(f"plans: {plans_file} does not exist (run nnUNetv2_plan_and_preprocess "
                        f"-d {name} first, or name the plans with -p)")
    plans_dict = json.loads(plans_file.read_text())
    configs = sorted(plans_dict.get("configurations", {}))
    if configuration not in configs:
        raise ConfigError(f"configuration: {plans_file.name} has no configuration "
                          f"{configuration!r} (has {', '.join(configs)})")
    plans_dict["continue_training"] = continue_training
    dataset_json = json.loads((base / "dataset.json").read_text())
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    cls = trainer_class()
    trainer = cls(plans=plans_dict, configuration=configuration, fold=k,
                  dataset_json=dataset_json, device=torch.device(device))
    if epochs is not None:
        trainer.num_epochs = int(epochs)
    if iterations is not None:
        trainer.num_iterations_per_epoch = int(iterations)
    if val_iterations is not None:
        trainer.num_val_iterations_per_epoch = int(val_iterations)
    trainer.noisyseg_window = int(window)
    trainer.noisyseg_flag_rule, trainer.noisyseg_flag_value = flag_rule, flag_value
    trainer.noisyseg_seed = seed
    raw = os.environ.get("nnUNet_raw")
    trainer.noisyseg_data = (f"nnunet:{Path(raw) / name}" if raw and (Path(raw) / name).is_dir()
                             else name)
    return trainer


@dataclass(frozen=True)
class NnunetTraining:
    """What :func:`train_nnunet` wrote.

    Attributes
    ----------
    fold_folder : Path
        nnU-Net's ``nnUNet_results/DatasetXXX/nnUNetTrainer__PLANS__CONFIG/fold_K``.
    scores_folder : Path
        ``fold_folder/noisyseg`` (a noisyseg run folder, kind ``nnunet``).
    case_ids : tuple of str
        The fold's training cases.
    scores : (N,) float64 ndarray
        ``nnunet-loss`` of each, higher = more suspect.
    flags : (N,) bool ndarray
    record : dict
        ``metrics.json``.
    """

    fold_folder: Path
    scores_folder: Path
    case_ids: tuple[str, ...]
    scores: np.ndarray
    flags: np.ndarray
    record: dict[str, Any]

    def top(self, n: int = 5) -> list[str]:
        """The ``n`` most suspect cases, worst first."""
        return [self.case_ids[i] for i in np.argsort(-self.scores, kind="stable")[:n]]


def train_nnunet(dataset: str | int, configuration: str, fold: int | str, *,
                 plans: str = "nnUNetPlans", device: str = "auto",
                 pretrained_weights: str | Path | None = None, npz: bool = False,
                 continue_training: bool = False, validation: bool = True, val_best: bool = False,
                 disable_checkpointing: bool = False, epochs: int | None = None,
                 iterations: int | None = None, val_iterations: int | None = None,
                 window: int = 5, flag_rule: str = "mixture", flag_value: float | None = None,
                 seed: int | None = None) -> NnunetTraining:
    """Train one nnU-Net fold with the per-case training loss recorded; write its scores.

    The steps of nnU-Net's ``run_training``: build the trainer (:func:`make_trainer`), load
    pretrained weights or the checkpoint to continue from (nnU-Net's
    ``maybe_load_checkpoint``), ``run_training()``, then the validation of the fold's
    held-out cases (``perform_actual_validation(npz)``; ``npz`` writes the probabilities that
    ``noisyseg rank`` reads). See :func:`make_trainer` for the other options.

    Example (with nnU-Net's folders set and dataset 3 preprocessed)::

        run = train_nnunet(3, "2d", 0, device="cuda", npz=True)
        run.top(5)  # the five training cases with the highest loss

    Raises
    ------
    ConfigError
        As :func:`make_trainer`; ``continue_training`` with ``pretrained_weights``;
        ``val_best`` with ``disable_checkpointing``.
    DataError
        As :func:`make_trainer`; a ``pretrained_weights`` file that does not exist.
    """
    if continue_training and pretrained_weights is not None:
        raise ConfigError("pretrained_weights: cannot both continue a training and start from "
                          "pretrained weights")
    if val_best and disable_checkpointing:
        raise ConfigError("val_best: needs checkpoint_best.pth, which --disable-checkpointing "
                          "does not write")
    if pretrained_weights is not None and not Path(pretrained_weights).is_file():
        raise DataError(f"pretrained_weights: {pretrained_weights} is not a file")
    trainer = make_trainer(dataset, configuration, fold, plans=plans, device=device,
                           epochs=epochs, iterations=iterations, val_iterations=val_iterations,
                           window=window, flag_rule=flag_rule, flag_value=flag_value, seed=seed,
                           continue_training=continue_training)
    from nnunetv2.run.run_training import maybe_load_checkpoint

    trainer.disable_checkpointing = disable_checkpointing
    maybe_load_checkpoint(trainer, continue_training, False,
                          None if pretrained_weights is None else str(pretrained_weights))
    if trainer.device.type == "cuda":  # as nnUNetv2_train
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    trainer.run_training()
    if validation:
        if val_best:
            trainer.load_checkpoint(str(Path(trainer.output_folder) / "checkpoint_best.pth"))
        trainer.perform_actual_validation(npz)
    folder = Path(trainer.output_folder) / SCORES_FOLDER
    record = json.loads((folder / "metrics.json").read_text())
    cl = trainer.case_losses
    scores = cl.scores()
    return NnunetTraining(fold_folder=Path(trainer.output_folder), scores_folder=folder,
                          case_ids=cl.case_ids, scores=scores,
                          flags=flag(scores, flag_rule, value=flag_value), record=record)
