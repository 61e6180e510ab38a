import numpy as np
import pytest

from noisyseg.corrupt import calibrate, corrupt_dataset, mean_dice_at
from noisyseg.errors import CalibrationError, ConfigError


@pytest.mark.parametrize("name,target", [("natural", 0.9), ("choppy", 0.85),
                                         ("random_flip", 0.9), ("boundary", 0.9),
                                         ("merge", 0.95)])
def test_calibration_hits_target_and_is_reproducible(echo_small, name, target):
    masks = echo_small.masks
    a = calibrate(name, masks, target, rng=np.random.default_rng(1))
    b = calibrate(name, masks, target, rng=np.random.default_rng(1))
    assert abs(a.achieved_dice - target) <= 0.005
    assert a.strength == b.strength and a.achieved_dice == b.achieved_dice
    # the reported Dice is what applying the strength with the same draws gives
    seeds = np.random.default_rng(1).integers(0, 2**63 - 1, size=len(masks)).tolist()
    assert mean_dice_at(name, masks, a.strength, seeds=seeds, n_classes=4) == a.achieved_dice


def test_unreachable_target_is_a_clear_error():
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[:, 4:12, 4:12] = 1
    with pytest.raises(CalibrationError, match="cannot go below"):
        calibrate("dilate", masks, 0.5, rng=np.random.default_rng(0), classes=(2,))  # absent
    with pytest.raises(ConfigError, match="target_dice"):
        calibrate("natural", masks, 1.5, rng=np.random.default_rng(0))


def test_corrupt_dataset_touches_only_the_chosen_training_fraction(echo_small):
    res = corrupt_dataset(echo_small, "natural", target_dice=0.9, fraction=0.5, seed=4)
    man = res.manifest
    train = man["split"] == "train"
    assert man.loc[~train, "corrupted"].sum() == 0
    assert man.loc[train, "corrupted"].sum() == round(0.5 * train.sum())
    ds = res.dataset
    untouched = ~man["corrupted"].to_numpy()
    np.testing.assert_array_equal(ds.masks[untouched], echo_small.masks[untouched])
    np.testing.assert_array_equal(ds.clean_masks, echo_small.masks)
    assert abs(man.loc[man["corrupted"], "dice_to_clean"].mean() - 0.9) <= 0.005
    again = corrupt_dataset(echo_small, "natural", target_dice=0.9, fraction=0.5, seed=4)
    np.testing.assert_array_equal(again.dataset.masks, ds.masks)


def test_corrupt_dataset_needs_exactly_one_of_strength_and_target(echo_small):
    with pytest.raises(ConfigError, match="exactly one"):
        corrupt_dataset(echo_small, "natural")
    with pytest.raises(ConfigError, match="fraction"):
        corrupt_dataset(echo_small, "natural", strength=1.0, fraction=1.5)
