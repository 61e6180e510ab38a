"""A network that learnt nothing is said to be untrustworthy, not silently used as a judge."""

import logging

import numpy as np
import pytest

from noisyseg.run import MIN_VAL_DICE, model_check, run_session, summary
from noisyseg.train import TrainConfig


@pytest.mark.parametrize("val,passed", [(0.91, True), (MIN_VAL_DICE, True), (0.4999, False),
                                        (0.0035, False), (-1.0, False), (None, False),
                                        (float("nan"), False)])
def test_model_check_by_hand(val, passed):
    c = model_check(val)
    assert c["passed"] is passed and c["floor"] == MIN_VAL_DICE
    assert (c["message"] == "") is passed
    if not passed:
        assert "\n" not in c["message"] and "not" in c["message"]
    if val is not None and val >= 0 and np.isfinite(val):
        assert c["val_dice"] == val
    else:
        assert c["val_dice"] is None
    assert model_check(0.3, floor=0.2)["passed"] and not model_check(0.3, floor=0.35)["passed"]


def test_an_audit_whose_network_learnt_nothing_says_so(echo_small, caplog):
    cfg = TrainConfig(epochs=1, lr=1e-7, batch_size=4, model_options={"width": 4, "depth": 2},
                      augment=False)
    with caplog.at_level(logging.WARNING):
        session = run_session(echo_small, cfg, detectors=("loss",))
    check = summary(session)["model_check"]
    assert check["val_dice"] == pytest.approx(session.trainer.best_score)
    assert check["val_dice"] < MIN_VAL_DICE and check["passed"] is False
    assert any("not worth trusting" in r.getMessage() for r in caplog.records)
