"""Where the repository is: the one place that computes its root from this package's location.

:data:`REPO_ROOT` holds ``advlib/``, ``notebooks/``, ``data/`` (the default data root and the shipped
samples) and ``runs/`` (the default output folder, see :func:`advlib.record.runs_root`).
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
