"""What a notebook reports, written to ``runs/<profile>/<notebook>/metrics.json``.

Every number a notebook shows goes through a :class:`Run`, so that runs can be compared and
checked and the course report can gather them. The file's layout::

    {
      "notebook": "01_fgsm_mnist", "profile": "cpu",
      "data": "MNIST", "data_origin": "full", "dataset": "mnist",   # see Run.set_data
      "settings": {...},                        # the profile's knobs
      "values": {"clean_accuracy": 0.99, ...},  # scalars (or small dicts of them)
      "value_units": {"clean_accuracy": "fraction", ...},
      "tables": {"name": {"columns": [...], "rows": {"row": {"col": value}}, "note": "...",
                          "units": {"col": "fraction"},
                          "rows_meta": {"row": {"model": "fast_cnn", "method": "pgd"}},
                          "columns_meta": {"col": {"attack": {"kind": "pgd", "eps": 0.3, ...}, "n": 1000}},
                          "data": {"dataset": "mnist", "label": "MNIST", "origin": "full"}}},
      "curves": {"name": {"x_label": "eps", "x_unit": "eps", "y_label": "accuracy", "y_unit": "fraction",
                          "x": [...], "series": {"FGSM": [...]}}},
      "figures": {"name": "fig_name.png"},      # files beside metrics.json
      "train_seconds": {"model": 12.3}
    }

Units (:data:`UNITS`) say how to read a number, so that the course report never guesses it from
a name: an accuracy is a ``"fraction"`` (shown in %), a budget an ``"eps"``. For result tables,
``rows_meta`` names each row's model (a name of :mod:`advlib.models`) and training method (a name of
:mod:`advlib.losses`), ``columns_meta`` each column's attack (the settings of
:meth:`advlib.evaluate.AttackSpec.settings`; :data:`CLEAN` for clean accuracy), ``data`` where the
numbers were measured; :meth:`Run.results_table` takes all of this from :func:`advlib.evaluate.evaluate`
results. Entries that a notebook did not declare are simply absent (and so are they in files
written before these declarations existed): the report then says "not recorded".
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from . import tables, utils
from .paths import REPO_ROOT, shown
from .results import WORST, as_rows

PROFILES = ("smoke", "cpu", "gpu")

UNITS = {
    "fraction": "a rate in [0, 1], such as an accuracy, or a difference of two (the report shows it in %)",
    "percent": "already in % or in percentage points",
    "eps": "a perturbation budget in the pixel range [0, 1] (the report writes k/255 where it is one)",
    "seconds": "a duration in seconds",
    "milliseconds": "a duration in milliseconds",
    "number": "any other quantity (a count, a loss, a learning rate...), shown as recorded",
    "text": "not a number",
}
CLEAN = {"kind": "clean"}  # the "attack" of a clean-accuracy column
DATA_KEYS = ("dataset", "label", "origin")
META_KEY = "advlib"  # the key of a notebook output's metadata that holds what advlib embeds
# the compact metrics as one JSON string under META_KEY: nbformat writes a notebook's keys sorted, which would lose
# the order of the rows, runs and series that the findings are written in (read them with embedded_metrics)
EMBEDDED = "metrics_json"

Units = Union[str, Mapping[str, str], None]


def runs_root() -> Path:
    """``ADVLIB_RUNS`` if set, else ``runs/`` in the repository."""
    return Path(os.environ.get("ADVLIB_RUNS", REPO_ROOT / "runs"))


def check_profile(profile: Any) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else a ValueError."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}")
    return profile


def pick(profile: str, settings: dict[str, dict]) -> dict:
    """The settings of ``profile`` from ``{"smoke": {...}, "cpu": {...}, "gpu": {...}}``."""
    return dict(settings[check_profile(profile)])


def check_unit(unit: Any, what: str) -> str:
    """``unit`` if it is one of :data:`UNITS`, else a ValueError naming ``what`` and the valid units."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r} for {what}; use one of: " +
                         ", ".join(f"{k!r} ({v})" for k, v in UNITS.items()))
    return unit


def units_for(names: Sequence[str], units: Units, what: str) -> dict[str, str]:
    """``units`` (one unit for all ``names``, or ``{name: unit}`` for some of them) as ``{name: unit}``,
    checked: every unit known, every name one of ``names``."""
    if units is None:
        return {}
    if isinstance(units, str):
        return {n: check_unit(units, f"{what} {n!r}") for n in names}
    unknown = [k for k in units if k not in names]
    if unknown:
        raise ValueError(f"units given for {unknown}, which are not among the {what}s {list(names)}")
    return {k: check_unit(u, f"{what} {k!r}") for k, u in units.items()}


def data_of(source: Any) -> dict:
    """Where numbers were measured, as ``{"dataset", "label", "origin"}``, from an
    :class:`advlib.data.Dataset` or from such a dict."""
    if isinstance(source, Mapping):
        missing = [k for k in DATA_KEYS if k not in source]
        if missing:
            raise ValueError(f"data must have the keys {DATA_KEYS}; {missing} missing from {dict(source)!r}. "
                             "Pass the advlib.data.Dataset the numbers were measured on instead.")
        return {k: source[k] for k in DATA_KEYS}
    if all(hasattr(source, a) for a in ("name", "label", "origin")):
        return {"dataset": source.name, "label": source.label, "origin": source.origin}
    raise ValueError(f"data must be an advlib.data.Dataset or a dict with the keys {DATA_KEYS}; "
                     f"got {type(source).__name__}")


def _check_meta(meta: Optional[Mapping[str, Mapping]], names: Sequence[str], what: str) -> dict:
    """``rows_meta`` / ``columns_meta`` (``what``: 'row' / 'column'), checked against the table's names."""
    if meta is None:
        return {}
    unknown = [k for k in meta if k not in names]
    if unknown:
        raise ValueError(f"{what}s_meta given for {unknown}, which are not among the {what}s {list(names)}")
    bad = [k for k, v in meta.items() if not isinstance(v, Mapping)]
    if bad:
        raise ValueError(f"{what}s_meta must map each {what} to a dict (rows: {{'model': ..., 'method': ...}}, "
                         f"columns: {{'attack': settings}}); not so for {bad}")
    return {k: dict(v) for k, v in meta.items()}


def image_set_problems(metrics: Mapping[str, Any]) -> list[str]:
    """What in a notebook's metrics compares numbers measured on different images (an empty list when
    nothing does): a table's per-image worst case over columns whose image counts differ from its own
    (every column of an evaluation runs on the first n images, so equal counts mean the same images),
    and a paired test (an entry with a ``"p_value"``) that does not declare the one number of images
    ``"n"`` both its sides were measured on."""
    problems = []
    for name, t in (metrics.get("tables") or {}).items():
        meta = t.get("columns_meta") or {}
        w = meta.get(WORST)
        if not w:
            continue
        of = (w.get("attack") or {}).get("of", [])
        odd = {c: meta.get(c, {}).get("n") for c in of if meta.get(c, {}).get("n") != w.get("n")}
        if odd:
            problems.append(f"table {name!r}: the worst case ({w.get('n')} images) covers columns measured on other "
                            f"numbers of images: {odd}")

    def walk(obj, where):
        if isinstance(obj, Mapping):
            if "p_value" in obj and not isinstance(obj.get("n"), int):
                problems.append(f"{where}: a paired test without the number of images 'n' both sides were measured on")
            for k, v in obj.items():
                walk(v, f"{where}.{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{where}[{i}]")

    for key in ("values",) + tuple(k for k in metrics if k not in ("values", "tables", "curves", "figures")):
        walk(metrics.get(key), key)
    return problems


class Run:
    """The output folder and metrics file of one notebook run."""

    def __init__(self, notebook: str, profile: str, out_dir: Optional[os.PathLike] = None, fresh: bool = True):
        self.notebook, self.profile = notebook, check_profile(profile)
        self.dir = Path(out_dir) if out_dir else runs_root() / profile / notebook
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "metrics.json"
        old = utils.read_json(self.path) if (self.path.exists() and not fresh) else {}
        self.data: dict[str, Any] = {"notebook": notebook, "profile": profile, "values": {}, "value_units": {},
                                     "tables": {}, "curves": {}, "figures": {}, "train_seconds": {}, **old}
        self.data.setdefault("value_units", {})
        self.save()

    def save(self) -> None:
        utils.write_json(self.path, self.data)

    def set(self, **entries: Any) -> None:
        """Top-level entries (``settings``, ``eps``...)."""
        self.data.update(utils.to_jsonable(entries))
        self.save()

    def set_data(self, source: Any) -> None:
        """Record where the notebook's numbers come from: ``data`` (its label, e.g. 'MNIST (shipped
        sample)'), ``data_origin`` and ``dataset``, from an :class:`advlib.data.Dataset` (see :func:`data_of`)."""
        d = data_of(source)
        self.set(data=d["label"], data_origin=d["origin"], dataset=d["dataset"])

    def value(self, *, units: Units = None, **values: Any) -> None:
        """Record scalars (or small dicts of them), e.g. ``run.value(clean_accuracy=0.98, units="fraction")``.

        ``units``: one of :data:`UNITS` for all the values, or ``{name: unit}``; a value recorded
        without one is shown by the report as recorded, with "unit not recorded"."""
        declared = units_for(list(values), units, "value")
        self.data["values"].update(utils.to_jsonable(values))
        for name in values:
            self.data["value_units"].pop(name, None)
        self.data["value_units"].update(declared)
        self.save()

    def table(self, name: str, rows: dict[str, dict[str, Any]], columns: Optional[Sequence[str]] = None,
              note: str = "", *, units: Units = None, rows_meta: Optional[Mapping[str, Mapping]] = None,
              columns_meta: Optional[Mapping[str, Mapping]] = None, data: Any = None) -> None:
        """Record a table ``{row: {column: value}}`` (columns: every key of the rows unless given).

        ``units``: one of :data:`UNITS` for every column, or ``{column: unit}``. For a table of
        results, ``rows_meta`` gives ``{row: {"model": ..., "method": ...}}``, ``columns_meta``
        ``{column: {"attack": settings}}`` and ``data`` the :class:`advlib.data.Dataset` measured on
        (see the module docstring; :meth:`results_table` fills all of them from evaluate results)."""
        columns = tables.columns_of(rows) if columns is None else list(columns)
        entry: dict[str, Any] = {"columns": columns, "rows": rows, "note": note}
        declared = {"units": units_for(columns, units, "column"),
                    "rows_meta": _check_meta(rows_meta, list(rows), "row"),
                    "columns_meta": _check_meta(columns_meta, columns, "column"),
                    "data": data_of(data) if data is not None else None}
        entry.update({k: v for k, v in declared.items() if v})
        self.data["tables"][name] = utils.to_jsonable(entry)
        self.save()

    def results_table(self, name: str, results: Mapping[str, dict],
                      rows_meta: Optional[Mapping[str, Mapping]] = None, note: str = "") -> dict[str, dict]:
        """Record ``{row: advlib.evaluate.evaluate(...) result}`` as a table of accuracies (Clean, then
        each attack) with everything the report needs: units (fractions), each column's attack
        settings and number of images, and the data, all taken from the results; ``rows_meta``
        names each row's model and training method, ``{row: {"model": ..., "method": ...}}``.

        Raises ValueError if the results were not measured with the same attacks on the same data
        (record those as separate tables). Returns the rows, as :func:`advlib.results.as_rows`."""
        if not results:
            raise ValueError("results is empty: pass {row name: evaluate.evaluate(...) result}")
        first_name, first = next(iter(results.items()))
        for key in ("attacks", "n", "n_attack", "data", "data_origin", "dataset"):
            odd = [n for n, r in results.items() if r.get(key) != first.get(key)]
            if odd:
                raise ValueError(f"the results of {odd} differ from those of {first_name!r} in {key!r}: record "
                                 "results measured with other attacks or on other data as a separate table")
        rows = as_rows(results)
        columns_meta = {"Clean": {"attack": CLEAN, "n": first["n"]}}
        columns_meta.update({c: {"attack": a, "n": first["n_attack"][c]} for c, a in first["attacks"].items()})
        if first.get("worst_case"):  # the per-image worst case over every attack
            columns_meta[WORST] = {"attack": {"kind": "worst_case", "of": first["worst_case"]["attacks"]},
                                   "n": first["worst_case"]["n"]}
        # the sanity checks of each row (the report lists the raised flags; notebook 06 reads them)
        flagged = {row: {"flags": r["flags"]} for row, r in results.items() if r.get("flags")}
        if flagged:
            self.data.setdefault("evaluation", {}).update(utils.to_jsonable(flagged))
        bad = image_set_problems({"tables": {name: {"columns_meta": columns_meta}}})
        if bad:
            raise ValueError("; ".join(bad))
        self.table(name, rows, list(columns_meta), note, units="fraction", rows_meta=rows_meta,
                   columns_meta=columns_meta,
                   data={"dataset": first["dataset"], "label": first["data"], "origin": first["data_origin"]})
        return rows

    def curve(self, name: str, x: Sequence[float], series: dict[str, Sequence[float]], x_label: str = "eps",
              y_label: str = "accuracy", *, x_unit: str = "eps", y_unit: str = "fraction") -> None:
        """Record curves ``{series name: y values}`` over ``x``. The default labels and units describe
        the usual curve, accuracy (a fraction) against ε; give the units with any other labels."""
        self.data["curves"][name] = utils.to_jsonable({
            "x_label": x_label, "x_unit": check_unit(x_unit, "x"), "y_label": y_label,
            "y_unit": check_unit(y_unit, "y"), "x": list(x), "series": {k: list(v) for k, v in series.items()}})
        self.save()

    def figure(self, name: str, fig, dpi: int = 80) -> Path:
        """Save a matplotlib figure as ``<name>.png`` beside metrics.json and record it."""
        path = self.dir / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        self.data["figures"][name] = path.name
        self.save()
        return path

    def compact(self) -> dict:
        """The metrics without the per-image evaluation records (what a notebook embeds, a few KB)."""
        out = {k: v for k, v in self.data.items() if k != "evaluation"}
        flags = {row: [f["name"] for f in r.get("flags", []) if f.get("raised")]
                 for row, r in self.data.get("evaluation", {}).items()}
        if flags:
            out["flags_raised"] = flags
        return out

    def finish(self) -> None:
        """End of the notebook: save, say where, and embed the compact metrics in the cell's output
        metadata (invisible), so that a committed notebook carries the numbers its prose was written
        from (``tests/test_findings.py`` compares them)."""
        from IPython.display import display  # in a notebook only: advlib imports without IPython

        self.save()
        bad = image_set_problems(self.data)
        if bad:
            raise ValueError(f"{self.notebook}: numbers measured on different images are compared: " + "; ".join(bad))
        display({"text/plain": f"metrics written to {shown(self.path)}"}, raw=True,
                metadata={META_KEY: {EMBEDDED: json.dumps(utils.to_jsonable(self.compact()), ensure_ascii=False)}})

    def train_time(self, name: str, seconds: float) -> None:
        """Record the training time of ``name``, in seconds."""
        self.data["train_seconds"][name] = round(float(seconds), 2)
        self.save()


def embedded_metrics(output: Mapping) -> Optional[dict]:
    """The metrics a notebook output embeds (:meth:`Run.finish`), in the order the notebook recorded them (``None``
    when it embeds none). Notebooks executed before the order was kept embed the dict itself, its keys sorted."""
    meta = output.get("metadata", {}).get(META_KEY, {})
    if EMBEDDED in meta:
        return json.loads(meta[EMBEDDED])
    return meta.get("metrics")
