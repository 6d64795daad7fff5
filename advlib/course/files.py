"""Where the course's files are: the notebooks, ``runs/<profile>/`` and its status file ``course.json``."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Optional

from .. import record, utils
from ..paths import REPO_ROOT

NOTEBOOK_GLOB = "[0-9][0-9]*_*.ipynb"  # 02_..., and 02b_... sorting between 02 and 03
STATUS_FILE = "course.json"


def default_notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


def find_notebooks(notebooks_dir: Optional[os.PathLike] = None) -> list[Path]:
    """The course notebooks ``NN_*.ipynb`` (or ``NNx_*.ipynb``) of ``notebooks_dir``, in sorted order."""
    d = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    return sorted(p for p in d.glob(NOTEBOOK_GLOB) if p.is_file())


def read_notebook(path: os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def notebook_text(nb: dict) -> str:
    """A notebook's JSON text as Jupyter writes it (indent 1, sorted keys, UTF-8 as is, a final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def notebook_title(path: os.PathLike) -> Optional[str]:
    """The first markdown heading of a notebook (without the #'s), or None."""
    try:
        nb = read_notebook(path)
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in cell_source(cell).splitlines():
            m = re.match(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", line)
            if m:
                return m.group(1).strip()
    return None


def profile_dir(profile: str) -> Path:
    return record.runs_root() / profile


def status_path(profile: str) -> Path:
    return profile_dir(profile) / STATUS_FILE


def load_status(profile: str) -> dict:
    """``runs/<profile>/course.json`` (see :mod:`advlib.course`), or a fresh status if there is none."""
    p = status_path(profile)
    if p.exists():
        try:
            st = utils.read_json(p)
            st.setdefault("notebooks", {})
            return st
        except ValueError:
            print(f"warning: {p} is not valid JSON; starting a fresh status file.", file=sys.stderr)
    return {"profile": profile, "notebooks": {}}


def rel(path: os.PathLike) -> str:
    """``path`` relative to the working directory when below it (shorter messages)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
