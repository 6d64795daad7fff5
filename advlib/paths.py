"""Where the repository is: the one place that computes its root from this package's location, and how
a path is shown to a reader.

:data:`REPO_ROOT` holds ``advlib/``, ``notebooks/``, ``data/`` (the default data root and the shipped
samples) and ``runs/`` (the default output folder, see :func:`advlib.record.runs_root`).

What the library prints, and what a notebook shows, names a file the way :func:`shown` writes it: relative
to the repository when it lies there (``runs/cpu/01_fgsm_mnist``), so that an output reads the same on every
machine and a committed notebook names no one's folders.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parent.parent

# Folders outside the repository that the environment names, shown by the variable's name: $ADVLIB_DATA/...
SHOWN_VARIABLES = ("ADVLIB_RUNS", "ADVLIB_DATA", "ADVLIB_CACHE")


def _bases(repo_root: Optional[os.PathLike] = None) -> list[tuple[str, str]]:
    """``(folder, how it is shown)`` in the order they are tried: the repository (``""``: relative to it),
    the folders of :data:`SHOWN_VARIABLES` (``"$ADVLIB_DATA"``), the home folder (``"~"``)."""
    out = [(str(Path(repo_root).resolve() if repo_root else REPO_ROOT), "")]
    for var in SHOWN_VARIABLES:
        for entry in os.environ.get(var, "").split(os.pathsep):
            if entry.strip():
                out.append((str(Path(entry.strip()).expanduser().resolve()), "$" + var))
    home = Path.home().resolve()
    if home.parent != home:  # a home folder that is the file system's root would swallow every path
        out.append((str(home), "~"))
    return out


def _join(label: str, rest: str) -> str:
    return f"{label}/{rest}" if label and rest else (label or rest or ".")


def shown(path: os.PathLike) -> str:
    """``path`` as a reader is shown it: relative to the repository when it lies there
    (``runs/cpu/01_fgsm_mnist/metrics.json``; ``.`` for the root itself), else below a folder named by
    ``ADVLIB_RUNS``, ``ADVLIB_DATA`` or ``ADVLIB_CACHE`` (``$ADVLIB_DATA/MNIST/raw``) or the home
    folder (``~/...``), else as it is. A relative ``path`` is taken from the working folder."""
    p = Path(path).expanduser().resolve()
    for base, label in _bases():
        try:
            rest = p.relative_to(base).as_posix()
        except ValueError:
            continue
        return _join(label, "" if rest == "." else rest)
    return str(path)


def shown_in_text(text: str, repo_root: Optional[os.PathLike] = None) -> str:
    """``text`` with every absolute path below those folders written as :func:`shown` writes it.
    ``repo_root``: the repository the text was written in, when another checkout (default: this one)."""
    for base, label in _bases(repo_root):
        start = r"(?<![\w.~$/-])" + re.escape(base)
        text = re.sub(start + r"/(?=[^\s'\"`)\]>,;])", f"{label}/" if label else "", text)  # a path below it
        text = re.sub(start + r"/?(?![\w-]|\.[\w.])", label or ".", text)  # the folder itself
    return text
