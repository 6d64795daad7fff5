"""``benchmarks/distill_ablation.py``'s tables (issue 20): the goal is decided from the rows' numbers (means over
seeds against the seeds' standard deviation, McNemar per seed), a column measured on fewer images says how many,
and a row AutoAttack did not run on shows a dash, never a number from another row."""
from __future__ import annotations

import random
import sys

import pytest

from advlib import paths

sys.path.insert(0, str(paths.REPO_ROOT / "benchmarks"))
import distill_ablation as da  # noqa: E402


def row(variant: str, seed: int, apgd: "float | None", n: int = 100, n_aa: int = 50) -> dict:
    rng = random.Random(hash((variant, seed)) % 1000)

    def mask(acc: float, k: int) -> str:
        hits = round(acc * k)
        bits = ["1"] * hits + ["0"] * (k - hits)
        rng.shuffle(bits)
        return "".join(bits)

    test = {"clean": 0.6, "PGD-20 (step 2/255)": 0.3, "CW∞-20 (step 2/255)": 0.28, "n": n,
            "n_attack": {"clean": n, "PGD-20 (step 2/255)": n, "CW∞-20 (step 2/255)": n},
            "masks": {"Clean": mask(0.6, n), "PGD-20 (step 2/255)": mask(0.3, n), "CW∞-20 (step 2/255)": mask(0.28, n)}}
    if apgd is not None:
        test["APGD-CE+T"] = apgd
        test["n_attack"]["APGD-CE+T"] = n_aa
        test["masks"]["APGD-CE+T"] = mask(apgd, n_aa)
    return {"variant": variant, "seed": seed, "scale": 1.0, "minutes": 2.0, "test": test}


def rows(rslad: list[float], sat: list[float], ard: list[float]) -> list[dict]:
    out = []
    for s in range(3):
        out += [row("sat", s, sat[s]), row("rslad", s, rslad[s]), row("ard", s, ard[s]), row("ard_tau4", s, None)]
    return out


def test_goal_is_met_only_when_the_means_differ_by_more_than_the_seeds_spread():
    met = da.goal(rows(rslad=[0.40, 0.42, 0.44], sat=[0.30, 0.32, 0.34], ard=[0.20, 0.22, 0.24]))
    assert "**met**" in met and met.count("higher by more than it") == 2
    close = da.goal(rows(rslad=[0.34, 0.30, 0.38], sat=[0.32, 0.32, 0.34], ard=[0.20, 0.22, 0.24]))
    assert "**not met**" in close
    assert "Natural" not in close and "RSLAD, robust teacher − SAT (hard labels) under APGD-CE+T (first 50)" in close
    assert "means 34.00 vs 32.67, +1.33 points against a standard deviation over seeds of 4.00" in close
    assert close.count("seed ") >= 6  # a McNemar test per seed and pair


def test_columns_name_their_image_count_and_unattacked_rows_show_a_dash():
    table = da.summary(rows(rslad=[0.40, 0.42, 0.44], sat=[0.30, 0.32, 0.34], ard=[0.2, 0.2, 0.2]), [0, 1, 2])
    assert "APGD-CE+T (first 50)" in table and "PGD-20 (first" not in table
    tau4 = next(line for line in table.splitlines() if line.startswith("| ARD, τ = 4"))
    assert "—" in tau4
    sat = next(line for line in table.splitlines() if line.startswith("| SAT (hard labels)"))
    assert "32.00 ± 2.00" in sat and "30.0 / 32.0 / 34.0" in sat
    pairs = da.paired(rows(rslad=[0.40, 0.42, 0.44], sat=[0.30, 0.32, 0.34], ard=[0.2, 0.2, 0.2]))
    assert "(first 50)" in pairs and "+10.00" in pairs


def test_the_standard_autoattack_only_completes_images_apgd_ran_on(tmp_path):
    with pytest.raises(ValueError, match="--aa-check 300 is more than --aa 200"):
        da.test_eval(tmp_path / "missing.pt", None, n_aa=200, n_check=300)
