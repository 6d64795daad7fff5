"""Exercises of notebook 04_trades_mart_cifar10: the TRADES objective, the MART objective.

Both are losses for a given adversarial example, so they are checked on the tiny fixed network of
:mod:`.harness` (MNIST-sized inputs: a loss does not care about the data set)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import attacks
from .cells import Exercise
from .harness import call, check_loss, exercise, fixed_model, gradient_issues, images, labels

__all__ = ["check_trades_loss", "check_mart_loss", "NOTEBOOK", "EXERCISES"]


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
)
