"""Shared helpers of the documentation tests: the repository root and the build scripts in
``docs/`` (plain files beside the pages, imported by path)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: CI sets this: a missing docs extra then fails the docs tests instead of skipping them.
REQUIRE_DOCS = os.environ.get("NOISYSEG_REQUIRE_DOCS") == "1"
#: What `pip install -e ".[docs]"` brings that the site build needs (module names).
DOCS_MODULES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def docs_module(name: str) -> ModuleType:
    """``docs/NAME.py`` imported by path."""
    path = DOCS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_noisyseg_docs_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_docs_extra() -> None:
    """Skip (or, with NOISYSEG_REQUIRE_DOCS=1, fail) when the docs extra is not installed."""
    missing = []
    for m in DOCS_MODULES:
        try:
            found = importlib.util.find_spec(m) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(m)
    if missing:
        msg = (f"the docs extra is not installed (missing {', '.join(missing)}): "
               'pip install -c constraints.txt -e ".[docs]"')
        if REQUIRE_DOCS:
            pytest.fail("NOISYSEG_REQUIRE_DOCS=1 but " + msg)
        pytest.skip(msg)
