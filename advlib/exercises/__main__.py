"""``python -m advlib.exercises write|verify [NOTEBOOK ...]``: write the exercise cells defined in
:mod:`advlib.exercises` into the notebooks, or verify that the notebooks hold exactly those cells.

NOTEBOOK is a notebook's name (``01_fgsm_mnist``, looked up in the repository's ``notebooks/``) or a
path to an ``.ipynb`` file whose name is one; without any, every notebook that has exercises.
``write`` changes only the exercise cells (see :mod:`advlib.exercises.cells`) and rewrites a file only
when they changed. ``verify`` prints every difference, naming the notebook and the cell, and exits
with status 1 if there is one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import EXERCISES, cells

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def _resolve(arg: str) -> tuple[str, Path]:
    """(notebook name, path) for a command-line argument; ValueError with what to pass otherwise."""
    path = Path(arg) if arg.endswith(".ipynb") else NOTEBOOKS_DIR / f"{arg}.ipynb"
    name = path.stem
    if name not in EXERCISES:
        raise ValueError(f"no exercises are defined for a notebook named {name!r}; give one of "
                         f"{', '.join(EXERCISES)} (or a path to such a .ipynb file).")
    if not path.is_file():
        raise ValueError(f"{path} does not exist; give an existing notebook (a name looks in {NOTEBOOKS_DIR}).")
    return name, path


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write(name: str, path: Path) -> bool:
    """Write the exercise cells of notebook ``name`` into ``path``; True if the file changed."""
    text = path.read_text(encoding="utf-8")
    new = cells.dumps(cells.merge(cells.loads(text), EXERCISES[name], _label(path)))
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlib.exercises", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("write", "verify"))
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                        help=f"a notebook name ({', '.join(EXERCISES)}) or a path to one; default: all of them")
    args = parser.parse_args(argv)
    try:
        targets = [_resolve(a) for a in args.notebooks or EXERCISES]
    except ValueError as e:
        parser.error(str(e))
    status = 0
    for name, path in targets:
        label = _label(path)
        try:
            if args.command == "write":
                changed = write(name, path)
                print(f"{label}: {'exercise cells written' if changed else 'exercise cells already up to date'}")
                continue
            problems = cells.drift(cells.loads(path.read_text(encoding="utf-8")), EXERCISES[name], label)
        except ValueError as e:  # a notebook the cells cannot be written into (the message says why)
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        if problems:
            status = 1
            print("\n".join(problems))
            print(f"{label}: the exercise cells differ from advlib.exercises; run "
                  f"`python -m advlib.exercises write {name}` to rewrite them (or change the exercise's "
                  f"source in advlib/exercises/ if the notebook is right).")
        else:
            print(f"{label}: exercise cells match advlib.exercises")
    return status


if __name__ == "__main__":
    sys.exit(main())
