"""nnU-Net v2 itself on the datasets noisyseg writes (the ``nnunet`` extra).

Helpers and fixtures: a tiny nnU-Net raw dataset (6 cases of 8 x 32 x 32 voxels, oblique and
anisotropic), nnU-Net's own integrity check and 2-D preprocessing run on any dataset folder,
and a 5-fold cross-validation results folder written by nnU-Net's own prediction exporter.
nnunetv2 is imported inside the fixtures only, so that collecting this folder without the
extra costs nothing; each test module skips itself with ``pytest.importorskip``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import save_nifti

LABELS = {"background": 0, "liver": 1, "tumour": 2}
SHAPE = (8, 32, 32)  # (z, y, x)
N_CASES = 6
BAD = "case_002"  # nnU-Net's probabilities for it come from its label with the tumour left out
CONFIG = "2d"
TRAINER = "nnUNetTrainer__nnUNetPlans__2d"
_DATASET_NAME = re.compile(r"Dataset\d{3}_[A-Za-z0-9_-]+")


def label_zyx(rng: np.random.Generator) -> np.ndarray:
    """(8, 32, 32) uint8 labels: a box of liver (1) holding a box of tumour (2) on slices 2-5."""
    lab = np.zeros(SHAPE, np.uint8)
    oy, ox = rng.integers(0, 6, 2)
    lab[1:7, 6 + oy:22 + oy, 5 + ox:23 + ox] = 1
    lab[2:6, 11 + oy:17 + oy, 10 + ox:16 + ox] = 2
    return lab


def write_raw(raw: Path, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Write an nnU-Net v2 raw dataset (int16 NIfTI labels, float32 CT-like images, no
    exact zeros, so nnU-Net crops nothing) to ``raw``; return its labels ``(z, y, x)`` by case."""
    rng = np.random.default_rng(seed)
    for d in ("imagesTr", "labelsTr"):
        (raw / d).mkdir(parents=True)
    truth = {}
    for i in range(N_CASES):
        cid = f"case_{i:03d}"
        lab = label_zyx(rng)
        truth[cid] = lab
        save_nifti(lab.T, raw / "labelsTr" / f"{cid}.nii.gz", dtype=np.int16)
        img = lab * 40.0 + 100.0 + rng.normal(0, 3, SHAPE)
        save_nifti(img.T.astype(np.float32), raw / "imagesTr" / f"{cid}_0000.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": N_CASES,
        "file_ending": ".nii.gz"}))
    return truth


def read_label(path: Path) -> np.ndarray:
    """A NIfTI label file as a ``(z, y, x)`` array (SimpleITK's and nnU-Net's order)."""
    return np.asarray(nib.load(str(path)).dataobj).T


def nnunet_env(root: Path) -> dict[str, str]:
    """The environment with nnU-Net's three folders under ``root``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # the output of nnU-Net's workers too
    for var, sub in (("nnUNet_raw", "nnUNet_raw"), ("nnUNet_preprocessed", "nnUNet_preprocessed"),
                     ("nnUNet_results", "nnUNet_results")):
        env[var] = str(root / sub)
        (root / sub).mkdir(parents=True, exist_ok=True)
    return env


@dataclass(frozen=True)
class Preprocessed:
    """What ``nnUNetv2_plan_and_preprocess`` wrote for one dataset."""

    folder: Path  # nnUNet_preprocessed/DatasetXXX_Name
    plans: dict
    cases: tuple[str, ...]

    def load(self, case: str) -> tuple[np.ndarray, dict]:
        """(label nnU-Net trains on, (z, y, x) in array order; the case's properties)."""
        from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

        ds = nnUNetDatasetBlosc2(str(self.folder / self.plans["configurations"][CONFIG]
                                     ["data_identifier"]), [case])
        _, seg, _, props = ds.load_case(case)
        back = np.argsort(self.plans["transpose_forward"])
        return np.transpose(np.asarray(seg[0]), back), props

    def label(self, case: str) -> np.ndarray:
        return self.load(case)[0]


class PlanAndPreprocess:
    """``nnUNetv2_plan_and_preprocess -d ID -c 2d --verify_dataset_integrity`` running on the
    raw dataset folder ``dataset``, nnU-Net's folders under ``root`` (a folder that is not
    ``root/nnUNet_raw/DatasetXXX_Name`` is linked there as ``Dataset{ID}_{name}``). It runs
    in the background from construction; :meth:`result` waits for it."""

    def __init__(self, dataset: Path, root: Path, dataset_id: int) -> None:
        env = nnunet_env(root)
        raw_root = Path(env["nnUNet_raw"])
        if dataset.parent == raw_root and _DATASET_NAME.fullmatch(dataset.name):
            name = dataset.name
            assert name.startswith(f"Dataset{dataset_id:03d}_"), (name, dataset_id)
        else:
            name = f"Dataset{dataset_id:03d}_{dataset.name}"
            (raw_root / name).symlink_to(dataset.resolve(), target_is_directory=True)
        self.dataset = dataset
        self.folder = Path(env["nnUNet_preprocessed"]) / name
        script = Path(sys.executable).with_name("nnUNetv2_plan_and_preprocess")
        self._log = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(
            [str(script), "-d", str(dataset_id), "-c", CONFIG, "--verify_dataset_integrity",
             "-np", "1", "-npfp", "1", "--no_pbar"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)

    def stop(self) -> None:
        """End nnU-Net and its workers if it still runs."""
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._log.close()

    def result(self, timeout: float = 300) -> Preprocessed:
        """Wait for nnU-Net; fail the test (AssertionError with nnU-Net's output) when it
        refused the dataset, warned that a label is off its image's grid, or left any case
        of ``labelsTr/`` unpreprocessed."""
        rc = self._proc.wait(timeout)
        self._log.seek(0)
        out = self._log.read()
        assert rc == 0, f"nnU-Net refused {self.dataset}:\n{out[-4000:]}"
        assert "verify_dataset_integrity Done" in out, out[-4000:]
        # nnU-Net only warns when a label's origin or direction is not its image's
        off_grid = [line for line in out.splitlines() if "mismatch between segmentation" in line]
        assert not off_grid, f"nnU-Net: labels off their images' grid in {self.dataset}:\n{out[-4000:]}"
        plans = json.loads((self.folder / "nnUNetPlans.json").read_text())
        assert CONFIG in plans["configurations"], sorted(plans["configurations"])
        labels = self.dataset / "labelsTr"
        cases = tuple(sorted(p.name[:-len(".nii.gz")] for p in labels.iterdir()))
        data = self.folder / plans["configurations"][CONFIG]["data_identifier"]
        for cid in cases:
            for f in (f"{cid}.b2nd", f"{cid}_seg.b2nd", f"{cid}.pkl"):
                assert (data / f).is_file(), f"nnU-Net did not preprocess {cid}: no {f}"
            # nnU-Net keeps the labels it was given, byte for byte
            assert (self.folder / "gt_segmentations" / f"{cid}.nii.gz").read_bytes() == \
                (labels / f"{cid}.nii.gz").read_bytes()
        return Preprocessed(self.folder, plans, cases)


def plan_and_preprocess(dataset: Path, root: Path, dataset_id: int) -> Preprocessed:
    """:class:`PlanAndPreprocess`, waited for."""
    run = PlanAndPreprocess(dataset, root, dataset_id)
    try:
        return run.result()
    finally:
        run.stop()


@dataclass(frozen=True)
class CrossVal:
    """A raw dataset, its preprocessing and the out-of-fold predictions nnU-Net's exporter
    wrote for every case (``fold_X/validation/{case}.npz, .pkl, .nii.gz``)."""

    raw: Path  # nnUNet_raw/Dataset901_Tiny
    truth: dict[str, np.ndarray]  # the given labels, (z, y, x)
    preprocessed: Preprocessed
    results: Path  # nnUNet_results/Dataset901_Tiny/nnUNetTrainer__nnUNetPlans__2d
    fold_of: dict[str, int]  # case -> the fold whose validation predicted it
    predicted: dict[str, np.ndarray]  # case -> the label map nnU-Net's exporter wrote


def export_crossval(pre: Preprocessed, results: Path, wrong: dict[str, np.ndarray],
                    *, n_splits: int = 5) -> dict[str, int]:
    """Write the out-of-fold predictions of a ``n_splits``-fold cross-validation with
    nnU-Net's own split and exporter: for every case, logits that favour its preprocessed
    label (``wrong[case]`` instead, where given, in preprocessed array order), exported as
    nnUNetv2_train --npz does. Returns the fold of every case."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.utilities.crossval_split import generate_crossval_split
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(str(pre.folder / "nnUNetPlans.json"))
    config = plans_manager.get_configuration(CONFIG)
    dataset_json = json.loads((pre.folder / "dataset.json").read_text())
    splits = generate_crossval_split(list(pre.cases), seed=12345, n_splits=n_splits)
    splits = [{k: [str(c) for c in v] for k, v in s.items()} for s in splits]
    (pre.folder / "splits_final.json").write_text(json.dumps(splits))
    results.mkdir(parents=True)
    for f in ("plans.json", "dataset.json"):  # as nnUNetTrainer copies them
        src = pre.folder / ("nnUNetPlans.json" if f == "plans.json" else f)
        (results / f).write_bytes(src.read_bytes())
    fold_of = {}
    for fold, split in enumerate(splits):
        val = results / f"fold_{fold}" / "validation"
        val.mkdir(parents=True)
        for cid in split["val"]:
            seg, props = pre.load(cid)
            seg = wrong.get(cid, seg).transpose(plans_manager.transpose_forward)
            logits = np.stack([(seg == c) * 4.0 for c in range(len(LABELS))]).astype(np.float32)
            export_prediction_from_logits(logits, props, config, plans_manager, dataset_json,
                                          str(val / cid), save_probabilities=True,
                                          num_threads_torch=1)
            fold_of[cid] = fold
    return fold_of


@dataclass(frozen=True)
class Raw:
    """The raw dataset of the session: ``root`` holds nnU-Net's three folders."""

    root: Path
    folder: Path  # root/nnUNet_raw/Dataset901_Tiny
    truth: dict[str, np.ndarray]  # its labels, (z, y, x)


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory) -> Raw:
    """Dataset901_Tiny (see :func:`write_raw`). Shared: tests must not write into it."""
    root = tmp_path_factory.mktemp("nnunet")
    raw = Path(nnunet_env(root)["nnUNet_raw"]) / "Dataset901_Tiny"
    return Raw(root, raw, write_raw(raw))


@pytest.fixture(scope="session")
def crossval(tiny_raw) -> CrossVal:
    """Dataset901_Tiny, preprocessed by nnU-Net (which also checks it), and the 5-fold
    out-of-fold predictions of a model that is right about every case but :data:`BAD`,
    whose tumour it misses. Shared: tests must not write into it."""
    truth = tiny_raw.truth
    pre = plan_and_preprocess(tiny_raw.folder, tiny_raw.root, 901)
    for cid in pre.cases:  # nnU-Net trains on the labels as they are: no crop, no resampling
        np.testing.assert_array_equal(pre.label(cid), truth[cid])
    results = tiny_raw.root / "nnUNet_results" / "Dataset901_Tiny" / TRAINER
    missed = np.where(truth[BAD] == LABELS["tumour"], 0, truth[BAD]).astype(np.int8)
    fold_of = export_crossval(pre, results, {BAD: missed})
    predicted = {cid: read_label(results / f"fold_{fold}" / "validation" / f"{cid}.nii.gz")
                 for cid, fold in fold_of.items()}
    return CrossVal(tiny_raw.folder, truth, pre, results, fold_of, predicted)
