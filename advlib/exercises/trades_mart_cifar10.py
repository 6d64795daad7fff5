"""Exercises of notebook 04_trades_mart_cifar10: the TRADES objective, the MART objective, one step of AWP.

The first two are losses for a given adversarial example, the third a training step on one, so they are checked
on the tiny fixed networks of :mod:`.harness` (MNIST-sized inputs: a loss does not care about the data set)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import attacks
from ..losses import awp
from .cells import Exercise
from .harness import (Watch, as_number, batchnorm_model, call, check_loss, close, exercise, fixed_model,
                      gradient_issues, images, labels)

__all__ = ["check_trades_loss", "check_mart_loss", "check_awp_step", "NOTEBOOK", "EXERCISES"]


def _adversarial_like(x: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed stand-in for an adversarial example: x moved by ±0.3 on every pixel, clamped to [0,1]."""
    g = torch.Generator().manual_seed(seed)
    return (x + 0.3 * (torch.rand(x.shape, generator=g) * 2 - 1).sign()).clamp(0, 1)


# --------------------------------------------------------------------------- TRADES


def _trades_cases() -> list[dict]:
    x, y = images(4, seed=11), labels(4, seed=11)
    x_adv = _adversarial_like(x, 12)
    return [dict(x=x, x_adv=x_adv, y=y, beta=6.0), dict(x=x, x_adv=x_adv, y=y, beta=2.5)]


def _trades_reference(model, x, x_adv, y, beta) -> torch.Tensor:
    """TRADES' objective for a given x_adv, with the library's KL term: advlib.attacks.objective('kl'), the
    per-sample KL(softmax f(x) ‖ softmax f(x_adv)) that TRADES' attack maximises, averaged over the batch
    (the batchmean KL of the training method trades)."""
    logits_clean, logits_adv = model(x), model(x_adv)
    kl = attacks.objective("kl", target=F.softmax(logits_clean, 1))(logits_adv, y).mean()
    return F.cross_entropy(logits_clean, y) + beta * kl


def _trades_mistakes(v, expected, model, x, x_adv, y, beta) -> tuple[list, str]:
    """(value of a typical mistake, its diagnosis) pairs, and the message for any other wrong value."""
    with torch.no_grad():
        lc, la = model(x), model(x_adv)
        ce_c, ce_a = F.cross_entropy(lc, y).item(), F.cross_entropy(la, y).item()
        per = F.kl_div(F.log_softmax(la, 1), F.softmax(lc, 1), reduction="none")
        per_rev = F.kl_div(F.log_softmax(lc, 1), F.softmax(la, 1), reduction="none")
        kl = per.sum(1).mean().item()
        kl_rev = per_rev.sum(1).mean().item()
        kl_sum, kl_elem = per.sum().item(), per.mean().item()
        kl_noLog = F.kl_div(F.softmax(la, 1), F.softmax(lc, 1), reduction="batchmean").item()
    n = len(y)
    variants = [
        (ce_c + beta * kl_rev, "You swapped the direction of the KL divergence: TRADES uses "
         "KL(p(x) ‖ p(x_adv)), the clean prediction as the target. `F.kl_div(input, target)` computes "
         "KL(target ‖ input) and wants log-probabilities as input. Hint: "
         "`F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction='batchmean')`."),
        (ce_c + kl, f"Your KL term is not multiplied by β (here β = {beta}). Hint: `ce + beta * kl`."),
        (beta * ce_c + kl, f"You multiplied the cross-entropy by β instead of the KL term. Hint: "
         f"`ce + beta * kl`."),
        (ce_a + beta * kl, "Your cross-entropy is on the adversarial inputs; TRADES puts the cross-entropy on "
         "the clean inputs (accuracy) and lets the KL term handle x_adv (robustness). Hint: "
         "`F.cross_entropy(model(x), y)`."),
        (ce_c + beta * kl_sum, f"Your KL term is summed over the batch (reduction='sum'), so it grows "
         f"with the batch size ({n}× too large here). Hint: `reduction='batchmean'` (the sum divided by "
         f"the batch size, as in the TRADES code)."),
        (ce_c + beta * kl_elem, "Your KL term uses reduction='mean', which also averages over the 10 "
         "classes (10× too small). Hint: `reduction='batchmean'`."),
        (ce_c + beta * kl_noLog, "`F.kl_div` expects log-probabilities as its first argument; you passed "
         "probabilities. Hint: `F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), "
         "reduction='batchmean')`."),
        (ce_a + beta * kl_rev, "Your cross-entropy is on x_adv and your KL divergence is reversed: TRADES "
         "is CE(f(x), y) + β·KL(p(x) ‖ p(x_adv)). Hint: `F.kl_div(F.log_softmax(model(x_adv), 1), "
         "F.softmax(model(x), 1), reduction='batchmean')`."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (clean cross-entropy "
                      f"{ce_c:.4g}, KL(p(x) ‖ p(x_adv)) = {kl:.4g}, β = {beta}). Hint: "
                      f"`F.cross_entropy(model(x), y) + beta * F.kl_div(F.log_softmax(model(x_adv), 1), "
                      f"F.softmax(model(x), 1), reduction='batchmean')`.")


@exercise("CE(f(x), y) + β·KL(softmax f(x) ‖ softmax f(x_adv)) with batchmean reduction, as in "
          "the training method trades of advlib.losses and the TRADES code.")
def check_trades_loss(fn):
    """``fn(model, x, x_adv, y, beta)`` must return CE(f(x), y) + beta * KL(p(x) || p(x_adv)), batchmean,
    and leave the model's mode as it found it."""
    return check_loss(fn, _trades_cases(), _trades_reference, _trades_mistakes,
                      "Your loss has the right value but the wrong gradients: in TRADES the gradient flows through "
                      "both predictions in the KL term, the clean one too. Hint: do not `.detach()` (or compute "
                      "under `torch.no_grad()`) `model(x)` or `model(x_adv)` inside the loss."), []


# --------------------------------------------------------------------------- MART


def _mart_cases() -> list[dict]:
    """Two β on one batch whose first two examples the fixed network classifies correctly on x_adv (there
    the strongest wrong class is the runner-up, not the top class) and whose others it gets wrong."""
    x, y = images(4, seed=13), labels(4, seed=13)
    x_adv = _adversarial_like(x, 14)
    with torch.no_grad():
        pred = fixed_model()(x_adv).argmax(1)
    y = torch.where(torch.arange(len(y)) < 2, pred, torch.where(y == pred, (y + 1) % 10, y))
    return [dict(x=x, x_adv=x_adv, y=y, beta=6.0), dict(x=x, x_adv=x_adv, y=y, beta=2.5)]


def _strongest_wrong(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The class of highest probability other than y, per example (MART ``mart.py`` l.44-46)."""
    top2 = p.topk(2, 1).indices
    return torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])


def _mart_reference(model, x, x_adv, y, beta, one: float = 1.0001) -> torch.Tensor:
    """MART's objective for a given x_adv, as the official code (``YisenWang/MART``, ``mart.py`` l.42-56) and
    the training method mart of advlib.losses compute it (tests/test_exercises.py checks the two agree);
    ``one``: the code's 1.0001 in the margin term log(1.0001 - q_j + 1e-12)."""
    logits_clean, logits_adv = model(x), model(x_adv)
    p_adv = F.softmax(logits_adv, 1)
    boosted_ce = (F.cross_entropy(logits_adv, y)
                  + F.nll_loss(torch.log(one - p_adv + 1e-12), _strongest_wrong(p_adv, y)))
    p_nat = F.softmax(logits_clean, 1)
    true_p = p_nat.gather(1, y[:, None]).squeeze(1)
    kl = F.kl_div(torch.log(p_adv + 1e-12), p_nat, reduction="none").sum(1)
    return boosted_ce + beta * (kl * (1.0000001 - true_p)).sum() / len(y)


def _mart_mistakes(v, expected, model, x, x_adv, y, beta) -> tuple[list, str]:
    """(value of a typical mistake, its diagnosis) pairs, and the message for any other wrong value."""
    with torch.no_grad():
        lc, la = model(x), model(x_adv)
        p, q = F.softmax(lc, 1), F.softmax(la, 1)  # natural and adversarial probabilities

        def margin(probs, cls):  # -log(1.0001 - probs[k, cls_k] + 1e-12), per example
            return -torch.log(1.0001 - probs.gather(1, cls[:, None]).squeeze(1) + 1e-12)

        ce_a, ce_c = F.cross_entropy(la, y, reduction="none"), F.cross_entropy(lc, y, reduction="none")
        boost = margin(q, _strongest_wrong(q, y))
        boost_true, boost_top = margin(q, y), margin(q, q.argmax(1))
        boost_clean = margin(p, _strongest_wrong(p, y))
        kl = F.kl_div(torch.log(q + 1e-12), p, reduction="none").sum(1)  # KL(p ‖ q) per example
        kl_rev = F.kl_div(torch.log(p + 1e-12), q, reduction="none").sum(1)
        kl_nolog = F.kl_div(q, p, reduction="none").sum(1)
        p_y, q_y = p.gather(1, y[:, None]).squeeze(1), q.gather(1, y[:, None]).squeeze(1)
        w = 1.0000001 - p_y
        bce = (ce_a + boost).mean().item()
        robust = (kl * w).mean().item()
    n, c = len(y), p.shape[1]
    m = lambda t: t.mean().item()  # noqa: E731
    variants = [
        (m(ce_a) + beta * robust, "Your loss has no boost term: MART's first term is a *boosted* cross-entropy on "
         "x_adv, the cross-entropy plus a margin term −log(1 − q_j) that also pushes down the strongest wrong "
         "class j. Hint: take j from the adversarial probabilities and add the batch mean of −log(1.0001 − q_j + "
         "1e-12): `F.nll_loss` does it, given the log of (1.0001 − q + 1e-12) and j as its target."),
        (m(ce_a - boost) + beta * robust, "Your margin term has the wrong sign: MART *adds* −log(1 − q_j), which "
         "grows as the strongest wrong class j gains probability. Hint: `F.nll_loss(logprobs, j)` already returns "
         "the mean of −logprobs[k, j_k]; add it to the cross-entropy."),
        (m(ce_a + boost_true) + beta * robust, "Your margin term uses the true class y; MART's boost uses the "
         "strongest *wrong* class j, the class of highest adversarial probability other than y, and pushes its "
         "probability down. Hint: take the top two classes of q (`topk(2, dim=1)`) and pick the second where the "
         "first is y (`torch.where`)."),
        (m(ce_a + boost_top) + beta * robust, "Your margin term uses the top class of q, which is the true class "
         "wherever the model classifies x_adv correctly; MART uses the strongest class *other than* y. Hint: take "
         "the top two classes of q (`topk(2, dim=1)`) and pick the second where the first is y (`torch.where`)."),
        (m(ce_c + boost) + beta * robust, "Your cross-entropy is on the clean x; MART's boosted cross-entropy is on "
         "the adversarial example (the clean input appears only in the KL term and its weight). Hint: "
         "`F.cross_entropy` on `model(x_adv)`."),
        (m(ce_c + boost_clean) + beta * robust, "Your boosted cross-entropy is on the clean x; MART computes it on "
         "the adversarial example, with the strongest wrong class taken from the adversarial probabilities too. "
         "Hint: both parts of the boosted CE use `model(x_adv)`."),
        (bce + beta * m(kl * p_y), "Your KL term is weighted by p_y(x), the confidence in the true class; MART "
         "weights it by 1 − p_y(x), so that the examples the model gets wrong (low p_y) count most. Hint: weight "
         "each example's KL by 1.0000001 − p_y, with p_y picked from the natural probabilities by `gather`."),
        (bce + beta * m(kl), "Your KL term is not weighted: MART multiplies each example's KL by 1 − p_y(x), its "
         "natural probability of the true class, before averaging over the batch. Hint: pick p_y from the "
         "natural probabilities with `gather` and multiply each example's KL by 1.0000001 − p_y."),
        (bce + beta * m(kl * (1.0000001 - q_y)), "Your weight uses the adversarial probability of the true class; "
         "MART weights by 1 − p_y(x) on the *clean* input (how unsure the model is about x itself). Hint: gather "
         "p_y from the softmax of `model(x)`."),
        (bce + beta * m(kl_rev * w), "You swapped the direction of the KL divergence: MART uses KL(p(x) ‖ p(x_adv)), "
         "the natural probabilities as the target. `F.kl_div(input, target)` computes the terms of "
         "KL(target ‖ ·) and wants log-probabilities as input. Hint: the adversarial log-probabilities "
         "(the log of q + 1e-12) go first, the natural probabilities second."),
        (bce + beta * m(kl_nolog * w), "`F.kl_div` expects log-probabilities as its first argument; you passed "
         "probabilities. Hint: pass the log of the adversarial probabilities (plus 1e-12, as in the MART code)."),
        (bce + beta * robust / c, f"Your KL is averaged over the {c} classes too ({c}× too small): MART sums it over "
         f"the classes, weights each example's sum and then averages over the batch only. Hint: "
         f"`reduction='none'`, then `.sum(dim=1)` for one KL per example."),
        (bce + beta * m(kl) / c * m(w), f"Your KL uses reduction='mean', a single number averaged over the batch "
         f"*and* the {c} classes, so it is {c}× too small and the weight can no longer be applied per example. "
         f"Hint: `reduction='none'`, `.sum(dim=1)` for one KL per example, weight each, then average."),
        (bce + beta * m(kl) * m(w), "You weighted the KL after averaging it over the batch: MART multiplies each "
         "example's KL by its own weight 1 − p_y(x) and then averages. Hint: `reduction='none'`, `.sum(dim=1)`, "
         "multiply by the per-example weight, then `.mean()`."),
        (bce + beta * n * robust, f"Your KL term is summed over the batch without dividing by the batch size, so it "
         f"grows with the batch ({n}× too large here). Hint: average the weighted per-example KL over the batch, "
         f"as the MART code does with (1/batch_size)·sum."),
        (beta * bce + robust, f"You multiplied the boosted cross-entropy by β instead of the KL term (here "
         f"β = {beta}). Hint: β weighs only the robustness (KL) term."),
        (bce + robust, f"Your KL term is not multiplied by β (here β = {beta}). Hint: boosted CE + "
         f"β·(weighted KL)."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (boosted cross-entropy "
                      f"{bce:.4g}, of which cross-entropy on x_adv {m(ce_a):.4g}; weighted KL {robust:.4g}; "
                      f"β = {beta}). Hint: boosted CE = cross-entropy on x_adv + mean of −log(1.0001 − q_j "
                      f"+ 1e-12) at the strongest wrong class j; robust term = batch mean of KL(p(x) ‖ q) summed "
                      f"over the classes, with log(q + 1e-12), times 1.0000001 − p_y(x); loss = boosted CE + "
                      f"β·robust term.")


_MART_WRONG_GRADIENT = (
    "Your loss has the right value but the wrong gradients: in MART (the official code, and advlib.losses.mart) "
    "nothing is detached, the gradient flows through the natural probabilities p(x) in the KL term and through "
    "the weight 1 − p_y(x) too. Hint: do not `.detach()` (or compute under `torch.no_grad()`) `model(x)`, its "
    "softmax or the weight.")
_MART_MARGIN_CONSTANT = (
    "Your loss agrees with MART's to four digits, but its gradients are those of −log(1 − q_j) in the margin "
    "term: the MART code computes −log(1.0001 − q_j + 1e-12) (numerically safe where q_j is close to 1), and the "
    "small shift shows in the gradients. Hint: use the code's constants 1.0001 and 1e-12 in the margin term.")


def _gradients_match(fn, reference) -> bool:
    """``fn`` has the parameter gradients of ``reference`` on every MART case."""
    for case in _mart_cases():
        model, ref_model = fixed_model().train(), fixed_model().train()
        out = call(fn, model, *(v.clone() if torch.is_tensor(v) else v for v in case.values()))
        if gradient_issues(out, model, reference(ref_model, **case), ref_model, "differ"):
            return False
    return True


@exercise("boosted CE on x_adv (cross-entropy + −log(1 − q_j) at the strongest wrong class j) + β·mean of "
          "KL(p(x) ‖ p(x_adv)) weighted by 1 − p_y(x), as in the MART code and the training method mart of "
          "advlib.losses.")
def check_mart_loss(fn):
    """``fn(model, x, x_adv, y, beta)`` must return MART's loss for the given x_adv, as the official code
    computes it, with the gradient flowing through everything, and leave the model's mode as it found it."""
    problems = check_loss(fn, _mart_cases(), _mart_reference, _mart_mistakes, _MART_WRONG_GRADIENT)
    if problems == [_MART_WRONG_GRADIENT] and _gradients_match(fn, lambda *a, **k: _mart_reference(*a, **k, one=1.0)):
        problems = [_MART_MARGIN_CONSTANT]
    return problems, []


# --------------------------------------------------------------------------- one step of AWP

_AWP_LR, _AWP_MOMENTUM, _AWP_DECAY = 0.05, 0.9, 5e-4


def _awp_cases() -> list[tuple[int, float]]:
    """(seed of the batch, γ): larger than the papers' 0.005-0.01, so that on this tiny network the typical mistakes
    move the weights well beyond the comparison's tolerance (the larger γ first: with it even a perturbation removed
    before the optimizer's step, which differs only through the weight decay, shows)."""
    return [(33, 0.2), (31, 0.05)]


def _awp_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = images(4, seed=seed)
    return _adversarial_like(x, seed + 50), labels(4, seed=seed)


def _awp_mid_training(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    """:func:`~.harness.batchnorm_model` (training mode) with SGD (momentum 0.9, weight decay 5e-4) after one plain
    step on another batch: its momentum buffers are set and ``p.grad`` holds that step's gradients."""
    model = batchnorm_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=_AWP_LR, momentum=_AWP_MOMENTUM, weight_decay=_AWP_DECAY)
    x, y = images(4, seed=seed + 1), labels(4, seed=seed + 1)
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return model, optimizer


def _awp_reference(model, optimizer, x_adv, y, gamma) -> float:
    """One AT-AWP step on the given x_adv as the training method awp_pgd of advlib.losses and the engine run it:
    the weight adversary's perturbation (:meth:`advlib.losses.awp.WeightAdversary.perturb`), the training pass at the
    perturbed weights, ``zero_grad``, backward, ``step``, and the perturbation removed (its ``after_step``)."""
    adversary = awp.WeightAdversary(model)
    adversary.perturb(lambda net: F.cross_entropy(net(x_adv), y), gamma)
    try:
        loss = F.cross_entropy(model(x_adv), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    finally:
        adversary.after_step(None)
    return loss.item()


def _awp_variant(model, optimizer, x_adv, y, gamma, *, which: str = "weights", mode: str = "train",
                 size: str = "layer", sign: float = 1.0, restore: str = "after") -> None:
    """A step of AWP with one thing changed (a typical mistake): ``which`` parameters are perturbed ('weights' or
    'all'), the gradient taken in ``mode``, the perturbation of ``size`` 'layer' (γ‖w_l‖ g_l/‖g_l‖), 'unit'
    (γ g_l/‖g_l‖), 'raw' (γ g_l) or 'global' (one norm for the whole network), of ``sign``, removed ``restore``
    'after' the optimizer's step, 'before' it or 'never'."""
    params = [p for p in model.parameters() if p.dim() > 1 or which == "all"]
    saved = [b.clone() for b in model.buffers()]
    with attacks.model_mode(model, mode):
        grads = torch.autograd.grad(F.cross_entropy(model(x_adv), y), params)
    with torch.no_grad():
        for b, s in zip(model.buffers(), saved):
            b.copy_(s)
        if size == "global":
            flat = lambda ts: torch.cat([t.flatten() for t in ts])  # noqa: E731
            ratio = gamma * flat(params).norm() / flat(grads).norm()
            v = [sign * ratio * g for g in grads]
        else:
            v = [sign * g * {"layer": gamma * p.norm() / (g.norm() + awp.TINY), "unit": gamma / (g.norm() + awp.TINY),
                             "raw": gamma}[size] for p, g in zip(params, grads)]
        for p, d in zip(params, v):
            p.add_(d)
    loss = F.cross_entropy(model(x_adv), y)
    optimizer.zero_grad()
    loss.backward()
    for when in ("before", "after"):
        if when == "after":
            optimizer.step()
        if restore == when:
            with torch.no_grad():
                for p, d in zip(params, v):
                    p.sub_(d)


def _plain_step(model, optimizer, x_adv, y, gamma) -> None:
    """A step of adversarial training on x_adv without any weight perturbation."""
    loss = F.cross_entropy(model(x_adv), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


_AWP_HINT = ("(1) g = the gradient of the cross-entropy on x_adv with respect to each weight with more than one "
             "dimension, in training mode; (2) v = γ·‖w‖·g/‖g‖ for each weight, added in place under "
             "`torch.no_grad()`; (3) `zero_grad`, the cross-entropy at the perturbed weights, backward, `step`; "
             "(4) subtract v again.")
_AWP_VARIANTS = [
    (_plain_step, "Your step is plain adversarial training: the optimizer stepped with the gradient at the weights w, "
     "not at the perturbed weights w + v (was the perturbation added before the training forward pass, and not "
     "zero?). Hint: " + _AWP_HINT),
    (dict(restore="never"), "Your step leaves the perturbation in the weights: AWP trains at w + v but keeps only the "
     "optimizer's update, so v must be subtracted again after `optimizer.step()`. Hint: keep the list of "
     "perturbations and `w.sub_(v)` each one after the step, inside `torch.no_grad()`."),
    (dict(sign=-1.0), "Your perturbation moves the weights *down* the gradient, towards a lower loss: AWP's adversary "
     "looks for the worst weights nearby, so v points up the gradient of the loss (v = +γ·‖w‖·g/‖g‖)."),
    (dict(size="raw"), "Your perturbation is γ times the gradient itself; AWP rescales each layer's perturbation to "
     "γ times that layer's weight norm, whatever the size of its gradient. Hint: v = γ·‖w‖·g/‖g‖ for each weight "
     "(`w.norm()`, `g.norm()`)."),
    (dict(size="unit"), "Your perturbation has norm γ in every layer; AWP makes it relative to the layer's own size, "
     "γ·‖w‖ (weights of very different scales all move by the same fraction). Hint: multiply by `w.norm()`."),
    (dict(size="global"), "You rescaled the perturbation with one norm for the whole network; AWP rescales layer by "
     "layer, so that each weight moves by γ times its own norm. Hint: compute `w.norm()` and `g.norm()` for each "
     "weight separately."),
    (dict(which="all"), "You perturbed every parameter; AWP perturbs only the weights with more than one dimension "
     "(convolution kernels and linear layers), not the biases or batch norm's scale and shift. Hint: "
     "`[p for p in model.parameters() if p.dim() > 1]`."),
    (dict(mode="eval"), "The gradient that gives your perturbation was taken in evaluation mode (batch norm normalised "
     "with its running statistics); AWP takes it in training mode, as the training pass that follows (the official "
     "code runs its proxy with `proxy.train()`). Hint: keep the model in training mode throughout."),
    (dict(restore="before"), "You removed the perturbation before `optimizer.step()`, so the optimizer stepped from "
     "w instead of w + v: its weight decay (and through it the momentum) acted on the unperturbed weights. AWP "
     "steps from the perturbed weights and subtracts v afterwards. Hint: subtract v after `optimizer.step()`."),
]
_AWP_STATISTICS = (
    "Your step changes the weights as AWP does, but it updated the batch-norm running statistics twice: the forward "
    "pass that finds the perturbation ran on the model itself in training mode, which updates them as the training "
    "pass does. The official code takes that gradient on a copy of the model (its *proxy*) for this reason. Hint: "
    "take it on `copy.deepcopy(model)` (the copy's weights in the same order), or save `[b.clone() for b in "
    "model.buffers()]` before and copy them back.")


def _awp_params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _awp_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(u, v, rtol=1e-4, atol=1e-6) for u, v in zip(a, b))


def _awp_stepped(seed: int, step, x_adv, y, gamma) -> list[torch.Tensor]:
    model, optimizer = _awp_mid_training(seed)
    if isinstance(step, dict):
        _awp_variant(model, optimizer, x_adv, y, gamma, **step)
    else:
        step(model, optimizer, x_adv, y, gamma)
    return _awp_params(model)


def _awp_diagnosis(out_params, seed, x_adv, y, gamma) -> str:
    if _awp_same(out_params, _awp_params(_awp_mid_training(seed)[0])):
        return ("Your function did not change the parameters: the training step never happened. Hint: after the "
                "backward pass at the perturbed weights, the optimizer applies the gradients (`optimizer.step()`).")
    for step, msg in _AWP_VARIANTS:
        if _awp_same(out_params, _awp_stepped(seed, step, x_adv, y, gamma)):
            return msg
    ref = _awp_stepped(seed, _awp_reference, x_adv, y, gamma)
    d = max((a - b).abs().max().item() for a, b in zip(out_params, ref))
    return (f"Your step changed the parameters differently from one step of AWP (largest difference {d:.3g}). Hint: "
            + _AWP_HINT)


def _awp_value_issue(out, ref: float, at_w: float) -> Optional[str]:
    """What is wrong with the returned value of a step whose parameters are right (None: nothing)."""
    if out is None:
        return ("Your function returned None; it should return the loss it trained on, the cross-entropy at the "
                "perturbed weights, as a Python float. Hint: end it with a `return`.")
    if torch.is_tensor(out):
        return (f"Your function returned a tensor{' attached to the autograd graph' if out.requires_grad else ''}; "
                f"return a Python float: a training loop logs numbers. Hint: `.item()`.")
    v = as_number(out)
    if v is None:
        return f"Your function returned a {type(out).__name__}; it should return the loss as a float."
    if close(v, ref):
        return None
    if close(v, at_w):
        return (f"You returned the loss at the unperturbed weights ({v:.4g}); return the one the step trained on, "
                f"at the perturbed weights w + v ({ref:.4g}).")
    return f"You returned {v:.4g}; the cross-entropy at the perturbed weights, before the update, is {ref:.4g}."


@exercise("one step of AT-AWP: each weight moved by γ·‖w‖·g/‖g‖ up the gradient of the cross-entropy on x_adv "
          "(batch-norm statistics left alone), the optimizer's step from the perturbed weights, the perturbation "
          "removed again, as the training method awp_pgd of advlib.losses and the AWP code do.")
def check_awp_step(fn):
    """``fn(model, optimizer, x_adv, y, gamma) -> float`` must update the parameters (and the batch-norm statistics)
    as one step of ``awp_pgd`` on the given x_adv does (SGD with momentum and weight decay, ``p.grad`` holding the
    previous step's gradients when it is called) and return the loss at the perturbed weights, leaving the model in
    training mode and x_adv unchanged."""
    for seed, gamma in _awp_cases():
        x_adv, y = _awp_batch(seed)
        ref_model, ref_opt = _awp_mid_training(seed)
        ref = _awp_reference(ref_model, ref_opt, x_adv, y, gamma)
        model, optimizer = _awp_mid_training(seed)
        x_in = x_adv.clone()
        watch = Watch(model, keep_grads=True, x_adv=x_in)
        out = call(fn, model, optimizer, x_in, y.clone(), gamma)
        problems = watch.mode_issues("a training step runs in training mode from start to end; if you switched to "
                                     "evaluation mode, switch back with `model.train()` before returning.")
        if not _awp_same(_awp_params(model), _awp_params(ref_model)):
            problems.append(_awp_diagnosis(_awp_params(model), seed, x_adv, y, gamma))
        else:
            unperturbed = _awp_mid_training(seed)[0]
            with torch.no_grad():
                at_w = F.cross_entropy(unperturbed(x_adv), y).item()
            issue = _awp_value_issue(out, ref, at_w)
            problems += [issue] if issue else []
            stats_ok = all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(model.buffers(),
                                                                                      ref_model.buffers()))
            problems += [] if stats_ok else [_AWP_STATISTICS]
        problems += watch.input_issues()
        if problems:
            return problems, []
    return [], []


# --------------------------------------------------------------------------- the notebook's exercise cells

NOTEBOOK = "04_trades_mart_cifar10"
EXERCISES = (
    Exercise(check_trades_loss, "trades_loss", statement=r"""
### Exercise 1: the TRADES objective

TRADES (Zhang et al. 2019) trades clean accuracy against robustness with

$$\mathcal{L}(\theta) = \mathrm{CE}\big(f(x), y\big) + \beta\, \frac{1}{n}\sum_{k=1}^{n} \mathrm{KL}\Big(\mathrm{softmax} f(x^{(k)}) \,\Big\|\, \mathrm{softmax} f(x_{adv}^{(k)})\Big),$$

the cross-entropy on the **clean** inputs plus $\beta$ times the KL divergence from the clean prediction to the prediction on the adversarial input, summed over classes and averaged over the batch (`reduction='batchmean'`, as in the TRADES code). Write `trades_loss(model, x, x_adv, y, beta)` that returns it as a scalar tensor.

*Hints.* `F.kl_div(input, target)` computes $\mathrm{KL}(\text{target} \,\|\, \cdot)$ and wants **log**-probabilities as `input`: `F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction='batchmean')`. Let the gradient flow through both predictions (no `.detach()`).
""", starter=r'''
import torch
import torch.nn.functional as F

def trades_loss(model, x, x_adv, y, beta):
    """Return CE(model(x), y) + beta * KL(softmax model(x) || softmax model(x_adv)), batchmean."""
    # Your code here.
    raise NotImplementedError
'''),
    Exercise(check_mart_loss, "mart_loss", statement=r"""
### Exercise 2: the MART objective

MART (Wang et al. 2020) gives the examples the model gets wrong more weight. With $p^{(k)} = \mathrm{softmax} f(x^{(k)})$ the natural and $q^{(k)} = \mathrm{softmax} f(x_{adv}^{(k)})$ the adversarial probabilities of example $k$, and $j_k = \arg\max_{j \ne y_k} q^{(k)}_j$ its strongest wrong class on $x_{adv}$:

$$\mathcal{L}(\theta) = \underbrace{\frac{1}{n}\sum_{k=1}^{n} \Big[-\log q^{(k)}_{y_k} - \log\big(1 - q^{(k)}_{j_k}\big)\Big]}_{\text{boosted CE}} + \beta\, \frac{1}{n}\sum_{k=1}^{n} \mathrm{KL}\big(p^{(k)} \,\big\|\, q^{(k)}\big)\,\big(1 - p^{(k)}_{y_k}\big).$$

The boosted cross-entropy on $x_{adv}$ also pushes down the strongest wrong class; the KL term asks the prediction to stay the same inside the ball, weighted by $1 - p_y(x)$, so that it counts most where the model is unsure of (or wrong about) the clean input. Write `mart_loss(model, x, x_adv, y, beta)` that returns $\mathcal{L}$ as a scalar tensor, computed as the official code does (`YisenWang/MART`, `mart.py` l.42–56, and `advlib.losses.mart`): $-\log(1.0001 - q_{j} + 10^{-12})$ in the margin term, $\log(q + 10^{-12})$ in the KL, the KL summed over the classes, the weight $1.0000001 - p_{y}$, and the weighted KL averaged over the batch.

*Hints.* For $j_k$, take the two most probable classes of $q$ (`topk`) and keep the runner-up where the top one is $y$ (`torch.where`). `F.nll_loss(logprobs, target)` is the batch mean of $-$`logprobs[k, target_k]`, so it turns $\log(1.0001 - q + 10^{-12})$ into the margin term. `F.kl_div(input, target, reduction='none')` gives the terms of $\mathrm{KL}(\text{target} \,\|\, \cdot)$ with `input` in **log**-probabilities; sum them over the classes to get one KL per example before weighting. `gather` picks $p_y$. Detach nothing: in MART the gradient flows through $p$ and the weight too.
""", starter=r'''
import torch
import torch.nn.functional as F

def mart_loss(model, x, x_adv, y, beta):
    """Return MART's loss: boosted CE on x_adv + beta * mean_k KL(p(x_k) || p(x_adv_k)) * (1 - p_y(x_k))."""
    # Your code here: the natural and adversarial probabilities, the strongest wrong class,
    # the boosted cross-entropy, the weighted KL term.
    raise NotImplementedError
'''),
    Exercise(check_awp_step, "awp_step", statement=r"""
### Exercise 3: one step of AWP

AWP (Wu et al. 2020) perturbs the weights as well as the inputs. Before each training step it moves every weight matrix $w_l$ of the network (the convolution kernels and linear layers: the parameters with more than one dimension, not the biases or batch norm's scale and shift) up the gradient of the training loss on the adversarial batch, by a fixed fraction $\gamma$ of its own norm:

$$v_l = \gamma\,\lVert w_l\rVert\,\frac{g_l}{\lVert g_l\rVert}, \qquad g_l = \nabla_{w_l}\,\mathrm{CE}\big(f_w(x_{adv}), y\big).$$

It then trains at the perturbed weights and takes the perturbation out again: the optimizer steps from $w + v$ with the gradient $\nabla_w \mathrm{CE}\big(f_{w+v}(x_{adv}), y\big)$, and $v$ is subtracted afterwards, so that only the optimizer's update stays. Write `awp_step(model, optimizer, x_adv, y, gamma)` that does one such step of AT-AWP on the given adversarial batch and returns the loss it trained on (at $w + v$) as a Python float, with the model in training mode throughout, as the training method `awp_pgd` of `advlib.losses` and the official code (`csdongxian/AWP`, `AT_AWP/utils_awp.py`) do.

*Hints.* `torch.autograd.grad(loss, weights)` gives the $g_l$ without touching `p.grad`. That gradient needs a forward pass in training mode, which would update batch norm's running statistics a second time: take it on a copy of the model (`copy.deepcopy(model)`, the official code's *proxy*), or save the buffers (`model.buffers()`) and copy them back. Change the weights in place inside `torch.no_grad()` (`w.add_(v)`, after the step `w.sub_(v)`), and clear the gradients before the backward pass (`optimizer.zero_grad()`).
""", starter=r'''
import copy
import torch
import torch.nn.functional as F

def awp_step(model, optimizer, x_adv, y, gamma):
    """One step of AT-AWP: add gamma * ||w|| * g / ||g|| to each weight w with more than one dimension (g: its
    gradient of the cross-entropy on x_adv), train at the perturbed weights (zero_grad, backward, step), subtract
    the perturbation again; return the loss at the perturbed weights as a float."""
    # Your code here.
    raise NotImplementedError
'''),
)
