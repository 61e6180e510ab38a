"""The pipeline's shape: each stage imports only from the stages before it (and from the
utilities every stage may use), at module level and inside functions alike."""

import ast
from pathlib import Path

import noisyseg

SRC = Path(noisyseg.__file__).parent
#: The stages in pipeline order (the package docstring's diagram).
STAGES = ("data", "corrupt", "raters", "models", "train", "detect", "refurbish", "run", "study", "report",
          "review", "api", "cli")
#: Usable from every stage; they import no stage themselves.
UTILITIES = ("errors", "_validate", "evaluate", "plot")


def _part(module: str) -> str:
    """The top-level part of ``noisyseg.<part>...`` (``""`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "noisyseg" else \
                [f"noisyseg.{a.name}" for a in node.names]
            out += [(node.lineno, n) for n in names if n.startswith("noisyseg")]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("noisyseg")]
    return out


def test_every_stage_imports_only_earlier_stages_and_utilities():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        own = rel.parts[0].removesuffix(".py")
        if own == "__init__" or own == "__main__":
            continue
        for line, name in _imports(path):
            part = _part(name)
            if part in ("", own) or part.startswith("__"):  # the package itself, __version__
                continue
            if own in UTILITIES:
                ok = part in UTILITIES and UTILITIES.index(part) < UTILITIES.index(own)
            elif part in UTILITIES:
                ok = True
            else:
                ok = part in STAGES and STAGES.index(part) < STAGES.index(own)
            if not ok:
                wrong.append(f"{rel}:{line} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_stage_list_names_every_subpackage_and_module():
    found = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in SRC.rglob("*.py")}
    assert found - {"__init__", "__main__"} == set(STAGES) | set(UTILITIES)
