"""Exercises of notebook 02_adversarial_training_mnist: one step of FGSM adversarial training in the
two-pass form, one PGD step, the loss of adversarial data augmentation."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import attacks, losses
from .cells import Exercise
from .harness import (PROJECT_HINT, TOL, Watch, agrees, as_number, attack_output, batchnorm_model, call, ce,
                      check_loss, close, exercise, feasibility_issues, fixed_model, images, input_grad, labels,
                      on_batchnorm_model, reliable, same, value_range)

__all__ = ["check_two_pass_step", "check_pgd_step", "check_weighted_fgsm_loss", "NOTEBOOK", "EXERCISES"]

# --------------------------------------------------------------------------- one step of FGSM training, two-pass form

_LR, _MOMENTUM = 0.05, 0.9


def _two_pass_cases() -> list[tuple[int, float]]:
    """(seed of the batch, eps)."""
    return [(13, 0.3), (15, 0.1)]


def _reference_step(model, optimizer, x, y, eps) -> float:
    """One training step of the library's method fgsm_two_pass as the engine runs it: the method (whose clean
    backward fills ``p.grad``), then ``zero_grad``, the backward of its adversarial loss, ``step``."""
    loss, _ = losses.compute("fgsm_two_pass", model, x, y, eps)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _mid_training(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    """:func:`batchnorm_model` (training mode) with SGD and momentum 0.9, after one reference step on another
    batch: its momentum buffers are set and ``p.grad`` still holds that step's gradients, as in a training
    loop that clears the gradients only before a backward."""
    model = batchnorm_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=_LR, momentum=_MOMENTUM)
    _reference_step(model, optimizer, images(4, seed=seed + 1), labels(4, seed=seed + 1), 0.2)
    return model, optimizer


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same_params(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(u, v, rtol=1e-4, atol=1e-6) for u, v in zip(a, b))


def _grads(seed: int, x: torch.Tensor, y: torch.Tensor, mode: str = "train") -> tuple[list[torch.Tensor], float]:
    """The parameter gradients and the value of the cross-entropy on (x, y), on the model of ``seed`` in ``mode``."""
    model, _ = _mid_training(seed)
    with attacks.model_mode(model, mode):
        loss = F.cross_entropy(model(x), y)
    return list(torch.autograd.grad(loss, list(model.parameters()))), loss.item()


def _stepped(seed: int, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The parameters after the optimizer's step with the gradients ``grads``."""
    model, optimizer = _mid_training(seed)
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    optimizer.step()
    return _params(model)


def _fgsm_point(seed: int, x, y, eps, mode: str = "train", sign: float = 1.0, clamp: bool = True) -> torch.Tensor:
    """x + sign·eps·sign(∇x J) (clamped to [0,1]), the gradient taken in ``mode`` on the model of ``seed``."""
    model, _ = _mid_training(seed)
    with attacks.model_mode(model, mode), attacks.frozen(model):
        g, _, _ = attacks.input_gradient(model, x, y)
    out = x + sign * eps * g.sign()
    return out.clamp(0, 1) if clamp else out


_NOT_CLEARED = ("backward() *adds* into `p.grad`, so the optimizer stepped on the sum. Hint: clear the parameter "
                "gradients after the clean pass, right before the adversarial backward, so that the step sees "
                "∇θ J(θ, x_adv, y) only.")


def _two_pass_variants(seed: int, x, y, eps) -> list[tuple[list[torch.Tensor], str]]:
    """The parameter gradients a typical mistake steps on, with its diagnosis, in the order they are tried."""
    sum_ = lambda *gs: [sum(t) for t in zip(*gs)]  # noqa: E731
    x_adv, eval_x = _fgsm_point(seed, x, y, eps), _fgsm_point(seed, x, y, eps, mode="eval")
    g_stale = [p.grad.clone() for p in _mid_training(seed)[0].parameters()]
    g_clean, g_adv = _grads(seed, x, y)[0], _grads(seed, x_adv, y)[0]
    return [
        (sum_(g_clean, g_adv), "Your step used ∇θ J(θ, x, y) + ∇θ J(θ, x_adv, y): the parameter gradients of the "
         "clean pass were still in `p.grad` when the adversarial backward ran (clearing them at the start of the "
         "function is not enough; training on the sum of the two losses gives the same step). " + _NOT_CLEARED),
        (sum_(g_stale, g_clean, g_adv), "Your step used the previous training step's gradient (still in `p.grad` "
         "when your function started) + the clean pass's + the adversarial pass's: you never cleared the "
         "parameter gradients. " + _NOT_CLEARED),
        (sum_(g_stale, g_adv), "Your step used the previous training step's gradient, still in `p.grad` when your "
         "function started, + the adversarial pass's: you never cleared the parameter gradients. " + _NOT_CLEARED),
        (g_clean, "Your step trained on the clean loss J(θ, x, y): the adversarial pass's gradient never reached "
         "the optimizer (a step before the adversarial backward, or a second pass on x instead of x_adv?). Hint: "
         "forward x_adv, backpropagate its cross-entropy, then step."),
        (sum_(g_stale, g_clean), "Your step trained on the clean loss, plus the previous step's gradient still in "
         "`p.grad`: the adversarial pass's gradient never reached the optimizer. Hint: clear the parameter "
         "gradients after the clean pass, forward x_adv, backpropagate its cross-entropy, then step."),
        ([(a + b) / 2 for a, b in zip(g_clean, g_adv)], "You trained on the average ½J(θ, x, y) + ½J(θ, x_adv, y), "
         "adversarial data augmentation with m = 0.5 (the loss of the weighted-FGSM exercise); the two-pass form "
         "trains on the adversarial loss only. Hint: backpropagate J(θ, x_adv, y) alone."),
        (_grads(seed, _fgsm_point(seed, x, y, eps, clamp=False), y)[0], "Your FGSM example is not clamped to [0,1], "
         "so the model trained on pixel values no image has. Hint: clamp x_adv to the image range (`torch.clamp`)."),
        (_grads(seed, _fgsm_point(seed, x, y, eps, sign=-1.0), y)[0], "Your FGSM example lowers the clean loss "
         "(wrong sign: a step down the gradient), so the model trained on easier images, not harder ones. Hint: "
         "FGSM moves each pixel by ε in the direction of the gradient's sign (ascent)."),
        (_grads(seed, eval_x, y)[0], "Your FGSM example was computed in evaluation mode (batch norm normalised with "
         "its running statistics), so it differs from the two-pass form's, which takes the input gradient from the "
         "clean pass in training mode (batch statistics), as advlib.losses.fgsm_two_pass does. Attacking in "
         "evaluation mode is a defensible choice (the library's attacks default to it), but this exercise asks for "
         "the tutorial form. Hint: stay in training mode for the clean pass."),
        (_grads(seed, eval_x, y, mode="eval")[0], "Both of your passes ran in evaluation mode: the adversarial "
         "forward pass then normalises with the running statistics (and does not update them), which is not "
         "training. Hint: a training step runs in training mode from start to end; do not switch the model to "
         "evaluation mode."),
    ]


def _two_pass_diagnosis(out_params, value, seed, x, y, eps) -> str:
    """What the student's step did instead of the two-pass step (``value``: what it returned, as a number or
    None)."""
    if _same_params(out_params, _params(_mid_training(seed)[0])):
        return ("Your function did not change the parameters: the training step never happened. Hint: after the "
                "adversarial backward, the optimizer applies the gradients (`optimizer.step()`).")
    (g_clean, clean), (g_adv, adv) = _grads(seed, x, y), _grads(seed, _fgsm_point(seed, x, y, eps), y)
    if (value is not None and close(value, clean + adv)
            and _same_params(out_params, _stepped(seed, [a + b for a, b in zip(g_clean, g_adv)]))):
        return (f"You trained on the sum J(θ, x, y) + J(θ, x_adv, y) of the clean and the adversarial loss (you "
                f"returned {value:.4g} = {clean:.4g} + {adv:.4g}). The two-pass form trains on the adversarial loss "
                f"only: the clean pass is there for its input gradient. Hint: backpropagate and return "
                f"J(θ, x_adv, y) alone.")
    for grads, msg in _two_pass_variants(seed, x, y, eps):
        if _same_params(out_params, _stepped(seed, grads)):
            return msg
    ref_model, ref_opt = _mid_training(seed)
    _reference_step(ref_model, ref_opt, x, y, eps)
    d = max((a - b).abs().max().item() for a, b in zip(out_params, _params(ref_model)))
    return (f"Your step changed the parameters differently from one step of the two-pass form (largest difference "
            f"{d:.3g}). Hint: check the three stages: (1) clean forward and backward in training mode for "
            f"∇x J(θ, x, y); (2) x_adv = clip_[0,1](x + ε·sign(∇x J)), detached; (3) clear the parameter gradients, "
            f"forward x_adv, backward its cross-entropy, one optimizer step.")


def _two_pass_value_issue(out, ref: float, clean: float) -> Optional[str]:
    """What is wrong with the returned value of a step whose parameters are right (None: nothing)."""
    if out is None:
        return ("Your function returned None; it should return the adversarial loss J(θ, x_adv, y) of this step as "
                "a Python float. Hint: end it with a `return`.")
    if torch.is_tensor(out):
        return (f"Your function returned a tensor{' attached to the autograd graph' if out.requires_grad else ''}; "
                f"return a Python float: a training loop logs numbers, and a tensor that requires grad keeps the "
                f"whole graph of the step alive. Hint: `.item()`.")
    v = as_number(out)
    if v is None:
        return f"Your function returned a {type(out).__name__}; it should return the adversarial loss as a float."
    if close(v, ref):
        return None
    if close(v, clean):
        return (f"You returned the clean loss J(θ, x, y) = {v:.4g}; return the adversarial loss J(θ, x_adv, y) = "
                f"{ref:.4g}, the one the step trained on.")
    return (f"You returned {v:.4g}; the adversarial loss J(θ, x_adv, y) of this step, before the update, is "
            f"{ref:.4g}.")


_TWO_PASS_MODE_HINT = ("a training step runs in training mode from start to end, and the two-pass form computes even "
                       "the FGSM example in training mode; if you switched to evaluation mode, switch back with "
                       "`model.train()` before returning (better: do not switch).")


@exercise("one step of FGSM adversarial training in the two-pass form: the input gradient from a clean pass in "
          "training mode, the FGSM example, the parameter gradients cleared, one optimizer step on the "
          "adversarial loss, as advlib.losses.fgsm_two_pass and the training loop do.")
def check_two_pass_step(fn):
    """``fn(model, optimizer, x, y, eps) -> float`` must update the parameters as one step of
    ``fgsm_two_pass`` does (SGD with momentum, ``p.grad`` holding the previous step's gradients when it is
    called) and return the adversarial loss, leaving the model in training mode and x unchanged."""
    for seed, eps in _two_pass_cases():
        x, y = images(4, seed=seed), labels(4, seed=seed)
        ref_model, ref_opt = _mid_training(seed)
        ref = _reference_step(ref_model, ref_opt, x, y, eps)
        model, optimizer = _mid_training(seed)
        x_in = x.clone()
        watch = Watch(model, keep_grads=True, x=x_in)
        out = call(fn, model, optimizer, x_in, y.clone(), eps)
        problems = watch.mode_issues(_TWO_PASS_MODE_HINT)
        if not _same_params(_params(model), _params(ref_model)):
            problems.append(_two_pass_diagnosis(_params(model), as_number(out), seed, x, y, eps))
        else:
            issue = _two_pass_value_issue(out, ref, _grads(seed, x, y)[1])
            problems += [issue] if issue else []
        problems += watch.input_issues()
        if problems:
            return problems, []
    return [], []


# --------------------------------------------------------------------------- one PGD step


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
        out, side = attack_output(out, x, "x_next", watch, "detach it (`.detach()`) before returning, so the "
                                  "next step starts from a fresh leaf.")
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
         f"every step (your max |x_next - x| = {dist:.3g} > ε = {eps}). Hint: the bounds of a pixel are set by "
         f"the clean x (x - eps and x + eps), whatever the iterate."),
        (step.clamp(0, 1),
         f"Your step leaves the ε-ball around the clean x (max |x_next - x| = {dist:.3g} > ε = {eps}): after "
         f"the gradient step, project back onto the ball around x. Hint: {PROJECT_HINT}"),
        (x + (step - x).clamp(-eps, eps).clamp(0, 1),
         f"You clamped the perturbation δ = x_next - x to [0,1] instead of the image: δ lies in [-ε, ε] and may "
         f"be negative; it is the image x + δ that must lie in [0,1] (your x_next: {value_range(out)}). Hint: "
         f"clamp δ to [-ε, ε], and the image, not δ, to [0, 1]."),
        (torch.min(torch.max(step, x - eps), x + eps),
         f"Your x_next has values outside [0,1] ({value_range(out)}): after projecting onto the ε-ball, also clamp to "
         f"the image range. Hint: a last clamp to [0, 1] (`torch.clamp`)."),
        (step,
         f"Your step is not projected at all: x_next leaves the ε-ball around x (max |x_next - x| = {dist:.3g} > "
         f"ε = {eps}) and [0,1] ({value_range(out)}). Hint: clip to [x - eps, x + eps], then to [0, 1]."),
        (proj(x_adv - alpha * s, x, eps),
         f"Your step lowers the loss (cross-entropy {ce(model, x_adv, y):.3f} at x_adv, "
         f"{ce(model, out.clamp(0, 1), y):.3f} at your x_next): you stepped down the gradient. Hint: PGD "
         f"ascends the loss: move along the sign of the gradient, not against it."),
        (proj(x_adv + alpha * g_clean.sign(), x, eps),
         "You took the gradient at the clean x; PGD takes it at the current iterate x_adv (that is what makes "
         "it iterative). Hint: run the model on a requires-grad copy of x_adv, not of x, and differentiate "
         "with respect to that copy."),
        (proj(x + alpha * s, x, eps),
         "You stepped from the clean x instead of from the current iterate x_adv. Hint: the step starts at "
         "x_adv; only the projection uses the clean x."),
    ]
    for v, msg in variants:
        if same(out, v, mask):
            return [msg]
    issues = feasibility_issues(out, x, eps, "x_next", PROJECT_HINT)
    free = mask & ((step - x).abs() < eps - TOL) & (step > TOL) & (step < 1 - TOL)  # no projection binds
    if free.any():
        moves = (out - x_adv)[free]
        lo, hi = moves.abs().min().item(), moves.abs().max().item()
        if hi - lo > 1e-4:
            issues.append(f"Where the projection is not active, your step changes pixels by amounts from {lo:.3g} "
                          f"to {hi:.3g} instead of exactly α = {alpha}. Hint: step along the *sign* of the "
                          f"gradient (`torch.sign`), scaled by α, not along the raw gradient.")
        elif abs(hi - alpha) > TOL:
            issues.append(f"Where the projection is not active, your step changes every pixel by {hi:.3g} instead of "
                          f"α = {alpha}. Hint: the step size is the `alpha` argument (α, not ε).")
        else:
            agree = (moves.sign() == s[free]).float().mean().item()
            if agree < 0.05:
                issues.append("Your step goes down the gradient, lowering the loss. Hint: PGD ascends: move "
                              "along the sign of the gradient, not against it.")
            elif agree < 0.95:
                issues.append(f"Your step does not follow the gradient of the loss at x_adv ({agree:.0%} of the "
                              f"pixels agree). Hint: the gradient is that of the cross-entropy with the true labels "
                              f"y, with respect to the input the model was run on (a copy of x_adv).")
    if not issues:
        bad = (out - ref).abs() > TOL
        issues.append(f"Your x_next differs from the expected PGD step on {int(bad.sum())} of {bad.numel()} pixels "
                      f"(largest difference {(out - ref).abs().max().item():.3g}). Hint: x_next = "
                      f"Π(x_adv + α·sign(∇J(x_adv))), Π = clip to [x - ε, x + ε], then to [0, 1].")
    return issues


# --------------------------------------------------------------------------- the loss of adversarial data augmentation


def _weighted_cases() -> list[dict]:
    x, y = images(4, seed=9), labels(4, seed=9)
    return [dict(x=x, y=y, eps=0.3, mix=0.3), dict(x=x, y=y, eps=0.1, mix=0.75)]


def _weighted_reference(model, x, y, eps, mix) -> torch.Tensor:
    """The library's training loss ``fgsm_weighted`` on this batch, with ``mix`` as its declared parameter."""
    return losses.compute("fgsm_weighted", model, x, y, eps, params={"mix": mix})[0]


_WEIGHTS = "Hint: weight the clean cross-entropy by 1 − m and the one on the FGSM example by m (m = `mix`)."


def _weighted_mistakes(v, expected, model, x, y, eps, mix) -> tuple[list, str]:
    """(value of a typical mistake, its diagnosis) pairs, and the message for any other wrong value."""
    x_fgsm = attacks.fgsm(model, x, y, eps)
    s = input_grad(model, x, y).sign()
    c, a = ce(model, x, y), ce(model, x_fgsm, y)
    a_down = ce(model, (x - eps * s).clamp(0, 1), y)
    a_noclamp = ce(model, x + eps * s, y)
    variants = [
        (mix * c + (1 - mix) * a, f"You swapped the weights: the clean term gets (1 - mix) and the "
         f"adversarial term gets mix (here mix = {mix}). {_WEIGHTS}"),
        (mix * a, "Your loss has no clean term: adversarial data augmentation keeps training on the clean "
         "images too. Hint: add the cross-entropy on the clean x, weighted by 1 − m."),
        (a, "Your loss is only the cross-entropy on the FGSM example: add the clean term and weight both. "
         + _WEIGHTS),
        ((1 - mix) * c, "Your loss has no adversarial term. Hint: add the cross-entropy on the FGSM example, "
         "weighted by m."),
        (c, "Your loss is only the clean cross-entropy: add the term on the FGSM example. " + _WEIGHTS),
        (c + a, "You forgot the weights: the loss is a weighted average, not a sum. " + _WEIGHTS),
        (0.5 * (c + a), f"You used equal weights 0.5/0.5; use the `mix` argument (here mix = {mix}). {_WEIGHTS}"),
        ((1 - mix) * c + mix * a_down, "Your FGSM example lowers the loss (wrong sign). Hint: FGSM moves each "
         "pixel by ε in the direction of the gradient's sign (ascent), not against it."),
        ((1 - mix) * c + mix * a_noclamp, "Your FGSM example is not clamped to [0,1]. Hint: an image must stay "
         "in [0, 1]: clamp the FGSM example (`torch.clamp`)."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (clean cross-entropy "
                      f"{c:.4g}, cross-entropy on the FGSM example {a:.4g}, mix = {mix}, ε = {eps}). {_WEIGHTS} "
                      f"The FGSM example is the statement's x_FGSM: one step of ε along the sign of the input "
                      f"gradient, clamped to [0,1].")


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
    Exercise(check_two_pass_step, "two_pass_step", statement=r"""
### Exercise 1: one step of FGSM adversarial training, two-pass form

Many tutorials write FGSM adversarial training with two forward/backward passes per batch. With $J(\theta, x, y)$ the cross-entropy averaged over the batch, one training step is

1. **clean pass**, in training mode: forward the clean batch $x$ and backpropagate $J(\theta, x, y)$, to get the input gradient $\nabla_x J(\theta, x, y)$;
2. **FGSM example**: $x_{adv} = \mathrm{clip}_{[0,1]}\big(x + \varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x, y))\big)$, a fixed input (detached);
3. **adversarial pass**: forward $x_{adv}$, backpropagate $J(\theta, x_{adv}, y)$ and let the optimizer update $\theta$ with $\nabla_\theta J(\theta, x_{adv}, y)$.

*What happens to the parameter gradients.* `backward()` does not overwrite `p.grad`, it **adds** to it. The clean pass's backward computes $\nabla_\theta J(\theta, x, y)$ as well (we only wanted $\nabla_x$), and when a training step starts, `p.grad` may still hold the previous step's gradient $g_{prev}$. Without clearing, the optimizer would step along

$$g_{prev} + \nabla_\theta J(\theta, x, y) + \nabla_\theta J(\theta, x_{adv}, y),$$

a different method (partly clean training, partly last step's direction), and with momentum the error lingers for many steps. So the parameter gradients must be cleared **between the two passes**: the step must see $\nabla_\theta J(\theta, x_{adv}, y)$ only.

Write `two_pass_step(model, optimizer, x, y, eps)` that performs one such step on a model in training mode and returns the adversarial loss $J(\theta, x_{adv}, y)$ (before the update) as a Python `float`. Leave the model in training mode and the caller's `x` unchanged. The check runs it on a small network with batch norm, with SGD (momentum 0.9) whose `p.grad` still holds the previous step's gradients, and compares the parameters after your step with a reference step.

*Hints.* Differentiate with respect to a copy of `x` that requires gradients (the caller's `x` stays as it is); after the clean backward, the copy's `.grad` holds $\nabla_x J$. Stay in training mode for both passes: that is the tutorial form (`advlib.losses.fgsm_two_pass`), and batch norm behaves differently in the two modes. The optimizer has a method that clears the gradients of the parameters it updates. `.item()` turns a one-element tensor into a Python number.
""", starter=r'''
import torch
import torch.nn.functional as F

def two_pass_step(model, optimizer, x, y, eps):
    """One step of FGSM adversarial training, two-pass form; return the adversarial loss as a float."""
    # Your code here: (1) clean forward and backward for the input gradient, (2) the FGSM example,
    # (3) clear the parameter gradients, adversarial forward and backward, optimizer step.
    raise NotImplementedError
'''),
    Exercise(check_pgd_step, "pgd_step", statement=r"""
### Exercise 2: one PGD step

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
### Exercise 3: the loss of adversarial data augmentation

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
