"""Parse a data source string (``--data``) and load the dataset it names.

Grammar: ``NAME[:ARG][,key=value...]`` for a registered source, or ``PATH[,key=value...]``
for a folder dataset. Examples::

    synthetic-echo
    synthetic-echo:n=500,size=128,seed=0
    camus:/data/CAMUS,view=4CH,phase=ED,size=256
    /data/my_dataset,size=256
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisyseg.data.camus import load_camus
from noisyseg.data.dataset import SegDataset
from noisyseg.data.folder import load_folder
from noisyseg.data.synthetic import synthetic_echo
from noisyseg.errors import ConfigError

__all__ = ["SOURCES", "load_dataset", "parse_source"]


@dataclass(frozen=True)
class _Source:
    loader: Callable[..., SegDataset]
    takes_path: bool
    options: dict[str, type]


SOURCES: dict[str, _Source] = {
    "synthetic-echo": _Source(synthetic_echo, False, {"n": int, "size": int, "seed": int}),
    "camus": _Source(load_camus, True, {"view": str, "phase": str, "size": int, "seed": int}),
    "folder": _Source(load_folder, True, {"size": int, "seed": int, "classes": str}),
}


def parse_source(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split a source string into ``(name, path, options)`` with typed option values.

    Raises
    ------
    ConfigError
        Unknown source or option, or an option value of the wrong type.

    Examples
    --------
    >>> parse_source("synthetic-echo:n=20,size=64")
    ('synthetic-echo', None, {'n': 20, 'size': 64})
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("data: empty source; try 'synthetic-echo'")
    head, sep, rest = spec.partition(":")
    if head in SOURCES and sep:
        name, body = head, rest
    elif spec.split(",")[0] in SOURCES:
        name, body = spec.split(",")[0], spec[len(spec.split(",")[0]):].lstrip(",")
    else:
        name, body = "folder", spec
    src = SOURCES[name]
    parts = [p for p in body.split(",") if p != ""] if body else []
    path = None
    if src.takes_path:
        if not parts or "=" in parts[0]:
            raise ConfigError(f"data: {spec}: source {name!r} needs a path, e.g. {name}:/data/DIR")
        path = parts.pop(0)
    opts: dict[str, Any] = {}
    for p in parts:
        key, eq, value = p.partition("=")
        if not eq:
            raise ConfigError(f"data: {spec}: option {p!r} should look like key=value")
        key = key.strip()
        if key not in src.options:
            raise ConfigError(f"data: {spec}: unknown option {key!r} for {name}; "
                              f"expected one of {sorted(src.options)}")
        try:
            opts[key] = src.options[key](value.strip())
        except ValueError as exc:
            raise ConfigError(f"data: {spec}: option {key}={value!r} is not a valid "
                              f"{src.options[key].__name__}") from exc
    return name, path, opts


def load_dataset(spec: str) -> SegDataset:
    """Load the dataset a source string names (see module docstring)."""
    name, path, opts = parse_source(spec)
    if name == "folder" and path is not None and not Path(path).exists():
        raise ConfigError(f"data: {spec}: {path!r} is neither a known source "
                          f"({', '.join(s for s in SOURCES if s != 'folder')}) nor a folder")
    if "classes" in opts:
        opts["classes"] = tuple(c for c in opts["classes"].split("|") if c)
    for key in ("n", "size"):
        if key in opts and opts[key] < 1:
            raise ConfigError(f"data: {spec}: option {key} must be positive, got {opts[key]}")
    src = SOURCES[name]
    ds = src.loader(path, **opts) if src.takes_path else src.loader(**opts)
    return ds
