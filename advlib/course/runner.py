"""Running the course: find the notebooks, decide what to run, run them headless with papermill,
keep ``runs/<profile>/course.json`` up to date and say clearly where a notebook failed.

See :mod:`advlib.course` for the command line and the status file; :func:`run_course` is the entry point.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch

from .. import record, utils
from .clean import clean_file
from .files import (NOTEBOOK_GLOB, cell_source, default_notebooks_dir, find_notebooks, load_status, profile_dir,
                    read_notebook, rel, status_path)
from .formatting import fmt_seconds, now
from .report import write_report


def source_sha256(path: os.PathLike) -> str:
    """SHA-256 of what a notebook *does*: its cells' types, tags and sources. Outputs and metadata are
    left out, so opening and saving a notebook in Lab does not force a rerun; editing a cell does."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = [[c.get("cell_type"), sorted(c.get("metadata", {}).get("tags", [])), cell_source(c)]
                 for c in nb.get("cells", [])]
        blob = json.dumps(cells, ensure_ascii=False, sort_keys=True).encode("utf-8")
    except (ValueError, KeyError, TypeError, AttributeError):
        blob = Path(path).read_bytes()
    return hashlib.sha256(blob).hexdigest()


def machine_info() -> dict:
    device = "CPU"
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        device = torch.cuda.get_device_name(0) + (f" (×{n})" if n > 1 else "")
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "device": device}


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
            if cell_source(c).strip() == (source or "").strip():
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
    from papermill.exceptions import PapermillExecutionError  # papermill: the optional extra `course`

    tail = (f"Executed copy with the full traceback: {rel(out)}\n"
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
    """Run the course notebooks headless for ``profile`` (see :mod:`advlib.course`).

    Returns ``{"profile", "ok", "failed" (name or None), "ran", "skipped", "not_run", "seconds",
    "notebooks" (course.json's entries), "message" (the failure message or None), "report"
    ((md, html) paths or None)}``. Does not raise on a failing notebook; raises ValueError for a bad
    profile, no notebooks or an unknown ``only`` name."""
    import papermill as pm  # the optional extra `course`: the report side of advlib.course needs none

    out = stream or sys.stdout
    record.check_profile(profile)
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
    say(f"Course, profile {profile}: {n_total} notebooks in {rel(nb_dir)} -> {rel(pdir)}/ "
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
            clean_file(dst)  # paths relative to the repository, each notice once, no run metadata
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
            say(f"Report: {rel(result['report'][0])} and {rel(result['report'][1])}")
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
