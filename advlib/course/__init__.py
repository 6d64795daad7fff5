"""One command runs the course; a second writes the results report.

Command line (``make course PROFILE=cpu`` runs the first, which also writes the report;
``make report PROFILE=cpu`` the second)::

    python -m advlib.course run --profile {smoke,cpu,gpu} [--notebooks DIR] [--only NAME ...] [--restart]
    python -m advlib.course report --profile {smoke,cpu,gpu} [--notebooks DIR]
    python -m advlib.course clean NOTEBOOK ... [--repo-root DIR]

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

Every executed copy is cleaned for committing (:mod:`~advlib.course.clean`: paths relative to the
repository, each notice once, no resume lines, no run metadata); ``clean`` does the same to given
notebooks, e.g. committed ones executed before (``--repo-root``: the checkout they ran in, if another).

From Python: :func:`run_course` and :func:`write_report`. ``runs/`` is ``ADVLIB_RUNS`` if set.

The package: :mod:`~advlib.course.runner` runs the notebooks, :mod:`~advlib.course.report` builds the
report's content from their ``metrics.json`` (units, models, methods and attacks as the notebooks
declared them, see :mod:`advlib.record`), :mod:`~advlib.course.formatting` writes numbers by their unit,
:mod:`~advlib.course.render` renders the report as Markdown and HTML, :mod:`~advlib.course.files`
knows where the notebooks and ``runs/<profile>/`` are, :mod:`~advlib.course.clean` cleans executed notebooks.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .. import record
from .clean import clean_file
from .files import rel
from .report import write_report
from .runner import run_course

__all__ = ["main", "run_course", "write_report"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line (see above); returns the exit status: 0 done, 1 a notebook failed, 2 bad input."""
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
    c = sub.add_parser("clean", help="clean executed notebooks in place for committing (see advlib.course.clean)")
    c.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    c.add_argument("--repo-root", help="the checkout the notebooks were executed in (default: this one)")
    a = p.parse_args(argv)
    try:
        if a.cmd == "clean":
            for path in a.notebooks:
                print(f"{rel(path)}: {'cleaned' if clean_file(path, a.repo_root) else 'already clean'}")
            return 0
        if a.cmd == "report":
            md, ht = write_report(a.profile, a.notebooks)
            print(f"Report: {rel(md)} and {rel(ht)}")
            return 0
        res = run_course(a.profile, a.notebooks, a.only, a.restart, report=not a.no_report)
        return 0 if res["ok"] else 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

