"""Exercises of notebook 06_evaluating_robustness: spot a weak attack, McNemar's test by hand, the per-image worst
case over the attacks.

All three take per-image correctness masks (one boolean per test image: is the model still right after the
attack?), as :func:`advlib.evaluate.evaluate` records them, built here with fixed counts, and compare the answer
with the library's: :func:`advlib.checks.weaker_than` (as ``advlib.evaluate`` applies it), :func:`advlib.stats.mcnemar`
and :func:`advlib.evaluate.worst_case`."""
from __future__ import annotations

import math
from typing import Optional

import torch
from scipy import stats as st

from .. import checks, evaluate, stats
from .cells import Exercise
from .harness import NotAttempted, StudentError, Watch, as_number, call, exercise

__all__ = ["check_weak_attacks", "check_mcnemar", "check_worst_case", "NOTEBOOK", "EXERCISES"]


def _masks(n: int, accuracies: dict[str, float], seed: int, spread: float = 0.15) -> dict[str, torch.Tensor]:
    """Correctness masks on n images with exactly round(acc·n) correct images each, correlated as real attacks' are:
    image k survives attack a when its robustness u_k plus a little noise of a's own ranks among the a's top."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g)
    out = {}
    for name, acc in accuracies.items():
        score = u + spread * torch.rand(n, generator=g)
        mask = torch.zeros(n, dtype=torch.bool)
        mask[score.argsort(descending=True)[:round(acc * n)]] = True
        out[name] = mask
    return out


def _near(a: float, b: float) -> bool:
    """Two accuracies (or counts) agree: float32 means and exact fractions differ in the eighth digit."""
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def _pct(a: float) -> str:
    return f"{100 * a:.1f}%"


# --------------------------------------------------------------------------- spotting a weak attack

_FGSM = ("fgsm", 1)
# (title, n, {attack: (accuracy, family, steps)}); a family: one objective, start and step size
_WEAK_CASES = [
    ("a natural (not robust) model, 500 images", 500,
     {"FGSM": (0.120, *_FGSM), "PGD-20": (0.004, "pgd-ce", 20), "PGD-KL-20": (0.410, "pgd-kl", 20)}),
    ("a SAT model, 1,000 images", 1000,
     {"FGSM": (0.520, *_FGSM), "PGD-10": (0.440, "pgd-ce", 10), "PGD-20": (0.435, "pgd-ce", 20),
      "PGD-50": (0.455, "pgd-ce", 50), "CW-20": (0.430, "pgd-cw", 20), "PGD-KL-20": (0.510, "pgd-kl", 20)}),
    ("a small evaluation, 100 images", 100,
     {"FGSM": (0.420, *_FGSM), "PGD-20": (0.560, "pgd-ce", 20)}),
    ("an ImageNet model on its 50,000 validation images", 50000,
     {"FGSM": (0.3000, *_FGSM), "PGD-20": (0.3095, "pgd-ce", 20), "PGD-100": (0.3300, "pgd-ce", 100)}),
    ("a TRADES model, 1,000 images", 1000,
     {"FGSM": (0.550, *_FGSM), "PGD-20": (0.480, "pgd-ce", 20), "PGD-KL-10": (0.500, "pgd-kl", 10),
      "PGD-KL-20": (0.580, "pgd-kl", 20)}),
]


def _weak_case(i: int) -> tuple[dict[str, torch.Tensor], dict[str, tuple[str, int]]]:
    _, n, runs = _WEAK_CASES[i]
    return (_masks(n, {k: v[0] for k, v in runs.items()}, seed=60 + i),
            {k: (fam, steps) for k, (_, fam, steps) in runs.items()})


def _weak(correct: dict, settings: dict, kind: str = "right") -> set[str]:
    """The attacks the rule flags (``kind`` "right"), or what a typical variant of it flags: "only_fgsm",
    "only_family", "no_noise" (any higher accuracy), "no_margin" (beyond the intervals, without the 1-point margin),
    "cross_family" (fewer steps of any family count too), "reversed" (attacks *stronger* than their yardstick)."""
    n = len(next(iter(correct.values())))
    acc = {k: v.float().mean().item() for k, v in correct.items()}

    def weaker(strong: str, weak: str) -> bool:
        a, b = (acc[weak], acc[strong]) if kind == "reversed" else (acc[strong], acc[weak])
        if kind == "no_noise":
            return a > b
        if kind == "no_margin":
            return a - b > stats.half_width(a, n) + stats.half_width(b, n)
        return checks.weaker_than(a, b, n).raised

    fgsm = [k for k, (fam, _) in settings.items() if fam == "fgsm"]
    out = set()
    for k, (fam, steps) in settings.items():
        if steps <= 1:
            continue
        if kind != "only_family" and any(weaker(k, f) for f in fgsm):
            out.add(k)
        if kind != "only_fgsm" and any(weaker(k, o) for o, (fam_o, steps_o) in settings.items()
                                       if steps_o < steps and fam_o != "fgsm"
                                       and (fam_o == fam or kind == "cross_family")):
            out.add(k)
    return out


_WEAK_MESSAGES = {
    "only_fgsm": ("You compare every attack with FGSM only. An attack must also beat fewer steps of *itself*: more "
                  "steps of the same objective, start and step can only find more. Where PGD-KL-20 leaves far more "
                  "images correct than PGD-KL-10, the 20-step run failed (here, a TRADES model's PGD-KL), even if it "
                  "still looks no weaker than FGSM. Hint: also compare each attack with every run of its family that "
                  "takes fewer steps."),
    "only_family": ("You compare attacks only within their family, never with FGSM. One FGSM step is the floor every "
                    "multi-step attack must reach: on the natural model here, PGD-KL-20, alone in its family, leaves "
                    "41% of the images correct where FGSM leaves 12%. Hint: compare every multi-step attack "
                    "with FGSM too."),
    "no_noise": ("You flag an attack whenever its accuracy is higher than its yardstick's, by however little. "
                 "Accuracies on n images are noisy (about ±3 points on 1,000 images, ±10 on 100): a difference "
                 "inside the noise says nothing. Hint: flag only differences larger than the sum of the two 95% "
                 "Wilson half-widths (`advlib.stats.half_width(acc, n)`), and than 1 point."),
    "no_margin": ("On 50,000 images the intervals are so narrow (±0.4 points) that a difference of less than a "
                  "point lies beyond them; the rule asks for more than 1 point too, the smallest difference worth a "
                  "flag. Hint: flag a difference larger than both the sum of the half-widths and 0.01."),
    "cross_family": ("You compare attacks with fewer steps of *other* families: a PGD-KL run with 20 steps is no "
                     "stronger by rule than a cross-entropy PGD with 10, because they maximise different objectives. "
                     "Only FGSM (the floor for every attack) and fewer steps of the same objective, start and step "
                     "are yardsticks. Hint: compare within a family only (the same family string)."),
    "reversed": ("You flag the attacks that are *stronger* than their yardstick (lower accuracy): that is what they "
                 "should be. A weak attack is one that leaves *more* images correct than FGSM or fewer steps of "
                 "itself."),
}


def _names(out, allowed) -> tuple[Optional[set], Optional[str]]:
    """The attack names of an answer given as a set, list or tuple of names (None and the reason otherwise)."""
    if isinstance(out, str) or not isinstance(out, (set, frozenset, list, tuple)):
        return None, (f"Your function returned {'None' if out is None else 'a ' + type(out).__name__}; return the "
                      f"set of names of the weak attacks, e.g. {{\"PGD-KL-20\"}} (an empty set if there is none).")
    unknown = [o for o in out if o not in allowed]
    if unknown:
        return None, (f"{unknown[0]!r} is not one of the attacks of this evaluation ({', '.join(allowed)}); return "
                      f"their names, the keys of `correct`.")
    return set(out), None


def _comparisons(correct: dict, settings: dict, name: str) -> str:
    """The numbers behind the verdict on one attack."""
    n = len(correct[name])
    acc = {k: v.float().mean().item() for k, v in correct.items()}
    fam, steps = settings[name]
    yard = [k for k, (f, s) in settings.items() if f == "fgsm" or (f == fam and s < steps)]
    parts = []
    for k in yard:
        noise = stats.half_width(acc[name], n) + stats.half_width(acc[k], n)
        parts.append(f"{name} {_pct(acc[name])} against {k} {_pct(acc[k])}: a gap of "
                     f"{100 * (acc[name] - acc[k]):+.1f} points, the threshold {100 * max(noise, 0.01):.1f}")
    return "; ".join(parts) if parts else f"{name} has no yardstick (no FGSM, no fewer steps of its family)"


@exercise("an attack is weak when it leaves more images correct than FGSM, or than fewer steps of its own family, "
          "by more than the two accuracies' 95% intervals and 1 point, as advlib.checks.weaker_than judges in every "
          "evaluation.")
def check_weak_attacks(fn):
    """``fn(correct, settings)`` must return the set of the multi-step attacks that :func:`advlib.checks.weaker_than`
    flags against FGSM or against a run of their family with fewer steps, on every fixed evaluation."""
    got, right = [], []
    for i in range(len(_WEAK_CASES)):
        correct, settings = _weak_case(i)
        arg = {k: v.clone() for k, v in correct.items()}
        watch = Watch(None, **{f"correct[{k!r}]": v for k, v in arg.items()})
        out = call(fn, arg, dict(settings))
        names, issue = _names(out, list(settings))
        if issue:
            return [issue], []
        got.append(names)
        right.append(_weak(correct, settings))
        issues = watch.input_issues()
        if issues:
            return issues, []
    if got == right:
        return [], []
    cases = [_weak_case(i) for i in range(len(_WEAK_CASES))]
    for kind, msg in _WEAK_MESSAGES.items():
        if got == [_weak(c, s, kind) for c, s in cases]:
            return [msg], []
    k = next(i for i, (a, b) in enumerate(zip(got, right)) if a != b)
    correct, settings = cases[k]
    title = _WEAK_CASES[k][0]
    extra, missed = sorted(got[k] - right[k]), sorted(right[k] - got[k])
    if any(settings[e][1] <= 1 for e in extra):
        return [f"You flag {', '.join(e for e in extra if settings[e][1] <= 1)} ({title}): a single-step attack is "
                f"the yardstick, not a suspect; the rule is about multi-step attacks (steps > 1)."], []
    problems = [f"You flag {e} ({title}), which is not weak: {_comparisons(correct, settings, e)}." for e in extra]
    problems += [f"You miss {m} ({title}), which is weak: {_comparisons(correct, settings, m)}." for m in missed]
    return problems, []


# --------------------------------------------------------------------------- McNemar's test by hand

# (title, both right, only A right, only B right, both wrong): A and B on the same images
_MCNEMAR_CASES = [
    ("two models on 500 images", 180, 30, 12, 278),
    ("7 disagreements against 1, 300 images", 120, 1, 7, 172),
    ("as many disagreements each way, 200 images", 80, 9, 9, 102),
    ("two robust models on the 10,000 CIFAR-10 test images", 4000, 520, 580, 4900),
    ("the same model twice, 100 images", 45, 0, 0, 55),
]


def _mcnemar_case(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    _, both, a_only, b_only, neither = _MCNEMAR_CASES[i]
    a = torch.tensor([True] * both + [True] * a_only + [False] * b_only + [False] * neither)
    b = torch.tensor([True] * both + [False] * a_only + [True] * b_only + [False] * neither)
    perm = torch.randperm(len(a), generator=torch.Generator().manual_seed(70 + i))
    return a[perm], b[perm]


def _p_variants(a_only: int, b_only: int, n: int, acc_a: float, acc_b: float) -> list[tuple[float, str]]:
    """(the p-value of a typical mistake, its diagnosis)."""
    d, k = a_only + b_only, min(a_only, b_only)
    cdf = lambda j, m=d: float(st.binom.cdf(j, m, 0.5)) if m else 1.0  # noqa: E731
    chi = lambda stat: float(st.chi2.sf(stat, 1))  # noqa: E731
    pooled = (acc_a + acc_b) / 2
    z_unpaired = (acc_a - acc_b) / math.sqrt(2 * pooled * (1 - pooled) / n) if 0 < pooled < 1 else 0.0
    out = [
        (cdf(k), "That is the one-sided p-value P(X ≤ k) of the smaller count; McNemar's test here is two-sided (a "
                 "difference either way counts). Hint: double it, and cap the result at 1."),
        (2 * cdf(k), "Your p-value is above 1: with as many disagreements each way, twice P(X ≤ k) exceeds 1 (both tails "
                     "overlap at the centre). Hint: `min(1.0, 2 * P(X ≤ k))`."),
        (min(1.0, 2 * cdf(k - 1)) if k > 0 else 0.0,
         "Your tail leaves out the observed count: P(X < k) for the smaller count (or P(X > k) = 1 − P(X ≤ k) for "
         "the larger one, the same number by symmetry). The p-value is the probability of a result *at least as* "
         "extreme as the observed one. Hint: P(X ≤ k) sums the binomial probabilities for i = 0, ..., k."),
        (min(1.0, 2 * cdf(k, n)), f"You used all {n} images as the number of trials; only the d = {d} images on which "
                                  f"the two disagree carry information (on the others both are right, or both wrong). "
                                  f"Hint: X ~ Binomial(d, 1/2), d = a_only + b_only."),
        (min(1.0, 2 * (cdf(k) - 0.5 * float(st.binom.pmf(k, d, 0.5)))) if d else 1.0,
         "That is the mid-p value (half the probability of the observed count); the exact test counts it in full. "
         "Hint: 2 · P(X ≤ k), capped at 1."),
    ]
    if d:
        out += [
            (chi((abs(a_only - b_only) - 1) ** 2 / d), "That is the chi-square approximation of McNemar's test (with "
             "continuity correction); the exercise asks for the exact binomial test, which stays right with few "
             "disagreements. Hint: 2 · P(X ≤ k) for X ~ Binomial(d, 1/2), capped at 1."),
            (chi((a_only - b_only) ** 2 / d), "That is the chi-square approximation of McNemar's test (without "
             "continuity correction); the exercise asks for the exact binomial test. Hint: 2 · P(X ≤ k) for "
             "X ~ Binomial(d, 1/2), capped at 1."),
        ]
    out.append((2 * float(st.norm.sf(abs(z_unpaired))), "You compared the two accuracies as if they had been measured on "
                "different images (a two-proportion z-test). On the same images the pairs that agree cancel out, and "
                "only the disagreements count: that is what makes McNemar's test far more sensitive. Hint: count the "
                "images only A gets right and those only B gets right."))
    return out


def _close_p(v: float, ref: float) -> bool:
    return abs(v - ref) <= 1e-6 * max(abs(ref), 1e-12) + 1e-12


@exercise("McNemar's exact test as advlib.stats.mcnemar computes it: the images only A and only B get right, and "
          "the two-sided binomial p-value of the smaller count out of the d disagreements, capped at 1.")
def check_mcnemar(fn):
    """``fn(correct_a, correct_b)`` must return ``{"a_only", "b_only", "p_value"}`` equal to
    :func:`advlib.stats.mcnemar`'s on every fixed pair of masks (p within a relative 1e-6)."""
    for i, (title, *_rest) in enumerate(_MCNEMAR_CASES):
        a, b = _mcnemar_case(i)
        ref = stats.mcnemar(a, b)
        watch = Watch(None, correct_a=(a_in := a.clone()), correct_b=(b_in := b.clone()))
        out = call(fn, a_in, b_in, hints=(
            ("division by zero", "when the two masks never disagree (d = 0) there is nothing to test: the p-value "
             "is 1."),
            ("Numerical result out of range", "2.0 ** d overflows a float for d > 1023: keep the binomial sum in "
             "Python integers (`math.comb(d, i)`, and `2 ** d` without the `.0`) and divide once at the end."),))
        issues = watch.input_issues()
        if not isinstance(out, dict) or set(out) != {"a_only", "b_only", "p_value"}:
            what = "None" if out is None else (f"a dict with the keys {sorted(map(str, out))}" if isinstance(out, dict)
                                               else f"a {type(out).__name__}")
            return [f"Your function returned {what}; return a dict with exactly the keys \"a_only\", \"b_only\" and "
                    f"\"p_value\"."] + issues, []
        vals = {k: as_number(v) for k, v in out.items()}
        bad = [k for k, v in vals.items() if v is None]
        if bad:
            return [f"Your \"{bad[0]}\" is {out[bad[0]]!r}; each value must be one number."] + issues, []
        counts = (vals["a_only"], vals["b_only"])
        if counts != (ref["a_only"], ref["b_only"]):
            return [_counts_issue(counts, ref, a, b, title)] + issues, []
        v = vals["p_value"]
        if not _close_p(v, ref["p_value"]):
            n, acc_a, acc_b = len(a), a.float().mean().item(), b.float().mean().item()
            msg = next((m for val, m in _p_variants(ref["a_only"], ref["b_only"], n, acc_a, acc_b)
                        if _close_p(v, val)), None)
            if msg is None:
                d, k = ref["a_only"] + ref["b_only"], min(ref["a_only"], ref["b_only"])
                msg = (f"Your p-value is {v:.6g} where it is {ref['p_value']:.6g} ({title}: a_only = {ref['a_only']}, "
                       f"b_only = {ref['b_only']}, d = {d}). Hint: p = min(1, 2 · P(X ≤ {k})) for X ~ Binomial({d}, "
                       f"1/2), P(X ≤ k) = Σ_(i=0..k) C(d, i) / 2^d" + (" (for large d, floats underflow: keep the sum "
                       "in Python integers, `math.comb`, and divide once at the end)." if v == 0 or d > 1000 else "."))
            return [f"{msg} ({title})"] + issues, []
        if issues:
            return issues, []
    _, both, a_only, b_only, neither = _MCNEMAR_CASES[0]
    n = both + a_only + b_only + neither
    acc_a, acc_b = (both + a_only) / n, (both + b_only) / n
    return [], [f"on the same images McNemar's test sees differences that the two accuracies' intervals cannot: in "
                f"the first pair, {_pct(acc_a)} against {_pct(acc_b)} on {n} images, intervals of about "
                f"±{100 * stats.half_width(acc_a, n):.0f} points that overlap, and yet p = "
                f"{stats.mcnemar(*_mcnemar_case(0))['p_value']:.2g}: the {a_only + b_only} disagreements decide."]


def _counts_issue(counts, ref, a, b, title) -> str:
    got_a, got_b = counts
    if (got_a, got_b) == (ref["b_only"], ref["a_only"]):
        return (f"Your counts are swapped ({title}): a_only counts the images A gets right and B gets wrong "
                f"(`correct_a & ~correct_b`), b_only the reverse.")
    if (got_a, got_b) == (int(a.sum()), int(b.sum())):
        return (f"Your a_only and b_only are the numbers of images each model gets right ({title}); McNemar's test "
                f"counts the *disagreements*: the images only A gets right (`correct_a & ~correct_b`) and those only "
                f"B gets right.")
    both = int((a & b).sum())
    if both in counts:
        return (f"One of your counts, {both}, is the number of images both models get right ({title}): those pairs "
                f"agree and carry no information about which model is better. Hint: a_only = `(correct_a & "
                f"~correct_b).sum()`, b_only the reverse.")
    return (f"Your counts are a_only = {got_a:g}, b_only = {got_b:g}; they are {ref['a_only']} and {ref['b_only']} "
            f"({title}). Hint: a_only = `(correct_a & ~correct_b).sum()` (A right, B wrong), b_only = "
            f"`(~correct_a & correct_b).sum()`, as Python ints (`.item()`).")


# --------------------------------------------------------------------------- which column to trust


# (title, n, {attack: accuracy}, attacks run on fewer images: {attack: n})
_WORST_CASES = [
    ("a SAT model, 500 images", 500, {"FGSM": 0.600, "PGD-20": 0.452, "CW-20": 0.438, "APGD-CE+T": 0.426}, {}),
    ("two attacks that catch different images, 1,000 images", 1000, {"PGD-20": 0.480, "Square": 0.470}, {}),
    ("a table whose AutoAttack ran on the first 200 images only", 1000,
     {"FGSM": 0.560, "PGD-20": 0.440, "CW-20": 0.430, "AA": 0.400}, {"AA": 200}),
]


def _worst_case(i: int) -> dict[str, torch.Tensor]:
    _, n, accs, fewer = _WORST_CASES[i]
    masks = _masks(n, accs, seed=80 + i, spread=1.0 if i == 1 else 0.15)
    return {k: m[:fewer.get(k, n)] for k, m in masks.items()}


def _call_refusing(fn, correct) -> tuple[bool, object]:
    """(whether fn raised ValueError, its result otherwise); its other errors become a verdict."""
    try:
        return False, fn(correct)
    except ValueError:
        return True, None
    except NotImplementedError as e:
        raise NotAttempted() from e
    except Exception:  # noqa: BLE001 - call() turns it into the verdict, with its hint
        try:
            call(fn, correct)
        except StudentError as err:
            raise StudentError(f"{err} Hint: with masks of different lengths, check the lengths yourself first and "
                               f"raise a ValueError that says the attacks did not run on the same images.") from None
        raise


@exercise("the per-image worst case over the attacks (an image counts only if every attack left it correct), as "
          "advlib.evaluate.worst_case computes it, and a refusal to mix attacks run on different images.")
def check_worst_case(fn):
    """``fn(correct)`` must return the accuracy under the per-image worst case over the masks of ``correct`` (all of
    one length), as :func:`advlib.evaluate.worst_case`, and raise ``ValueError`` when the masks differ in length."""
    for i, (title, n, accs, fewer) in enumerate(_WORST_CASES):
        correct = _worst_case(i)
        arg = {k: v.clone() for k, v in correct.items()}
        watch = Watch(None, **{f"correct[{k!r}]": v for k, v in arg.items()})
        if fewer:
            refused, out = _call_refusing(fn, arg)
            if not refused:
                return [_mixed_issue(out, correct, title)] + watch.input_issues(), []
            continue
        out = call(fn, arg)
        ref = evaluate.worst_case(correct, {k: len(v) for k, v in correct.items()})["accuracy"]
        v = as_number(out)
        if v is None:
            return [f"Your function returned {'None' if out is None else 'a ' + type(out).__name__}; return the "
                    f"worst-case accuracy as one number, a fraction in [0, 1]."] + watch.input_issues(), []
        if not _near(v, ref):
            return [_worst_issue(v, ref, correct, title)] + watch.input_issues(), []
        issues = watch.input_issues()
        if issues:
            return issues, []
    title, _, accs, _ = _WORST_CASES[0]
    ref = evaluate.worst_case(_worst_case(0), {k: 500 for k in accs})["accuracy"]
    return [], [f"{title}: the strongest single column is {_pct(min(accs.values()))}, the worst case over the four "
                f"attacks {_pct(ref)}: each attack breaks some images the others miss, so a table's lowest column "
                f"still overstates the robustness; the worst case is the column to trust (and it is only as good as "
                f"the strongest attacks in it)."]


def _worst_issue(v: float, ref: float, correct: dict, title: str) -> str:
    acc = {k: m.float().mean().item() for k, m in correct.items()}
    stack = torch.stack(list(correct.values()))
    n = stack.shape[1]
    variants = [
        (min(acc.values()), f"That is the lowest single column ({_pct(min(acc.values()))}), the strongest attack alone. "
                            f"Each attack breaks some images the others miss; an image counts as robust only if "
                            f"*every* attack left it correct, so the worst case is lower ({_pct(ref)}). Hint: combine "
                            f"the masks image by image (`torch.stack(...).all(dim=0)`), then average."),
        (stack.any(0).float().mean().item(), "You counted an image as robust when *any* attack left it correct: the "
                                             "attacker would pick the attack that works on each image. Hint: every "
                                             "attack must have failed, `.all(dim=0)`, not `.any(dim=0)`."),
        (sum(acc.values()) / len(acc), "That is the average of the columns; the worst case is per image: robust only "
                                       "if every attack failed on it. Hint: `torch.stack(...).all(dim=0)`, then the "
                                       "mean."),
        (100 * ref, "That is the worst case in percent; return a fraction in [0, 1]."),
        (ref * n, f"That is the number of images robust to every attack; return the fraction (divide by {n})."),
        (1 - ref, "That is the error rate under the worst case, one minus the accuracy."),
    ]
    msg = next((m for val, m in variants if _near(v, val)), None)
    return msg or (f"Your worst-case accuracy is {v:.6g}; it is {ref:.6g} ({title}). Hint: an image counts as robust "
                   f"only if every attack left it correct: `torch.stack(list(correct.values())).all(dim=0)`, then the "
                   f"fraction of True.")


def _mixed_issue(out, correct: dict, title: str) -> str:
    lengths = {k: len(m) for k, m in correct.items()}
    m = min(lengths.values())
    v = as_number(out)
    common = torch.stack([c[:m] for c in correct.values()]).all(0).float().mean().item()
    longest = max(lengths.values())
    inside = [c for k, c in correct.items() if lengths[k] == longest]
    library = torch.stack(inside).all(0).float().mean().item()
    said = "a number" if v is None else f"{v:.4g}"
    base = (f"Your function returned {said} for masks of different lengths ({title}: "
            f"{', '.join(f'{k} on {n_}' for k, n_ in lengths.items())} images). ")
    if v is not None and _near(v, common):
        return base + (f"You cut every mask to the first {m} images. Whether those are the same images is not in the "
                       f"masks: a mask is one boolean per image, and nothing says which images. One set of images per "
                       f"comparison: raise a ValueError and let the caller rerun the attacks on common images.")
    if v is not None and _near(v, library):
        return base + ("You left out the attacks run on fewer images, as advlib.evaluate.worst_case does; but it also "
                       "names them (\"left_out\"), so that the table says what its worst case covers, and a function "
                       "that returns one number cannot. Hint: raise a ValueError instead.")
    return base + ("A worst case over masks of different lengths mixes different sets of images. Hint: check that "
                   "all masks have the same length and raise a ValueError otherwise.")


# --------------------------------------------------------------------------- the notebook's exercise cells

NOTEBOOK = "06_evaluating_robustness"
EXERCISES = (
    Exercise(check_weak_attacks, "weak_attacks", statement=r"""
### Exercise 1: spot a weak attack

An attack can only *find* adversarial examples, so a stronger attack leaves fewer images correct. Two yardsticks follow for every multi-step attack, on the same images: it must not leave more images correct than **one FGSM step**, nor than **fewer steps of its own family** (the same objective, start and step size, only fewer steps). When it does, beyond chance, the attack is failing, not the model resisting (as PGD-KL does on the Natural student in section 2). "Beyond chance" is the rule of `advlib.checks.weaker_than`, which every evaluation applies: attack A is weaker than its yardstick B, both measured on the same $n$ images, when

$$\mathrm{acc}_A - \mathrm{acc}_B > \max\big(0.01,\ h(\mathrm{acc}_A, n) + h(\mathrm{acc}_B, n)\big),$$

with $h$ the half-width of the 95% Wilson interval (`advlib.stats.half_width(acc, n)`).

Write `weak_attacks(correct, settings)` that returns the set of names of the weak attacks. `correct[name]` is the attack's boolean mask over the images (True: still correct), all masks on the same images; `settings[name]` is `(family, steps)`, e.g. `("fgsm", 1)`, `("pgd-ce", 20)`, `("pgd-kl", 10)`. Single-step attacks are yardsticks, never suspects.
""", starter=r'''
from advlib import stats

def weak_attacks(correct, settings):
    """Return the set of names of the multi-step attacks weaker than FGSM or than fewer steps of their own family."""
    # Your code here: each attack's accuracy; for each multi-step attack, its yardsticks (FGSM, and the
    # runs of its family with fewer steps); flag it when it is above one of them beyond the rule's threshold.
    raise NotImplementedError
'''),
    Exercise(check_mcnemar, "mcnemar_test", statement=r"""
### Exercise 2: McNemar's test by hand

Two models (or two checkpoints) evaluated on the **same** images: is one really better? The images on which both are right, or both wrong, say nothing about which is better; only the disagreements do. Let $a$ count the images only A gets right, $b$ those only B gets right, and $d = a + b$. If the two were equally good, each disagreement would go either way with probability 1/2, so the smaller count $k = \min(a, b)$ would follow $X \sim \mathrm{Binomial}(d, 1/2)$. McNemar's exact test gives the two-sided p-value

$$p = \min\Big(1,\ 2\,P(X \le k)\Big) = \min\Big(1,\ 2 \sum_{i=0}^{k} \binom{d}{i}\, 2^{-d}\Big) \qquad (p = 1 \text{ when } d = 0).$$

Write `mcnemar_test(correct_a, correct_b)` that takes the two boolean masks and returns `{"a_only": a, "b_only": b, "p_value": p}`, as `advlib.stats.mcnemar` does.

*Hints.* `correct_a & ~correct_b` marks the images only A gets right. `math.comb(d, i)` is exact in Python integers at any size; on the 10,000 CIFAR-10 test images $d$ can exceed 1,000, where `2.0 ** d` overflows a float: divide once, at the end.
""", starter=r'''
import math

def mcnemar_test(correct_a, correct_b):
    """Return {"a_only": ..., "b_only": ..., "p_value": ...}: McNemar's exact two-sided test on two boolean masks."""
    # Your code here: the two counts of disagreements; the binomial tail of the smaller one; doubled, capped at 1.
    raise NotImplementedError
'''),
    Exercise(check_worst_case, "worst_case_accuracy", statement=r"""
### Exercise 3: which column to trust

A table of attacks gives one accuracy per attack. The number to report is the **per-image worst case** over them: an image counts as robust only if *every* attack left it correct, since an attacker would use, on each image, whichever attack works there. It is never higher than the lowest column, and usually lower:

$$\mathrm{acc}_{\text{worst}} = \frac{1}{n}\sum_{k=1}^{n} \mathbb{1}\big[\text{every attack left image } k \text{ correct}\big] \;\le\; \min_{a}\, \mathrm{acc}_a .$$

Write `worst_case_accuracy(correct)` that takes a dict of boolean masks, one per attack (True: the image is still correct), and returns the worst-case accuracy as a fraction. A per-image worst case makes sense only on one set of images: if the masks do not all have the same length (say AutoAttack ran on the first 200 images only), **raise a `ValueError`** saying so, rather than return a number that mixes different images.

*Hint.* `torch.stack(list_of_masks)` needs masks of one length; `.all(dim=0)` combines them image by image.
""", starter=r'''
import torch

def worst_case_accuracy(correct):
    """Return the fraction of images that every attack in `correct` left correct; ValueError if the masks differ in length."""
    # Your code here.
    raise NotImplementedError
'''),
)
