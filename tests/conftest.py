import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")
settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(scope="session")
def echo_small():
    from noisyseg.data import synthetic_echo

    return synthetic_echo(n=24, size=48, seed=3)


def square_mask(size=32, lo=8, hi=24, label=1):
    m = np.zeros((size, size), np.uint8)
    m[lo:hi, lo:hi] = label
    return m
