"""``benchmarks/notebook_costs.py``: a notebook's training and evaluation minutes summed from its runs' records,
the runs copied from another notebook apart, and a goal below the sum said to be out of reach."""
from __future__ import annotations

import json
import sys

from advlib import evaluate, paths

sys.path.insert(0, str(paths.REPO_ROOT / "benchmarks"))
import notebook_costs as nc  # noqa: E402


def _run(folder, name, seconds, evals=(), copied_from=None):
    d = folder / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"kind": "train", "train_seconds": seconds,
                                                **({"copied_from": copied_from} if copied_from else {})}))
    for i, s in enumerate(evals):
        (d / f"evaluation_{'last' if i == 0 else 'best'}.json").write_text(json.dumps(
            {"format": evaluate.STATE_FORMAT, "attacks": {"PGD": {"seconds": s / 2}, "AA": {"seconds": s / 2}}}))


def test_costs_sum_training_and_evaluation_and_set_copied_runs_apart(tmp_path):
    nb = tmp_path / "05_x"
    _run(nb, "sat", 600, [240], copied_from="runs/cpu/04_x/s_sat")
    _run(nb, "rslad", 540, [240, 180])
    (nb / "teacher_cache").mkdir()
    (nb / "evaluation_teacher.json").write_text(json.dumps({"format": evaluate.STATE_FORMAT,
                                                            "attacks": {"PGD": {"seconds": 60}}}))
    (nb / "rslad" / "evaluation_other.json").write_text("{not json")  # not a state: nothing
    _run(nb, "adaad", 1500, [300])  # an extra run, not in the notebook's last execution
    (nb / "metrics.json").write_text(json.dumps({"runs": {"SAT": {"folder": "sat"}, "RSLAD": {"folder": "rslad"}}}))
    c = nc.costs(nb)
    assert set(c["rows"]) == {"(notebook)", "sat", "rslad", "adaad"}
    assert c["rows"]["rslad"] == {"training": 9.0, "evaluation": 7.0, "copied_from": None, "in_run": True}
    assert not c["rows"]["adaad"]["in_run"]
    assert c["own"] == 9.0 + 7.0 + 1.0 and c["copied"] == 10.0 + 4.0
    text = nc.report(nb, goal=15)
    assert "| sat | 10.0 | 4.0 | runs/cpu/04_x/s_sat | yes |" in text
    adaad = next(line for line in text.splitlines() if line.startswith("| adaad |"))
    assert adaad.startswith("| adaad | 25.0 | 5.0 |") and adaad.endswith("| no: not a run of the notebook's last execution |")
    assert "Training and evaluation of its own runs: 17.0 min; of the runs copied from another notebook: 14.0 min" in text
    assert "Goal 15 min: below these parts alone by 2.0 min." in text
    assert "3.0 min left" in nc.report(nb, goal=20)


def test_a_missing_folder_says_what_to_run(tmp_path, capsys):
    assert nc.main([str(tmp_path / "nope")]) == 2
    assert "execute the notebook first" in capsys.readouterr().err
