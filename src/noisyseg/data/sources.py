"""Parse a data source string (``--data``) and load the dataset it names.

Grammar: ``NAME[:ARG][,key=value...]`` for a registered source, or ``PATH[,key=value...]``
for a folder dataset. Examples::

    synthetic-echo
    synthetic-echo:n=500,size=128,seed=0
    synthetic-ct:n=24,size=128,slices=48
    camus:/data/CAMUS,view=4CH,phase=ED,size=256
    nnunet:/data/nnUNet_raw/Dataset003_Liver
    msd:/data/Task03_Liver,seed=1
    /data/my_dataset,size=256

Every source gives a :class:`~noisyseg.data.CaseDataset`: 2-D sources (synthetic-echo,
CAMUS, a folder of 2-D images) hold their cases in memory on one grid; volumes
(synthetic-ct, nnU-Net, Decathlon, a folder of 3-D images) and a folder of 2-D images read
with ``lazy=true`` (or ``load_dataset(..., lazy=True)``) are read one case at a time; a
network then trains on them as on the slices of volumes, a 2-D image being a volume of one
slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisyseg._validate import check_seed
from noisyseg.data.camus import load_camus
from noisyseg.data.cases import (
    CaseDataset,
    load_msd,
    load_nnunet,
)
from noisyseg.data.ct_phantom import synthetic_ct
from noisyseg.data.folder import check_file_name, load_folder, show_path
from noisyseg.data.synthetic import synthetic_echo
from noisyseg.errors import ConfigError, DataError

__all__ = ["SOURCES", "absolute_source", "load_dataset", "parse_body", "parse_source", "source_path"]


@dataclass(frozen=True)
class _Source:
    loader: Callable[..., CaseDataset]
    takes_path: bool
    options: dict[str, type]


def _flag(value: str) -> bool:
    """A source option's yes/no value: ``true``/``1``/``yes`` or ``false``/``0``/``no``."""
    v = value.lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(value)


#: How an option's expected type reads in a message.
_TYPE_NAMES: dict[Callable[[str], Any], str] = {int: "int", float: "number", str: "str",
                                                _flag: "flag (true or false)"}


SOURCES: dict[str, _Source] = {
    "synthetic-echo": _Source(synthetic_echo, False, {"n": int, "size": int, "seed": int}),
    "synthetic-ct": _Source(synthetic_ct, False, {"n": int, "size": int, "slices": int,
                                                  "seed": int}),
    "camus": _Source(load_camus, True, {"view": str, "phase": str, "size": int, "seed": int}),
    "nnunet": _Source(load_nnunet, True, {"seed": int}),
    "msd": _Source(load_msd, True, {"seed": int}),
    "folder": _Source(load_folder, True, {"size": int, "seed": int, "classes": str,
                                          "lazy": _flag}),
}


def parse_source(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split a source string into ``(name, path, options)`` with typed option values.

    Parameters
    ----------
    spec : str
        Source string, ``NAME[:ARG][,key=value...]`` or ``PATH[,key=value...]`` (see the
        module docstring).

    Returns
    -------
    name : str
        A key of :data:`SOURCES` (``'folder'`` for a plain path).
    path : str or None
        The path the source reads; ``None`` for generated sources.
    options : dict of str to object
        Option values converted to their types (int, str or bool).

    Raises
    ------
    ConfigError
        Empty source; a control character or bytes that are not UTF-8; a source that needs
        a path and has none; an option not written ``key=value``, given twice, unknown for
        the source, or with a value of the wrong type.

    Examples
    --------
    >>> parse_source("synthetic-echo:n=20,size=64")
    ('synthetic-echo', None, {'n': 20, 'size': 64})
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("data: empty source; try 'synthetic-echo'")
    try:
        check_file_name(spec)
    except DataError as exc:
        raise ConfigError(f"data: {show_path(spec)}: the source string holds a control character "
                          f"or bytes that are not UTF-8") from exc
    head, sep, rest = spec.partition(":")
    if head in SOURCES and sep:
        name, body = head, rest
    elif spec.split(",")[0] in SOURCES:
        name, body = spec.split(",")[0], spec[len(spec.split(",")[0]):].lstrip(",")
    else:
        name, body = "folder", spec
    path, opts = parse_body(spec, name, body, SOURCES[name].options,
                            path="required" if SOURCES[name].takes_path else "none")
    return name, path, opts


def parse_body(spec: str, name: str, body: str, options: dict[str, Callable[[str], Any]], *,
               path: str = "none") -> tuple[str | None, dict[str, Any]]:
    """Split the part of a source string after its name into ``(path, options)``.

    Parameters
    ----------
    spec : str
        The whole source string (for messages).
    name : str
        The source's name.
    body : str
        What follows ``NAME:``: ``[PATH][,key=value...]``.
    options : dict
        Each option's name and the function that converts its value (``int``, ``str``, ...).
    path : {'none', 'required', 'optional'}
        Whether the body starts with a path.

    Returns
    -------
    path : str or None
    options : dict

    Raises
    ------
    ConfigError
        A required path missing; an option not written ``key=value``, given twice, unknown
        or with a value its converter refuses.

    Examples
    --------
    >>> parse_body("lidc:min_readers=3", "lidc", "min_readers=3", {"min_readers": int},
    ...            path="optional")
    (None, {'min_readers': 3})
    """
    parts = [p for p in body.split(",") if p != ""] if body else []
    where = None
    if path != "none" and parts and "=" not in parts[0]:
        where = parts.pop(0)
    elif path == "required":
        raise ConfigError(f"data: {spec}: source {name!r} needs a path, e.g. {name}:/data/DIR")
    opts: dict[str, Any] = {}
    for p in parts:
        key, eq, value = p.partition("=")
        if not eq:
            raise ConfigError(f"data: {spec}: option {p!r} should look like key=value")
        key = key.strip()
        if key in opts:
            raise ConfigError(f"data: {spec}: option {key} given twice")
        if key not in options:
            raise ConfigError(f"data: {spec}: unknown option {key!r} for {name}; "
                              f"expected one of {sorted(options)}")
        try:
            opts[key] = options[key](value.strip())
        except ValueError as exc:
            raise ConfigError(f"data: {spec}: option {key}={value!r} is not a valid "
                              f"{_TYPE_NAMES.get(options[key], 'value')}") from exc
    return where, opts


def _check_path(spec: str, path: str) -> None:
    """Refuse a path string the file system cannot take (a NUL byte, a control character,
    bytes that are not UTF-8)."""
    if "\x00" in path:
        raise ConfigError(f"data: {show_path(spec)}: the path holds a NUL byte")
    try:
        check_file_name(path)
    except DataError as exc:
        raise ConfigError(f"data: {show_path(spec)}: the path is not valid UTF-8 or holds a "
                          f"control character") from exc


def absolute_source(spec: str) -> str:
    """Return ``spec`` with its path made absolute.

    A record of the result still loads from another working directory; generated sources
    are returned as they are (stripped of surrounding white space).

    Parameters
    ----------
    spec : str
        Source string (see :func:`parse_source`).

    Returns
    -------
    str
        The source string with its path resolved (``~`` expanded), options kept.

    Raises
    ------
    ConfigError
        ``spec`` does not parse (see :func:`parse_source`).

    Examples
    --------
    >>> absolute_source("synthetic-echo:n=20")
    'synthetic-echo:n=20'
    """
    name, path, _ = parse_source(spec)
    if path is None:
        return spec.strip()
    spec = spec.strip()
    absolute = str(Path(path).expanduser().resolve())
    if name == "folder":
        return absolute + spec[len(path):]
    head = f"{name}:"
    return head + absolute + spec[len(head) + len(path):]


def source_path(spec: str) -> Path | None:
    """Return the file or folder a source string reads (``None`` for generated data).

    What an output may not overwrite (:func:`~noisyseg.data.outdir.check_out_dir`).

    Parameters
    ----------
    spec : str
        Source string (see :func:`parse_source`).

    Returns
    -------
    Path or None
        The path with ``~`` expanded (not resolved), or ``None`` for generated sources.

    Raises
    ------
    ConfigError
        ``spec`` does not parse (see :func:`parse_source`).

    Examples
    --------
    >>> source_path("synthetic-echo:n=20") is None
    True
    >>> source_path("nnunet:/data/Dataset003_Liver").as_posix()
    '/data/Dataset003_Liver'
    """
    _, path, _ = parse_source(spec)
    return None if path is None else Path(path).expanduser()


def load_dataset(spec: str, *, lazy: bool = False) -> CaseDataset:
    """Load the dataset a source string names (see the module docstring).

    Parameters
    ----------
    spec : str
        Source string (see :func:`parse_source`).
    lazy : bool, default False
        Read a folder of 2-D images one case at a time too (a :class:`CaseDataset` on the
        files' own grid, no ``size``): what streaming consumers (``noisyseg rank``) want for
        10,000s of images. Volume sources are always read one case at a time.

    Returns
    -------
    CaseDataset
        The dataset the source names.

    Raises
    ------
    ConfigError
        ``spec`` does not parse; its path is neither a known source nor an existing folder,
        or holds a NUL byte or a control character; ``n``, ``size`` or ``slices`` is not
        positive; ``seed`` is invalid; the loader refuses an option.
    DataError
        The files cannot be read (raised by the loader, or for an ``OSError`` such as a
        name too long or a folder that cannot be listed).

    Examples
    --------
    >>> ds = load_dataset("synthetic-echo:n=4,size=32,seed=0")
    >>> len(ds)
    4
    """
    return _load(spec, lazy=lazy)


def _load(spec: str, *, lazy: bool = False) -> CaseDataset:
    spec = spec.strip()
    name, path, opts = parse_source(spec)
    if path is not None:
        _check_path(spec, path)
    try:
        return _load_parsed(spec, name, path, opts, lazy=lazy)
    except OSError as exc:  # a name too long, a folder that cannot be listed
        raise DataError(f"data: {show_path(spec)}: {exc.strerror or type(exc).__name__}"
                        f"{f' ({show_path(exc.filename)})' if exc.filename else ''}") from exc


def _load_parsed(spec: str, name: str, path: str | None, opts: dict[str, Any], *,
                 lazy: bool) -> CaseDataset:
    if name == "folder" and path is not None and not Path(path).exists():
        raise ConfigError(f"data: {spec}: {path!r} is neither a known source "
                          f"({', '.join(s for s in SOURCES if s != 'folder')}) nor a folder")
    if "classes" in opts:
        opts["classes"] = tuple(c for c in opts["classes"].split("|") if c)
    for key in ("n", "size", "slices"):
        if key in opts and opts[key] < 1:
            raise ConfigError(f"data: {spec}: option {key} must be positive, got {opts[key]}")
    if "seed" in opts:
        try:
            check_seed(opts["seed"])
        except ConfigError as exc:
            raise ConfigError(f"data: {spec}: option {exc}") from exc
    src = SOURCES[name]
    if name == "folder":
        opts["lazy"] = lazy or opts.get("lazy", False)
    try:
        ds = src.loader(path, **opts) if src.takes_path else src.loader(**opts)
    except ConfigError as exc:
        if str(exc).startswith("data:"):
            raise
        raise ConfigError(f"data: {spec}: option {exc}") from exc
    return ds
