import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from noisyseg.detect import (
    RunningMoments,
    boundary_band,
    detection_metrics,
    flag,
    flag_mixture,
    flag_percentile,
    flag_top_fraction,
    vog_schedule,
    vog_scores,
)
from noisyseg.errors import ConfigError


@given(st.integers(2, 6), st.integers(1, 5), st.integers(0, 2**31))
def test_running_moments_equal_direct_computation(k, n, seed):
    rng = np.random.default_rng(seed)
    grads = rng.normal(size=(k, n, 4, 5)) * rng.uniform(0.1, 10)
    mom = RunningMoments((n, 4, 5))
    for g in grads:  # each checkpoint, in two batches in random order
        order = rng.permutation(n)
        for part in np.array_split(order, 2):
            if len(part):
                mom.update(torch.as_tensor(part), torch.as_tensor(g[part]))
    np.testing.assert_allclose(mom.variance().numpy(), grads.var(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vog_scores(mom.variance()), vog_scores(grads), rtol=1e-9)
    region = rng.random((n, 4, 5)) < 0.5
    for norm in ("none", "mean"):  # the detectors' path: scores straight from the moments
        np.testing.assert_allclose(vog_scores(mom, region=region, normalise=norm),
                                   vog_scores(grads, region=region, normalise=norm),
                                   rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(vog_scores(mom, normalise=norm),
                                   vog_scores(grads, normalise=norm), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(vog_scores(grads), grads.var(axis=0).mean(axis=(1, 2)), rtol=1e-9)


def test_vog_region_and_normalisation():
    grads = np.zeros((2, 2, 3, 3))
    grads[1, 0, 0, 0] = 2.0  # sample 0: one pixel varies (variance 1 there)
    region = np.zeros((2, 3, 3), bool)
    region[:, 0, :] = True
    np.testing.assert_allclose(vog_scores(grads), [1 / 9, 0])
    np.testing.assert_allclose(vog_scores(grads, region=region), [1 / 3, 0])
    norm = vog_scores(grads, normalise="mean")
    assert 0 < norm[0] <= 1 and norm[1] == 0
    with pytest.raises(ConfigError):
        vog_scores(grads, normalise="zz")


def test_boundary_band():
    m = np.zeros((1, 9, 9), np.uint8)
    m[0, 3:6, 3:6] = 1
    band = boundary_band(m, width=1)
    assert band[0, 4, 4] and band[0, 2, 4] and not band[0, 0, 0]


def test_flag_rules():
    s = np.array([0.1, 0.9, 0.5, 0.7, 0.2])
    assert flag_top_fraction(s, 0.4).tolist() == [False, True, False, True, False]
    assert flag_percentile(s, 50).tolist() == [False, True, False, True, False]
    rng = np.random.default_rng(0)
    bimodal = np.concatenate([rng.lognormal(0, 0.2, 70), rng.lognormal(2, 0.2, 30)])
    f = flag_mixture(bimodal)
    assert f[70:].all() and not f[:70].any()
    assert flag_mixture(rng.lognormal(0, 0.2, 100)).sum() <= 5
    with pytest.raises(ConfigError, match="needs a fraction"):
        flag(s, "top")
    with pytest.raises(ConfigError, match="flag_rule"):
        flag(s, "magic")


def test_detection_metrics_by_hand():
    scores = np.array([0.9, 0.8, 0.3, 0.2])
    truth = np.array([True, False, True, False])
    flags = np.array([True, True, False, False])
    m = detection_metrics(scores, flags, truth)
    assert m.precision == 0.5 and m.recall == 0.5 and m.f1 == 0.5
    assert np.isclose(m.average_precision, (1 + 2 / 3) / 2)
    assert np.isclose(m.auroc, 0.75)


def test_vog_schedule():
    assert vog_schedule(40, 5) == [8, 16, 24, 32, 40]
    assert vog_schedule(3, 5) == [1, 2, 3]
    w = vog_schedule(30, 6, "windows")
    assert len(w) == 6 and w[-1] == 30 and w[0] < 10
    assert vog_schedule(40, 5, "late") == [24, 28, 32, 36, 40]  # second half, evenly
    assert vog_schedule(15, 5, "late") == [9, 10, 12, 14, 15]
    assert vog_schedule(3, 5, "late") == [2, 3]
    with pytest.raises(ConfigError, match="even, late or windows"):
        vog_schedule(10, 3, "sometimes")


def test_vog_rms_normalisation_ignores_gradient_scale():
    """With 'rms', a sample whose gradient only grows in scale has zero VOG."""
    from noisyseg.detect import VOGDetector

    det = VOGDetector(normalise="rms")
    assert det.normalise == "rms"
    with pytest.raises(ConfigError, match="normalise"):
        VOGDetector(normalise="zscore")
    from noisyseg.detect import rms_normalise

    g = torch.tensor([[[3.0, -4.0], [0.0, 0.0]]])  # RMS = sqrt(25 / 4) = 2.5
    torch.testing.assert_close(rms_normalise(g), g / 2.5)
    mom = RunningMoments((1, 2, 2))
    for scale in (1.0, 5.0, 9.0):  # only the scale changes: zero VOG after normalising
        mom.update(torch.tensor([0]), rms_normalise(g * scale))
    assert float(vog_scores(mom.variance())[0]) < 1e-12
    raw = RunningMoments((1, 2, 2))
    for scale in (1.0, 5.0, 9.0):
        raw.update(torch.tensor([0]), g * scale)
    assert float(vog_scores(raw.variance())[0]) > 1.0


def test_detector_specs_parse_typed_options_and_reject_bad_ones():
    from noisyseg.detect import VOGDetector, make_detector, parse_detector

    assert parse_detector("vog:normalise=rms,checkpoints=8") == (
        "vog", {"normalise": "rms", "checkpoints": 8})
    assert parse_detector("loss:ema=0.5") == ("loss", {"ema": 0.5})
    assert parse_detector("cleanlab") == ("cleanlab", {})
    assert parse_detector("disagree:calibrate=false") == ("disagree", {"calibrate": False})
    assert parse_detector("disagree:calibrate=Yes") == ("disagree", {"calibrate": True})
    assert make_detector("disagree:calibrate=0").calibrate is False
    det = make_detector("vog:target=boundary,schedule=late")
    assert isinstance(det, VOGDetector) and (det.target, det.schedule_name) == ("boundary", "late")
    for bad, msg in [("vog:target=x", "vog:target=x: vog target"),
                     ("vog:foo=1", "expected key=value options"),
                     ("vog:checkpoints=a", "not a valid int"),
                     ("disagree:calibrate=maybe", "not a valid bool"),
                     ("vogg", "unknown detector"),
                     ("vog:checkpoints=1", "at least 2")]:
        with pytest.raises(ConfigError, match=msg):
            make_detector(bad)


def test_class_bias_moves_a_learnt_boundary_back_to_the_truth():
    """Logits of class 1 cross class 0's at x = 13; the truth's boundary lies after x = 10."""
    from noisyseg.detect import apply_bias, class_bias

    x = torch.arange(32, dtype=torch.float32)
    logits = torch.zeros(2, 3, 4, 32)
    logits[:, 1] = 13 - x  # class 1 left of 13: three pixels too large
    logits[:, 2] = x - 28  # class 2 right of 28: exactly right
    truth = np.zeros((2, 4, 32), np.uint8)
    truth[:, :, :11] = 1
    truth[:, :, 29:] = 2
    assert (apply_bias(logits, None) == 1).sum() == 2 * 4 * 13
    bias = class_bias(logits, truth)
    assert bias[0] == 0 and bias[2] == 0  # nothing to gain: offsets stay 0
    assert -3 < bias[1] <= -2  # 13 - x + b > 0 exactly for x <= 10
    np.testing.assert_array_equal(apply_bias(logits, bias), truth)


def test_class_bias_is_zero_for_a_right_model():
    from noisyseg.detect import class_bias

    truth = np.zeros((1, 8, 8), np.uint8)
    truth[0, 2:6, 2:6] = 1
    logits = torch.as_tensor(np.stack([truth == 0, truth == 1], axis=1).astype(np.float32))
    np.testing.assert_array_equal(class_bias(logits, truth), [0.0, 0.0])


def test_vog_std_reduction_is_the_mean_per_pixel_standard_deviation():
    """reduce='std' (the VOG reference code): sqrt of the per-pixel variance, then the mean;
    the running moments give the same number as the direct computation."""
    from noisyseg.detect import RunningMoments, vog_scores

    rng = np.random.default_rng(3)
    g = rng.normal(size=(5, 3, 6, 7))  # K checkpoints, N samples
    expect = np.sqrt(g.var(axis=0)).mean(axis=(1, 2))
    assert np.allclose(vog_scores(g, reduce="std"), expect)
    m = RunningMoments((3, 6, 7))
    for k in range(5):
        m.update(torch.arange(3), torch.as_tensor(g[k]))
    assert np.allclose(vog_scores(m, reduce="std"), expect)
    band = rng.random((3, 6, 7)) > 0.5
    expect_band = np.array([np.sqrt(g[:, i].var(axis=0))[band[i]].mean() for i in range(3)])
    assert np.allclose(vog_scores(m, reduce="std", region=band), expect_band)
    with pytest.raises(ConfigError, match="vog reduce"):
        vog_scores(g, reduce="median")


def test_given_prob_target_is_the_softmax_gradient_by_hand():
    """A 1x1 convolution with no bias: logits_c = w_c x, p = softmax; the gradient of the mean
    over P pixels of p_y is p_y (w_y - sum_c p_c w_c) / P at each pixel."""
    from noisyseg.detect import input_gradients

    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    conv = torch.nn.Conv2d(1, 3, 1, bias=False).double()
    with torch.no_grad():
        conv.weight[:] = w.view(3, 1, 1, 1)
    x = torch.randn(2, 1, 4, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 4, 5))
    g = input_gradients(conv, x, y, target="given-prob")
    p = torch.softmax(w.view(1, 3, 1, 1) * x, dim=1)
    py = p.gather(1, y[:, None])[:, 0]
    expect = py * (w[y] - (p * w.view(1, 3, 1, 1)).sum(1)) / 20
    assert torch.allclose(g, expect)
