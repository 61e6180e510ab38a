"""The generated CLI reference names every command and every option of the typer app."""

from __future__ import annotations

import re

import typer.main

from noisyseg.cli import app
from tests.docs._docs import docs_module


def _commands(cmd, path):
    """Every (command path, option and argument names) of the app, walked here on its own."""
    names = []
    for p in cmd.params:
        if p.hidden:
            continue
        names += [p.name] if p.param_type_name == "argument" else [*p.opts, *p.secondary_opts]
    yield path, names
    for name, sub in getattr(cmd, "commands", {}).items():
        if not sub.hidden:
            yield from _commands(sub, [*path, name])


def _sections(markdown):
    """Heading anchor -> the text of that command's section."""
    out, current = {}, None
    for line in markdown.splitlines():
        m = re.match(r"#+ .*\{ #([\w-]+) \}$", line)
        if m:
            current = m.group(1)
            out[current] = []
        elif current:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def test_every_command_and_option_is_in_the_cli_reference():
    gen = docs_module("gen_cli")
    sections = _sections(gen.cli_markdown())
    commands = list(_commands(typer.main.get_command(app), ["noisyseg"]))
    assert len(commands) > 10
    missing = []
    for path, names in commands:
        anchor = "-".join(path)
        if anchor not in sections:
            missing.append(" ".join(path))
            continue
        text = sections[anchor]
        if f"{' '.join(path)} " not in text and f"{' '.join(path)}\n" not in text:
            missing.append(f"{' '.join(path)}: usage line")
        missing += [f"{' '.join(path)} {n}" for n in names if f"<code>{n}</code>" not in text]
    assert not missing, f"missing from the generated CLI reference: {missing}"


def test_the_reference_is_what_help_says():
    """Help texts come from the app itself: one option's help, verbatim."""
    gen = docs_module("gen_cli")
    text = gen.cli_markdown()
    audit = typer.main.get_command(app).commands["audit"]
    trusted = next(p for p in audit.params if "--trusted" in p.opts)
    assert " ".join(trusted.help.split()).split(".")[0] in text


def test_study_spec_reference_names_every_field():
    import dataclasses

    gen = docs_module("gen_spec")
    text = gen.spec_fields_markdown()
    missing = []
    for section, cls in gen.section_classes().items():
        for f in dataclasses.fields(cls):
            if f.init and f"<code>{section}.{f.name}</code>" not in text:
                missing.append(f"{section}.{f.name}")
    assert not missing, f"spec fields missing from the study-spec reference: {missing}"
