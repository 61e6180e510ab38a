"""Tables for reports (Markdown without extra dependencies)."""

from __future__ import annotations

import pandas as pd

__all__ = ["markdown_table"]


def markdown_table(df: pd.DataFrame) -> str:
    """Format ``df`` as a GitHub-flavoured Markdown table (index dropped).

    Cells are written with ``str`` as they are (no escaping of ``|``, no rounding).

    Parameters
    ----------
    df : pandas.DataFrame
        The table; its column names become the header.

    Returns
    -------
    str
        Header, separator and one line per row, joined by newlines (no trailing newline).

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"a": [1], "b": ["x"]})))
    | a | b |
    |---|---|
    | 1 | x |
    >>> t = markdown_table(pd.DataFrame({"detector": ["loss", "vog"], "AP": [0.61, 0.83]}))
    >>> print(t)
    | detector | AP |
    |---|---|
    | loss | 0.61 |
    | vog | 0.83 |
    >>> len(t.splitlines())
    4
    """
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)
