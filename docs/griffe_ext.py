"""A griffe extension for the API pages: noisyseg's docstrings are written for Sphinx-style
readers (roles such as :func:`x`, ``#:`` comments above constants, ``::`` literal blocks,
simple tables); this turns them into the Markdown that mkdocstrings renders.

- ``:func:`~noisyseg.train.class_balance_weights``` and the other roles become code spans,
  linked to the object's entry in the API reference where it has one (an object listed in
  a package's ``__all__``), plain code elsewhere (so no link can break the build);
- ``#:`` comment lines above a module-level constant become its docstring;
- a paragraph ending in ``::`` ends in ``:`` (its indented block is a code block already);
- a run of ``>>>`` lines outside an ``Examples`` section is fenced as a Python session;
- a reST simple table (columns set by ``====`` rulers) becomes a Markdown table.

Loaded from ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: The packages with an API page: each page renders the names in its ``__all__``.
API_PAGES = ("data", "corrupt", "models", "train", "detect", "refurbish", "run", "study",
             "report", "review", "evaluate", "api")

_ROLE = re.compile(r":(func|meth|class|data|attr|mod|exc|obj|const):`([^`]+)`")
_SECTION = re.compile(r"^([A-Z][A-Za-z ]+)\n-{3,}\s*$", re.M)


class SphinxToMarkdown(griffe.Extension):
    """Rewrite docstrings (see the module's docstring) once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "noisyseg":
            return
        self.public = _public_paths(pkg)
        self.loader = loader
        self._walk(pkg)

    def _walk(self, obj: griffe.Object) -> None:
        if obj.is_alias:
            return
        if obj.is_attribute and obj.docstring is None:
            _comment_docstring(obj, self.loader)
        if obj.docstring is not None:
            obj.docstring.value = self.convert(obj.docstring.value, obj)
        for member in list(obj.members.values()):
            self._walk(member)

    def convert(self, text: str, obj: griffe.Object) -> str:
        """One docstring's text, in Markdown."""
        text = _ROLE.sub(lambda m: self._role(m.group(1), m.group(2), obj), text)
        text = re.sub(r"(\S)::[ \t]*$", r"\1:", text, flags=re.M)
        text = re.sub(r"^::[ \t]*$", "", text, flags=re.M)
        text = _fence_doctests(text)
        return _simple_tables(text)

    def _role(self, role: str, target: str, obj: griffe.Object) -> str:
        shown = target.lstrip("~!")
        short = target.startswith("~")
        path = shown.removesuffix("()")
        label = path.rsplit(".", 1)[-1] if short else path
        if role in ("func", "meth"):
            label += "()"
        link = self._resolve(path, obj)
        code = f"`{label}`"
        return f"[{code}][{link}]" if link else code

    def _resolve(self, path: str, obj: griffe.Object) -> str | None:
        """The API-page identifier of ``path`` as written in ``obj``'s docstring, if any."""
        module = obj if obj.is_module else obj.module
        parts = module.path.split(".")
        candidates = [path, f"{module.path}.{path}"]
        if len(parts) > 1:
            candidates.append(f"noisyseg.{parts[1]}.{path}")
        candidates.append(f"noisyseg.{path}")
        for c in candidates:
            if c in self.public:
                return self.public[c]
        for c in candidates:  # Class.attribute: link the class
            head = c.rsplit(".", 1)[0]
            if head in self.public and "." in c:
                return self.public[head]
        return None


def _public_paths(pkg: griffe.Module) -> dict[str, str]:
    """Canonical and public paths of every name an API page renders -> its public path."""
    out: dict[str, str] = {}
    for page in API_PAGES:
        if page not in pkg.members:
            continue
        mod = pkg.members[page]
        for name in mod.exports or ():
            name = name if isinstance(name, str) else getattr(name, "name", str(name))
            member = mod.members.get(name)
            if member is None:
                continue
            public = f"{mod.path}.{name}"
            out.setdefault(public, public)
            target = member.target_path if member.is_alias else member.path
            if page != "api" or target not in out:
                out.setdefault(target, public)
    return out


def _comment_docstring(attr: griffe.Object, loader: griffe.GriffeLoader) -> None:
    """Sphinx's ``#:`` comment above an attribute as its docstring."""
    if not attr.lineno or attr.parent is None:
        return
    try:
        lines = attr.lines_collection[attr.filepath]
    except (KeyError, TypeError, AttributeError):
        return
    i = attr.lineno - 2
    found: list[str] = []
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    if found:
        attr.docstring = griffe.Docstring("\n".join(found), lineno=i + 2, parent=attr,
                                          parser=loader.docstring_parser,
                                          parser_options=loader.docstring_options)


def _fence_doctests(text: str) -> str:
    """Fence runs of ``>>>`` lines (with their output) outside an Examples section."""
    out: list[str] = []
    lines = text.split("\n")
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}\s*", lines[i + 1]) and line.strip():
            section = line.strip()
        if line.lstrip().startswith(">>>") and section != "Examples":
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i][len(indent):])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{indent}```pycon", *[indent + b for b in block], f"{indent}```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _simple_tables(text: str) -> str:
    """reST simple tables (``====  ====`` rulers above and below the rows) as Markdown tables."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    ruler = re.compile(r"^(\s*)(=+)(\s+=+)+\s*$")
    while i < len(lines):
        m = ruler.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        starts = [s.start() for s in re.finditer(r"=+", lines[i])]
        rows: list[list[str]] = []
        j = i + 1
        while j < len(lines) and not ruler.match(lines[j]):
            line = lines[j]
            cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=False)]
            if line.strip():
                rows.append(cells)
            j += 1
        if j >= len(lines) or not rows:  # not a table after all
            out.append(lines[i])
            i += 1
            continue
        width = len(starts)
        esc = [[c.replace("|", "\\|") for c in r] for r in rows]
        out += ["", "| " + " | ".join([""] * width) + " |", "|" + "---|" * width]
        out += ["| " + " | ".join(r) + " |" for r in esc]
        out.append("")
        i = j + 1
    return "\n".join(out)
