"""The self-checking exercises: every check accepts the reference solution (and equivalent answers),
and for each typical mistake returns False and prints its specific diagnosis, without raising."""
from __future__ import annotations

import importlib.util
import inspect
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from advlib import exercises as ex
from advlib.exercises import fgsm_mnist, harness

SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"solutions_{name}", SOLUTIONS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


S0, S1, S2 = _load("00_setup"), _load("01_fgsm_mnist"), _load("02_adversarial_training_mnist")
S2b = _load("02b_adversarial_training_in_practice_mnist")
S3 = _load("03_pgd_training_cifar10")
S4 = _load("04_trades_mart_cifar10")
S5 = _load("05_rslad_distillation_cifar10")
S6 = _load("06_evaluating_robustness")


def run(check, fn, capsys):
    result = check(fn)
    out = capsys.readouterr().out
    assert isinstance(result, bool)
    return result, out


def fails_with(check, fn, capsys, *phrases):
    result, out = run(check, fn, capsys)
    assert result is False, out
    assert out.startswith("❌"), out
    for p in phrases:
        assert p in out, f"expected {p!r} in:\n{out}"
    return out


# --------------------------------------------------------------------------- solutions, stubs, errors

CHECKS = [
    (ex.check_linf_projection, S0.project_linf),
    (ex.check_linf_distance, S0.linf_distance),
    (ex.check_fgsm, S1.my_fgsm),
    (ex.check_robust_accuracy, S1.robust_accuracy),
    (ex.check_two_pass_step, S2.two_pass_step),
    (ex.check_pgd_step, S2.pgd_step),
    (ex.check_weighted_fgsm_loss, S2.weighted_fgsm_loss),
    (ex.check_prediction, S2b.predict),
    (ex.check_choose_eps, S2b.choose_eps),
    (ex.check_masked_table, S2b.explain),
    (ex.check_pgd_attack, S3.pgd_attack),
    (ex.check_choose_checkpoint, S3.choose_checkpoint),
    (ex.check_trades_loss, S4.trades_loss),
    (ex.check_mart_loss, S4.mart_loss),
    (ex.check_awp_step, S4.awp_step),
    (ex.check_rslad_loss, S5.rslad_loss),
    (ex.check_ard_loss, S5.ard_loss),
    (ex.check_iad_loss, S5.iad_loss),
    (ex.check_rslad_attack, S5.rslad_attack),
    (ex.check_adaad_step, S5.adaad_step),
    (ex.check_weak_attacks, S6.weak_attacks),
    (ex.check_mcnemar, S6.mcnemar_test),
    (ex.check_worst_case, S6.worst_case_accuracy),
]


@pytest.mark.parametrize("check,solution", CHECKS, ids=[c.__name__ for c, _ in CHECKS])
def test_solution_passes(check, solution, capsys):
    result, out = run(check, solution, capsys)
    assert result is True, out
    assert out.startswith("✅ Correct:"), out


def test_checks_leave_global_rng_alone(capsys):
    state = torch.get_rng_state()
    ex.check_fgsm(S1.my_fgsm)
    capsys.readouterr()
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("check", [c for c, _ in CHECKS], ids=[c.__name__ for c, _ in CHECKS])
def test_stub_is_not_attempted(check, capsys):
    def stub(*args):
        # Your code here
        raise NotImplementedError

    result, out = run(check, stub, capsys)
    assert result is False
    assert "Not attempted yet: write your code in the cell above, then run this cell again" in out


@pytest.mark.parametrize("check", [c for c, _ in CHECKS], ids=[c.__name__ for c, _ in CHECKS])
def test_other_error_is_reported(check, capsys):
    def broken(*args):
        return undefined_name + 1  # noqa: F821

    out = fails_with(check, broken, capsys, "raised an error", "NameError", "undefined_name", "in broken")
    assert "Hint: import what you use" in out


def test_not_a_function(capsys):
    result, out = run(ex.check_fgsm, 3.0, capsys)
    assert result is False and "Pass your function itself" in out


def test_odd_output_does_not_raise(capsys):
    fails_with(ex.check_fgsm, lambda model, x, y, eps: "x_adv", capsys, "returned a str")
    fails_with(ex.check_fgsm, lambda model, x, y, eps: None, capsys, "returned None")
    fails_with(ex.check_pgd_step, lambda *a: torch.zeros(3), capsys, "shape (3,)")
    fails_with(ex.check_trades_loss, lambda *a: {"loss": 1}, capsys, "returned a dict")


# --------------------------------------------------------------------------- 00_setup: projection


def test_projection_missing_clamp(capsys):
    fails_with(ex.check_linf_projection, lambda a, x, e: torch.min(torch.max(a, x - e), x + e), capsys,
               "not in [0,1]", "clamp to the image range [0, 1]")


def test_projection_only_box(capsys):
    fails_with(ex.check_linf_projection, lambda a, x, e: a.clamp(0, 1), capsys, "only clamped to [0,1]",
               "x - eps, x + eps")


def test_projection_around_x_adv(capsys):
    fails_with(ex.check_linf_projection,
               lambda a, x, e: torch.min(torch.max(a, a - e), a + e).clamp(0, 1), capsys,
               "project around x_adv instead of around the clean image x")


def test_projection_around_zero(capsys):
    fails_with(ex.check_linf_projection, lambda a, x, e: a.clamp(-e, e).clamp(0, 1), capsys, "projected around 0")
    fails_with(ex.check_linf_projection, lambda a, x, e: (a - x).clamp(-e, e), capsys,
               "returned the perturbation δ")


def test_projection_l2_scaling(capsys):
    def l2(a, x, e):
        d = a - x
        n = d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return (x + d * torch.clamp(e / n, max=1)).clamp(0, 1)

    fails_with(ex.check_linf_projection, l2, capsys, "rescaled the whole perturbation", "L2")


def test_projection_changes_x_in_place(capsys):
    def inplace(a, x, e):
        hi = x + e
        lo = x.sub_(e)
        return torch.min(torch.max(a, lo), hi).clamp(0, 1)

    fails_with(ex.check_linf_projection, inplace, capsys, "changed its argument `x` in place")


def test_projection_in_place_on_x_adv_is_a_note(capsys):
    def inplace(a, x, e):
        return torch.min(torch.max(a, x - e, out=a), x + e, out=a).clamp_(0, 1)

    result, out = run(ex.check_linf_projection, inplace, capsys)
    assert result is True and "Note:" in out and "in place" in out


# --------------------------------------------------------------------------- 00_setup: distance


def test_distance_mistakes(capsys):
    c = ex.check_linf_distance
    fails_with(c, lambda a, x: (a - x).abs().max(), capsys, "single number", "shape (5,)")
    fails_with(c, lambda a, x: (a - x).flatten(1).amax(dim=1), capsys, "absolute value")
    fails_with(c, lambda a, x: (a - x).flatten(1).norm(dim=1), capsys, "L2 norm")
    fails_with(c, lambda a, x: (a - x).flatten(1).abs().mean(dim=1), capsys, "averaged or summed")
    fails_with(c, lambda a, x: (a - x).flatten(1).abs().amax(dim=1, keepdim=True), capsys, "shape (5, 1)",
               "keepdim")
    fails_with(c, lambda a, x: (a - x).abs().amax(dim=0), capsys, "one number per image", "dim 0")


# --------------------------------------------------------------------------- 01_fgsm_mnist: FGSM


def _grad(model, x, y, target=None):
    x_req = x.clone().detach().requires_grad_(True)
    loss = F.cross_entropy(model(x_req), y if target is None else target)
    return torch.autograd.grad(loss, x_req)[0]


def test_fgsm_missing_clamp(capsys):
    fails_with(ex.check_fgsm, lambda m, x, y, e: (x + e * _grad(m, x, y).sign()).detach(), capsys,
               "values outside [0,1]", "torch.clamp")


def test_fgsm_wrong_sign(capsys):
    fails_with(ex.check_fgsm, lambda m, x, y, e: (x - e * _grad(m, x, y).sign()).clamp(0, 1), capsys,
               "lowers the loss", "stepped down the gradient")


def test_fgsm_raw_gradient(capsys):
    fails_with(ex.check_fgsm, lambda m, x, y, e: (x + e * _grad(m, x, y)).clamp(0, 1), capsys,
               "same size on every pixel", "*sign* of the gradient")


def test_fgsm_eps_too_large_or_small(capsys):
    fails_with(ex.check_fgsm, lambda m, x, y, e: (x + 2 * e * _grad(m, x, y).sign()).clamp(0, 1), capsys,
               "too large", "2 × ε")
    fails_with(ex.check_fgsm, lambda m, x, y, e: (x + e / 2 * _grad(m, x, y).sign()).clamp(0, 1), capsys,
               "too small", "0.5 × ε")
    # eps hard-coded to MNIST's 0.3: right for the first case, three times too large for the second
    fails_with(ex.check_fgsm, lambda m, x, y, e: (x + 0.3 * _grad(m, x, y).sign()).clamp(0, 1), capsys,
               "too large", "use the `eps` argument")


def test_fgsm_wrong_target(capsys):
    fails_with(ex.check_fgsm,
               lambda m, x, y, e: (x + e * _grad(m, x, y, target=(y + 1) % 10).sign()).clamp(0, 1), capsys,
               "does not follow the gradient")


def test_fgsm_not_detached(capsys):
    def attached(m, x, y, e):
        x_req = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(m(x_req), y), x_req)
        return (x_req + e * g.sign()).clamp(0, 1)

    fails_with(ex.check_fgsm, attached, capsys, "still requires grad", ".detach()")


def test_fgsm_fills_parameter_grads(capsys):
    def with_backward(m, x, y, e):
        x_req = x.clone().requires_grad_(True)
        F.cross_entropy(m(x_req), y).backward()
        return (x + e * x_req.grad.sign()).clamp(0, 1)

    fails_with(ex.check_fgsm, with_backward, capsys, "left gradients in the model's parameters",
               "torch.autograd.grad")


def test_fgsm_leaves_model_in_train_mode(capsys):
    def train_mode(m, x, y, e):
        m.train()
        return S1.my_fgsm(m, x, y, e)

    fails_with(ex.check_fgsm, train_mode, capsys, "left the model in training mode")


def test_fgsm_sets_requires_grad_on_callers_x(capsys):
    def on_x(m, x, y, e):
        x.requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(m(x), y), x)
        return (x + e * g.sign()).clamp(0, 1).detach()

    fails_with(ex.check_fgsm, on_x, capsys, "switched on requires_grad for the caller's `x`")


def test_fgsm_under_no_grad_gets_a_hint(capsys):
    def no_grad(m, x, y, e):
        with torch.no_grad():
            x_req = x.clone().requires_grad_(True)
            g, = torch.autograd.grad(F.cross_entropy(m(x_req), y), x_req)
        return x + e * g.sign()

    fails_with(ex.check_fgsm, no_grad, capsys, "raised an error", "RuntimeError", "torch.no_grad()")


def test_several_problems_are_all_listed(capsys):
    def sloppy(m, x, y, e):
        x_req = x.clone().requires_grad_(True)
        F.cross_entropy(m(x_req), y).backward()
        return x_req + e * x_req.grad.sign()

    out = fails_with(ex.check_fgsm, sloppy, capsys, "outside [0,1]", "Also:", "p.grad", "still requires grad")
    assert out.count("Also:") >= 2


# --------------------------------------------------------------------------- 01_fgsm_mnist: accuracy under attack


def _acc(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_robust_accuracy_mistakes(capsys):
    c = ex.check_robust_accuracy
    fails_with(c, lambda m, x, y, atk: _acc(m, x, y), capsys, "never called", "clean accuracy")
    fails_with(c, lambda m, x, y, atk: 100 * _acc(m, atk(m, x, y), y), capsys, "in percent")
    fails_with(c, lambda m, x, y, atk: 1 - _acc(m, atk(m, x, y), y), capsys, "error rate")

    def count(m, x, y, atk):
        x_adv = atk(m, x, y)
        with torch.no_grad():
            return (m(x_adv).argmax(1) == y).sum().item()

    fails_with(c, count, capsys, "number of correctly classified", "len(y)")

    def vs_clean(m, x, y, atk):
        x_adv = atk(m, x, y)
        with torch.no_grad():
            return (m(x_adv).argmax(1) == m(x).argmax(1)).float().mean().item()

    fails_with(c, vs_clean, capsys, "true labels y")

    def all_no_grad(m, x, y, atk):
        with torch.no_grad():
            return (m(atk(m, x, y)).argmax(1) == y).float().mean().item()

    fails_with(c, all_no_grad, capsys, "raised an error", "the attack needs gradients", "outside `torch.no_grad()`")

    def leaves_train(m, x, y, atk):
        m.train()
        return _acc(m, atk(m, x, y), y)

    fails_with(c, leaves_train, capsys, "left the model in training mode")


def test_robust_accuracy_tensor_result_passes_with_a_note(capsys):
    def as_tensor(m, x, y, atk):
        was = m.training
        m.eval()
        x_adv = atk(m, x, y)
        with torch.no_grad():
            acc = (m(x_adv).argmax(1) == y).float().mean()
        m.train(was)
        return acc

    result, out = run(ex.check_robust_accuracy, as_tensor, capsys)
    assert result is True and ".item()" in out


def test_robust_accuracy_case_separates_the_mistakes():
    """The fixed case must give different numbers for each diagnosed mistake."""
    from advlib import attacks, evaluate

    x, y, eps = fgsm_mnist._accuracy_case()
    m = harness.fixed_model()
    ref = evaluate.batched_accuracy(m, x, y, lambda a, b, c: attacks.fgsm(a, b, c, eps))
    values = [ref, evaluate.batched_accuracy(m, x, y), 1 - ref, 100 * ref, ref * len(y)]
    assert 0 < ref < 1 and len(set(round(v, 6) for v in values)) == len(values)


# --------------------------------------------------------------------------- 02: FGSM training step, two-pass form


def _two_pass(zero="between", train_on="adv", sign=1.0, clamp=True, clean_mode="train", adv_mode="train",
              end_mode="train", input_grad="backward", step=True, returns="loss", on_x=None):
    """One step of FGSM adversarial training in the two-pass form, with the given deviation from it: when the
    parameter gradients are cleared (zero), what the step trains on, the FGSM example's sign and clamp, the mode
    of each pass and at the end, how the input gradient is taken, whether the optimizer steps, what it returns,
    what it does to the caller's x (on_x: differentiate it directly, or write the FGSM example into it)."""
    def fn(m, opt, x, y, e):
        if zero == "start":
            opt.zero_grad()
        m.train(clean_mode == "train")
        x_req = x.requires_grad_(True) if on_x == "requires_grad" else x.clone().requires_grad_(True)
        clean = F.cross_entropy(m(x_req), y)
        if input_grad == "backward":
            clean.backward(retain_graph=True)
            g = x_req.grad
        else:
            g, = torch.autograd.grad(clean, x_req, retain_graph=True)
        x_adv = x + sign * e * g.sign()
        x_adv = (x_adv.clamp(0, 1) if clamp else x_adv).detach()
        if on_x == "in_place":
            x_adv = x.copy_(x_adv)
        m.train(adv_mode == "train")
        if zero == "between":
            opt.zero_grad()
        adv = F.cross_entropy(m(x_adv), y)
        loss = {"adv": adv, "clean": F.cross_entropy(m(x), y), "sum": clean + adv, "mean": (clean + adv) / 2}[train_on]
        loss.backward()
        if step:
            opt.step()
        m.train(end_mode == "train")
        return {"loss": loss.item(), "adv": adv.item(), "clean": clean.item(), "tensor": loss, None: None}[returns]
    return fn


TWO_PASS_MISTAKES = [
    ("zeroed_at_the_start_only", _two_pass(zero="start"), ["clean pass were still in `p.grad`",
                                                           "clear the parameter gradients after the clean pass"]),
    ("never_zeroed", _two_pass(zero="never"), ["previous training step's gradient", "+ the clean pass's",
                                               "never cleared"]),
    ("never_zeroed_autograd", _two_pass(zero="never", input_grad="autograd"),
     ["previous training step's gradient", "+ the adversarial pass's", "never cleared"]),
    ("trained_on_clean", _two_pass(train_on="clean"), ["trained on the clean loss"]),
    ("trained_on_clean_never_zeroed", _two_pass(zero="never", input_grad="autograd", train_on="clean"),
     ["trained on the clean loss, plus the previous step's gradient"]),
    ("trained_on_sum", _two_pass(train_on="sum"), ["trained on the sum", "adversarial loss only"]),
    ("trained_on_sum_returns_adv", _two_pass(train_on="sum", returns="adv"),
     ["clean pass were still in `p.grad`", "training on the sum of the two losses gives the same step"]),
    ("trained_on_mean", _two_pass(train_on="mean", returns="adv"), ["average", "m = 0.5"]),
    ("no_clamp", _two_pass(clamp=False), ["not clamped to [0,1]"]),
    ("wrong_sign", _two_pass(sign=-1.0), ["lowers the clean loss", "wrong sign"]),
    ("no_step", _two_pass(step=False), ["did not change the parameters", "optimizer"]),
    ("fgsm_in_eval_mode", _two_pass(clean_mode="eval"), ["FGSM example was computed in evaluation mode",
                                                          "stay in training mode for the clean pass"]),
    ("both_passes_in_eval_mode", _two_pass(clean_mode="eval", adv_mode="eval"),
     ["Both of your passes ran in evaluation mode"]),
    ("fgsm_in_eval_mode_not_restored", _two_pass(clean_mode="eval", adv_mode="eval", end_mode="eval"),
     ["left the model in evaluation mode", "Also: Both of your passes ran in evaluation mode"]),
    ("leaves_eval_mode", _two_pass(end_mode="eval"), ["left the model in evaluation mode", "training mode"]),
    ("returns_a_tensor", _two_pass(returns="tensor"), ["returned a tensor", ".item()"]),
    ("returns_the_clean_loss", _two_pass(returns="clean"), ["returned the clean loss"]),
    ("returns_none", _two_pass(returns=None), ["returned None"]),
    ("requires_grad_on_callers_x", _two_pass(on_x="requires_grad"), ["switched on requires_grad for the caller's `x`"]),
    ("fgsm_example_written_into_x", _two_pass(on_x="in_place"), ["changed its argument `x` in place"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in TWO_PASS_MISTAKES],
                         ids=[n for n, _, _ in TWO_PASS_MISTAKES])
def test_two_pass_step_mistakes(answer, phrases, capsys):
    out = fails_with(ex.check_two_pass_step, answer, capsys, *phrases)
    assert "differently from one step of the two-pass form" not in out, "a listed mistake gets its own diagnosis"


def test_two_pass_step_written_differently_passes(capsys):
    """The input gradient from torch.autograd.grad (p.grad stays as it was until the clearing), the gradients
    cleared at the start too, the model switched to training mode explicitly: the same step."""
    result, out = run(ex.check_two_pass_step, _two_pass(input_grad="autograd"), capsys)
    assert result is True, out

    def both_clears(m, opt, x, y, e):
        opt.zero_grad()
        m.train()
        return S2.two_pass_step(m, opt, x, y, e)

    result, out = run(ex.check_two_pass_step, both_clears, capsys)
    assert result is True, out


def test_two_pass_cases_separate_the_mistakes():
    """On each case the parameters after each diagnosed step differ from each other's, from the parameters
    before the step and from the reference step's (beyond the check's tolerance)."""
    from advlib.exercises import adversarial_training_mnist as at

    for seed, eps in at._two_pass_cases():
        x, y = harness.images(4, seed=seed), harness.labels(4, seed=seed)
        model, opt = at._mid_training(seed)
        at._reference_step(model, opt, x, y, eps)
        results = [at._params(model), at._params(at._mid_training(seed)[0])]
        results += [at._stepped(seed, grads) for grads, _ in at._two_pass_variants(seed, x, y, eps)]
        for i, a in enumerate(results):
            for b in results[i + 1:]:
                assert not at._same_params(a, b)


def test_two_pass_reference_is_the_library_method_in_training_mode():
    """The tutorial form attacks in training mode: its FGSM example differs from the evaluation-mode one on
    the batch-norm model, so the check can tell them apart."""
    from advlib import attacks

    m, x, y = harness.batchnorm_model(), harness.images(4, seed=13), harness.labels(4, seed=13)
    assert not torch.equal(attacks.fgsm(m, x, y, 0.3, mode="train"), attacks.fgsm(m, x, y, 0.3, mode="eval"))



# --------------------------------------------------------------------------- 02: PGD step


def _step(m, a, y, alpha, sign=True, at=None):
    g = _grad(m, a if at is None else at, y)
    return a + alpha * (g.sign() if sign else g)


def _ball(v, x, e):
    return torch.min(torch.max(v, x - e), x + e)


def test_pgd_step_mistakes(capsys):
    c = ex.check_pgd_step
    fails_with(c, lambda m, a, x, y, e, al: _ball(_step(m, a, y, al), a, e).clamp(0, 1), capsys,
               "projected around the current iterate x_adv")
    fails_with(c, lambda m, a, x, y, e, al: x + (_step(m, a, y, al) - x).clamp(-e, e).clamp(0, 1), capsys,
               "clamped the perturbation δ")
    fails_with(c, lambda m, a, x, y, e, al: _ball(_step(m, a, y, al), x, e), capsys,
               "values outside [0,1]", "torch.clamp")
    fails_with(c, lambda m, a, x, y, e, al: _ball(_step(m, a, y, -al), x, e).clamp(0, 1), capsys,
               "lowers the loss")
    fails_with(c, lambda m, a, x, y, e, al: _ball(_step(m, a, y, al, sign=False), x, e).clamp(0, 1), capsys,
               "instead of exactly α", "*sign* of the gradient")
    fails_with(c, lambda m, a, x, y, e, al: _step(m, a, y, al), capsys, "not projected at all")
    fails_with(c, lambda m, a, x, y, e, al: _ball(_step(m, a, y, al, at=x), x, e).clamp(0, 1), capsys,
               "gradient at the clean x")
    fails_with(c, lambda m, a, x, y, e, al: _step(m, a, y, al).clamp(0, 1), capsys, "leaves the ε-ball")


def test_pgd_step_not_detached(capsys):
    def attached(m, a, x, y, e, al):
        a_req = a.clone().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(m(a_req), y), a_req)
        return _ball(a_req + al * g.sign(), x, e).clamp(0, 1)

    fails_with(ex.check_pgd_step, attached, capsys, "still requires grad")


# --------------------------------------------------------------------------- 02: weighted FGSM loss


def _fgsm(m, x, y, e):
    return S1.my_fgsm(m, x, y, e)


def test_weighted_loss_mistakes(capsys):
    c = ex.check_weighted_fgsm_loss
    ce = F.cross_entropy
    fails_with(c, lambda m, x, y, e, k: k * ce(m(x), y) + (1 - k) * ce(m(_fgsm(m, x, y, e)), y), capsys,
               "swapped the weights")
    fails_with(c, lambda m, x, y, e, k: k * ce(m(_fgsm(m, x, y, e)), y), capsys, "no clean term")
    fails_with(c, lambda m, x, y, e, k: ce(m(x), y) + ce(m(_fgsm(m, x, y, e)), y), capsys, "forgot the weights")
    fails_with(c, lambda m, x, y, e, k: ((1 - k) * ce(m(x), y) + k * ce(m(_fgsm(m, x, y, e)), y)).item(), capsys,
               "not a tensor", ".item()")
    fails_with(c, lambda m, x, y, e, k: (1 - k) * ce(m(x), y, reduction="none")
               + k * ce(m(_fgsm(m, x, y, e)), y, reduction="none"), capsys, "shape (4,)", "reduction='none'")


def test_weighted_loss_adversarial_example_not_detached(capsys):
    def attached(m, x, y, e, k):
        x_req = x.clone().requires_grad_(True)
        clean = F.cross_entropy(m(x_req), y)
        g, = torch.autograd.grad(clean, x_req, retain_graph=True)
        x_adv = (x_req + e * g.sign()).clamp(0, 1)
        return (1 - k) * clean + k * F.cross_entropy(m(x_adv), y)

    fails_with(ex.check_weighted_fgsm_loss, attached, capsys, "not detached", "`.detach()`")


def test_weighted_loss_attack_with_backward(capsys):
    def with_backward(m, x, y, e, k):
        x_req = x.clone().requires_grad_(True)
        F.cross_entropy(m(x_req), y).backward()
        x_adv = (x + e * x_req.grad.sign()).clamp(0, 1)
        return (1 - k) * F.cross_entropy(m(x), y) + k * F.cross_entropy(m(x_adv), y)

    fails_with(ex.check_weighted_fgsm_loss, with_backward, capsys, "already put gradients into the model's parameters")


def test_weighted_loss_switches_to_eval(capsys):
    def to_eval(m, x, y, e, k):
        m.eval()
        return S2.weighted_fgsm_loss(m, x, y, e, k)

    fails_with(ex.check_weighted_fgsm_loss, to_eval, capsys, "left the model in evaluation mode")


# --------------------------------------------------------------------------- 02b: answers, not computations


def _answer(value):
    return lambda: value


RIGHT = dict(S2b.predict())


@pytest.mark.parametrize("key", list(RIGHT))
def test_prediction_wrong_for_one_run(key, capsys):
    flipped = {**RIGHT, key: "robust" if RIGHT[key] == "collapses" else "collapses"}
    out = fails_with(ex.check_prediction, _answer(flipped), capsys, f'prediction for "{key}"', "not what happens",
                     "ε = 0.")
    assert "Also:" not in out


def test_prediction_explains_every_wrong_run(capsys):
    out = fails_with(ex.check_prediction, _answer({k: "robust" for k in RIGHT}), capsys, '"fgsm_no_rs"',
                     '"rs_1.25_eps0.4"', "Also:", "Wong et al. 2020")
    assert '"rs_1.25"' not in out and '"rs_2"' not in out


def test_prediction_format_mistakes(capsys):
    c = ex.check_prediction
    fails_with(c, _answer(["collapses", "robust", "collapses"]), capsys, "returned a list", '"fgsm_no_rs"')
    fails_with(c, _answer(None), capsys, "returned None")
    fails_with(c, _answer({"fgsm": "collapses", "rs_1.25": "robust", "rs_2": "collapses"}), capsys,
               "missing: fgsm_no_rs", "unknown: fgsm")
    fails_with(c, _answer({**RIGHT, "rs_2": "overfits"}), capsys, "\"collapses\" or \"robust\"", "'overfits'")


def test_prediction_accepts_other_spellings_and_explains(capsys):
    result, out = run(ex.check_prediction, _answer({"fgsm_no_rs": " Collapse", "rs_1.25": "ROBUST",
                                                    "rs_2": "Robust ", "rs_1.25_eps0.4": "collapsed"}), capsys)
    assert result is True, out
    assert out.count("Note:") == 4 and "1.25ε" in out


CHOOSE_EPS_MISTAKES = [
    (40, "forgot to rescale", ["budget in grey levels", "x/255"]),
    (40 / 256, "256", ["divided by 256"]),
    (0.4, "percent", ["40 %"]),
    (80 / 255, "double", ["twice the budget", "radius"]),
    (20 / 255, "half", ["half the budget"]),
    (0.3, "course default", ["usual MNIST budget"]),
    (round(40 / 255, 3), "rounded", ["rounded", "exact value"]),
    (0.5, "other", ["does not describe this threat"]),
    ("40/255", "a string", ["returned a str"]),
]


@pytest.mark.parametrize("value,phrases", [(v, p) for v, _, p in CHOOSE_EPS_MISTAKES],
                         ids=[n for _, n, _ in CHOOSE_EPS_MISTAKES])
def test_choose_eps_mistakes(value, phrases, capsys):
    fails_with(ex.check_choose_eps, _answer(value), capsys, *phrases)


def test_choose_eps_asks_a_follow_up(capsys):
    for value in (40 / 255, torch.tensor(40 / 255, dtype=torch.float64)):
        result, out = run(ex.check_choose_eps, _answer(value), capsys)
        assert result is True and "follow-up" in out and "?" in out, out
        assert "`" not in out.split("Note:")[1], "the follow-up asks a question, no code"


MASKED_TABLE_MISTAKES = [
    ({"A", "B", "C", "D"}, ["C is false", "randomness"]),
    ({"A", "B", "D", "E"}, ["E is false", "bound"]),
    ({"A", "B"}, ["D is true, and you left it out", "black-box"]),
    ({"B", "D"}, ["A is true, and you left it out", "upper bound"]),
    ({"A", "D"}, ["B is true, and you left it out", "87.8"]),
    ({"C", "E"}, ["C is false", "Also: E is false", "Also: A is true"]),
    ({"A", "B", "F"}, ["'F' is not one of the statements"]),
    (set(), ["chose no statement"]),
    (None, ["returned None"]),
]


@pytest.mark.parametrize("value,phrases", MASKED_TABLE_MISTAKES,
                         ids=["".join(sorted(v)) if v else repr(v) for v, _ in MASKED_TABLE_MISTAKES])
def test_masked_table_mistakes(value, phrases, capsys):
    fails_with(ex.check_masked_table, _answer(value), capsys, *phrases)


def test_masked_table_accepts_other_forms(capsys):
    for value in ("ABD", "A, B, D", ["d", "b", "a"], ("A", "B", "D")):
        result, out = run(ex.check_masked_table, _answer(value), capsys)
        assert result is True, (value, out)



# --------------------------------------------------------------------------- 03: SAT's inner maximisation


def _pgd_attack(start="uniform", proj="both", sign=True, direction=1.0, grad_at="iterate", steps_off=0,
                alpha_is_eps=False, restore=True, own_rng=False, delta_form=False, reduction="mean", returns="x_adv",
                mode="eval", objective=None):
    """PGD from a random start with one deviation from SAT's (or, ``objective`` and ``start="normal"``, RSLAD's)
    attack: the start, the projection, the step, where the gradient is taken, the number of steps, the step size,
    the model's mode, the random numbers, the loss's reduction, what it returns. ``objective(model, x, logits, y)``
    replaces the cross-entropy (RSLAD's attacks pass the teacher's probabilities as ``y``)."""
    def fn(m, x, y, eps, alpha, steps, noise):
        was = m.training
        m.train(mode == "train")
        if own_rng:
            noise = torch.rand_like(x) * 2 - 1 if start != "normal" else torch.randn_like(x)
        begin = {"uniform": x + eps * noise, "none": x.clone(), "unscaled": x + noise, "normal": x + 0.001 * noise,
                 "normal_eps": x + eps * noise}[start if start != "unclamped" else "uniform"]
        x_adv = begin if start == "unclamped" else _ball(begin, x, eps).clamp(0, 1)
        a = eps if alpha_is_eps else alpha
        for _ in range(steps + steps_off):
            if delta_form:  # the perturbation as the variable, projected as a perturbation
                d = (x_adv - x).detach().requires_grad_(True)
                logits = m(x + d)
                loss = (objective(m, x, logits, y) if objective else F.cross_entropy(logits, y, reduction=reduction))
                g, = torch.autograd.grad(loss, d)
                x_adv = (x + (d + a * g.sign()).clamp(-eps, eps)).clamp(0, 1)
                continue
            at = (x if grad_at == "clean" else x_adv).clone().detach().requires_grad_(True)
            logits = m(at)
            loss = objective(m, x, logits, y) if objective else F.cross_entropy(logits, y, reduction=reduction)
            g, = torch.autograd.grad(loss, at)
            x_adv = x_adv + direction * a * (g.sign() if sign else g)
            if proj in ("both", "ball"):
                x_adv = torch.clamp(x_adv, x - eps, x + eps)
            if proj in ("both", "box"):
                x_adv = x_adv.clamp(0, 1)
        if restore:
            m.train(was)
        return (x_adv - x if returns == "delta" else x_adv).detach()
    return fn


PGD_ATTACK_RIGHT = [("delta_form", _pgd_attack(delta_form=True)),
                    ("delta_form_summed", _pgd_attack(delta_form=True, reduction="sum")),
                    ("summed_loss", _pgd_attack(reduction="sum"))]


@pytest.mark.parametrize("answer", [f for _, f in PGD_ATTACK_RIGHT], ids=[n for n, _ in PGD_ATTACK_RIGHT])
def test_pgd_attack_written_differently_passes(answer, capsys):
    result, out = run(ex.check_pgd_attack, answer, capsys)
    assert result is True, out


PGD_ATTACK_MISTAKES = [
    ("no_random_start", _pgd_attack(start="none"), ["starts at the clean x", "ε·noise"]),
    ("noise_not_scaled", _pgd_attack(start="unscaled"), ["not scaled by ε"]),
    ("start_not_clamped", _pgd_attack(start="unclamped"), ["start x + ε·noise is not clamped to [0,1]"]),
    ("no_ball", _pgd_attack(proj="box"), ["never projected onto the ε-ball", "only onto [0,1]"]),
    ("no_clamp", _pgd_attack(proj="ball"), ["not onto [0,1]", "torch.clamp"]),
    ("no_clamp_at_all", _pgd_attack(start="unclamped", proj="ball"), ["Neither your start nor your steps"]),
    ("no_projection", _pgd_attack(proj="none"), ["not projected at all (only the start is)"]),
    ("raw_gradient", _pgd_attack(sign=False), ["raw gradient", "*sign*"]),
    ("raw_gradient_summed", _pgd_attack(sign=False, reduction="sum"), ["raw gradient", "*sign*"]),
    ("descends", _pgd_attack(direction=-1.0), ["go down the gradient"]),
    ("gradient_at_clean_x", _pgd_attack(grad_at="clean"), ["every gradient at the clean x"]),
    ("one_step_short", _pgd_attack(steps_off=-1), ["takes 9 steps instead of `steps` = 10"]),
    ("one_step_too_many", _pgd_attack(steps_off=1), ["takes 11 steps instead of `steps` = 10"]),
    ("step_eps", _pgd_attack(alpha_is_eps=True), ["size ε", "not the step size α"]),
    ("returns_delta", _pgd_attack(returns="delta"), ["returned the perturbation δ"]),
    ("own_random_numbers", _pgd_attack(own_rng=True), ["different x_adv on a second call", "`noise`"]),
    ("mode_not_restored", _pgd_attack(restore=False), ["left the model in evaluation mode"]),
    ("attacks_in_training_mode", _pgd_attack(mode="train"), ["changed the batch-norm running statistics",
                                                              "the attack of every training step"]),
    ("not_detached", lambda m, x, y, e, a, s, n: S3.pgd_attack(m, x, y, e, a, s, n).requires_grad_(True) * 1.0,
     ["still requires grad"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in PGD_ATTACK_MISTAKES],
                         ids=[n for n, _, _ in PGD_ATTACK_MISTAKES])
def test_pgd_attack_mistakes(answer, phrases, capsys):
    out = fails_with(ex.check_pgd_attack, answer, capsys, *phrases)
    assert "differs from the expected one" not in out, "a listed mistake gets its own diagnosis"


def test_pgd_attack_leaves_p_grad_and_noise_alone(capsys):
    def backward(m, x, y, eps, alpha, steps, noise):
        x_adv = S3.pgd_attack(m, x, y, eps, alpha, steps, noise)
        F.cross_entropy(m(x_adv), y).backward()
        return x_adv

    fails_with(ex.check_pgd_attack, backward, capsys, "left gradients in the model's parameters")

    def clips_noise_in_place(m, x, y, eps, alpha, steps, noise):
        return S3.pgd_attack(m, x, y, eps, alpha, steps, noise.clamp_(-1, 0.5))

    fails_with(ex.check_pgd_attack, clips_noise_in_place, capsys, "changed its argument `noise` in place")


def test_pgd_attack_reference_is_the_library_attack(monkeypatch):
    """From the same start, advlib.attacks.pgd (uniform random start) takes exactly the reference's steps."""
    from advlib import attacks
    from advlib.exercises import pgd_training_cifar10 as pt

    for x, y, eps, alpha, steps, noise in pt._pgd_cases():
        start = pt.uniform_start(x, eps, noise)
        seen = []
        monkeypatch.setattr(attacks, "_start", lambda x_, eps_, how: seen.append(how) or start.clone())
        lib = attacks.pgd(harness.fixed_model(), x, y, eps, alpha, steps, random_start=True)
        ref, mask = pt.pgd_trajectory(harness.fixed_model(), x, y, eps, alpha, steps, start)
        assert seen == ["uniform"] and torch.equal(lib, ref)
        assert mask.float().mean() > 0.9  # the comparison covers nearly every pixel


def test_pgd_attack_cases_separate_the_mistakes():
    """Every diagnosed variant's result differs from the reference's and from the other variants' on a reliable
    pixel of the first case, so that each diagnosis is reachable and none is a correct answer."""
    from advlib.exercises import pgd_training_cifar10 as pt

    x, y, eps, alpha, steps, noise = pt._pgd_cases()[0]
    m = harness.fixed_model()
    results = [answer(m, x, y, eps, alpha, steps, noise) for _, answer, _ in PGD_ATTACK_MISTAKES[:16]]
    results.append(S3.pgd_attack(m, x, y, eps, alpha, steps, noise))
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            assert (a - b).abs().max() > 1e-3


# --------------------------------------------------------------------------- 03: best or last checkpoint


def _choose(pick="holdout_pgd", index="epoch", ties="first", rule="wilson", z=1.96):
    """choose_checkpoint with one deviation: the accuracy it ranks epochs by, 0-based epochs, the last of tied
    epochs, another decision rule (wilson, any, never, always, wald, last_upper, overlap, margin)."""
    def fn(history, n):
        acc = [row[pick] for row in history]
        i = acc.index(max(acc)) if ties == "first" else max(j for j, v in enumerate(acc) if v == max(acc))
        robust = [row["holdout_pgd"] for row in history]
        b = robust[i] if pick == "holdout_pgd" else max(robust)
        last = robust[-1]
        lo_b, _ = S3._wilson(round(b * n), n, z)
        _, hi_l = S3._wilson(round(last * n), n, z)
        wald = b - z * (b * (1 - b) / n) ** 0.5
        best = {"wilson": last < lo_b, "any": b > last, "never": False, "always": True, "wald": last < wald,
                "last_upper": b > hi_l, "overlap": lo_b > hi_l, "margin": b - last > 0.03}[rule]
        return {"best_epoch": i if index == "index" else history[i]["epoch"], "report": "best" if best else "last"}
    return fn


CHECKPOINT_MISTAKES = [
    ("zero_based", _choose(index="index"), ["0-based index"]),
    ("last_of_ties", _choose(ties="last"), ["reached at epochs 3 and 5", "keeps the first"]),
    ("by_clean_accuracy", _choose(pick="holdout_clean"), ["highest *clean* held-out accuracy"]),
    ("by_training_accuracy", _choose(pick="train_acc"), ["highest *training* accuracy"]),
    ("the_last_epoch", lambda h, n: {"best_epoch": len(h), "report": "last"}, ["that is the last epoch"]),
    ("any_drop", _choose(rule="any"), ["however small the gap"]),
    ("always_best", _choose(rule="always"), ["however small the gap"]),
    ("never_best", _choose(rule="never"), ["always report the last checkpoint", "robust overfitting"]),
    ("normal_approximation", _choose(rule="wald"), ["normal approximation"]),
    ("upper_end_of_the_last", _choose(rule="last_upper"), ["upper end of the *last* epoch's Wilson interval"]),
    ("intervals_must_not_overlap", _choose(rule="overlap"), ["do not overlap at all"]),
    ("fixed_margin", _choose(rule="margin"), ["for two histories with the same accuracies", "on 2000 images",
                                              "within that of a small one"]),
    ("68_percent_interval", _choose(z=1.0), ["for two histories with the same accuracies", "Wilson interval"]),
    ("99_percent_interval", _choose(z=2.58), ["You report last for", "Wilson interval"]),
    ("not_a_dict", lambda h, n: ("last", 3), ["returned a tuple"]),
    ("other_keys", lambda h, n: {"epoch": 3, "report": "last"}, ["needs exactly \"best_epoch\" and \"report\""]),
    ("report_not_a_word", lambda h, n: {"best_epoch": S3.choose_checkpoint(h, n)["best_epoch"], "report": True},
     ["\"report\" must be \"best\" or \"last\""]),
    ("epoch_not_whole", lambda h, n: {"best_epoch": 2.5, "report": "last"}, ["must be a whole number"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in CHECKPOINT_MISTAKES],
                         ids=[n for n, _, _ in CHECKPOINT_MISTAKES])
def test_choose_checkpoint_mistakes(answer, phrases, capsys):
    fails_with(ex.check_choose_checkpoint, answer, capsys, *phrases)


def test_choose_checkpoint_accepts_other_forms(capsys):
    import numpy as np

    def numpy_and_capitals(history, n):
        out = S3.choose_checkpoint(history, n)
        return {"best_epoch": np.int64(out["best_epoch"]), "report": out["report"].upper() + " "}

    result, out = run(ex.check_choose_checkpoint, numpy_and_capitals, capsys)
    assert result is True, out


def test_checkpoint_cases_separate_the_rules():
    """Each diagnosed rule decides differently from the statement's rule and from every other rule on the fixed
    histories, and every way of picking the epoch gives a different list of best epochs."""
    from advlib import stats
    from advlib.exercises import pgd_training_cifar10 as pt

    cases = pt._CHECKPOINT_CASES
    decisions = {k: [pt._rule(p, n, k) for _, n, p, _, _ in cases] for k in ("wilson", "any", "never", "wald", "overlap")}
    assert len({tuple(v) for v in decisions.values()}) == len(decisions)
    assert set(decisions["wilson"]) == {"best", "last"}
    # the upper end of the last epoch's Wilson interval is the normal approximation around the best, inverted
    for _, n, p, _, _ in cases:
        b, last = p[pt._first_best(p) - 1], p[-1]
        assert (b > stats.wilson(round(last * n), n)[1]) == (last < pt._wald(b, n)[0])
    epochs = [[f(h, n)["best_epoch"] for _, n, p, c, t in cases for h in [pt._history(p, c, t)]]
              for f in (S3.choose_checkpoint, _choose(index="index"), _choose(ties="last"), _choose(pick="holdout_clean"),
                        _choose(pick="train_acc"), lambda h, n: {"best_epoch": len(h)})]
    assert len({tuple(e) for e in epochs}) == len(epochs)
    assert all(abs(round(v * n) - v * n) < 1e-9 for _, n, p, _, _ in cases for v in p), "accuracies are counts / n"


# --------------------------------------------------------------------------- 04: TRADES loss


def _kl(p_logits, q_logits, reduction="batchmean"):
    """KL(softmax p || softmax q)."""
    return F.kl_div(F.log_softmax(q_logits, 1), F.softmax(p_logits, 1), reduction=reduction)


def test_trades_mistakes(capsys):
    c = ex.check_trades_loss
    ce = F.cross_entropy
    fails_with(c, lambda m, x, a, y, b: ce(m(x), y) + b * _kl(m(a), m(x)), capsys,
               "swapped the direction of the KL divergence")
    fails_with(c, lambda m, x, a, y, b: ce(m(x), y) + _kl(m(x), m(a)), capsys, "not multiplied by β")
    fails_with(c, lambda m, x, a, y, b: ce(m(a), y) + b * _kl(m(x), m(a)), capsys,
               "cross-entropy is on the adversarial inputs")
    fails_with(c, lambda m, x, a, y, b: ce(m(x), y) + b * _kl(m(x), m(a), "sum"), capsys,
               "summed over the batch", "batchmean")
    with pytest.warns(UserWarning):
        fails_with(c, lambda m, x, a, y, b: ce(m(x), y) + b * _kl(m(x), m(a), "mean"), capsys,
                   "reduction='mean'", "batchmean")
    fails_with(c, lambda m, x, a, y, b: ce(m(x), y) + b * F.kl_div(F.softmax(m(a), 1), F.softmax(m(x), 1),
                                                                   reduction="batchmean"),
               capsys, "log-probabilities")


def test_trades_detached_clean_prediction(capsys):
    def detached(m, x, a, y, b):
        lc = m(x)
        return F.cross_entropy(lc, y) + b * _kl(lc.detach(), m(a))

    fails_with(ex.check_trades_loss, detached, capsys, "right value but the wrong gradients")


def test_trades_backward_inside(capsys):
    def with_backward(m, x, a, y, b):
        loss = S4.trades_loss(m, x, a, y, b)
        loss.backward()
        return loss

    fails_with(ex.check_trades_loss, with_backward, capsys, "already put gradients")


# --------------------------------------------------------------------------- 04: MART loss


def _probs(m, x, a):
    return F.softmax(m(x), 1), F.softmax(m(a), 1)


def _runner_up(q, y):
    """The most probable class under q other than y."""
    top2 = q.topk(2, 1).indices
    return torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])


def _margin(q, cls):
    return F.nll_loss(torch.log(1.0001 - q + 1e-12), cls)


def _kl_rows(p, q):
    """KL(p || q) per example."""
    return F.kl_div(torch.log(q + 1e-12), p, reduction="none").sum(1)


def _p_y(p, y):
    return p.gather(1, y[:, None]).squeeze(1)


def _boosted(m, a, y):
    q = F.softmax(m(a), 1)
    return F.cross_entropy(m(a), y) + _margin(q, _runner_up(q, y))


def _robust(m, x, a, y):
    p, q = _probs(m, x, a)
    return (_kl_rows(p, q) * (1.0000001 - _p_y(p, y))).mean()


def _mart_variant(boosted=_boosted, robust=_robust, beta_on_kl=True):
    def fn(m, x, a, y, b):
        return boosted(m, a, y) + b * robust(m, x, a, y) if beta_on_kl else b * boosted(m, a, y) + robust(m, x, a, y)
    return fn


def _with_clean(boosted):
    """A boosted CE computed on the clean x (the students' answer is called with x and x_adv)."""
    return lambda m, x, a, y, b: boosted(m, x, y) + b * _robust(m, x, a, y)


def _weighted(rows, weight):
    def robust(m, x, a, y):
        p, q = _probs(m, x, a)
        return (rows(p, q) * weight(p, q, y)).mean()
    return robust


_W = lambda p, q, y: 1.0000001 - _p_y(p, y)  # noqa: E731 - MART's weight


def _ce_plus_margin_on(cls_of):
    def boosted(m, a, y):
        q = F.softmax(m(a), 1)
        return F.cross_entropy(m(a), y) + _margin(q, cls_of(q, y))
    return boosted


MART_MISTAKES = [
    ("no_boost", _mart_variant(boosted=lambda m, a, y: F.cross_entropy(m(a), y)), ["no boost term"]),
    ("boost_sign", _mart_variant(boosted=lambda m, a, y: 2 * F.cross_entropy(m(a), y) - _boosted(m, a, y)),
     ["wrong sign"]),
    ("boost_true_class", _mart_variant(boosted=_ce_plus_margin_on(lambda q, y: y)), ["uses the true class y",
                                                                                     "strongest *wrong* class"]),
    ("boost_top_class", _mart_variant(boosted=_ce_plus_margin_on(lambda q, y: q.argmax(1))), ["top class of q"]),
    ("ce_on_clean", lambda m, x, a, y, b: _boosted(m, a, y) - F.cross_entropy(m(a), y) + F.cross_entropy(m(x), y)
     + b * _robust(m, x, a, y), ["cross-entropy is on the clean x"]),
    ("boosted_ce_on_clean", _with_clean(_boosted), ["boosted cross-entropy is on the clean x"]),
    ("weight_p_y", _mart_variant(robust=_weighted(_kl_rows, lambda p, q, y: _p_y(p, y))), ["weighted by p_y(x)"]),
    ("no_weight", _mart_variant(robust=_weighted(_kl_rows, lambda p, q, y: 1.0)), ["not weighted"]),
    ("weight_adversarial", _mart_variant(robust=_weighted(_kl_rows, lambda p, q, y: 1.0000001 - _p_y(q, y))),
     ["adversarial probability of the true class"]),
    ("kl_reversed", _mart_variant(robust=_weighted(lambda p, q: _kl_rows(q, p), _W)),
     ["swapped the direction of the KL divergence"]),
    ("kl_probabilities", _mart_variant(robust=_weighted(lambda p, q: F.kl_div(q, p, reduction="none").sum(1), _W)),
     ["expects log-probabilities"]),
    ("kl_mean_over_classes", _mart_variant(robust=_weighted(
        lambda p, q: F.kl_div(torch.log(q + 1e-12), p, reduction="none").mean(1), _W)),
     ["averaged over the 10 classes too"]),
    ("kl_reduction_mean", _mart_variant(robust=lambda m, x, a, y: (F.kl_div(
        torch.log(_probs(m, x, a)[1] + 1e-12), _probs(m, x, a)[0], reduction="mean")
        * (1.0000001 - _p_y(_probs(m, x, a)[0], y))).mean()), ["reduction='mean'", "10× too small"]),
    ("weight_after_batchmean", _mart_variant(robust=lambda m, x, a, y: F.kl_div(
        torch.log(_probs(m, x, a)[1] + 1e-12), _probs(m, x, a)[0], reduction="batchmean")
        * (1.0000001 - _p_y(_probs(m, x, a)[0], y)).mean()), ["weighted the KL after averaging"]),
    ("kl_summed_over_batch", _mart_variant(robust=lambda m, x, a, y: len(y) * _robust(m, x, a, y)),
     ["summed over the batch without dividing", "4× too large"]),
    ("beta_on_boosted_ce", _mart_variant(beta_on_kl=False), ["multiplied the boosted cross-entropy by β"]),
    ("no_beta", lambda m, x, a, y, b: _boosted(m, a, y) + _robust(m, x, a, y), ["not multiplied by β"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in MART_MISTAKES], ids=[n for n, _, _ in MART_MISTAKES])
def test_mart_mistakes(answer, phrases, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # kl_div's warning about reduction='mean'
        out = fails_with(ex.check_mart_loss, answer, capsys, *phrases)
    assert "Your loss is" not in out, "a listed mistake gets its own diagnosis, not the generic message"


def test_mart_cases_separate_the_mistakes():
    """On each case the listed mistakes give values different from each other and from the expected loss
    (beyond the check's tolerance), so every diagnosis is reachable, and none is a correct answer."""
    from advlib.exercises import trades_mart_cifar10 as tm

    for case in tm._mart_cases():
        m = harness.fixed_model().train()
        expected = tm._mart_reference(m, **case).item()
        variants, _ = tm._mart_mistakes(0.0, expected, m, **case)
        values = [expected] + [v for v, _ in variants]
        for i, a in enumerate(values):
            for b in values[i + 1:]:
                assert not harness.close(a, b), (a, b)
        p = F.softmax(m(case["x_adv"]), 1)
        right = p.argmax(1) == case["y"]
        assert right.any() and not right.all()  # the strongest wrong class is sometimes the runner-up


def test_mart_reference_is_the_library_method(monkeypatch):
    """The check's reference equals advlib.losses' training method mart with its attack replaced by x_adv."""
    from advlib import losses
    from advlib.exercises import trades_mart_cifar10 as tm

    case = tm._mart_cases()[0]
    monkeypatch.setattr(losses.Context, "pgd", lambda self, **kw: case["x_adv"])
    m = harness.fixed_model().train()
    lib = losses.compute("mart", m, case["x"], case["y"], 0.1, params={"beta": case["beta"]})[0]
    assert torch.allclose(lib, tm._mart_reference(m, **case), rtol=1e-6)
    assert torch.allclose(S4.mart_loss(m, case["x"], case["x_adv"], case["y"], case["beta"]), lib, rtol=1e-6)


def test_mart_detached_natural_probabilities(capsys):
    def detached(m, x, a, y, b):
        p = F.softmax(m(x), 1).detach()
        q = F.softmax(m(a), 1)
        return _boosted(m, a, y) + b * (_kl_rows(p, q) * (1.0000001 - _p_y(p, y))).mean()

    def detached_weight(m, x, a, y, b):
        p, q = _probs(m, x, a)
        return _boosted(m, a, y) + b * (_kl_rows(p, q) * (1.0000001 - _p_y(p, y)).detach()).mean()

    for answer in (detached, detached_weight):
        fails_with(ex.check_mart_loss, answer, capsys, "right value but the wrong gradients", "nothing is detached")


def test_mart_written_differently_passes(capsys):
    def one_hot(m, x, a, y, b):  # one forward pass, a one-hot mask for the wrong class, log_target KL
        lc, la = m(torch.cat([x, a])).chunk(2)
        q = F.softmax(la, 1)
        mask = F.one_hot(y, q.shape[1]).bool()
        wrong = q.masked_fill(mask, -1.0).argmax(1)
        margin = -torch.log(1.0001 - q.gather(1, wrong[:, None]).squeeze(1) + 1e-12).mean()
        log_p = F.log_softmax(lc, 1)
        kl = F.kl_div(torch.log(q + 1e-12), log_p, reduction="none", log_target=True).sum(1)
        weight = 1.0000001 - (log_p.exp() * mask).sum(1)
        return F.cross_entropy(la, y) + margin + b * (1.0 / len(y)) * torch.sum(kl * weight)

    def by_hand(m, x, a, y, b):  # sorted classes and the KL written out
        p, q = _probs(m, x, a)
        order = torch.argsort(q, dim=1)[:, -2:]
        wrong = torch.where(order[:, -1] == y, order[:, -2], order[:, -1])
        rows = torch.arange(len(y))
        bce = -torch.log(q[rows, y]).mean() - torch.log(1.0001 - q[rows, wrong] + 1e-12).mean()
        kl = (p * (torch.log(p + 1e-12) - torch.log(q + 1e-12))).sum(1)
        return bce + b * (kl * (1.0000001 - p[rows, y])).mean()

    def log_softmax_no_shift_in_weight(m, x, a, y, b):  # log_softmax in the KL, weight 1 - p_y
        lc, la = m(x), m(a)
        p = F.softmax(lc, 1)
        kl = F.kl_div(F.log_softmax(la, 1), p, reduction="none").sum(1)
        return _boosted(m, a, y) + b * (kl * (1 - _p_y(p, y))).mean()

    for answer in (one_hot, by_hand, log_softmax_no_shift_in_weight):
        result, out = run(ex.check_mart_loss, answer, capsys)
        assert result is True, out


def test_mart_margin_without_the_code_constant(capsys):
    """−log(1 − q_j) instead of the code's −log(1.0001 − q_j + 1e-12): the value agrees within the tolerance,
    the gradients do not; the check says which constant, not that something was detached."""
    def paper_margin(m, x, a, y, b):
        q = F.softmax(m(a), 1)
        return F.cross_entropy(m(a), y) + F.nll_loss(torch.log1p(-q), _runner_up(q, y)) + b * _robust(m, x, a, y)

    out = fails_with(ex.check_mart_loss, paper_margin, capsys, "agrees with MART's to four digits", "1.0001")
    assert "detach" not in out


def test_mart_leaves_the_model_in_eval_mode(capsys):
    fails_with(ex.check_mart_loss, _eval_no_restore(S4.mart_loss), capsys, "left the model in evaluation mode",
               "was in training mode", "model.train(...)")


# --------------------------------------------------------------------------- 05: ARD's loss


def _ard(kl_red="mean", tau_student=True, tau_teacher=True, factor="tau2", reverse=False, on_clean=False,
         ce_on_adv=False, swap=False, probs=False):
    """ARD's loss with one deviation."""
    def fn(m, x, a, y, t, tau, w):
        s = m(x if on_clean else a) / (tau if tau_student else 1.0)
        soft = F.softmax(t / (tau if tau_teacher else 1.0), 1)
        if reverse:
            kl = (F.softmax(s, 1) * (F.log_softmax(s, 1) - torch.log(soft))).sum() / soft.numel()
        else:
            inp = F.softmax(s, 1) if probs else F.log_softmax(s, 1)
            kl = {"mean": F.kl_div(inp, soft, reduction="sum") / soft.numel(),
                  "batchmean": F.kl_div(inp, soft, reduction="batchmean")}[kl_red]
        kd = {"tau2": tau ** 2, "tau": tau, "none": 1.0}[factor] * kl
        ce = F.cross_entropy(m(a if ce_on_adv else x), y)
        return (1 - w) * kd + w * ce if swap else w * kd + (1 - w) * ce
    return fn


ARD_MISTAKES = [
    ("no_tau_squared", _ard(factor="none"), ["not multiplied by τ²"]),
    ("tau_not_squared", _ard(factor="tau"), ["multiplied the KL by τ; ARD multiplies it by τ²"]),
    ("batchmean", _ard(kl_red="batchmean"), ["batch mean (reduction='batchmean')", "10×"]),
    ("reversed_kl", _ard(reverse=True), ["reversed the KL divergence"]),
    ("student_not_softened", _ard(tau_student=False), ["student's logits are not divided by τ"]),
    ("teacher_not_softened", _ard(tau_teacher=False), ["teacher's logits are not divided by τ"]),
    ("no_temperature", _ard(tau_student=False, tau_teacher=False), ["no temperature at all"]),
    ("student_on_clean_x", _ard(on_clean=True), ["student on the clean x"]),
    ("ce_on_x_adv", _ard(ce_on_adv=True), ["cross-entropy is on x_adv"]),
    ("swapped_weights", _ard(swap=True), ["swapped the weights"]),
    ("probabilities_as_input", _ard(probs=True), ["expects log-probabilities"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in ARD_MISTAKES], ids=[n for n, _, _ in ARD_MISTAKES])
def test_ard_mistakes(answer, phrases, capsys):
    out = fails_with(ex.check_ard_loss, answer, capsys, *phrases)
    assert "Your loss is" not in out, "a listed mistake gets its own diagnosis, not the generic message"


def test_ard_detached_student(capsys):
    def detached(m, x, a, y, t, tau, w):
        soft = F.softmax(t / tau, 1)
        kl = F.kl_div(F.log_softmax(m(a).detach() / tau, 1), soft, reduction="sum") / soft.numel()
        return w * tau ** 2 * kl + (1 - w) * F.cross_entropy(m(x), y)

    fails_with(ex.check_ard_loss, detached, capsys, "right value but the wrong gradients")


def test_ard_written_with_mean_reduction_passes(capsys):
    def mean(m, x, a, y, t, tau, w):  # reduction='mean' divides the sum by batch x classes, as ARD's code did
        kl = F.kl_div(F.log_softmax(m(a) / tau, 1), F.softmax(t / tau, 1), reduction="mean")
        loss = w * tau ** 2 * kl
        return loss + (1 - w) * F.cross_entropy(m(x), y) if w < 1 else loss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # kl_div's warning about reduction='mean'
        result, out = run(ex.check_ard_loss, mean, capsys)
    assert result is True, out


class _FakeTeacher:
    """A teacher whose logits are given: what advlib.losses' distillation methods ask of one."""

    def __init__(self, clean_logits, adv_logits=None, x=None):
        self.clean, self.adv, self.x = clean_logits, adv_logits, x

    def probs(self, x, tau=1.0, cached=True):
        logits = self.clean if self.x is None or torch.equal(x, self.x) else self.adv
        return F.softmax(logits / tau, 1)


def test_ard_and_iad_references_are_the_library_methods(monkeypatch):
    """The checks' references equal advlib.losses' training methods ard and iad with the attack replaced by x_adv
    and a teacher with the given logits (ard: with and without the cross-entropy term; iad: after its warm-up)."""
    from advlib import losses
    from advlib.exercises import distillation_cifar10 as dc

    for case in dc._ard_cases():
        monkeypatch.setattr(losses.Context, "pgd", lambda self, **kw: case["x_adv"])
        m = harness.fixed_model().train()
        lib = losses.compute("ard", m, case["x"], case["y"], 0.1, teacher=_FakeTeacher(case["teacher_logits"]),
                             params={"tau": case["tau"], "kd_weight": case["kd_weight"]})[0]
        assert torch.allclose(lib, dc._ard_reference(m, **case), rtol=1e-6)
    for case in dc._iad_cases():
        monkeypatch.setattr(losses.Context, "pgd", lambda self, **kw: case["x_adv"])
        m = harness.fixed_model().train()
        teacher = _FakeTeacher(case["teacher_logits"], case["teacher_adv_logits"], case["x"])
        lib = losses.compute("iad", m, case["x"], case["y"], 0.1, teacher=teacher, epoch=100.0,
                             params={"tau": case["tau"], "trust_power": case["beta"]})[0]
        assert torch.allclose(lib, dc._iad_reference(m, **case), rtol=1e-6)


@pytest.mark.parametrize("which", ["ard", "iad"])
def test_distillation_loss_cases_separate_the_mistakes(which):
    """On each case the listed mistakes give values different from each other and from the expected loss where
    they are told apart (a mistake may coincide with the expected value on one case, never on all of them)."""
    from advlib.exercises import distillation_cifar10 as dc

    cases, reference, mistakes = {"ard": (dc._ard_cases, dc._ard_reference, dc._ard_mistakes),
                                  "iad": (dc._iad_cases, dc._iad_reference, dc._iad_mistakes)}[which]
    caught = None
    for case in cases():
        m = harness.fixed_model().train()
        expected = reference(m, **case).item()
        variants, _ = mistakes(0.0, expected, m, **case)
        wrong = {i for i, (v, _) in enumerate(variants) if not harness.close(v, expected)}
        caught = wrong if caught is None else caught | wrong
        for i in wrong:  # where it is wrong, a mistake is not taken for an earlier one
            assert not any(harness.close(variants[i][0], variants[j][0]) for j in range(i))
    assert caught == set(range(len(variants)))


# --------------------------------------------------------------------------- 05: IAD's loss


def _iad(weight="1-a", power=True, trust_from="adv", trust_tau=False, first_weighted=False, self_reverse=False,
         self_tau=False, no_self=False, distil_factor=True, distil_red="batchmean", self_red="sum", distil_on="adv",
         soft_from="clean", detach_self=False):
    """IAD-I's loss with one deviation."""
    def fn(m, x, a, y, t, ta, tau, beta):
        s_adv, s_nat = m(a), m(x)
        if detach_self:
            s_nat = s_nat.detach()
        target = F.softmax((t if soft_from == "clean" else ta) / tau, 1)
        rows = F.kl_div(F.log_softmax((s_adv if distil_on == "adv" else s_nat) / tau, 1), target,
                        reduction="none").sum(1)
        if distil_red == "mean":
            rows = rows / target.shape[1]
        rows = rows * (tau ** 2 if distil_factor else 1.0)
        p = F.softmax((ta if trust_from == "adv" else t) / (tau if trust_tau else 1.0), 1).gather(1, y[:, None]).squeeze(1)
        trust = p ** beta if power else p
        distil = (rows * trust).mean() if first_weighted else rows.mean()
        if no_self:
            return distil
        temp = tau if self_tau else 1.0
        if self_reverse:
            self_rows = F.kl_div(F.log_softmax(s_nat / temp, 1), F.softmax(s_adv / temp, 1), reduction="none")
        else:
            self_rows = F.kl_div(F.log_softmax(s_adv / temp, 1), F.softmax(s_nat / temp, 1), reduction="none")
        self_rows = self_rows.sum(1) if self_red == "sum" else self_rows.mean(1)
        return distil + (self_rows * (trust if weight == "a" else 1 - trust)).mean()
    return fn


IAD_MISTAKES = [
    ("no_introspection", _iad(no_self=True), ["distillation term only"]),
    ("weighted_by_a", _iad(weight="a"), ["weighted the introspection term by a"]),
    ("no_power", _iad(power=False), ["without the power β"]),
    ("trust_on_clean_x", _iad(trust_from="clean"), ["teacher's probability on the clean x"]),
    ("trust_at_temperature", _iad(trust_tau=True), ["trust uses the teacher's probabilities at temperature τ"]),
    ("distillation_weighted_by_a", _iad(first_weighted=True), ["weighted the distillation term by a"]),
    ("introspection_reversed", _iad(self_reverse=True), ["introspection KL is reversed"]),
    ("introspection_at_temperature", _iad(self_tau=True), ["introspection term is at temperature τ"]),
    ("no_tau_squared", _iad(distil_factor=False), ["not multiplied by τ²"]),
    ("distillation_mean_over_classes", _iad(distil_red="mean"), ["distillation KL is averaged over the 10 classes"]),
    ("introspection_mean_over_classes", _iad(self_red="mean"), ["introspection KL is averaged over the 10 classes"]),
    ("distillation_on_clean_x", _iad(distil_on="clean"), ["distillation term uses the student on the clean x"]),
    ("soft_labels_on_x_adv", _iad(soft_from="adv"), ["soft labels are the teacher's on x'"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in IAD_MISTAKES], ids=[n for n, _, _ in IAD_MISTAKES])
def test_iad_mistakes(answer, phrases, capsys):
    out = fails_with(ex.check_iad_loss, answer, capsys, *phrases)
    assert "Your loss is" not in out, "a listed mistake gets its own diagnosis, not the generic message"


def test_iad_detached_clean_prediction(capsys):
    fails_with(ex.check_iad_loss, _iad(detach_self=True), capsys, "right value but the wrong gradients",
               "nothing of the student is detached")


# --------------------------------------------------------------------------- 05: RSLAD's inner maximisation


def _kl_sum(m, x, logits, t):
    return F.kl_div(F.log_softmax(logits, 1), t, reduction="sum")


def _rslad_attack(**kw):
    """RSLAD's attack with one deviation (see _pgd_attack); the teacher's probabilities travel as ``y``."""
    kw = {"start": "normal", "objective": _kl_sum, **kw}
    inner = _pgd_attack(**kw)
    return lambda m, x, t, eps, alpha, steps, noise: inner(m, x, t, eps, alpha, steps, noise)


def _ce_top_class(m, x, logits, t):
    return F.cross_entropy(logits, t.argmax(1), reduction="sum")


def _own_prediction(m, x, logits, t):
    with torch.no_grad():
        p = F.softmax(m(x), 1)
    return F.kl_div(F.log_softmax(logits, 1), p, reduction="sum")


def _reversed_kl(m, x, logits, t):
    return (F.softmax(logits, 1) * (F.log_softmax(logits, 1) - torch.log(t))).sum()


def _softmax_again(m, x, logits, t):
    return F.kl_div(F.log_softmax(logits, 1), F.softmax(t, 1), reduction="sum")


def _official_kl(m, x, logits, t):  # the RSLAD code's KL with its 1e-5 (the same gradient)
    return (t * (torch.log(t + 1e-5) - F.log_softmax(logits, 1))).sum()


RSLAD_ATTACK_RIGHT = [("batchmean_kl", _rslad_attack(objective=lambda m, x, lg, t: F.kl_div(
                          F.log_softmax(lg, 1), t, reduction="batchmean"))),
                      ("official_kl_with_1e-5", _rslad_attack(objective=_official_kl)),
                      ("delta_form", _rslad_attack(delta_form=True))]


@pytest.mark.parametrize("answer", [f for _, f in RSLAD_ATTACK_RIGHT], ids=[n for n, _ in RSLAD_ATTACK_RIGHT])
def test_rslad_attack_written_differently_passes(answer, capsys):
    result, out = run(ex.check_rslad_attack, answer, capsys)
    assert result is True, out


RSLAD_ATTACK_MISTAKES = [
    ("no_start", _rslad_attack(start="none"), ["starts at the clean x", "0.001·noise"]),
    ("start_scaled_by_eps", _rslad_attack(start="normal_eps"), ["start is x + ε·noise"]),
    ("start_not_scaled", _rslad_attack(start="unscaled"), ["start is x + noise, not scaled"]),
    ("hard_labels", _rslad_attack(objective=_ce_top_class), ["cross-entropy with the teacher's top class"]),
    ("trades_target", _rslad_attack(objective=_own_prediction), ["TRADES' inner maximisation"]),
    ("reversed_kl", _rslad_attack(objective=_reversed_kl), ["reversed the KL divergence"]),
    ("softmax_again", _rslad_attack(objective=_softmax_again), ["already probabilities"]),
    ("no_ball", _rslad_attack(proj="box"), ["never projected onto the ε-ball"]),
    ("no_clamp", _rslad_attack(proj="ball"), ["not onto [0,1]"]),
    ("no_projection", _rslad_attack(proj="none"), ["not projected at all"]),
    ("raw_gradient", _rslad_attack(sign=False), ["raw gradient"]),
    ("descends", _rslad_attack(direction=-1.0), ["*lowering* the KL"]),
    ("gradient_at_clean_x", _rslad_attack(grad_at="clean"), ["every gradient at (a copy of) the clean x"]),
    ("one_step_short", _rslad_attack(steps_off=-1), ["takes 9 steps"]),
    ("step_eps", _rslad_attack(alpha_is_eps=True), ["not the step size α"]),
    ("own_random_numbers", _rslad_attack(own_rng=True), ["different x_adv on a second call"]),
    ("mode_not_restored", _rslad_attack(restore=False), ["left the model in evaluation mode"]),
    ("attacks_in_training_mode", _rslad_attack(mode="train"), ["changed the batch-norm running statistics"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in RSLAD_ATTACK_MISTAKES],
                         ids=[n for n, _, _ in RSLAD_ATTACK_MISTAKES])
def test_rslad_attack_mistakes(answer, phrases, capsys):
    out = fails_with(ex.check_rslad_attack, answer, capsys, *phrases)
    assert "differs from the expected one" not in out, "a listed mistake gets its own diagnosis"


def test_rslad_attack_reference_is_the_library_attack(monkeypatch):
    """From the same start, advlib.attacks.pgd(loss='kl', target=teacher_probs, random_start='normal') takes
    exactly the reference's steps; and the start is the library's x + 0.001·N(0, 1) with these random numbers."""
    from advlib import attacks
    from advlib.exercises import distillation_cifar10 as dc
    from advlib.exercises import pgd_training_cifar10 as pt

    for x, t, eps, alpha, steps, noise in dc._rslad_attack_cases():
        start = dc.normal_start(x, eps, noise)
        torch.manual_seed(3)
        drawn = torch.randn_like(x)
        torch.manual_seed(3)
        assert torch.equal(attacks._start(x, eps, "normal"), dc.normal_start(x, eps, drawn))
        monkeypatch.setattr(attacks, "_start", lambda x_, eps_, how: start.clone() if how == "normal" else None)
        lib = attacks.pgd(harness.fixed_model(), x, t.argmax(1), eps, alpha, steps, random_start="normal", loss="kl",
                          target=t)
        ref, _ = pt.pgd_trajectory(harness.fixed_model(), x, t.argmax(1), eps, alpha, steps, start, dc._kl_objective(t))
        assert torch.equal(lib, ref)
        monkeypatch.undo()


# --------------------------------------------------------------------------- 06: spotting a weak attack


def _weak_answer(kind):
    """weak_attacks answered by one of the rule's typical variants (advlib.exercises.evaluating_robustness._weak)."""
    from advlib.exercises import evaluating_robustness as er
    return lambda correct, settings: er._weak(correct, settings, kind)


WEAK_MISTAKES = [
    ("only_against_fgsm", _weak_answer("only_fgsm"), ["compare every attack with FGSM only", "fewer steps of *itself*"]),
    ("only_within_the_family", _weak_answer("only_family"), ["only within their family, never with FGSM"]),
    ("no_noise", _weak_answer("no_noise"), ["however little", "half_width"]),
    ("no_margin", _weak_answer("no_margin"), ["50,000 images", "more than 1 point"]),
    ("across_families", _weak_answer("cross_family"), ["fewer steps of *other* families"]),
    ("stronger_ones", _weak_answer("reversed"), ["*stronger* than their yardstick"]),
    ("flags_fgsm", lambda c, s: S6.weak_attacks(c, s) | {"FGSM"}, ["You flag FGSM", "yardstick, not a suspect"]),
    ("names_in_a_string", lambda c, s: ",".join(S6.weak_attacks(c, s)), ["returned a str"]),
    ("unknown_name", lambda c, s: {"PGD"}, ["'PGD' is not one of the attacks"]),
    ("none", lambda c, s: None, ["returned None"]),
    ("a_single_interval", lambda c, s: _one_interval(c, s), ["You flag PGD-20 (a small evaluation, 100 images)",
                                                           "the threshold"]),
    ("changes_a_mask", lambda c, s: [m.fill_(True) for m in c.values()] and set(), ["changed its argument"]),
]


def _one_interval(correct, settings):
    """Only the suspect's interval (twice its half-width as the threshold would be right; one is too small)."""
    from advlib import stats
    n = len(next(iter(correct.values())))
    acc = {k: v.float().mean().item() for k, v in correct.items()}
    out = set()
    for k, (fam, steps) in settings.items():
        for o, (fam_o, steps_o) in settings.items():
            if steps > 1 and (fam_o == "fgsm" or (fam_o == fam and steps_o < steps)):
                if acc[k] - acc[o] > max(0.01, stats.half_width(acc[k], n)):
                    out.add(k)
    return out


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in WEAK_MISTAKES], ids=[n for n, _, _ in WEAK_MISTAKES])
def test_weak_attacks_mistakes(answer, phrases, capsys):
    fails_with(ex.check_weak_attacks, answer, capsys, *phrases)


def test_weak_attacks_accepts_a_list(capsys):
    result, out = run(ex.check_weak_attacks, lambda c, s: sorted(S6.weak_attacks(c, s)), capsys)
    assert result is True, out


def test_weak_attack_cases_separate_the_variants_and_agree_with_the_evaluation():
    """Each variant of the rule flags differently from the rule and from the others on the fixed evaluations; and
    the rule flags what advlib.evaluate's own check flags on the same masks (the weakest multi-step attack against
    FGSM, and more steps against fewer of one family)."""
    from advlib import evaluate
    from advlib.exercises import evaluating_robustness as er

    cases = [er._weak_case(i) for i in range(len(er._WEAK_CASES))]
    kinds = ["right", *er._WEAK_MESSAGES]
    found = {k: tuple(frozenset(er._weak(c, s, k)) for c, s in cases) for k in kinds}
    assert len(set(found.values())) == len(kinds)
    specs = {"FGSM": "fgsm", "PGD-10": "pgd-10", "PGD-20": "pgd-20", "PGD-50": "pgd-50", "PGD-100": "pgd-100",
             "CW-20": "cw-20", "PGD-KL-10": "pgd-10-kl", "PGD-KL-20": "pgd-20-kl"}
    for correct, settings in cases:
        parsed = {name: evaluate.parse_attack(specs[name], 8 / 255) for name in correct}
        masks = {parsed[k].name: v for k, v in correct.items()}
        raised = {f.name for f in evaluate._weak_attack_flags(list(parsed.values()), masks) if f.raised}
        named = {k for k in correct if any(f.startswith(f"{parsed[k].name} at least as strong") for f in raised)}
        assert named <= er._weak(correct, settings)


# --------------------------------------------------------------------------- 06: McNemar's test by hand


def _mcnemar(p="exact", counts="right"):
    """mcnemar_test with one deviation in its counts or its p-value."""
    from scipy import stats as st

    def fn(a, b):
        ao, bo = int((a & ~b).sum()), int((~a & b).sum())
        d, k = ao + bo, min(ao, bo)
        cdf = lambda j, m=d: st.binom.cdf(j, m, 0.5) if m else 1.0  # noqa: E731
        value = {"exact": lambda: min(1.0, 2 * cdf(k)), "one_sided": lambda: cdf(k), "uncapped": lambda: 2 * cdf(k),
                 "strict": lambda: min(1.0, 2 * cdf(k - 1)), "upper": lambda: min(1.0, 2 * (1 - cdf(max(ao, bo)))),
                 "all_images": lambda: min(1.0, 2 * cdf(k, len(a))),
                 "mid_p": lambda: min(1.0, 2 * (cdf(k) - 0.5 * st.binom.pmf(k, d, 0.5))),
                 "chi2_cc": lambda: st.chi2.sf((abs(ao - bo) - 1) ** 2 / d, 1),
                 "chi2": lambda: st.chi2.sf((ao - bo) ** 2 / d, 1),
                 "float_power": lambda: min(1.0, 2 * sum(math.comb(d, i) for i in range(k + 1)) / 2.0 ** d),
                 "unpaired": lambda: _unpaired(a, b)}[p]()
        out = {"right": (ao, bo), "swapped": (bo, ao), "sums": (int(a.sum()), int(b.sum())),
               "with_both": (int((a & b).sum()), bo)}[counts]
        return {"a_only": out[0], "b_only": out[1], "p_value": value}
    return fn


def _unpaired(a, b):
    from scipy import stats as st
    pa, pb = a.float().mean().item(), b.float().mean().item()
    pooled = (pa + pb) / 2
    return 2 * st.norm.sf(abs(pa - pb) / math.sqrt(2 * pooled * (1 - pooled) / len(a)))


MCNEMAR_MISTAKES = [
    ("one_sided", _mcnemar("one_sided"), ["one-sided"]),
    ("not_capped", _mcnemar("uncapped"), ["above 1", "min(1.0"]),
    ("strict_tail", _mcnemar("strict"), ["leaves out the observed count"]),
    ("upper_tail_strict", _mcnemar("upper"), ["leaves out the observed count"]),
    ("all_images_as_trials", _mcnemar("all_images"), ["as the number of trials"]),
    ("mid_p", _mcnemar("mid_p"), ["mid-p"]),
    ("chi_square_corrected", _mcnemar("chi2_cc"), ["chi-square approximation", "with continuity"]),
    ("chi_square", _mcnemar("chi2"), ["chi-square approximation", "without continuity"]),
    ("unpaired_test", _mcnemar("unpaired"), ["as if they had been measured on different images"]),
    ("float_power_overflows", _mcnemar("float_power"), ["OverflowError", "Python integers"]),
    ("swapped_counts", _mcnemar(counts="swapped"), ["counts are swapped"]),
    ("correct_counts", _mcnemar(counts="sums"), ["numbers of images each model gets right"]),
    ("counts_the_agreements", _mcnemar(counts="with_both"), ["both models get right"]),
    ("not_a_dict", lambda a, b: 0.5, ["returned a float", "\"a_only\""]),
    ("a_list_value", lambda a, b: {**S6.mcnemar_test(a, b), "p_value": [0.1]}, ["each value must be one number"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in MCNEMAR_MISTAKES],
                         ids=[n for n, _, _ in MCNEMAR_MISTAKES])
def test_mcnemar_mistakes(answer, phrases, capsys):
    out = fails_with(ex.check_mcnemar, answer, capsys, *phrases)
    assert "Your p-value is" not in out or "above 1" in out, "a listed mistake gets its own diagnosis"


def test_mcnemar_without_a_case_for_no_disagreement(capsys):
    def divides(a, b):
        out = S6.mcnemar_test(a, b)
        d = out["a_only"] + out["b_only"]
        return {**out, "p_value": out["p_value"] * d / d}

    fails_with(ex.check_mcnemar, divides, capsys, "ZeroDivisionError", "there is nothing to test")


def test_mcnemar_accepts_tensors_and_scipy(capsys):
    from scipy import stats as st

    def with_scipy(a, b):
        ao, bo = (a & ~b).sum(), (~a & b).sum()
        d = int(ao + bo)
        return {"a_only": ao, "b_only": bo, "p_value": st.binomtest(int(ao), d).pvalue if d else 1.0}

    result, out = run(ex.check_mcnemar, with_scipy, capsys)
    assert result is True, out


# --------------------------------------------------------------------------- 06: which column to trust


def _worst(how="all", refuse=True, mixed="error"):
    """worst_case_accuracy with one deviation in how it combines the masks or treats masks of different lengths."""
    def fn(correct):
        masks = list(correct.values())
        lengths = {len(m) for m in masks}
        if len(lengths) > 1:
            if refuse:
                raise ValueError("different images")
            if mixed == "truncate":
                masks = [m[:min(lengths)] for m in masks]
            elif mixed == "library":
                masks = [m for m in masks if len(m) == max(lengths)]
        stack = torch.stack(masks)  # masks of different lengths left as they are: stack raises
        acc = {"all": lambda: stack.all(0).float().mean().item(), "any": lambda: stack.any(0).float().mean().item(),
               "min": lambda: min(m.float().mean().item() for m in masks),
               "mean": lambda: stack.float().mean().item(), "percent": lambda: 100 * stack.all(0).float().mean().item(),
               "count": lambda: int(stack.all(0).sum()), "error": lambda: 1 - stack.all(0).float().mean().item()}[how]
        return acc()
    return fn


WORST_MISTAKES = [
    ("strongest_single_column", _worst("min"), ["lowest single column", "every* attack"]),
    ("any_attack", _worst("any"), ["*any* attack"]),
    ("mean_of_columns", _worst("mean"), ["average of the columns"]),
    ("percent", _worst("percent"), ["in percent"]),
    ("count", _worst("count"), ["number of images robust to every attack"]),
    ("error_rate", _worst("error"), ["error rate"]),
    ("truncates", _worst(refuse=False, mixed="truncate"), ["cut every mask to the first 200 images", "ValueError"]),
    ("leaves_out_silently", _worst(refuse=False, mixed="library"), ["as advlib.evaluate.worst_case does",
                                                                    "raise a ValueError instead"]),
    ("no_check", _worst(refuse=False), ["RuntimeError", "raise a ValueError"]),
    ("returns_a_tensor_of_masks", lambda c: torch.stack(list(c.values())).all(0), ["return the worst-case accuracy as "
                                                                                  "one number"]),
]


@pytest.mark.parametrize("answer,phrases", [(f, p) for _, f, p in WORST_MISTAKES], ids=[n for n, _, _ in WORST_MISTAKES])
def test_worst_case_mistakes(answer, phrases, capsys):
    fails_with(ex.check_worst_case, answer, capsys, *phrases)


def test_worst_case_reference_separates_the_mistakes():
    """On the first two cases the worst case lies below the strongest single column and above zero, and every
    diagnosed value differs from it."""
    from advlib import evaluate
    from advlib.exercises import evaluating_robustness as er

    for i in range(2):
        c = er._worst_case(i)
        ref = evaluate.worst_case(c, {k: len(v) for k, v in c.items()})["accuracy"]
        assert 0 < ref < min(v.float().mean().item() for v in c.values()) - 0.01
    c = er._worst_case(2)
    assert len({len(v) for v in c.values()}) == 2


# --------------------------------------------------------------------------- the model's mode and batch norm


def _fgsm_train_mode(m, x, y, e):
    """FGSM computed in whatever mode the model is in (a training-mode model updates batch norm)."""
    return (x + e * _grad(m, x, y).sign()).clamp(0, 1).detach()


def _eval_no_restore(answer):
    def fn(m, *args):
        m.eval()
        return answer(m, *args)
    return fn


def _restores_only_the_flag(answer):
    def fn(m, *args):
        was = m.training
        m.eval()
        out = answer(m, *args)
        m.training = was  # the outer module only: its submodules stay in evaluation mode
        return out
    return fn


ATTACKS = [
    (ex.check_fgsm, _fgsm_train_mode, "every attack"),
    (ex.check_pgd_step, lambda m, a, x, y, e, al: _ball(_step(m, a, y, al), x, e).clamp(0, 1).detach(),
     "every attack step"),
    (ex.check_robust_accuracy, lambda m, x, y, atk: _acc(m, atk(m, x, y), y) if not m.training
     else (m(atk(m, x, y)).argmax(1) == y).float().mean().item(), "every evaluation"),
]
ATTACK_IDS = [c.__name__ for c, _, _ in ATTACKS]


@pytest.mark.parametrize("check,train_mode_answer,doing", ATTACKS, ids=ATTACK_IDS)
def test_attack_in_training_mode_changes_batchnorm_statistics(check, train_mode_answer, doing, capsys):
    """Right on the fixed network (no batch norm, evaluation mode); on a batch-norm network in training
    mode it updates the running statistics."""
    fails_with(check, train_mode_answer, capsys, "changed the batch-norm running statistics", doing,
               "model.eval()", "model.train(...)")


@pytest.mark.parametrize("check,answer", [(c, dict(CHECKS)[c]) for c, _, _ in ATTACKS], ids=ATTACK_IDS)
def test_attack_that_does_not_restore_the_mode(check, answer, capsys):
    fails_with(check, _eval_no_restore(answer), capsys, "left the model in evaluation mode",
               "was in training mode", "model.train(...)")
    out = fails_with(check, _restores_only_the_flag(answer), capsys, "although `model.training` is back",
                     "BatchNorm2d", "model.train(...)")
    assert "Also:" not in out


def _left_in_eval(answer):
    """The answer, then the model switched to evaluation mode and left there."""
    def fn(m, *args):
        out = answer(m, *args)
        m.eval()
        return out
    return fn


def _takes_a_model(e) -> bool:
    ns = {}
    exec(e.starter, ns)
    return next(iter(inspect.signature(ns[e.function]).parameters), None) == "model"


MODEL_CHECKS = [e.check for items in ex.EXERCISES.values() for e in items if _takes_a_model(e)]


def test_model_checks_are_every_check_of_a_function_of_the_model():
    assert {c.__name__ for c in MODEL_CHECKS} == {
        "check_fgsm", "check_robust_accuracy", "check_two_pass_step", "check_pgd_step", "check_weighted_fgsm_loss",
        "check_pgd_attack", "check_trades_loss", "check_mart_loss", "check_awp_step", "check_rslad_loss", "check_ard_loss", "check_iad_loss",
        "check_rslad_attack", "check_adaad_step"}


@pytest.mark.parametrize("wrap", [_eval_no_restore, _left_in_eval], ids=["eval_first", "eval_at_the_end"])
@pytest.mark.parametrize("check", MODEL_CHECKS, ids=[c.__name__ for c in MODEL_CHECKS])
def test_a_model_left_in_eval_mode_is_caught(check, wrap, capsys):
    """Every check whose function receives a model fails an otherwise correct answer that leaves the model in
    evaluation mode (``model.eval()`` and the caller's training mode never restored), and says so."""
    fails_with(check, wrap(dict(CHECKS)[check]), capsys, "left the model in evaluation mode", "was in training mode")


@pytest.mark.parametrize("check,answer", [(ex.check_weighted_fgsm_loss, S2.weighted_fgsm_loss),
                                          (ex.check_trades_loss, S4.trades_loss),
                                          (ex.check_mart_loss, S4.mart_loss),
                                          (ex.check_rslad_loss, S5.rslad_loss),
                                          (ex.check_ard_loss, S5.ard_loss),
                                          (ex.check_iad_loss, S5.iad_loss)],
                         ids=["weighted", "trades", "mart", "rslad", "ard", "iad"])
def test_loss_must_leave_the_mode_as_it_found_it(check, answer, capsys):
    def attack_in_eval_mode(m, *args):  # the attack in evaluation mode, then only the outer flag restored
        was = m.training
        m.eval()
        out = answer(m, *args)
        m.training = was
        return out

    fails_with(check, attack_in_eval_mode, capsys, "although `model.training` is back", "in evaluation mode")

    def restores(m, *args):  # evaluation mode inside, the caller's mode restored: fine for a loss
        was = m.training
        m.eval()
        out = answer(m, *args)
        m.train(was)
        return out

    result, out = run(check, restores, capsys)
    assert result is True, out


def test_weighted_loss_reusing_the_clean_forward_pass_passes(capsys):
    """One forward pass on a copy of x gives both the clean loss and the FGSM gradient: cheaper, and
    the same loss and parameter gradients (the loss also reaches x_req, but only through the clean term)."""
    def reuse(m, x, y, e, k):
        x_req = x.clone().requires_grad_(True)
        clean = F.cross_entropy(m(x_req), y)
        g, = torch.autograd.grad(clean, x_req, retain_graph=True)
        x_adv = (x + e * g.sign()).clamp(0, 1).detach()
        return (1 - k) * clean + k * F.cross_entropy(m(x_adv), y)

    result, out = run(ex.check_weighted_fgsm_loss, reuse, capsys)
    assert result is True, out


def test_trades_loss_with_one_forward_pass_passes(capsys):
    def one_pass(m, x, a, y, b):
        lc, la = m(torch.cat([x, a])).chunk(2)
        return F.cross_entropy(lc, y) + b * _kl(lc, la)

    result, out = run(ex.check_trades_loss, one_pass, capsys)
    assert result is True, out


def test_weighted_reference_reads_mix():
    """The reference is the library's training method with `mix` as the parameter it declares."""
    from advlib import losses

    assert "mix" in losses.get_method("fgsm_weighted").params
    x, y = harness.images(4, seed=9), harness.labels(4, seed=9)
    m = harness.fixed_model().train()
    values = {losses.compute("fgsm_weighted", m, x, y, 0.3, params={"mix": k})[0].item() for k in (0.3, 0.75)}
    assert len(values) == 2


def test_batchnorm_model_depends_on_its_mode():
    """Otherwise the training-mode case could not tell a mode-leaking answer from a correct one."""
    m, x = harness.batchnorm_model(), harness.images(4)
    assert all(mod.training for mod in m.modules())
    with torch.no_grad():
        train_out = m(x)
        m.eval()
        assert not torch.allclose(train_out, m(x), atol=1e-3)


# --------------------------------------------------------------------------- statements


def test_exercises_table():
    names = {"00_setup": ["project_linf", "linf_distance"],
             "01_fgsm_mnist": ["my_fgsm", "robust_accuracy"],
             "02_adversarial_training_mnist": ["two_pass_step", "pgd_step", "weighted_fgsm_loss"],
             "02b_adversarial_training_in_practice_mnist": ["predict", "choose_eps", "explain"],
             "03_pgd_training_cifar10": ["pgd_attack", "choose_checkpoint"],
             "04_trades_mart_cifar10": ["trades_loss", "mart_loss", "awp_step"],
             "05_rslad_distillation_cifar10": ["rslad_loss", "ard_loss", "iad_loss", "rslad_attack", "adaad_step"],
             "06_evaluating_robustness": ["weak_attacks", "mcnemar_test", "worst_case_accuracy"]}
    assert list(ex.EXERCISES) == list(names)
    for nb, items in ex.EXERCISES.items():
        sol = {"00_setup": S0, "01_fgsm_mnist": S1, "02_adversarial_training_mnist": S2,
               "02b_adversarial_training_in_practice_mnist": S2b, "03_pgd_training_cifar10": S3,
               "04_trades_mart_cifar10": S4, "05_rslad_distillation_cifar10": S5, "06_evaluating_robustness": S6}[nb]
        assert [e.function for e in items] == names[nb]
        for e in items:
            assert e.statement.strip().startswith("### Exercise") and "$" in e.statement
            assert f"def {e.function}(" in e.starter and "raise NotImplementedError" in e.starter
            assert getattr(ex, e.check.__name__) is e.check, "the check cell calls advlib.exercises.<check>"
            assert e.check_source.startswith("# NBVAL_CHECK_OUTPUT\n")
            assert e.check_source.endswith(f"passed = advlib.exercises.{e.check.__name__}({e.function})")
            assert hasattr(sol, e.function)
            compile(e.starter, e.name, "exec")


def test_starter_then_check_runs_headless(capsys):
    """What a notebook executed without answers does: define the stub, run the check cell; it prints
    exactly the output stored in the check cell."""
    for items in ex.EXERCISES.values():
        for e in items:
            ns = {}
            exec(e.starter, ns)
            exec(e.check_source, ns)
            assert ns["passed"] is False
            stored = "".join(o["text"][0] for o in e.cells()[2].outputs)
            assert capsys.readouterr().out == stored == harness.NOT_ATTEMPTED + "\n"
