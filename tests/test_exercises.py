"""The self-checking exercises: every check accepts the reference solution (and equivalent answers),
and for each typical mistake returns False and prints its specific diagnosis, without raising."""
from __future__ import annotations

import importlib.util
import inspect
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
S4 = _load("04_trades_mart_cifar10")
S5 = _load("05_rslad_distillation_cifar10")


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
    (ex.check_trades_loss, S4.trades_loss),
    (ex.check_mart_loss, S4.mart_loss),
    (ex.check_awp_step, S4.awp_step),
    (ex.check_rslad_loss, S5.rslad_loss),
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
        "check_trades_loss", "check_mart_loss", "check_awp_step", "check_rslad_loss"}


@pytest.mark.parametrize("wrap", [_eval_no_restore, _left_in_eval], ids=["eval_first", "eval_at_the_end"])
@pytest.mark.parametrize("check", MODEL_CHECKS, ids=[c.__name__ for c in MODEL_CHECKS])
def test_a_model_left_in_eval_mode_is_caught(check, wrap, capsys):
    """Every check whose function receives a model fails an otherwise correct answer that leaves the model in
    evaluation mode (``model.eval()`` and the caller's training mode never restored), and says so."""
    fails_with(check, wrap(dict(CHECKS)[check]), capsys, "left the model in evaluation mode", "was in training mode")


@pytest.mark.parametrize("check,answer", [(ex.check_weighted_fgsm_loss, S2.weighted_fgsm_loss),
                                          (ex.check_trades_loss, S4.trades_loss),
                                          (ex.check_mart_loss, S4.mart_loss),
                                          (ex.check_rslad_loss, S5.rslad_loss)], ids=["weighted", "trades", "mart", "rslad"])
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
             "04_trades_mart_cifar10": ["trades_loss", "mart_loss", "awp_step"],
             "05_rslad_distillation_cifar10": ["rslad_loss"]}
    assert list(ex.EXERCISES) == list(names)
    for nb, items in ex.EXERCISES.items():
        sol = {"00_setup": S0, "01_fgsm_mnist": S1, "02_adversarial_training_mnist": S2,
               "02b_adversarial_training_in_practice_mnist": S2b,
               "04_trades_mart_cifar10": S4, "05_rslad_distillation_cifar10": S5}[nb]
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
