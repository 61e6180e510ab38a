"""The README stays a five-minute read, keeps the commands CI and newcomers run, and links
only to files that exist."""

from __future__ import annotations

import re

from tests.docs._docs import ROOT

TEST_COMMAND = ('python -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt '
                '-e ".[test]" && python -m pytest')
DEMO_COMMAND = ('python -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt '
                '-e . && noisyseg demo')


def test_readme_is_short_and_keeps_the_quick_start():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert TEST_COMMAND in text
    assert DEMO_COMMAND in text
    assert 'pip install -c constraints.txt -e ".[docs]" && mkdocs serve' in text


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    broken = [t for t in targets if "://" not in t and not t.startswith("#")
              and not (ROOT / t.split("#")[0]).exists()]
    assert not broken, f"README links to missing files: {broken}"
