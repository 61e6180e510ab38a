"""The CLI reference page, generated from the typer app at build time (a mkdocs hook).

``mkdocs.yml`` names this file under ``hooks:``; :func:`on_files` adds ``reference/cli.md``
to the site, written by :func:`cli_markdown` from ``noisyseg.cli.app``: every command's usage
line, help text, arguments and options, as ``noisyseg COMMAND --help`` prints them. Nothing in
it is copied by hand, so a command or option added to the CLI appears in the docs at the next
build (``tests/docs/test_cli_reference.py`` checks that none is missing).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

#: Where the generated page lives in the site (the nav in ``mkdocs.yml`` names it).
CLI_PAGE = "reference/cli.md"

_INTRO = """\
# Command line

Every command, its usage, its help and its options, generated from the `noisyseg` command
line itself when the site is built (so it cannot fall behind `noisyseg COMMAND --help`).
Every command that reads data takes `--data SOURCE[:OPTIONS]` ([data sources](data-sources.md));
every command that writes takes `--out` and writes it whole ([promises](../promises.md)); what
each output folder holds is in [output files](outputs.md).

Every command also takes `--help`. `noisyseg review FOLDER` is short for
`noisyseg review open FOLDER`. A bad option, file or value stops a command with one line on
stderr and exit status 2; Ctrl-C during training exits with status 130 after writing the
best weights so far.
"""


def command_tree(app: Any = None) -> Iterator[tuple[list[str], Any, Any]]:
    """``(path, command, context)`` for every command of the typer app, depth first.

    ``path`` is the words typed after the program name, e.g. ``["noisyseg", "study", "run"]``;
    ``context`` is the command's context, with its parents, as ``--help`` builds it (hidden
    commands are left out).
    """
    import typer.main

    if app is None:
        from noisyseg.cli import app
    root = typer.main.get_command(app)

    def walk(cmd: Any, path: list[str], parent: Any) -> Iterator[tuple[list[str], Any, Any]]:
        ctx = cmd.context_class(cmd, info_name=path[-1], parent=parent)
        yield path, cmd, ctx
        for name, sub in getattr(cmd, "commands", {}).items():
            if not sub.hidden:
                yield from walk(sub, [*path, name], ctx)

    yield from walk(root, ["noisyseg"], None)


def option_names(cmd: Any) -> list[str]:
    """Every option flag (``--out``, ``--no-progress``, ``-p``) and argument name of ``cmd``."""
    names: list[str] = []
    for p in cmd.params:
        if p.hidden:
            continue
        if p.param_type_name == "argument":
            names.append(p.name)
        else:
            names.extend([*p.opts, *p.secondary_opts])
    return names


def _paragraphs(text: str) -> str:
    """Help text (plain, wrapped at arbitrary places) as HTML paragraphs."""
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paras)


def _cell(text: str) -> str:
    """Help text of one option for a table cell; ``[default: x]`` and ``[required]`` set off."""
    text = " ".join(text.split())
    text = html.escape(text)
    return re.sub(r"\s*\[(default: [^\]]*|required)\]",
                  lambda m: f' <span class="cli-meta">[{m.group(1)}]</span>', text)


def _anchor(path: list[str]) -> str:
    return "-".join(path)


def command_markdown(path: list[str], cmd: Any, ctx: Any) -> str:
    """One command's section: heading, usage, help, subcommands, arguments and options."""
    depth = len(path)
    out = [f"{'#' * min(depth + 1, 4)} {' '.join(path)} {{ #{_anchor(path)} }}", ""]
    usage = cmd.get_usage(ctx).removeprefix("Usage:").strip()
    out += ["```text", usage, "```", ""]
    if cmd.help:
        out += [_paragraphs(cmd.help), ""]
    subs = {n: c for n, c in getattr(cmd, "commands", {}).items() if not c.hidden}
    if subs:
        out += ['<table class="cli-table"><thead><tr><th>command</th><th>what it does</th>'
                "</tr></thead><tbody>"]
        for name, sub in subs.items():
            link = f"#{_anchor([*path, name])}"
            summary = html.escape(" ".join((sub.help or "").split("\n\n")[0].split()))
            out.append(f'<tr><td><a href="{link}"><code>{html.escape(name)}</code></a></td>'
                       f"<td>{summary}</td></tr>")
        out += ["</tbody></table>", ""]
    params = [p for p in cmd.params if not p.hidden]
    for kind, title in (("argument", "arguments"), ("option", "options")):
        rows = [p for p in params if (p.param_type_name == "argument") == (kind == "argument")]
        if not rows:
            continue
        out += [f'<table class="cli-table"><thead><tr><th>{title}</th><th>description</th>'
                "</tr></thead><tbody>"]
        for p in rows:
            decl, helptext = p.get_help_record(ctx) or (p.name, "")
            decl, _, kind = decl.partition(" <")
            names = [html.escape(n.strip()) for n in re.split(r",\s+|\s+/\s+", decl)]
            first = "<br>".join(f"<code>{n}</code>" for n in names)
            if kind:
                first += f' <span class="cli-meta">&lt;{html.escape(kind)}</span>'

            out.append(f"<tr><td>{first}</td><td>{_cell(helptext)}</td></tr>")
        out += ["</tbody></table>", ""]
    return "\n".join(out)


def cli_markdown(app: Any = None) -> str:
    """The whole CLI reference page (Markdown with HTML tables)."""
    parts = [_INTRO]
    for path, cmd, ctx in command_tree(app):
        parts.append(command_markdown(path, cmd, ctx))
    return "\n".join(parts)


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated ``reference/cli.md`` to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, CLI_PAGE, content=cli_markdown()))
    return files
