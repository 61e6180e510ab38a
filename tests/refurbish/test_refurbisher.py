import pytest
import torch

from noisyseg.detect import LossDetector
from noisyseg.errors import ConfigError
from noisyseg.refurbish import RefurbishConfig, Refurbisher
from noisyseg.train import TrainConfig, Trainer


def test_pseudo_labels_from_the_best_weights_not_the_current_ones(echo_small):
    trainer = Trainer(TrainConfig(epochs=2, batch_size=8, threads=1,
                                  model_options={"width": 4}), echo_small)
    trainer.fit()  # ends with the best weights loaded
    idx = trainer.train_idx.numpy()[:4]
    best = trainer.predict_logits(idx)
    with torch.no_grad():  # the current weights drift away from the best ones
        for p in trainer.model.parameters():
            p.add_(0.5)
    current = trainer.predict_logits(idx)
    assert not torch.allclose(best, current)
    best_cfg = RefurbishConfig(pseudo_from="best")
    from_best = Refurbisher(LossDetector(), best_cfg)._pseudo_logits(trainer, idx, 1)
    from_current = Refurbisher(LossDetector())._pseudo_logits(trainer, idx, 1)
    torch.testing.assert_close(from_best, best)
    torch.testing.assert_close(from_current, current)
    # and the trainer keeps training from its current weights
    torch.testing.assert_close(trainer.predict_logits(idx), current)


def test_pseudo_from_is_validated():
    with pytest.raises(ConfigError, match="pseudo_from"):
        RefurbishConfig(pseudo_from="oracle")


def test_calibrated_pseudo_labels_use_the_validation_offsets(echo_small):
    import numpy as np

    from noisyseg.detect import apply_bias, validation_bias

    trainer = Trainer(TrainConfig(epochs=1, batch_size=8, threads=1,
                                  model_options={"width": 4}), echo_small)
    trainer.fit()
    det = LossDetector()
    n = len(trainer.train_idx)
    det.history = [(1, np.arange(n, dtype=float))]  # the upper half is "suspect"
    r = Refurbisher(det, RefurbishConfig(warmup=1, every=1, calibrate=True), rule="top", value=0.5)
    r.on_train_start(trainer)
    r.on_epoch_end(trainer, 0, {})
    idx = trainer.train_idx.numpy()[r.flagged]
    assert r.flagged.sum() == n // 2 and r.flagged[-1] and not r.flagged[0]
    bias = validation_bias(trainer)
    assert r.biases == [{"epoch": 1, "bias": bias.tolist()}]
    logits = trainer.predict_logits(idx)
    # the offsets matter here, so plain pseudo-labels would fail the next assertion
    assert (apply_bias(logits, bias) != apply_bias(logits, None)).any()
    np.testing.assert_array_equal(trainer.train_targets[idx].numpy(), apply_bias(logits, bias))
    # samples not flagged keep their given masks
    rest = trainer.train_idx.numpy()[~r.flagged]
    np.testing.assert_array_equal(trainer.train_targets[rest].numpy(), echo_small.masks[rest])


def test_refurbish_mode_is_validated():
    with pytest.raises(ConfigError, match="mode: expected one of replace, ignore, drop"):
        RefurbishConfig(mode="erase")


def _flag_upper_half(trainer, **kw):
    import numpy as np

    det = LossDetector()
    n = len(trainer.train_idx)
    det.history = [(1, np.arange(n, dtype=float))]  # the upper half is "suspect"
    r = Refurbisher(det, RefurbishConfig(warmup=1, every=1, **kw), rule="top", value=0.5)
    r.on_train_start(trainer)
    return r


def test_drop_leaves_flagged_masks_out_of_the_loss_and_exports_them_unchanged(echo_small):
    import numpy as np

    from noisyseg.train import IGNORE_INDEX

    trainer = Trainer(TrainConfig(epochs=1, batch_size=8, threads=1,
                                  model_options={"width": 4}), echo_small)
    r = _flag_upper_half(trainer, mode="drop")
    r.on_epoch_end(trainer, 0, {})
    r.on_epoch_end(trainer, 1, {})  # re-flagging the same samples drops nothing new
    idx = trainer.train_idx.numpy()
    assert (trainer.train_targets[idx[r.flagged]] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(trainer.train_targets[idx[~r.flagged]].numpy(),
                                  echo_small.masks[idx[~r.flagged]])
    assert [e["action"] for e in r.events] == ["dropped"] * int(r.flagged.sum())
    np.testing.assert_array_equal(r.final_masks(trainer), echo_small.masks[idx])
    trainer.fit()  # trains on the half that is left
    assert np.isfinite(trainer.history[-1]["train_loss"])


def test_ignore_leaves_unsure_pixels_out_and_exports_the_model_label(echo_small):
    import numpy as np

    from noisyseg.train import IGNORE_INDEX

    trainer = Trainer(TrainConfig(epochs=1, batch_size=8, threads=1,
                                  model_options={"width": 4}), echo_small)
    trainer.fit()
    # a threshold the model's top probabilities straddle (the median)
    conf = float(torch.softmax(trainer.predict_logits(trainer.train_idx), 1).max(1).values.median())
    r = _flag_upper_half(trainer, mode="ignore", confidence=conf)
    r.on_epoch_end(trainer, 0, {})
    idx = trainer.train_idx.numpy()[r.flagged]
    probs = torch.softmax(trainer.predict_logits(idx), dim=1)
    top, pred = probs.max(dim=1)
    unsure = (top < conf).numpy()
    assert unsure.any() and (~unsure).any()
    targets = trainer.train_targets[idx].numpy()
    np.testing.assert_array_equal(targets, np.where(unsure, IGNORE_INDEX, pred.numpy()))
    final = r.final_masks(trainer)
    np.testing.assert_array_equal(final[r.flagged], pred.numpy())
    np.testing.assert_array_equal(final[~r.flagged],
                                  echo_small.masks[trainer.train_idx.numpy()[~r.flagged]])
