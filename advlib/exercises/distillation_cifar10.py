"""Exercises of notebook 05_rslad_distillation_cifar10: the RSLAD objective; ARD's and IAD's losses; RSLAD's inner
maximisation; one step of AdaAD's inner maximisation (through the student and the teacher).

The losses are taken for a given adversarial example and given teacher outputs, checked on the tiny fixed network
of :mod:`.harness` (MNIST-sized inputs: a loss does not care about the data set); RSLAD's attack like SAT's in
:mod:`.pgd_training_cifar10`, from a start whose random numbers are given."""
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
from .pgd_training_cifar10 import attack_fallback, first_match, loop_mistakes, nondeterminism_issue, pgd_trajectory

__all__ = ["check_rslad_loss", "check_ard_loss", "check_iad_loss", "check_rslad_attack", "check_adaad_step", "NOTEBOOK",
           "EXERCISES"]


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


# --------------------------------------------------------------------------- ARD's loss


def _teacher_cases(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, x_adv, y, teacher logits on x): four images, a fixed stand-in for their adversarial examples (±0.3 on
    every pixel, clamped), labels, and confident teacher logits."""
    x, y = images(4, seed=seed), labels(4, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    x_adv = (x + 0.3 * (torch.rand(x.shape, generator=g) * 2 - 1).sign()).clamp(0, 1)
    return x, x_adv, y, 3 * torch.randn(4, 10, generator=g)


def _ard_cases() -> list[dict]:
    """The official setting (τ = 30, pure distillation: w = 1), then τ = 4 with a cross-entropy term (w = 0.8)."""
    x, x_adv, y, t = _teacher_cases(41)
    return [dict(x=x, x_adv=x_adv, y=y, teacher_logits=t, tau=30.0, kd_weight=1.0),
            dict(x=x, x_adv=x_adv, y=y, teacher_logits=t, tau=4.0, kd_weight=0.8)]


def _kl_mean(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(target ‖ softmax(logits)) summed and divided by batch × classes: ``nn.KLDivLoss()`` of 2020, ARD's KL."""
    return F.kl_div(F.log_softmax(logits, 1), target, reduction="sum") / target.numel()


def _ard_reference(model, x, x_adv, y, teacher_logits, tau, kd_weight) -> torch.Tensor:
    """ARD's loss as the training method ard of advlib.losses computes it for this x_adv and these teacher logits
    (tests/test_exercises.py checks the two agree); the cross-entropy term always enters, with weight 1 - w."""
    soft = F.softmax(teacher_logits / tau, 1)
    return (kd_weight * tau ** 2 * _kl_mean(soft, model(x_adv) / tau)
            + (1 - kd_weight) * F.cross_entropy(model(x), y))


def _ard_mistakes(v, expected, model, x, x_adv, y, teacher_logits, tau, kd_weight) -> tuple[list, str]:
    with torch.no_grad():
        s_adv, s_nat, t = model(x_adv), model(x), teacher_logits
        w, c = kd_weight, t.shape[1]
        soft = F.softmax(t / tau, 1)
        kl = _kl_mean(soft, s_adv / tau).item()
        ce_nat, ce_adv = F.cross_entropy(s_nat, y).item(), F.cross_entropy(s_adv, y).item()
        ce = (1 - w) * ce_nat

        def rev(p_logits, q_logits):  # KL(softmax p ‖ softmax q) per element, averaged like ARD's
            return _kl_mean(F.softmax(p_logits, 1), q_logits).item()
    variants = [
        (w * kl + ce, f"Your KL term is not multiplied by τ² (here τ = {tau:g}): at temperature τ the gradients of the "
         f"soft targets shrink like 1/τ², and ARD (after Hinton et al. 2015) multiplies the KL by τ² to give them back "
         f"their size. Hint: `kd_weight * tau**2 * kl`."),
        (w * tau * kl + ce, f"You multiplied the KL by τ; ARD multiplies it by τ² (τ = {tau:g})."),
        (w * tau ** 2 * c * kl + ce, f"Your KL is a batch mean (reduction='batchmean'), {c}× ARD's: the official code "
         f"uses `nn.KLDivLoss()` with its default reduction of 2020, the sum divided by batch × classes. Hint: "
         f"`F.kl_div(..., reduction='sum') / teacher_probs.numel()`, or `reduction='mean'`."),
        (w * tau ** 2 * rev(s_adv / tau, t / tau) + ce, "You reversed the KL divergence: the teacher's soft labels are "
         "the target, KL(teacher ‖ student). `F.kl_div(input, target)` wants the student's log-probabilities as "
         "input and the teacher's probabilities as target."),
        (w * tau ** 2 * _kl_mean(soft, s_adv).item() + ce, "Your student's logits are not divided by τ: both "
         "distributions are softened at the same temperature, the student's `log_softmax(model(x_adv) / tau)` as well "
         "as the teacher's `softmax(teacher_logits / tau)`."),
        (w * tau ** 2 * _kl_mean(F.softmax(t, 1), s_adv / tau).item() + ce, "Your teacher's logits are not divided by "
         "τ: both distributions are softened at the same temperature, `softmax(teacher_logits / tau)` as well as the "
         "student's `log_softmax(model(x_adv) / tau)`."),
        (w * tau ** 2 * _kl_mean(F.softmax(t, 1), s_adv).item() + ce, "Your KL has no temperature at all: ARD compares "
         "the two networks' distributions softened by τ (the soft labels keep what the teacher thinks of the other "
         "classes). Hint: divide both the student's and the teacher's logits by τ."),
        (w * tau ** 2 * _kl_mean(soft, s_nat / tau).item() + ce, "Your KL term uses the student on the clean x; ARD "
         "distils the teacher's clean soft labels into the student's prediction on the *adversarial* example x_adv. "
         "Hint: `model(x_adv)` in the KL, `model(x)` only in the cross-entropy."),
        (w * tau ** 2 * kl + (1 - w) * ce_adv, "Your cross-entropy is on x_adv; ARD's (1 − w)·CE term is on the clean x "
         "(in the official code, `basic_net(inputs)`). Hint: `F.cross_entropy(model(x), y)`."),
        ((1 - w) * tau ** 2 * kl + w * ce_nat, "You swapped the weights: the KL term gets w = `kd_weight`, the "
         "cross-entropy 1 − w. Hint: `kd_weight * tau**2 * kl + (1 - kd_weight) * ce`."),
        (w * tau ** 2 * (F.kl_div(F.softmax(s_adv / tau, 1), soft, reduction="sum") / soft.numel()).item() + ce,
         "`F.kl_div` expects log-probabilities as its first argument; you passed probabilities. Hint: "
         "`F.log_softmax(model(x_adv) / tau, 1)`."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (τ = {tau:g}, w = {kd_weight:g}: "
                      f"τ²·KL = {tau ** 2 * kl:.4g}, clean cross-entropy {ce_nat:.4g}). Hint: KL(softmax(T/τ) ‖ "
                      f"softmax(S(x_adv)/τ)) summed over everything and divided by batch × classes, times w·τ², plus "
                      f"(1 − w)·CE(S(x), y).")


@exercise("w·τ²·KL(softmax(T(x)/τ) ‖ softmax(S(x_adv)/τ)), averaged over batch × classes, + (1 − w)·CE(S(x), y), "
          "as in the ARD code and the training method ard of advlib.losses.")
def check_ard_loss(fn):
    """``fn(model, x, x_adv, y, teacher_logits, tau, kd_weight)`` must return ARD's loss for the given x_adv and
    teacher logits, with gradients through the student's predictions, and leave the model's mode as it found it."""
    return check_loss(fn, _ard_cases(), _ard_reference, _ard_mistakes,
                      "Your loss has the right value but the wrong gradients: the gradient must flow through the "
                      "student's predictions (on x_adv, and on x for the cross-entropy). Hint: do not `.detach()` (or "
                      "compute under `torch.no_grad()`) `model(x_adv)` or `model(x)`."), []


# --------------------------------------------------------------------------- IAD's loss


def _iad_cases() -> list[dict]:
    """The official setting (τ = 1, β = 0.1), then τ = 4, β = 0.5; the teacher confidently right on every clean
    image, right on x_adv for the first two images (trust near 1) and wrong on the others."""
    x, x_adv, y, t = _teacher_cases(43)
    g = torch.Generator().manual_seed(45)
    t_adv = 3 * torch.randn(4, 10, generator=g)
    y = torch.where(torch.arange(4) < 2, t_adv.argmax(1), torch.where(y == t_adv.argmax(1), (y + 1) % 10, y))
    t = t + 8 * F.one_hot(y, 10)
    base = dict(x=x, x_adv=x_adv, y=y, teacher_logits=t, teacher_adv_logits=t_adv)
    return [dict(base, tau=1.0, beta=0.1), dict(base, tau=4.0, beta=0.5)]


def _iad_reference(model, x, x_adv, y, teacher_logits, teacher_adv_logits, tau, beta) -> torch.Tensor:
    """IAD-I's loss after its warm-up as the training method iad of advlib.losses computes it (w = 1) for this x_adv
    and these teacher logits (tests/test_exercises.py checks the two agree)."""
    s_adv = model(x_adv)
    loss = tau ** 2 * F.kl_div(F.log_softmax(s_adv / tau, 1), F.softmax(teacher_logits / tau, 1), reduction="batchmean")
    trust = F.softmax(teacher_adv_logits, 1).gather(1, y[:, None]).squeeze(1) ** beta
    self_kl = F.kl_div(F.log_softmax(s_adv, 1), F.softmax(model(x), 1), reduction="none").sum(1)
    return loss + (self_kl * (1 - trust)).mean()


def _iad_mistakes(v, expected, model, x, x_adv, y, teacher_logits, teacher_adv_logits, tau, beta) -> tuple[list, str]:
    with torch.no_grad():
        s_adv, s_nat, t, t_adv = model(x_adv), model(x), teacher_logits, teacher_adv_logits
        c = t.shape[1]

        def kl_rows(target_logits, logits, temp=1.0):  # KL(softmax(target/temp) ‖ softmax(logits/temp)) per example
            return F.kl_div(F.log_softmax(logits / temp, 1), F.softmax(target_logits / temp, 1),
                            reduction="none").sum(1)

        def p_y(logits):
            return F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)

        distil_rows = tau ** 2 * kl_rows(t, s_adv, tau)
        distil = distil_rows.mean().item()
        self_rows = kl_rows(s_nat, s_adv)
        a = p_y(t_adv) ** beta
        intro = (self_rows * (1 - a)).mean().item()

        def with_weight(weight):
            return distil + (self_rows * weight).mean().item()
    variants = [
        (distil, "Your loss has the distillation term only: after its warm-up IAD adds the introspection term, "
         "(1 − a)·KL(S(x) ‖ S(x')), which pulls the student towards its own clean prediction where the teacher is not "
         "to be trusted. Hint: add the batch mean of (1 − a) times the per-example KL."),
        (with_weight(a), "You weighted the introspection term by a, the teacher's trust; it gets 1 − a: the student "
         "should listen to itself where the teacher is *not* reliable on x'. Hint: `(1 - a)`."),
        (with_weight(1 - p_y(t_adv)), "Your trust a is the teacher's probability of the true class without the power "
         "β: IAD uses a = p_y^β (β = 0.1 in the official code), which keeps the trust close to 1 unless the teacher "
         "is badly wrong. Hint: `** beta`."),
        (with_weight(1 - p_y(t) ** beta), "Your trust is the teacher's probability on the clean x; IAD asks how much "
         "to trust the teacher on the *adversarial* input x', its prediction T(x'). Hint: use `teacher_adv_logits`."),
        (with_weight(1 - p_y(t_adv / tau) ** beta), "Your trust uses the teacher's probabilities at temperature τ; IAD "
         "takes them at temperature 1 (in advlib, `teacher.probs(x_adv)`; the code's `F.softmax(teacher(x_adv))`). "
         "Hint: `F.softmax(teacher_adv_logits, 1)`."),
        ((distil_rows * a).mean().item() + intro, "You weighted the distillation term by a: in the official IAD-I code "
         "(and advlib.losses.iad) the first term is not weighted, only the introspection term is (by 1 − a)."),
        (distil + (kl_rows(s_adv, s_nat) * (1 - a)).mean().item(), "Your introspection KL is reversed: the student's "
         "clean prediction is the target, KL(S(x) ‖ S(x')), as the distillation term has the teacher's. Hint: "
         "`F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction='none').sum(1)`."),
        (distil + (kl_rows(s_nat, s_adv, tau) * (1 - a)).mean().item(), "Your introspection term is at temperature τ; "
         "IAD compares the student's own predictions at temperature 1 (only the distillation term is softened)."),
        (distil / tau ** 2 + intro, f"Your distillation term is not multiplied by τ² (τ = {tau:g}). Hint: "
         f"`tau**2 * kl`."),
        (distil / c + intro, f"Your distillation KL is averaged over the {c} classes too; it is summed over the classes "
         f"and averaged over the batch (`reduction='batchmean'`)."),
        (distil + intro / c, f"Your introspection KL is averaged over the {c} classes too; sum it over the classes "
         f"for one KL per example, weight each, then average over the batch."),
        (tau ** 2 * kl_rows(t, s_nat, tau).mean().item() + intro, "Your distillation term uses the student on the "
         "clean x; IAD distils into its prediction on the adversarial example x'."),
        (tau ** 2 * kl_rows(t_adv, s_adv, tau).mean().item() + intro, "Your soft labels are the teacher's on x'; the "
         "distillation term uses the teacher on the clean x (`teacher_logits`), its prediction on x' only sets the "
         "trust a."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (distillation term "
                      f"τ²·KL = {distil:.4g}, introspection term {intro:.4g}, τ = {tau:g}, β = {beta:g}). Hint: "
                      f"τ²·batchmean KL(softmax(T(x)/τ) ‖ softmax(S(x')/τ)) + batch mean of (1 − a)·KL(softmax S(x) ‖ "
                      f"softmax S(x')), a = softmax(T(x'))_y^β.")


@exercise("τ²·KL(T^τ(x) ‖ S^τ(x')) + (1 − a)·KL(S(x) ‖ S(x')) with a = softmax(T(x'))_y^β, each KL summed over the "
          "classes and averaged over the batch, as in the IAD-I code and the training method iad of advlib.losses.")
def check_iad_loss(fn):
    """``fn(model, x, x_adv, y, teacher_logits, teacher_adv_logits, tau, beta)`` must return IAD-I's loss after its
    warm-up, the gradient flowing through the student's predictions on x' and on x, and leave the mode alone."""
    return check_loss(fn, _iad_cases(), _iad_reference, _iad_mistakes,
                      "Your loss has the right value but the wrong gradients: in the IAD code nothing of the student is "
                      "detached, the gradient flows through S(x') and through the student's clean prediction S(x) in "
                      "the introspection term too. Hint: do not `.detach()` `model(x)` or `model(x_adv)`."), []


# --------------------------------------------------------------------------- RSLAD's inner maximisation


def _rslad_attack_cases():
    """(x, teacher_probs, eps, alpha, steps, noise): RSLAD's training attack on CIFAR-10 (10 steps of 2/255 at
    8/255), and a larger budget with fewer, larger steps; confident and softer teachers."""
    x = images(4, seed=51)
    g = torch.Generator().manual_seed(52)
    return [(x, F.softmax(scale * torch.randn(4, 10, generator=g), 1), eps, alpha, steps,
             torch.randn(x.shape, generator=g))
            for scale, eps, alpha, steps in ((3.0, 8 / 255, 2 / 255, 10), (1.0, 0.1, 0.04, 4))]


def _kl_objective(target: torch.Tensor):
    """The per-sample KL(target ‖ softmax(logits)) that RSLAD's attack ascends (summed over the batch)."""
    return attacks.objective("kl", target=target)


def normal_start(x: torch.Tensor, eps: float, noise: torch.Tensor) -> torch.Tensor:
    """RSLAD's (and TRADES') start: x + 0.001·noise (noise standard normal), projected onto the ball ∩ [0,1]."""
    return attacks.project(x + 0.001 * noise, x, eps)


_RSLAD_FORMULA = ("start at Π(x + 0.001·noise); then `steps` times x_adv ← Π(x_adv + α·sign(∇ Σ KL(t ‖ softmax S(x_adv)))), "
                  "Π = clip to [x - ε, x + ε], then to [0, 1]; the gradient in evaluation mode.")


def _rslad_attack_diagnosis(fn, out, x, t, eps, alpha, steps, noise, ref, mask) -> list[str]:
    start = normal_start(x, eps, noise)
    model = fixed_model()
    y = t.argmax(1)  # the objectives below ignore it, except the hard-label cross-entropy

    def run(start_=start, objective=_kl_objective(t), eps_=eps, alpha_=alpha, steps_=steps, **kw):
        return lambda: pgd_trajectory(model, x, y, eps_, alpha_, steps_, start_, objective, **kw)

    def own_prediction(logits, _y):  # TRADES' inner maximisation: KL from the student's own clean prediction
        with torch.no_grad():
            p = F.softmax(model(x), 1)
        return F.kl_div(F.log_softmax(logits, 1), p, reduction="none").sum(1)

    def reversed_kl(logits, _y):
        return (F.softmax(logits, 1) * (F.log_softmax(logits, 1) - torch.log(t))).sum(1)

    moved = (out - x).abs().max().item()
    variants = [
        (run(start_=x.clone()), "Your attack starts at the clean x: RSLAD's (like TRADES') starts at x + 0.001·noise. "
         "It matters: the gradient of the KL at the very point where the student's prediction is computed is not the "
         "gradient a step away. Hint: add 0.001·noise to x (and project) before the first step."),
        (run(start_=attacks.project(x + eps * noise, x, eps)), "Your start is x + ε·noise: RSLAD's start is a tiny "
         "Gaussian step, x + 0.001·noise (noise is standard normal), not a point spread over the ball. Hint: "
         "`x + 0.001 * noise`, projected."),
        (run(start_=attacks.project(x + noise, x, eps)), "Your start is x + noise, not scaled: noise is standard "
         "normal, so the start lands on the corners of the ball. Hint: `x + 0.001 * noise`, projected."),
        (run(start_=x + 0.001 * noise), "Your start x + 0.001·noise is not clamped to [0,1]: near black and white "
         "pixels it leaves the image range. Hint: project the start like every iterate."),
        (run(objective=lambda logits, _y: F.cross_entropy(logits, y, reduction="none")), "Your attack maximises the "
         "cross-entropy with the teacher's top class: RSLAD's attack uses no hard label at all, it maximises the KL "
         "divergence from the teacher's soft labels, KL(t ‖ softmax S(x')). Hint: the loss of each step is "
         "`F.kl_div(F.log_softmax(model(x_adv), 1), teacher_probs, reduction='sum')`."),
        (run(objective=own_prediction), "Your attack maximises the KL from the student's own clean prediction: that "
         "is TRADES' inner maximisation. RSLAD's target is the teacher's soft label, `teacher_probs`, which is also "
         "what its outer loss matches. Hint: `F.kl_div(F.log_softmax(model(x_adv), 1), teacher_probs, "
         "reduction='sum')`."),
        (run(objective=reversed_kl), "You reversed the KL divergence: RSLAD's attack maximises KL(t ‖ softmax S(x')), "
         "the teacher's soft labels as the target. `F.kl_div(input, target)` wants the student's log-probabilities "
         "as input and the teacher's probabilities as target."),
        (run(objective=_kl_objective(F.softmax(t, 1))), "`teacher_probs` are already probabilities; you passed them "
         "through a softmax again, which flattens them towards uniform. Hint: use them as the KL's target as they "
         "are."),
        (run(proj="box"), f"Your steps are never projected onto the ε-ball around x, only onto [0,1], so the iterates "
         f"drift out of the ball (max |x_adv - x| = {moved:.3g} > ε = {eps:.4g}). Hint: after every step, "
         f"{PROJECT_HINT}"),
        (run(proj="ball"), "Your iterates are projected onto the ε-ball but not onto [0,1]: x_adv has values outside "
         "the image range. Hint: after the clip to [x - ε, x + ε], clamp to [0, 1] too (`torch.clamp`)."),
        (run(proj="none"), f"Your steps are not projected at all: x_adv leaves the ε-ball (max |x_adv - x| = "
         f"{moved:.3g} > ε = {eps:.4g}) and [0,1]. Hint: after every step, {PROJECT_HINT}"),
        (run(step="raw"), "Your steps follow the raw gradient, α·∇J; PGD for L∞ steps along its *sign*, α·sign(∇J), "
         "which moves every pixel by α. Hint: `torch.sign` (or `.sign()`)."),
        (run(step="raw_mean"), "Your steps follow the raw gradient, α·∇J; PGD for L∞ steps along its *sign*, "
         "α·sign(∇J), which moves every pixel by α. Hint: `torch.sign` (or `.sign()`)."),
        (run(direction=-1.0), "Your steps go down the gradient, *lowering* the KL: the attack looks for the point where "
         "the student disagrees most with the teacher. Hint: x_adv + α·sign(∇J), not minus."),
        (run(grad_at="clean"), "You take every gradient at (a copy of) the clean x; PGD takes it at the current "
         "iterate x_adv. Hint: in the loop, run the model on a requires-grad copy of x_adv."),
    ] + loop_mistakes(run, ref, x, mask, eps, alpha, steps)
    msg = nondeterminism_issue(fn, out, (x, t, eps, alpha, steps, noise), "noise") or first_match(out, variants)
    if msg:
        return [msg]
    return attack_fallback(out, ref, mask, x, eps, _RSLAD_FORMULA)


@exercise("RSLAD's inner maximisation as advlib.attacks.pgd(loss='kl', target=teacher_probs, random_start='normal') "
          "computes it: the start x + 0.001·noise, `steps` signed-gradient ascent steps of α on the summed "
          "KL(teacher ‖ student), each projected onto the ε-ball around x and onto [0,1], in evaluation mode.")
def check_rslad_attack(fn):
    """``fn(model, x, teacher_probs, eps, alpha, steps, noise)`` must return the last iterate of PGD on the summed
    KL(teacher_probs ‖ softmax(model(x_adv))) from Π(x + 0.001 * noise), detached, leaving its arguments, the mode of
    every module, the batch-norm statistics and ``p.grad`` as they were."""
    for x, t, eps, alpha, steps, noise in _rslad_attack_cases():
        ref, mask = pgd_trajectory(fixed_model(), x, t.argmax(1), eps, alpha, steps, normal_start(x, eps, noise),
                                   _kl_objective(t))
        model = fixed_model()
        x_in, t_in, noise_in = x.clone(), t.clone(), noise.clone()
        watch = Watch(model, x=x_in, teacher_probs=t_in, noise=noise_in)
        out = call(fn, model, x_in, t_in, eps, alpha, steps, noise_in)
        out, side = attack_output(out, x, "x_adv", watch, "detach it (`.detach()`) before returning it.")
        if out is None:
            return side, []
        feasible = not feasibility_issues(out, x, eps, "x_adv", "")
        if not (feasible and same(out, ref, mask)):
            return _rslad_attack_diagnosis(fn, out, x, t, eps, alpha, steps, noise, ref, mask) + side, []
        if side:
            return side, []
    x, t, eps, alpha, steps, noise = _rslad_attack_cases()[0]
    watch = on_batchnorm_model(fn, x, t, eps, alpha, steps, noise)
    return watch.mode_issues() + watch.statistics_issues("the attack of every training step"), []


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


# --------------------------------------------------------------------------- the notebook's exercise cells


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
    Exercise(check_ard_loss, "ard_loss", statement=r"""
### Exercise: ARD's loss

ARD (Goldblum et al. 2020) distils the teacher's soft labels on the **clean** image into the student's prediction on the **adversarial** example $x'$, both softened by a temperature $\tau$, and mixes in the cross-entropy on the clean image with weight $1 - w$:

$$\mathcal{L}(\theta) = w\,\tau^2\,\mathrm{KL}\big(\mathrm{softmax}(T(x)/\tau)\,\big\|\,\mathrm{softmax}(S(x')/\tau)\big) + (1 - w)\,\mathrm{CE}\big(S(x), y\big).$$

The official code uses $\tau = 30$ and $w = 1$ (pure distillation), and computes the KL with `nn.KLDivLoss()`'s default reduction of 2020: the element-wise terms $t_k(\log t_k - \log s_k)$ **summed and divided by batch × classes** (not PyTorch's `batchmean`). The factor $\tau^2$ gives the softened gradients back their size (Hinton et al. 2015). Write `ard_loss(model, x, x_adv, y, teacher_logits, tau, kd_weight)` that returns $\mathcal{L}$ as a scalar tensor ($w$ = `kd_weight`; `teacher_logits` $= T(x)$, given).

*Hints.* `F.kl_div(input, target, reduction='sum')` with the student's `F.log_softmax(model(x_adv) / tau, 1)` as input and the teacher's `F.softmax(teacher_logits / tau, 1)` as target; divide by the target's number of elements (`.numel()`).
""", starter=r'''
import torch
import torch.nn.functional as F

def ard_loss(model, x, x_adv, y, teacher_logits, tau, kd_weight):
    """Return kd_weight * tau^2 * KL(softmax(T/tau) || softmax(S(x_adv)/tau)) (mean over batch x classes) + (1 - kd_weight) * CE(S(x), y)."""
    # Your code here.
    raise NotImplementedError
'''),
    Exercise(check_iad_loss, "iad_loss", statement=r"""
### Exercise: IAD's loss

IAD (Zhu et al. 2022) notices that the teacher is not always right on the student's adversarial examples, and lets the student partly trust **itself** there. With $a = \mathrm{softmax}\big(T(x')\big)_y^{\beta}$ the teacher's probability of the true class on $x'$ to the power $\beta$ (its *trust*, a constant: no gradient), IAD-I's loss after its warm-up is

$$\mathcal{L}(\theta) = \tau^2\,\mathrm{KL}\big(\mathrm{softmax}(T(x)/\tau)\,\big\|\,\mathrm{softmax}(S(x')/\tau)\big) + \big(1 - a\big)\,\mathrm{KL}\big(\mathrm{softmax}\,S(x)\,\big\|\,\mathrm{softmax}\,S(x')\big),$$

each KL summed over the classes and averaged over the batch, the second weighted per example before averaging. The official code (ZFancy/IAD, `IAD-I.py`) uses $\tau = 1$, $\beta = 0.1$, does not weight the first term, and does not detach the student's clean prediction $S(x)$. Write `iad_loss(model, x, x_adv, y, teacher_logits, teacher_adv_logits, tau, beta)` that returns $\mathcal{L}$ as a scalar tensor (`teacher_logits` $= T(x)$, `teacher_adv_logits` $= T(x')$, given).

*Hints.* `gather` picks the true class's probability. `F.kl_div(input, target, reduction='none').sum(1)` is one KL per example, $\mathrm{KL}(\text{target} \,\|\, \cdot)$ with `input` in log-probabilities.
""", starter=r'''
import torch
import torch.nn.functional as F

def iad_loss(model, x, x_adv, y, teacher_logits, teacher_adv_logits, tau, beta):
    """Return tau^2 * KL(T^tau(x) || S^tau(x_adv)) + mean over the batch of (1 - a) * KL(S(x) || S(x_adv)), a = p_y(T(x_adv))^beta."""
    # Your code here: the distillation term; the trust a (no gradient); the weighted introspection term.
    raise NotImplementedError
'''),
    Exercise(check_rslad_attack, "rslad_attack", statement=r"""
### Exercise: RSLAD's inner maximisation

RSLAD crafts its training examples against the teacher's soft labels $t = \mathrm{softmax}\,T(x)$, with no hard label: PGD on the KL divergence between the teacher's clean prediction and the student's on $x'$, summed over the batch, from a tiny Gaussian start (the official `rslad_loss.py`, as TRADES):

$$x^{0} = \Pi_{S(x)}\big(x + 0.001\,n\big), \qquad x^{t+1} = \Pi_{S(x)}\Big(x^{t} + \alpha\,\mathrm{sign}\big(\nabla_{x}\textstyle\sum_{k} \mathrm{KL}\big(t^{(k)}\,\big\|\,\mathrm{softmax}\,S(x^{t,(k)})\big)\big)\Big),$$

with $n$ standard normal and $\Pi_{S(x)}$ the projection onto the ε-ball around $x$ and $[0,1]$. Write `rslad_attack(model, x, teacher_probs, eps, alpha, steps, noise)` that returns $x^{\text{steps}}$, detached; `noise` holds $n$, drawn for you (in training, `torch.randn_like(x)`), so that the check can compare your result with `advlib.attacks.pgd(..., loss="kl", target=teacher_probs, random_start="normal")`. Compute the gradients in evaluation mode (RSLAD crafts with the student in `eval()`), give the caller's mode back, and leave the arguments and `p.grad` unchanged.

*Hints.* The loop is SAT's (notebook 03's exercise) with another objective and another start: `F.kl_div(F.log_softmax(model(x_adv), 1), teacher_probs, reduction='sum')`.
""", starter=r'''
import torch
import torch.nn.functional as F

def rslad_attack(model, x, teacher_probs, eps, alpha, steps, noise):
    """Return RSLAD's x_adv: start at proj(x + 0.001 * noise), then `steps` signed-gradient steps on the summed KL(teacher || student), each projected."""
    # Your code here.
    raise NotImplementedError
'''),
    Exercise(check_adaad_step, "adaad_step", statement=r"""
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
'''),
)
