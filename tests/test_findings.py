"""A notebook's summary says what its own numbers say.

The committed notebooks embed the metrics they were run with (``Run.finish``) and show the findings
``advlib.findings`` writes from them; these tests fail when a summary sentence disagrees with those
metrics (a sentence edited by hand, a number changed, a stale output), and check on made-up numbers
that each wording follows the numbers rather than the authors' expectations.
"""
from __future__ import annotations

import copy
import json
import re

import pytest

from advlib import experiments, findings, paths, record
from advlib.course import files

NOTEBOOKS = [p for p in files.find_notebooks() if any("findings.show(run)" in files.cell_source(c)
                                                     for c in files.read_notebook(p)["cells"])]
CIFAR = ("03_pgd_training_cifar10", "04_trades_mart_cifar10", "05_rslad_distillation_cifar10", "06_evaluating_robustness")


def _text(output: dict) -> str:
    data = output.get("data", {})
    t = data.get("text/markdown", data.get("text/plain", output.get("text", "")))
    return "".join(t) if isinstance(t, list) else t


def shown_outputs(nb: dict) -> tuple[dict | None, str | None, dict[str, str]]:
    """What an executed notebook embeds and shows: its metrics (``Run.finish``), its findings (``findings.show``)
    and its partial findings by name (``findings.show_part``)."""
    metrics, shown, parts = None, None, {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get(record.META_KEY, {})
            if record.embedded_metrics(out) is not None:
                metrics = record.embedded_metrics(out)
            if findings.META in meta:
                shown = _text(out)
            if findings.PART_META in meta:
                parts[meta[findings.PART_META]] = _text(out)
    return metrics, shown, parts


def embedded(path) -> tuple[dict, str, dict[str, str]]:
    """The metrics a committed notebook embeds, the findings it displays and its partial findings."""
    nb = files.read_notebook(path)
    metrics, shown, parts = shown_outputs(nb)
    assert metrics is not None, f"{path.name}: no embedded metrics (commit the notebook with the outputs of run.finish())"
    assert shown is not None, f"{path.name}: the findings cell has no output (commit the notebook with its outputs)"
    return metrics, shown, parts


def summary_problems(nb: dict) -> list[str]:
    """Where an executed notebook's findings (and partial findings) are not what advlib.findings writes from the
    metrics it embeds: a sentence edited by hand, a number changed, a stale output."""
    metrics, shown, parts = shown_outputs(nb)
    if metrics is None or shown is None:
        return ["no embedded metrics or no findings shown"]
    problems = []
    if shown != findings.markdown(findings.sentences(metrics)):
        problems.append("the findings shown are not what advlib.findings writes from the embedded metrics")
    if metrics.get("findings") != findings.sentences(metrics):
        problems.append("the findings recorded in the metrics are not what advlib.findings writes from them")
    for name, text in parts.items():
        want = findings.part_sentences(metrics, name)
        if text != findings.part_markdown(want):
            problems.append(f"the partial finding {name!r} shown is not what advlib.findings writes from the metrics")
        if metrics.get(findings.PARTS_KEY, {}).get(name) != want:
            problems.append(f"the partial finding {name!r} recorded in the metrics is not what advlib.findings writes")
    return problems


def test_every_notebook_with_results_has_findings():
    assert {p.stem for p in NOTEBOOKS} >= {"01_fgsm_mnist", "02_adversarial_training_mnist",
                                           "02b_adversarial_training_in_practice_mnist", *CIFAR}
    assert set(CIFAR) <= set(findings.REGISTRY) and all(findings.PARTS.get(nb) for nb in CIFAR)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_summary_agrees_with_the_notebooks_metrics(path):
    metrics, _, _ = embedded(path)
    assert metrics["notebook"] == path.stem
    problems = summary_problems(files.read_notebook(path))
    assert not problems, (f"{path.name}: " + "; ".join(problems) + ". Re-run the notebook (python -m advlib.course run "
                          "--only ...) instead of editing its outputs")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_comparison_fails_when_a_number_changes(path):
    """The check above can fail: change the accuracies of the notebook's tables and a sentence changes."""
    metrics, shown, _ = embedded(path)
    doctored = copy.deepcopy(metrics)
    for table in doctored["tables"].values():
        for row in table["rows"].values():
            for col, v in row.items():
                if isinstance(v, float) and 0.2 < v < 0.8:
                    row[col] = v + 0.123
    assert findings.markdown(findings.sentences(doctored)) != shown


# --------------------------------------------------------------------------- results stated inline

# What a code cell may not do: record a summary, build bullet lists of results, or write a verdict by hand.
INLINE = {
    "a summary recorded by hand": re.compile(r"run\.set\(\s*summary\s*="),
    "a summary list built by hand": re.compile(r"^\s*(?:summary|lines|lines_out)\s*=\s*\[", re.MULTILINE),
    "a bullet written by hand": re.compile(r"""f?["'](?:\\n)*- """),
    "a verdict written by hand": re.compile(r"significant at|within the noise|beyond the noise|overfitting to see|"
                                            r"goal (?:not )?met|[\"'](?:\*\*)?not met|barely|really beats|"
                                            r"overstates by \{", re.IGNORECASE),
}


def inline_results(nb: dict) -> list[str]:
    """The code cells (exercise cells aside) that state a result instead of showing advlib.findings' sentences."""
    bad = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or record.META_KEY in cell.get("metadata", {}):  # exercise cells carry it
            continue
        src = files.cell_source(cell)
        bad += [f"cell {i}: {what}" for what, pattern in INLINE.items() if pattern.search(src)]
    return bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_states_a_result_inline(path):
    bad = inline_results(files.read_notebook(path))
    assert not bad, (f"{path.name} states results in its own code; write them in advlib.findings (@register for the "
                     "summary, @part and findings.show_part for a result stated mid-notebook):\n" + "\n".join(bad))


def test_the_inline_check_catches_a_summary_written_by_hand():
    def nb(src):
        return {"cells": [{"cell_type": "code", "metadata": {}, "source": src}]}
    assert inline_results(nb('lines = [f"- SAT keeps {x:.1%}"]\nrun.set(summary=lines)')) == [
        "cell 0: a summary recorded by hand", "cell 0: a summary list built by hand", "cell 0: a bullet written by hand"]
    assert inline_results(nb('print("p = 0.01 (significant at 95%)")')) == ["cell 0: a verdict written by hand"]
    assert inline_results(nb('display(Markdown(f"{n}: " + ("within the noise" if ok else "robust overfitting")))'))
    assert inline_results(nb('display(Markdown("Not met: " + ", ".join(missed)))')) == ["cell 0: a verdict written by hand"]
    assert inline_results(nb('findings.show_part(run, "goal")\nif not met:\n    plt.show()')) == []


# --------------------------------------------------------------------------- made-up numbers


def nb02(**rows) -> dict:
    base = {"Standard": dict(Clean=0.986, FGSM=0.0, P=0.0, AA=0.0),
            "FGSM (two-pass)": dict(Clean=0.798, FGSM=0.70, P=0.0, AA=0.0),
            "FGSM augment (m = 0.5)": dict(Clean=0.982, FGSM=0.928, P=0.0, AA=0.0),
            "FGSM-RS (fast AT)": dict(Clean=0.99, FGSM=0.971, P=0.878, AA=0.798),
            "PGD (Madry)": dict(Clean=0.99, FGSM=0.944, P=0.915, AA=0.895)}
    for k, v in rows.items():
        base[k].update(v)
    rename = {"P": "PGD-50×10", "AA": "AutoAttack"}
    table = {"columns": ["Clean", "FGSM", "PGD-50×10", "AutoAttack"],
             "rows": {r: {rename.get(c, c): v for c, v in d.items()} for r, d in base.items()},
             "columns_meta": {"Clean": {"attack": {"kind": "clean"}, "n": 1000},
                              "FGSM": {"attack": {"kind": "fgsm"}, "n": 1000},
                              "PGD-50×10": {"attack": {"kind": "pgd"}, "n": 1000},
                              "AutoAttack": {"attack": {"kind": "aa"}, "n": 1000}}}
    return {"notebook": "02_adversarial_training_mnist", "eps": 0.3, "settings": {"n_curve": 500},
            "values": {"fgsm_every_image": {"FGSM (two-pass)": 0.915}, "epochs": {"Standard": 2, "PGD (Madry)": 8}},
            "tables": {"robustness": table}, "curves": {},
            "flags_raised": {"FGSM-RS (fast AT)": ["PGD close to AutoAttack"]}}


def said(metrics) -> str:
    return " ".join(findings.sentences(metrics))


def test_nb02_wording_follows_the_numbers():
    text = said(nb02())
    assert "within the noise of the standard model" in text and "bought no robustness" in text
    assert "label leaking" in text  # 91.5% under FGSM on every image vs 79.8% clean
    assert "overestimates its robustness" in text and "flagged" in text
    assert "no cost of robustness is measurable" in text  # 98.6 vs 99.0 on 1,000 images
    assert "the most robust model is PGD (Madry)" in text
    # an augment model that is robust under PGD is no longer called "no more robust than the standard model"
    text = said(nb02(**{"FGSM augment (m = 0.5)": dict(P=0.4)}))
    assert "bought no robustness" not in text and "FGSM (two-pass) is within the noise" in text
    # a real clean-accuracy cost is called one
    assert "PGD training costs 5.0 points" in said(nb02(**{"PGD (Madry)": dict(Clean=0.936)}))
    # no leak when FGSM on every image is not above clean accuracy
    m = nb02()
    m["values"]["fgsm_every_image"]["FGSM (two-pass)"] = 0.79
    assert "no label leaking measurable" in said(m)
    # a PGD-AutoAttack gap inside the intervals is not called an overestimate
    assert "within the noise" in said(nb02(**{"FGSM-RS (fast AT)": dict(P=0.80, AA=0.798)}))


def test_nb01_wording_follows_the_numbers():
    rows = {"ε = 0.1": {"random noise": 0.98, "FGSM": 0.35, "PGD-20": 0.18},
            "ε = 0.2": {"random noise": 0.96, "FGSM": 0.03, "PGD-20": 0.0},
            "ε = 0.3": {"random noise": 0.85, "FGSM": 0.001, "PGD-20": 0.0}}
    m = {"notebook": "01_fgsm_mnist", "data": "MNIST", "values": {"clean_accuracy": 0.984, "n_eval": 1000},
         "tables": {"noise_vs_fgsm_vs_pgd": {"columns": ["random noise", "FGSM", "PGD-20"], "rows": rows}},
         "curves": {"accuracy_vs_eps": {"x": [0, 0.05, 0.1], "series": {"FGSM": [0.984, 0.7, 0.35]}}}}
    text = said(m)
    assert "costs 13.4 points at ε = 0.3 (85.0%)" in text  # never "barely hurts"
    assert "at least as strong as FGSM" in text and "from ε = 0.10" in text
    m["tables"]["noise_vs_fgsm_vs_pgd"]["rows"]["ε = 0.1"]["PGD-20"] = 0.5
    assert "FGSM beat PGD-20" in said(m)


def test_nb02b_wording_follows_the_numbers():
    def co(peak, final, fgsm, clean=0.95):
        return {"peak_pgd": peak, "peak_epoch": 1.0, "final_pgd": final, "final_fgsm": fgsm, "final_clean": clean,
                "collapsed": peak - final > 0.1 and fgsm - final > 0.1, "when": 1.5, "n": 500}
    shift = {"columns": ["clean", "blur (3)", "contrast (3)", "AutoAttack, ε = 0.3 (notebook 02)"],
             "rows": {"Standard": {"clean": 0.98, "blur (3)": 0.90, "contrast (3)": 0.60,
                                   "AutoAttack, ε = 0.3 (notebook 02)": 0.0},
                      "PGD (Madry)": {"clean": 0.99, "blur (3)": 0.80, "contrast (3)": 0.61,
                                      "AutoAttack, ε = 0.3 (notebook 02)": 0.89}}}
    m = {"notebook": "02b_adversarial_training_in_practice_mnist", "settings": {"n_eval": 1000, "n_shift": 1000},
         "values": {"catastrophic_overfitting": {"FGSM, no random start, ε = 0.3": co(0.18, 0.01, 0.99, 0.90),
                                                 "FGSM-RS, α = 1.25ε, ε = 0.3": co(0.84, 0.83, 0.96)}},
         "tables": {"distribution_shift": shift}}
    text = said(m)
    assert "collapsed: FGSM, no random start" in text and "Did not collapse: FGSM-RS, α = 1.25ε" in text
    assert "label leaking) in: FGSM, no random start, ε = 0.3" in text
    assert "worse under blur (3)" in text and "no measurable difference under contrast (3)" in text
    assert "did not carry over" in text


def test_unknown_notebook_is_a_clear_error():
    with pytest.raises(ValueError, match="no findings are written"):
        findings.sentences({"notebook": "99_nothing"})


def test_embedded_metrics_leave_out_the_per_image_records(tmp_path):
    run = record.Run("01_fgsm_mnist", "smoke", tmp_path)
    run.set(evaluation={"A": {"flags": [{"name": "x", "raised": True}, {"name": "y", "raised": False}],
                              "masks": {"Clean": "1" * 1000}}})
    c = run.compact()
    assert "evaluation" not in c and c["flags_raised"] == {"A": ["x"]}
    assert len(json.dumps(c)) < 2000


# --------------------------------------------------------------------------- made-up numbers: notebooks 03-06

EPS = 8 / 255
CW = {"kind": "pgd", "loss": "cw", "alpha": 2 / 255, "steps": 20, "random_start": "uniform"}
PGD_SAT = {"kind": "pgd", "loss": "ce", "alpha": 2 / 255, "steps": 20, "random_start": "uniform"}
PGD_TRADES = {**PGD_SAT, "alpha": 0.003}
PAPER_COLS = {"Clean": {"kind": "clean"}, "FGSM": {"kind": "fgsm"}, "PGD_SAT": PGD_SAT, "PGD_TRADES": PGD_TRADES,
              "CW∞": CW, "APGD-CE+T": {"kind": "aa"}, "AA": {"kind": "aa"}, "All attacks": {"kind": "worst_case"}}


def paper_table(rows: dict, n: int = 1017, n_aa: int = 500, n_check: int = 200, methods: dict | None = None) -> dict:
    """A table of the paper's columns as notebooks 03-05 record it: ``rows`` {row: (clean, fgsm, pgd_sat, pgd_trades,
    cw, apgd, aa, worst)}; None leaves a column out."""
    cols = [c for i, c in enumerate(PAPER_COLS) if any(v[i] is not None for v in rows.values())]
    ns = {"APGD-CE+T": n_aa, "AA": n_check}
    return {"columns": cols,
            "rows": {r: {c: v[list(PAPER_COLS).index(c)] for c in cols} for r, v in rows.items()},
            "columns_meta": {c: {"attack": PAPER_COLS[c], "n": ns.get(c, n)} for c in cols},
            "rows_meta": {r: {"model": "airbench_s", "method": (methods or {}).get(r.split(" (")[0], "pgd")}
                          for r in rows}}


def nb03(**changes) -> dict:
    grid = [0.0, 0.01569, 0.03137, 0.04706, 0.06275]
    co = lambda peak, final, fgsm: {"peak_pgd": peak, "peak_epoch": 3, "final_pgd": final, "final_fgsm": fgsm,
                                    "final_clean": 0.5, "collapsed": peak - final > 0.1 and fgsm - final > 0.1,
                                    "when": None, "n": 500, "test_fgsm": 0.33, "test_pgd20": 0.316, "n_test": 1017}
    m = {"notebook": "03_pgd_training_cifar10", "profile": "cpu", "data": "CIFAR-10 (pixel-exact subset)", "eps": EPS,
         "runs": {"Standard": {"model": "airbench_m", "method": "standard", "epochs": 5, "train_images": None},
                  "SAT": {"model": "airbench_m", "method": "n_fgsm", "epochs": 15, "train_images": None},
                  "SAT, small data": {"model": "airbench_s", "method": "pgd", "epochs": 30, "train_images": 4000}},
         "train_seconds": {"SAT": 1710.0},
         "tables": {"rslad_columns": paper_table({
             "Standard": (0.852, 0.048, 0.002, 0.01, 0.001, None, None, 0.001),
             "SAT (best)": (0.611, 0.378, 0.369, 0.40, 0.312, None, None, 0.301),
             "SAT (last)": (0.711, 0.443, 0.420, 0.43, 0.409, None, None, 0.396)},
             methods={"Standard": "standard"}),
             "autoattack": {"columns": ["Clean", "PGD-20 (step 2/255)", "APGD-CE+T", "AA"],
                            "rows": {"SAT (last)": {"Clean": 0.72, "PGD-20 (step 2/255)": 0.424, "APGD-CE+T": 0.386,
                                                    "AA": 0.37}},
                            "columns_meta": {"Clean": {"attack": {"kind": "clean"}, "n": 500},
                                             "PGD-20 (step 2/255)": {"attack": PGD_SAT, "n": 500},
                                             "APGD-CE+T": {"attack": {"kind": "aa"}, "n": 500},
                                             "AA": {"attack": {"kind": "aa"}, "n": 200}}}},
         "values": {"perturbation_scale": {"fooled": 6, "n": 6}, "n_curve": 200,
                    "robust_overfitting": {
                        "SAT": {"best_epoch": 6, "epochs": 12, "best_pgd": 0.324, "last_pgd": 0.314, "n": 500, "steps": 10},
                        "SAT, small data": {"best_epoch": 27, "epochs": 30, "best_pgd": 0.332, "last_pgd": 0.324,
                                            "n": 250, "steps": 10}},
                    "autoattack_gap": {"n": 200, "partial": 0.37, "standard": 0.37, "gap": 0.0,
                                       "partial_attack": "APGD-CE+T", "standard_attack": "AA"},
                    "catastrophic_overfitting": {"FGSM (α=ε, no random start)": co(0.306, 0.302, 0.33),
                                                 "FGSM-RS (α=1.25ε)": co(0.326, 0.318, 0.34),
                                                 "FGSM-RS (α=2ε)": co(0.322, 0.308, 0.33)}},
         "curves": {"pgd20_accuracy_vs_eps": {"x": grid, "series": {"Standard": [0.86, 0.02, 0.0, 0.0, 0.0],
                                                                   "SAT (last)": [0.72, 0.56, 0.395, 0.26, 0.16]}}},
         "best_vs_last": pair(0.420, 0.369, 90, 38, 4e-6),
         "goal": {"clean": 0.711, "pgd20": 0.42, "n": 1017, "minutes": 28.5, "epochs": 15, "model": "airbench_m",
                  "parameters": 569690, "targets": {"clean": 0.72, "pgd20": 0.45, "minutes": 30}}}
    for path, v in changes.items():  # "values.robust_overfitting.SAT.last_pgd": 0.2
        *keys, last = path.split(".")
        d = m
        for k in keys:
            d = d[k]
        d[last] = v
    return m


def test_nb03_wording_follows_the_numbers():
    text = said(nb03())
    assert "no run shows a drop beyond its monitor's 95% interval within this budget" in text
    assert "none of the 3 single-step runs collapsed within this budget" in text
    assert "costs 14.1 points of clean accuracy" in text and "Not met: clean ≥ 72%, PGD-20 ≥ 45%." in text
    assert "McNemar p = 4e-06, beyond what the choice of test images explains" in text
    assert "degrades gracefully" not in text and "visible" not in text
    parts = {name: " ".join(findings.part_sentences(nb03(), name)) for name in findings.PARTS[NB03]}
    assert "(airbench_s, pgd, 30 epochs on 4,000 training images)" in parts["robust_overfitting"]
    assert "no robust overfitting measurable within this budget" in parts["robust_overfitting"]
    assert "no run collapsed within this budget" in parts["catastrophic_overfitting"]
    assert "keeps falling, by more than the 95% intervals" in parts["accuracy_vs_eps"]
    assert "it loses 4.1 points per 1/255 up to the budget and 2.9 beyond it" in parts["accuracy_vs_eps"]
    assert "3 PGD-20 figures" in parts["pgd20_figures"] and "2.5ε/20 = 1/255" in parts["pgd20_figures"]
    # a drop beyond the monitor's interval is called robust overfitting, a collapse is called one
    ro = said(nb03(**{"values.robust_overfitting.SAT, small data.last_pgd": 0.20}))
    assert "Robust overfitting: measurable in SAT, small data" in ro
    co = nb03()
    co["values"]["catastrophic_overfitting"]["FGSM-RS (α=2ε)"].update(final_pgd=0.01, final_fgsm=0.6, collapsed=True)
    assert "FGSM-RS (α=2ε) collapsed" in said(co)
    assert "collapsed: FGSM-RS (α=2ε)" in " ".join(findings.part_sentences(co, "catastrophic_overfitting"))
    # a flat curve beyond the budget is not called a fall
    flat = nb03(**{"curves.pgd20_accuracy_vs_eps.series.SAT (last)": [0.72, 0.5, 0.40, 0.39, 0.38]})
    assert "No fall beyond the training budget is measurable" in " ".join(findings.part_sentences(flat, "accuracy_vs_eps"))
    assert "All three parts of the goal are met." in said(nb03(**{"goal.clean": 0.73, "goal.pgd20": 0.46}))


NB03, NB04, NB05, NB06 = CIFAR


def pair(a: float, b: float, a_only: int, b_only: int, p: float, n: int = 1017, column: str = "PGD_SAT") -> dict:
    return {"column": column, "n": n, "a": a, "b": b, "a_only": a_only, "b_only": b_only, "p_value": p,
            "a_better": a_only > b_only, "significant": p < 0.05}


def nb04() -> dict:
    rows = {}
    for t, best, last in (("SAT", (0.598, 0.397, 0.385, 0.40, 0.346, 0.31, 0.30, 0.30), None),
                          ("TRADES", (0.631, 0.353, 0.342, 0.36, 0.313, 0.30, 0.29, 0.29), None),
                          ("MART", (0.523, 0.376, 0.370, 0.38, 0.308, 0.31, 0.30, 0.30),
                           (0.554, 0.394, 0.394, 0.41, 0.341, 0.32, 0.31, 0.31))):
        rows[f"{t} (best)"], rows[f"{t} (last)"] = best, last or best
    sweep = {f"β={b:g}": {"Clean": c, "PGD-20 (step 2/255)": r} for b, c, r in ((0.5, 0.613, 0.161), (2, 0.556, 0.245),
                                                                                  (6, 0.505, 0.273))}
    return {"notebook": NB04, "profile": "cpu", "eps": EPS,
            "runs": {t: {"model": "airbench_s", "method": m, "epochs": 5, "train_images": None}
                     for t, m in (("SAT", "pgd"), ("TRADES", "trades"), ("MART", "mart"))},
            "tables": {"rslad_columns": paper_table(rows, methods={"SAT": "pgd", "TRADES": "trades", "MART": "mart"}),
                       "beta_sweep": {"columns": ["Clean", "PGD-20 (step 2/255)"], "rows": sweep,
                                      "columns_meta": {"Clean": {"attack": {"kind": "clean"}, "n": 1017},
                                                       "PGD-20 (step 2/255)": {"attack": PGD_SAT, "n": 1017}}}},
            "paired": {"TRADES vs SAT": {"PGD_SAT": pair(0.342, 0.385, 40, 83, 1.3e-4),
                                         "Clean": pair(0.631, 0.598, 75, 41, 0.002, column="Clean")},
                       "MART vs SAT": {"PGD_SAT": pair(0.370, 0.385, 72, 87, 0.27),
                                       "Clean": pair(0.523, 0.598, 40, 116, 1e-9, column="Clean")},
                       "TRADES vs MART": {"PGD_SAT": pair(0.342, 0.370, 71, 99, 0.038),
                                          "Clean": pair(0.631, 0.523, 140, 30, 1e-15, column="Clean")}},
            "values": {}, "curves": {}}


def test_nb04_wording_follows_the_numbers():
    m = nb04()
    text = said(m)
    # TRADES below SAT, beyond chance, the reverse of the paper's order, with the clean column beside it
    assert "put TRADES above SAT under PGD_SAT (52.66% vs 49.11%)" in text
    assert "the reverse of the paper's order" in text and "another point of the trade-off" in text
    assert "Clean accuracy: TRADES 63.1% against SAT 59.8% (p = 0.002" in text
    assert "covers the choice of test images only" in text and "seed" in text
    assert "does not rank them here" in text  # APGD-CE+T on 500 images, intervals overlap
    assert "For SAT, TRADES the best epoch was the last" in text
    assert "the larger β buys robustness with clean accuracy" in text
    paired = " ".join(findings.part_sentences(m, "paired"))
    assert "TRADES vs SAT (PGD_SAT, best checkpoints, 1017 images): 34.2% vs 38.5%, -4.3 points" in paired
    assert "p = 0.00013, beyond what the choice of test images explains." in paired
    assert "MART vs SAT" in paired and "within what the choice of test images explains" in paired
    # TRADES above SAT beyond chance: the paper's order, no word of a reversal
    m["paired"]["TRADES vs SAT"]["PGD_SAT"] = pair(0.40, 0.385, 83, 40, 1.3e-4)
    m["tables"]["rslad_columns"]["rows"]["TRADES (best)"]["PGD_SAT"] = 0.40
    assert "the same order" in said(m) and "reverse" not in said(m)
    # a flat sweep is no trade-off
    for r in m["tables"]["beta_sweep"]["rows"].values():
        r.update({"Clean": 0.55, "PGD-20 (step 2/255)": 0.25})
    assert "no trade-off measurable" in " ".join(findings.part_sentences(m, "beta_sweep"))


def nb05(**goal) -> dict:
    rows = {}
    vals = {"Natural": (0.839, 0.042, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), "SAT": (0.627, 0.399, 0.387, 0.40, 0.361, 0.33, 0.32, 0.32),
            "TRADES": (0.643, 0.378, 0.362, 0.37, 0.327, 0.31, 0.30, 0.30), "MART": (0.575, 0.411, 0.399, 0.41, 0.345, 0.30, 0.29, 0.29),
            "ARD": (0.540, 0.280, 0.270, 0.28, 0.241, 0.23, 0.22, 0.22), "IAD": (0.643, 0.394, 0.382, 0.39, 0.356, 0.30, 0.29, 0.29),
            "RSLAD": (0.626, 0.372, 0.357, 0.37, 0.329, 0.29, 0.28, 0.28)}
    for ck in ("best", "last"):
        for t, v in vals.items():
            rows[f"{t} ({ck})"] = v
    methods = {t: t.lower() for t in vals} | {"Natural": "standard", "SAT": "pgd"}
    tests = {"SAT": {"APGD-CE+T": pair(0.29, 0.33, 6, 19, 0.015, 500, "APGD-CE+T"), "PGD_SAT": pair(0.357, 0.387, 40, 71, 0.004),
                     "Clean": pair(0.626, 0.627, 50, 51, 1.0, column="Clean")},
             "ARD": {"APGD-CE+T": pair(0.29, 0.23, 33, 11, 0.0013, 500, "APGD-CE+T"), "PGD_SAT": pair(0.357, 0.270, 120, 31, 1e-11),
                     "Clean": pair(0.626, 0.540, 120, 33, 1e-12, column="Clean")}}
    g = {"column": "APGD-CE+T", "n": 500, "met": False, "tests": tests}
    g.update(goal)
    teacher = paper_table({"teacher": (0.766, 0.49, 0.451, 0.458, 0.426, None, None, 0.41)})
    stab = {"robust teacher (airbench_l)": {"true class on x": 0.485, "true class on x'": 0.322, "top probability on x": 0.535,
                                            "KL(p(x) ‖ p(x'))": 0.14, "prediction changed": 0.332},
            "Natural student": {"true class on x": 0.764, "true class on x'": 0.0, "top probability on x": 0.84,
                                "KL(p(x) ‖ p(x'))": 11.8, "prediction changed": 0.864}}
    return {"notebook": NB05, "profile": "cpu", "eps": EPS,
            "teacher": {"model": "airbench_l", "source": "shipped with the course", "parameters": 1269082},
            "runs": {t: {"model": "airbench_s", "method": methods[t], "epochs": 5, "train_images": None,
                         "loss_scale": 3.0 if t in ("ARD", "IAD", "RSLAD") else 1.0} for t in vals},
            "train_seconds": {t: 420.0 for t in vals},
            "tables": {"rslad_columns": paper_table(rows, methods=methods), "teacher": teacher,
                       "soft_label_stability": {"columns": list(stab["Natural student"]), "rows": stab},
                       "third_party": paper_table({"Natural ResNet-18 (AutoAttack example)":
                                                   (0.946, 0.178, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)}, n=500)},
            "values": {"n_soft": 500}, "curves": {}, "goal": g}


def test_nb05_wording_follows_the_numbers():
    m = nb05()
    soft = " ".join(findings.part_sentences(m, "soft_labels"))
    assert "differs from its prediction on x for 33.2% of the images for the robust teacher" in soft
    assert "they do change, on 33.2% of the images" in soft and "barely" not in soft
    goal = " ".join(findings.part_sentences(m, "goal"))
    assert "not met on this run: against SAT, behind by 4.0 points (beyond chance); against ARD, ahead beyond chance" in goal
    assert "covers the choice of test images only" in goal and "distill_ablation.md" in goal
    assert "stands 7.5 points above the SAT ResNet-18" in goal  # the paper's teacher margin, beside ours
    text = said(m)
    assert "ARD ×3" in text and "SAT ×1" in text  # the loss scales the recipes chose
    assert "the reverse of the paper's order" in text  # RSLAD below SAT here, above it in the paper
    assert "really" not in text
    met = nb05(met=True)
    for o, a in (("SAT", 0.36), ("ARD", 0.36)):
        met["goal"]["tests"][o]["APGD-CE+T"].update(a=a, p_value=0.01)
    assert "met: the RSLAD student is ahead of both" in " ".join(findings.part_sentences(met, "goal"))


def seed_bench(rslad=(0.25, 0.262, 0.27), sat=(0.292, 0.278, 0.30), ard=(0.204, 0.21, 0.19),
               natural=(0.27, 0.26, 0.28)) -> dict:
    """What benchmarks/distill_ablation.py commits (summary_json), computed by the benchmark's own functions."""
    import random
    import sys

    sys.path.insert(0, str(paths.REPO_ROOT / "benchmarks"))
    import distill_ablation as da

    rows = []
    for v, accs in (("sat", sat), ("rslad", rslad), ("ard", ard), ("rslad_natural", natural)):
        for seed, a in enumerate(accs):
            rng = random.Random(f"{v}{seed}")
            bits = ["1"] * round(a * 500) + ["0"] * (500 - round(a * 500))
            rng.shuffle(bits)
            rows.append({"variant": v, "seed": seed, "scale": 1.0, "minutes": 2.0, "test": {
                "clean": 0.5, "APGD-CE+T": a, "n": 1017, "n_attack": {"clean": 1017, "APGD-CE+T": 500},
                "masks": {"Clean": "1" * 1017, "APGD-CE+T": "".join(bits)},
                "autoattack_gap": {"n": 200, "partial": a, "standard": a - 0.005, "gap": 0.005}}})
    return da.summary_json(rows, "python benchmarks/distill_ablation.py", 10000)


def test_nb05_seed_benchmark_wording_follows_its_numbers():
    m = nb05()
    m["seed_benchmark"] = seed_bench()
    seeds = " ".join(findings.part_sentences(m, "seeds"))
    assert "On 3 seeds of a smaller budget (10,000 training images, 5 epochs" in seeds
    assert "RSLAD, robust teacher 26.1 ± 1.0; SAT (hard labels) 29.0 ± 1.1" in seeds
    assert "RSLAD, robust teacher − SAT (hard labels): -2.9 points on average" in seeds and "below by more than it" in seeds
    assert "Goal on the seeds" in seeds and "not met on this budget" in seeds
    assert "lowered it by at most 0.5 points" in seeds
    assert "within the seeds' spread" in seeds  # robust vs natural teacher: -0.9 points, sd 1.0
    won = dict(m, seed_benchmark=seed_bench(rslad=(0.36, 0.37, 0.38)))
    text = " ".join(findings.part_sentences(won, "seeds"))
    assert "Goal on the seeds (RSLAD's mean above SAT's and ARD's by more than the seeds' standard deviation): met." in text
    assert "beyond the seeds' spread: the robust teacher's labels help" in text
    assert "above by more than it" in text
    table = experiments.seed_table(seed_bench())
    assert "APGD-CE+T (first 500)" in table and "| SAT (hard labels) | 50.0 ± 0.0 | 29.0 ± 1.1 |" in table
    missing = dict(m, seed_benchmark=None)
    assert "run `python benchmarks/distill_ablation.py`" in findings.part_sentences(missing, "seeds")[0]


def test_the_committed_seed_benchmark_is_what_notebook_05_reads():
    bench = experiments.seed_benchmark()
    assert bench is not None, "benchmarks/results/distill_ablation.json is not committed"
    assert bench["goal"]["column"] == "APGD-CE+T" and bench["goal"]["n"] >= 500 and len(bench["seeds"]) >= 3
    assert {"sat", "rslad", "rslad_natural", "ard"} <= set(bench["rows"])
    md = (paths.REPO_ROOT / "benchmarks" / "results" / "distill_ablation.md").read_text(encoding="utf-8")
    assert ("**met**" if bench["goal"]["met"] else "**not met**") in md  # the table and the JSON: one run


def nb06(checks04: int = 0) -> dict:
    cols = {"Clean": {"kind": "clean"}, "FGSM": {"kind": "fgsm"}, "PGD-20": PGD_TRADES, "CW∞-20": CW,
            "Random noise": {"kind": "noise"}, "AutoAttack": {"kind": "aa"}, "All attacks": {"kind": "worst_case"}}
    masked = {"columns": list(cols), "columns_meta": {c: {"attack": a, "n": 200} for c, a in cols.items()},
              "rows": {"Natural student": dict(zip(cols, (0.86, 0.045, 0.0, 0.0, 0.855, 0.0, 0.0))),
                       "… with logits ×10⁴ (ScaledLogits)": dict(zip(cols, (0.86, 0.86, 0.85, 0.0, 0.835, 0.0, 0.0)))}}
    weak = {"columns": ["Clean", "FGSM", "PGD-20 (step 0.003)", "PGD-KL-20"],
            "rows": {"Natural student": {"Clean": 0.839, "FGSM": 0.042, "PGD-20 (step 0.003)": 0.0, "PGD-KL-20": 0.393}},
            "columns_meta": {"Clean": {"attack": {"kind": "clean"}, "n": 1017}, "FGSM": {"attack": {"kind": "fgsm"}, "n": 1017},
                             "PGD-20 (step 0.003)": {"attack": PGD_TRADES, "n": 1017},
                             "PGD-KL-20": {"attack": {"kind": "pgd", "loss": "kl"}, "n": 1017}}}
    return {"notebook": NB06, "profile": "cpu", "eps": EPS,
            "curves": {"accuracy_vs_steps": {"x": [0, 1, 2, 5, 10, 20, 50],
                                             "series": {"SAT student": [0.399, 0.40, 0.39, 0.387, 0.386, 0.385, 0.384],
                                                        "RSLAD student": [0.372, 0.37, 0.36, 0.356, 0.354, 0.352, 0.351]}}},
            "values": {"n_steps_images": 1017, "weak_flags": ["PGD-KL-20 at least as strong as FGSM"]},
            "tables": {"masked_models": masked, "weak_attack": weak},
            "masked_flags": {"Natural student": [], "… with logits ×10⁴ (ScaledLogits)": ["cross-entropy PGD close to the other attacks"]},
            "best_vs_last": {"best_epoch": 6, "epochs": 12, "n_monitor": 500, "monitor_steps": 10,
                             "test": pair(0.423, 0.369, 90, 35, 1.3e-4, column="PGD-20 (step 2/255)"), "table_last": 0.42},
            "course_checks": {NB03: {"evaluations": 3, "flagged": 0}, NB04: {"evaluations": checks04, "flagged": 0},
                              NB05: {"evaluations": 15, "flagged": 0}}}


def test_nb06_wording_follows_the_numbers():
    m = nb06()
    steps = " ".join(findings.part_sentences(m, "steps"))
    assert "FGSM is +1.5 points from PGD-50, within the 95% intervals" in steps
    assert "PGD training tends to make it so" in steps and "less linear" not in steps
    m["curves"]["accuracy_vs_steps"]["series"]["SAT student"][0] = 0.52
    assert "the loss curves inside the ball" in " ".join(findings.part_sentences(m, "steps"))
    assert "PGD-20 overstates its robustness by 85.0 points" in " ".join(findings.part_sentences(m, "masked"))
    assert "Every masked model raised at least one flag." in findings.part_sentences(m, "masked")
    weak = findings.part_sentences(m, "weak_attack")[0]
    assert "PGD-KL-20 is above one FGSM step beyond the 95% intervals" in weak and "the check fired" in weak
    best = findings.part_sentences(m, "best_vs_last")[0]
    assert "the monitor's pick was the worse one here" in best and "42.0%" in best
    checks = " ".join(findings.part_sentences(m, "course_checks"))
    assert "notebook 03: 3 evaluations" in checks and "Nothing to read for notebook 04" in checks
    assert "Nothing to read" not in " ".join(findings.part_sentences(nb06(checks04=6), "course_checks"))


BUILDERS = {NB03: nb03, NB04: nb04, NB05: nb05, NB06: nb06}


@pytest.mark.parametrize("notebook", CIFAR)
def test_every_registered_function_runs_on_made_up_metrics(notebook):
    m = BUILDERS[notebook]()
    assert findings.sentences(m) and all(isinstance(s, str) and s for s in findings.sentences(m))
    for name in findings.PARTS[notebook]:
        lines = findings.part_sentences(m, name)
        assert lines and all(isinstance(s, str) and s for s in lines), name


def test_a_committed_notebook_keeps_the_order_of_its_metrics():
    # nbformat writes a notebook's keys sorted: the metrics are embedded as one JSON string, so that the findings
    # regenerated from the committed copy list rows, runs and series in the order the notebook recorded them
    m = nb05()
    nb = json.loads(json.dumps(executed(m), sort_keys=True))
    embedded_copy = record.embedded_metrics(nb["cells"][-1]["outputs"][1])
    assert list(embedded_copy["tables"]["soft_label_stability"]["rows"]) == list(m["tables"]["soft_label_stability"]["rows"])
    assert summary_problems(nb) == []
    legacy = {"metadata": {record.META_KEY: {"metrics": {"notebook": "x"}}}}  # as notebooks executed before embedded it
    assert record.embedded_metrics(legacy) == {"notebook": "x"} and record.embedded_metrics({"metadata": {}}) is None


@pytest.mark.parametrize("notebook", (NB03, NB04))
def test_the_findings_do_not_depend_on_the_order_of_the_metrics_keys(notebook):
    # 03 and 04 were committed with their metrics' keys sorted, before the order was kept: their findings list rows
    # and paired tests in the order of their methods, whatever the order of the keys
    m = BUILDERS[notebook]()
    if notebook == NB04:  # the made-up 04 has its rows in the notebook's order; a sorted copy reverses some of them
        assert list(m["paired"]) != sorted(m["paired"])
    resorted = json.loads(json.dumps(m, sort_keys=True))
    assert findings.sentences(resorted) == findings.sentences(m)
    for name in findings.PARTS[notebook]:
        assert findings.part_sentences(resorted, name) == findings.part_sentences(m, name), name


def executed(metrics: dict) -> dict:
    """A notebook as the course would commit it after running, from its metrics: each partial finding and the
    summary shown, the metrics embedded."""
    m = copy.deepcopy(metrics)
    m[findings.PARTS_KEY] = {name: findings.part_sentences(m, name) for name in findings.PARTS.get(m["notebook"], {})}
    m["findings"] = findings.sentences(m)
    out = lambda text, meta: {"output_type": "display_data", "data": {"text/markdown": text},
                              "metadata": {record.META_KEY: meta}}
    cells = [{"cell_type": "code", "metadata": {}, "source": f'findings.show_part(run, "{name}");',
              "outputs": [out(findings.part_markdown(lines), {findings.PART_META: name})]}
             for name, lines in m[findings.PARTS_KEY].items()]
    cells.append({"cell_type": "code", "metadata": {}, "source": "findings.show(run)\nrun.finish()",
                  "outputs": [out(findings.markdown(m["findings"]), {findings.META: m["notebook"]}),
                              {"output_type": "display_data", "data": {"text/plain": "metrics written"},
                               "metadata": {record.META_KEY: {record.EMBEDDED: json.dumps(m, ensure_ascii=False)}}}]})
    return {"cells": cells}


NUMBER = re.compile(r"\d+\.\d%")


@pytest.mark.parametrize("notebook", CIFAR)
def test_editing_a_number_in_a_sentence_fails_the_check(notebook):
    nb = executed(BUILDERS[notebook]())
    assert summary_problems(nb) == []
    for i, cell in enumerate(nb["cells"]):
        edited = copy.deepcopy(nb)
        data = edited["cells"][i]["outputs"][0]["data"]
        text = data["text/markdown"]
        if not NUMBER.search(text):
            continue
        data["text/markdown"] = NUMBER.sub(lambda mm: f"{float(mm.group()[:-1]) + 1:.1f}%", text, count=1)
        assert summary_problems(edited), f"editing a number of {cell['source']!r} went unnoticed"
    # and a number changed in the metrics, with the sentences left as they were
    doctored = copy.deepcopy(nb)
    meta = doctored["cells"][-1]["outputs"][1]["metadata"][record.META_KEY]
    metrics = json.loads(meta[record.EMBEDDED])
    for t in metrics["tables"].values():
        for row in t["rows"].values():
            for c, v in row.items():
                if isinstance(v, float) and 0.2 < v < 0.8:
                    row[c] = v + 0.123
    meta[record.EMBEDDED] = json.dumps(metrics)
    assert summary_problems(doctored)


def test_a_part_shown_from_numbers_recorded_later_is_refused(tmp_path):
    pytest.importorskip("IPython")
    run = record.Run(NB03, "smoke", tmp_path)
    run.data.update(copy.deepcopy(nb03()))
    findings.show_part(run, "goal")
    assert run.data[findings.PARTS_KEY]["goal"] == findings.part_sentences(run.compact(), "goal")
    findings.show(run)  # nothing changed since: fine
    run.data["goal"]["pgd20"] = 0.30  # recorded again after the part was shown
    with pytest.raises(ValueError, match="partial findings \\['goal'\\]"):
        findings.show(run)


def test_unknown_part_is_a_clear_error():
    with pytest.raises(ValueError, match="no partial finding 'nothing'"):
        findings.part_sentences({"notebook": NB03}, "nothing")


def nb03_with_worst_case(pgd: float, apgd: float, worst: float) -> dict:
    m = nb03()
    aa = m["tables"]["autoattack"]
    aa["columns"].append("All attacks")
    aa["rows"]["SAT (last)"].update({"PGD-20 (step 2/255)": pgd, "APGD-CE+T": apgd, "All attacks": worst})
    aa["columns_meta"]["All attacks"] = {"attack": {"kind": "worst_case", "of": ["PGD-20 (step 2/255)", "APGD-CE+T"]},
                                         "n": 500}
    return m


def test_two_attacks_on_the_same_images_are_paired_through_the_worst_case():
    # 500 images: 209 survive PGD-20, 193 APGD-CE+T, 193 both: APGD breaks 16 that PGD leaves, PGD none
    m = nb03_with_worst_case(0.418, 0.386, 0.386)
    t = findings.paired_attacks(m["tables"]["autoattack"], "SAT (last)", "PGD-20 (step 2/255)", "APGD-CE+T")
    assert (t["n"], t["only_a_breaks"], t["only_b_breaks"]) == (500, 0, 16)
    assert t["p_value"] == pytest.approx(2 * 0.5 ** 16)
    text = said(m)
    assert "APGD-CE+T breaks 16 images that PGD-20 leaves correct, PGD-20 0 that APGD-CE+T leaves" in text
    assert "PGD-20 overstates this model's robustness by 3.2 points on these images" in text
    assert "within the noise of APGD-CE+T" not in text  # the unpaired intervals overlap; the paired test decides
    # the two attacks break different images, as many each: no verdict
    even = said(nb03_with_worst_case(0.40, 0.40, 0.39))
    assert "APGD-CE+T breaks 5 images that PGD-20 leaves correct, PGD-20 5" in even
    assert "within the noise of each other on these images" in even


def test_without_a_worst_case_over_both_the_attacks_are_compared_by_intervals():
    m = nb03()  # its autoattack table has no worst-case column
    assert findings.paired_attacks(m["tables"]["autoattack"], "SAT (last)", "PGD-20 (step 2/255)", "APGD-CE+T") is None
    assert "PGD-20 is within the noise of APGD-CE+T on the same images" in said(m)


def test_the_leader_is_ranked_against_by_the_paired_tests_where_the_notebook_has_them():
    text = said(nb04())
    # TRADES' interval overlaps SAT's, but McNemar's test on the same images puts it below
    assert ("Highest PGD_SAT among the best checkpoints: SAT (38.5%); on the same images, MART within the noise of it "
            "(McNemar p = 0.27); TRADES below it (McNemar p = 0.00013).") in text
    assert findings.paired_test(nb04(), "SAT", "TRADES")["a_only"] == 83  # turned round from "TRADES vs SAT"
    unpaired = nb04()
    del unpaired["paired"]
    assert "within the 95% intervals of it: MART, TRADES." in said(unpaired)
