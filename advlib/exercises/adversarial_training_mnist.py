"""Exercises of notebook 02_adversarial_training_mnist: one PGD step, the loss of adversarial data
augmentation."""
from __future__ import annotations

import torch

from .. import attacks, losses
from .cells import Exercise
from .harness import (TOL, Watch, agrees, attack_output, call, ce, check_loss, exercise, feasibility_issues,
                      fixed_model, images, input_grad, labels, on_batchnorm_model, reliable, same, value_range)

__all__ = ["check_pgd_step", "check_weighted_fgsm_loss", "NOTEBOOK", "EXERCISES"]


def _pgd_cases():
    x, y = images(4, seed=7), labels(4, seed=7)
    g = torch.Generator().manual_seed(8)
    cases = []
    # alpha > eps first (fast adversarial training's 1.25 eps): it separates "projected around x_adv"
    # from "not projected"; then a usual PGD step size.
    for eps, alpha in ((0.1, 0.125), (0.2, 0.05)):
        start = attacks.project(x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps, x, eps)
        cases.append((start, x.clone(), y.clone(), eps, alpha))
    return cases


@exercise("one signed-gradient ascent step from x_adv, projected onto the ε-ball around the clean x "
          "and onto [0,1], as in advlib.attacks.pgd.")
def check_pgd_step(fn):
    """``fn(model, x_adv, x, y, eps, alpha)`` must return Π(x_adv + alpha * sign(∇ CE at x_adv)),
    Π the projection onto the eps-ball around x intersected with [0,1], detached, leaving its arguments,
    the mode of every module, the batch-norm statistics and ``p.grad`` as they were."""
    for x_adv, x, y, eps, alpha in _pgd_cases():
        ref_model = fixed_model()
        g = input_grad(ref_model, x_adv, y)
        ref = attacks.project(x_adv + alpha * g.sign(), x, eps)
        model = fixed_model()
        a_in, x_in = x_adv.clone(), x.clone()
        watch = Watch(model, x_adv=a_in, x=x_in)
        out = call(fn, model, a_in, x_in, y.clone(), eps, alpha)
        out, side = attack_output(out, x, "x_next", watch,
                                  "return `x_next.detach()`, so the next step starts from a fresh leaf.")
        if out is None:
            return side, []
        if not agrees(out, ref, x, eps, g):
            return _pgd_diagnosis(out, x_adv, x, y, eps, alpha, g, ref, ref_model) + side, []
        if side:
            return side, []
    watch = on_batchnorm_model(fn, x_adv, x, y, eps, alpha)
    return watch.mode_issues() + watch.statistics_issues("every attack step"), []


def _pgd_diagnosis(out, x_adv, x, y, eps, alpha, g, ref, model) -> list[str]:
    s = g.sign()
    step = x_adv + alpha * s
    proj = attacks.project
    dist = (out - x).abs().max().item()
    mask = reliable(g)
    g_clean = input_grad(model, x, y)
    variants = [
        (proj(step, x_adv, eps),
         f"You projected around the current iterate x_adv instead of the clean image x: the allowed set is the "
         f"ε-ball around the *clean* x (and [0,1]); around x_adv the iterates drift away from x by up to ε at "
         f"every step (your max |x_next - x| = {dist:.3g} > ε = {eps}). Hint: `torch.min(torch.max(x_next, "
         f"x - eps), x + eps).clamp(0, 1)`."),
        (step.clamp(0, 1),
         f"Your step leaves the ε-ball around the clean x (max |x_next - x| = {dist:.3g} > ε = {eps}): after "
         f"the gradient step, project back onto the ball around x. Hint: `torch.min(torch.max(x_next, x - eps), "
         f"x + eps)`, then `.clamp(0, 1)`."),
        (x + (step - x).clamp(-eps, eps).clamp(0, 1),
         f"You clamped the perturbation δ = x_next - x to [0,1] instead of the image: δ lies in [-ε, ε] and may "
         f"be negative; it is the image x + δ that must lie in [0,1] (your x_next: {value_range(out)}). Hint: "
         f"`x_next = (x + delta.clamp(-eps, eps)).clamp(0, 1)`."),
        (torch.min(torch.max(step, x - eps), x + eps),
         f"Your x_next has values outside [0,1] ({value_range(out)}): after projecting onto the ε-ball, also clamp to "
         f"the image range. Hint: `.clamp(0, 1)`."),
        (step,
         f"Your step is not projected at all: x_next leaves the ε-ball around x (max |x_next - x| = {dist:.3g} > "
         f"ε = {eps}) and [0,1] ({value_range(out)}). Hint: clip to [x - eps, x + eps], then to [0, 1]."),
        (proj(x_adv - alpha * s, x, eps),
         f"Your step lowers the loss (cross-entropy {ce(model, x_adv, y):.3f} at x_adv, "
         f"{ce(model, out.clamp(0, 1), y):.3f} at your x_next): you stepped down the gradient. Hint: PGD "
         f"ascends the loss, `x_adv + alpha * grad.sign()`."),
        (proj(x_adv + alpha * g_clean.sign(), x, eps),
         "You took the gradient at the clean x; PGD takes it at the current iterate x_adv (that is what makes "
         "it iterative). Hint: `x_req = x_adv.clone().detach().requires_grad_(True)`, loss on `model(x_req)`."),
        (proj(x + alpha * s, x, eps),
         "You stepped from the clean x instead of from the current iterate x_adv. Hint: "
         "`x_next = x_adv + alpha * grad.sign()`, then project around x."),
    ]
    for v, msg in variants:
        if same(out, v, mask):
            return [msg]
    issues = feasibility_issues(out, x, eps, "x_next", "project with `torch.min(torch.max(x_next, x - eps), x + eps)`.")
    free = mask & ((step - x).abs() < eps - TOL) & (step > TOL) & (step < 1 - TOL)  # no projection binds
    if free.any():
        moves = (out - x_adv)[free]
        lo, hi = moves.abs().min().item(), moves.abs().max().item()
        if hi - lo > 1e-4:
            issues.append(f"Where the projection is not active, your step changes pixels by amounts from {lo:.3g} "
                          f"to {hi:.3g} instead of exactly α = {alpha}. Hint: use the sign of the gradient, "
                          f"`alpha * grad.sign()`, not the raw gradient.")
        elif abs(hi - alpha) > TOL:
            issues.append(f"Where the projection is not active, your step changes every pixel by {hi:.3g} instead of "
                          f"α = {alpha}. Hint: `x_adv + alpha * grad.sign()` (step α, not ε).")
        else:
            agree = (moves.sign() == s[free]).float().mean().item()
            if agree < 0.05:
                issues.append("Your step goes down the gradient, lowering the loss. Hint: PGD ascends: "
                              "`x_adv + alpha * grad.sign()`.")
            elif agree < 0.95:
                issues.append(f"Your step does not follow the gradient of the loss at x_adv ({agree:.0%} of the "
                              f"pixels agree). Hint: differentiate `F.cross_entropy(model(x_req), y)` with respect "
                              f"to `x_req`, a copy of x_adv, with the true labels y.")
    if not issues:
        bad = (out - ref).abs() > TOL
        issues.append(f"Your x_next differs from the expected PGD step on {int(bad.sum())} of {bad.numel()} pixels "
                      f"(largest difference {(out - ref).abs().max().item():.3g}). Hint: x_next = "
                      f"Π(x_adv + α·sign(∇J(x_adv))), Π = clip to [x - ε, x + ε], then to [0, 1].")
    return issues


def _weighted_cases() -> list[dict]:
    x, y = images(4, seed=9), labels(4, seed=9)
    return [dict(x=x, y=y, eps=0.3, mix=0.3), dict(x=x, y=y, eps=0.1, mix=0.75)]


def _weighted_reference(model, x, y, eps, mix) -> torch.Tensor:
    """The library's training loss ``fgsm_weighted`` on this batch, with ``mix`` as its TrainConfig field."""
    return losses.compute("fgsm_weighted", model, x, y, eps, mix=mix)[0]


def _weighted_mistakes(v, expected, model, x, y, eps, mix) -> tuple[list, str]:
    """(value of a typical mistake, its diagnosis) pairs, and the message for any other wrong value."""
    x_fgsm = attacks.fgsm(model, x, y, eps)
    s = input_grad(model, x, y).sign()
    c, a = ce(model, x, y), ce(model, x_fgsm, y)
    a_down = ce(model, (x - eps * s).clamp(0, 1), y)
    a_noclamp = ce(model, x + eps * s, y)
    variants = [
        (mix * c + (1 - mix) * a, f"You swapped the weights: the clean term gets (1 - mix) and the "
         f"adversarial term gets mix (here mix = {mix}). Hint: `(1 - mix) * clean_loss + mix * adv_loss`."),
        (mix * a, "Your loss has no clean term: adversarial data augmentation keeps training on the clean "
         "images too. Hint: add `(1 - mix) * F.cross_entropy(model(x), y)`."),
        (a, "Your loss is only the cross-entropy on the FGSM example: add the clean term and weight both. "
         "Hint: `(1 - mix) * clean_loss + mix * adv_loss`."),
        ((1 - mix) * c, "Your loss has no adversarial term. Hint: add `mix * F.cross_entropy(model(x_adv), "
         "y)` with x_adv the FGSM example."),
        (c, "Your loss is only the clean cross-entropy. Hint: `(1 - mix) * clean_loss + mix * adv_loss` "
         "with adv_loss the cross-entropy on the FGSM example."),
        (c + a, "You forgot the weights: the loss is a weighted average, not a sum. Hint: "
         "`(1 - mix) * clean_loss + mix * adv_loss`."),
        (0.5 * (c + a), f"You used equal weights 0.5/0.5; use the `mix` argument (here mix = {mix}). Hint: "
         f"`(1 - mix) * clean_loss + mix * adv_loss`."),
        ((1 - mix) * c + mix * a_down, "Your FGSM example lowers the loss (wrong sign): it should add "
         "`eps * grad.sign()`."),
        ((1 - mix) * c + mix * a_noclamp, "Your FGSM example is not clamped to [0,1]. Hint: "
         "`(x + eps * grad.sign()).clamp(0, 1)`."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (clean cross-entropy "
                      f"{c:.4g}, cross-entropy on the FGSM example {a:.4g}, mix = {mix}, ε = {eps}). Hint: "
                      f"`(1 - mix) * clean_loss + mix * adv_loss`, with the FGSM example "
                      f"`(x + eps * grad.sign()).clamp(0, 1)`.")


@exercise("(1 - mix)·CE(clean) + mix·CE(FGSM example), as the training method fgsm_weighted of advlib.losses "
          "computes it.")
def check_weighted_fgsm_loss(fn):
    """``fn(model, x, y, eps, mix)`` must return (1 - mix) * CE(model(x), y) + mix * CE(model(x_fgsm), y),
    with x_fgsm a fixed (detached) input, and leave the model's mode as it found it."""
    return check_loss(fn, _weighted_cases(), _weighted_reference, _weighted_mistakes,
                      "Your loss has the right value but the wrong gradients with respect to the model's parameters. "
                      "Hint: compute both terms with the model (no `.detach()` on their logits); only the FGSM "
                      "example itself is detached."), []


# --------------------------------------------------------------------------- the notebook's exercise cells

NOTEBOOK = "02_adversarial_training_mnist"
EXERCISES = (
    Exercise(check_pgd_step, "pgd_step", statement=r"""
### Exercise 1: one PGD step

PGD (Madry et al. 2018) repeats a signed-gradient ascent step followed by a projection onto the threat model around the **clean** image $x$:

$$x^{t+1} = \Pi_{S(x)}\Big(x^{t} + \alpha\,\mathrm{sign}\big(\nabla_{x} J(\theta, x^{t}, y)\big)\Big), \qquad S(x) = \{x' : \|x'-x\|_\infty \le \varepsilon\} \cap [0,1]^d .$$

Write `pgd_step(model, x_adv, x, y, eps, alpha)` that takes the current iterate `x_adv` $= x^t$ and returns $x^{t+1}$, detached. As in the FGSM exercise, compute the gradient in evaluation mode and leave `x`, `x_adv`, the model's mode and `p.grad` unchanged.

*Hints.* The gradient is taken at the current iterate `x_adv`, the projection is around the clean `x`: clip to $[x-\varepsilon, x+\varepsilon]$, then to $[0,1]$.
""", starter=r'''
import torch
import torch.nn.functional as F

def pgd_step(model, x_adv, x, y, eps, alpha):
    """Return proj_{S(x)}(x_adv + alpha * sign(grad CE at x_adv)), detached."""
    # Your code here: gradient of the cross-entropy at x_adv, step of alpha along its sign,
    # clip to [x - eps, x + eps] (the ball around the clean x), then to [0, 1].
    raise NotImplementedError
'''),
    Exercise(check_weighted_fgsm_loss, "weighted_fgsm_loss", statement=r"""
### Exercise 2: the loss of adversarial data augmentation

Goodfellow et al. (2015) train on a mix of clean and FGSM examples:

$$\tilde J(\theta, x, y) = (1 - m)\, J(\theta, x, y) + m\, J(\theta, x_{FGSM}, y), \qquad x_{FGSM} = \mathrm{clip}_{[0,1]}\big(x + \varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x, y))\big),$$

with $m$ = `mix` (they used $m = 0.5$). Write `weighted_fgsm_loss(model, x, y, eps, mix)` that returns $\tilde J$ as a scalar tensor a training loop can call `.backward()` on.

*Hints.* The FGSM example is a fixed input for the training step: build it with `torch.autograd.grad` (not `.backward()`, which would fill `p.grad`) and `.detach()` it, so the gradient of the loss does not flow through the attack. Do not call `.backward()` yourself and do not change the model's mode.
""", starter=r'''
import torch
import torch.nn.functional as F

def weighted_fgsm_loss(model, x, y, eps, mix):
    """Return (1 - mix) * CE(model(x), y) + mix * CE(model(x_fgsm), y), a scalar tensor."""
    # Your code here: build the FGSM example (detached), then combine the two cross-entropies.
    raise NotImplementedError
'''),
)
