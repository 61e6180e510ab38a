"""Trusted masks: what `disagree` and calibrated refurbishment take to be right, and saying so."""

import logging

import numpy as np
import pytest

from noisyseg.data import synthetic_echo
from noisyseg.errors import DataError
from noisyseg.run import read_trusted, run_session
from noisyseg.train import TrainConfig


@pytest.fixture(scope="module")
def ds():
    return synthetic_echo(n=20, size=32, seed=4)


def test_read_trusted_from_a_split_a_file_and_a_csv(ds, tmp_path):
    idx, source = read_trusted(ds, "val")
    assert np.array_equal(idx, ds.indices("val")) and source == "val split"
    ids = [ds.sample_ids[i] for i in (5, 2)]
    f = tmp_path / "checked.txt"
    f.write_text(f"# masks Dr X checked\n{ids[0]}\n\n{ids[1]}\n")
    idx, source = read_trusted(ds, f)
    assert idx.tolist() == [2, 5] and source == f"file {f}"
    c = tmp_path / "checked.csv"
    c.write_text(f"reviewer,sample_id\nx,{ids[0]}\ny,{ids[1]}\n")
    assert read_trusted(ds, c)[0].tolist() == [2, 5]
    with pytest.raises(DataError, match="sample id 'nope' is not in the dataset"):
        read_trusted(ds, ["nope", ids[0]])
    with pytest.raises(DataError, match="neither a split"):
        read_trusted(ds, str(tmp_path / "missing.txt"))


def test_disagree_calibrates_on_the_named_masks(ds, monkeypatch):
    """The offsets are fitted on exactly the trusted samples' masks (given masks of training
    samples), and the session records them."""
    import noisyseg.detect.detectors as detectors

    seen = []
    real = detectors.class_bias

    def spy(logits, truth, **kw):
        seen.append(np.asarray(truth).copy())
        return real(logits, truth, **kw)

    monkeypatch.setattr(detectors, "class_bias", spy)
    noisy = ds.with_masks(np.where(ds.masks == 1, 2, ds.masks).astype(np.uint8))
    named = [int(i) for i in noisy.indices("train")[:3]]
    cfg = TrainConfig(epochs=2, batch_size=8, model_options={"width": 4}, threads=1)
    s = run_session(noisy, cfg, detectors=["disagree:every=1"],
                    trusted=[noisy.sample_ids[i] for i in named])
    assert seen and all(np.array_equal(t, noisy.masks[named]) for t in seen)
    assert s.trusted["source"] == "given sample ids" and s.trusted["n"] == 3
    assert s.trusted["used_by"] == ["disagree:every=1"]


def test_without_trusted_the_validation_split_is_reported(ds, caplog):
    cfg = TrainConfig(epochs=2, batch_size=8, model_options={"width": 4}, threads=1)
    with caplog.at_level(logging.WARNING):
        s = run_session(ds, cfg, detectors=["disagree:every=1", "loss"])
    assert s.trusted["source"] == "validation split"
    assert s.trusted["sample_ids"] == [ds.sample_ids[i] for i in ds.indices("val")]
    assert "taken to be right" in caplog.text
    # a run that calibrates nothing records nothing
    assert run_session(ds, cfg, detectors=["loss"]).trusted is None
