"""Corrupting a dataset named by a ``--data`` string into a new dataset folder: what
``noisyseg corrupt`` and :func:`noisyseg.api.run_corrupt` do."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from noisyseg._validate import check_seed, parse_classes
from noisyseg.corrupt.figures import corruption_figure
from noisyseg.corrupt.presets import apply_preset
from noisyseg.corrupt.stream import CaseCorruption, corrupt_cases
from noisyseg.data import load_dataset, source_path
from noisyseg.data.outdir import atomic_dir, check_out_dir

__all__ = ["write_corrupted"]


def write_corrupted(*, data: str, model: str, out: str | Path, target_dice: float | None = None,
                    strength: float | None = None, fraction: float = 1.0,
                    classes: Sequence[str] | None = None, options: dict[str, Any] | None = None,
                    seed: int = 0, fmt: str = "nii.gz", mode: str | None = None,
                    slice_axis: int = 0, like: str | Path | None = None,
                    overwrite: bool = False, figure: bool = True,
                    progress: Callable[[int, int], None] | None = None
                    ) -> CaseCorruption:
    """Corrupt the training masks of a ``--data`` source into a new dataset folder.

    Loads ``data``, corrupts its training masks with :func:`~noisyseg.corrupt.corrupt_cases`
    and writes the dataset to ``out`` atomically: nothing is written when a check fails. See
    :func:`noisyseg.api.run_corrupt` for what the folder holds.

    Parameters
    ----------
    data : str
        A ``--data`` source string (a dataset folder, ``synthetic-echo:n=..``, ...).
    model : str
        Registered error model name (:data:`~noisyseg.corrupt.ERROR_MODELS`).
    out : str or Path
        The dataset folder to write.
    target_dice : float, optional
        Calibrate the strength to this mean Dice of the corrupted masks, in (0, 1).
    strength : float, optional
        Strength to apply, in the model's unit (e.g. pixels). Exactly one of ``strength``
        and ``target_dice`` must be given.
    fraction : float
        Fraction of training cases to corrupt, in [0, 1].
    classes : sequence of str, optional
        Names (or labels) of the foreground classes to corrupt (default: all).
    options : dict, optional
        Further keyword options of the model.
    seed : int
        Seed of the case selection and of every case's generator.
    fmt : str
        Image file format of a volume dataset written (default ``nii.gz``).
    mode : {'slicewise', 'volumetric'}, optional
        How the model applies to volumes (default: volumetric where it has a 3-D form).
    slice_axis : int
        Slice axis for slice-wise mode (array order).
    like : str or Path, optional
        A preset fitted to real raters (``'lidc'`` or a ``preset.json``,
        :mod:`noisyseg.corrupt.presets`): its options and mode for ``model`` (updated by
        ``options`` and ``mode``), and its target Dice unless ``target_dice`` or
        ``strength`` is given.
    overwrite : bool
        Replace an existing ``out``.
    figure : bool
        Also write ``examples.png`` (:func:`~noisyseg.corrupt.corruption_figure`).
    progress : callable, optional
        Called ``progress(i, n)`` as cases are written.

    Returns
    -------
    CaseCorruption

    Raises
    ------
    ConfigError
        A bad ``seed``, ``classes``, ``out`` (existing without ``overwrite``, or inside an
        input) or ``data``, and what :func:`~noisyseg.corrupt.corrupt_cases` refuses.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = write_corrupted(data="synthetic-echo:n=4,size=32,seed=0", model="erode",
    ...                           strength=1.0, out=os.path.join(d, "noisy"))
    ...     "examples.png" in os.listdir(os.path.join(d, "noisy"))
    True
    >>> res.config["n_corrupted"], round(res.config["mean_dice_corrupted"], 3)
    (2, 0.358)
    """
    check_seed(seed)
    inputs = [source_path(data)]
    check_out_dir(out, overwrite=overwrite, inputs=inputs)
    ds = load_dataset(data)
    provenance: dict[str, Any] = {"data": data, "format": fmt}
    if like is not None:
        ndim = ds.spatial_dims if ds.samples is not None else ds.label_geometry(0).ndim
        mode, options, target_dice = apply_preset(like, model, ndim=ndim, mode=mode,
                                                  options=options, target_dice=target_dice,
                                                  strength=strength)
        provenance["like"] = str(like)
    cls = parse_classes(classes, ds.class_names) if classes else None
    with atomic_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        res = corrupt_cases(ds, model, tmp, strength=strength, target_dice=target_dice,
                            fraction=fraction, classes=cls, seed=seed, mode=mode,
                            slice_axis=slice_axis, fmt=fmt,
                            provenance=provenance, progress=progress,
                            **(options or {}))
        if figure:
            rec = tmp / "noisyseg" if ds.layout in ("nnunet", "msd") else tmp
            res.config["channels"] = list(ds.channel_names)
            corruption_figure(res, ds.class_names, rec / "examples.png")
    return res
