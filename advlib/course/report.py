"""The report's content: every notebook's numbers, and ours beside the papers' published ones.

What a number is comes from what the notebook declared in its ``metrics.json`` (see
:mod:`advlib.record`), never from the name of its row or column:

* a number is written by its declared unit (:mod:`advlib.course.formatting`): a ``"fraction"`` in %,
  an ``"eps"`` as k/255...; a number whose unit was not recorded (metrics written before units
  were) is written as recorded, and the report says "unit not recorded";
* a table row is set beside published figures only when the table declares each row's model and
  training method (``rows_meta``), each column's attack (``columns_meta``) and its data set
  (``data``), as :meth:`advlib.record.Run.results_table` does. Tables that do not are listed as
  "not compared" (their model, method, attacks or data were not recorded).

:func:`report_blocks` builds the report as blocks (see :mod:`advlib.course.render`);
:func:`write_report` writes ``runs/<profile>/report.md`` and ``report.html``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from .. import attack_registry, record, reference, tables, utils
from . import formatting as fmt
from .files import default_notebooks_dir, find_notebooks, load_status, notebook_title, profile_dir
from .render import render_html, render_md

NOT_RECORDED = "not recorded"


# --------------------------------------------------------------------------- one notebook's numbers


def data_label(m: dict) -> str:
    """The ``data`` entry of a metrics file as text ('MNIST (shipped sample)'; a dict as 'k: v, ...')."""
    d = m.get("data")
    if not d:
        return NOT_RECORDED
    if isinstance(d, dict):
        return ", ".join(f"{k}: {v}" for k, v in d.items())
    return str(d)


def table_blocks(name: str, t: dict, data: Optional[str] = None) -> list:
    """A recorded table, each column written by its declared unit. ``data``: the notebook's data
    label (the table's own, if it declares another, goes into the caption)."""
    cols = list(t.get("columns") or [])
    rows = t.get("rows") or {}
    cols += [c for c in tables.columns_of(rows) if c not in cols]
    units = {c: (t.get("units") or {}).get(c) for c in cols}
    in_percent, off = False, []
    body = []
    for rname, r in rows.items():
        cells = [str(rname)]
        for c in cols:
            v = r.get(c)
            if units[c] == "fraction" and fmt.is_number(v):
                in_percent |= fmt.is_fraction(v)
                if not fmt.is_fraction(v):
                    off.append(f"{rname} / {c}")
            cells.append(fmt.cell(v, units[c]))
        body.append(cells)
    cap = fmt.unit_caption(units, in_percent)
    if off:
        cap.append(f"declared fractions outside [-1, 1], shown as recorded: {', '.join(off)}")
    label = (t.get("data") or {}).get("label")
    if label and label != data:
        cap.append(f"measured on {label}")
    if t.get("note"):
        cap.append(str(t["note"]))
    meta = t.get("columns_meta") or {}
    full = (meta.get("Clean") or {}).get("n")
    heads = [f"{c} (first {meta[c]['n']})" if full and (meta.get(c) or {}).get("n", full) < full else str(c) for c in cols]
    return [("h", 3, f"Table: {name}"), ("table", [""] + heads, body, "; ".join(cap))]


def values_blocks(values: dict, units: dict) -> list:
    """The key values, each with its declared unit."""
    if not values:
        return []
    rows = [[str(k), fmt.value(v, units.get(k))] for k, v in values.items()]
    return [("h", 3, "Key values"), ("table", ["name", "value"], rows, "")]


def curve_blocks(name: str, c: dict) -> list:
    """A short curve as a table (x across, one row per series); a long one only named."""
    x, series = list(c.get("x") or []), c.get("series") or {}
    xl, yl = str(c.get("x_label", "x")), str(c.get("y_label", ""))
    if not x or len(x) > 15:
        return [("p", f"Curve `{name}`: {len(x)} points of {yl or 'y'} against {xl} (in metrics.json).")]
    xu, yu = c.get("x_unit"), c.get("y_unit")
    rows = [[str(k)] + [fmt.cell(v, yu) for v in s] for k, s in series.items()]
    in_percent = yu == "fraction" and any(fmt.is_fraction(v) for s in series.values() for v in s)
    cap = [f"{yl} in %" if in_percent else yl] + fmt.unit_caption({"x": xu, "y": yu}, False)
    return [("h", 3, f"Curve: {name}"), ("table", [f"{xl} →"] + [fmt.cell(v, xu) for v in x], rows,
                                          "; ".join(p for p in cap if p))]


def gather(profile: str, notebooks_dir: Optional[os.PathLike] = None) -> list[dict]:
    """One entry per notebook known to the course status or with a metrics.json, in course order:
    ``{name, title, status, seconds, finished, error, metrics (or None), dir}``."""
    pdir = profile_dir(profile)
    status = load_status(profile)
    nb_dirs = [Path(p) for p in (notebooks_dir, status.get("notebooks_dir")) if p] + [default_notebooks_dir()]
    names = list(status.get("notebooks", {}))
    if pdir.exists():
        for mpath in sorted(pdir.glob("*/metrics.json")):
            if mpath.parent.name not in names:
                names.append(mpath.parent.name)
    current = []
    for d in nb_dirs:
        current += [p.stem for p in find_notebooks(d)] if d.exists() else []
    order = {n: i for i, n in enumerate(dict.fromkeys(current))}
    names.sort(key=lambda n: (order.get(n, len(order)), n))
    out = []
    for n in names:
        entry = status.get("notebooks", {}).get(n) or {}
        mpath = pdir / n / "metrics.json"
        metrics = None
        if mpath.exists():
            try:
                metrics = utils.read_json(mpath)
            except ValueError:
                metrics = None
        title = None
        for d in nb_dirs:
            if (d / f"{n}.ipynb").exists():
                title = notebook_title(d / f"{n}.ipynb")
                if title:
                    break
        if not title and (pdir / f"{n}.ipynb").exists():
            title = notebook_title(pdir / f"{n}.ipynb")
        out.append({"name": n, "title": title or n, "status": entry.get("status", "not in course run"),
                    "seconds": entry.get("seconds"), "finished": entry.get("finished"),
                    "error": entry.get("error"), "metrics": metrics, "dir": pdir / n})
    return out


def flag_blocks(evaluations: dict) -> list:
    """The sanity checks of a notebook's evaluations (``{row: advlib.evaluate.evaluate result}``): the
    raised flags as a table, or one line saying how many checks passed."""
    checked = {n: r.get("flags") for n, r in evaluations.items() if isinstance(r, dict) and r.get("flags")}
    if not checked:
        return []
    raised = [[n, f["name"], f["observed"], f"{f['suggests']} Try: {f['to_try']}"]
              for n, flags in checked.items() for f in flags if f.get("raised")]
    total = sum(len(v) for v in checked.values())
    if not raised:
        return [("h", 3, "Sanity checks"), ("p", f"All {total} sanity checks of the evaluation passed.")]
    return [("h", 3, "Sanity checks"),
            ("table", ["model", "check", "observed", "what it suggests"], raised,
             f"{len(raised)} of {total} checks raised a flag (advlib.checks)")]


def notebook_blocks(nb: dict, profile: str) -> list:
    m = nb["metrics"] or {}
    blocks: list = [("h", 2, nb["title"])]
    data = data_label(m)
    facts = [f"Notebook `{nb['name']}.ipynb`", f"data: **{data}**", f"profile: **{m.get('profile', profile)}**",
             f"wall time: **{fmt.fmt_seconds(nb['seconds'])}**", f"status: {nb['status']}"]
    if m.get("eps") is not None:
        facts.insert(3, f"ε = {fmt.fmt_eps(m['eps'])}")
    blocks.append(("p", " · ".join(facts)))
    if nb["status"] == "failed":
        blocks.append(("warn", f"This notebook failed: {nb['error'] or 'see the executed copy'}. "
                               "The numbers below (if any) are partial."))
    elif nb["status"] == "running":
        blocks.append(("warn", "This notebook did not finish (the run was stopped). The numbers below are partial."))
    if not nb["metrics"]:
        blocks.append(("p", "No metrics recorded."))
        return blocks
    if m.get("findings"):
        blocks += [("h", 3, "Findings (written from the numbers by advlib.findings)")]
        blocks += [("p", "- " + line) for line in m["findings"]]
    settings = m.get("settings") or {}
    if settings:
        blocks.append(("p", "Settings: " + ", ".join(f"`{k}={fmt.fmt_number(v)}`" for k, v in settings.items())))
    for tname, t in (m.get("tables") or {}).items():
        blocks += table_blocks(tname, t, m.get("data"))
    blocks += flag_blocks(m.get("evaluation") or {})
    for cname, c in (m.get("curves") or {}).items():
        blocks += curve_blocks(cname, c)
    blocks += values_blocks(m.get("values") or {}, m.get("value_units") or {})
    ts = m.get("train_seconds") or {}
    if ts:
        blocks += [("h", 3, "Training time"),
                   ("table", ["model", "seconds", ""], [[str(k), fmt.fmt_number(v), fmt.fmt_seconds(v)]
                                                        for k, v in ts.items()], "")]
    for fname, file in (m.get("figures") or {}).items():
        path = nb["dir"] / file
        blocks.append(("img", fname, f"{nb['name']}/{file}", path))
    return blocks


# --------------------------------------------------------------------------- ours beside the published figures


def _as_percent(v: Any, unit: Optional[str]) -> Optional[float]:
    """A declared fraction or percentage in %; None for anything else (also a number without a unit)."""
    if unit == "fraction" and fmt.is_number(v) and 0.0 <= v <= 1.0:
        return 100.0 * v
    if unit == "percent" and fmt.is_number(v):
        return float(v)
    return None


def _pgd_size(attack: dict) -> tuple[int, int]:
    return int(attack.get("steps") or 1), int(attack.get("restarts") or 1)


def ours_in(row: dict, t: dict, published: str, want: Optional[tuple[int, int]] = None) -> Optional[dict]:
    """Our number for the published column ``published`` (see :func:`advlib.attack_registry.published_column`)
    in ``row`` of table ``t``, from the columns' declared attacks and units: ``{"value" (in %),
    "column", "attack"}`` or None. Among several PGD columns: the one of ``want`` = (steps,
    restarts) if any, else the strongest."""
    meta, units = t.get("columns_meta") or {}, t.get("units") or {}
    hits = []
    for c in t.get("columns") or []:
        attack = (meta.get(c) or {}).get("attack")
        v = _as_percent(row.get(c), units.get(c))
        if v is not None and attack_registry.published_column(attack) == published:
            hits.append({"value": v, "column": c, "attack": attack})
    if not hits:
        return None
    if hits[0]["attack"].get("kind") != "pgd":
        return hits[0]
    same = [h for h in hits if _pgd_size(h["attack"]) == want]
    return same[0] if same else max(hits, key=lambda h: _pgd_size(h["attack"])[0] * _pgd_size(h["attack"])[1])


def _comparable(t: dict) -> bool:
    """Whether a table declares what matching needs: rows' models and methods, columns' attacks, data set."""
    return bool(t.get("rows_meta") and t.get("columns_meta") and (t.get("data") or {}).get("dataset"))


def comparisons(notebooks: list[dict], profile: str) -> tuple[list[dict], list[str]]:
    """(our table rows with a published counterpart, with their counterparts; the tables that could
    not be compared because they do not declare models, methods, attacks and data, as 'notebook / table')."""
    found, undeclared = [], []
    for nb in notebooks:
        m = nb["metrics"] or {}
        for tname, t in (m.get("tables") or {}).items():
            if not _comparable(t):
                undeclared.append(f"{nb['name']} / {tname}")
                continue
            rows = t.get("rows") or {}
            for rname, meta in t["rows_meta"].items():
                matches = reference.match(t["data"]["dataset"], meta.get("model"), meta.get("method"),
                                          meta.get("checkpoint"))
                if matches and rname in rows:
                    found.append({"notebook": nb["name"], "table": tname, "row": rname, "method": meta.get("method"),
                                  "data": t["data"]["label"], "profile": m.get("profile", profile),
                                  "dataset": t["data"]["dataset"], "row_values": rows[rname], "t": t,
                                  "matches": matches})
    return found, undeclared


def _num(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.2f}"


def _ours_num(p: Optional[dict]) -> str:
    """One of ours (from :func:`ours_in`) in % with two decimals, '–' if we have none."""
    return _num(p["value"] if p else None)


def _eps_text(picked: list[Optional[dict]]) -> tuple[str, list]:
    """Our ε as text (from the declared attacks of the columns used) and its values."""
    eps = list(dict.fromkeys(p["attack"]["eps"] for p in picked
                             if p and p["attack"].get("kind") != "clean" and p["attack"].get("eps") is not None))
    return (", ".join(fmt.fmt_eps(e) for e in eps) if eps else NOT_RECORDED), eps


def _eps_note(eps: list, dataset: str) -> str:
    pub = reference.EPS_VALUE[dataset]
    if eps and any(abs(e - pub) > 1e-9 for e in eps):
        ours = ", ".join(fmt.fmt_eps(e) for e in eps)
        return f"ours measured at ε = {ours}, the published at {reference.EPS[dataset]}"
    return ""


def _comparison_blocks(f: dict) -> list:
    ours_label = f"ours: {f['row']}"
    where = f"{f['data']}, profile {f['profile']}"
    blocks: list = [("h", 4, f"{f['row']} ({f['notebook']}, table {f['table']})")]
    rslad = [x for x in f["matches"] if x["kind"] == "rslad"]
    anchors = [x for x in f["matches"] if x["kind"] == "anchor"]
    if rslad:
        cols = list(reference.RSLAD_COLUMNS)
        mine = {c: ours_in(f["row_values"], f["t"], c, (20, 1)) for c in cols}  # RSLAD: 20-step PGD
        eps_ours, eps = _eps_text(list(mine.values()))
        rows = [[ours_label, where, eps_ours] + [_ours_num(mine[c]) for c in cols]]
        for x in rslad:
            rows.append([x["title"], "CIFAR-10 (published)", reference.EPS["cifar10"]] +
                        [_num(x["values"][c]) for c in cols])
        cap = ["ours: " + ", ".join(f"{c} = our column '{mine[c]['column']}'" for c in cols if mine[c]),
               _eps_note(eps, f["dataset"])]
        blocks.append(("table", ["", "measured on", "ε"] + cols, rows, "; ".join(c for c in cap if c)))
    for a in anchors:
        mine = {"Clean": ours_in(f["row_values"], f["t"], "Clean"),
                "robust": ours_in(f["row_values"], f["t"], "PGD_SAT", a["pgd"]),
                "AA": ours_in(f["row_values"], f["t"], "AA")}
        eps_ours, eps = _eps_text(list(mine.values()))
        rob = f"{_ours_num(mine['robust'])} ({mine['robust']['column']})" if mine["robust"] else "–"
        pub = "CIFAR-10 (published)" if f["dataset"] == "cifar10" else "MNIST (published)"
        rows = [[ours_label, where, eps_ours, _ours_num(mine["Clean"]), rob, _ours_num(mine["AA"])],
                [a["title"], pub, reference.EPS[f["dataset"]], _num(a["values"]["Clean"]),
                 _num(a["values"]["robust"]) + (f" ({a['attack']})" if a["attack"] else ""),
                 _num(a["values"]["AA"])]]
        note = ""
        if f["dataset"] == "mnist" and reference.published_method(f["method"]) == "SAT":
            note = "no PGD-trained MNIST model is on the reference sheet; the MNIST anchors are shown for scale"
        cap = [note, _eps_note(eps, f["dataset"]), "source: " + a["citation"]]
        blocks.append(("table", ["", "measured on", "ε", "Clean", "robust", "AA"], rows,
                       "; ".join(c for c in cap if c)))
    return blocks


def published_blocks(notebooks: list[dict], profile: str) -> list:
    blocks: list = [("h", 2, "Published figures"),
                    ("p", "The papers' numbers (in %) beside ours. Published CIFAR-10 figures are L∞ with ε = 8/255 "
                          "on the full test set, MNIST with ε = 0.3. Ours are marked with the data and profile they "
                          "were measured on; numbers from the smoke or cpu profile, from the shipped sample or "
                          "from the JPEG copy are not expected to reach the published ones. Transcribed in "
                          "`advlib/reference.py` from the course's reference sheet.")]
    found, undeclared = comparisons(notebooks, profile)
    blocks.append(("h", 3, "Ours beside theirs"))
    if not found:
        blocks.append(("p", "No table row of ours has a published counterpart yet. (Compared are the rows of "
                            "tables that record each row's model and training method, each column's attack and "
                            "the data set, such as `Run.results_table`: TRADES, FGSM-RS or PGD training on MNIST, "
                            "a model and a method of the tables below on CIFAR-10.)"))
    if undeclared:
        blocks.append(("p", "Not compared, their models, training methods, attacks or data set not recorded: " +
                            ", ".join(undeclared) + "."))
    for f in found:
        blocks += _comparison_blocks(f)
    matched = {x["title"] for f in found for x in f["matches"]}
    blocks.append(("h", 3, "Published tables"))
    for t in reference.published_tables():
        rows = []
        for rname, r in t["rows"].items():
            cells = [rname] + [_num(r.get(c)) for c in t["columns"]]
            if t["attacks"].get(rname):
                cells[t["columns"].index("robust") + 1] += f" ({t['attacks'][rname]})"
            rows.append(cells)
        blocks.append(("h", 4, t["title"]))
        blocks.append(("p", f"Source: {t['citation']}. {t['note']}"))
        if t["key"].startswith("rslad_"):
            hit = any(x.startswith("RSLAD Table 2") or x.startswith("independent reproduction") for x in matched)
        else:
            hit = any(a.title in matched for a in reference.ANCHORS)
        if not hit:
            blocks.append(("p", "_Not measured by any notebook of this run yet: listed for reference._"))
        blocks.append(("table", ["", *t["columns"]], rows, ""))
    return blocks


# --------------------------------------------------------------------------- the whole report


def report_blocks(profile: str, notebooks_dir: Optional[os.PathLike] = None) -> list:
    status = load_status(profile)
    notebooks = gather(profile, notebooks_dir)
    blocks: list = [("h", 1, f"Course results, profile {profile}")]
    facts = [f"Profile: **{profile}**", f"report written {fmt.now()}"]
    if status.get("updated"):
        facts.append(f"last run {status['updated']}")
    blocks.append(("p", " · ".join(facts)))
    mach = status.get("machine")
    blocks.append(("p", f"Machine (of the run): {mach.get('platform')}, {mach.get('cpus')} CPUs, torch "
                        f"{mach.get('torch')}, device: {mach.get('device')}" if mach else
                        f"Machine (of the run): {NOT_RECORDED} (no course run)."))
    total = sum(nb["seconds"] or 0 for nb in notebooks)
    counts: dict[str, int] = {}
    for nb in notebooks:
        counts[nb["status"]] = counts.get(nb["status"], 0) + 1
    blocks.append(("p", f"{len(notebooks)} notebooks (" + ", ".join(f"{v} {k}" for k, v in counts.items()) +
                        f"), wall time {fmt.fmt_seconds(total)}."))
    if profile == "smoke":
        blocks.append(("warn", "Profile smoke: a few batches only, to check that everything runs. "
                               "The numbers are not meaningful."))
    weak = [(nb["name"], data_label(nb["metrics"])) for nb in notebooks
            if nb["metrics"] and nb["metrics"].get("data_origin") in ("sample", "jpeg-copy")]
    if weak:
        blocks.append(("warn", "Some notebooks ran on the shipped sample or on the JPEG copy of CIFAR-10, not on "
                               "the full pixel-exact data set: " + ", ".join(f"{n} ({d})" for n, d in weak) +
                               ". Their numbers are not comparable to the published ones."))
    if not notebooks:
        blocks.append(("p", f"Nothing has been run for this profile yet: `make course PROFILE={profile}`."))
    else:
        rows = [[nb["name"], nb["title"], nb["status"], data_label(nb["metrics"]) if nb["metrics"] else "–",
                 fmt.fmt_seconds(nb["seconds"])] for nb in notebooks]
        blocks.append(("table", ["notebook", "title", "status", "data", "wall time"], rows, ""))
    for nb in notebooks:
        blocks += notebook_blocks(nb, profile)
    blocks += published_blocks(notebooks, profile)
    return blocks


def write_report(profile: str, notebooks_dir: Optional[os.PathLike] = None) -> tuple[Path, Path]:
    """Write ``runs/<profile>/report.md`` and ``report.html``; return their paths."""
    record.check_profile(profile)
    blocks = report_blocks(profile, notebooks_dir)
    pdir = profile_dir(profile)
    pdir.mkdir(parents=True, exist_ok=True)
    md, ht = pdir / "report.md", pdir / "report.html"
    md.write_text(render_md(blocks), encoding="utf-8")
    ht.write_text(render_html(blocks, f"Course results, profile {profile}"), encoding="utf-8")
    return md, ht
