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

import functools
import hashlib
import itertools
import json
import math
import reprlib
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from noisyseg._validate import check_seed
from noisyseg.data import parse_source
from noisyseg.detect import check_detectors, check_flag_rule
from noisyseg.errors import ConfigError, NoisysegError
from noisyseg.refurbish import RefurbishConfig
from noisyseg.run import VolumeView
from noisyseg.train import TrainConfig

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_SPEC_BYTES", "MAX_TRIALS", "MAX_TRIAL_VALUES", "SPEC_DIR",
           "AuditSpec", "CorruptSpec", "StudySpec", "TrialConfig", "find_spec", "load_spec"]

SPEC_DIR = Path(__file__).parent / "specs"
SECTIONS = ("data", "seed", "train", "corrupt", "audit", "volumes")
_CONTROL = (None, "none", "control")

# What a spec may hold; past these a spec is refused before it can take unbounded memory or time.
MAX_SPEC_BYTES = 1 << 20  # size of the file (1 MiB)
MAX_DEPTH = 50  # nesting levels of mappings and lists, the document itself included
MAX_NODES = 100_000  # values (mappings, lists and scalars) once YAML aliases are expanded
MAX_TRIALS = 100_000  # grid points, all grids together
MAX_TRIAL_VALUES = 5_000_000  # grid points x values of each point's config
_MAX_INT_BITS = 64


@dataclass(frozen=True)
class CorruptSpec:
    """Label errors applied to the training masks of a trial.

    The constructor's parameters are the attributes below, in that order.

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
    classes : list of str or int, or None
        Structures to corrupt (names or labels); ``None`` for the model's default.
    options : dict
        Model options, e.g. ``{"points": 6}``.
    mode : {'slicewise', 'volumetric'} or None
        Volumes only: the 2-D model on every slice along ``slice_axis`` (strength in
        pixels), or its 3-D form (strength in mm); None: volumetric where the model has one.
    slice_axis : int
        Volumes, slice-wise: the array axis (0: axial slices of a ``(z, y, x)`` volume).
    like : str or None
        A preset fitted to real raters (``lidc`` or a ``preset.json``;
        :mod:`noisyseg.corrupt.presets`): the model's fitted options and mode (overridden by
        ``options`` and ``mode``), and its target Dice when neither ``target_dice`` nor
        ``strength`` is given.

    Raises
    ------
    ConfigError
        An unknown model or ``mode``; an option the model does not take (``classes``
        included: structures go in ``classes``); not exactly one of ``target_dice`` and
        ``strength``; ``target_dice`` outside (0, 1); ``fraction`` outside [0, 1].

    Examples
    --------
    >>> CorruptSpec(model="dilate", strength=2.0, fraction=0.3).fraction
    0.3
    >>> CorruptSpec(model="dilate")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: corrupt: give exactly one of target_dice and strength for dilate ...
    """

    model: str
    target_dice: float | None = None
    strength: float | None = None
    fraction: float = 1.0
    classes: list[str | int] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    mode: str | None = None
    slice_axis: int = 0
    like: str | None = None

    def __post_init__(self) -> None:
        from noisyseg.corrupt import get_model

        if self.mode not in (None, "slicewise", "volumetric"):
            raise ConfigError(f"corrupt.mode: expected slicewise or volumetric, got {self.mode!r}")

        m = get_model(self.model)
        known = m.options_for("slicewise") | (m.options_for("volumetric", 3)
                                              if m.volumetric is not None else {})
        for key in self.options:
            if key not in known or key == "classes":
                raise ConfigError(f"corrupt.options.{key}: not an option of {self.model} "
                                  f"(options: {', '.join(k for k in known if k != 'classes')}; "
                                  "structures go in corrupt.classes)")
        if self.like is not None:
            from noisyseg.corrupt.presets import read_preset

            try:
                preset = read_preset(self.like)
                preset.options(self.model, self.mode or preset.best_mode(self.model))
            except NoisysegError as exc:
                raise ConfigError(f"corrupt.{exc}") from None
            if self.target_dice is None and self.strength is None:  # the preset's raters' Dice
                object.__setattr__(self, "target_dice", preset.target_dice)
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

    The constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    detectors : list of str
        Any of ``vog``, ``vog-online``, ``loss``, ``cleanlab``, ``disagree``; empty for none.
    refurbish : bool
        Replace flagged training masks by pseudo-labels (driven by the first detector).
    flag_rule : {'mixture', 'top', 'percentile'}
        How scores become flags (``--flag-rule``): a two-component mixture (no error level
        needed), the top ``flag_value`` fraction, or above the ``flag_value`` percentile.
    flag_value : float or None
        The fraction (``top``) or percentile (``percentile``); None with ``mixture``.
    warmup : int
        First epoch that may refurbish (``--warmup``); default 10.
    every : int
        Re-flag every this many epochs from ``warmup`` on (``--every``); default 5.
    confidence : float
        Pseudo-label only pixels predicted with at least this probability, in [0, 1]
        (``--confidence``); default 0.
    unflag : bool
        Give samples no longer flagged their given masks back (``--unflag``); default False.
    pseudo_from : {'current', 'best'}
        Pseudo-labels from the current model or the best-on-validation weights
        (``--pseudo-from``); default ``current``.
    calibrate : bool
        Pseudo-labels with per-class offsets fitted on the clean validation masks
        (``--refurbish-calibrate``); default False.
    mode : {'replace', 'ignore', 'drop', 'boundary', 'debias'}
        What a flagged mask trains on (``--refurbish-mode``); default ``replace``. See
        :class:`~noisyseg.refurbish.RefurbishConfig` for each mode.
    band : int
        Half-width in voxels of the band ``mode='boundary'`` leaves out
        (``--refurbish-band``); default 2.
    region : {'sample', 'slices'}
        What of a flagged sample changes: all of it, or (3-D networks) only its doubted
        slices (``--refurbish-region``); default ``sample``.

    Raises
    ------
    ConfigError
        An unknown detector, a bad flag rule or value, or refurbishment settings that
        :class:`~noisyseg.train.RefurbishConfig` refuses (prefixed ``audit.``).

    Examples
    --------
    >>> AuditSpec(detectors=["vog", "loss"]).refurbish_config().warmup == AuditSpec().warmup
    True
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
    region: str = _REFURBISH.region

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


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def _show(value: Any) -> str:
    """A value for a message: one line, shortened (``reprlib``), aliases never expanded."""
    return _REPR.repr(value)


def _key(key: Any) -> str:
    """A key as it appears in a dotted path (quoted where it is not plain printable text)."""
    return key if isinstance(key, str) and key and key.isprintable() else repr(key)


def _join(where: str, key: Any) -> str:
    return f"{where}.{_key(key)}" if where else _key(key)


def _kind(value: Any) -> str:
    """'a list', 'a string', ...: what a value is, for a message."""
    if value is None:
        return "null"
    for t, name in ((bool, "true or false"), (int, "an integer"), (float, "a number"),
                    (str, "a string"), (list, "a list"), (Mapping, "a mapping")):
        if isinstance(value, t):
            return name
    return type(value).__name__


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _fits(hint: Any, value: Any) -> bool:
    """Whether ``value`` (from YAML) has the type of a dataclass field annotated ``hint``."""
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(h, value) for h in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(_fits(item, v) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, Mapping)
    return True  # any other annotation: the class validates it


def _describe(hint: Any, plural: bool = False) -> str:
    """What a field annotated ``hint`` takes: 'an integer', 'a list of strings or null', ..."""
    if get_origin(hint) in (Union, types.UnionType):
        parts = [_describe(h, plural) for h in get_args(hint)]
        return (", or " if any(" or " in p for p in parts) else " or ").join(parts)
    if get_origin(hint) is list:
        return "a list of " + _describe(get_args(hint)[0], plural=True)
    one, many = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
                 float: ("a number", "numbers"), str: ("a string", "strings"),
                 type(None): ("null", "nulls")}.get(hint, ("a mapping", "mappings"))
    return many if plural else one


def _build(cls: type, section: str, value: Any) -> Any:
    """``cls(**value)`` for a spec section, every error a :class:`ConfigError` naming the field."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{section}: expected a mapping of fields, got {_show(value)}")
    hints = _hints(cls)
    known = [f.name for f in fields(cls)]
    for key, v in value.items():
        if key not in known:
            raise ConfigError(f"{section}.{_key(key)}: unknown field; expected one of {', '.join(known)}")
        if not _fits(hints[key], v):
            raise ConfigError(f"{section}.{key}: expected {_describe(hints[key])}, got {_show(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{section}.{key}: expected a finite number, got {v}")
    for f in fields(cls):
        if f.name not in value and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{section}: missing required field {f.name!r}")
    try:
        return cls(**value)
    except ConfigError as exc:  # the class's own checks, named within the section
        msg = str(exc)
        raise type(exc)(msg if msg.startswith(section) else f"{section}.{msg}") from None


def _section(d: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A section of a config dict: a mapping of fields, or ``{}`` where it is missing or null."""
    value = d.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: expected a mapping of fields, got {_show(value)}")
    return value


@dataclass(frozen=True)
class TrialConfig:
    """One trial: everything needed to reproduce it, normalised.

    The constructor's parameters are the attributes below, in that order;
    :meth:`from_dict` builds one from a spec's sections and checks them.

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
        Detectors and refurbishment.
    volumes : VolumeView
        How volumes are trained on (a 2-D network on slices by default).
    labels : dict
        The grid values that made this trial (for tables); not part of the id.

    Raises
    ------
    ConfigError
        From :meth:`from_dict`: an unknown section or field, a value of the wrong type, a
        seed in ``train``, an unknown network, a bad detector list.

    Examples
    --------
    >>> trial = load_spec("quick").trials()[0]
    >>> trial.data, trial.corrupt is None, trial.train.seed == trial.seed
    ('synthetic-echo:n=120,size=64,seed=0', True, True)
    """

    data: str
    seed: int
    train: TrainConfig
    corrupt: CorruptSpec | None
    audit: AuditSpec
    volumes: VolumeView = field(default_factory=VolumeView)
    labels: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], labels: Mapping[str, Any] | None = None) -> TrialConfig:
        """Validate and normalise a config dict (sections ``data, seed, train, corrupt, audit``)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"expected a mapping of sections, got {_show(d)}")
        for key in d:
            if key not in SECTIONS:
                raise ConfigError(f"{_key(key)}: unknown section; expected one of {', '.join(SECTIONS)}")
        data = d.get("data")
        if not isinstance(data, str):
            raise ConfigError(f"data: expected a source string such as synthetic-echo, got {_show(data)}")
        parse_source(data)
        seed = check_seed(d.get("seed", 0))
        train_d = _section(d, "train")
        if train_d.get("seed", seed) != seed:
            raise ConfigError("train.seed: set the trial's seed at the top level (seed: ...), "
                              "it seeds both the corruption and the training")
        train = _build(TrainConfig, "train", {**train_d, "seed": seed})
        from noisyseg.models import MODELS

        if train.model not in MODELS and not train.model.startswith("monai:"):
            raise ConfigError(f"train.model: unknown network {_show(train.model)}; expected one of "
                              f"{', '.join(MODELS)} or monai:NAME")
        cor = d.get("corrupt")
        if isinstance(cor, str) and cor in _CONTROL:
            cor = None
        if cor is not None and not isinstance(cor, Mapping):
            raise ConfigError(f"corrupt: expected a mapping of fields (or none), got {_show(cor)}")
        frac = None if cor is None else cor.get("fraction")
        no_errors = isinstance(frac, (int, float)) and not isinstance(frac, bool) and frac == 0
        if isinstance(cor, Mapping) and set(cor) <= {f.name for f in fields(CorruptSpec)} and (
                ("model" in cor and cor["model"] in _CONTROL) or no_errors):
            cor = None
        corrupt = None if cor is None else _build(CorruptSpec, "corrupt", cor)
        aud = dict(_section(d, "audit"))
        det = aud.get("detectors")
        if isinstance(det, str):
            aud["detectors"] = [] if det in _CONTROL else [det]
        elif det is None:
            aud["detectors"] = []
        elif isinstance(det, list):
            aud["detectors"] = list(det)
        else:
            raise ConfigError("audit.detectors: expected a detector name or a list of them, "
                              f"got {_show(det)}")
        if not aud["detectors"]:
            aud["refurbish"] = False
        audit = _build(AuditSpec, "audit", aud)
        volumes = _build(VolumeView, "volumes", _section(d, "volumes"))
        return cls(data=data, seed=seed, train=train, corrupt=corrupt, audit=audit,
                   volumes=volumes, labels=dict(labels or {}))

    def to_dict(self) -> dict[str, Any]:
        """The normalised config (what the id hashes)."""
        from dataclasses import asdict

        corrupt = None
        if self.corrupt is not None:  # the volume fields only when set: older ids stay valid
            corrupt = asdict(self.corrupt)
            for key, default in (("mode", None), ("slice_axis", 0), ("like", None)):
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
        if self.volumes != VolumeView():  # only when set: older ids stay valid
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
            f"{c.model}{f' like {c.like}' if c.like else ''}"
            f"@{c.target_dice if c.target_dice is not None else f's{c.strength}'}"
            f"x{c.fraction:.0%}")
        det = "+".join(self.audit.detectors) or "no-detector"
        ref = " refurb" if self.audit.refurbish else ""
        arch = self.train.model + (" 3d" if self.volumes.dims == 3 else "")
        return f"{arch} {err} {det}{ref} seed {self.seed}"


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    """Set the field at dotted ``path`` (``train.model_options.width``) of config dict ``d``."""
    parts = path.split(".")
    if len(parts) > MAX_DEPTH:
        raise ConfigError(f"grid.{_show(path)}: more than {MAX_DEPTH} parts in the dotted path")
    if "" in parts:
        raise ConfigError(f"grid.{_key(path)}: empty part in the dotted path")
    head, keys = parts[0], parts[1:]
    if head not in SECTIONS:
        raise ConfigError(f"grid.{_key(path)}: unknown field; the first part must be one of "
                          f"{', '.join(SECTIONS)}")
    if not keys:
        d[head] = value
        return
    if head in ("data", "seed"):
        raise ConfigError(f"grid.{_key(path)}: {head} has no sub-fields")
    current = d.get(head)
    if current is not None and not isinstance(current, Mapping):
        raise ConfigError(f"grid.{_key(path)}: {head} is {_show(current)}, not a mapping of fields")
    section = dict(current or {})
    node = section
    for k in keys[:-1]:  # e.g. corrupt.options.source or train.model_options.width
        child = node.get(k)
        node[k] = dict(child) if isinstance(child, Mapping) else {}
        node = node[k]
    node[keys[-1]] = value
    d[head] = section


def _count(value: Any, limit: int) -> int:
    """Values (mappings, lists, scalars) in ``value``, aliases expanded; stops past ``limit``."""
    n, stack = 0, [value]
    while stack and n <= limit:
        v = stack.pop()
        n += 1
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return n


@dataclass(frozen=True)
class StudySpec:
    """A parsed study spec, as :func:`load_spec` returns it.

    The constructor's parameters are the attributes below, in that order.

    Attributes
    ----------
    name : str
        The spec's name.
    base : dict
        The sections before grid overrides.
    grids : list of dict
        Each maps a dotted field to a list of values.
    source : str
        The spec's text (copied into the study folder).
    path : str
        The spec file, or ``''``.
    description : str
        One-paragraph description from the spec.

    Raises
    ------
    ConfigError
        From :meth:`trials`: a field that does not exist, a value that is not valid, or
        more trials than :data:`MAX_TRIALS`.

    Examples
    --------
    >>> spec = load_spec("quick")
    >>> spec.name, len(spec.trials())
    ('quick', 18)
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
        self._check_size()
        where = self.path or self.name
        out: dict[str, TrialConfig] = {}
        for grid in self.grids or [{}]:
            keys = list(grid)
            for values in itertools.product(*(grid[k] for k in keys)):
                labels = dict(zip(keys, values, strict=True))
                try:
                    # a copy of the base and the values: no two trials share a mutable value
                    d, copies = json.loads(json.dumps([self.base, values]))
                    for k, v in zip(keys, copies, strict=True):
                        _set(d, k, v)
                    trial = TrialConfig.from_dict(d, labels)
                except NoisysegError as exc:
                    point = ", ".join(f"{_key(k)}={_show(v)}" for k, v in labels.items())
                    raise ConfigError(f"{where}: {exc}"
                                      + (f" (grid point {point})" if point else "")) from None
                except (TypeError, ValueError) as exc:  # a value JSON cannot hold (StudySpec made in code)
                    raise ConfigError(f"{where}: not a JSON value in the spec ({exc})") from None
                out.setdefault(trial.trial_id, trial)
        return list(out.values())

    def _check_size(self) -> None:
        """Refuse a study past :data:`MAX_TRIALS` grid points or :data:`MAX_TRIAL_VALUES` values."""
        where = self.path or self.name
        label = "grids" if len(self.grids) > 1 else "grid"
        cap = MAX_TRIALS ** 2  # exact counts up to here; past it, "more than"
        counts = []
        for grid in self.grids or [{}]:
            p = 1
            for v in grid.values():
                p *= len(v)
                if p > cap:
                    break
            counts.append(min(p, cap + 1))
        total = sum(counts)
        if total > MAX_TRIALS:
            detail = (" + ".join(map(str, counts)) if len(counts) > 1
                      else " x ".join(str(len(v)) for v in self.grids[0].values()))
            n = f"more than {cap}" if total > cap else str(total)
            raise ConfigError(f"{where}: {label}: {n} trials ({detail}), more than the limit of "
                              f"{MAX_TRIALS}; split the study or shorten the lists")
        base = _count(self.base, MAX_TRIAL_VALUES)
        values = 0
        for grid, n in zip(self.grids or [{}], counts, strict=True):
            per = base + sum(max(_count(v, MAX_TRIAL_VALUES) for v in axis) for axis in grid.values())
            values += n * per
            if values > MAX_TRIAL_VALUES:
                raise ConfigError(f"{where}: {label}: {n} trials of {per} values each, more than the "
                                  f"limit of {MAX_TRIAL_VALUES} values in all trials")

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


class _Refused(yaml.MarkedYAMLError):
    """A spec the loader refuses though it is valid YAML (too deep, a duplicate key, too large)."""


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting past :data:`MAX_DEPTH`, duplicate keys and merge-key
    (``<<``) bombs while it parses, before any of it can take unbounded memory or time."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels",
                               problem_mark=self.peek_event().start_mark)
            if self._nodes > 2 * MAX_NODES:  # keys and values, before aliases are expanded
                raise _Refused(problem=f"more than {2 * MAX_NODES} YAML nodes (keys and values); "
                                       f"a spec may hold at most {MAX_NODES} values",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # merged keys may be overridden
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _Refused(problem=f"duplicate key {_show(key)} (first on line {seen[key]})",
                                       problem_mark=key_node.start_mark)
                    seen[key] = line
                except TypeError:
                    continue  # an unhashable key: SafeLoader refuses it
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node: Any) -> None:
        super().flatten_mapping(node)
        if len(node.value) > MAX_NODES:
            raise _Refused(problem=f"more than {MAX_NODES} values once YAML merge keys (<<) are "
                                   "expanded", problem_mark=node.start_mark)


def _read(path: Path) -> str:
    """The spec's text: at most :data:`MAX_SPEC_BYTES` bytes of UTF-8."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
            size = max(len(data), path.stat().st_size)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the spec ({exc.strerror or exc})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise ConfigError(f"{path}: {size} bytes, larger than the limit of {MAX_SPEC_BYTES} bytes "
                          "for a spec")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8") from None


def _parse(path: Path, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader)
    except _Refused as exc:
        raise ConfigError(f"{path} line {exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{path} line {line}: not valid YAML (unacceptable character "
                          f"#x{exc.character:04x}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{path}: not a valid spec ({exc})") from None


def _check_tree(raw: Any, path: Path) -> None:
    """Refuse what YAML can build but a spec cannot hold, expanding aliases as a copy would.

    Keys must be strings; values mappings, lists, strings, numbers, booleans or null; nesting at
    most :data:`MAX_DEPTH` levels, at most :data:`MAX_NODES` values and :data:`MAX_SPEC_BYTES`
    characters of text. Stops at the first value past a limit, so an alias bomb costs no more.
    """
    nodes = chars = 0
    stack: list[tuple[Any, str, int]] = [(raw, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        at = f"{where}: " if where else ""
        nodes += 1
        if nodes > MAX_NODES:
            raise ConfigError(f"{path}: {at}more than {MAX_NODES} values once YAML aliases are "
                              f"expanded; a spec may hold at most {MAX_NODES}")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: {at}nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            items = list(value.items())
            for k, _ in items:
                if not isinstance(k, str):
                    raise ConfigError(f"{path}: {at}key {_show(k)} is not a string (quote it)")
            stack.extend((v, _join(where, k), depth + 1) for k, v in reversed(items))
            chars += sum(len(k) for k, _ in items)
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, str):
            chars += len(value)
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(f"{path}: {at}text with a lone surrogate ({_show(value)}) is not "
                                  "supported") from None
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
            raise ConfigError(f"{path}: {at}an integer of more than {_MAX_INT_BITS} bits is not "
                              "supported")
        elif not isinstance(value, (bool, int, float, type(None))):
            kind = {"date": "a date", "datetime": "a date and time", "bytes": "binary data",
                    "set": "a set"}.get(type(value).__name__, f"a {type(value).__name__}")
            raise ConfigError(f"{path}: {at}{kind} is not a supported value (quote it to make it "
                              "a string)")
        if chars > MAX_SPEC_BYTES:
            raise ConfigError(f"{path}: {at}more than {MAX_SPEC_BYTES} characters of text once YAML "
                              "aliases are expanded")


def load_spec(name_or_path: str | Path) -> StudySpec:
    """Read and validate a study spec (YAML); every trial is checked before anything runs.

    A spec is at most :data:`MAX_SPEC_BYTES` of UTF-8 YAML without duplicate keys, nested at
    most :data:`MAX_DEPTH` levels, holding at most :data:`MAX_NODES` values once aliases are
    expanded, and expanding into at most :data:`MAX_TRIALS` grid points.

    Parameters
    ----------
    name_or_path : str or Path
        A spec file, or the name of a shipped spec (:data:`SPEC_DIR`, e.g. ``quick``).

    Returns
    -------
    StudySpec
        The parsed spec; its trials are valid.

    Raises
    ------
    ConfigError
        One line naming the file and the field (or line): unreadable, not UTF-8 or not YAML, too
        large or too deep, a duplicate key, an unknown section or field, a value of the wrong
        type, a grid value that is not a list, too many trials, or an invalid trial; no such
        file nor shipped spec.

    Examples
    --------
    >>> load_spec("quick").name
    'quick'
    >>> load_spec("no-such-spec")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: SPEC no-such-spec: no such file, nor a shipped spec (...)
    """
    path = find_spec(name_or_path)
    try:
        return _load(path)
    except RecursionError:  # a safety net: nesting is bounded while parsing
        raise ConfigError(f"{path}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ConfigError as exc:
        lines = str(exc).splitlines()
        if len(lines) > 1:  # a value's text with a line break: the CLI promises one line
            raise type(exc)(" ".join(lines)) from None
        raise


def _load(path: Path) -> StudySpec:
    text = _read(path)
    raw = _parse(path, text)
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping with data, train, grid, ...")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with data, train, grid, ..., got {_kind(raw)}")
    _check_tree(raw, path)
    allowed = {*SECTIONS, "name", "description", "grid", "grids"}
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{path}: {_key(key)}: unknown top-level field; expected one of "
                              f"{', '.join(sorted(allowed))}")
    for key in ("name", "description"):
        v = raw.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
            raise ConfigError(f"{path}: {key}: expected a string, got {_show(v)}")
    if "grid" in raw and "grids" in raw:
        raise ConfigError(f"{path}: give grid or grids, not both")
    if "grid" in raw:
        grid = raw["grid"]
        if grid is not None and not isinstance(grid, Mapping):
            raise ConfigError(f"{path}: grid: expected a mapping of field: [values], got {_show(grid)}")
        grids = [grid] if grid else []
    else:
        grids = raw.get("grids", [])
        if not isinstance(grids, list):
            raise ConfigError(f"{path}: grids: expected a list of mappings, got {_show(grids)}")
    for i, g in enumerate(grids):
        if not isinstance(g, Mapping):
            raise ConfigError(f"{path}: grids[{i}]: expected a mapping of field: [values], got {_show(g)}")
        for k, v in g.items():
            if not isinstance(v, list) or not v:
                raise ConfigError(f"{path}: grid.{_key(k)}: expected a non-empty list of values, "
                                  f"got {_show(v)}")
    base = {k: raw[k] for k in SECTIONS if k in raw}
    base.setdefault("data", "synthetic-echo")
    spec = StudySpec(name=str(raw.get("name") or path.stem), base=base,
                     grids=[dict(g) for g in grids], source=text, path=str(path),
                     description=str(raw.get("description") or "").strip())
    spec.trials()
    return spec
