"""Notebook 05's comparisons on several seeds, and RSLAD's central ablation, on a small budget.

    python benchmarks/distill_ablation.py                      # seeds 0 1 2, 10,000 training images
    python benchmarks/distill_ablation.py --seeds 0 --only rslad rslad_natural
    python benchmarks/distill_ablation.py --only rslad adaad --table benchmarks/results/distill_ablation_adaad.md

Each row is a student of notebook 05 (airbench_s, the recipe's optimiser and five epochs, its loss scale as its
recipe keeps it: ``benchmarks/distill_budget.py`` chose it) trained on ``--train-samples`` images, one run per
seed, then evaluated on the 1,017 pixel-exact CIFAR-10 test images with PGD-20 (step 2/255, uniform start: the
PGD_SAT column) and CW∞-20. The rows:

* ``sat``            hard labels: PGD adversarial training (Madry et al.)
* ``rslad``          robust soft labels: RSLAD with the shipped robust teacher (``data/models/cifar_teacher.pt``)
* ``rslad_natural``  natural soft labels: the same RSLAD loss with a naturally trained teacher (the
                     ``cifar_d_natural`` recipe on the full training set, trained once here)
* ``ard``            ARD as the official code runs it (τ = 30, its attack in training mode)
* ``ard_eval``       ARD with its attack crafted in eval mode (the diagnosis of ARD's gap: the attack's mode)
* ``ard_tau4``       ARD at temperature 4 instead of 30 (the diagnosis: τ = 30 matches logits, not probabilities)
* ``adaad``          AdaAD (Huang et al. 2023): the student attacked on KL(student ‖ teacher) through the teacher

The three first rows are RSLAD's ablation (robust soft labels vs natural soft labels vs hard labels, Zi et al.
2021 §3); ``rslad`` against ``sat`` and ``ard`` are the comparisons notebook 05 states. For each pair the table
gives the mean ± standard deviation over seeds (the variance of training: seeds) and, per seed, the exact McNemar
test on the same test images (the variance of the choice of test images only).

The search never saw the test set; this evaluation is the only look at it. Training runs and evaluations
resume: a finished run is read, not retrained. Run it with nothing else CPU-heavy on the machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

import distill_budget
from advlib import checkpoints, data, evaluate, paths, recipes, results, stats, tables, train

ATTACKS = ("pgd-20@2/255", "cw-20@2/255")
COLUMNS = {"Clean": "clean", "PGD-20": "PGD-20 (step 2/255)", "CW∞-20": "CW∞-20 (step 2/255)"}
VARIANTS = {  # name: (recipe, tag, overrides, teacher: None = the robust one, "natural" = the natural one)
    "sat": ("cifar_d_sat", "", {}, None),
    "rslad": ("cifar_d_rslad", "", {}, None),
    "rslad_natural": ("cifar_d_rslad", "natural_teacher", {}, "natural"),
    "ard": ("cifar_d_ard", "", {}, None),
    "ard_eval": ("cifar_d_ard", "eval_attack", {"attack_mode": "eval"}, None),
    "ard_tau4": ("cifar_d_ard", "tau4", {"params": {"tau": 4.0, "kd_weight": 1.0}}, None),
    "adaad": ("cifar_d_adaad", "", {}, None),
}
DEFAULT = ("sat", "rslad", "rslad_natural", "ard", "ard_eval", "ard_tau4")  # the committed table's rows
LABELS = {"sat": "SAT (hard labels)", "rslad": "RSLAD, robust teacher", "rslad_natural": "RSLAD, natural teacher",
          "ard": "ARD (attack in train mode, as official)", "ard_eval": "ARD, attack in eval mode", "ard_tau4": "ARD, τ = 4",
          "adaad": "AdaAD, robust teacher"}
PAIRS = (("rslad", "sat"), ("rslad", "rslad_natural"), ("rslad", "ard"), ("ard_eval", "ard"), ("ard_tau4", "ard"),
         ("adaad", "rslad"), ("adaad", "sat"))


def natural_teacher(a) -> Path:
    """The natural teacher: ``cifar_d_natural`` on the full training set (about 3 minutes), trained once."""
    cfg = recipes.config("cifar_d_natural", source=a.source, seed=0, out_dir=str(a.out_dir / "natural_teacher"))
    train.fit(cfg, resume="if_same")
    return Path(cfg.out_dir) / "last.pt"


def test_eval(checkpoint: Path, test) -> dict:
    model = checkpoints.load_model(checkpoint).to(memory_format=torch.channels_last)
    state = checkpoint.with_name("eval_test.state.json")
    res = evaluate.evaluate(model, test, ATTACKS, eps=8 / 255, state_path=state, progress=False)
    return {"clean": res["clean"], **{k: v for k, v in res["robust"].items()}, "n": res["n"], "masks": res["masks"]}


def summary(rows: list[dict], seeds: list[int]) -> str:
    body = {}
    for v in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == v]
        line = {}
        for col, key in COLUMNS.items():
            vals = [100 * r["test"][key] for r in mine]
            sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
            line[col] = f"{statistics.mean(vals):.2f} ± {sd:.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"
        line["per seed (PGD-20)"] = " / ".join(f"{100 * r['test']['PGD-20 (step 2/255)']:.1f}" for r in mine)
        line["scale"] = f"{mine[0]['scale']:g}"
        line["minutes (mean)"] = f"{statistics.mean(r['minutes'] for r in mine):.1f}"
        body[f"{LABELS[v]}"] = line
    return tables.markdown_table(body, stub=f"student (seeds {' '.join(map(str, seeds))})", align="lrrrrrr")


def paired(rows: list[dict]) -> str:
    by = {(r["variant"], r["seed"]): r for r in rows}
    body = {}
    for a_, b_ in PAIRS:
        for seed in sorted({r["seed"] for r in rows}):
            if (a_, seed) not in by or (b_, seed) not in by:
                continue
            line = {}
            for col, key in COLUMNS.items():
                column = col if col == "Clean" else key
                ma, mb = results.mask(by[(a_, seed)]["test"], column), results.mask(by[(b_, seed)]["test"], column)
                t = stats.mcnemar(ma, mb)
                diff = 100 * (sum(ma) - sum(mb)) / len(ma)
                line[col] = f"{diff:+.2f} (p = {t['p_value']:.2g})"
            body[f"{LABELS[a_]} − {LABELS[b_]}, seed {seed}"] = line
    return tables.markdown_table(body, stub="difference on the same 1,017 images (exact McNemar)", align="lrrr")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(DEFAULT),
                   help=f"the rows to run (default: {' '.join(DEFAULT)}; adaad on request: about 3x RSLAD's time)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--train-samples", type=int, default=10000, help="training images per run (default 10,000)")
    p.add_argument("--teacher", type=Path, default=distill_budget.TEACHER, help="the robust teacher")
    p.add_argument("--natural-teacher", type=Path, default=None,
                   help="a natural teacher checkpoint (default: train cifar_d_natural once, into --out-dir)")
    p.add_argument("--source", default="auto")
    p.add_argument("--out-dir", type=Path, default=paths.REPO_ROOT / "runs" / "distill_budget")
    p.add_argument("--table", type=Path, default=paths.REPO_ROOT / "benchmarks" / "results" / "distill_ablation.md")
    a = p.parse_args(argv)
    natural = None
    if "rslad_natural" in a.only:
        natural = a.natural_teacher or natural_teacher(a)
    test = data.load("cifar10", "test", source="exact")
    rows = []
    for seed in a.seeds:
        for v in a.only:
            recipe, tag, overrides, which = VARIANTS[v]
            row = distill_budget.run_one(recipe, None, seed, a, tag=tag,
                                         teacher=natural if which == "natural" else None, **overrides)
            row["variant"] = v
            row["test"] = test_eval(Path(row.pop("checkpoint")), test)
            rows.append(row)
            print(json.dumps({k: (v_ if k != "test" else {c: x for c, x in v_.items() if c != "masks"})
                              for k, v_ in row.items()}), flush=True)
    text = summary(rows, a.seeds) + "\n\n" + paired(rows)
    print(text)
    a.table.parent.mkdir(parents=True, exist_ok=True)
    a.table.write_text(
        "# Notebook 05's students on several seeds, and RSLAD's ablation (small budget)\n\n"
        f"Command: `python benchmarks/distill_ablation.py --seeds {' '.join(map(str, a.seeds))} "
        f"--train-samples {a.train_samples}"
        + (f" --only {' '.join(a.only)} --table {paths.shown(a.table)}" if a.only != list(DEFAULT) else "") + "`."
        f" Each student: {a.train_samples:,} training images, five epochs, "
        "its recipe's loss scale; evaluated on the 1,017 pixel-exact test images (PGD-20: step 2/255, uniform "
        "start; CW∞-20: step 2/255). Mean ± standard deviation over seeds (training variance); the McNemar "
        "tests below are per seed and cover only the choice of test images.\n\n" + text + "\n")
    (a.out_dir / "distill_ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
