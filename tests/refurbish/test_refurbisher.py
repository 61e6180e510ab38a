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
    with pytest.raises(ConfigError, match="mode: expected one of replace, ignore, drop, boundary"):
        RefurbishConfig(mode="erase")
    with pytest.raises(ConfigError, match="^band: must be >= 1, got 0"):
        RefurbishConfig(mode="boundary", band=0)


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


def test_boundary_leaves_the_band_around_flagged_boundaries_out_of_the_loss():
    import numpy as np

    from noisyseg.data import SegDataset
    from noisyseg.train import IGNORE_INDEX

    # four 16 x 16 masks: a 4 x 4 square of class 1 at rows/cols 4..7
    masks = np.zeros((4, 16, 16), np.uint8)
    masks[:, 4:8, 4:8] = 1
    ds = SegDataset(np.random.default_rng(0).normal(size=masks.shape).astype(np.float32),
                    masks, ("background", "thing"), tuple(f"s{i}" for i in range(4)),
                    np.array(["train", "train", "val", "test"]))
    trainer = Trainer(TrainConfig(epochs=1, batch_size=2, threads=1,
                                  model_options={"width": 2, "depth": 1}), ds)
    r = _flag_upper_half(trainer, mode="boundary", band=1)
    r.on_epoch_end(trainer, 0, {})
    (flagged,) = np.flatnonzero(r.flagged)
    target = trainer.train_targets[trainer.train_idx[flagged]].numpy()
    # boundary voxels: the first voxel past each label change (row 4 and row 8 in cols 4..7,
    # col 4 and col 8 in rows 4..7); band 1 adds their 3 x 3 neighbourhoods
    band = np.zeros((16, 16), bool)
    band[3:6, 3:9] = band[7:10, 3:9] = band[3:9, 3:6] = band[3:9, 7:10] = True
    expected = np.where(band, IGNORE_INDEX, masks[0])
    assert not band[6, 6] and expected[6, 6] == 1 and not band[9, 9]  # what is kept
    np.testing.assert_array_equal(target, expected)
    other = trainer.train_targets[trainer.train_idx[1 - flagged]].numpy()
    np.testing.assert_array_equal(other, masks[0])  # the unflagged mask is untouched
    assert [e["action"] for e in r.events] == ["boundary left out"]
    np.testing.assert_array_equal(r.final_masks(trainer), masks[:2])  # labels unchanged
    trainer.fit()
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
