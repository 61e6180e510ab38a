"""Audit folders to review: a corrupted 2-D folder ranked from probabilities (the truth is
known) and an nnU-Net dataset ranked from its cross-validation results."""

import numpy as np
import pandas as pd
import pytest

from noisyseg.api import run_rank
from noisyseg.data import synthetic_echo, write_folder

from ..conftest import soft_probs


@pytest.fixture()
def audit_2d(tmp_path):
    """(audit folder, dataset folder, clean masks by id, corrupted by id): 20 echo images
    (14 in training), half of the training ones with the LV cavity dilated 3 px, PNG files;
    the model's probabilities follow the clean masks, so its pseudo-labels are the truth."""
    from noisyseg.corrupt import corrupt_dataset

    ds = synthetic_echo(n=20, size=32, seed=1)
    res = corrupt_dataset(ds, "dilate", strength=3, fraction=0.5, seed=0, classes=(1,))
    src = tmp_path / "noisy"
    write_folder(res.dataset, src, fmt="png",
                 manifest=pd.DataFrame({"sample_id": ds.sample_ids,
                                        "corrupted": res.dataset.corrupted}))
    probs = tmp_path / "probs"
    probs.mkdir()
    for sid, m in zip(ds.sample_ids, ds.masks, strict=True):
        np.save(probs / f"{sid}.npy", soft_probs(m, k=4))
    aud = tmp_path / "aud"
    run_rank(data=str(src), probs=[probs], out=aud, split="train", progress=False)
    clean = dict(zip(ds.sample_ids, ds.masks, strict=True))
    noisy = dict(zip(ds.sample_ids, res.dataset.corrupted, strict=True))
    return aud, src, clean, noisy


@pytest.fixture()
def audit_nnunet(nnunet, tmp_path):
    """(audit folder, raw dataset folder, truth by id): the nnU-Net fixture ranked from its
    two folds' validation probabilities."""
    raw, res, truth = nnunet
    aud = tmp_path / "aud_nnunet"
    run_rank(data=f"nnunet:{raw}", probs=[res], out=aud, progress=False)
    return aud, raw, truth
