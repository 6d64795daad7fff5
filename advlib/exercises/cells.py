"""The exercise cells of the notebooks, generated from one source, and keeping the notebooks in step.

Each :class:`Exercise` (defined beside its check, in the notebook's module) gives three cells: its
statement (markdown), a starter cell that defines the student's function as a stub, and a check
cell ``passed = advlib.exercises.check_...(function)`` marked ``# NBVAL_CHECK_OUTPUT``, whose stored
output is what the check prints for the stub (:data:`~advlib.exercises.harness.NOT_ATTEMPTED`), so
``make test`` (nbval) fails when a check stops running through on a notebook executed headless. A
notebook's exercise block is :data:`INTRO` followed by the cells of each of its exercises.

A generated cell is identified by its metadata, ``{"advlib": {"exercise": KEY}}`` with KEY
``"intro"`` or ``"<exercise>/<part>"`` (part: ``statement``, ``starter``, ``check``; the exercise is
its check's name without ``check_``). Cells without this key belong to the notebook's authors and
are never touched. :func:`merge` writes the block into a notebook, :func:`drift` lists where a
notebook differs from it; ``python -m advlib.exercises write|verify`` runs them on the files.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from .harness import NOT_ATTEMPTED

INTRO = ("Write your answer in each starter cell, then run the check cell below it. Stuck? Read the hint in the "
         "check's message. Instructors find reference answers in `solutions/`.")
HEADING = "## Exercises"  # where the block goes in a notebook that has none yet
META = "advlib"  # the cell metadata key that marks a generated cell


@dataclass(frozen=True)
class Cell:
    """One generated cell: its identifying key, type, source and (code cells) stored outputs."""

    key: str
    cell_type: str
    source: str
    outputs: tuple = ()


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``statement`` (markdown), ``starter`` (a code cell defining ``function`` as a stub
    that raises NotImplementedError) and the check cell that passes ``function`` to ``check``, a
    check exported by :mod:`advlib.exercises`."""

    check: Callable[[Callable], bool]
    function: str
    statement: str
    starter: str

    @property
    def name(self) -> str:
        return self.check.__name__.removeprefix("check_")

    @property
    def check_source(self) -> str:
        return (f"# NBVAL_CHECK_OUTPUT\nimport advlib.exercises\n\n"
                f"passed = advlib.exercises.{self.check.__name__}({self.function})")

    def cells(self) -> list[Cell]:
        stream = {"name": "stdout", "output_type": "stream", "text": [NOT_ATTEMPTED + "\n"]}
        return [Cell(f"{self.name}/statement", "markdown", self.statement.strip()),
                Cell(f"{self.name}/starter", "code", self.starter.strip()),
                Cell(f"{self.name}/check", "code", self.check_source, (stream,))]


def block(exercises: Sequence[Exercise]) -> list[Cell]:
    """A notebook's exercise cells, in order: :data:`INTRO`, then each exercise's three cells."""
    return [Cell("intro", "markdown", INTRO)] + [c for ex in exercises for c in ex.cells()]


# --------------------------------------------------------------------------- notebook JSON


def _text(source) -> str:
    return source if isinstance(source, str) else "".join(source)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _outputs(outputs) -> list:
    """Outputs with their text joined, to compare them whatever the line splitting."""
    return [{k: _text(v) if k == "text" else v for k, v in o.items()} for o in outputs]


def key_of(cell: dict) -> Optional[str]:
    meta = cell.get("metadata", {}).get(META)
    return meta.get("exercise") if isinstance(meta, dict) else None


def _keys(cells: list[dict], label: str) -> dict[str, int]:
    """{key: index} of the generated cells; ValueError for a key that two cells carry."""
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        key = key_of(cell)
        if key is None:
            continue
        if key in found:
            raise ValueError(f"{label}: cells {found[key]} and {i} both carry the exercise cell metadata "
                             f"{{{META!r}: {{'exercise': {key!r}}}}} (a copied cell?). Delete the copy, or remove "
                             f"that metadata from it, then run the command again.")
        found[key] = i
    return found


def _same(cell: dict, want: Cell) -> bool:
    return cell.get("cell_type") == want.cell_type and _text(cell.get("source", "")) == want.source


def _cell_id(key: str, taken: set) -> str:
    """A new cell's id: derived from its key (the same on every run), unique in the notebook."""
    base = hashlib.sha1(key.encode()).hexdigest()[:8]
    cid, n = base, 1
    while cid in taken:
        cid, n = f"{base}-{n}", n + 1
    return cid


def _build(want: Cell, old: Optional[dict], cell_id: Optional[str], count: Optional[int] = None) -> dict:
    """The notebook cell for ``want``, keeping the id, execution count and other metadata of ``old``
    (``cell_id``: the id of a new cell, None in a notebook format without cell ids; ``count``: the
    execution count of a new code cell)."""
    meta = dict(old.get("metadata", {})) if old else {}
    meta[META] = {"exercise": want.key}
    cell = {"cell_type": want.cell_type, "metadata": meta, "source": _lines(want.source)}
    if old and "id" in old:
        cell["id"] = old["id"]
    elif cell_id is not None:
        cell["id"] = cell_id
    if want.cell_type == "code":
        cell["execution_count"] = old.get("execution_count") if old else count
        cell["outputs"] = copy.deepcopy(list(want.outputs))
    elif old and "attachments" in old:
        cell["attachments"] = old["attachments"]
    return cell


def merge(nb: dict, exercises: Sequence[Exercise], label: str = "notebook") -> dict:
    """``nb`` with its exercise cells made equal to :func:`block` (a new dict; ``nb`` is unchanged).

    Cells carrying the metadata are rewritten in place (their id and execution count kept); an
    untagged cell whose type and source equal a missing generated cell is adopted (it gets the
    metadata); cells still missing are inserted beside their neighbours in the block, or after the
    ``## Exercises`` heading in a notebook that has no exercise cell yet; generated cells of exercises
    that no longer exist are removed. Every other cell stays as it is, outputs included.

    In a notebook that has been executed, a new code cell gets the execution count after the
    notebook's highest (the next one the count after that): nbval compares the stored output of a
    check cell only when it has a count (it refuses outputs without one as an "unrun reference
    cell"). In a notebook never executed, new code cells have none, as their neighbours.
    """
    cells = nb.get("cells", [])
    wanted = block(exercises)
    found = _keys(cells, label)
    adopted: dict[int, str] = {}
    for want in wanted:
        if want.key not in found:
            i = next((i for i, c in enumerate(cells)
                      if key_of(c) is None and i not in adopted and _same(c, want)), None)
            if i is not None:
                adopted[i] = want.key
                found[want.key] = i
    key_at = {i: k for k, i in found.items()}
    anchor = last = None
    if key_at:
        last = max(key_at)  # what is still missing goes where the old block ended
    else:
        anchor = next((i for i, c in enumerate(cells) if c.get("cell_type") == "markdown"
                       and _text(c.get("source", "")).strip().splitlines()[:1] == [HEADING]), None)
        if anchor is None:
            raise ValueError(f"{label} has no exercise cells yet and no markdown cell {HEADING!r} to put them "
                             f"after: add that heading where the exercises should go, then run the command again.")
    with_ids = (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5)
    taken = {c.get("id") for c in cells}
    counts = [c["execution_count"] for c in cells
              if c.get("cell_type") == "code" and isinstance(c.get("execution_count"), int)]
    next_count = [max(counts) + 1 if counts else None]
    pending = list(wanted)
    out: list[dict] = []

    def emit(until: Optional[str] = None) -> None:
        while pending:
            want = pending.pop(0)
            old = cells[found[want.key]] if want.key in found else None
            count = next_count[0] if old is None and want.cell_type == "code" else None
            if count is not None:
                next_count[0] += 1
            new = _build(want, old, _cell_id(want.key, taken) if with_ids else None, count)
            taken.add(new.get("id"))
            out.append(new)
            if want.key == until:
                return

    for i, cell in enumerate(cells):
        key = key_at.get(i)
        if key is None:
            out.append(cell)
        elif any(w.key == key for w in pending):
            emit(until=key)
        # else: a generated cell already written further up (out of order), or of an exercise that is gone
        if i in (anchor, last):
            emit()
    emit()
    return {**nb, "cells": out}


def drift(nb: dict, exercises: Sequence[Exercise], label: str = "notebook") -> list[str]:
    """Where ``nb``'s exercise cells differ from :func:`block`: one message per cell, naming the
    notebook (``label``) and the cell; empty when they match."""
    cells = nb.get("cells", [])
    try:
        found = _keys(cells, label)
    except ValueError as e:
        return [str(e)]
    problems = []
    order = []
    for want in block(exercises):
        i = found.get(want.key)
        if i is None:
            twin = next((j for j, c in enumerate(cells) if key_of(c) is None and _same(c, want)), None)
            problems.append(f"{label}: exercise cell {want.key!r} is missing" + (
                f" (cell {twin} has its source but not the metadata {{{META!r}: {{'exercise': {want.key!r}}}}})"
                if twin is not None else "") + ".")
            continue
        order.append(i)
        cell = cells[i]
        where = f"{label}: cell {i} ({want.key})"
        if cell.get("cell_type") != want.cell_type:
            problems.append(f"{where} is a {cell.get('cell_type')} cell; the exercise wants a {want.cell_type} cell.")
            continue
        have = _text(cell.get("source", ""))
        if have != want.source:
            diff = difflib.unified_diff(_lines(have + "\n"), _lines(want.source + "\n"), "notebook",
                                        "advlib.exercises", n=1)
            problems.append(f"{where}: the source differs from advlib.exercises:\n" + "".join(diff).rstrip("\n"))
        if want.cell_type == "code" and _outputs(cell.get("outputs", [])) != _outputs(want.outputs):
            shown = "".join(_text(o.get("text", o.get("data", ""))) for o in cell.get("outputs", [])).strip()
            expected = "".join(_text(o["text"]) for o in want.outputs).strip()
            problems.append(f"{where}: the stored output is {shown or 'empty'!r}; it should be "
                            f"{expected or 'empty'!r} (what the check prints for the starter's stub).")
    if order != sorted(order):
        problems.append(f"{label}: the exercise cells are not in the order of advlib.exercises.")
    wanted_keys = {w.key for w in block(exercises)}
    for key, i in found.items():
        if key not in wanted_keys:
            problems.append(f"{label}: cell {i} carries the exercise cell metadata {key!r}, which is no exercise cell "
                            f"of this notebook any more.")
    return problems


def loads(text: str) -> dict:
    """A notebook from its JSON text."""
    return json.loads(text)


def dumps(nb: dict) -> str:
    """The notebook as Jupyter writes it (indent 1, sorted keys, UTF-8 as is, a final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
