import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from noisyseg.report import paired_test


def test_paired_test_matches_hand_computation():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df -> p = 0.0742;
    # Wilcoxon, n = 3, all differences positive: exact two-sided p = 2 / 2**3 = 0.25
    r = paired_test(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert r.n == 3 and r.mean_diff == pytest.approx(2.0)
    assert r.t_p == pytest.approx(0.07418, abs=1e-4)
    assert r.wilcoxon_p == pytest.approx(0.25)


def test_paired_test_degenerate_cases_give_nan_not_errors():
    r = paired_test(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    assert r.mean_diff == 0 and np.isnan(r.t_p) and np.isnan(r.wilcoxon_p)
    assert np.isnan(paired_test(np.array([0.1]), np.array([0.2])).t_p)
    r = paired_test(np.array([0.1, np.nan, 0.3]), np.array([0.2, 0.5, 0.5]))
    assert r.n == 2
    with pytest.raises(ValueError, match="differ in length"):
        paired_test(np.zeros(2), np.zeros(3))


@given(st.lists(st.floats(0, 1), min_size=2, max_size=12), st.floats(-0.5, 0.5))
def test_paired_test_is_antisymmetric(a, shift):
    a = np.array(a)
    rng = np.random.default_rng(0)
    b = a + shift + rng.normal(0, 0.01, len(a))
    ab, ba = paired_test(a, b), paired_test(b, a)
    assert ab.mean_diff == pytest.approx(-ba.mean_diff)
    assert np.isnan(ab.t_p) and np.isnan(ba.t_p) or ab.t_p == pytest.approx(ba.t_p)


def test_interpolated_precision_by_hand():
    from noisyseg.report import interpolated_precision

    # ranked: hit, miss, hit, miss -> precision 1 up to recall 0.5, then 2/3 up to recall 1
    p = interpolated_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]),
                               np.array([0.0, 0.25, 0.5, 0.51, 1.0]))
    np.testing.assert_allclose(p, [1, 1, 1, 2 / 3, 2 / 3])
    # a perfect ranking is precision 1 at every recall; a reversed one falls to the base rate
    perfect = interpolated_precision(np.array([1, 1, 0, 0]), np.array([4, 3, 2, 1]),
                                     np.linspace(0, 1, 11))
    assert (perfect == 1).all()
    worst = interpolated_precision(np.array([0, 0, 1, 1]), np.array([4, 3, 2, 1]),
                                   np.array([1.0]))
    assert worst[0] == 0.5
