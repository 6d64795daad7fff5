"""Exercises of notebook 01_fgsm_mnist: implement FGSM, measure the accuracy under attack."""
from __future__ import annotations

import torch

from .. import attacks, evaluate
from .cells import Exercise
from .harness import (TOL, Watch, agrees, as_number, attack_output, box_issue, call, ce, exercise, fixed_model,
                      images, input_grad, labels, on_batchnorm_model, reliable)

__all__ = ["check_fgsm", "check_robust_accuracy", "NOTEBOOK", "EXERCISES"]


def _fgsm_cases():
    x, y = images(4, seed=1), labels(4, seed=1)
    return [(x, y, 0.3), (x, y, 0.1)]


@exercise("your FGSM example matches advlib.attacks.fgsm: one step of ε along the gradient's sign, "
          "clamped to [0,1], detached, computed in evaluation mode, and the model left untouched.")
def check_fgsm(fn):
    """``fn(model, x, y, eps)`` must return FGSM's x_adv = clamp(x + eps * sign(∇x CE), 0, 1), detached,
    and leave x, the mode of every module, the batch-norm statistics and ``p.grad`` as they were."""
    for x, y, eps in _fgsm_cases():
        ref_model = fixed_model()
        ref = attacks.fgsm(ref_model, x, y, eps)
        g = input_grad(ref_model, x, y)
        model = fixed_model()
        x_in, y_in = x.clone(), y.clone()
        watch = Watch(model, x=x_in)
        out = call(fn, model, x_in, y_in, eps)
        out, side = attack_output(out, x, "x_adv", watch, "detach it (`.detach()`) before returning it.")
        if out is None:
            return side, []
        if not agrees(out, ref, x, eps, g):
            return _fgsm_diagnosis(out, x, y, eps, g, ref, ref_model) + side, []
        if side:
            return side, []
    watch = on_batchnorm_model(fn, x, y, eps)
    return watch.mode_issues() + watch.statistics_issues("every attack"), []


def _fgsm_diagnosis(out, x, y, eps, g, ref, model) -> list[str]:
    issues = []
    delta = out - x
    box = box_issue(out, "x_adv")
    if box:
        issues.append(box)
    interior = reliable(g) & (out > TOL) & (out < 1 - TOL)  # where no clamping to [0,1] happened
    if interior.any():
        mags = delta.abs()[interior]
        lo, hi = mags.min().item(), mags.max().item()
        if hi - lo > 1e-4:
            issues.append(f"Your perturbation does not have the same size on every pixel (|x_adv - x| ranges "
                          f"from {lo:.3g} to {hi:.3g} where no clamping happens), but FGSM moves every pixel by "
                          f"exactly ε = {eps}, to a corner of the ε-ball. Hint: step along the *sign* of the "
                          f"gradient (`torch.sign`), not along the raw gradient.")
        elif hi > eps + TOL:
            issues.append(f"Your perturbation is too large: every pixel moves by {hi:.3g} = {hi / eps:.3g} × ε, "
                          f"but FGSM moves by exactly ε = {eps} (so x_adv leaves the ε-ball). Hint: the sign of "
                          f"the gradient is ±1, so scale it by ε alone; ε is already in pixel units of [0,1] (no "
                          f"factor 255), and use the `eps` argument, not a fixed number.")
        elif hi < TOL:
            issues.append("Your x_adv equals x wherever no clamping happens: there is no perturbation. Hint: add "
                          "to x the sign of the input gradient, scaled by ε.")
        elif hi < eps - TOL:
            issues.append(f"Your perturbation is too small: every pixel moves by {hi:.3g} = {hi / eps:.3g} × ε "
                          f"instead of the full budget ε = {eps}. Hint: the sign of the gradient is ±1, so scale "
                          f"it by ε alone, and use the `eps` argument, not a fixed number.")
        moved = interior & (delta.abs() > TOL)
        if moved.any():
            agree = (delta.sign() == g.sign())[moved].float().mean().item()
            if agree < 0.05:
                issues.append(f"Your x_adv lowers the loss instead of raising it (cross-entropy {ce(model, x, y):.3f} "
                              f"on x, {ce(model, out.clamp(0, 1), y):.3f} on your x_adv): you stepped down the "
                              f"gradient. Hint: FGSM *raises* the loss: move each pixel in the direction of the "
                              f"gradient's sign (ascent), not against it.")
            elif agree < 0.95:
                issues.append(f"Your perturbation does not follow the gradient of the loss: only {agree:.0%} of the "
                              f"pixels move in the direction that increases the cross-entropy. Hint: the gradient "
                              f"is that of the cross-entropy with the true labels y, taken with respect to the "
                              f"input the model was run on (your copy of x).")
    dist = delta.abs().max().item()
    if not issues and dist > eps + TOL:
        issues.append(f"Some pixels move by more than ε = {eps} (max |x_adv - x| = {dist:.3g}). Hint: FGSM takes "
                      f"one step of exactly ε per pixel from the clean x, then clamps to [0,1].")
    if not issues:
        bad = (delta - (ref - x)).abs() > TOL
        issues.append(f"Your x_adv differs from the FGSM example on {int(bad.sum())} of {bad.numel()} pixels "
                      f"(largest difference {(out - ref).abs().max().item():.3g}). Hint: compare your code "
                      f"with the statement's formula step by step: the gradient of the cross-entropy with "
                      f"respect to x (true labels, evaluation mode), its sign, a step of ε, the clamp to [0,1].")
    return issues


class _RecordingAttack:
    """FGSM from the library, remembering how it was called."""

    def __init__(self, eps: float):
        self.eps, self.calls, self.images = eps, 0, 0

    def __call__(self, model, x, y):
        self.calls += 1
        self.images += len(x)
        return attacks.fgsm(model, x, y, self.eps)


def _accuracy_case():
    """16 images; 12 labelled with the fixed model's prediction, 4 with another class."""
    x = images(16, seed=5)
    with torch.no_grad():
        pred = fixed_model()(x).argmax(1)
    y = pred.clone()
    y[[1, 6, 11, 14]] = (pred[[1, 6, 11, 14]] + 3) % 10
    # eps such that clean (0.75), robust (0.3125), 1 - robust, ... are all different numbers
    return x, y, 0.01


@exercise("your loop measures the accuracy under attack as evaluate.batched_accuracy does.")
def check_robust_accuracy(fn):
    """``fn(model, x, y, attack) -> float``: the fraction of images still classified correctly after
    ``x_adv = attack(model, x, y)``, measured in evaluation mode, leaving the mode of every module and
    the batch-norm statistics as they were."""
    x, y, eps = _accuracy_case()
    ref_model = fixed_model()
    ref = evaluate.batched_accuracy(ref_model, x, y, lambda m, a, b: attacks.fgsm(m, a, b, eps))
    clean = evaluate.batched_accuracy(ref_model, x, y)
    x_fgsm = attacks.fgsm(ref_model, x, y, eps)
    with torch.no_grad():
        p_clean = ref_model(x).argmax(1)
        p_adv = ref_model(x_fgsm).argmax(1)
    n = len(y)
    model, attack = fixed_model(), _RecordingAttack(eps)
    x_in, y_in = x.clone(), y.clone()
    watch = Watch(model, x=x_in, y=y_in)
    out = call(fn, model, x_in, y_in, attack, hints=(
        ("does not require grad", "the attack needs gradients: call `attack` outside `torch.no_grad()`, and put "
         "only the predictions on its adversarial images inside it."),))
    notes = []
    v = as_number(out)
    if v is None:
        what = "None (did you forget `return`?)" if out is None else (
            f"a tensor of shape {tuple(out.shape)}" if torch.is_tensor(out) else f"a {type(out).__name__}")
        return [f"Your function returned {what}; it should return one number, the accuracy. Hint: compare the "
                f"predicted classes with y, average the comparison as floats, and turn the result into a "
                f"Python number (`.item()`)."], notes
    if torch.is_tensor(out):
        notes.append("you return a tensor; `.item()` turns it into a plain Python number.")
    issues = []
    if attack.calls == 0:
        issues.append("You never called `attack(model, x, y)`: the accuracy under attack is measured on the "
                      "adversarial images. Hint: get them from the `attack` argument, then predict on them.")
    if abs(v - ref) > 1e-6:
        both = ((p_clean == y) & (p_adv == y)).sum().item()
        variants = [
            (clean, f"That is the clean accuracy ({clean:.4g}): you predicted on x instead of on the attacked "
                    f"images. Hint: predict on the images that `attack` returns."),
            (1 - ref, f"That is the error rate under attack ({1 - ref:.4g}), one minus the accuracy. Hint: count "
                      f"the images where the predicted class equals the label."),
            (100 * ref, f"That is the accuracy in percent ({100 * ref:.4g}); return a fraction in [0,1]. Hint: "
                        f"drop the factor 100."),
            (ref * n, f"That is the number of correctly classified images ({int(ref * n)}); return a fraction. "
                      f"Hint: divide by the number of images, `len(y)`."),
            ((p_adv == p_clean).float().mean().item(),
             "You compared the predictions on x_adv with the predictions on x; accuracy compares them with the "
             "true labels y. Hint: compare the predictions on x_adv with y."),
            (both / max((p_clean == y).sum().item(), 1),
             "You divided by the number of images classified correctly before the attack; the accuracy under "
             "attack is over all images. Hint: divide by `len(y)`."),
        ]
        for val, msg in variants:
            if abs(v - val) <= 1e-6:
                issues.append(msg)
                break
        else:
            issues.append(f"Your function returned {v:.4g}; the accuracy under attack is {ref:.4g} here (clean "
                          f"accuracy {clean:.4g}). Hint: attack the whole batch once, predict the classes of the "
                          f"adversarial images (`argmax` over the logits), and return the fraction that equals y.")
    issues += watch.input_issues() + watch.mode_issues()
    if issues:
        return issues, notes
    watch = on_batchnorm_model(fn, x, y, _RecordingAttack(eps))
    return watch.mode_issues() + watch.statistics_issues("every evaluation"), notes


# --------------------------------------------------------------------------- the notebook's exercise cells

NOTEBOOK = "01_fgsm_mnist"
EXERCISES = (
    Exercise(check_fgsm, "my_fgsm", statement=r"""
### Exercise 1: implement FGSM

Write `my_fgsm(model, x, y, eps)` that returns the FGSM example

$$x_{adv} = \mathrm{clip}_{[0,1]}\big(x + \varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x, y))\big),$$

with $J$ the cross-entropy averaged over the batch (`F.cross_entropy`). Like the library's attacks, your function must
- return a tensor **detached** from the autograd graph;
- run the model in **evaluation mode** (`model.eval()`), so that batch-norm layers use their running statistics and leave them alone;
- leave the caller's `x`, the model's mode (`model.training`) and the parameters' gradients (`p.grad`) unchanged.

*Hints.* Save the caller's mode (`model.training`) before switching, and hand it back to `model.train(...)` before returning. Differentiate with respect to a detached **copy** of `x` on which you switch on `requires_grad` (`clone`, `detach`, `requires_grad_`), so the caller's `x` is left alone. `torch.autograd.grad` gives the input gradient without filling `p.grad` (unlike `loss.backward()`). `torch.sign` and `torch.clamp` do the rest.
""", starter=r'''
import torch
import torch.nn.functional as F

def my_fgsm(model, x, y, eps):
    """Return clip_[0,1](x + eps * sign(grad_x CE(model(x), y))), detached."""
    # Your code here: make x_req, compute the loss and its gradient with respect to x_req,
    # step by eps along the gradient's sign, clamp to [0, 1], detach.
    raise NotImplementedError
'''),
    Exercise(check_robust_accuracy, "robust_accuracy", statement=r"""
### Exercise 2: accuracy under attack

The numbers in this notebook's tables are *accuracies under attack*: the fraction of images the model still classifies correctly after the attack,

$$\mathrm{acc}_{adv} = \frac{1}{n}\sum_{k=1}^{n} \mathbb{1}\big[\arg\max_j f_j(x_{adv}^{(k)}) = y^{(k)}\big], \qquad x_{adv} = \mathrm{attack}(f, x, y).$$

Write `robust_accuracy(model, x, y, attack)` that returns this fraction as a Python `float` in $[0,1]$. `attack(model, x, y)` returns the adversarial images (e.g. `lambda m, a, b: attacks.fgsm(m, a, b, 0.1)`).

*Hints.* The attack needs gradients, so call it **outside** `torch.no_grad()`; the predictions on `x_adv` do not, so compute them inside it. Predict in evaluation mode (`model.eval()`), as the attacks do, and give the caller's mode (saved from `model.training`) back to `model.train(...)` before returning. `argmax` over the class dimension gives the predicted classes; the mean of a boolean comparison, converted to floats, is a fraction, and `.item()` turns a one-element tensor into a Python number.
""", starter=r'''
import torch

def robust_accuracy(model, x, y, attack):
    """Return the fraction of images still classified correctly after x_adv = attack(model, x, y)."""
    # Your code here.
    raise NotImplementedError
'''),
)
