"""A folder of 2-D images read one case at a time (``lazy=true``) trains, audits and writes
its labels as the same folder held in memory does: a 2-D image is a volume of one slice."""

import numpy as np
import pandas as pd
import pytest

from noisyseg.data import load_dataset, read_image, sample_view, write_array
from noisyseg.errors import ConfigError
from tests.conftest import run_cli

N = 10


def _folder(root, shapes):
    """``N`` 2-D images and masks (``.npy``) of the given shapes: a bright box of label 1."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(N):
        h, w = shapes[i % len(shapes)]
        lab = np.zeros((h, w), np.uint8)
        lab[h // 4: h // 4 + h // 2, w // 5: w // 5 + w // 2] = 1
        img = (lab * 50 + rng.normal(0, 4, lab.shape)).astype(np.float32)
        write_array(root / "images" / f"im{i:02d}.npy", img)
        write_array(root / "masks" / f"im{i:02d}.npy", lab)
    return root


def test_lazy_images_are_slices_of_their_own_cases(tmp_path):
    root = _folder(tmp_path / "f", [(24, 20)])
    lazy, memory = load_dataset(f"{root},lazy=true"), load_dataset(str(root))
    assert lazy.samples is None and memory.samples is not None
    samples, index = sample_view(lazy)
    held, _ = sample_view(memory)
    assert index.sampling == "slices" and samples.images.shape == (N, 24, 20)
    np.testing.assert_array_equal(samples.images, held.images)
    np.testing.assert_array_equal(samples.masks, held.masks)
    assert [index.slices_of(i).tolist() for i in range(3)] == [[0], [1], [2]]
    back = index.volume(4, samples.masks[index.slices_of(4)])
    np.testing.assert_array_equal(back, lazy.read_label(4)[0])
    with pytest.raises(ConfigError, match="option lazy='maybe' is not a valid flag"):
        load_dataset(f"{root},lazy=maybe")


def test_audit_of_lazy_images_of_two_sizes_writes_labels_on_their_own_grid(tmp_path):
    root = _folder(tmp_path / "f", [(24, 20), (30, 26)])
    out = tmp_path / "aud"
    rc = run_cli(["audit", "--data", f"{root},lazy=true", "--slice-size", "16",
                  "--detector", "loss", "--refurbish", "--flag-rule", "top", "--flag-value", "0.5",
                  "--epochs", "1", "--batch-size", "4", "--width", "4", "--threads", "1",
                  "--no-progress", "--out", str(out)])
    assert rc == 0
    scores = pd.read_csv(out / "scores.csv")
    ds = load_dataset(f"{root},lazy=true")  # the same seed: the split the audit used
    train = {ds.sample_ids[i] for i in ds.indices("train")}
    assert set(scores["detector"]) == {"loss"}
    assert set(scores["sample_id"]) == train and len(scores) == len(train)
    written = sorted((out / "refurbished").rglob("*.npy"))
    assert written
    for f in written:
        arr, _ = read_image(f)
        src, _ = read_image(root / "masks" / f.name)
        assert arr.shape == src.shape, f.name
