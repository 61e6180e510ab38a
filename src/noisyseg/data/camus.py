"""CAMUS echocardiography (Leclerc et al., 2019), NIfTI and older MetaImage releases.

Layouts (``PATH`` may be the release root or the image folder itself)::

    NIfTI:     PATH/database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}[_gt].nii.gz
               PATH/database_split/subgroup_{training,validation,testing}.txt
    MetaImage: PATH/training/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}[_gt].mhd (+ .raw)

Images are returned with rows running away from the probe (apex at the top), the
orientation SimpleITK gives; NIfTI data, which nibabel returns transposed, is transposed
back (see :mod:`noisyseg.data.io`). Without split files, patients are split 80/10/10 at
random (seeded). The data is licensed for research and is never shipped with noisyseg.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from noisyseg._validate import check_image, check_labels_in, check_seed
from noisyseg.data._resize import resize_image, resize_mask
from noisyseg.data.cases import CaseDataset
from noisyseg.data.dataset import Samples
from noisyseg.data.folder import MAX_SIZE, check_file_name, check_same_grid, read_grid
from noisyseg.data.io import read_image
from noisyseg.errors import ConfigError, DataError

__all__ = ["CAMUS_CLASSES", "load_camus"]

CAMUS_CLASSES = ("background", "lv_cavity", "lv_myocardium", "left_atrium")
_SPLIT_FILES = {"train": "subgroup_training.txt", "val": "subgroup_validation.txt",
                "test": "subgroup_testing.txt"}


def _patient_dirs(root: Path) -> tuple[list[Path], str]:
    for sub, suffix in (("database_nifti", ".nii.gz"), ("training", ".mhd")):
        if (root / sub).is_dir():
            dirs = sorted(p for p in (root / sub).iterdir() if p.is_dir()
                          and p.name.startswith("patient"))
            if sub == "training" and (root / "testing").is_dir():
                dirs += sorted(p for p in (root / "testing").iterdir() if p.is_dir())
            return dirs, suffix
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("patient"))
    if dirs:
        suffix = ".nii.gz" if any(dirs[0].glob("*.nii.gz")) else ".mhd"
        return dirs, suffix
    raise DataError(f"{root}: not a CAMUS folder (expected database_nifti/, training/ or "
                    f"patientXXXX/ sub-folders)")


def _official_split(root: Path) -> dict[str, str] | None:
    for base in (root / "database_split", root.parent / "database_split"):
        if base.is_dir():
            table: dict[str, str] = {}
            for split, fname in _SPLIT_FILES.items():
                f = base / fname
                if not f.is_file():
                    raise DataError(f"{f}: split file missing")
                try:
                    names = f.read_text(encoding="utf-8").split()
                except (OSError, ValueError) as exc:
                    raise DataError(f"{f}: cannot read split file ({exc})") from exc
                for name in names:
                    if table.get(name, split) != split:
                        raise DataError(f"{f}: patient {name!r} is also in the {table[name]} split")
                    table[name] = split
            return table
    return None


def load_camus(path: str | Path, *, view: str = "4CH", phase: str = "ED", size: int = 256,
               seed: int = 0) -> CaseDataset:
    """Load one view and phase of CAMUS.

    Parameters
    ----------
    path : str or Path
        Release root (see module docstring).
    view : {'2CH', '4CH'}, default '4CH'
        Apical two- or four-chamber view.
    phase : {'ED', 'ES'}, default 'ED'
        End-diastole or end-systole frame.
    size : int, default 256
        Output size in pixels (images bilinear, masks nearest neighbour), 1 to ``MAX_SIZE``.
    seed : int, default 0
        Seed of the patient split used when no official split files are present.

    Returns
    -------
    CaseDataset
        One sample per patient held in memory on a ``size`` x ``size`` grid, labels
        :data:`CAMUS_CLASSES`.

    Raises
    ------
    ConfigError
        A ``view``, ``phase`` or ``size`` outside the choices above.
    DataError
        Not a CAMUS folder; missing folders or files, unreadable files, shape mismatches,
        labels outside 0..3 or not integers; no image of the view and phase; a patient in
        no split file or in two.

    Examples
    --------
    >>> load_camus("/nonexistent/CAMUS", view="3CH")
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: camus view: expected 2CH or 4CH, got '3CH'
    """
    view, phase = str(view).upper(), str(phase).upper()
    if view not in ("2CH", "4CH"):
        raise ConfigError(f"camus view: expected 2CH or 4CH, got {view!r}")
    if phase not in ("ED", "ES"):
        raise ConfigError(f"camus phase: expected ED or ES, got {phase!r}")
    check_seed(seed)
    if not 1 <= int(size) <= MAX_SIZE:
        raise ConfigError(f"size: expected 1 to {MAX_SIZE} pixels, got {size}")
    root = Path(path)
    check_file_name(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    dirs, suffix = _patient_dirs(root)
    table = _official_split(root)
    images, masks, ids, geoms = [], [], [], []
    for d in dirs:
        img_f = d / f"{d.name}_{view}_{phase}{suffix}"
        gt_f = d / f"{d.name}_{view}_{phase}_gt{suffix}"
        if not img_f.exists() or not gt_f.exists():
            continue  # e.g. the older release's testing patients have no ground truth
        check_file_name(img_f)
        check_file_name(gt_f)
        check_same_grid(read_grid(img_f), read_grid(gt_f))
        img_raw, geom = read_image(img_f)
        img = check_image(np.squeeze(img_raw), name=str(img_f))
        gt_raw = read_image(gt_f)[0]
        gt = np.squeeze(gt_raw)
        if img.ndim != 2 or gt.ndim != 2:
            raise DataError(f"{img_f if img.ndim != 2 else gt_f}: expected a 2-D image, got an "
                            f"array of shape {(img_raw if img.ndim != 2 else gt_raw).shape}")
        if not np.issubdtype(gt.dtype, np.number):
            raise DataError(f"{gt_f}: expected integer labels, got dtype {gt.dtype}")
        if gt.shape != img.shape:
            raise DataError(f"{gt_f}: mask shape {gt.shape} differs from image shape {img.shape}")
        if not np.all(np.isfinite(gt)) or not np.all(gt == np.round(gt)):
            raise DataError(f"{gt_f}: mask holds non-integer values")
        check_labels_in(gt.astype(np.int64), len(CAMUS_CLASSES), name=str(gt_f))
        images.append(resize_image(img, size))
        masks.append(resize_mask(gt, size))
        ids.append(f"{d.name}_{view}_{phase}")
        geoms.append(replace(geom, shape=img.shape, dtype=str(gt.dtype), format=suffix))
    if not ids:
        raise DataError(f"{root}: no {view} {phase} image with ground truth found")
    patients = [i.split("_")[0] for i in ids]
    if table is not None:
        missing = [p for p in patients if p not in table]
        if missing:
            raise DataError(f"{root}/database_split: patient {missing[0]} is in no split file")
        split = np.array([table[p] for p in patients])
    else:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(patients))
        n_val = max(1, round(0.1 * len(patients))) if len(patients) >= 3 else 0
        labels = np.array(["test"] * n_val + ["val"] * n_val
                          + ["train"] * (len(patients) - 2 * n_val))
        split = np.empty(len(patients), dtype=labels.dtype)
        split[order] = labels
    return CaseDataset.from_samples(Samples(
        images=np.stack(images), masks=np.stack(masks), class_names=CAMUS_CLASSES,
        sample_ids=tuple(ids), split=split, source=f"camus:{root}",
        meta={"view": view, "phase": phase, "size": size, "official_split": table is not None},
        geometry=tuple(geoms)), root=Path(root))
