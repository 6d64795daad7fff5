"""One command runs the course; a second writes the results report.

Command line (``make course PROFILE=cpu`` runs the first, which also writes the report;
``make report PROFILE=cpu`` the second)::

    python -m advlib.course run --profile {smoke,cpu,gpu} [--notebooks DIR] [--only NAME ...] [--restart]
    python -m advlib.course report --profile {smoke,cpu,gpu} [--notebooks DIR]

``run`` executes every ``NN_*.ipynb`` of the notebooks folder in sorted order, headless with
papermill (the parameter ``profile`` injected), into ``runs/<profile>/<name>.ipynb``; the
notebooks write their numbers to ``runs/<profile>/<name>/metrics.json`` (see
:mod:`advlib.record`). The status of each notebook is kept in ``runs/<profile>/course.json``::

    {"profile": "cpu", "notebooks_dir": "...", "machine": {...}, "updated": "...",
     "notebooks": {"01_fgsm_mnist": {"status": "ok", "seconds": 61.2, "started": "...",
                                     "finished": "...", "source_sha256": "...", "error": null}}}

A second ``run`` resumes: notebooks already ``ok`` whose source is unchanged are skipped, so it
starts at the first notebook not yet run (or failed, or edited since). ``--restart`` reruns all,
``--only`` the named ones. On a failure the run stops, names the notebook and the cell, and
exits with status 1. After every run, also a partial one, the report is written:
``runs/<profile>/report.md`` (figures linked) and ``runs/<profile>/report.html`` (self-contained).

From Python: :func:`run_course` and :func:`write_report`. ``runs/`` is ``ADVLIB_RUNS`` if set.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import hashlib
import html
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from . import record, reference, utils

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
STATUS_FILE = "course.json"


# --------------------------------------------------------------------------- small helpers


def default_notebooks_dir() -> Path:
    return REPO / "notebooks"


def find_notebooks(notebooks_dir: Optional[os.PathLike] = None) -> list[Path]:
    """The course notebooks ``NN_*.ipynb`` of ``notebooks_dir``, in sorted order."""
    d = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    return sorted(p for p in d.glob(NOTEBOOK_GLOB) if p.is_file())


def source_sha256(path: os.PathLike) -> str:
    """SHA-256 of what a notebook *does*: its cells' types, tags and sources. Outputs and metadata are
    left out, so opening and saving a notebook in Lab does not force a rerun; editing a cell does."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = [[c.get("cell_type"), sorted(c.get("metadata", {}).get("tags", [])),
                  "".join(c["source"]) if isinstance(c.get("source"), list) else c.get("source", "")]
                 for c in nb.get("cells", [])]
        blob = json.dumps(cells, ensure_ascii=False, sort_keys=True).encode("utf-8")
    except (ValueError, KeyError, TypeError, AttributeError):
        blob = Path(path).read_bytes()
    return hashlib.sha256(blob).hexdigest()


def profile_dir(profile: str) -> Path:
    return record.runs_root() / profile


def status_path(profile: str) -> Path:
    return profile_dir(profile) / STATUS_FILE


def load_status(profile: str) -> dict:
    p = status_path(profile)
    if p.exists():
        try:
            st = utils.read_json(p)
            st.setdefault("notebooks", {})
            return st
        except ValueError:
            print(f"warning: {p} is not valid JSON; starting a fresh status file.", file=sys.stderr)
    return {"profile": profile, "notebooks": {}}


def now() -> str:
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


def _rel(path: Path) -> str:
    """``path`` relative to the working directory when below it (shorter messages)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def machine_info() -> dict:
    import torch

    device = "CPU"
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        device = torch.cuda.get_device_name(0) + (f" (×{n})" if n > 1 else "")
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "device": device}


def read_notebook(path: os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _cell_source(cell: dict) -> str:
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
        for line in _cell_source(cell).splitlines():
            m = re.match(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", line)
            if m:
                return m.group(1).strip()
    return None


@contextlib.contextmanager
def _kernel_env(profile: str):
    """The environment the notebook kernels inherit, restored afterwards."""
    old = dict(os.environ)
    os.environ["ADVLIB_PROFILE"] = profile
    if os.environ.get("ADVLIB_PROGRESS") != "off":
        os.environ["ADVLIB_PROGRESS"] = "text"
    # The kernels run in the notebooks folder: pin the runs root, and make relative data paths
    # absolute so that they keep pointing where they point from here.
    os.environ["ADVLIB_RUNS"] = str(record.runs_root().resolve())
    for var in ("ADVLIB_DATA", "ADVLIB_CACHE"):
        if os.environ.get(var):
            os.environ[var] = os.pathsep.join(str(Path(e.strip()).expanduser().resolve()) if e.strip() else e
                                              for e in os.environ[var].split(os.pathsep))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


# --------------------------------------------------------------------------- planning


def select(names: Sequence[str], only: Optional[Iterable[str]]) -> list[str]:
    """The notebooks named in ``only`` (a full name, with or without .ipynb, or a unique prefix such as
    ``03``), in course order. Raises ValueError for a name that matches none or several."""
    if not only:
        return list(names)
    chosen = set()
    for raw in only:
        key = Path(raw).name
        key = key[:-6] if key.endswith(".ipynb") else key
        if key in names:
            chosen.add(key)
            continue
        hits = [n for n in names if n.startswith(key)]
        if len(hits) != 1:
            what = "matches none" if not hits else f"matches several ({', '.join(hits)})"
            raise ValueError(f"--only {raw!r} {what} of the notebooks: {', '.join(names)}")
        chosen.add(hits[0])
    return [n for n in names if n in chosen]


def plan(names: Sequence[str], hashes: dict[str, str], status: dict, only: Optional[Iterable[str]] = None,
         restart: bool = False, outputs_exist: Optional[dict[str, bool]] = None) -> dict[str, str]:
    """What to do with each notebook: ``{name: "run" | "skip" | "leave"}`` with a reason after a colon.

    ``skip``: done (status ok, same source hash, executed copy present); ``leave``: not selected by
    ``--only``. Everything else runs, in order."""
    selected = set(select(names, only))
    out = {}
    for n in names:
        entry = status.get("notebooks", {}).get(n, {})
        if n not in selected:
            out[n] = "leave"
        elif only or restart:
            out[n] = "run:" + ("named by --only" if only else "--restart")
        elif not entry:
            out[n] = "run:not run yet"
        elif entry.get("status") != "ok":
            out[n] = "run:" + ("failed last time" if entry.get("status") == "failed" else "unfinished")
        elif entry.get("source_sha256") != hashes.get(n):
            out[n] = "run:source changed since its last run"
        elif outputs_exist is not None and not outputs_exist.get(n, True):
            out[n] = "run:executed copy missing"
        else:
            out[n] = "skip:done " + (entry.get("finished") or "earlier")
    return out


# --------------------------------------------------------------------------- running


def _locate_cell(src_nb: dict, source: str) -> tuple[Optional[int], Optional[int], int]:
    """(1-based cell number, 1-based code cell number) of the cell with ``source`` in the source notebook,
    and the number of cells."""
    cells = src_nb.get("cells", [])
    code_no = 0
    for i, c in enumerate(cells, 1):
        if c.get("cell_type") == "code":
            code_no += 1
            if _cell_source(c).strip() == (source or "").strip():
                return i, code_no, len(cells)
    return None, None, len(cells)


def resume_command(profile: str, notebooks_dir: Optional[os.PathLike] = None) -> str:
    """How to go on after a failure, as text for the terminal."""
    if notebooks_dir is not None and Path(notebooks_dir).resolve() != default_notebooks_dir().resolve():
        return f"`python -m advlib.course run --profile {profile} --notebooks {notebooks_dir}`"
    return f"`make course PROFILE={profile}` (or `python -m advlib.course run --profile {profile}`)"


def describe_failure(name: str, src: Path, out: Path, err: BaseException, profile: str,
                     notebooks_dir: Optional[Path]) -> tuple[str, str]:
    """(short error for course.json, message for the terminal)."""
    from papermill.exceptions import PapermillExecutionError

    tail = (f"Executed copy with the full traceback: {_rel(out)}\n"
            f"Fix the cause, then run {resume_command(profile, notebooks_dir)} again: it resumes at {name} "
            "(notebooks already done are skipped; --restart reruns all).")
    if isinstance(err, PapermillExecutionError):
        try:
            cell_no, code_no, n_cells = _locate_cell(read_notebook(src), err.source)
        except (OSError, ValueError):
            cell_no, code_no, n_cells = None, None, 0
        if cell_no is not None:
            where = f"cell {cell_no} of {n_cells} (code cell {code_no}; In [{err.exec_count}] in the executed copy)"
        else:
            where = f"cell {err.cell_index + 1} of the executed copy (In [{err.exec_count}])"
        lines = [ln for ln in (err.source or "").splitlines() if ln.strip()]
        shown = lines[:3] + (["..."] if len(lines) > 3 else [])
        evalue = str(err.evalue or "")
        if len(evalue) > 600:
            evalue = evalue[:600] + " ..."
        short = f"{where}: {err.ename}: {evalue}"
        msg = (f"\nFAILED: {name}.ipynb stopped at {where}:\n" + "".join(f"    | {ln}\n" for ln in shown) +
               f"  {err.ename}: {evalue}\n" + tail)
        return short, msg
    text = f"{type(err).__name__}: {err}".strip()
    if len(text) > 600:
        text = text[:600] + " ..."
    return text, f"\nFAILED: {name}.ipynb could not be run: {text}\n" + tail


def run_course(profile: str, notebooks_dir: Optional[os.PathLike] = None, only: Optional[Iterable[str]] = None,
               restart: bool = False, report: bool = True, stream=None) -> dict:
    """Run the course notebooks headless for ``profile`` (see the module docstring).

    Returns ``{"profile", "ok", "failed" (name or None), "ran", "skipped", "not_run", "seconds",
    "notebooks" (course.json's entries), "message" (the failure message or None), "report"
    ((md, html) paths or None)}``. Does not raise on a failing notebook; raises ValueError for a bad
    profile, no notebooks or an unknown ``only`` name."""
    import papermill as pm

    out = stream or sys.stdout
    if profile not in record.PROFILES:
        raise ValueError(f"profile must be one of {record.PROFILES}; got {profile!r}")
    nb_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    paths = find_notebooks(nb_dir)
    if not paths:
        raise ValueError(f"No notebooks {NOTEBOOK_GLOB} in {nb_dir}")
    names = [p.stem for p in paths]
    by_name = dict(zip(names, paths))
    hashes = {n: source_sha256(p) for n, p in by_name.items()}
    pdir = profile_dir(profile)
    pdir.mkdir(parents=True, exist_ok=True)
    status = load_status(profile)
    status.update(profile=profile, notebooks_dir=str(nb_dir.resolve()), machine=machine_info())
    todo = plan(names, hashes, status, only, restart,
                outputs_exist={n: (pdir / f"{n}.ipynb").exists() for n in names})

    def save():
        status["updated"] = now()
        utils.write_json(status_path(profile), status)

    def say(text=""):
        print(text, file=out, flush=True)

    n_total = len(names)
    n_run = sum(v.startswith("run") for v in todo.values())
    say(f"Course, profile {profile}: {n_total} notebooks in {_rel(nb_dir)} -> {_rel(pdir)}/ "
        f"({n_run} to run{', ' + str(sum(v.startswith('skip') for v in todo.values())) + ' done earlier' if n_run < n_total else ''})")
    first = next((n for n in names if todo[n].startswith("run")), None)
    if first is None:
        say("Nothing to run: every notebook is done and unchanged (--restart reruns all, --only NAME one).")
    if first and any(todo[n].startswith("skip") for n in names[:names.index(first)]):
        say(f"Resuming at {first} ({todo[first].split(':', 1)[1]}).")

    mode = os.environ.get("ADVLIB_PROGRESS", "auto")
    result = {"profile": profile, "ok": True, "failed": None, "ran": [], "skipped": [], "not_run": [],
              "seconds": 0.0, "message": None, "report": None}
    t_course = time.perf_counter()
    interrupted = False
    for i, name in enumerate(names, 1):
        action, _, why = todo[name].partition(":")
        tag = f"[{i}/{n_total}] {name}"
        if action == "leave":
            continue
        if action == "skip":
            result["skipped"].append(name)
            say(f"{tag}: skipped ({why})")
            continue
        if result["failed"] or interrupted:
            result["not_run"].append(name)
            continue
        src, dst = by_name[name], pdir / f"{name}.ipynb"
        say(f"{tag}: running ({why}; course time so far {fmt_seconds(time.perf_counter() - t_course)})")
        entry = {"status": "running", "seconds": None, "started": now(), "finished": None,
                 "source_sha256": hashes[name], "error": None}
        status["notebooks"][name] = entry
        save()
        bar: Any = False
        if mode != "off":
            bar = {"desc": f"  {name}", "unit": "cell", "ncols": 100, "ascii": mode == "text", "leave": False,
                   "file": sys.stderr}
            if not sys.stderr.isatty():  # a log file: keep the final bar line, update rarely
                bar.update(ascii=True, leave=True, mininterval=60.0)
        t0 = time.perf_counter()
        err: Optional[BaseException] = None
        try:
            with _kernel_env(profile):
                pm.execute_notebook(str(src), str(dst), parameters={"profile": profile}, cwd=str(nb_dir),
                                    kernel_name="python3", progress_bar=bar, log_output=False,
                                    # quiet kernel start-up (its "running over TCP" warning is noise here)
                                    extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except KeyboardInterrupt as e:
            err, interrupted = e, True
        except Exception as e:  # noqa: BLE001 - any failure of a notebook is recorded, not raised
            err = e
        seconds = round(time.perf_counter() - t0, 2)
        entry.update(seconds=seconds, finished=now())
        if err is None:
            entry["status"] = "ok"
            result["ran"].append(name)
            say(f"{tag}: ok in {fmt_seconds(seconds)}")
        else:
            entry["status"] = "failed"
            if interrupted:
                short, msg = "interrupted (Ctrl-C)", (f"\nINTERRUPTED: {name}.ipynb after {fmt_seconds(seconds)}. "
                                                      f"Run {resume_command(profile, nb_dir)} again to resume at it.")
            else:
                short, msg = describe_failure(name, src, dst, err, profile, nb_dir)
            entry["error"] = short
            result.update(ok=False, failed=name, message=msg)
            print(msg, file=sys.stderr, flush=True)
        save()

    result["seconds"] = round(time.perf_counter() - t_course, 2)
    result["notebooks"] = {n: status["notebooks"].get(n) for n in names}
    say(summary(profile, names, status, result, nb_dir))
    if report:
        try:
            result["report"] = write_report(profile, notebooks_dir=nb_dir)
            say(f"Report: {_rel(result['report'][0])} and {_rel(result['report'][1])}")
        except Exception as e:  # noqa: BLE001 - a report problem must not hide the run's outcome
            print(f"warning: could not write the report: {type(e).__name__}: {e}", file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt
    return result


def summary(profile: str, names: Sequence[str], status: dict, result: dict,
            notebooks_dir: Optional[os.PathLike] = None) -> str:
    width = max(len(n) for n in names) if names else 10
    lines = [f"\nSummary, profile {profile} (this run: {fmt_seconds(result['seconds'])}):"]
    total = 0.0
    for n in names:
        e = status["notebooks"].get(n) or {}
        st = e.get("status", "not run")
        if n in result["not_run"] or not e:
            st = "not run"
        note = " (done earlier)" if n in result["skipped"] else ""
        if e.get("seconds") is not None and st != "not run":
            total += e["seconds"]
        secs = fmt_seconds(e.get("seconds")) if st != "not run" else "–"
        lines.append(f"  {n:<{width}}  {st:<8} {secs:>14}{note}")
    lines.append(f"  {'total':<{width}}  {'':<8} {fmt_seconds(total):>14}")
    if result["failed"]:
        lines.append(f"Stopped at {result['failed']}; {resume_command(profile, notebooks_dir)} resumes there.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the report: blocks

# A report is a list of blocks rendered twice, as Markdown and as self-contained HTML:
# ("h", level, text) ("p", text) ("warn", text) ("table", columns, rows, caption) ("img", alt, rel, path)

_NON_PERCENT_FIRST = {"eps", "epsilon", "ε", "alpha", "α", "beta", "β", "lr", "learning", "lambda", "λ", "tau",
                      "τ", "temperature", "temp", "loss", "time", "seconds", "sec", "step", "steps", "n", "epoch",
                      "epochs", "seed", "norm", "weight", "momentum", "decay", "kl", "ce"}
_NON_PERCENT_LAST = {"eps", "epsilon", "alpha", "beta", "lr", "loss", "seconds", "sec", "s", "time", "size",
                     "steps", "step", "norm", "decay", "epochs", "temperature"}


def _is_accuracy_name(name: str) -> bool:
    """False for names of quantities that are not accuracies (eps, alpha, lr, loss, time...)."""
    toks = [t for t in re.split(r"[\W_]+", str(name).lower()) if t]
    if not toks:
        return True
    return toks[0] not in _NON_PERCENT_FIRST and toks[-1] not in _NON_PERCENT_LAST


def is_fraction(v: Any) -> bool:
    return isinstance(v, float) and 0.0 <= v <= 1.0


def fmt_cell(v: Any, percent: bool = True) -> str:
    """A float in [0, 1] as a percentage with two decimals (when ``percent``); anything else as it is."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if percent and is_fraction(v):
        return f"{100 * v:.2f}"
    if isinstance(v, float):
        return f"{round(v, 4):g}" if abs(v) < 1e6 else f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def fmt_eps(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        k = v * 255
        if 0 < v < 0.25 and abs(k - round(k)) < 1e-6 and round(v, 3) != v:  # 8/255, but 0.2 stays 0.2
            return f"{int(round(k))}/255"
        return f"{v:g}"
    return "–" if v is None else str(v)


def _table_blocks(name: str, t: dict) -> list:
    cols = list(t.get("columns") or [])
    rows = t.get("rows") or {}
    for r in rows.values():
        cols += [c for c in r if c not in cols]
    converted = False
    body = []
    for rname, r in rows.items():
        cells = [str(rname)]
        for c in cols:
            v = r.get(c)
            pct = _is_accuracy_name(c)
            converted |= pct and is_fraction(v)
            cells.append(fmt_cell(v, pct))
        body.append(cells)
    cap = []
    if converted:
        cap.append("accuracies in %")
    if t.get("note"):
        cap.append(str(t["note"]))
    return [("h", 3, f"Table: {name}"), ("table", [""] + [str(c) for c in cols], body, "; ".join(cap))]


def _values_block(values: dict) -> list:
    if not values:
        return []
    rows = []
    for k, v in values.items():
        if k.lower() in ("eps", "epsilon", "ε") or k.lower().startswith("eps_"):
            s = fmt_eps(v)
        elif _is_accuracy_name(k) and is_fraction(v):
            s = f"{100 * v:.2f} %"
        else:
            s = fmt_cell(v, percent=False)
        rows.append([str(k), s])
    return [("h", 3, "Key values"), ("table", ["name", "value"], rows, "")]


def _curve_blocks(name: str, c: dict) -> list:
    """A short curve as a table (x across, one row per series); a long one only named."""
    x, series = list(c.get("x") or []), c.get("series") or {}
    xl, yl = str(c.get("x_label", "x")), str(c.get("y_label", ""))
    if not x or len(x) > 15:
        return [("p", f"Curve `{name}`: {len(x)} points of {yl or 'y'} against {xl} (in metrics.json).")]
    fx = fmt_eps if xl.lower() in ("eps", "epsilon", "ε") else (lambda v: fmt_cell(v, percent=False))
    pct = _is_accuracy_name(yl or "accuracy")
    converted = any(is_fraction(v) for s in series.values() for v in s) and pct
    rows = [[str(k)] + [fmt_cell(v, pct) for v in s] for k, s in series.items()]
    cap = f"{yl} in %" if converted else yl
    return [("h", 3, f"Curve: {name}"), ("table", [f"{xl} →"] + [fx(v) for v in x], rows, cap)]


def data_label(m: dict) -> str:
    """The ``data`` entry of a metrics file as text ('MNIST (shipped sample)'; a dict as 'k: v, ...')."""
    d = m.get("data")
    if not d:
        return "not recorded"
    if isinstance(d, dict):
        return ", ".join(f"{k}: {v}" for k, v in d.items())
    return str(d)


def _eps_of(m: dict) -> Any:
    for src in (m, m.get("settings") or {}, m.get("values") or {}):
        for k in ("eps", "epsilon"):
            if k in src and not isinstance(src[k], (dict, list)):
                return src[k]
    return None


def gather(profile: str, notebooks_dir: Optional[os.PathLike] = None) -> list[dict]:
    """One entry per notebook known to the course status or with a metrics.json, in course order:
    ``{name, title, status, seconds, error, metrics (or None), dir}``."""
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


def _notebook_blocks(nb: dict, profile: str) -> list:
    m = nb["metrics"] or {}
    blocks: list = [("h", 2, nb["title"])]
    data = data_label(m)
    facts = [f"Notebook `{nb['name']}.ipynb`", f"data: **{data}**", f"profile: **{m.get('profile', profile)}**",
             f"wall time: **{fmt_seconds(nb['seconds'])}**", f"status: {nb['status']}"]
    eps = _eps_of(m)
    if eps is not None:
        facts.insert(3, f"ε = {fmt_eps(eps)}")
    blocks.append(("p", " · ".join(facts)))
    if nb["status"] == "failed":
        blocks.append(("warn", f"This notebook failed: {nb['error'] or 'see the executed copy'}. "
                               "The numbers below (if any) are partial."))
    elif nb["status"] == "running":
        blocks.append(("warn", "This notebook did not finish (the run was stopped). The numbers below are partial."))
    if not nb["metrics"]:
        blocks.append(("p", "No metrics recorded."))
        return blocks
    settings = m.get("settings") or {}
    if settings:
        blocks.append(("p", "Settings: " + ", ".join(f"`{k}={fmt_cell(v, percent=False)}`"
                                                    for k, v in settings.items())))
    for tname, t in (m.get("tables") or {}).items():
        blocks += _table_blocks(tname, t)
    for cname, c in (m.get("curves") or {}).items():
        blocks += _curve_blocks(cname, c)
    blocks += _values_block(m.get("values") or {})
    ts = m.get("train_seconds") or {}
    if ts:
        blocks += [("h", 3, "Training time"),
                   ("table", ["model", "seconds", ""], [[str(k), fmt_cell(v, False), fmt_seconds(v)]
                                                        for k, v in ts.items()], "")]
    for fname, file in (m.get("figures") or {}).items():
        path = nb["dir"] / file
        blocks.append(("img", fname, f"{nb['name']}/{file}", path))
    return blocks


# --------------------------------------------------------------------------- published figures


def _pct(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return 100.0 * v if 0.0 <= v <= 1.0 else float(v)


def _ours_rslad(row: dict) -> dict:
    """Our row's columns mapped onto RSLAD's (Clean, FGSM, PGD_SAT, PGD_TRADES, CW∞, AA)."""
    out: dict = {}
    for col, v in row.items():
        n = re.sub(r"[^0-9a-z]+", "", str(col).lower().replace("∞", "inf"))
        key = None
        if n.startswith("clean") or n in ("natural", "nat"):
            key = "Clean"
        elif n.startswith("fgsm"):
            key = "FGSM"
        elif n.startswith("pgdtrades") or (n.startswith("pgd") and "kl" in n):
            key = "PGD_TRADES"
        elif n.startswith("pgd"):
            key = "PGD_SAT"
        elif n.startswith("cw"):
            key = "CW∞"
        elif n in ("aa", "autoattack"):
            key = "AA"
        if key and key not in out and _pct(v) is not None:
            out[key] = (_pct(v), str(col))
    return out


def _pgd_strength(col: str) -> tuple[int, int]:
    m = re.search(r"(\d+)\s*(?:[x×]\s*(\d+))?", col)
    return (int(m.group(1)) * int(m.group(2) or 1), 0) if m else (0, 0)


def _ours_anchor(row: dict, attack: str) -> dict:
    """Our Clean, a PGD column (the one named like the anchor's attack, else the strongest CE PGD) and AA."""
    mapped = _ours_rslad(row)
    out = {}
    if "Clean" in mapped:
        out["Clean"] = (mapped["Clean"][0], "")
    pgd = [(c, _pct(v)) for c, v in row.items() if _pct(v) is not None and str(c).upper().startswith("PGD")
           and "TRADES" not in str(c).upper() and "KL" not in str(c).upper()]
    if pgd:
        want = re.sub(r"[^0-9a-z]+", "", attack.split(",")[0].lower().replace("×", "x"))
        same = [p for p in pgd if re.sub(r"[^0-9a-z]+", "", p[0].lower().replace("×", "x")) == want]
        c, v = same[0] if same else max(pgd, key=lambda p: _pgd_strength(p[0]))
        out["robust"] = (v, c)
    if "AA" in mapped:
        out["AA"] = (mapped["AA"][0], "")
    return out


def _num(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.2f}"


def comparisons(notebooks: list[dict], profile: str) -> list[dict]:
    """Our table rows that have an obvious published counterpart, with their counterparts."""
    found = []
    for nb in notebooks:
        m = nb["metrics"] or {}
        ds = reference.dataset_of(m.get("data")) if isinstance(m.get("data"), str) else None
        if ds is None:
            continue
        settings = m.get("settings") or {}
        context_model = [str(settings.get(k)) for k in ("model", "student", "arch") if settings.get(k)]
        for tname, t in (m.get("tables") or {}).items():
            rows = t.get("rows") or {}
            for rname, row in rows.items():
                if not isinstance(row, dict) or "Clean" not in _ours_rslad(row):
                    continue  # rows of attacks or of anything else than trained models
                matches = reference.match(ds, rname, [tname, *context_model])
                if matches:
                    found.append({"notebook": nb["name"], "title": nb["title"], "table": tname, "row": rname,
                                  "data": m.get("data"), "profile": m.get("profile", profile), "dataset": ds,
                                  "eps": _eps_of(m), "row_values": row, "matches": matches})
    return found


def _published_blocks(notebooks: list[dict], profile: str) -> list:
    blocks: list = [("h", 2, "Published figures"),
                    ("p", "The papers' numbers (in %) beside ours. Published CIFAR-10 figures are L∞ with ε = 8/255 "
                          "on the full test set, MNIST with ε = 0.3. Ours are marked with the data and profile they "
                          "were measured on; numbers from the smoke or cpu profile, from the shipped sample or "
                          "from the JPEG copy are not expected to reach the published ones. Transcribed in "
                          "`advlib/reference.py` from the course's reference sheet.")]
    found = comparisons(notebooks, profile)
    blocks.append(("h", 3, "Ours beside theirs"))
    if not found:
        blocks.append(("p", "No table row of ours has an obvious published counterpart yet. (Matched are rows "
                            "with a Clean column naming TRADES, FGSM or PGD training on MNIST, and rows naming a "
                            "model and a method of the tables below on CIFAR-10.)"))
    for f in found:
        ours_label = f"ours: {f['row']}"
        where = f"{f['data']}, profile {f['profile']}"
        blocks.append(("h", 4, f"{f['row']} ({f['notebook']}, table {f['table']})"))
        rslad = [x for x in f["matches"] if x["kind"] == "rslad"]
        anchors = [x for x in f["matches"] if x["kind"] == "anchor"]
        eps_ours = fmt_eps(f["eps"])
        if rslad:
            cols = list(reference.RSLAD_COLUMNS)
            mine = _ours_rslad(f["row_values"])
            rows = [[ours_label, where, eps_ours] + [_num(mine[c][0]) if c in mine else "–" for c in cols]]
            for x in rslad:
                rows.append([x["title"], "CIFAR-10 (published)", reference.EPS["cifar10"]] +
                            [_num(x["values"][c]) for c in cols])
            cap = "ours: " + ", ".join(f"{c} = our column '{mine[c][1]}'" for c in cols if c in mine)
            blocks.append(("table", ["", "measured on", "ε"] + cols, rows, cap))
        if anchors:
            for a in anchors:
                mine = _ours_anchor(f["row_values"], a["attack"])
                rob = (f"{_num(mine['robust'][0])} ({mine['robust'][1]})" if "robust" in mine else "–")
                pub = "CIFAR-10 (published)" if f["dataset"] == "cifar10" else "MNIST (published)"
                rows = [[ours_label, where, eps_ours, _num(mine.get("Clean", (None,))[0]), rob,
                         _num(mine.get("AA", (None,))[0])],
                        [a["title"], pub, reference.EPS[f["dataset"]], _num(a["values"]["Clean"]),
                         _num(a["values"]["robust"]) + (f" ({a['attack']})" if a["attack"] else ""),
                         _num(a["values"]["AA"])]]
                note = ""
                if f["dataset"] == "mnist" and reference.method_of(f["row"]) == "SAT":
                    note = ("no PGD-trained MNIST model is on the reference sheet; the MNIST anchors are shown "
                            "for scale")
                blocks.append(("table", ["", "measured on", "ε", "Clean", "robust", "AA"], rows,
                               "; ".join(x for x in (note, "source: " + a["citation"]) if x)))
    matched = set()
    for f in found:
        for x in f["matches"]:
            matched.add(x["title"])
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


# --------------------------------------------------------------------------- the report: rendering


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_md(blocks: list) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "warn":
            out.append(f"> **Warning:** {b[1]}")
        elif kind == "table":
            cols, rows, cap = b[1], b[2], b[3]
            lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            if cap:
                lines.append("")
                lines.append(f"_{cap}_")
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{b[1]}]({b[2]})" if Path(b[3]).exists() else f"_(figure {b[1]}: {b[2]} is missing)_")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    s = html.escape(str(text), quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![\w/])_(.+?)_(?![\w/])", r"<em>\1</em>", s)
    return s


CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #aaa;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #999;padding:3px 8px}
th{background:#eee}td{text-align:right}td:first-child{text-align:left}
caption{caption-side:bottom;font-size:.85em;color:#555;text-align:left;padding-top:3px}
.warn{background:#fff4d6;border-left:4px solid #e0a000;padding:.5em .8em}
img{max-width:100%;border:1px solid #ddd}figure{margin:.8em 0}figcaption{font-size:.85em;color:#555}
code{background:#f2f2f2;padding:0 3px}"""


def render_html(blocks: list, title: str) -> str:
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline_html(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(b[1])}</p>")
        elif kind == "warn":
            out.append(f"<p class=\"warn\"><strong>Warning:</strong> {_inline_html(b[1])}</p>")
        elif kind == "table":
            cols, rows, cap = b[1], b[2], b[3]
            t = ["<table>"]
            if cap:
                t.append(f"<caption>{_inline_html(cap)}</caption>")
            t.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>")
            for r in rows:
                t.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
            t.append("</table>")
            out.append("\n".join(t))
        elif kind == "img":
            path = Path(b[3])
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                out.append(f"<figure><img alt=\"{html.escape(b[1])}\" src=\"data:image/png;base64,{data}\">"
                           f"<figcaption>{html.escape(b[1])}</figcaption></figure>")
            else:
                out.append(f"<p><em>(figure {html.escape(b[1])}: {html.escape(b[2])} is missing)</em></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def report_blocks(profile: str, notebooks_dir: Optional[os.PathLike] = None) -> list:
    status = load_status(profile)
    notebooks = gather(profile, notebooks_dir)
    mach = status.get("machine") or machine_info()
    blocks: list = [("h", 1, f"Course results, profile {profile}")]
    facts = [f"Profile: **{profile}**", f"report written {now()}"]
    if status.get("updated"):
        facts.append(f"last run {status['updated']}")
    blocks.append(("p", " · ".join(facts)))
    blocks.append(("p", f"Machine (of the run): {mach.get('platform')}, {mach.get('cpus')} CPUs, torch {mach.get('torch')}, "
                        f"device: {mach.get('device')}"))
    total = sum(nb["seconds"] or 0 for nb in notebooks)
    counts: dict[str, int] = {}
    for nb in notebooks:
        counts[nb["status"]] = counts.get(nb["status"], 0) + 1
    blocks.append(("p", f"{len(notebooks)} notebooks (" + ", ".join(f"{v} {k}" for k, v in counts.items()) +
                        f"), wall time {fmt_seconds(total)}."))
    if profile == "smoke":
        blocks.append(("warn", "Profile smoke: a few batches only, to check that everything runs. "
                               "The numbers are not meaningful."))
    weak = [(nb["name"], data_label(nb["metrics"])) for nb in notebooks if nb["metrics"] and (
        nb["metrics"].get("data_origin") in ("sample", "jpeg-copy") or
        any(s in str(nb["metrics"].get("data", "")) for s in ("shipped sample", "JPEG copy")))]
    if weak:
        blocks.append(("warn", "Some notebooks ran on the shipped sample or on the JPEG copy of CIFAR-10, not on "
                               "the full pixel-exact data set: " + ", ".join(f"{n} ({d})" for n, d in weak) +
                               ". Their numbers are not comparable to the published ones."))
    if not notebooks:
        blocks.append(("p", f"Nothing has been run for this profile yet: `make course PROFILE={profile}`."))
    else:
        rows = [[nb["name"], nb["title"], nb["status"], data_label(nb["metrics"]) if nb["metrics"] else "–",
                 fmt_seconds(nb["seconds"])] for nb in notebooks]
        blocks.append(("table", ["notebook", "title", "status", "data", "wall time"], rows, ""))
    for nb in notebooks:
        blocks += _notebook_blocks(nb, profile)
    blocks += _published_blocks(notebooks, profile)
    return blocks


def write_report(profile: str, notebooks_dir: Optional[os.PathLike] = None) -> tuple[Path, Path]:
    """Write ``runs/<profile>/report.md`` and ``report.html``; return their paths."""
    if profile not in record.PROFILES:
        raise ValueError(f"profile must be one of {record.PROFILES}; got {profile!r}")
    blocks = report_blocks(profile, notebooks_dir)
    pdir = profile_dir(profile)
    pdir.mkdir(parents=True, exist_ok=True)
    md, ht = pdir / "report.md", pdir / "report.html"
    md.write_text(render_md(blocks), encoding="utf-8")
    ht.write_text(render_html(blocks, f"Course results, profile {profile}"), encoding="utf-8")
    return md, ht


# --------------------------------------------------------------------------- command line


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m advlib.course", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    default_profile = os.environ.get("ADVLIB_PROFILE") if os.environ.get("ADVLIB_PROFILE") in record.PROFILES else "cpu"
    r = sub.add_parser("run", help="run the notebooks headless into runs/<profile>/, then write the report")
    r.add_argument("--profile", choices=record.PROFILES, default=default_profile)
    r.add_argument("--notebooks", help="folder of the NN_*.ipynb notebooks (default: the repository's notebooks/)")
    r.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (name or prefix, e.g. 03)")
    r.add_argument("--restart", action="store_true", help="rerun every notebook, also those done")
    r.add_argument("--no-report", action="store_true", help="do not write the report afterwards")
    w = sub.add_parser("report", help="write runs/<profile>/report.md and report.html")
    w.add_argument("--profile", choices=record.PROFILES, default=default_profile)
    w.add_argument("--notebooks", help="folder of the notebooks (for their titles)")
    a = p.parse_args(argv)
    try:
        if a.cmd == "report":
            md, ht = write_report(a.profile, a.notebooks)
            print(f"Report: {_rel(md)} and {_rel(ht)}")
            return 0
        res = run_course(a.profile, a.notebooks, a.only, a.restart, report=not a.no_report)
        return 0 if res["ok"] else 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
