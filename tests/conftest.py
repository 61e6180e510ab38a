import os
import textwrap

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


def run_cli(args):
    """Run the real ``noisyseg`` entry point in-process; return its exit status."""
    from noisyseg.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return exc.code
    return 0


def square_mask(size=32, lo=8, hi=24, label=1):
    m = np.zeros((size, size), np.uint8)
    m[lo:hi, lo:hi] = label
    return m


TINY = """\
name: tiny
description: a tiny test study
data: synthetic-echo:n=20,size=32,seed=0
train: {epochs: 2, batch_size: 8, model_options: {width: 4}, threads: 1}
audit: {warmup: 1, every: 1, flag_rule: top, flag_value: 0.5}
grids:
  - corrupt.model: [none, natural]
    corrupt.target_dice: [0.85]
    seed: [0, 1]
  - corrupt: [{model: dilate, strength: 2, fraction: 0.5, classes: [lv_cavity]}]
    audit.detectors: [none, [loss]]
    audit.refurbish: [false, true]
    seed: [0, 1]
"""


@pytest.fixture()
def tiny_spec(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(textwrap.dedent(TINY))
    return p
