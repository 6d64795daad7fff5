"""How the report writes numbers: by their declared unit (:data:`advlib.record.UNITS`), never by their name.

A number without a declared unit (metrics written before units were recorded) is written as it was
recorded, and the report says that its unit was not recorded.
"""
from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Optional

from .. import tables

NOT_RECORDED = "unit not recorded"


def now() -> str:
    """The local time, e.g. '2025-01-31T12:00:00+01:00'."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def fmt_seconds(s: Optional[float]) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if s is None:
        return "–"
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def fmt_eps(v: Any) -> str:
    """A budget: 8/255 where it is k/255 (and below 0.25), else as it is (0.3, 0.2)."""
    if is_number(v):
        k = v * 255
        if 0 < v < 0.25 and abs(k - round(k)) < 1e-6 and round(v, 3) != v:  # 8/255, but 0.2 stays 0.2
            return f"{int(round(k))}/255"
        return f"{v:g}"
    return "–" if v is None else str(v)


def fmt_number(v: Any) -> str:
    """A value as recorded: floats rounded to 4 decimals, dicts and lists as JSON, None as '–'."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{round(v, 4):g}" if abs(v) < 1e6 else f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_fraction(v: Any) -> bool:
    """A number in [-1, 1]: a fraction, or a difference of two (a value declared a fraction outside
    this range was recorded wrongly and is written as recorded)."""
    return is_number(v) and -1.0 <= v <= 1.0


def cell(v: Any, unit: Optional[str]) -> str:
    """``v`` for a table cell whose unit is said once for the column: a fraction in % without the
    sign ('98.60'), a budget as k/255, anything else as recorded; a dict item by item."""
    if isinstance(v, dict):
        return ", ".join(f"{k}: {cell(x, unit)}" for k, x in v.items())
    if unit == "fraction" and is_fraction(v):
        return tables.percent(v)
    if unit == "percent" and is_number(v):
        return f"{v:.2f}"
    if unit == "eps":
        return fmt_eps(v)
    return fmt_number(v)


def value(v: Any, unit: Optional[str]) -> str:
    """``v`` on its own, with its unit: '98.60 %', '8/255', '4 min 05 s', '21.3 ms'; a number
    without a declared unit as recorded, followed by '(unit not recorded)'; a dict item by item."""
    if isinstance(v, dict):
        return ", ".join(f"{k}: {value(x, unit)}" for k, x in v.items())
    if not is_number(v):
        return fmt_number(v)
    if unit == "fraction" and is_fraction(v) or unit == "percent":
        return f"{cell(v, unit)} %"
    if unit == "seconds":
        return fmt_seconds(v)
    if unit == "milliseconds":
        return f"{fmt_number(v)} ms"
    if unit is None:
        return f"{fmt_number(v)} ({NOT_RECORDED})"
    return cell(v, unit)


def unit_caption(units: dict[str, Optional[str]], shown_in_percent: bool) -> list[str]:
    """What a table's caption says about the units of its columns ``{column: unit or None}``."""
    out = []
    if shown_in_percent:
        out.append("accuracies (fractions) in %")
    for unit, label in (("percent", "in %"), ("seconds", "in seconds"), ("milliseconds", "in ms")):
        cols = [c for c, u in units.items() if u == unit]
        if cols:
            out.append(", ".join(cols) + " " + label)
    missing = [c for c, u in units.items() if u is None]
    if missing and len(missing) == len(units):
        out.append("units not recorded: numbers as recorded")
    elif missing:
        out.append(f"{NOT_RECORDED} for {', '.join(missing)} (as recorded)")
    return out
