"""Rows a notebook's cpu profile leaves out for its time budget, measured on that notebook's budget.

    python benchmarks/extra_rows.py                          # notebook 04: SAT and AT-AWP
    python benchmarks/extra_rows.py --notebook 05_rslad_distillation_cifar10 --runs RSLAD=cifar_d_rslad AdaAD=cifar_d_adaad

Notebook 04's cpu profile trains SAT, TRADES and MART and leaves AWP out (``extra_runs`` adds it), notebook 05's
leaves AdaAD out (``extra_students``), because each would take the notebook past its time budget. This script
measures such a row the way the notebook would: each run trains with ``advlib.experiments.configs`` exactly as
the notebook's cpu profile builds it, into the notebook's own run folder ``runs/cpu/<notebook>/<run>`` (a
finished run is reused, here and by the notebook later, or copied from notebook 04's or 05's folder when one of them
trained it with the same settings; an interrupted one resumes), and its last checkpoint is evaluated as the
notebook's cpu profile evaluates it (``experiments.paper_columns``: the 1,017 pixel-exact test images, the RSLAD
paper's columns, AutoAttack's APGD-CE + APGD-T on the first 500 and the standard version on 200 of them for the
gap), into the notebook's own saved state (``evaluation_last.json``): the evaluation resumes, and neither this
script nor the notebook runs it twice. The first run is the baseline: each other row gets the exact
McNemar test against it on the same images (it covers the choice of test images, not training seeds: one seed).

Minutes are wall-clock training minutes on this machine; run it with nothing else CPU-heavy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from advlib import data, experiments, paths, reference, results, tables, train

SETTINGS = dict(n=None, n_aa=500, aa_proxy=True, n_aa_check=200)  # notebooks 04 and 05, cpu profile
TEACHER = paths.REPO_ROOT / "data" / "models" / "cifar_teacher.pt"  # notebook 05's cpu teacher
SHARING = ("04_trades_mart_cifar10", "05_rslad_distillation_cifar10")  # notebooks that train the same runs (SAT...)
COLUMNS = ("Clean", "FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "APGD-CE+T", "AA")


def _pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected TITLE=RECIPE, e.g. AT-AWP=cifar_s_sat_awp; got {text!r}")
    title, recipe = text.split("=", 1)
    return title, recipe


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notebook", default="04_trades_mart_cifar10")
    p.add_argument("--runs", nargs="+", type=_pair, default=[("SAT", "cifar_s_sat"), ("AT-AWP", "cifar_s_sat_awp")],
                   help="TITLE=RECIPE ..., the first one the baseline (default: SAT=cifar_s_sat AT-AWP=cifar_s_sat_awp)")
    p.add_argument("--teacher", type=Path, default=TEACHER, help="the teacher of distilling runs (notebook 05's)")
    p.add_argument("--table", type=Path, default=None,
                   help="where to write the table (default: benchmarks/results/extra_rows_<notebook>.md)")
    p.add_argument("--note", default="", help="a sentence on how it was measured (the machine, what else ran), kept in the table")
    a = p.parse_args(argv)
    runs = dict(a.runs)
    folder = experiments.notebook_dir(a.notebook, "cpu")
    configs = experiments.configs(runs, folder, 1.0, teacher=str(a.teacher), source="auto", seed=0)
    test = data.load("cifar10", "test", source="exact")
    res, minutes = {}, {}
    for title, cfg in configs.items():
        t0 = time.time()
        fit = train.fit(cfg, resume="if_same", reuse_from=[experiments.notebook_dir(nb, "cpu") for nb in SHARING
                                                           if nb != a.notebook])
        minutes[title] = fit.get("train_seconds", time.time() - t0) / 60
        model = experiments.load(cfg, "last")
        state = Path(cfg.out_dir) / "evaluation_last.json"  # the notebook's own: the same evaluation, done once
        res[title] = experiments.paper_columns(model, test, state_path=state, progress=False, **SETTINGS)
        print(json.dumps({"run": title, "minutes": round(minutes[title], 1), "clean": res[title]["clean"],
                          **res[title]["robust"]}), flush=True)
    base = next(iter(configs))
    body = {}
    for title, r in res.items():
        row = {"recipe": runs[title], "minutes": f"{minutes[title]:.1f}", "Clean": f"{100 * r['clean']:.2f}"}
        for c in COLUMNS[1:]:
            if c in r["robust"]:
                n = r["n_attack"].get(c, r["n"])
                row[c] = f"{100 * r['robust'][c]:.2f}" + (f" (n = {n})" if n != r["n"] else "")
        body[title] = row
    text = tables.markdown_table(body, stub=f"last checkpoint (n = {res[base]['n']} unless given)")
    lines = []
    for title, r in res.items():
        if title == base:
            continue
        for c in ("Clean", "PGD_SAT", "CW∞", "APGD-CE+T"):
            if c == "Clean" or c in r["robust"]:
                t = results.paired(r, res[base], c)
                lines.append(f"- {title} − {base}, {c} (n = {t['n']}): {100 * (t['a'] - t['b']):+.2f} points, "
                             f"{t['a_only']} images only {title} gets right, {t['b_only']} only {base}; "
                             f"exact McNemar p = {t['p_value']:.2g}")
    gaps = [f"- {title}: {100 * g['partial']:.2f}% under {g['partial_attack']} vs {100 * g['standard']:.2f}% under "
            f"the standard AutoAttack on the same first {g['n']} images: gap {100 * g['gap']:+.2f} points"
            for title, r in res.items() for g in [r.get("autoattack_gap")] if g]
    published = [f"- {title}: {reference.AWP_README[title][0]:.2f}% clean, {reference.AWP_README[title][1]:.2f}% AutoAttack "
                 f"({reference.AWP_MODEL}, full test set; {reference.AWP_CITATION})"
                 for title in res if title in reference.AWP_README]
    out = (text + "\n\n" + "\n".join(lines) + ("\n\nAutoAttack proxy's gap:\n" + "\n".join(gaps) if gaps else "")
           + ("\n\nPublished (a far larger model and budget, for scale, not for a match):\n" + "\n".join(published)
              if published else ""))
    print(out)
    table = a.table or paths.REPO_ROOT / "benchmarks" / "results" / f"extra_rows_{a.notebook}.md"
    runs_arg = " ".join(f"{t}={r}" for t, r in runs.items())
    table.write_text(
        f"# Rows notebook {a.notebook} leaves out of its cpu profile, on its budget\n\n"
        f"Command: `python benchmarks/extra_rows.py --notebook {a.notebook} --runs {runs_arg}`. Each run: its "
        f"recipe as the notebook's cpu profile trains it (seed 0), in `runs/cpu/{a.notebook}/`; last checkpoint; "
        "the 1,017 pixel-exact test images; APGD-CE+T is AutoAttack's first two attacks on the first 500 (the "
        "notebooks' proxy), AA the standard AutoAttack on the first 200 of them. McNemar tests against the first row cover the choice of test images only (one seed).\n\n"
        + (a.note + "\n\n" if a.note else "") + out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
