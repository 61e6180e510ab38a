"""Refurbishment: replace flagged training masks by the model's own predictions."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch

from noisyseg.detect import (
    Detector,
    add_class_offsets,
    boundary_band,
    check_flag_rule,
    flag,
    validation_bias,
)
from noisyseg.refurbish.config import RefurbishConfig
from noisyseg.train import IGNORE_INDEX, Callback, Trainer

__all__ = ["Refurbisher", "pseudo_labels"]

log = logging.getLogger(__name__)


def pseudo_labels(probs: torch.Tensor | np.ndarray, given: np.ndarray, *,
                  confidence: float = 0.0, ignore: bool = False) -> np.ndarray:
    """Pseudo-labels from class probabilities; the given label (or none) where unsure.

    Parameters
    ----------
    probs : (N, C, H, W) float
        Softmax probabilities.
    given : (N, H, W) integer ndarray
        The given (possibly wrong) labels.
    confidence : float
        A pixel takes the predicted label only where its top probability is at least this;
        elsewhere it keeps the given label. 0 replaces every pixel.
    ignore : bool
        Unsure pixels get :data:`noisyseg.train.IGNORE_INDEX` (left out of the training
        loss) instead of the given label.

    Returns
    -------
    (N, H, W) uint8 ndarray
    """
    p = torch.as_tensor(probs)
    top, pred = p.max(dim=1)
    unsure = IGNORE_INDEX if ignore else np.asarray(given)
    out = np.where(top.numpy() >= confidence, pred.numpy(), unsure)
    return out.astype(np.uint8)


class Refurbisher(Callback):
    """Flag suspects with a detector's scores and train on pseudo-labels for them.

    From epoch ``warmup`` on, every ``every`` epochs: flag with ``rule`` (see
    :func:`noisyseg.detect.flag`), replace the flagged samples' training masks by the current
    model's prediction (only where it is at least ``confidence`` sure), and, with
    ``unflag``, give samples no longer flagged their given masks back. Only training
    samples are ever touched. ``events`` records every replacement.

    ``mode`` says what the unsure pixels train on: the given label (``replace``), nothing
    (``ignore``: left out of the loss), or, with ``drop``, no pixel of a flagged mask is
    trained on (the sample is removed from the loss; no pseudo-label is made); with
    ``boundary`` a flagged mask keeps its given labels except within ``config.band`` voxels
    of its label boundaries, which leave the loss (no pseudo-label either).

    Parameters
    ----------
    detector : Detector
        Must come before this callback in the trainer's list.
    config : RefurbishConfig, optional
        When and how (warm-up, period, confidence, mode, ...); defaults when omitted.
    rule : {'mixture', 'top', 'percentile'}
    value : float, optional
        The fraction for ``top`` or the percentile for ``percentile``.
    seed : int
        Seed of the mixture flag rule.
    """

    def __init__(self, detector: Detector, config: RefurbishConfig | None = None, *,
                 rule: str = "mixture", value: float | None = None, seed: int = 0) -> None:
        check_flag_rule(rule, value)
        self.config = config = config or RefurbishConfig()
        self.mode, self.pseudo_from, self.calibrate = config.mode, config.pseudo_from, config.calibrate
        self.warmup, self.every = config.warmup, config.every
        self.confidence, self.unflag = config.confidence, config.unflag
        self.biases: list[dict[str, Any]] = []
        self.detector, self.rule, self.value = detector, rule, value
        self.seed = seed
        self.flagged = np.empty(0, dtype=bool)
        self.events: list[dict[str, Any]] = []

    def on_train_start(self, trainer: Trainer) -> None:
        self.flagged = np.zeros(len(trainer.train_idx), dtype=bool)
        self._given = trainer.dataset.masks[trainer.train_idx.numpy()]
        self._guess = self._given.copy()  # the model's full label map where it was unsure

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        e = epoch + 1
        if e < self.warmup or (e - self.warmup) % self.every:
            return
        scores = self.detector.scores()
        if scores is None:
            return
        flags = flag(scores, self.rule, value=self.value, seed=self.seed)
        if not self.unflag:
            flags |= self.flagged
        idx = trainer.train_idx.numpy()
        new = np.flatnonzero(flags)
        if self.mode in ("drop", "boundary"):  # no pseudo-label: only the newly flagged change
            fresh = new[~self.flagged[new]]
            given = self._given[fresh]
            if self.mode == "drop":
                masks = np.full_like(given, IGNORE_INDEX)
            else:
                masks = np.where(boundary_band(given, self.config.band), np.uint8(IGNORE_INDEX),
                                 given).astype(np.uint8)
            trainer.replace_masks(idx[fresh], masks)
            action = "dropped" if self.mode == "drop" else "boundary left out"
            self.events += [{"epoch": e, "sample_id": trainer.sample_ids[idx[i]],
                             "action": action} for i in fresh]
        elif new.size:
            probs = torch.softmax(self._pseudo_logits(trainer, idx[new], e), dim=1)
            trainer.replace_masks(idx[new], pseudo_labels(
                probs, self._given[new], confidence=self.confidence, ignore=self.mode == "ignore"))
            self._guess[new] = probs.argmax(dim=1).numpy()
            self.events += [{"epoch": e, "sample_id": trainer.sample_ids[idx[i]],
                             "action": "refurbished"} for i in new]
        back = np.flatnonzero(self.flagged & ~flags)
        if back.size:
            trainer.replace_masks(idx[back], self._given[back])
            self._guess[back] = self._given[back]
            self.events += [{"epoch": e, "sample_id": trainer.sample_ids[idx[i]],
                             "action": "restored"} for i in back]
        self.flagged = flags
        logs["n_flagged"] = float(flags.sum())
        log.info("epoch %d: %d samples refurbished", e, int(flags.sum()))

    def final_masks(self, trainer: Trainer) -> np.ndarray:
        """The training masks of the training split as they end: refurbished where flagged;
        pixels left out of the loss (``ignore``) hold the model's label for them, and
        dropped masks (and boundary bands) their given label. (M, H, W) uint8 in the order
        of ``train_idx``."""
        masks = trainer.train_targets[trainer.train_idx].numpy()
        return np.where(masks == IGNORE_INDEX, self._guess, masks).astype(np.uint8)

    def _pseudo_logits(self, trainer: Trainer, indices: np.ndarray, epoch: int) -> torch.Tensor:
        """Logits that make the pseudo-labels: from the chosen weights (one swap of the
        weights when they are the best ones), plus the validation offsets when calibrating."""
        restore = None
        if self.pseudo_from == "best" and trainer.best_state is not None:
            restore = copy.deepcopy(trainer.model.state_dict())
            trainer.model.load_state_dict(trainer.best_state)
        try:
            logits = trainer.predict_logits(indices)
            if self.calibrate:
                bias = validation_bias(trainer)
                self.biases.append({"epoch": epoch, "bias": bias.tolist()})
                logits = add_class_offsets(logits, bias)
            return logits
        finally:
            if restore is not None:
                trainer.model.load_state_dict(restore)

    def state_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged.tolist(), "events": self.events, "biases": self.biases}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.flagged = np.asarray(state["flagged"], dtype=bool)
        self.events = list(state["events"])
        self.biases = list(state.get("biases", []))
