"""What a notebook reports, written to ``runs/<profile>/<notebook>/metrics.json``.

Every number a notebook shows goes through a :class:`Run`, so that runs can be compared and
checked and the course report can gather them. The file's layout::

    {
      "notebook": "01_fgsm_mnist", "profile": "cpu", "data": "MNIST", "data_origin": "full",
      "settings": {...},                      # the profile's knobs
      "values": {"clean_accuracy": 0.99, ...},  # scalars
      "tables": {"name": {"columns": [...], "rows": {"row": {"col": value}}, "note": "..."}},
      "curves": {"name": {"x_label": "eps", "x": [...], "series": {"FGSM": [...]}}},
      "figures": {"name": "fig_name.png"},      # files beside metrics.json
      "train_seconds": {"model": 12.3}
    }
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

from . import utils

PROFILES = ("smoke", "cpu", "gpu")


def runs_root() -> Path:
    """``ADVLIB_RUNS`` if set, else ``runs/`` in the repository."""
    return Path(os.environ.get("ADVLIB_RUNS", Path(__file__).resolve().parent.parent / "runs"))


def pick(profile: str, settings: dict[str, dict]) -> dict:
    """The settings of ``profile`` from ``{"smoke": {...}, "cpu": {...}, "gpu": {...}}``."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}")
    return dict(settings[profile])


class Run:
    """The output folder and metrics file of one notebook run."""

    def __init__(self, notebook: str, profile: str, out_dir: Optional[os.PathLike] = None, fresh: bool = True):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}")
        self.notebook, self.profile = notebook, profile
        self.dir = Path(out_dir) if out_dir else runs_root() / profile / notebook
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "metrics.json"
        old = utils.read_json(self.path) if (self.path.exists() and not fresh) else {}
        self.data: dict[str, Any] = {"notebook": notebook, "profile": profile, "values": {}, "tables": {},
                                     "curves": {}, "figures": {}, "train_seconds": {}, **old}
        self.save()

    def save(self) -> None:
        utils.write_json(self.path, self.data)

    def set(self, **entries: Any) -> None:
        """Top-level entries (``data``, ``data_origin``, ``settings``, ``eps``...)."""
        self.data.update(utils.to_jsonable(entries))
        self.save()

    def value(self, **values: Any) -> None:
        self.data["values"].update(utils.to_jsonable(values))
        self.save()

    def table(self, name: str, rows: dict[str, dict[str, Any]], columns: Optional[Sequence[str]] = None,
              note: str = "") -> None:
        if columns is None:
            columns = []
            for r in rows.values():
                columns += [c for c in r if c not in columns]
        self.data["tables"][name] = utils.to_jsonable({"columns": list(columns), "rows": rows, "note": note})
        self.save()

    def curve(self, name: str, x: Sequence[float], series: dict[str, Sequence[float]], x_label: str = "eps",
              y_label: str = "accuracy") -> None:
        self.data["curves"][name] = utils.to_jsonable({"x_label": x_label, "y_label": y_label, "x": list(x),
                                                       "series": {k: list(v) for k, v in series.items()}})
        self.save()

    def figure(self, name: str, fig, dpi: int = 80) -> Path:
        """Save a matplotlib figure as ``<name>.png`` beside metrics.json and record it."""
        path = self.dir / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        self.data["figures"][name] = path.name
        self.save()
        return path

    def train_time(self, name: str, seconds: float) -> None:
        self.data["train_seconds"][name] = round(float(seconds), 2)
        self.save()
