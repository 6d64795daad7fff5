"""Notebook 05's comparisons on several seeds, and RSLAD's central ablation, on a small budget.

    python benchmarks/distill_ablation.py                      # seeds 0 1 2, 10,000 training images
    python benchmarks/distill_ablation.py --seeds 0 --only rslad rslad_natural
    python benchmarks/distill_ablation.py --only rslad adaad --table benchmarks/results/distill_ablation_adaad.md

Each row is a student of notebook 05 (airbench_s, the recipe's optimiser and five epochs, its loss scale as its
recipe keeps it: ``benchmarks/distill_budget.py`` chose it) trained on ``--train-samples`` images, one run per
seed, then evaluated on the 1,017 pixel-exact CIFAR-10 test images with PGD-20 (step 2/255, uniform start: the
PGD_SAT column) and CW∞-20, and with the original AutoAttack's first two attacks (APGD-CE+T, the stand-in for AA
that notebook 05 uses) on the first ``--aa`` images (default 500), completed to the standard AutoAttack on the
first ``--aa-check`` of them (default 200) so that the stand-in's gap is measured on these very models. The rows:

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
test on the same test images (the variance of the choice of test images only). Below the tables, notebook 05's
goal decided from them: the RSLAD student's mean under APGD-CE+T above the SAT and the ARD student's by more than
the seeds' standard deviation (the larger of the two rows'), with the per-seed McNemar tests.

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
from advlib import checkpoints, data, evaluate, paths, recipes, results, tables, train

ATTACKS = ("pgd-20@2/255", "cw-20@2/255")
AA_ATTACKS = ("aa-apgd", "aa")  # AutoAttack's first two attacks on --aa images, completed on the first --aa-check
COLUMNS = {"Clean": "clean", "PGD-20": "PGD-20 (step 2/255)", "CW∞-20": "CW∞-20 (step 2/255)",
           "APGD-CE+T": "APGD-CE+T", "AA": "AutoAttack"}
GOAL_COLUMN, GOAL = "APGD-CE+T", ("rslad", ("sat", "ard"))  # notebook 05's goal: RSLAD above SAT and ARD
AA_ROWS = ("sat", "rslad", "rslad_natural", "ard")  # the goal's rows and the ablation's: AutoAttack runs on these
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


def test_eval(checkpoint: Path, test, n_aa: int = 0, n_check: int = 0) -> dict:
    """PGD-20 and CW∞-20 on every test image; with ``n_aa``, APGD-CE+T on the first ``n_aa`` and the standard
    AutoAttack on the first ``n_check`` of them (continuing the same runs). Resumable: a state file per set."""
    specs, n_per = list(ATTACKS), {}
    if n_aa:
        specs.append(AA_ATTACKS[0])
        n_per[AA_ATTACKS[0]] = n_aa
        if n_check:
            if n_check > n_aa:
                raise ValueError(f"--aa-check {n_check} is more than --aa {n_aa}: the standard AutoAttack completes "
                                 "the APGD-CE+T runs, so it can only run on images those ran on")
            specs.append(AA_ATTACKS[1])
            n_per[AA_ATTACKS[1]] = n_check
    model = checkpoints.load_model(checkpoint).to(memory_format=torch.channels_last)
    state = checkpoint.with_name("eval_test.state.json" if not n_aa else f"eval_test_aa{n_aa}_{n_check}.state.json")
    res = evaluate.evaluate(model, test, specs, eps=8 / 255, n_per_attack=n_per or None, state_path=state,
                            progress=False)
    return {"clean": res["clean"], **{k: v for k, v in res["robust"].items()}, "n": res["n"],
            "n_attack": {"clean": res["n"], **res["n_attack"]}, "masks": res["masks"],
            "autoattack_gap": res.get("autoattack_gap")}


def _columns(rows: list[dict]) -> dict[str, str]:
    """The columns some row measured, named with their image count where it is not every test image."""
    out = {}
    for col, key in COLUMNS.items():
        having = [r["test"] for r in rows if key in r["test"]]
        if having:
            n = having[0].get("n_attack", {}).get(key, having[0]["n"])
            out[col if n == having[0]["n"] else f"{col} (first {n})"] = key
    return out


def summary(rows: list[dict], seeds: list[int]) -> str:
    body = {}
    cols = _columns(rows)
    for v in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == v]
        line = {}
        for col, key in cols.items():
            vals = [100 * r["test"][key] for r in mine if key in r["test"]]
            sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
            line[col] = ("—" if not vals else f"{statistics.mean(vals):.2f} ± {sd:.2f}" if len(vals) > 1
                         else f"{vals[0]:.2f}")
        for per in ("PGD-20", GOAL_COLUMN):
            if COLUMNS[per] in cols.values():
                line[f"per seed ({per})"] = " / ".join(f"{100 * r['test'][COLUMNS[per]]:.1f}" if COLUMNS[per] in r["test"]
                                                       else "—" for r in mine)
        line["scale"] = f"{mine[0]['scale']:g}"
        line["minutes (mean)"] = f"{statistics.mean(r['minutes'] for r in mine):.1f}"
        body[f"{LABELS[v]}"] = line
    width = len(next(iter(body.values())))
    return tables.markdown_table(body, stub=f"student (seeds {' '.join(map(str, seeds))})", align="l" + "r" * width)


def paired(rows: list[dict]) -> str:
    by = {(r["variant"], r["seed"]): r for r in rows}
    body = {}
    cols = {c: k for c, k in _columns(rows).items() if k != COLUMNS["AA"]}  # AA: its gap is in gap_table
    for a_, b_ in PAIRS:
        for seed in sorted({r["seed"] for r in rows}):
            if (a_, seed) not in by or (b_, seed) not in by:
                continue
            line = {}
            for col, key in cols.items():
                if key not in by[(a_, seed)]["test"] or key not in by[(b_, seed)]["test"]:
                    line[col] = "—"
                    continue
                t = results.paired(by[(a_, seed)]["test"], by[(b_, seed)]["test"], "Clean" if key == "clean" else key)
                line[col] = f"{100 * (t['a'] - t['b']):+.2f} (p = {t['p_value']:.2g})"
            body[f"{LABELS[a_]} − {LABELS[b_]}, seed {seed}"] = line
    n = rows[0]["test"]["n"]
    return tables.markdown_table(body, stub=f"difference on the same images ({n:,} unless the column says; exact McNemar)",
                                 align="l" + "r" * len(cols))


def gap_table(rows: list[dict]) -> str:
    """APGD-CE+T against the standard AutoAttack on the same images, per run: the stand-in's measured gap."""
    body = {}
    for r in rows:
        g = r["test"].get("autoattack_gap")
        if g:
            body[f"{LABELS[r['variant']]}, seed {r['seed']}"] = {
                "images": f"first {g['n']}", "APGD-CE+T": f"{100 * g['partial']:.1f}", "AA": f"{100 * g['standard']:.1f}",
                "gap": f"{100 * g['gap']:.1f}"}
    if not body:
        return ""
    worst = max(float(b["gap"]) for b in body.values())
    return (tables.markdown_table(body, stub="APGD-CE+T vs standard AutoAttack, same images", align="lrrrr")
            + f"\n\nLargest gap: {worst:.1f} points (the images FAB-T and Square broke after APGD-CE+T, per 100).")


def compare_seeds(rows: list[dict], a_: str, b_: str, column: str = GOAL_COLUMN) -> dict:
    """Row ``a_`` against row ``b_`` under ``column`` over the seeds both ran: the difference of the means against
    the seeds' standard deviation (the larger of the two rows'), and each seed's exact McNemar test. ``{}`` when
    fewer than two seeds have the column for both."""
    key = COLUMNS[column]
    by = {(r["variant"], r["seed"]): r["test"] for r in rows if key in r["test"]}
    seeds = sorted(s for v, s in by if v == a_ and (b_, s) in by)
    if len(seeds) < 2:
        return {}
    a = [by[(a_, s)][key] for s in seeds]
    b = [by[(b_, s)][key] for s in seeds]
    diff, sd = statistics.mean(a) - statistics.mean(b), max(statistics.stdev(a), statistics.stdev(b))
    tests = {str(s): results.paired(by[(a_, s)], by[(b_, s)], key) for s in seeds}
    return {"mean": statistics.mean(a), "other_mean": statistics.mean(b), "diff": diff, "sd": sd, "higher": diff > sd,
            "seeds": {s: {"diff": t["a"] - t["b"], "p_value": t["p_value"], "n": t["n"]} for s, t in tests.items()}}


def goal_result(rows: list[dict]) -> dict:
    """Notebook 05's goal on these seeds: RSLAD's mean under APGD-CE+T above SAT's and ARD's by more than the
    seeds' standard deviation (:func:`compare_seeds`). ``{}`` when no pair has two seeds with the column."""
    me, others = GOAL
    against = {o: c for o in others if (c := compare_seeds(rows, me, o))}
    if not against:
        return {}
    return {"student": me, "column": GOAL_COLUMN, "n": next(iter(next(iter(against.values()))["seeds"].values()))["n"],
            "met": all(v["higher"] for v in against.values()) and len(against) == len(others), "against": against}


def goal(rows: list[dict]) -> str:
    """:func:`goal_result` in Markdown."""
    g = goal_result(rows)
    if not g:
        return ""
    out = []
    for o, v in g["against"].items():
        tests = "; ".join(f"seed {s}: {100 * t['diff']:+.1f}, p = {t['p_value']:.2g}" for s, t in v["seeds"].items())
        out.append(f"- {LABELS[g['student']]} − {LABELS[o]} under {g['column']} (first {g['n']}): means "
                   f"{100 * v['mean']:.2f} vs {100 * v['other_mean']:.2f}, {100 * v['diff']:+.2f} points against a "
                   f"standard deviation over seeds of {100 * v['sd']:.2f}: "
                   f"{'higher by more than it' if v['higher'] else 'not higher by more than it'} ({tests}).")
    return ("Notebook 05's goal (the RSLAD student above the SAT and the ARD student under AutoAttack's stand-in, by "
            "more than the seeds' standard deviation): **" + ("met" if g["met"] else "not met") + "** on this budget.\n\n"
            + "\n".join(out))


def summary_json(rows: list[dict], command: str, train_samples: int) -> dict:
    """What notebook 05 reads of this benchmark (``benchmarks/results/distill_ablation.json``, committed): each
    row's accuracies per seed, their mean and standard deviation, the image count of each column, the goal and
    the paper's ablation (robust against natural soft labels, :func:`compare_seeds`) and the largest gap of
    APGD-CE+T to the standard AutoAttack on the same images."""
    out_rows = {}
    for v in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == v]
        cols = {col: key for col, key in COLUMNS.items() if all(key in r["test"] for r in mine)}
        per_seed = {str(r["seed"]): {col: r["test"][key] for col, key in cols.items()} for r in mine}
        vals = {col: [r["test"][key] for r in mine] for col, key in cols.items()}
        out_rows[v] = {"label": LABELS[v], "scale": mine[0]["scale"], "per_seed": per_seed,
                       "mean": {c: statistics.mean(x) for c, x in vals.items()},
                       "sd": {c: statistics.stdev(x) if len(x) > 1 else None for c, x in vals.items()},
                       "n": {col: mine[0]["test"].get("n_attack", {}).get(key, mine[0]["test"]["n"])
                             for col, key in cols.items()}}
    gaps = [r["test"]["autoattack_gap"]["gap"] for r in rows if r["test"].get("autoattack_gap")]
    return {"benchmark": "benchmarks/distill_ablation.py", "command": command, "train_samples": train_samples,
            "epochs": 5, "n_test": rows[0]["test"]["n"], "seeds": sorted({r["seed"] for r in rows}),
            "rows": out_rows, "goal": goal_result(rows), "ablation": compare_seeds(rows, "rslad", "rslad_natural"),
            "largest_autoattack_gap": max(gaps) if gaps else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(DEFAULT),
                   help=f"the rows to run (default: {' '.join(DEFAULT)}; adaad on request: about 3x RSLAD's time)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--train-samples", type=int, default=10000, help="training images per run (default 10,000)")
    p.add_argument("--teacher", type=Path, default=distill_budget.TEACHER, help="the robust teacher")
    p.add_argument("--natural-teacher", type=Path, default=None,
                   help="a natural teacher checkpoint (default: train cifar_d_natural once, into --out-dir)")
    p.add_argument("--aa", type=int, default=500, help="APGD-CE+T on the first N test images (default 500; 0: none)")
    p.add_argument("--aa-rows", nargs="+", choices=list(VARIANTS), default=list(AA_ROWS),
                   help=f"the rows AutoAttack runs on (default: {' '.join(AA_ROWS)}: the goal's and the ablation's)")
    p.add_argument("--aa-check", type=int, default=200,
                   help="the standard AutoAttack on the first N of those, for the stand-in's gap (default 200; 0: none)")
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
            row["test"] = test_eval(Path(row.pop("checkpoint")), test, a.aa if v in a.aa_rows else 0, a.aa_check)
            rows.append(row)
            print(json.dumps({k: (v_ if k != "test" else {c: x for c, x in v_.items() if c != "masks"})
                              for k, v_ in row.items()}), flush=True)
    text = "\n\n".join(t for t in (summary(rows, a.seeds), paired(rows), gap_table(rows), goal(rows)) if t)
    print(text)
    a.table.parent.mkdir(parents=True, exist_ok=True)
    command = (f"python benchmarks/distill_ablation.py --seeds {' '.join(map(str, a.seeds))} "
               f"--train-samples {a.train_samples}"
               + (f" --only {' '.join(a.only)} --table {paths.shown(a.table)}" if a.only != list(DEFAULT) else "")
               + (f" --aa {a.aa} --aa-check {a.aa_check}" if (a.aa, a.aa_check) != (500, 200) else "")
               + (f" --aa-rows {' '.join(a.aa_rows)}" if a.aa_rows != list(AA_ROWS) else ""))
    a.table.with_suffix(".json").write_text(json.dumps(summary_json(rows, command, a.train_samples), indent=1) + "\n")
    a.table.write_text(
        "# Notebook 05's students on several seeds, and RSLAD's ablation (small budget)\n\n"
        f"Command: `{command}`."
        f" Each student: {a.train_samples:,} training images, five epochs, "
        "its recipe's loss scale; evaluated on the 1,017 pixel-exact test images (PGD-20: step 2/255, uniform "
        "start; CW∞-20: step 2/255)"
        + (f", with the original AutoAttack's APGD-CE and APGD-T (APGD-CE+T) on the first {a.aa} and the standard "
           f"AutoAttack on the first {a.aa_check} of them, for the rows {'; '.join(LABELS[v] for v in a.aa_rows)} "
           "(— where a row was not attacked)" if a.aa else "")
        + ". Mean ± standard deviation over seeds (training variance); the McNemar "
        "tests below are per seed and cover only the choice of test images.\n\n" + text + "\n")
    (a.out_dir / "distill_ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
