"""Where a CIFAR-10 notebook's minutes go, from the records its runs left: training and evaluation, run by run.

    python benchmarks/notebook_costs.py                                   # notebooks 03-06, cpu profile
    python benchmarks/notebook_costs.py runs/cpu/05_rslad_distillation_cifar10 --goal 90

Every run folder of a notebook holds its training time (``metrics.json``: ``train_seconds``, the optimisation steps
alone, without the per-epoch monitor) and the seconds each attack of its evaluations took (``evaluation_*.json``,
the resumable states of :func:`advlib.evaluate.evaluate`). Their sum is what executing the notebook from scratch
costs at the least, before loading data, the monitor, figures and the other cells: a time goal below it cannot be
met by making those faster. A run copied from another notebook (``copied_from``: notebooks 04 and 05 share SAT,
TRADES and MART) is listed apart with its evaluations: it costs the notebook nothing when the other one ran first.

Every run folder is listed, also those a notebook's default leaves out (e.g. ``extra_runs``): read the rows. The
seconds are those of the machine and the day each record was written (the notebooks' "What it costs" cells say
which); nothing is run here.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from advlib import evaluate, experiments, paths, tables

NOTEBOOKS = ("03_pgd_training_cifar10", "04_trades_mart_cifar10", "05_rslad_distillation_cifar10",
             "06_evaluating_robustness")


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def evaluation_seconds(path: Path) -> float:
    """The seconds the attacks of one saved evaluation state took (0 for a file that is not one)."""
    s = _json(path)
    if not isinstance(s, dict) or s.get("format") != evaluate.STATE_FORMAT:
        return 0.0
    return sum(float(a.get("seconds", 0.0)) for a in s.get("attacks", {}).values())


def costs(folder: Path) -> dict:
    """``{"rows": {name: {"training": min, "evaluation": min, "copied_from": str or None, "in_run": bool}},
    "own": min, "copied": min}`` for a notebook's folder: each run subfolder, and the evaluations saved at its top
    (any evaluation state: ``evaluation_teacher.json``, notebook 06's ``steps_*.json``...) as the row
    ``(notebook)``. ``in_run``: the run is one of those the notebook's last execution trained (its ``metrics.json``
    names their folders); the others (e.g. ``extra_runs``, another profile's settings) are not summed."""
    rows = {}
    record_ = _json(folder / "metrics.json")
    runs = (record_ or {}).get("runs") if isinstance(record_, dict) else None
    folders = {r.get("folder") for r in runs.values()} if runs else None
    if folders is not None and None in folders:  # a record from before run folders were recorded: every one
        folders = None
    top = sum(evaluation_seconds(f) for f in sorted(folder.glob("*.json")))
    if top:
        rows["(notebook)"] = {"training": 0.0, "evaluation": top / 60, "copied_from": None, "in_run": True}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        m = _json(sub / "metrics.json")
        m = m if isinstance(m, dict) else {}
        evals = sum(evaluation_seconds(f) for f in sorted(sub.glob("*.json")))
        if m.get("kind") != "train" and not evals:
            continue
        rows[sub.name] = {"training": m.get("train_seconds", 0.0) / 60, "evaluation": evals / 60,
                          "copied_from": m.get("copied_from"), "in_run": folders is None or sub.name in folders}
    own = sum(r["training"] + r["evaluation"] for r in rows.values() if r["in_run"] and not r["copied_from"])
    copied = sum(r["training"] + r["evaluation"] for r in rows.values() if r["in_run"] and r["copied_from"])
    return {"rows": rows, "own": own, "copied": copied}


def report(folder: Path, goal: float = None) -> str:
    c = costs(folder)
    table = {name: {"training (min)": f"{r['training']:.1f}", "evaluation (min)": f"{r['evaluation']:.1f}",
                    "copied from": r["copied_from"] or "",
                    "summed": "yes" if r["in_run"] else "no: not a run of the notebook's last execution"}
             for name, r in c["rows"].items()}
    lines = [f"## {folder.name}", "", tables.markdown_table(table, stub="run", align="lrrll"), "",
             f"Training and evaluation of its own runs: {c['own']:.1f} min"
             + (f"; of the runs copied from another notebook: {c['copied']:.1f} min more from scratch"
                if c["copied"] else "") + "."]
    if goal is not None:
        lines.append(f"Goal {goal:g} min: " + (f"below these parts alone by {c['own'] - goal:.1f} min."
                                              if c["own"] > goal else f"{goal - c['own']:.1f} min left for the rest."))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, help="notebook run folders (default: notebooks 03-06, --profile)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--goal", type=float, default=None, help="a time goal in minutes, for one folder")
    a = p.parse_args(argv)
    folders = a.folders or [experiments.notebook_dir(nb, a.profile) for nb in NOTEBOOKS]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        print(f"No run folder {', '.join(paths.shown(f) for f in missing)}: execute the notebook first "
              f"(python -m advlib.course run --profile {a.profile}).", file=sys.stderr)
        return 2
    for f in folders:
        print(report(f, a.goal if len(folders) == 1 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
