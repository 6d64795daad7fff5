"""The course report reads what the notebooks declared (units, models, methods, attacks, data), never names."""
from __future__ import annotations

import json

import pytest

from advlib import attack_registry, data, evaluate, paths, record, reference
from advlib.course import formatting, write_report

MNIST = {"dataset": "mnist", "label": "MNIST", "origin": "full"}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLIB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def report_md() -> str:
    md, _ = write_report("cpu")
    return md.read_text()


def section(md: str, start: str, end: str = "\n## ") -> str:
    i = md.index(start)
    j = md.find(end, i + len(start))
    return md[i:] if j < 0 else md[i:j]


def test_units_come_from_the_declaration_not_the_name(runs):
    run = record.Run("01_units", "cpu")
    run.table("t", {"r": {"eps": 0.25, "Clean": 0.5, "accuracy": 8 / 255}},
              units={"eps": "fraction", "Clean": "number", "accuracy": "eps"})
    run.value(eps=0.25, units="fraction")
    run.value(clean_accuracy=0.5, units="number")
    run.value(best_seconds=125.0, units="seconds")
    run.curve("loss", [1, 2], {"train": [0.5, 0.25]}, x_label="epoch", y_label="loss", x_unit="number",
              y_unit="number")
    md = report_md()
    assert "| r | 25.00 | 0.5 | 8/255 |" in md  # 'eps' declared a fraction, 'Clean' a number, 'accuracy' a budget
    assert "| eps | 25.00 % |" in md and "| clean_accuracy | 0.5 |" in md and "| best_seconds | 2 min 05 s |" in md
    assert "| train | 0.5 | 0.25 |" in md and "loss in %" not in md


def test_old_metrics_without_declarations_are_shown_as_recorded(runs):
    # A metrics.json as written before units, models and attacks were declared.
    d = runs / "cpu" / "02_old"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "notebook": "02_old", "profile": "cpu", "data": "MNIST", "data_origin": "full", "settings": {},
        "values": {"clean_accuracy": 0.98, "python": "3.11"},
        "tables": {"robustness": {"columns": ["Clean", "PGD-40"], "note": "",
                                  "rows": {"fast_cnn TRADES": {"Clean": 0.9876, "PGD-40": 0.5432}}}},
        "curves": {"c": {"x_label": "eps", "y_label": "accuracy", "x": [0, 0.1], "series": {"FGSM": [0.9, 0.1]}}},
        "figures": {}, "train_seconds": {}}))
    md = report_md()
    nb = section(md, "## 02_old")
    assert "| fast_cnn TRADES | 0.9876 | 0.5432 |" in nb and "units not recorded: numbers as recorded" in nb
    assert "| clean_accuracy | 0.98 (unit not recorded) |" in nb and "| python | 3.11 |" in nb
    assert "| FGSM | 0.9 | 0.1 |" in nb
    pub = section(md, "## Published figures")
    assert "ours:" not in pub  # a row naming TRADES is not matched by its name
    assert "Not compared, their models, training methods, attacks or data set not recorded: 02_old / robustness" in pub


def test_published_match_follows_the_declared_model_and_method(runs):
    run = record.Run("03_meta", "cpu")
    pgd40 = evaluate.parse_attack("pgd-40", 0.3).settings()
    pgd10 = evaluate.parse_attack("pgd-10", 0.3).settings()
    run.table("r", {"undefended": {"Clean": 0.99, "PGD-10": 0.95, "PGD-40": 0.9},
                    "fast_cnn TRADES": {"Clean": 0.5, "PGD-10": 0.2, "PGD-40": 0.1}}, units="fraction",
              rows_meta={"undefended": {"model": "fast_cnn", "method": "trades"},
                         "fast_cnn TRADES": {"model": "fast_cnn", "method": "standard"}},
              columns_meta={"Clean": {"attack": record.CLEAN}, "PGD-10": {"attack": pgd10},
                            "PGD-40": {"attack": pgd40}}, data=MNIST)
    pub = section(report_md(), "## Published figures")
    # the row *declared* TRADES is set beside the TRADES anchor, with the PGD column of the anchor's attack
    assert "| ours: undefended | MNIST, profile cpu | 0.3 | 99.00 | 90.00 (PGD-40) | – |" in pub
    assert "ours: fast_cnn TRADES" not in pub  # declared standard training: no MNIST counterpart


def test_results_table_records_everything_from_evaluate_results(runs, tiny_model, mnist_sample):
    _, test = mnist_sample
    results = {name: evaluate.evaluate(tiny_model, test, ["fgsm", "pgd-2"], eps=0.3, n=20, progress=False)
               for name in ("a", "b")}
    run = record.Run("04_eval", "cpu")
    rows = run.results_table("robustness", results, rows_meta={"a": {"model": "small_cnn", "method": "pgd"}})
    assert rows == evaluate.as_rows(results)
    t = json.loads(run.path.read_text())["tables"]["robustness"]
    assert t["columns"] == ["Clean", "FGSM", "PGD-2", evaluate.WORST]
    assert t["units"] == dict.fromkeys(t["columns"], "fraction")
    assert t["columns_meta"][evaluate.WORST] == {"attack": {"kind": "worst_case", "of": ["FGSM", "PGD-2"]}, "n": 20}
    assert t["columns_meta"]["Clean"] == {"attack": record.CLEAN, "n": 20}
    assert t["columns_meta"]["PGD-2"]["attack"]["steps"] == 2 and t["columns_meta"]["FGSM"]["attack"]["kind"] == "fgsm"
    assert t["data"] == {"dataset": "mnist", "label": test.label, "origin": test.origin}
    assert t["rows_meta"] == {"a": {"model": "small_cnn", "method": "pgd"}}
    other = evaluate.evaluate(tiny_model, test, ["fgsm"], eps=0.3, n=20, progress=False)
    with pytest.raises(ValueError, match="differ from those of 'a' in 'attacks'"):
        run.results_table("mixed", {**results, "c": other})
    with pytest.raises(ValueError, match="results is empty"):
        run.results_table("none", {})


def test_bad_declarations_are_refused_with_a_clear_message(runs):
    run = record.Run("05_bad", "cpu")
    with pytest.raises(ValueError, match="unknown unit 'percentage' for column 'a'; use one of: 'fraction'"):
        run.table("t", {"r": {"a": 1}}, units={"a": "percentage"})
    with pytest.raises(ValueError, match=r"units given for \['b'\], which are not among the columns"):
        run.table("t", {"r": {"a": 1}}, units={"b": "number"})
    with pytest.raises(ValueError, match=r"rows_meta given for \['s'\], which are not among the rows"):
        run.table("t", {"r": {"a": 1}}, rows_meta={"s": {"method": "pgd"}})
    with pytest.raises(ValueError, match="data must be an advlib.data.Dataset or a dict"):
        run.table("t", {"r": {"a": 1}}, data="MNIST")
    with pytest.raises(ValueError, match="unknown unit 'pct' for value 'x'"):
        run.value(x=1.0, units="pct")
    with pytest.raises(ValueError, match="unknown unit None for y"):
        run.curve("c", [0], {"s": [1]}, y_unit=None)


def test_reference_columns_come_from_attack_settings():
    col = {s: attack_registry.published_column(evaluate.parse_attack(s, 8 / 255).settings())
           for s in ("fgsm", "pgd-20", "pgd-20-kl", "cw-20", "aa", "aa-apgd", "noise", *evaluate.RSLAD_SPECS.values())}
    assert col == {"fgsm": "FGSM", "pgd-20": "PGD_SAT", "pgd-20-kl": None, "cw-20": "CW∞", "aa": "AA", "aa-apgd": None,
                   "noise": None, "pgd-20@2/255": "PGD_SAT", "pgd-20@0.003": "PGD_TRADES", "cw-20@2/255": "CW∞"}
    # the report's reading of a column and the evaluation's definition of it are one
    assert {c: attack_registry.published_column(evaluate.parse_attack(s, 8 / 255).settings())
            for c, s in evaluate.RSLAD_SPECS.items()} == {c: c for c in evaluate.RSLAD_SPECS}
    assert reference.PGD_TRADES_STEP == evaluate.RSLAD_STEP
    assert attack_registry.published_column(record.CLEAN) == "Clean" and attack_registry.published_column(None) is None
    assert reference.match("mnist", "fast_cnn", "fgsm_two_pass") == []  # no random start: not fast AT


def test_formatting_by_unit():
    assert formatting.value(0.25, "fraction") == "25.00 %" and formatting.value(-0.5, "fraction") == "-50.00 %"
    assert formatting.value(97.5, "fraction") == "97.5"  # not a fraction: as recorded
    assert formatting.value(8 / 255, "eps") == "8/255" and formatting.value(21.25, "milliseconds") == "21.25 ms"
    assert formatting.value(0.3, None) == "0.3 (unit not recorded)" and formatting.value("x", None) == "x"
    assert formatting.cell({"a": 0.5}, "fraction") == "a: 50.00"


def test_one_repository_root(monkeypatch):
    monkeypatch.delenv("ADVLIB_RUNS", raising=False)
    assert data.REPO_ROOT == paths.REPO_ROOT and (paths.REPO_ROOT / "advlib" / "paths.py").exists()
    assert record.runs_root() == paths.REPO_ROOT / "runs"
