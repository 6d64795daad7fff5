"""Exercises of notebook 03_pgd_training_cifar10: SAT's inner maximisation (PGD with a uniform random start),
choosing between the best and the last checkpoint.

The attack is checked on the tiny fixed network of :mod:`.harness` (MNIST-sized inputs: an attack does not care
about the data set), with the random numbers of its start given as an argument so that the check is
deterministic; :func:`pgd_trajectory` is the reference, the loop of :func:`advlib.attacks.pgd` from a given start
(``tests/test_exercises.py`` checks that the two agree). The checkpoint exercise asks for a decision on fixed
training histories, as the engine records them."""
from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
import torch.nn as nn

from .. import attacks, stats
from .cells import Exercise
from .harness import (PROJECT_HINT, TOL, Watch, as_number, attack_output, call, exercise, feasibility_issues,
                      fixed_model, images, labels, on_batchnorm_model, reliable, same)

__all__ = ["check_pgd_attack", "check_choose_checkpoint", "NOTEBOOK", "EXERCISES"]


# --------------------------------------------------------------------------- multi-step attacks from a given start


def pgd_trajectory(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
                   start: torch.Tensor, objective: Union[str, Callable] = "ce", *, proj: str = "both",
                   step: str = "sign", direction: float = 1.0, grad_at: str = "iterate"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` PGD steps from ``start`` as :func:`advlib.attacks.pgd` takes them (evaluation mode, the gradient
    of the summed ``objective``, :func:`advlib.attacks.project`), or with one deviation, for the diagnoses:
    ``proj`` "both" (ball ∩ [0,1]), "ball", "box" or "none"; ``step`` "sign", "raw" (the gradient itself) or
    "raw_mean" (that of the batch-mean loss); ``direction`` -1 descends; ``grad_at`` "clean" takes every gradient
    at x.

    Returns (the last iterate, the pixels whose gradient sign was reliable at every step: only there can two
    implementations that round differently be compared exactly)."""
    mask = torch.ones_like(x, dtype=torch.bool)
    x_adv = start.detach().clone()
    with attacks.model_mode(model, "eval"), attacks.frozen(model):
        for _ in range(steps):
            g, _, _ = attacks.input_gradient(model, x if grad_at == "clean" else x_adv, y, objective)
            mask &= reliable(g)
            move = {"sign": g.sign(), "raw": g, "raw_mean": g / len(x)}[step]
            x_adv = x_adv + direction * alpha * move
            if proj in ("both", "ball"):
                x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
            if proj in ("both", "box"):
                x_adv = x_adv.clamp(0, 1)
    return x_adv, mask


def matches(out: torch.Tensor, variant: tuple[torch.Tensor, torch.Tensor]) -> bool:
    """``out`` equals a trajectory's last iterate wherever that trajectory's gradient signs were reliable."""
    ref, mask = variant
    return same(out, ref, mask)


def first_match(out: torch.Tensor, variants: list[tuple[Callable[[], tuple], str]]) -> Optional[str]:
    """The message of the first variant (computed lazily, in order) whose result ``out`` matches."""
    for compute, msg in variants:
        if matches(out, compute()):
            return msg
    return None


def attack_fallback(out: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, x: torch.Tensor, eps: float,
                    formula: str) -> list[str]:
    """What to say about a multi-step attack's result that matches none of the diagnosed mistakes."""
    issues = feasibility_issues(out, x, eps, "x_adv", PROJECT_HINT)
    if not issues:
        bad = ((out - ref).abs() > TOL) & mask
        issues.append(f"Your x_adv differs from the expected one on {int(bad.sum())} of {bad.numel()} pixels (largest "
                      f"difference {(out - ref).abs().max().item():.3g}). Hint: {formula}")
    return issues


def loop_mistakes(run: Callable, ref: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, eps: float, alpha: float,
                  steps: int) -> list[tuple[Callable[[], tuple], str]]:
    """The mistakes of a PGD loop's bookkeeping that every signed-gradient attack exercise diagnoses alike (a step
    too few or too many, ε as the step, the perturbation returned), as ``first_match`` variants; ``run(**kw)``
    computes the attack with one thing changed."""
    loop = "`for _ in range(steps)`, one gradient step each."
    return [
        (run(steps_=steps - 1), f"Your attack takes {steps - 1} steps instead of `steps` = {steps}. Hint: {loop}"),
        (run(steps_=steps + 1), f"Your attack takes {steps + 1} steps instead of `steps` = {steps}. Hint: {loop}"),
        (run(alpha_=eps), f"Your steps have the size ε = {eps:.4g}, not the step size α = {alpha:.4g}. Hint: move by "
         f"`alpha` along the sign of the gradient; ε only bounds the ball."),
        (lambda: (ref - x, mask), "You returned the perturbation δ = x_adv − x; return the adversarial images "
         "x_adv = x + δ."),
    ]


def nondeterminism_issue(fn: Callable, out: torch.Tensor, args: tuple, what: str) -> Optional[str]:
    """A second call with the same arguments (fresh copies, another random state) must give the same result:
    the randomness of the start is ``what``, an argument."""
    torch.manual_seed(12345)  # inside the check's fork_rng: another random state than the first call's
    again = call(fn, fixed_model(), *(a.clone() if torch.is_tensor(a) else a for a in args))
    if torch.is_tensor(again) and again.shape == out.shape and (again.detach() - out).abs().max() > TOL:
        return (f"Your function returns a different x_adv on a second call with the same arguments: it draws random "
                f"numbers of its own. Hint: the random start comes from the argument `{what}`, drawn for you, so that "
                f"the result is reproducible; do not call `torch.rand`/`torch.randn`/`uniform_` in the function.")
    return None


# --------------------------------------------------------------------------- SAT's inner maximisation


def _pgd_cases():
    """(x, y, eps, alpha, steps, noise): the course's CIFAR-10 budget with SAT's training attack (10 steps of
    2/255), and a larger budget with fewer, larger steps."""
    x, y = images(4, seed=31), labels(4, seed=31)
    g = torch.Generator().manual_seed(32)
    return [(x, y, eps, alpha, steps, torch.rand(x.shape, generator=g) * 2 - 1)
            for eps, alpha, steps in ((8 / 255, 2 / 255, 10), (0.1, 0.04, 4))]


def uniform_start(x: torch.Tensor, eps: float, noise: torch.Tensor) -> torch.Tensor:
    """SAT's start: x + ε·noise (noise uniform in [-1, 1]), projected onto the ball ∩ [0,1]."""
    return attacks.project(x + eps * noise, x, eps)


_PGD_FORMULA = ("start at Π(x + ε·noise); then `steps` times x_adv ← Π(x_adv + α·sign(∇ CE at x_adv)), Π = clip to "
                "[x - ε, x + ε], then to [0, 1]; the gradient in evaluation mode.")


def _pgd_diagnosis(fn, out, x, y, eps, alpha, steps, noise, ref, mask) -> list[str]:
    start = uniform_start(x, eps, noise)
    model = fixed_model()

    def run(start_=start, eps_=eps, alpha_=alpha, steps_=steps, **kw):
        return lambda: pgd_trajectory(model, x, y, eps_, alpha_, steps_, start_, **kw)

    moved = (out - x).abs().max().item()
    variants = [
        (run(start_=x.clone()), "Your attack starts at the clean x: SAT's attack starts at a random point of the "
         "ε-ball, x + ε·noise (projected onto [0,1]), so that the training examples are not always those of the "
         "same path from x (Madry et al. 2018). Hint: scale `noise` by ε and add it to x before the first step."),
        (run(start_=attacks.project(x + noise, x, eps)), "Your random start is `noise` itself, not scaled by ε: "
         "noise is uniform in [-1, 1], so x + noise leaves the ball almost everywhere and the projection puts the "
         "start on its corners. Hint: the start is x + ε·noise."),
        (run(start_=attacks.project(x + alpha * noise, x, eps)), "Your random start has the size of a step, "
         "x + α·noise; SAT's start is uniform in the whole ε-ball, x + ε·noise. Hint: scale `noise` by ε."),
        (run(start_=x + eps * noise), "Your random start x + ε·noise is not clamped to [0,1]: near black and white "
         "pixels it leaves the image range, and your first gradient is taken at an image that cannot exist. Hint: "
         "project the start like every iterate, onto [x - ε, x + ε] and [0, 1]."),
        (run(proj="box"), f"Your steps are never projected onto the ε-ball around x, only onto [0,1], so the "
         f"iterates drift out of the ball (max |x_adv - x| = {moved:.3g} > ε = {eps:.4g}). Hint: after every step, "
         f"{PROJECT_HINT}"),
        (run(proj="ball"), "Your iterates are projected onto the ε-ball but not onto [0,1]: x_adv has values outside "
         "the image range. Hint: after the clip to [x - ε, x + ε], clamp to [0, 1] too (`torch.clamp`)."),
        (run(start_=x + eps * noise, proj="ball"), "Neither your start nor your steps are clamped to [0,1]: x_adv has "
         "values outside the image range. Hint: project onto [x - ε, x + ε] *and* [0, 1], the start included."),
        (run(start_=x + eps * noise, proj="none"), f"Your steps are not projected at all: x_adv leaves the ε-ball "
         f"(max |x_adv - x| = {moved:.3g} > ε = {eps:.4g}) and [0,1]. Hint: {PROJECT_HINT}"),
        (run(proj="none"), f"Your steps are not projected at all (only the start is): x_adv leaves the ε-ball "
         f"(max |x_adv - x| = {moved:.3g} > ε = {eps:.4g}) and [0,1]. Hint: after every step, {PROJECT_HINT}"),
        (run(step="raw_mean"), "Your steps follow the raw gradient, α·∇J; PGD for L∞ steps along its *sign*, "
         "α·sign(∇J), which moves every pixel by α (the steepest ascent for the L∞ norm). Hint: `torch.sign` (or "
         "`.sign()`)."),
        (run(step="raw"), "Your steps follow the raw gradient, α·∇J; PGD for L∞ steps along its *sign*, α·sign(∇J), "
         "which moves every pixel by α (the steepest ascent for the L∞ norm). Hint: `torch.sign` (or `.sign()`)."),
        (run(direction=-1.0), "Your steps go down the gradient, lowering the loss: the attack must *raise* it. Hint: "
         "x_adv + α·sign(∇J), not minus."),
        (run(grad_at="clean"), "You take every gradient at the clean x; PGD takes it at the current iterate x_adv, "
         "which is what makes it iterative. Hint: in the loop, run the model on a requires-grad copy of x_adv."),
    ] + loop_mistakes(run, ref, x, mask, eps, alpha, steps)
    msg = nondeterminism_issue(fn, out, (x, y, eps, alpha, steps, noise), "noise") or first_match(out, variants)
    if msg:
        return [msg]
    return attack_fallback(out, ref, mask, x, eps, _PGD_FORMULA)


@exercise("SAT's inner maximisation as advlib.attacks.pgd computes it: the uniform random start x + ε·noise, `steps` "
          "signed-gradient ascent steps of α, each projected onto the ε-ball around x and onto [0,1], in evaluation "
          "mode, the model and the arguments left as they were.")
def check_pgd_attack(fn):
    """``fn(model, x, y, eps, alpha, steps, noise)`` must return the last iterate of PGD on the cross-entropy from
    Π(x + eps * noise), detached, leaving its arguments, the mode of every module, the batch-norm statistics and
    ``p.grad`` as they were."""
    for x, y, eps, alpha, steps, noise in _pgd_cases():
        ref, mask = pgd_trajectory(fixed_model(), x, y, eps, alpha, steps, uniform_start(x, eps, noise))
        model = fixed_model()
        x_in, noise_in = x.clone(), noise.clone()
        watch = Watch(model, x=x_in, noise=noise_in)
        out = call(fn, model, x_in, y.clone(), eps, alpha, steps, noise_in)
        out, side = attack_output(out, x, "x_adv", watch, "detach it (`.detach()`) before returning it.")
        if out is None:
            return side, []
        feasible = not feasibility_issues(out, x, eps, "x_adv", "")
        if not (feasible and same(out, ref, mask)):
            return _pgd_diagnosis(fn, out, x, y, eps, alpha, steps, noise, ref, mask) + side, []
        if side:
            return side, []
    x, y, eps, alpha, steps, noise = _pgd_cases()[0]
    watch = on_batchnorm_model(fn, x, y, eps, alpha, steps, noise)
    return watch.mode_issues() + watch.statistics_issues("the attack of every training step"), []


# --------------------------------------------------------------------------- best or last checkpoint


_RISE_AND_DROP = [0.300, 0.345, 0.385, 0.410, 0.430, 0.445, 0.455, 0.460, 0.450, 0.445, 0.440, 0.435, 0.430, 0.425,
                  0.420]  # multiples of 1/200: the same curve on a monitor of 2,000 images and on one of 200

# (title, n, holdout PGD accuracies, holdout clean accuracies, training accuracies), per epoch
_CHECKPOINT_CASES = [
    ("SAT, one-cycle schedule, 12 epochs, 500 monitor images", 500,
     [0.200, 0.262, 0.300, 0.334, 0.366, 0.388, 0.404, 0.420, 0.436, 0.458, 0.452, 0.448],
     [0.400, 0.480, 0.530, 0.570, 0.600, 0.630, 0.650, 0.670, 0.690, 0.700, 0.712, 0.708],
     [0.20, 0.27, 0.32, 0.36, 0.39, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.52]),
    ("SAT on 4,000 images, learning rate ×0.1 at epochs 15 and 23, 30 epochs, 500 monitor images", 500,
     [0.150, 0.200, 0.230, 0.256, 0.276, 0.290, 0.302, 0.312, 0.320, 0.326, 0.332, 0.336, 0.340, 0.344, 0.348,
      0.410, 0.402, 0.392, 0.380, 0.370, 0.360, 0.352, 0.334, 0.330, 0.326, 0.320, 0.316, 0.310, 0.306, 0.300],
     [0.300, 0.380, 0.420, 0.450, 0.470, 0.490, 0.500, 0.510, 0.520, 0.526, 0.532, 0.536, 0.540, 0.544, 0.548,
      0.610, 0.620, 0.626, 0.630, 0.634, 0.638, 0.640, 0.646, 0.648, 0.650, 0.652, 0.654, 0.656, 0.660, 0.658],
     [0.15, 0.22, 0.27, 0.31, 0.34, 0.37, 0.39, 0.41, 0.43, 0.45, 0.47, 0.49, 0.51, 0.53, 0.55,
      0.66, 0.70, 0.73, 0.76, 0.79, 0.82, 0.84, 0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.95]),
    ("a long run with a large monitor of 2,000 images", 2000, _RISE_AND_DROP,
     [0.550, 0.600, 0.640, 0.670, 0.690, 0.705, 0.715, 0.725, 0.730, 0.740, 0.745, 0.750, 0.755, 0.760, 0.760],
     [0.30, 0.36, 0.41, 0.45, 0.48, 0.51, 0.54, 0.57, 0.59, 0.61, 0.63, 0.65, 0.67, 0.69, 0.70]),
    ("the same accuracies on a monitor of only 200 images", 200, _RISE_AND_DROP,
     [0.550, 0.600, 0.640, 0.670, 0.690, 0.705, 0.715, 0.725, 0.730, 0.740, 0.745, 0.750, 0.755, 0.760, 0.760],
     [0.30, 0.36, 0.41, 0.45, 0.48, 0.51, 0.54, 0.57, 0.59, 0.61, 0.63, 0.65, 0.67, 0.69, 0.70]),
    ("a short run, 100 monitor images, its highest accuracy reached twice", 100,
     [0.10, 0.15, 0.20, 0.18, 0.20, 0.17, 0.15, 0.13], [0.30, 0.38, 0.44, 0.47, 0.50, 0.52, 0.53, 0.53],
     [0.12, 0.18, 0.24, 0.28, 0.31, 0.33, 0.35, 0.36]),
    ("an MNIST run, 100 monitor images", 100,
     [0.40, 0.72, 0.85, 0.90, 0.89, 0.87, 0.85, 0.84], [0.95, 0.97, 0.98, 0.985, 0.99, 0.99, 0.99, 0.995],
     [0.50, 0.75, 0.85, 0.90, 0.92, 0.93, 0.94, 0.95]),
]


def _history(pgd, clean, train) -> list[dict]:
    return [{"epoch": i + 1, "train_acc": t, "holdout_clean": c, "holdout_pgd": p}
            for i, (p, c, t) in enumerate(zip(pgd, clean, train))]


def _first_best(acc: list[float]) -> int:
    """The 1-based epoch of the highest accuracy, the first one on ties (the engine saves best.pt only when an
    epoch is strictly better than every earlier one)."""
    return max(range(len(acc)), key=lambda i: (acc[i], -i)) + 1


def _wald(acc: float, n: int) -> tuple[float, float]:
    h = stats.Z95 * math.sqrt(acc * (1 - acc) / n)
    return acc - h, acc + h


def _rule(acc: list[float], n: int, kind: str = "wilson") -> str:
    """'best' or 'last' for one monitor curve, by the statement's rule ('wilson') or a typical variant."""
    b = _first_best(acc)
    best, last = acc[b - 1], acc[-1]
    lo_b, _ = stats.wilson(round(best * n), n)
    _, hi_l = stats.wilson(round(last * n), n)
    # (best > the upper end of the last epoch's Wilson interval is the same test as "wald": Wilson's interval is
    # the set of p whose normal-approximation interval holds the measured accuracy)
    beyond = {"wilson": last < lo_b, "any": best > last, "never": False, "wald": last < _wald(best, n)[0],
              "overlap": lo_b > hi_l}[kind]
    return "best" if beyond else "last"


_RULE_MESSAGES = {
    "any": ("You report the best checkpoint whenever the best epoch beats the last, however small the gap. The monitor "
            "measures each epoch on a few hundred images: a gap of a point or two is what two measurements of the same "
            "model could differ by, and the best epoch is the *maximum* of many noisy measurements, so it is "
            "flattered by the noise. Hint: report best only when the last epoch's accuracy lies below the lower end of "
            "the 95% Wilson interval of the best epoch's accuracy."),
    "never": ("You always report the last checkpoint, even where the monitor's accuracy fell far beyond its noise "
              "(robust overfitting, Rice et al. 2020: there the best checkpoint *is* the better model). Hint: report "
              "best when the last epoch's accuracy lies below the lower end of the 95% Wilson interval of the best "
              "epoch's accuracy."),
    "wald": ("Your interval is the normal approximation p ± 1.96·√(p(1−p)/n) around the best epoch's accuracy (or, "
             "the same test, you asked whether the best accuracy lies above the upper end of the *last* epoch's Wilson "
             "interval): close to Wilson's for a few hundred images near 50%, and off where it matters, on small "
             "monitors and near 0% or 100% (the 100-image monitors here). Hint: the lower end of the Wilson interval "
             "of the best epoch (`advlib.stats.wilson(correct, n)`, or its formula in the statement)."),
    "overlap": ("You report best only when the two epochs' intervals do not overlap at all. That is a stricter test "
                "than the statement's (two 95% intervals can overlap although the difference is significant), and it "
                "keeps the last checkpoint after clear robust overfitting. Hint: report best if the last accuracy lies "
                "below the lower end of the best epoch's Wilson interval."),
}


def _checkpoint_answer(out) -> tuple[Optional[tuple[int, str]], Optional[str]]:
    """((best epoch, 'best'|'last'), None) for a well-formed answer, else (None, what is wrong with it)."""
    if not isinstance(out, dict):
        return None, (f"Your function returned {'None' if out is None else 'a ' + type(out).__name__}; return a dict "
                      f"{{\"best_epoch\": ..., \"report\": \"best\" or \"last\"}}.")
    if set(out) != {"best_epoch", "report"}:
        return None, (f"Your dict has the keys {sorted(map(str, out))}; it needs exactly \"best_epoch\" and "
                      f"\"report\".")
    e = as_number(out["best_epoch"])
    if e is None or e != int(e):
        return None, f"\"best_epoch\" must be a whole number, the epoch (counted from 1); got {out['best_epoch']!r}."
    r = out["report"].strip().lower() if isinstance(out["report"], str) else None
    if r not in ("best", "last"):
        return None, f"\"report\" must be \"best\" or \"last\"; got {out['report']!r}."
    return (int(e), r), None


def _epoch_issue(got: list[int]) -> str:
    """What the student's best epochs (one per case) say about how they were chosen."""
    cases = _CHECKPOINT_CASES
    right = [_first_best(pgd) for _, _, pgd, _, _ in cases]
    k = next(i for i, (g, r) in enumerate(zip(got, right)) if g != r)
    title, _, pgd, _, _ = cases[k]
    b = right[k]
    ties = [i + 1 for i, v in enumerate(pgd) if v == pgd[b - 1]]
    variants = [
        ([r - 1 for r in right], "you returned a 0-based index. Hint: the history's epochs count from 1 (its "
         "\"epoch\" key); add 1 to the index, or read the \"epoch\" of the row."),
        ([max(i + 1 for i, v in enumerate(p) if v == max(p)) for _, _, p, _, _ in cases],
         f"the highest held-out PGD accuracy ({pgd[b - 1]:.0%}) is reached at epochs {' and '.join(map(str, ties))}, "
         f"and the engine keeps the first: it saves best.pt only when an epoch is *strictly* better than all before "
         f"it. Hint: the first epoch of the highest accuracy (`max` with `list.index`, or `np.argmax`, returns the "
         f"first)."),
        ([_first_best(c) for _, _, _, c, _ in cases], "that is the epoch of the highest *clean* held-out accuracy; "
         "the best checkpoint of adversarial training is the epoch of the highest *robust* accuracy. Hint: pick the "
         "epoch by the rows' \"holdout_pgd\"."),
        ([_first_best(t) for _, _, _, _, t in cases], "that is the epoch of the highest *training* accuracy; the best "
         "checkpoint is chosen on held-out images, by \"holdout_pgd\": training accuracy keeps rising even while "
         "the model overfits. Hint: pick the epoch by the rows' \"holdout_pgd\"."),
        ([len(p) for _, _, p, _, _ in cases], "that is the last epoch; the best epoch is the one of the highest "
         "held-out PGD accuracy (\"holdout_pgd\")."),
    ]
    why = next((msg for v, msg in variants if v == got), f"the best epoch is the first epoch of the highest held-out "
               f"PGD accuracy (\"holdout_pgd\"), {pgd[b - 1]:.1%} here.")
    return f"Your best epoch is {got[k]} where it is {b} ({title}): {why}"


def _why(title: str, n: int, pgd: list[float]) -> str:
    """The statement's rule on one case, in numbers."""
    b = _first_best(pgd)
    lo, hi = stats.wilson(round(pgd[b - 1] * n), n)
    right = _rule(pgd, n)
    return (f"{title}: the best epoch {b} scores {pgd[b - 1]:.1%}, 95% Wilson interval [{lo:.1%}, {hi:.1%}] on {n} "
            f"images; the last epoch scores {pgd[-1]:.1%}, "
            + ("below that interval: a drop beyond the monitor's noise, report best." if right == "best" else
               "inside it: the drop is within the monitor's noise, report last."))


@exercise("the best epoch is the first of the highest held-out PGD accuracy, and the best checkpoint is worth "
          "reporting only when the last epoch falls below its 95% Wilson interval.")
def check_choose_checkpoint(fn):
    """``fn(history, n)`` must return ``{"best_epoch": e, "report": "best"|"last"}`` on every fixed history: e the
    first epoch of the highest ``holdout_pgd``, "best" exactly when the last epoch's ``holdout_pgd`` lies below the
    lower end of the 95% Wilson interval of the best epoch's on ``n`` images."""
    epochs, answers = [], []
    for _, n, pgd, clean, train in _CHECKPOINT_CASES:
        out = call(fn, _history(pgd, clean, train), n)
        answer, issue = _checkpoint_answer(out)
        if issue:
            return [issue], []
        epochs.append(answer[0])
        answers.append(answer[1])
    if epochs != [_first_best(pgd) for _, _, pgd, _, _ in _CHECKPOINT_CASES]:
        return [_epoch_issue(epochs)], []
    right = [_rule(pgd, n) for _, n, pgd, _, _ in _CHECKPOINT_CASES]
    if answers == right:
        return [], ["the best epoch is chosen by the same monitor that measures it, so its accuracy is an optimistic "
                    "estimate (the highest of many noisy numbers); the test set, which played no part in the choice, "
                    "says how good either checkpoint really is (notebook 06 compares them there, with McNemar's "
                    "test)."]
    for kind, msg in _RULE_MESSAGES.items():
        if answers == [_rule(pgd, n, kind) for _, n, pgd, _, _ in _CHECKPOINT_CASES]:
            return [msg], []
    same_acc = [i for i, c in enumerate(_CHECKPOINT_CASES) if c[2] is _RISE_AND_DROP]
    if len({answers[i] for i in same_acc}) == 1:
        i, j = same_acc
        return [f"You report {answers[i]} for two histories with the same accuracies, one measured on "
                f"{_CHECKPOINT_CASES[i][1]} images and one on {_CHECKPOINT_CASES[j][1]}: the same drop can be beyond "
                f"the noise of a large monitor and within that of a small one (the 95% interval shrinks like 1/√n). "
                f"{_why(*_CHECKPOINT_CASES[i][:3])} {_why(*_CHECKPOINT_CASES[j][:3])}"], []
    k = next(i for i, (a, r) in enumerate(zip(answers, right)) if a != r)
    title, n, pgd = _CHECKPOINT_CASES[k][:3]
    return [f"You report {answers[k]} for {title}, where the rule reports {right[k]}. {_why(title, n, pgd)}"], []


# --------------------------------------------------------------------------- the notebook's exercise cells

NOTEBOOK = "03_pgd_training_cifar10"
EXERCISES = (
    Exercise(check_pgd_attack, "pgd_attack", statement=r"""
### Exercise 1: SAT's inner maximisation

Standard adversarial training (SAT, Madry et al. 2018) trains on the example that PGD finds for each batch: from a **uniform random start** in the ball, `steps` signed-gradient ascent steps, each projected back onto the threat model around the clean image $x$:

$$x^{0} = \Pi_{S(x)}\big(x + \varepsilon\,u\big), \qquad x^{t+1} = \Pi_{S(x)}\Big(x^{t} + \alpha\,\mathrm{sign}\big(\nabla_{x} J(\theta, x^{t}, y)\big)\Big), \qquad S(x) = \{x' : \|x'-x\|_\infty \le \varepsilon\} \cap [0,1]^d,$$

with $J$ the cross-entropy and $u$ uniform in $[-1, 1]^d$. On CIFAR-10 SAT uses $\varepsilon = 8/255$ and 10 steps of $\alpha = 2/255$. Write `pgd_attack(model, x, y, eps, alpha, steps, noise)` that returns $x^{\text{steps}}$, detached. The random numbers $u$ are given as `noise` (a tensor shaped like `x`, uniform in $[-1, 1]$; in a training loop you would draw them with `torch.empty_like(x).uniform_(-1, 1)`), so that the check can compare your result with `advlib.attacks.pgd` from the same start. As the library's attacks do, compute the gradients in **evaluation mode** and give the caller's mode back, and leave `x`, `noise` and `p.grad` unchanged.

*Hints.* Notebook 02's `pgd_step` is one iteration of the loop. The start is projected too (its pixels near 0 or 1 may leave the image range). Every gradient is taken at the current iterate, every projection is around the clean `x`.
""", starter=r'''
import torch
import torch.nn.functional as F

def pgd_attack(model, x, y, eps, alpha, steps, noise):
    """Return PGD's x_adv: start at proj(x + eps * noise), then `steps` steps of alpha * sign(grad CE), each projected."""
    # Your code here: save the mode and switch to evaluation mode; the random start; the loop of
    # gradient, signed step and projection (ball around the clean x, then [0, 1]); restore the mode.
    raise NotImplementedError
'''),
    Exercise(check_choose_checkpoint, "choose_checkpoint", statement=r"""
### Exercise 2: the best or the last checkpoint?

Training keeps the **last** checkpoint and the **best** one, the epoch of the highest held-out PGD accuracy (the engine saves `best.pt` whenever an epoch is strictly better than all before it, so on ties the first such epoch). The held-out accuracies come from a monitor of $n$ images, so each is only known to within its 95% interval. Reporting the best checkpoint is worth it when the robust accuracy really fell after its peak (robust overfitting), not when the last epoch is merely a little below a lucky maximum. Use this rule:

> report **best** when the last epoch's held-out PGD accuracy lies **below the lower end of the 95% Wilson interval** of the best epoch's accuracy; otherwise report **last**.

With $\hat p$ the best epoch's accuracy and $z = 1.96$, Wilson's interval is

$$\frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}$$

(`advlib.stats.wilson(correct, n)` computes it from the number of correct images).

Write `choose_checkpoint(history, n)` that takes a training history as the engine records it, a list with one dict per epoch (`{"epoch": 1, "train_acc": ..., "holdout_clean": ..., "holdout_pgd": ...}`, accuracies as fractions), and the monitor's size `n`, and returns `{"best_epoch": ..., "report": "best" or "last"}`. The check runs it on several histories: robust overfitting, a flat end, the same curve on monitors of different sizes.
""", starter=r'''
import math

def choose_checkpoint(history, n):
    """Return {"best_epoch": e, "report": "best" or "last"} for a history of per-epoch dicts measured on n images."""
    # Your code here: the first epoch of the highest "holdout_pgd"; the Wilson interval of its accuracy
    # on n images; "best" if the last epoch's accuracy lies below that interval's lower end.
    raise NotImplementedError
'''),
)
