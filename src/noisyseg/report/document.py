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
    """Ordered blocks (headings, paragraphs, tables, figures) of one report."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        """A section heading."""
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        """A paragraph (Markdown inline syntax: backticks, ``**bold**``)."""
        self.blocks.append(("p", text))

    def table(self, df: pd.DataFrame, caption: str = "") -> None:
        """A table (index dropped) with an optional caption."""
        self.blocks.append(("table", (df, caption)))

    def figure(self, fig: Any, name: str, caption: str = "") -> None:
        """A matplotlib figure, stored as PNG bytes (``name`` is its file name)."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        self.blocks.append(("figure", (buf.getvalue(), name, caption)))

    # ------------------------------------------------------------------ rendering
    def markdown(self, fig_dir: str) -> tuple[str, dict[str, bytes]]:
        """The Markdown text and the figure files it links (relative to ``fig_dir``)."""
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
        """One self-contained HTML page (figures embedded as base64 PNG)."""
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
        """Write ``stem.md`` (+ ``stem_files/``) and ``stem.html`` atomically into ``out``."""
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
