"""Markdown tables: the one formatter behind every table the library, the notebooks and the report write.

:func:`markdown` lays out a header and rows of cells; :func:`markdown_table` does the same for rows
keyed by a label (``{row: {column: value}}``), formatting each value with a cell formatter::

    markdown_table({"PGD": {"Clean": 0.98, "AA": 0.89}}, cell=lambda v: f"{100 * v:.2f}", align="lr")
    # '| | Clean | AA |\\n|---|---:|---:|\\n| PGD | 98.00 | 89.00 |'

Cells are turned into text with ``str``; a ``|`` in a cell is escaped and a line break becomes a
space, so that any text stays one cell. The table ends without a line break.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

_RULES = {"l": "---", "r": "---:", "c": ":---:"}


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def _line(cells: Sequence[Any]) -> str:
    return "|" + "|".join(f" {t} " if t else " " for t in map(_cell, cells)) + "|"


def markdown(header: Sequence[Any], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table with the cells of ``header`` and of each row of ``rows``.

    ``align`` has one letter per column: ``l`` (left, the default, rule ``---``), ``r`` (right,
    ``---:``) or ``c`` (centred, ``:---:``); columns beyond its length are ``l``. A row with fewer
    cells than the header is padded with empty cells; one with more raises a ValueError.
    """
    bad = set(align) - set(_RULES)
    if bad:
        raise ValueError(f"align takes one letter per column out of l, r, c; got {align!r}")
    n = len(header)
    lines = [_line(header), "|" + "|".join(_RULES[a] for a in align[:n].ljust(n, "l")) + "|"]
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) > n:
            raise ValueError(f"row {i} has {len(row)} cells but the header only {n}: {row!r}")
        lines.append(_line(row + [""] * (n - len(row))))
    return "\n".join(lines)


def percent(v: Any, digits: int = 2) -> str:
    """A fraction (an accuracy in [0, 1]) as a percentage without the sign: 0.986 -> '98.60'; '–' for
    anything that is not a number (None, a missing value)."""
    return f"{100 * v:.{digits}f}" if isinstance(v, (int, float)) else "–"


def columns_of(rows: Mapping[Any, Mapping[str, Any]]) -> list[str]:
    """The keys of all row dicts, in order of first appearance."""
    return list(dict.fromkeys(c for r in rows.values() for c in r))


def markdown_table(rows: Mapping[Any, Mapping[str, Any]], columns: Optional[Sequence[str]] = None,
                   cell: Callable[[Any], Any] = str, stub: str = "", align: str = "") -> str:
    """A Markdown table from ``{row label: {column: value}}``: a first column of row labels headed
    ``stub``, then one column per entry of ``columns`` (default: every key of the rows, in order of
    first appearance) holding ``cell(value)``; a value missing from a row is passed as None.
    ``align`` as in :func:`markdown`, its first letter for the label column."""
    columns = columns_of(rows) if columns is None else list(columns)
    return markdown([stub, *columns], ([label, *(cell(r.get(c)) for c in columns)] for label, r in rows.items()),
                    align)
