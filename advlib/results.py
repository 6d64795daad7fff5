"""Result tables: pure functions of :func:`advlib.evaluate.evaluate` results (plain dicts of numbers).

They turn ``{row name: result}`` into rows of accuracies (:func:`as_rows`), their 95% intervals
(:func:`intervals`) and image counts (:func:`counts`), and into Markdown (:func:`percent_table`,
:func:`format_table`, :func:`gap_table`, :func:`flags_table`). They need no model, no tensor and no
attack, so :mod:`advlib.record` and :mod:`advlib.course` use them without importing the evaluation
(:mod:`advlib.evaluate` re-exports them, as notebooks call them there).

Two results measured on the same images are compared image by image: :func:`mask` reads a column's
per-image correctness, :func:`paired` runs McNemar's test between two rows (:func:`advlib.stats.mcnemar`),
and :func:`autoattack_column` names the AutoAttack column measured on the most images.
"""
from __future__ import annotations

from typing import Optional, Sequence

from . import stats, tables

WORST = "All attacks"  # the column of the per-image worst case over every attack
AUTOATTACK_COLUMNS = ("APGD-CE+T", "AA")  # AutoAttack's columns, the one run on the most images first


def as_rows(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """``{name: evaluate(...) result}`` -> ``{name: {"Clean": acc, attack: acc, ..., "All attacks": acc}}``
    (the worst-case column when the results have one)."""
    rows = {}
    for name, r in results.items():
        rows[name] = {"Clean": r["clean"], **r["robust"]}
        if r.get("worst_case"):
            rows[name][WORST] = r["worst_case"]["accuracy"]
    return rows


def intervals(results: dict[str, dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{row: {column: (low, high)}}``, the 95% intervals of :func:`as_rows`' accuracies."""
    out = {}
    for name, r in results.items():
        iv = r.get("interval") or {}
        out[name] = {c: tuple(v) for c, v in iv.items()}
        if r.get("worst_case"):
            out[name][WORST] = tuple(r["worst_case"]["interval"])
    return out


def counts(results: dict[str, dict]) -> dict[str, dict[str, int]]:
    """``{row: {column: number of images}}`` for :func:`as_rows`' columns (Clean, each attack, the worst case)."""
    out = {}
    for name, r in results.items():
        out[name] = {"Clean": r["n"], **r.get("n_attack", {})}
        if r.get("worst_case"):
            out[name][WORST] = r["worst_case"]["n"]
    return out


def percent_table(rows: dict[str, dict[str, float]], columns: Optional[Sequence[str]] = None,
                  intervals: Optional[dict[str, dict[str, tuple]]] = None,
                  counts: Optional[dict[str, dict[str, int]]] = None) -> str:
    """A markdown table of accuracies in % from ``{row: {column: accuracy in [0,1]}}`` (columns: every
    key of the rows unless given), ending with a line break. With ``intervals`` (``{row: {column:
    (low, high)}}``) each cell also shows its 95% interval, e.g. ``91.40 (89.5–93.0)``. With ``counts``
    (:func:`counts`), a column measured on fewer images than the clean accuracy says how many in its
    header, e.g. ``AA (first 200)``, and a cell whose count differs from its column's says so too."""
    columns = tables.columns_of(rows) if columns is None else list(columns)
    header = {c: c for c in columns}
    if counts:
        for c in columns:
            ns = [counts.get(r, {}).get(c) for r in rows if counts.get(r, {}).get(c) is not None]
            full = [counts.get(r, {}).get("Clean") for r in rows if counts.get(r, {}).get("Clean") is not None]
            if ns and full and min(ns) < max(full):
                header[c] = f"{c} (first {min(ns)})" if len(set(ns)) == 1 else f"{c} (first n)"
    def cell(r, c, v):
        text = _with_interval(v.get(c), intervals.get(r, {}).get(c)) if intervals else tables.percent(v.get(c))
        k = (counts or {}).get(r, {}).get(c)
        if counts and header[c] == f"{c} (first n)" and k is not None:
            text += f" (n = {k})"
        return text
    shown = {r: {header[c]: cell(r, c, v) for c in columns} for r, v in rows.items()}
    return tables.markdown_table(shown, [header[c] for c in columns], str, align="l" + "r" * len(columns)) + "\n"


def _with_interval(v, iv) -> str:
    if iv is None or not isinstance(v, (int, float)):
        return tables.percent(v)
    return f"{tables.percent(v)} ({100 * iv[0]:.1f}–{100 * iv[1]:.1f})"


def format_table(results: dict[str, dict], with_intervals: bool = False) -> str:
    """A markdown table (Clean, then each attack, then the worst case, in %) from ``{name: evaluate(...)
    result}``; ``with_intervals`` adds each accuracy's 95% interval."""
    return percent_table(as_rows(results), intervals=intervals(results) if with_intervals else None,
                         counts=counts(results))


def gap_table(results: dict[str, dict]) -> str:
    """A Markdown table of the measured gap between AutoAttack's first attacks (run on every image) and the
    standard version (on the first images), on the same images, for each result that has both
    (``"autoattack_gap"``); an empty string when none has."""
    rows = {}
    for name, r in results.items():
        g = r.get("autoattack_gap")
        if not g:
            continue
        b = g.get("broken_by", {})
        rows[name] = {"images": f"first {g['n']}", g["partial_attack"]: tables.percent(g["partial"]),
                      f"{g['standard_attack']} (standard)": tables.percent(g["standard"]),
                      "gap (points)": f"{100 * g['gap']:.2f}",
                      "broken by FAB-T / Square": f"{b.get('fab-t', 0)} / {b.get('square', 0)}"}
    if not rows:
        return ""
    return tables.markdown_table(rows, stub="model", align="lrrrrr") + "\n"


def flags_table(results: dict[str, dict], raised_only: bool = True) -> str:
    """The sanity checks of several evaluations as a Markdown table (the raised ones by default)."""
    rows = [[name, f["name"], f["observed"], f"{f['suggests']} Try: {f['to_try']}" if f["raised"] else "ok"]
            for name, r in results.items() for f in r.get("flags", []) if f["raised"] or not raised_only]
    if not rows:
        return "No sanity check raised a flag.\n"
    return tables.markdown(["model", "check", "observed", "what it suggests"], rows) + "\n"


# --------------------------------------------------------------------------- the same images, compared


def mask(result: dict, column: str) -> list[bool]:
    """Per image, whether the model of ``result`` (an :func:`advlib.evaluate.evaluate` or
    :func:`advlib.evaluate.rslad_columns` result) is right under ``column`` ("Clean" or an attack's column), on
    the first ``result["n_attack"][column]`` images (the result stores it as a string of 0s and 1s)."""
    masks = result.get("masks") or {}
    if column not in masks:
        raise KeyError(f"the result has no per-image mask for {column!r}; its columns: {', '.join(masks) or 'none'}")
    return [c == "1" for c in masks[column]]


def paired(a: dict, b: dict, column: str) -> dict:
    """McNemar's paired test (:func:`advlib.stats.mcnemar`) of two results under the same ``column``, on the
    same images: ``{"column", "n", "a", "b" (the two accuracies on those images), "a_only", "b_only" (images
    only A, only B gets right), "p_value", "a_better", "significant"}``. Raises ValueError when the two were
    not measured on the same data or number of images."""
    if a.get("data") != b.get("data"):
        raise ValueError(f"a paired test needs results on the same images; got {a.get('data')!r} and {b.get('data')!r}")
    ma, mb = mask(a, column), mask(b, column)
    if len(ma) != len(mb):
        raise ValueError(f"{column}: measured on {len(ma)} and {len(mb)} images; a paired test needs the same images")
    t = stats.mcnemar(ma, mb)
    return {"column": column, "n": len(ma), "a": sum(ma) / len(ma), "b": sum(mb) / len(mb), "a_only": t["a_only"],
            "b_only": t["b_only"], "p_value": t["p_value"], "a_better": t["a_better"], "significant": t["significant"]}


def autoattack_column(result: dict, default: str = "PGD_SAT") -> str:
    """The AutoAttack column of an :func:`advlib.evaluate.rslad_columns` result measured on the most images
    (``"APGD-CE+T"``, the stand-in run on every image, before the standard ``"AA"``); ``default`` when it has
    neither (a profile without AutoAttack)."""
    return next((c for c in AUTOATTACK_COLUMNS if c in result.get("robust", {})), default)
