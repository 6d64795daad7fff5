"""Confidence intervals and the paired test, against textbook values and scipy."""
from __future__ import annotations

import pytest
import torch
from scipy import stats as st

from advlib import stats


def test_wilson_matches_published_values():
    lo, hi = stats.wilson(900, 1000)
    assert lo == pytest.approx(0.8798, abs=1e-4) and hi == pytest.approx(0.9171, abs=1e-4)
    assert stats.wilson(0, 50)[0] == 0.0 and stats.wilson(0, 50)[1] == pytest.approx(0.0714, abs=1e-4)
    assert stats.wilson(50, 50)[1] == 1.0
    assert stats.half_width(0.9, 1000) == pytest.approx(0.0187, abs=2e-4)  # "±1.9 points on 1,000 images"
    assert stats.interval(0.9, 1000) == stats.wilson(900, 1000)


def test_wilson_covers_the_true_accuracy_about_95_percent_of_the_time():
    g = torch.Generator().manual_seed(0)
    p, n, trials = 0.87, 300, 2000
    counts = torch.binomial(torch.full((trials,), float(n)), torch.full((trials,), p), generator=g)
    covered = sum(lo <= p <= hi for lo, hi in (stats.wilson(int(k), n) for k in counts))
    assert 0.93 <= covered / trials <= 0.97


@pytest.mark.parametrize("bad", [(5, 0), (-1, 10), (11, 10), (2.5, 10)])
def test_wilson_refuses_impossible_counts(bad):
    with pytest.raises(ValueError):
        stats.wilson(*bad)
    with pytest.raises(ValueError, match="fraction"):
        stats.interval(90.0, 100)


def test_mcnemar_counts_disagreements_and_matches_the_binomial_test():
    a = torch.tensor([1] * 60 + [0] * 10 + [1] * 25 + [0] * 5, dtype=torch.bool)
    b = torch.tensor([1] * 60 + [1] * 10 + [0] * 25 + [0] * 5, dtype=torch.bool)
    r = stats.mcnemar(a, b)
    assert (r["a_only"], r["b_only"], r["n"]) == (25, 10, 100)
    assert r["p_value"] == pytest.approx(st.binomtest(25, 35, 0.5).pvalue)
    assert r["a_better"] and r["significant"]
    same = stats.mcnemar(a, a)
    assert same["p_value"] == 1.0 and not same["significant"]
    with pytest.raises(ValueError, match="same images"):
        stats.mcnemar(a, a[:-1])


def test_mcnemar_p_from_counts_is_the_masks_p_and_refuses_bad_counts():
    assert stats.mcnemar_p(25, 10) == pytest.approx(st.binomtest(25, 35, 0.5).pvalue)
    assert stats.mcnemar_p(0, 16) == pytest.approx(2 * 0.5 ** 16)
    assert stats.mcnemar_p(0, 0) == 1.0
    for bad in ((-1, 3), (2.5, 1)):
        with pytest.raises(ValueError, match="whole numbers"):
            stats.mcnemar_p(*bad)
