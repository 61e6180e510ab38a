"""Study specs: a YAML file of base settings plus a grid of overrides, expanded into trials.

A spec has sections ``data`` (a source string), ``seed``, ``train`` (fields of
:class:`~noisyseg.train.TrainConfig`), ``corrupt`` (error model, target Dice or strength,
error level), ``audit`` (detectors, refurbishment, flag rule), ``volumes`` (for volume
sources: ``dims`` 2 or 3, ``slice_axis``, ``slice_size``, ``spacing``, ``tolerance``, as for
``noisyseg audit``), and ``grid`` (one mapping) or
``grids`` (a list of mappings whose trials are pooled). A grid maps a field, written as a
dotted path (``train.model``, ``corrupt.target_dice``, ``seed``) or a whole section
(``corrupt``), to the list of values it takes; trials are the cross product.

Every trial is normalised before it gets its id, so equivalent grid points collapse into one
trial: an error level of 0 or ``corrupt.model: none`` is the control (no corruption, no
target), and refurbishment without a detector is off. A trial's id is a hash of its
normalised config: change a field and the trial gets a new id, change nothing and a re-run
finds its finished result.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from noisyseg.data import parse_source
from noisyseg.detect import check_detectors, check_flag_rule
from noisyseg.errors import ConfigError, NoisysegError
from noisyseg.refurbish import RefurbishConfig
from noisyseg.train import TrainConfig

__all__ = ["SPEC_DIR", "AuditSpec", "CorruptSpec", "StudySpec", "TrialConfig", "VolumeSpec",
           "find_spec", "load_spec"]

SPEC_DIR = Path(__file__).parent / "specs"
SECTIONS = ("data", "seed", "train", "corrupt", "audit", "volumes")
_CONTROL = (None, "none", "control")


@dataclass(frozen=True)
class CorruptSpec:
    """Label errors applied to the training masks of a trial.

    Attributes
    ----------
    model : str
        Error model (``noisyseg corrupt --list``).
    target_dice : float or None
        Calibrate the strength to this mean Dice against the clean masks.
    strength : float or None
        Strength to apply instead of a target (unit in the model's docstring).
    fraction : float
        Error level: the fraction of training samples corrupted, in [0, 1].
    classes : list of str or None
        Structures to corrupt (names or labels); ``None`` for the model's default.
    options : dict
        Model options, e.g. ``{"points": 6}``.
    mode : {'slicewise', 'volumetric'} or None
        Volumes only: the 2-D model on every slice along ``slice_axis`` (strength in
        pixels), or its 3-D form (strength in mm); None: volumetric where the model has one.
    slice_axis : int
        Volumes, slice-wise: the array axis (0: axial slices of a ``(z, y, x)`` volume).
    """

    model: str
    target_dice: float | None = None
    strength: float | None = None
    fraction: float = 1.0
    classes: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    mode: str | None = None
    slice_axis: int = 0

    def __post_init__(self) -> None:
        from noisyseg.corrupt import get_model

        if self.mode not in (None, "slicewise", "volumetric"):
            raise ConfigError(f"corrupt.mode: expected slicewise or volumetric, got {self.mode!r}")

        m = get_model(self.model)
        for key in self.options:
            if key not in m.options or key == "classes":
                raise ConfigError(f"corrupt.options.{key}: not an option of {self.model} "
                                  f"(options: {', '.join(k for k in m.options if k != 'classes')}; "
                                  "structures go in corrupt.classes)")
        if (self.target_dice is None) == (self.strength is None):
            raise ConfigError(f"corrupt: give exactly one of target_dice and strength for "
                              f"{self.model} (got target_dice={self.target_dice}, "
                              f"strength={self.strength})")
        if self.target_dice is not None and not 0 < self.target_dice < 1:
            raise ConfigError(f"corrupt.target_dice: expected (0, 1), got {self.target_dice}")
        if not 0 <= self.fraction <= 1:
            raise ConfigError(f"corrupt.fraction: expected [0, 1], got {self.fraction}")


_REFURBISH = RefurbishConfig()


@dataclass(frozen=True)
class AuditSpec:
    """Detectors and refurbishment attached to a trial's training run.

    Attributes
    ----------
    detectors : list of str
        Any of ``vog``, ``vog-online``, ``loss``, ``cleanlab``, ``disagree``; empty for none.
    refurbish : bool
        Replace flagged training masks by pseudo-labels (driven by the first detector).
    flag_rule, flag_value, warmup, every, confidence, unflag, pseudo_from, calibrate, mode, band
        As for ``noisyseg audit`` (``calibrate`` is ``--refurbish-calibrate``, ``mode``
        ``--refurbish-mode``, ``band`` ``--refurbish-band``).
    """

    detectors: list[str] = field(default_factory=list)
    refurbish: bool = False
    flag_rule: str = "mixture"
    flag_value: float | None = None
    # the refurbishment settings, with RefurbishConfig's defaults (declared there)
    warmup: int = _REFURBISH.warmup
    every: int = _REFURBISH.every
    confidence: float = _REFURBISH.confidence
    unflag: bool = _REFURBISH.unflag
    pseudo_from: str = _REFURBISH.pseudo_from
    calibrate: bool = _REFURBISH.calibrate
    mode: str = _REFURBISH.mode
    band: int = _REFURBISH.band

    def __post_init__(self) -> None:
        check_detectors(self.detectors)
        check_flag_rule(self.flag_rule, self.flag_value)
        try:
            self.refurbish_config()  # validates warmup, every, confidence, pseudo_from, mode
        except ConfigError as exc:
            raise ConfigError(f"audit.{exc}") from None

    def refurbish_config(self) -> RefurbishConfig:
        """The refurbishment settings (driven by the first detector)."""
        names = [f.name for f in fields(RefurbishConfig) if f.name != "with_detector"]
        return RefurbishConfig(**{k: getattr(self, k) for k in names})


@dataclass(frozen=True)
class VolumeSpec:
    """How a trial on volumes trains (ignored for 2-D sources).

    Attributes
    ----------
    dims : {2, 3}
        A 2-D network on slices along ``slice_axis`` or a 3-D network on patches.
    slice_axis : int
    slice_size : int or None
        ``dims=2``: in-plane size of the slices.
    spacing : 'median', list of 3 float, or None
        ``dims=3``: resample to this voxel size in mm.
    tolerance : float
        Surface Dice tolerance in mm.
    """

    dims: int = 2
    slice_axis: int = 0
    slice_size: int | None = None
    spacing: str | list[float] | None = None
    tolerance: float = 1.0

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ConfigError(f"volumes.dims: expected 2 or 3, got {self.dims!r}")
        if self.dims == 3 and self.slice_size is not None:
            raise ConfigError("volumes.slice_size: only for dims 2 (a 3-D network takes spacing)")
        if self.dims == 2 and self.spacing is not None:
            raise ConfigError("volumes.spacing: only for dims 3 (a 2-D network takes slice_size)")

    def options(self) -> dict[str, Any]:
        """Keyword options of :func:`~noisyseg.run.run_volume_session`."""
        from dataclasses import asdict

        return asdict(self)


def _build(cls: type, section: str, value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{section}: expected a mapping of fields, got {value!r}")
    known = [f.name for f in fields(cls)]
    for key in value:
        if key not in known:
            raise ConfigError(f"{section}.{key}: unknown field; expected one of {', '.join(known)}")
    try:
        return cls(**value)
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"{section}: {exc}") from None


@dataclass(frozen=True)
class TrialConfig:
    """One trial: everything needed to reproduce it, normalised.

    Attributes
    ----------
    data : str
        Data source string (``--data``).
    seed : int
        Seeds the corruption and the training.
    train : TrainConfig
        Its ``seed`` equals ``seed``.
    corrupt : CorruptSpec or None
        ``None`` is the control (clean training masks).
    audit : AuditSpec
    volumes : VolumeSpec
        How volumes are trained on (a 2-D network on slices by default).
    labels : dict
        The grid values that made this trial (for tables); not part of the id.
    """

    data: str
    seed: int
    train: TrainConfig
    corrupt: CorruptSpec | None
    audit: AuditSpec
    volumes: VolumeSpec = field(default_factory=VolumeSpec)
    labels: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], labels: Mapping[str, Any] | None = None) -> TrialConfig:
        """Validate and normalise a config dict (sections ``data, seed, train, corrupt, audit``)."""
        for key in d:
            if key not in SECTIONS:
                raise ConfigError(f"{key}: unknown section; expected one of {', '.join(SECTIONS)}")
        data = d.get("data")
        if not isinstance(data, str):
            raise ConfigError(f"data: expected a source string such as synthetic-echo, got {data!r}")
        parse_source(data)
        seed = d.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"seed: expected an integer, got {seed!r}")
        if (d.get("train") or {}).get("seed", seed) != seed:
            raise ConfigError("train.seed: set the trial's seed at the top level (seed: ...), "
                              "it seeds both the corruption and the training")
        train = _build(TrainConfig, "train", {**(d.get("train") or {}), "seed": seed})
        from noisyseg.models import MODELS

        if train.model not in MODELS and not train.model.startswith("monai:"):
            raise ConfigError(f"train.model: unknown network {train.model!r}; expected one of "
                              f"{', '.join(MODELS)} or monai:NAME")
        cor = d.get("corrupt")
        if isinstance(cor, str) and cor in _CONTROL:
            cor = None
        if isinstance(cor, Mapping) and set(cor) <= {f.name for f in fields(CorruptSpec)} and (
                ("model" in cor and cor["model"] in _CONTROL) or cor.get("fraction") == 0):
            cor = None
        corrupt = None if cor is None else _build(CorruptSpec, "corrupt", cor)
        aud = dict(d.get("audit") or {})
        if isinstance(aud.get("detectors"), str):
            aud["detectors"] = [] if aud["detectors"] in _CONTROL else [aud["detectors"]]
        elif aud.get("detectors") is None:
            aud["detectors"] = []
        else:
            aud["detectors"] = list(aud["detectors"])
        if not aud["detectors"]:
            aud["refurbish"] = False
        audit = _build(AuditSpec, "audit", aud)
        volumes = _build(VolumeSpec, "volumes", d.get("volumes") or {})
        return cls(data=data, seed=seed, train=train, corrupt=corrupt, audit=audit,
                   volumes=volumes, labels=dict(labels or {}))

    def to_dict(self) -> dict[str, Any]:
        """The normalised config (what the id hashes)."""
        from dataclasses import asdict

        corrupt = None
        if self.corrupt is not None:  # the volume fields only when set: older ids stay valid
            corrupt = asdict(self.corrupt)
            for key, default in (("mode", None), ("slice_axis", 0)):
                if corrupt[key] == default:
                    del corrupt[key]
        train = self.train.to_dict()
        # fields added later leave the id alone at their defaults: older ids stay valid
        for key, default in (("patch_size", None), ("precision", "auto"),
                             ("memory_format", "auto")):
            if train.get(key, default) == default:
                train.pop(key, None)
        audit = asdict(self.audit)
        if audit["band"] == _REFURBISH.band:  # added later: older ids stay valid
            del audit["band"]
        out = {"data": self.data, "seed": self.seed, "train": train,
               "corrupt": corrupt, "audit": audit}
        if self.volumes != VolumeSpec():  # only when set: older ids stay valid
            out["volumes"] = asdict(self.volumes)
        return out

    @property
    def trial_id(self) -> str:
        """Stable 12-character id: a hash of the normalised config."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """A short human-readable name, e.g. ``unet natural@0.90x100% vog+refurb seed 0``."""
        c = self.corrupt
        err = "control" if c is None else (
            f"{c.model}@{c.target_dice if c.target_dice is not None else f's{c.strength}'}"
            f"x{c.fraction:.0%}")
        det = "+".join(self.audit.detectors) or "no-detector"
        ref = " refurb" if self.audit.refurbish else ""
        arch = self.train.model + (" 3d" if self.volumes.dims == 3 else "")
        return f"{arch} {err} {det}{ref} seed {self.seed}"


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if head not in SECTIONS:
        raise ConfigError(f"grid.{path}: unknown field; the first part must be one of "
                          f"{', '.join(SECTIONS)}")
    if not rest:
        d[head] = value
        return
    if head in ("data", "seed"):
        raise ConfigError(f"grid.{path}: {head} has no sub-fields")
    section = dict(d.get(head) or {})
    keys = rest.split(".")
    node = section
    for k in keys[:-1]:  # e.g. corrupt.options.source or train.model_options.width
        child = node.get(k)
        node[k] = dict(child) if isinstance(child, Mapping) else {}
        node = node[k]
    node[keys[-1]] = value
    d[head] = section


@dataclass(frozen=True)
class StudySpec:
    """A parsed study spec.

    Attributes
    ----------
    name : str
    base : dict
        The sections before grid overrides.
    grids : list of dict
        Each maps a dotted field to a list of values.
    source : str
        The spec's text (copied into the study folder).
    path : str
    description : str
    """

    name: str
    base: dict[str, Any]
    grids: list[dict[str, list[Any]]]
    source: str = ""
    path: str = ""
    description: str = ""

    def trials(self) -> list[TrialConfig]:
        """Expand the grids into normalised, de-duplicated trials (first occurrence kept).

        Raises
        ------
        ConfigError
            A field that does not exist or a value that is not valid, naming the field.
        """
        out: dict[str, TrialConfig] = {}
        for grid in self.grids or [{}]:
            keys = list(grid)
            for values in itertools.product(*(grid[k] for k in keys)):
                d = json.loads(json.dumps(self.base))
                for k, v in zip(keys, values, strict=True):
                    _set(d, k, v)
                labels = dict(zip(keys, values, strict=True))
                try:
                    trial = TrialConfig.from_dict(d, labels)
                except NoisysegError as exc:
                    where = ", ".join(f"{k}={v!r}" for k, v in labels.items())
                    raise ConfigError(f"{self.path or self.name}: {exc}"
                                      + (f" (grid point {where})" if where else "")) from None
                out.setdefault(trial.trial_id, trial)
        return list(out.values())

    def grid_points(self) -> int:
        """Number of grid points before de-duplication."""
        n = 0
        for grid in self.grids or [{}]:
            p = 1
            for v in grid.values():
                p *= len(v)
            n += p
        return n


def find_spec(name_or_path: str | Path) -> Path:
    """A spec file: a path, or the name of a shipped spec (``quick``, ``heller2018``, ...)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = SPEC_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(q.stem for q in SPEC_DIR.glob("*.yaml")))
    raise ConfigError(f"SPEC {name_or_path}: no such file, nor a shipped spec ({names})")


def load_spec(name_or_path: str | Path) -> StudySpec:
    """Read and validate a study spec (YAML); every trial is checked before anything runs.

    Raises
    ------
    ConfigError
        Unreadable YAML, an unknown section or field, a grid value that is not a list, or an
        invalid trial, with the field named.
    """
    path = find_spec(name_or_path)
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping with data, train, grid, ...")
    allowed = {*SECTIONS, "name", "description", "grid", "grids"}
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{path}: {key}: unknown top-level field; expected one of "
                              f"{', '.join(sorted(allowed))}")
    if "grid" in raw and "grids" in raw:
        raise ConfigError(f"{path}: give grid or grids, not both")
    grids = raw.get("grids", [raw["grid"]] if raw.get("grid") else [])
    if not isinstance(grids, list):
        raise ConfigError(f"{path}: grids: expected a list of mappings")
    for i, g in enumerate(grids):
        if not isinstance(g, Mapping):
            raise ConfigError(f"{path}: grids[{i}]: expected a mapping of field: [values]")
        for k, v in g.items():
            if not isinstance(v, list) or not v:
                raise ConfigError(f"{path}: grid.{k}: expected a non-empty list of values, got {v!r}")
    base = {k: raw[k] for k in SECTIONS if k in raw}
    base.setdefault("data", "synthetic-echo")
    spec = StudySpec(name=str(raw.get("name") or path.stem), base=base,
                     grids=[dict(g) for g in grids], source=text, path=str(path),
                     description=str(raw.get("description") or "").strip())
    spec.trials()
    return spec
