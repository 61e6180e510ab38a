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
    with pytest.raises(ConfigError, match="mode: expected one of replace, ignore, drop, boundary, debias"):
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

    from noisyseg.data import Samples
    from noisyseg.train import IGNORE_INDEX

    # four 16 x 16 masks: a 4 x 4 square of class 1 at rows/cols 4..7
    masks = np.zeros((4, 16, 16), np.uint8)
    masks[:, 4:8, 4:8] = 1
    ds = Samples(np.random.default_rng(0).normal(size=masks.shape).astype(np.float32),
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


def _disc_dataset(n=8, size=32, radius=7.0):
    """Discs of class 1 (radius ``radius`` px, centres moving), every second one in the
    training split; training masks 0, 2, 4 drawn 2 px too large."""
    import numpy as np

    from noisyseg.corrupt import grow_structures
    from noisyseg.data import Samples

    yy, xx = np.mgrid[:size, :size]
    truth = np.stack([(((yy - 14 - i % 3) ** 2 + (xx - 15 - i % 2) ** 2) <= radius ** 2)
                      for i in range(n)]).astype(np.uint8)
    split = np.array(["train", "val"] * (n // 2))
    masks = truth.copy()
    for i in (0, 2, 4):
        masks[i] = grow_structures(truth[i], 2.0)
    ds = Samples(np.random.default_rng(0).normal(size=truth.shape).astype(np.float32),
                    masks, ("background", "organ"), tuple(f"s{i}" for i in range(n)), split,
                    clean_masks=truth, corrupted=np.any(masks != truth, axis=(1, 2)))
    return ds, truth


def test_systematic_offset_cancels_the_models_own_bias():
    import numpy as np

    from noisyseg.corrupt import grow_structures
    from noisyseg.refurbish import debias_masks, systematic_offset

    ds, truth = _disc_dataset()
    flagged, trusted = [0, 2, 4], [1, 3, 5, 7]
    # a model that learnt half the bias predicts every structure 1 px too large
    pred = np.stack([grow_structures(t, 1.0) for t in truth])
    off = systematic_offset(ds.masks[flagged], pred[flagged], truth[trusted], pred[trusted],
                            n_classes=3)
    assert off[0] == 0 and off[2] == 0  # background; class 2 is in neither set
    assert off[1] == pytest.approx(2.0, abs=0.25)  # + 1 px against the model, - (-1 px)
    # spacing scales it: pixels of 0.5 mm
    sp = [(0.5, 0.5)] * 4
    off_mm = systematic_offset(ds.masks[flagged], pred[flagged], truth[trusted], pred[trusted],
                               n_classes=3, spacing=sp[:3], trusted_spacing=sp)
    assert off_mm[1] == pytest.approx(off[1] / 2)
    fixed = debias_masks(ds.masks[flagged], off)
    assert (fixed != truth[flagged]).sum() <= 0.1 * (ds.masks[flagged] != truth[flagged]).sum()
    # an offset under half a voxel changes nothing
    np.testing.assert_array_equal(debias_masks(ds.masks[flagged], np.array([0, 0.49, 0])),
                                  ds.masks[flagged])


def test_debias_moves_the_flagged_masks_boundaries_and_records_the_offset(monkeypatch):
    import numpy as np

    from noisyseg.corrupt import grow_structures
    from noisyseg.evaluate import dice

    ds, truth = _disc_dataset()
    trainer = Trainer(TrainConfig(epochs=1, batch_size=2, threads=1,
                                  model_options={"width": 2, "depth": 1}), ds)
    biased = np.stack([grow_structures(t, 1.0) for t in truth])
    monkeypatch.setattr(trainer, "predict", lambda idx: biased[np.asarray(idx)])
    det = LossDetector()
    idx = trainer.train_idx.numpy()  # samples 0, 2, 4, 6
    det.history = [(1, np.array([3.0, 1.0, 2.0, 0.0]))]  # 0 and 4 are the top half
    r = Refurbisher(det, RefurbishConfig(warmup=1, every=1, mode="debias"), rule="top", value=0.5,
                    spacing=lambda i: (0.5, 0.5))
    r.on_train_start(trainer)
    r.on_epoch_end(trainer, 0, {})
    assert list(idx[r.flagged]) == [0, 4]
    (rec,) = r.offsets
    assert rec["epoch"] == 1 and rec["offset_mm"]["organ"] == pytest.approx(1.0, abs=0.15)
    targets = trainer.train_targets.numpy()
    for i in (0, 4):  # debiased: back near the truth, far better than the given mask
        assert dice(targets[i][None], truth[i][None], 2)[0] > 0.97 > dice(ds.masks[i][None],
                                                                          truth[i][None], 2)[0]
    for i in (2, 6):  # not flagged: untouched (2 keeps its error)
        np.testing.assert_array_equal(targets[i], ds.masks[i])
    assert [e["action"] for e in r.events] == ["debiased", "debiased"]
    np.testing.assert_array_equal(r.final_masks(trainer), targets[idx])
    assert r.state_dict()["offsets"] == r.offsets
    trainer.fit()
    assert np.isfinite(trainer.history[-1]["train_loss"])


def test_debias_needs_trusted_masks_and_no_calibration():
    import numpy as np

    ds, _ = _disc_dataset()
    ds = ds.subset(np.array([0, 2, 4, 6]))  # no validation split: nothing trusted
    trainer = Trainer(TrainConfig(epochs=1, batch_size=2, threads=1,
                                  model_options={"width": 2, "depth": 1}), ds)
    trainer.trusted_idx = np.zeros(0, np.int64)
    with pytest.raises(ConfigError, match="^mode: 'debias' measures offsets against masks known"):
        Refurbisher(LossDetector(), RefurbishConfig(mode="debias")).on_train_start(trainer)
    with pytest.raises(ConfigError, match="^calibrate: mode 'debias'"):
        RefurbishConfig(mode="debias", calibrate=True)


def test_a_structure_that_moved_only_because_its_neighbour_grew_is_left_alone():
    import numpy as np

    from noisyseg.corrupt import grow_structures
    from noisyseg.refurbish import debias_masks, systematic_offset

    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    truth = np.where(r <= 8, 1, np.where(r <= 13, 2, 0)).astype(np.uint8)  # cavity, ring
    given = grow_structures(truth, 2.0, classes=[1])  # the cavity eats into the ring
    ring_alone = systematic_offset(given[None], truth[None], truth[None], truth[None],
                                   n_classes=3)
    assert ring_alone[1] == pytest.approx(2.0, abs=0.3)
    assert ring_alone[2] == 0  # -0.79 px measured on the given masks; 0 once the cavity is back
    fixed = debias_masks(given[None], ring_alone)[0]
    assert (fixed != truth).sum() <= 0.15 * (given != truth).sum()
