"""A small report document rendered twice: Markdown (figures as files) and self-contained HTML."""

from __future__ import annotations

import base64
import html
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from noisyseg.report.tables import markdown_table

__all__ = ["Document"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #0072B2;padding-bottom:.2em}h2{margin-top:2em;color:#0072B2}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f6fa}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%}figcaption{font-size:.9em;color:#555}
code{background:#f3f3f3;padding:0 .2em}.note{color:#555;font-size:.9em}
"""


@dataclass
class Document:
    """Collect the ordered blocks (headings, paragraphs, tables, figures) of one report.

    Blocks are added by :meth:`heading`, :meth:`text`, :meth:`table` and :meth:`figure`,
    then rendered by :meth:`markdown` and :meth:`html` or written by :meth:`write`.

    Parameters
    ----------
    title : str
        See Attributes.
    blocks : list of (str, object), optional
        See Attributes; empty by default.

    Attributes
    ----------
    title : str
        The report's title (the top-level heading and the HTML page title).
    blocks : list of (str, object)
        ``(kind, item)`` pairs in order: ``("h2", text)``, ``("p", text)``,
        ``("table", (DataFrame, caption))`` or ``("figure", (png_bytes, name, caption))``.

    Examples
    --------
    >>> import tempfile
    >>> doc = Document("Demo")
    >>> doc.heading("Results")
    >>> doc.text("Two **detectors**.")
    >>> doc.table(pd.DataFrame({"AP": [0.61, 0.83]}), "Average precision.")
    >>> [kind for kind, _ in doc.blocks]
    ['h2', 'p', 'table']
    >>> md, files = doc.markdown("figs")
    >>> md.splitlines()[:3], files
    (['# Demo', '', '## Results'], {})
    >>> "<b>detectors</b>" in doc.html()
    True
    >>> md_path, html_path = doc.write(tempfile.mkdtemp())
    >>> md_path.name, html_path.name, html_path.is_file()
    ('report.md', 'report.html', True)
    """

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        """Append a section heading.

        Parameters
        ----------
        text : str
            The heading (a level-2 heading; the title is level 1).
        """
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        """Append a paragraph.

        Parameters
        ----------
        text : str
            Markdown inline syntax (backticks, ``**bold**``, ``*italic*``) is rendered in
            HTML too.
        """
        self.blocks.append(("p", text))

    def table(self, df: pd.DataFrame, caption: str = "") -> None:
        """Append a table (its index is dropped).

        Parameters
        ----------
        df : pandas.DataFrame
            The table.
        caption : str, default ''
            Shown above the table (no caption when empty).
        """
        self.blocks.append(("table", (df, caption)))

    def figure(self, fig: Any, name: str, caption: str = "") -> None:
        """Append a matplotlib figure, stored as PNG bytes at 110 dpi, and close it.

        Parameters
        ----------
        fig : matplotlib.figure.Figure
            The figure (closed afterwards).
        name : str
            Its file name in the Markdown figure folder (e.g. ``"errors.png"``).
        caption : str, default ''
            Shown below the figure (the alt text is ``name`` when empty).

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = ax.plot([0, 1])
        >>> doc = Document("Demo")
        >>> doc.figure(fig, "line.png", "A line.")
        >>> _, files = doc.markdown("figs")
        >>> list(files), files["line.png"][1:4]
        (['line.png'], b'PNG')
        """
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        self.blocks.append(("figure", (buf.getvalue(), name, caption)))

    # ------------------------------------------------------------------ rendering
    def markdown(self, fig_dir: str) -> tuple[str, dict[str, bytes]]:
        """Render the document as Markdown.

        Parameters
        ----------
        fig_dir : str
            Folder the figure links point into (relative to the Markdown file).

        Returns
        -------
        text : str
            The Markdown text.
        files : dict of str to bytes
            The figure files it links, PNG bytes by file name (to write into ``fig_dir``).
        """
        out, files = [f"# {self.title}", ""], {}
        for kind, item in self.blocks:
            if kind == "h2":
                out += [f"## {item}", ""]
            elif kind == "p":
                out += [item, ""]
            elif kind == "table":
                df, cap = item
                out += ([f"*{cap}*", ""] if cap else []) + [markdown_table(df), ""]
            else:
                png, name, cap = item
                files[name] = png
                out += [f"![{cap or name}]({fig_dir}/{name})", ""]
                if cap:
                    out += [f"*{cap}*", ""]
        return "\n".join(out), files

    def html(self) -> str:
        """Render the document as one self-contained HTML page.

        Returns
        -------
        str
            The page, with inline CSS and the figures embedded as base64 PNG.
        """
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, item in self.blocks:
            if kind == "h2":
                body.append(f"<h2>{html.escape(item)}</h2>")
            elif kind == "p":
                body.append(f"<p>{_inline(item)}</p>")
            elif kind == "table":
                df, cap = item
                cap_html = f"<caption>{_inline(cap)}</caption>" if cap else ""
                body.append(df.to_html(index=False, na_rep="", border=0, escape=True)
                            .replace("<table", "<table", 1)
                            .replace(">\n  <thead>", f">{cap_html}\n  <thead>", 1))
            else:
                png, name, cap = item
                b64 = base64.b64encode(png).decode()
                body.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
                            f'{b64}"><figcaption>{_inline(cap)}</figcaption></figure>')
        return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>"
                f"{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
                + "\n".join(body) + "</body></html>")

    def write(self, out: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``stem.md`` (+ ``stem_files/``) and ``stem.html`` atomically into ``out``.

        Parameters
        ----------
        out : str or Path
            Folder written into (created when missing).
        stem : str, default 'report'
            File name stem.

        Returns
        -------
        md_path, html_path : Path
            The two files written.
        """
        out = Path(out)
        md, files = self.markdown(f"{stem}_files")
        fdir = out / f"{stem}_files"
        fdir.mkdir(parents=True, exist_ok=True)
        for name, blob in files.items():
            _atomic_write(fdir / name, blob)
        _atomic_write(out / f"{stem}.md", md.encode())
        _atomic_write(out / f"{stem}.html", self.html().encode())
        return out / f"{stem}.md", out / f"{stem}.html"


def _atomic_write(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def _inline(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    return re.sub(r"\*([^*]+)\*", r"<i>\1</i>", t)
