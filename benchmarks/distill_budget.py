"""A fair budget for each of notebook 05's students: one small search over the scale of each method's loss.

    python benchmarks/distill_budget.py                       # every student, scales 0.3 1 3 10
    python benchmarks/distill_budget.py --only rslad sat --scales 1 10 --seeds 0 1

Why the scale of the loss. The cpu profile trains every student with one optimiser (SGD, peak lr 0.2,
weight decay 5e-4, one cycle) for one short budget. The methods' losses are not on one scale: SAT,
TRADES and MART are cross-entropies (a batch mean), while the official RSLAD and ARD code average their
KL over batch × classes (a tenth of a batch-mean KL on CIFAR-10), with τ² = 900 in front of ARD's. With
SGD, multiplying a loss by s is the same as multiplying the learning rate by s and dividing the weight
decay by s: so the scale decides how far the data term moves the weights against weight decay. The
official code pairs its scale with its own schedule (300 epochs for RSLAD); the course's five epochs
do not. So every method gets the same search, ``TrainConfig.loss_scale`` in ``--scales``, each run on
``--train-samples`` training images with the method's recipe otherwise unchanged, and the scale with
the best held-out PGD-10 accuracy of the monitor (the last epoch's, on the recipe's held-out images;
ties go to the smaller scale) is the one its recipe keeps. The table says how far apart the scales are
against the monitor's noise (a Wilson interval on its images).

The search never sees the test set. Runs resume: a finished run folder is read, not retrained.
Run it with nothing else CPU-heavy on the machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from advlib import losses, paths, recipes, stats, tables, train

STUDENTS = {r.removeprefix("cifar_d_"): r for r in recipes.DISTILLATION_STUDENTS}
TEACHER = paths.REPO_ROOT / "data" / "models" / "cifar_teacher.pt"


def run_one(recipe: str, scale: "float | None", seed: int, a, tag: str = "", teacher=None, **overrides) -> dict:
    """Train ``recipe`` on ``a.train_samples`` images with ``loss_scale=scale`` (None: the recipe's own) and
    ``overrides`` (TrainConfig fields; a method's parameters in ``params``), in a run folder named by the
    recipe, ``tag``, scale and seed under ``a.out_dir``; a finished run is read, not retrained."""
    method = recipes.get(recipe).settings["method"]
    if losses.get_method(method).teacher:
        overrides["teacher"] = str(teacher or a.teacher)
    if scale is not None:
        overrides["loss_scale"] = scale
    cfg = recipes.config(recipe, source=a.source, seed=seed, train_samples=a.train_samples, **overrides)
    cfg = dataclasses.replace(cfg, out_dir=str(a.out_dir / f"{recipe}{'_' + tag if tag else ''}_s{cfg.loss_scale:g}_seed{seed}"))
    fit = train.fit(cfg, resume="if_same")
    final = fit["final"]
    return {"recipe": recipe, "tag": tag, "method": method, "scale": cfg.loss_scale, "seed": seed,
            "n_holdout": cfg.eval_samples, "holdout_clean": final["holdout_clean"],
            "holdout_pgd": final["holdout_pgd"], "minutes": fit["train_seconds"] / 60,
            "checkpoint": str(Path(cfg.out_dir) / "last.pt")}


def choose(rows: list[dict]) -> dict[str, dict]:
    """Per recipe: the scale with the best mean held-out PGD accuracy over seeds (ties: the smaller scale)."""
    best: dict[str, dict] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        by_scale: dict[float, list[float]] = {}
        for r in rows:
            if r["recipe"] == recipe:
                by_scale.setdefault(r["scale"], []).append(r["holdout_pgd"])
        mean = {s: sum(v) / len(v) for s, v in by_scale.items()}
        top = max(mean.values())
        scale = min(s for s, m in mean.items() if m == top)
        best[recipe] = {"scale": scale, "holdout_pgd": top}
    return best


def markdown(rows: list[dict], best: dict[str, dict]) -> str:
    body = {}
    for r in rows:
        n = r["n_holdout"]
        lo, hi = stats.interval(r["holdout_pgd"], n)
        key = f"{r['recipe']} × {r['scale']:g} (seed {r['seed']})"
        body[key] = {"held-out clean": f"{100 * r['holdout_clean']:.1f}",
                     "held-out PGD-10": f"{100 * r['holdout_pgd']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
                     "minutes": f"{r['minutes']:.1f}",
                     "chosen": "✓" if best[r["recipe"]]["scale"] == r["scale"] else ""}
    return tables.markdown_table(body, stub="student × loss scale", align="lrrrc")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(STUDENTS), default=[s for s in STUDENTS if s != "natural"],
                   help="students to search (default: notebook 05's robust ones; the natural student's PGD accuracy "
                        "is 0 at every scale, so it has nothing to choose by)")
    p.add_argument("--scales", nargs="+", type=float, default=[0.3, 1.0, 3.0, 10.0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--train-samples", type=int, default=10000, help="training images per run (default 10,000)")
    p.add_argument("--teacher", type=Path, default=TEACHER, help="the teacher (default: the shipped one)")
    p.add_argument("--source", default="auto")
    p.add_argument("--out-dir", type=Path, default=paths.REPO_ROOT / "runs" / "distill_budget")
    p.add_argument("--table", type=Path, default=paths.REPO_ROOT / "benchmarks" / "results" / "distill_budget.md")
    a = p.parse_args(argv)
    rows = []
    for name in a.only:
        for scale in a.scales:
            for seed in a.seeds:
                rows.append(run_one(STUDENTS[name], scale, seed, a))
                print(json.dumps(rows[-1]), flush=True)
    best = choose(rows)
    table = markdown(rows, best)
    print(table)
    a.table.parent.mkdir(parents=True, exist_ok=True)
    a.table.write_text("# Notebook 05's students: the scale of each loss, searched on the held-out monitor\n\n"
                       f"Command: `python benchmarks/distill_budget.py --only {' '.join(a.only)} "
                       f"--scales {' '.join(f'{s:g}' for s in a.scales)} "
                       f"--seeds {' '.join(map(str, a.seeds))} --train-samples {a.train_samples}`\n\n" + table + "\n")
    (a.out_dir / "distill_budget.json").write_text(json.dumps({"rows": rows, "chosen": best}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
