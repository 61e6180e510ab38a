import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from monai.metrics import compute_dice
from monai.networks.utils import one_hot

from noisyseg.evaluate import dice, dice_per_class


def test_dice_hand_computed():
    a = np.array([[1, 1, 2, 0]])
    b = np.array([[1, 0, 2, 2]])
    # class 1: 2*1/(2+1); class 2: 2*1/(1+2)
    assert np.isclose(dice(a, b), 2 / 3)
    assert np.allclose(dice_per_class(a, b, 3), [[2 / 3, 2 / 3]])


def test_dice_ignores_classes_absent_from_both_and_empty_is_one():
    a = np.array([[0, 1], [0, 0]])
    assert dice(a, a, 4) == 1.0  # classes 2, 3 absent from both: not averaged
    z = np.zeros((3, 3), int)
    assert dice(z, z) == 1.0
    assert dice(np.zeros((2, 2), int), a) == 0.0  # class 1 only in one mask


@given(arrays(np.uint8, (2, 6, 7), elements=st.integers(0, 3)),
       arrays(np.uint8, (2, 6, 7), elements=st.integers(0, 3)))
def test_dice_matches_monai(a, b):
    ours = dice_per_class(a, b, 4)
    ta = one_hot(torch.as_tensor(a[:, None].astype(np.int64)), 4)
    tb = one_hot(torch.as_tensor(b[:, None].astype(np.int64)), 4)
    ref = compute_dice(ta, tb, include_background=False, ignore_empty=True).numpy()
    # MONAI's ignore_empty is NaN whenever y lacks the class; where y has it, we agree
    has_y = tb[:, 1:].sum(dim=(2, 3)).numpy() > 0
    np.testing.assert_allclose(ours[has_y], ref[has_y], atol=1e-6)
    # where y lacks the class: 0 if the prediction has it, NaN (not averaged) if neither has
    has_pred = ta[:, 1:].sum(dim=(2, 3)).numpy() > 0
    assert np.all(ours[~has_y & has_pred] == 0)
    assert np.all(np.isnan(ours[~has_y & ~has_pred]))
