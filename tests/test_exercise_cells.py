"""The notebooks' exercise cells are generated from advlib.exercises: the committed notebooks hold
exactly those cells, ``verify`` names every drift, and ``write`` repairs it without touching the
notebook's other cells."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from advlib.exercises import EXERCISES, cells
from advlib.exercises.__main__ import main

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = {name: REPO / "notebooks" / f"{name}.ipynb" for name in EXERCISES}
EXISTING = [name for name, path in NOTEBOOKS.items() if path.is_file()]


def _committed(name: str) -> Path:
    """The notebook's path; the test is skipped for a notebook whose exercises are defined before its file
    exists (create it with a '## Exercises' heading, then run `python -m advlib.exercises write NAME`)."""
    if not NOTEBOOKS[name].is_file():
        pytest.skip(f"{NOTEBOOKS[name].name} does not exist yet")
    return NOTEBOOKS[name]


def _load(name: str) -> dict:
    return json.loads(NOTEBOOKS[name].read_text(encoding="utf-8"))


def _index(nb: dict, key: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if cells.key_of(c) == key)


def _others(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if cells.key_of(c) is None]


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_committed_notebook_holds_the_exercise_cells(name):
    _committed(name)
    assert cells.drift(_load(name), EXERCISES[name], name) == []


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_write_leaves_a_committed_notebook_byte_for_byte(name):
    text = _committed(name).read_text(encoding="utf-8")
    assert cells.dumps(cells.merge(json.loads(text), EXERCISES[name], name)) == text


def test_check_cells_are_the_nbval_form():
    nb = _load("01_fgsm_mnist")
    cell = nb["cells"][_index(nb, "fgsm/check")]
    assert "".join(cell["source"]) == ("# NBVAL_CHECK_OUTPUT\nimport advlib.exercises\n\n"
                                       "passed = advlib.exercises.check_fgsm(my_fgsm)")
    assert cell["outputs"] == [{"name": "stdout", "output_type": "stream",
                                "text": ["✏️ Not attempted yet: write your code in the cell above, then run this "
                                         "cell again.\n"]}]


def _tampered(name: str = "01_fgsm_mnist") -> dict:
    """The notebook with drifted exercise cells: the check cell in an older form with another output,
    a statement deleted, the starter's metadata lost, a stale exercise cell, and an author's note
    between two exercises."""
    nb = copy.deepcopy(_load(name))
    check = nb["cells"][_index(nb, "fgsm/check")]
    check["source"] = ["import advlib.exercises\n", "\n", "advlib.exercises.check_fgsm(my_fgsm)\n"]
    check["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ["✅ Correct: ...\n"]}]
    del nb["cells"][_index(nb, "robust_accuracy/statement")]
    del nb["cells"][_index(nb, "fgsm/starter")]["metadata"]["advlib"]
    stale = copy.deepcopy(nb["cells"][_index(nb, "intro")])
    stale["metadata"]["advlib"] = {"exercise": "old_exercise/statement"}
    stale["id"] = "stale000"
    nb["cells"].insert(_index(nb, "fgsm/check") + 1, stale)
    note = {"cell_type": "markdown", "id": "note0001", "metadata": {}, "source": ["An author's note."]}
    nb["cells"].insert(_index(nb, "robust_accuracy/starter"), note)
    return nb


def test_drift_names_the_notebook_and_each_cell():
    nb = _tampered()
    problems = cells.drift(nb, EXERCISES["01_fgsm_mnist"], "notebooks/01_fgsm_mnist.ipynb")
    text = "\n".join(problems)
    i = _index(nb, "fgsm/check")
    assert f"notebooks/01_fgsm_mnist.ipynb: cell {i} (fgsm/check): the source differs" in text
    assert "+passed = advlib.exercises.check_fgsm(my_fgsm)" in text and "-advlib.exercises.check_fgsm" in text
    assert f"cell {i} (fgsm/check): the stored output is '✅ Correct: ...'" in text
    assert "'robust_accuracy/statement' is missing." in text
    starter = next(j for j, c in enumerate(nb["cells"]) if "def my_fgsm(" in "".join(c["source"]))
    assert f"'fgsm/starter' is missing (cell {starter} has its source but not the metadata" in text
    assert "'old_exercise/statement', which is no exercise cell of this notebook any more" in text
    assert "An author's note" not in text  # other cells are not the exercises' business


def test_write_repairs_drift_and_keeps_every_other_cell():
    nb = _tampered()
    before = copy.deepcopy(nb)
    fixed = cells.merge(nb, EXERCISES["01_fgsm_mnist"], "01_fgsm_mnist")
    assert nb == before  # merge returns a new notebook
    assert cells.drift(fixed, EXERCISES["01_fgsm_mnist"]) == []
    assert _others(fixed) == [c for c in _others(nb) if "def my_fgsm(" not in "".join(c["source"])]
    # the author's note stays where it was, after exercise 1; the re-created statement of exercise 2
    # goes right before that exercise's starter
    at = next(i for i, c in enumerate(fixed["cells"]) if c.get("id") == "note0001")
    assert [cells.key_of(c) for c in fixed["cells"][at - 1:at + 3]] == [
        "fgsm/check", None, "robust_accuracy/statement", "robust_accuracy/starter"]
    assert "stale000" not in {c.get("id") for c in fixed["cells"]}
    # the adopted starter and the rewritten check keep their ids; the re-created statement gets a new one
    original = _load("01_fgsm_mnist")
    for key in ("fgsm/starter", "fgsm/check"):
        assert fixed["cells"][_index(fixed, key)]["id"] == original["cells"][_index(original, key)]["id"]
    ids = [c["id"] for c in fixed["cells"]]
    assert len(set(ids)) == len(ids)
    # and the result is what the committed notebook holds, apart from the author's note and the new id
    fixed["cells"] = [c for c in fixed["cells"] if c.get("id") != "note0001"]
    fixed["cells"][_index(fixed, "robust_accuracy/statement")]["id"] = \
        original["cells"][_index(original, "robust_accuracy/statement")]["id"]
    assert cells.dumps(fixed) == cells.dumps(original)


def test_exercise_cells_in_the_wrong_order_are_reported_and_reordered():
    nb = copy.deepcopy(_load("00_setup"))
    a, b = _index(nb, "linf_projection/starter"), _index(nb, "linf_projection/check")
    nb["cells"][a], nb["cells"][b] = nb["cells"][b], nb["cells"][a]
    assert any("not in the order" in p for p in cells.drift(nb, EXERCISES["00_setup"]))
    assert cells.dumps(cells.merge(nb, EXERCISES["00_setup"])) == cells.dumps(_load("00_setup"))


def test_a_copied_exercise_cell_is_an_error_that_says_what_to_do():
    nb = copy.deepcopy(_load("00_setup"))
    i = _index(nb, "linf_distance/check")
    nb["cells"].insert(i + 1, copy.deepcopy(nb["cells"][i]))
    with pytest.raises(ValueError, match=rf"cells {i} and {i + 1} both carry .* Delete the copy"):
        cells.merge(nb, EXERCISES["00_setup"], "00_setup")
    assert "Delete the copy" in cells.drift(nb, EXERCISES["00_setup"], "00_setup")[0]


def _bare(*headings: str) -> dict:
    return {"cells": [{"cell_type": "markdown", "id": f"h{i}", "metadata": {}, "source": [h]}
                      for i, h in enumerate(headings)],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_a_notebook_without_exercises_gets_them_after_its_heading():
    nb = _bare("# A new notebook", "## Exercises", "## Summary")
    out = cells.merge(nb, EXERCISES["00_setup"])
    keys = [cells.key_of(c) for c in out["cells"]]
    assert keys == [None, None] + [c.key for c in cells.block(EXERCISES["00_setup"])] + [None]
    assert cells.drift(out, EXERCISES["00_setup"]) == []
    new = out["cells"][2:-1]
    assert all(c["id"] and c["id"] not in {"h0", "h1", "h2"} for c in new)
    assert all(c["execution_count"] is None for c in new if c["cell_type"] == "code")
    with pytest.raises(ValueError, match="no markdown cell '## Exercises'.*add that heading"):
        cells.merge(_bare("# A new notebook", "## Summary"), EXERCISES["00_setup"], "new.ipynb")


def test_a_new_exercise_in_an_executed_notebook_gets_execution_counts():
    """nbval compares a check cell's stored output only when the cell has an execution count (outputs without
    one are an "unrun reference cell" error): new code cells continue after the notebook's highest count, and
    writing again keeps them."""
    nb = copy.deepcopy(_load("01_fgsm_mnist"))
    highest = max(c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code" and c["execution_count"])
    for key in ("robust_accuracy/statement", "robust_accuracy/starter", "robust_accuracy/check"):
        del nb["cells"][_index(nb, key)]
    out = cells.merge(nb, EXERCISES["01_fgsm_mnist"])
    counts = [out["cells"][_index(out, k)]["execution_count"] for k in ("robust_accuracy/starter",
                                                                         "robust_accuracy/check")]
    assert counts == [highest + 1, highest + 2]
    assert cells.dumps(cells.merge(out, EXERCISES["01_fgsm_mnist"])) == cells.dumps(out)


def test_cli_verify_reports_drift_and_write_repairs_it(tmp_path, capsys):
    path = tmp_path / "01_fgsm_mnist.ipynb"
    path.write_text(cells.dumps(_tampered()), encoding="utf-8")
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: cell" in out and "(fgsm/check)" in out
    assert "python -m advlib.exercises write 01_fgsm_mnist" in out
    assert main(["write", str(path)]) == 0
    assert "exercise cells written" in capsys.readouterr().out
    assert main(["verify", str(path)]) == 0
    assert main(["write", str(path)]) == 0
    assert "already up to date" in capsys.readouterr().out


def test_cli_refuses_a_notebook_without_exercises(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["verify", "03_unknown"])
    assert e.value.code == 2
    assert "no exercises are defined for a notebook named '03_unknown'; give one of 00_setup" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["verify", str(tmp_path / "00_setup.ipynb")])
    assert "does not exist" in capsys.readouterr().err


def test_python_m_verify_passes_on_the_committed_notebooks():
    names = [] if len(EXISTING) == len(EXERCISES) else EXISTING  # none: every notebook, as `make` would run it
    r = subprocess.run([sys.executable, "-m", "advlib.exercises", "verify", *names], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("exercise cells match advlib.exercises") == len(EXISTING)
