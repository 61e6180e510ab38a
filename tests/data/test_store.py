"""Slice images kept on disk (RowStore): read exactly as the array they hold."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyseg.data import load_dataset, slice_dataset
from noisyseg.data.store import RowStore
from noisyseg.train import TrainConfig, Trainer

ROWS = np.random.default_rng(0).normal(size=(23, 4, 5)).astype(np.float32)


def _store(parts=(7, 16)) -> RowStore:
    s = RowStore((4, 5), np.float32)
    start = 0
    for k in parts:  # appended in pieces, as slice_dataset does case by case
        s.append(ROWS[start:start + k])
        start += k
    return s


@settings(max_examples=60, deadline=None)
@given(st.one_of(
    st.integers(-23, 22),
    st.lists(st.integers(-23, 22), max_size=12),
    st.builds(slice, st.none() | st.integers(-30, 30), st.none() | st.integers(-30, 30),
              st.none() | st.integers(1, 5) | st.integers(-5, -1)),
    st.lists(st.booleans(), min_size=23, max_size=23).map(np.array),
))
def test_indexing_a_store_equals_indexing_the_array(key):
    s = _store()
    np.testing.assert_array_equal(s[key], ROWS[key])


def test_store_shape_tuples_pickling_and_errors():
    s = _store()
    assert s.shape == (23, 4, 5) and s.ndim == 3 and len(s) == 23 and s.nbytes == ROWS.nbytes
    np.testing.assert_array_equal(s[(slice(2, 9), 1)], ROWS[2:9, 1])
    np.testing.assert_array_equal(s[np.array([[3, 1], [1, 22]]), 2:], ROWS[[[3, 1], [1, 22]], 2:])
    np.testing.assert_array_equal(s[4, :, 3], ROWS[4, :, 3])
    np.testing.assert_array_equal(np.asarray(s), ROWS)
    # another process gets the rows themselves, not a file descriptor
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(s)), ROWS)
    with pytest.raises(IndexError):
        s[23]
    with pytest.raises(IndexError):
        s[[0, 40]]
    with pytest.raises(ValueError, match="rows: expected"):
        s.append(np.zeros((2, 5, 4), np.float32))


def test_slices_on_disk_train_as_the_same_dataset_in_memory():
    cases = load_dataset("synthetic-ct:n=6,size=32,slices=8,seed=0")
    mem, _ = slice_dataset(cases)
    disk, _ = slice_dataset(cases, on_disk=True)
    assert isinstance(mem.images, np.ndarray) and isinstance(disk.images, RowStore)
    assert disk.meta["slices"]["on_disk"] and not mem.meta["slices"]["on_disk"]
    np.testing.assert_array_equal(np.asarray(disk.images), mem.images)
    np.testing.assert_array_equal(disk.masks, mem.masks)
    cfg = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=4, threads=1, precision="fp32",
                      model_options={"width": 2, "depth": 2})
    a, b = Trainer(cfg, mem).fit(), Trainer(cfg, disk).fit()
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    np.testing.assert_array_equal(a.predict(mem.indices("test")), b.predict(disk.indices("test")))


def test_trainer_shares_the_masks_until_it_replaces_one():
    cases = load_dataset("synthetic-ct:n=4,size=32,slices=8,seed=0")
    ds, _ = slice_dataset(cases)
    before = ds.masks.copy()
    tr = Trainer(TrainConfig(epochs=1, threads=1, model_options={"width": 2, "depth": 2}), ds)
    assert np.shares_memory(tr.train_targets.numpy(), ds.masks)  # no second copy
    i = int(tr.train_idx[0])
    tr.replace_masks([i], np.zeros((1, *ds.shape), np.uint8))
    assert not np.shares_memory(tr.train_targets.numpy(), ds.masks)
    assert int(tr.train_targets[i].sum()) == 0 and torch.equal(
        tr.train_targets[int(tr.train_idx[1])], torch.from_numpy(before[int(tr.train_idx[1])]))
    np.testing.assert_array_equal(ds.masks, before)  # the dataset's masks never change
