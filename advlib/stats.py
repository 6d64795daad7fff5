"""How sure a measured accuracy is: confidence intervals and paired tests, as pure functions.

An accuracy measured on n test images is a binomial proportion: on 1,000 images a 90% accuracy
is only known to about ±1.9 points. :func:`wilson` gives the 95% interval (Wilson's score
interval, which stays inside [0, 1] and behaves at 0% and 100%, unlike the normal approximation);
:func:`mcnemar` asks whether two models evaluated on the *same* images differ by more than chance,
using only the images on which they disagree (exact binomial test).
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch
from scipy import stats as _st

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``correct`` successes out of ``n`` (95% by default)."""
    if int(n) != n or n <= 0:
        raise ValueError(f"an interval needs a whole number n >= 1 of images; got n={n}")
    if int(correct) != correct or not 0 <= correct <= n:
        raise ValueError(f"correct must be a whole number between 0 and n={n}; got {correct}")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def interval(accuracy: float, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of an accuracy (a fraction) measured on ``n`` images."""
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1]; got {accuracy}")
    return wilson(round(accuracy * n), n)


def half_width(accuracy: float, n: int) -> float:
    """Half the width of the 95% Wilson interval of ``accuracy`` on ``n`` images (a fraction)."""
    lo, hi = interval(accuracy, n)
    return (hi - lo) / 2


def mcnemar(correct_a: Union[Sequence[bool], torch.Tensor], correct_b: Union[Sequence[bool], torch.Tensor]) -> dict:
    """Exact McNemar test for two models scored on the same images (per-image correctness masks).

    Returns ``{"n", "a_only", "b_only", "p_value", "a_better", "significant"}``: ``a_only`` counts the
    images only A gets right, ``b_only`` those only B gets right; ``p_value`` is the two-sided exact
    binomial p-value of ``a_only`` out of ``a_only + b_only`` disagreements at 1/2; ``significant``
    means p < 0.05."""
    a = torch.as_tensor(correct_a, dtype=torch.bool).flatten()
    b = torch.as_tensor(correct_b, dtype=torch.bool).flatten()
    if a.shape != b.shape:
        raise ValueError(f"the two masks must score the same images; got {a.numel()} and {b.numel()} entries")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    p = mcnemar_p(a_only, b_only)
    return {"n": int(a.numel()), "a_only": a_only, "b_only": b_only, "p_value": p, "a_better": a_only > b_only,
            "significant": p < 0.05}


def mcnemar_p(a_only: int, b_only: int) -> float:
    """The two-sided exact McNemar p-value from the two counts of discordant images (``a_only`` right only for A,
    ``b_only`` right only for B): the binomial test of ``a_only`` out of ``a_only + b_only`` at 1/2."""
    if int(a_only) != a_only or int(b_only) != b_only or a_only < 0 or b_only < 0:
        raise ValueError(f"McNemar's counts must be whole numbers >= 0; got {a_only} and {b_only}")
    d = int(a_only) + int(b_only)
    return 1.0 if d == 0 else float(_st.binomtest(int(a_only), d, 0.5).pvalue)
