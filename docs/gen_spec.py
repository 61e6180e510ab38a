"""The field tables of the study-spec reference, generated from the spec's dataclasses at
build time (a mkdocs hook).

``reference/study-spec.md`` holds the marker ``<!-- spec-fields -->``; :func:`on_page_markdown`
replaces it with :func:`spec_fields_markdown`: one table per section (``train``, ``corrupt``,
``audit``, ``volumes``) with every field, its type, its default and its description from the
class docstring's ``Attributes`` section. A field added to a spec class appears at the next
build, with whatever its docstring says.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import json
import re
from typing import Any

MARKER = "<!-- spec-fields -->"

#: The spec's sections and what each is, in the order a spec reads; the class of each is
#: read from the annotations of ``noisyseg.study.TrialConfig`` (see :func:`section_classes`).
SECTIONS = (
    ("train", "the training, as for `noisyseg train`"),
    ("corrupt", "the label errors applied to the training masks (`none` for the clean control)"),
    ("audit", "detectors and refurbishment, as for `noisyseg audit`"),
    ("volumes", "how a volume source is trained on, as for `noisyseg audit` on volumes"),
)


def section_classes() -> dict[str, type]:
    """``section -> dataclass``, from the annotations of ``TrialConfig`` (so a renamed class
    needs no change here)."""
    import types
    import typing

    from noisyseg.study import TrialConfig

    hints = typing.get_type_hints(TrialConfig)
    out = {}
    for section, _ in SECTIONS:
        hint = hints[section]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # CorruptSpec | None
            hint = next(h for h in typing.get_args(hint) if h is not type(None))
        out[section] = hint
    return out


def attribute_docs(cls: type) -> dict[str, tuple[str, str]]:
    """``name -> (type, description)`` from a numpy-style ``Attributes`` section (an entry
    ``a, b, c`` documents several fields at once)."""
    doc = inspect.getdoc(cls) or ""
    m = re.search(r"^Attributes\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc, re.M | re.S)
    if not m:
        return {}
    out: dict[str, tuple[str, str]] = {}
    names: list[str] = []
    kind = ""
    desc: list[str] = []

    def flush() -> None:
        for n in names:
            out[n] = (kind, " ".join(desc))

    for line in m.group(1).splitlines():
        if line and not line[0].isspace():
            flush()
            head, _, kind = line.partition(" : ")
            names = [n.strip() for n in head.split(",") if n.strip()]
            kind, desc = kind.strip(), []
        elif line.strip():
            desc.append(line.strip())
    flush()
    return out


def _default(f: dataclasses.Field) -> str:
    """The default as YAML writes it (``null``, ``true``, ``{}``), or ``required``."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return "required"
    return value if isinstance(value, str) else json.dumps(value)


def cli_help() -> dict[str, str]:
    """``field -> help`` of ``noisyseg audit``'s options (``--batch-size`` -> ``batch_size``), the
    description of a field whose docstring gives none."""
    import typer.main

    from noisyseg.cli import app

    cmd = typer.main.get_command(app).commands["audit"]
    out = {}
    for p in cmd.params:
        for opt in p.opts:
            if opt.startswith("--") and p.help:
                out[opt[2:].replace("-", "_")] = " ".join(p.help.split())
    return out


def _code(text: str) -> str:
    """Docstring text for an HTML cell: ``code`` and `code` as <code>, roles dropped."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"``\1``", text)
    parts = re.split(r"``([^`]+)``|`([^`]+)`", text)
    out = []
    for i, p in enumerate(parts):
        if p is None:
            continue
        out.append(f"<code>{html.escape(p)}</code>" if i % 3 else html.escape(p))
    return "".join(out)


#: Spec fields whose command-line option has another name.
_FLAGS = {"calibrate": "refurbish_calibrate", "mode": "refurbish_mode", "band": "refurbish_band",
          "region": "refurbish_region"}


def section_fields(cls: type) -> list[tuple[str, str, str, str]]:
    """``(field, type, default, description)`` for every field of a spec section's class."""
    docs = attribute_docs(cls)
    fallback = cli_help()
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kind, desc = docs.get(f.name, ("", ""))
        flag = _FLAGS.get(f.name, f.name)
        if (not desc or desc.startswith("As for")) and flag in fallback:
            desc = f"{fallback[flag]} (``--{flag.replace('_', '-')}``)"
        if not kind:
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append((f.name, kind, _default(f), desc))
    return rows


def spec_fields_markdown() -> str:
    """The tables that replace :data:`MARKER`."""
    parts = []
    classes = section_classes()
    for section, what in SECTIONS:
        cls = classes[section]
        parts += [f"### `{section}` {{ #{section} }}", "", f"The `{section}:` section: {what}.", "",
                  '<table class="spec-table"><thead><tr><th>field</th><th>type</th>'
                  "<th>default</th><th>description</th></tr></thead><tbody>"]
        for name, kind, default, desc in section_fields(cls):
            if section == "train" and name == "seed":
                desc = "Set at the top level (`seed:`), which seeds the corruption and the training."
            parts.append(f"<tr><td><code>{section}.{html.escape(name)}</code></td>"
                         f"<td>{_code(kind)}</td><td><code>{html.escape(default)}</code></td>"
                         f"<td>{_code(desc)}</td></tr>")
        parts += ["</tbody></table>", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs hook: fill the study-spec page's field tables."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, spec_fields_markdown())
    return markdown
