"""Scores from predicted probabilities: equal to cleanlab, hand-computed Dice, slices = cases."""

import numpy as np
import pytest
from cleanlab.segmentation.rank import get_label_quality_scores
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyseg.detect.probs import case_scores, given_label_probability, softmin
from noisyseg.errors import DataError
from noisyseg.evaluate import dice


def _probs(rng, k, shape, sharp=2.0):
    z = rng.normal(0, sharp, (k, *shape)).astype(np.float32)
    p = np.exp(z)
    return (p / p.sum(0, keepdims=True)).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5), h=st.integers(1, 24),
       w=st.integers(1, 24), temperature=st.sampled_from([0.05, 0.1, 1.0]))
def test_label_quality_equals_cleanlab(seed, k, h, w, temperature):
    rng = np.random.default_rng(seed)
    n = 3
    labels = rng.integers(0, k, (n, h, w))
    probs = np.stack([_probs(rng, k, (h, w), sharp=rng.uniform(0.1, 6)) for _ in range(n)])
    expect, pixel = get_label_quality_scores(labels, probs, verbose=False, temperature=temperature)
    for i in range(n):
        assert np.allclose(given_label_probability(labels[i], probs[i]), pixel[i])
        ours = case_scores(labels[i], probs[i], temperature=temperature).scores[0]
        assert 1.0 - ours == pytest.approx(expect[i], abs=1e-6)


def test_dice_scores_by_hand():
    """Labels [1 1 0 0], prediction puts 0.8 / 0.6 / 0.3 / 0.1 on class 1."""
    labels = np.array([[1, 1, 0, 0]])
    p1 = np.array([[0.8, 0.4, 0.6, 0.1]], np.float32)  # argmax: 1 0 1 0
    probs = np.stack([1 - p1, p1])
    s = case_scores(labels, probs)
    # hard: |A & B| = 1, |A| = 2, |B| = 2 -> Dice 0.5
    assert s.scores[1] == pytest.approx(0.5)
    # soft: 2 * (0.8 + 0.4) / (2 + 1.9) for class 1
    assert s.scores[2] == pytest.approx(1 - 2 * 1.2 / 3.9, abs=1e-6)
    assert s.given_voxels.tolist() == [2, 2] and s.predicted_voxels.tolist() == [2, 2]
    assert s.class_dice[1] == pytest.approx(0.5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), axis=st.integers(0, 2))
def test_slice_scores_are_the_scores_of_each_slice(seed, axis):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 3, (5, 7, 6)).astype(np.uint8)
    lab[:, :, :2] = 0
    probs = _probs(rng, 3, lab.shape)
    s = case_scores(lab, probs, slice_axis=axis)
    assert s.slice_scores.shape == (lab.shape[axis], 3)
    for j in range(lab.shape[axis]):
        two_d = case_scores(np.take(lab, j, axis), np.take(probs, j, axis + 1))
        assert np.allclose(s.slice_scores[j], two_d.scores, equal_nan=True)
    # the case's Dice score is noisyseg's volume Dice of the argmax
    pred = np.argmax(probs, 0).astype(np.uint8)
    assert s.scores[1] == pytest.approx(1 - dice(pred[None], lab[None], 3)[0])


def test_perfect_and_empty_cases():
    lab = np.zeros((4, 4), np.uint8)
    probs = np.stack([np.ones((4, 4)), np.zeros((4, 4))]).astype(np.float32)
    s = case_scores(lab, probs)
    assert s.scores.tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(s.slice_scores[0, 1])  # no foreground anywhere: no Dice for the slice


def test_shape_mismatch_is_named():
    with pytest.raises(DataError, match="pred_probs: shape"):
        case_scores(np.zeros((4, 4), np.uint8), np.ones((2, 4, 5), np.float32) / 2)


def test_softmin_leans_to_the_minimum():
    s = np.array([1.0] * 99 + [0.0])
    assert softmin(s, temperature=0.01) < 0.5 < softmin(s, temperature=10.0)
