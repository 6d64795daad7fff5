"""Reference answers for the exercises of notebook 06_evaluating_robustness (plain PyTorch, no advlib)."""
import math

import torch


def _half_width(acc, n, z=1.96):
    """Half the width of the 95% Wilson interval of an accuracy measured on n images."""
    p = round(acc * n) / n
    return z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)


def weak_attacks(correct, settings):
    """Return the set of names of the multi-step attacks weaker than FGSM or than fewer steps of their own family."""
    acc = {name: mask.float().mean().item() for name, mask in correct.items()}
    n = len(next(iter(correct.values())))

    def weaker(a, b):  # a leaves more images correct than b, beyond both intervals and by more than a point
        return acc[a] - acc[b] > max(0.01, _half_width(acc[a], n) + _half_width(acc[b], n))

    weak = set()
    for name, (family, steps) in settings.items():
        if steps <= 1:
            continue  # a single step is a yardstick, not a suspect
        # the yardsticks: FGSM, and fewer steps of the same objective, start and step (never another family)
        yardsticks = [other for other, (fam, st) in settings.items() if fam == "fgsm" or (fam == family and st < steps)]
        if any(weaker(name, other) for other in yardsticks):
            weak.add(name)
    return weak


def mcnemar_test(correct_a, correct_b):
    """Return {"a_only": ..., "b_only": ..., "p_value": ...}: McNemar's exact two-sided test on two boolean masks."""
    a_only = int((correct_a & ~correct_b).sum())  # only the disagreements carry information
    b_only = int((~correct_a & correct_b).sum())
    d, k = a_only + b_only, min(a_only, b_only)
    # P(X <= k) for X ~ Binomial(d, 1/2), in exact integers (2.0 ** d would overflow for d > 1023)
    tail = sum(math.comb(d, i) for i in range(k + 1)) / 2 ** d
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}


def worst_case_accuracy(correct):
    """Return the fraction of images that every attack in `correct` left correct; ValueError if the masks differ in length."""
    lengths = {name: len(mask) for name, mask in correct.items()}
    if len(set(lengths.values())) > 1:  # different images: a per-image worst case would mix them
        raise ValueError(f"the attacks did not run on the same images: {lengths}")
    robust = torch.stack(list(correct.values())).all(dim=0)  # robust only if every attack failed on the image
    return robust.float().mean().item()
