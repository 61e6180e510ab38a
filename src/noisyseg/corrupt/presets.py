"""Error-model presets fitted to real raters: ``corrupt --like lidc`` (or ``--like PRESET.json``).

A preset says, for each error model and mode, the options whose simulated readers came
closest to a set of real raters (``noisyseg raters --fit`` writes one, ``preset.json``), the
real raters' mean Dice against their leave-one-out consensus, and how close each fit came
(``realism``: the mean normalised Wasserstein distance of the rater statistics, lower is
closer; :mod:`noisyseg.raters`). noisyseg ships ``lidc``, fitted to the LIDC-IDRI
radiologists (:data:`PRESETS`).

Applying a preset (:func:`apply_preset`) to a model on data of ``ndim`` spatial dimensions:

- the **mode** is the one given, else the preset's most realistic mode of the model
  (volumes), else the 2-D form (2-D data: the preset's ``slicewise`` fit, its options in
  the 2-D model's units);
- the **options** are the preset's for that model and mode, updated by those given;
- the **target Dice** is the one given, else the preset's (unless a strength is given).

The strength itself is always calibrated on the data being corrupted: a preset fixes the
character of the error (its smoothness, its bias), the target Dice its size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisyseg.corrupt.models import get_model
from noisyseg.errors import ConfigError, DataError

__all__ = ["PRESETS", "Preset", "apply_preset", "read_preset", "write_preset"]

_PRESET_DIR = Path(__file__).parent / "presets"
#: The presets shipped with noisyseg, by name.
PRESETS = ("lidc",)
#: The format version ``preset.json`` files carry.
PRESET_VERSION = 1
_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Preset:
    """Error-model options fitted to real raters, per model and mode.

    The constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    name : str
        ``'lidc'``, or the name written by ``noisyseg raters --fit``.
    target_dice : float
        The real raters' mean Dice against their leave-one-out consensus.
    fits : dict
        ``{model: {mode: {"options": {...}, "realism": float, "strength": float,
        "strength_unit": str}}}``, one entry per model and mode fitted.
    source : str
        The raters fitted (a ``--data`` string such as ``lidc:min_readers=3``).
    command : str
        The command that wrote the preset.
    extra : dict
        Anything else the file holds (seed, level, versions, the number of cases).

    Examples
    --------
    >>> p = Preset("mine", 0.8, {"natural": {"volumetric": {"options": {"scale": 3.0},
    ...                                                      "realism": 0.2}}})
    >>> p.best_mode("natural"), p.options("natural", "volumetric")
    ('volumetric', {'scale': 3.0})
    """

    name: str
    target_dice: float
    fits: dict[str, dict[str, dict[str, Any]]]
    source: str = ""
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def modes(self, model: str) -> list[str]:
        """The modes of ``model`` the preset holds a fit for."""
        return list(self.fits.get(model, {}))

    def best_mode(self, model: str) -> str:
        """The mode of ``model`` whose fit came closest to the raters (lowest ``realism``).

        Raises
        ------
        ConfigError
            The preset holds no fit of ``model``.
        """
        fits = self.fits.get(model)
        if not fits:
            raise ConfigError(f"like: preset {self.name!r} holds no fit of {model!r}; it has "
                              f"{sorted(self.fits)}")
        return min(fits, key=lambda m: _realism(fits[m]))

    def options(self, model: str, mode: str) -> dict[str, Any]:
        """The fitted options of ``model`` in ``mode``.

        Raises
        ------
        ConfigError
            No fit of ``model`` in ``mode``.
        """
        if model not in self.fits:
            self.best_mode(model)  # raises, naming the models the preset has
        fit = self.fits[model].get(mode)
        if fit is None:
            raise ConfigError(f"like: preset {self.name!r} holds no fit of {model!r} in mode "
                              f"{mode!r}; it has {self.modes(model) or 'none'}")
        return dict(fit.get("options", {}))

    def to_dict(self) -> dict[str, Any]:
        """The preset as ``preset.json`` holds it."""
        return {"format_version": PRESET_VERSION, "name": self.name,
                "target_dice": self.target_dice, "source": self.source,
                "command": self.command, "fits": self.fits, **self.extra}


def _realism(fit: Mapping[str, Any]) -> float:
    r = fit.get("realism")
    return float(r) if isinstance(r, (int, float)) and math.isfinite(r) else math.inf


def _check(doc: Any, where: str) -> Preset:
    if not isinstance(doc, dict):
        raise DataError(f"{where}: expected a JSON object (a preset written by noisyseg raters "
                        f"--fit)")
    version = doc.get("format_version")
    if version != PRESET_VERSION:
        raise DataError(f"{where}: format_version {version!r}; this noisyseg reads version "
                        f"{PRESET_VERSION}")
    target = doc.get("target_dice")
    if isinstance(target, bool) or not isinstance(target, (int, float)) \
            or not 0.0 < float(target) < 1.0:
        raise DataError(f"{where}: target_dice: expected a number in (0, 1), got {target!r}")
    fits = doc.get("fits")
    if not isinstance(fits, dict) or not fits:
        raise DataError(f"{where}: fits: expected an object of models, got {fits!r:.60}")
    for model, modes in fits.items():
        try:
            m = get_model(model)
        except ConfigError as exc:
            raise DataError(f"{where}: fits: {exc}") from None
        if not isinstance(modes, dict) or not modes:
            raise DataError(f"{where}: fits.{model}: expected an object of modes")
        for mode, fit in modes.items():
            if mode not in m.modes:
                raise DataError(f"{where}: fits.{model}: {model} has modes {list(m.modes)}, "
                                f"got {mode!r}")
            opts = fit.get("options", {}) if isinstance(fit, dict) else None
            if not isinstance(opts, dict):
                raise DataError(f"{where}: fits.{model}.{mode}: expected an object with "
                                f"'options'")
            allowed = m.options_for(mode, 3 if mode == "volumetric" else 2)
            unknown = sorted(set(opts) - set(allowed))
            if unknown:
                raise DataError(f"{where}: fits.{model}.{mode}: {model} has no option(s) "
                                f"{unknown}; expected {sorted(allowed)}")
    known = {"format_version", "name", "target_dice", "source", "command", "fits"}
    return Preset(str(doc.get("name", "")), float(target), fits, str(doc.get("source", "")),
                  str(doc.get("command", "")), {k: v for k, v in doc.items() if k not in known})


def read_preset(like: str | Path) -> Preset:
    """Read a shipped preset by name (:data:`PRESETS`) or a ``preset.json`` file.

    Parameters
    ----------
    like : str or Path
        ``'lidc'``, or the path of a file ``noisyseg raters --fit`` wrote.

    Returns
    -------
    Preset

    Raises
    ------
    ConfigError
        Neither a shipped preset nor an existing file.
    DataError
        The file is too large, not JSON, of another format version, or names a model, mode
        or option that does not exist (one line naming the file).

    Examples
    --------
    >>> p = read_preset("lidc")
    >>> p.name, 0.5 < p.target_dice < 1.0, "natural" in p.fits
    ('lidc', True, True)
    """
    text = str(like)
    if text in PRESETS:
        path = _PRESET_DIR / f"{text}.json"
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"like: {text!r} is neither a shipped preset ({', '.join(PRESETS)}) "
                              f"nor a preset file")
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise DataError(f"{path}: {size} bytes; a preset is a small JSON file "
                            f"(at most {_MAX_BYTES})")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a preset file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return _check(doc, str(path))


def write_preset(path: str | Path, preset: Preset) -> Path:
    """Write ``preset`` as JSON to ``path`` (a temporary file renamed into place).

    Parameters
    ----------
    path : str or Path
        The file to write.
    preset : Preset

    Returns
    -------
    Path

    Raises
    ------
    DataError
        The preset does not pass :func:`read_preset`'s checks (nothing is written).

    Examples
    --------
    >>> import tempfile
    >>> p = Preset("mine", 0.8, {"dilate": {"volumetric": {"options": {}, "realism": 1.3}}})
    >>> out = write_preset(Path(tempfile.mkdtemp()) / "preset.json", p)
    >>> read_preset(out).best_mode("dilate")
    'volumetric'
    """
    doc = preset.to_dict()
    _check(json.loads(json.dumps(doc)), str(path))
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    tmp.replace(out)
    return out


def apply_preset(like: str | Path | Preset, model: str, *, ndim: int, mode: str | None = None,
                 options: Mapping[str, Any] | None = None, target_dice: float | None = None,
                 strength: float | None = None) -> tuple[str | None, dict[str, Any], float | None]:
    """The mode, options and target Dice a preset gives ``model`` (see the module notes).

    Parameters
    ----------
    like : str, Path or Preset
        A shipped preset's name, a ``preset.json`` file or a :class:`Preset`.
    model : str
        The error model.
    ndim : int
        Spatial dimensions of the data (2 or 3).
    mode : {'slicewise', 'volumetric'}, optional
        The mode asked for (volumes); default the preset's best.
    options : dict, optional
        Options given, which override the preset's.
    target_dice, strength : float, optional
        Given; the preset's target Dice is used when neither is.

    Returns
    -------
    mode : str or None
        ``None`` for 2-D data.
    options : dict
    target_dice : float or None

    Raises
    ------
    ConfigError
        No such preset, or no fit of ``model`` (in ``mode``).

    Examples
    --------
    >>> p = Preset("mine", 0.8, {"natural": {"volumetric": {"options": {"scale": 3.0},
    ...                                                      "realism": 0.2},
    ...                                      "slicewise": {"options": {"points": 12},
    ...                                                     "realism": 0.3}}})
    >>> apply_preset(p, "natural", ndim=3)
    ('volumetric', {'scale': 3.0}, 0.8)
    >>> apply_preset(p, "natural", ndim=2, target_dice=0.9)
    (None, {'points': 12}, 0.9)
    """
    preset = like if isinstance(like, Preset) else read_preset(like)
    if ndim == 2:
        use, out_mode = "slicewise", None
    else:
        use = mode or preset.best_mode(model)
        out_mode = use
    opts = preset.options(model, use) | dict(options or {})
    if target_dice is None and strength is None:
        target_dice = preset.target_dice
    return out_mode, opts, target_dice
