"""A notebook's summary says what its own numbers say.

The committed notebooks embed the metrics they were run with (``Run.finish``) and show the findings
``advlib.findings`` writes from them; these tests fail when a summary sentence disagrees with those
metrics (a sentence edited by hand, a number changed, a stale output), and check on made-up numbers
that each wording follows the numbers rather than the authors' expectations.
"""
from __future__ import annotations

import copy
import json

import pytest

from advlib import findings, record
from advlib.course import files

NOTEBOOKS = [p for p in files.find_notebooks() if any("findings.show(run)" in files.cell_source(c)
                                                     for c in files.read_notebook(p)["cells"])]


def _text(output: dict) -> str:
    data = output.get("data", {})
    t = data.get("text/markdown", data.get("text/plain", output.get("text", "")))
    return "".join(t) if isinstance(t, list) else t


def embedded(path) -> tuple[dict, str]:
    """The metrics a committed notebook embeds, and the findings it displays."""
    nb = files.read_notebook(path)
    metrics, shown = None, None
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get(record.META_KEY, {})
            if "metrics" in meta:
                metrics = meta["metrics"]
            if findings.META in meta:
                shown = _text(out)
    assert metrics is not None, f"{path.name}: no embedded metrics (commit the notebook with the outputs of run.finish())"
    assert shown is not None, f"{path.name}: the findings cell has no output (commit the notebook with its outputs)"
    return metrics, shown


def test_the_mnist_notebooks_have_findings():
    assert {p.stem for p in NOTEBOOKS} >= {"01_fgsm_mnist", "02_adversarial_training_mnist",
                                           "02b_adversarial_training_in_practice_mnist"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_summary_agrees_with_the_notebooks_metrics(path):
    metrics, shown = embedded(path)
    assert metrics["notebook"] == path.stem
    assert shown == findings.markdown(findings.sentences(metrics)), (
        f"{path.name}: the findings shown are not what advlib.findings writes from the metrics this notebook embeds; "
        "re-run the notebook (python -m advlib.course run --only ...) instead of editing its outputs")
    assert metrics.get("findings") == findings.sentences(metrics)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_comparison_fails_when_a_number_changes(path):
    """The check above can fail: change the accuracies of the notebook's tables and a sentence changes."""
    metrics, shown = embedded(path)
    doctored = copy.deepcopy(metrics)
    for table in doctored["tables"].values():
        for row in table["rows"].values():
            for col, v in row.items():
                if isinstance(v, float) and 0.2 < v < 0.8:
                    row[col] = v + 0.123
    assert findings.markdown(findings.sentences(doctored)) != shown


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
