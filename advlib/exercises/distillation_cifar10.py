"""Exercises of notebook 05_rslad_distillation_cifar10: the RSLAD objective; one step of AdaAD's inner
maximisation.

A loss for a given adversarial example and given teacher soft labels, and an attack step through a student and
a teacher, checked on the tiny fixed networks of :mod:`.harness` (MNIST-sized inputs: neither cares about the
data set)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import attacks
from ..losses.adaad import teacher_student_kl
from ..losses.rslad import soft_kl
from ..teacher import Teacher
from .cells import Exercise
from .harness import (PROJECT_HINT, TOL, Watch, _seeded, agrees, attack_output, call, check_loss, exercise,
                      feasibility_issues, fixed_model, images, labels, on_batchnorm_model, reliable, same, value_range)

__all__ = ["check_rslad_loss", "check_adaad_step", "NOTEBOOK", "EXERCISES", "ADAAD_EXERCISE"]


def _rslad_cases() -> list[dict]:
    x = images(4, seed=21)
    g = torch.Generator().manual_seed(22)
    x_adv = (x + 0.3 * (torch.rand(x.shape, generator=g) * 2 - 1).sign()).clamp(0, 1)
    teacher_logits = 3 * torch.randn(4, 10, generator=g)
    return [dict(x=x, x_adv=x_adv, teacher_probs=F.softmax(teacher_logits, 1)),
            dict(x=x, x_adv=x_adv, teacher_probs=F.softmax(teacher_logits / 4, 1))]


def _rslad_reference(model, x, x_adv, teacher_probs) -> torch.Tensor:
    """RSLAD's outer loss as advlib.losses.rslad computes it (the official code's, with its 1e-5)."""
    return soft_kl(model(x), teacher_probs) / 6 + 5 * soft_kl(model(x_adv), teacher_probs) / 6


def _rslad_mistakes(v, expected, model, x, x_adv, teacher_probs) -> tuple[list, str]:
    with torch.no_grad():
        ln, la = model(x), model(x_adv)
        t = teacher_probs
        c = t.shape[1]
        kn, ka = soft_kl(ln, t).item(), soft_kl(la, t).item()  # mean over batch x classes
        rev = lambda logits: (F.softmax(logits, 1) * (F.log_softmax(logits, 1) - torch.log(t + 1e-5))).mean().item()  # noqa: E731
        y_t = t.argmax(1)
        ce_n, ce_a = F.cross_entropy(ln, y_t).item(), F.cross_entropy(la, y_t).item()
        nolog = (t * (torch.log(t + 1e-5) - F.softmax(la, 1))).mean().item()
    variants = [
        (5 * kn / 6 + ka / 6, "You swapped the weights: RSLAD puts 5/6 on the adversarial term and 1/6 on the "
         "natural one. Hint: `(1/6) * KL(natural) + (5/6) * KL(adversarial)`."),
        (c * (kn / 6 + 5 * ka / 6), f"Your KL terms are batch means (reduction='batchmean'), {c}× the official "
         f"RSLAD loss: its code averages the element-wise terms over batch *and* classes (`torch.mean`). Hint: "
         f"`(t * (torch.log(t + 1e-5) - F.log_softmax(logits, 1))).mean()`."),
        (ka, "Your loss has the adversarial term only: RSLAD also matches the teacher on the clean input, with "
         "weight 1/6. Hint: `(1/6) * KL(natural) + (5/6) * KL(adversarial)`."),
        (kn / 6 + 5 * kn / 6, "Both of your terms use the clean input: the second one is the student on x_adv."),
        (rev(ln) / 6 + 5 * rev(la) / 6, "You reversed the KL divergence: the teacher's soft labels are the "
         "target, KL(teacher ‖ student). `F.kl_div(input, target)` wants the student's log-probabilities as "
         "input and the teacher's probabilities as target."),
        (ce_n / 6 + 5 * ce_a / 6, "You used hard labels (the teacher's top class) with a cross-entropy: RSLAD "
         "uses no hard labels at all, only the teacher's soft labels. Hint: a KL divergence to `teacher_probs`."),
        (kn / 6 + 5 * nolog, "`log_softmax`, not `softmax`: the KL needs the student's log-probabilities."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (natural term {kn:.4g}, "
                      f"adversarial term {ka:.4g}, each the mean over batch × classes of "
                      f"t·(log(t + 1e-5) − log_softmax(student))). Hint: `(1/6) * nat + (5/6) * adv`.")


@exercise("(1/6)·KL(teacher ‖ student(x)) + (5/6)·KL(teacher ‖ student(x_adv)), each averaged over batch × "
          "classes, as in the RSLAD code and the training method rslad of advlib.losses.")
def check_rslad_loss(fn):
    """``fn(model, x, x_adv, teacher_probs)`` must return RSLAD's outer loss, with gradients through the
    student's two predictions, and leave the model's mode as it found it."""
    return check_loss(fn, _rslad_cases(), _rslad_reference, _rslad_mistakes,
                      "Your loss has the right value but the wrong gradients: the gradient must flow through the "
                      "student's predictions on x and on x_adv. Hint: do not `.detach()` (or compute under "
                      "`torch.no_grad()`) `model(x)` or `model(x_adv)`."), []


# --------------------------------------------------------------------------- one step of AdaAD's attack


def teacher_model() -> nn.Module:
    """A fixed teacher for 1x28x28 inputs: :func:`~.harness.batchnorm_model`'s architecture with weights of its own
    (seeded, independent of the global RNG) and running statistics away from their defaults, in EVALUATION mode,
    its parameters requiring grad as those of any network handed over (so a ``backward`` would fill them)."""
    net = _seeded(nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Tanh(),
                                nn.Flatten(), nn.Linear(4 * 14 * 14, 10)), 20250)
    bn = net[1]
    with torch.no_grad():
        net[-1].weight.mul_(3)  # a teacher with an opinion: sharper than the student
        bn.running_mean.copy_(torch.tensor([-0.1, 0.2, 0.3, -0.3]))
        bn.running_var.copy_(torch.tensor([1.4, 0.6, 0.9, 1.8]))
        bn.num_batches_tracked.fill_(100)
    return net.eval()


def _adaad_cases() -> list[tuple]:
    """(x_adv, x, eps, alpha): x_adv a random point of the ball around x (in [0,1]); alpha > eps first, which
    separates "projected around x_adv" from "not projected", then a usual step."""
    x = images(4, seed=31)
    g = torch.Generator().manual_seed(32)
    cases = []
    for eps, alpha in ((0.1, 0.125), (0.25, 0.06)):
        start = attacks.project(x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps, x, eps)
        cases.append((start, x.clone(), eps, alpha))
    return cases


def _kl_grad(model: nn.Module, teacher: nn.Module, at: torch.Tensor, teacher_at: str = "same",
             reverse: bool = False) -> torch.Tensor:
    """The input gradient of the summed KL(T ‖ S) at ``at``, both networks in eval mode; ``teacher_at``: "same"
    (AdaAD: the teacher on the iterate, the gradient through it), "detached" (the teacher on the iterate, its
    output a constant) or a tensor (the teacher on those images, a fixed target: RSLAD's attack); ``reverse``:
    KL(S ‖ T) instead."""
    with attacks.model_mode(model, "eval"), attacks.model_mode(teacher, "eval"):
        a = at.detach().clone().requires_grad_(True)
        if torch.is_tensor(teacher_at):
            with torch.no_grad():
                t_logits = teacher(teacher_at)
        else:
            t_logits = teacher(a)
            if teacher_at == "detached":
                t_logits = t_logits.detach()
        s_logits = model(a)
        if reverse:
            kl = F.kl_div(F.log_softmax(t_logits, 1), F.softmax(s_logits, 1), reduction="sum")
        else:
            kl = F.kl_div(F.log_softmax(s_logits, 1), F.softmax(t_logits, 1), reduction="sum")
        (g,) = torch.autograd.grad(kl, a)
    return g


def _adaad_reference(x_adv: torch.Tensor, x: torch.Tensor, eps: float, alpha: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(the library's step: advlib.attacks.input_gradient on AdaAD's objective advlib.losses.adaad.teacher_student_kl,
    projected with advlib.attacks.project; its gradient), on fresh copies of the fixed student and teacher."""
    model, teacher = fixed_model(), Teacher(teacher_model())
    with attacks.model_mode(model, "eval"), attacks.frozen(model):
        g, _, _ = attacks.input_gradient(model, x_adv, labels(len(x)), teacher_student_kl(teacher), clean=x)
    return attacks.project(x_adv + alpha * g.sign(), x, eps), g


def _kl_sum(model: nn.Module, teacher: nn.Module, at: torch.Tensor) -> float:
    """The summed KL(T(at) ‖ S(at)), both in eval mode, as a number."""
    with torch.no_grad(), attacks.model_mode(model, "eval"), attacks.model_mode(teacher, "eval"):
        return F.kl_div(F.log_softmax(model(at), 1), F.softmax(teacher(at), 1), reduction="sum").item()


def _teacher_issues(watch: Watch) -> list[str]:
    """What the function did to the teacher: gradients in its parameters, its mode, its batch-norm statistics."""
    out = []
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in watch.model.parameters()):
        out.append("Your function left gradients in the *teacher's* parameters (`p.grad` is filled, e.g. by "
                   "`kl.backward()`): the teacher is frozen, the attack only needs the gradient with respect to the "
                   "input. Hint: `torch.autograd.grad(kl, x_req)` gives it without filling any `p.grad`.")
    if any(m.training != was for _, m, was in watch.modes):
        out.append("Your function left the *teacher* (or some of its submodules) in training mode: a teacher is "
                   "always evaluated in evaluation mode (its batch norm uses its running statistics). Hint: do not "
                   "call `teacher.train()`; it comes in evaluation mode and must stay there.")
    if any(not torch.equal(b.detach(), copy) for _, b, copy in watch.buffers):
        out.append("Your function changed the *teacher's* batch-norm running statistics (it ran the teacher in "
                   "training mode). Hint: keep the teacher in evaluation mode.")
    return out


def _adaad_diagnosis(out, x_adv, x, eps, alpha, g, ref) -> list[str]:
    model, teacher = fixed_model(), teacher_model()
    s = g.sign()
    step = x_adv + alpha * s
    proj = attacks.project
    dist = (out - x).abs().max().item()

    def ascent(grad):
        return proj(x_adv + alpha * grad.sign(), x, eps), grad

    variants = [
        (*ascent(_kl_grad(model, teacher, x_adv, teacher_at=x)),
         "Your teacher looks at the clean x: that is RSLAD's attack, a fixed target (the teacher's soft labels on x). "
         "In AdaAD the teacher is evaluated on the same point as the student, the iterate x_adv. Hint: run both "
         "networks on one requires-grad copy of x_adv."),
        (*ascent(_kl_grad(model, teacher, x_adv, teacher_at="detached")),
         "Your gradient flows through the student only: the teacher's output at x_adv is treated as a constant "
         "(detached, or computed under `torch.no_grad()`). In AdaAD the teacher's prediction moves with x_adv too, "
         "and the gradient runs through both networks. Hint: compute `teacher(x_req)` inside the graph, without "
         "`.detach()` or `torch.no_grad()`."),
        (*ascent(_kl_grad(model, teacher, x_adv, reverse=True)),
         "You reversed the KL divergence: AdaAD maximises KL(teacher ‖ student), `F.kl_div(input, target)` with the "
         "student's log-probabilities as input and the teacher's probabilities as target."),
        (*ascent(_kl_grad(model, teacher, x)),
         "You took the gradient at the clean x; the attack takes it at the current iterate x_adv. Hint: run both "
         "networks on a requires-grad copy of x_adv, not of x."),
        (proj(x_adv - alpha * s, x, eps), g,
         f"Your step lowers the student-teacher disagreement (summed KL {_kl_sum(model, teacher, x_adv):.4g} at "
         f"x_adv, {_kl_sum(model, teacher, out.clamp(0, 1)):.4g} at your x_next): you stepped down the gradient. "
         f"Hint: the attack ascends: move along the sign of the gradient."),
        (proj(step, x_adv, eps), g,
         f"You projected around the current iterate x_adv instead of the clean image x (your max |x_next - x| = "
         f"{dist:.3g} > ε = {eps}). Hint: the bounds of a pixel are set by the clean x (x - eps and x + eps)."),
        (step.clamp(0, 1), g,
         f"Your step leaves the ε-ball around the clean x (max |x_next - x| = {dist:.3g} > ε = {eps}). Hint: "
         f"{PROJECT_HINT}"),
        (torch.min(torch.max(step, x - eps), x + eps), g,
         f"Your x_next has values outside [0,1] ({value_range(out)}): after projecting onto the ε-ball, also clamp to "
         f"the image range. Hint: a last clamp to [0, 1] (`torch.clamp`)."),
        (proj(x + alpha * s, x, eps), g,
         "You stepped from the clean x instead of from the current iterate x_adv. Hint: the step starts at x_adv; "
         "only the projection uses the clean x."),
    ]
    for v, grad, msg in variants:
        if same(out, v, reliable(g) & reliable(grad)):
            return [msg]
    issues = feasibility_issues(out, x, eps, "x_next", PROJECT_HINT)
    free = reliable(g) & ((step - x).abs() < eps - TOL) & (step > TOL) & (step < 1 - TOL)
    if not issues and free.any():
        moves = (out - x_adv)[free]
        lo, hi = moves.abs().min().item(), moves.abs().max().item()
        if hi - lo > 1e-4:
            issues.append(f"Where the projection is not active, your step changes pixels by amounts from {lo:.3g} "
                          f"to {hi:.3g} instead of exactly α = {alpha}. Hint: step along the *sign* of the "
                          f"gradient (`torch.sign`), scaled by α.")
        elif abs(hi - alpha) > TOL:
            issues.append(f"Where the projection is not active, your step changes every pixel by {hi:.3g} instead of "
                          f"α = {alpha}. Hint: the step size is the `alpha` argument (α, not ε).")
    if not issues:
        bad = (out - ref).abs() > TOL
        issues.append(f"Your x_next differs from the expected step on {int(bad.sum())} of {bad.numel()} pixels "
                      f"(largest difference {(out - ref).abs().max().item():.3g}). Hint: x_next = "
                      f"Π(x_adv + α·sign(∇ Σ KL(T(x_adv) ‖ S(x_adv)))), both networks on one requires-grad copy of "
                      f"x_adv, Π = clip to [x - ε, x + ε], then to [0, 1].")
    return issues


@exercise("one step of AdaAD's inner maximisation: the signed gradient of KL(teacher ‖ student) with both networks "
          "on the iterate, projected onto the ε-ball around x and [0,1], as advlib.losses.adaad's attack takes it.")
def check_adaad_step(fn):
    """``fn(model, teacher, x_adv, x, eps, alpha)`` must return Π(x_adv + alpha·sign(∇ Σ KL(T(x_adv) ‖ S(x_adv)))),
    the gradient through both networks in evaluation mode, Π the projection onto the eps-ball around x and [0,1],
    detached; it must leave its arguments, the modes, the batch-norm statistics and every ``p.grad`` (the
    teacher's included) as they were."""
    for x_adv, x, eps, alpha in _adaad_cases():
        ref, g = _adaad_reference(x_adv, x, eps, alpha)
        model, teacher = fixed_model(), teacher_model()
        a_in, x_in = x_adv.clone(), x.clone()
        watch, t_watch = Watch(model, x_adv=a_in, x=x_in), Watch(teacher)
        out = call(fn, model, teacher, a_in, x_in, eps, alpha)
        out, side = attack_output(out, x, "x_next", watch, "detach it (`.detach()`) before returning, so the "
                                  "next step starts from a fresh leaf.")
        teacher_side = _teacher_issues(t_watch)
        if out is None:
            return side + teacher_side, []
        if not agrees(out, ref, x, eps, g):
            if any("training mode" in t for t in teacher_side):  # a teacher run in training mode: the cause
                return teacher_side + side, []
            return _adaad_diagnosis(out, x_adv, x, eps, alpha, g, ref) + side + teacher_side, []
        if side or teacher_side:
            return side + teacher_side, []
    x_adv, x, eps, alpha = _adaad_cases()[0]
    teacher = teacher_model()
    t_watch = Watch(teacher)
    watch = on_batchnorm_model(fn, teacher, x_adv, x, eps, alpha)
    return watch.mode_issues() + watch.statistics_issues("every attack step") + _teacher_issues(t_watch), []


NOTEBOOK = "05_rslad_distillation_cifar10"
EXERCISES = (
    Exercise(check_rslad_loss, "rslad_loss", statement=r"""
### Exercise: the RSLAD objective

RSLAD (Zi et al. 2021) trains the student $S$ on the teacher's soft labels $t = \mathrm{softmax}\,T(x)$ only, on the clean and on the adversarial input:

$$\mathcal{L}(\theta) = \tfrac{1}{6}\,\mathrm{KL}\big(t\,\|\,\mathrm{softmax}\,S(x)\big) + \tfrac{5}{6}\,\mathrm{KL}\big(t\,\|\,\mathrm{softmax}\,S(x_{adv})\big),$$

each KL computed as the official code does: the element-wise terms $t_k\,\big(\log(t_k + 10^{-5}) - \log \mathrm{softmax}\,S_k\big)$ **averaged over the batch and the classes** (`torch.mean`, not the batch mean of PyTorch's `batchmean`). Write `rslad_loss(model, x, x_adv, teacher_probs)` that returns $\mathcal{L}$ as a scalar tensor.

*Hints.* `F.log_softmax(logits, 1)` gives the student's log-probabilities. The teacher's probabilities are given: nothing to compute (or differentiate) there.
""", starter=r'''
import torch
import torch.nn.functional as F

def rslad_loss(model, x, x_adv, teacher_probs):
    """Return (1/6) KL(teacher || student(x)) + (5/6) KL(teacher || student(x_adv)), means over batch x classes."""
    # Your code here.
    raise NotImplementedError
'''),
)

# Not yet in EXERCISES: adding it there adds its three cells to notebook 05 (``python -m advlib.exercises write``),
# which the notebook's integration does (tests/test_exercise_cells.py fails until the notebook holds them).
ADAAD_EXERCISE = Exercise(check_adaad_step, "adaad_step", statement=r"""
### Exercise: one step of AdaAD's attack

RSLAD crafts the student's adversarial example against a fixed target, the teacher's soft labels on the clean image. AdaAD (Huang et al. 2023) lets the teacher move with the attack: the adversarial example maximises the disagreement between the student $S$ and the teacher $T$, **both evaluated at the adversarial point**. One step of its inner maximisation:

$$x^{t+1} = \Pi_{\mathcal{B}(x)}\Big(x^{t} + \alpha\,\mathrm{sign}\big(\nabla_{x^t} \textstyle\sum_i \mathrm{KL}\big(\mathrm{softmax}\,T(x^t_i)\,\|\,\mathrm{softmax}\,S(x^t_i)\big)\big)\Big), \qquad \mathcal{B}(x) = \{x' : \|x'-x\|_\infty \le \varepsilon\} \cap [0,1]^d .$$

The teacher's prediction depends on $x^t$ too, so the gradient flows through **both** networks. Write `adaad_step(model, teacher, x_adv, x, eps, alpha)` that takes the student `model`, the `teacher` and the current iterate `x_adv` $= x^t$ and returns $x^{t+1}$, detached. Run both networks in evaluation mode (the teacher already is; the student is in whatever mode the training loop left it: give that back), and leave `x`, `x_adv` and every `p.grad`, the teacher's included, as they were.

*Hints.* One requires-grad copy of `x_adv`, both networks run on it. `F.kl_div(F.log_softmax(student_logits, 1), F.softmax(teacher_logits, 1), reduction="sum")` is the summed KL (the reduction does not change the sign of the gradient). `torch.autograd.grad` gives the input gradient without filling any `p.grad`.
""", starter=r'''
import torch
import torch.nn.functional as F

def adaad_step(model, teacher, x_adv, x, eps, alpha):
    """Return proj_B(x)(x_adv + alpha * sign(grad of sum KL(teacher(x_adv) || model(x_adv)))), detached."""
    # Your code here: both networks in evaluation mode on one requires-grad copy of x_adv, the gradient of the
    # summed KL through both, a step of alpha along its sign, clip to [x - eps, x + eps], then to [0, 1].
    raise NotImplementedError
''')
