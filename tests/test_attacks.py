"""Attack invariants (property-based) and agreement with torchattacks."""
from __future__ import annotations

import pytest
import torch
import torchattacks
from hypothesis import HealthCheck, given, settings, strategies as st

from advlib import attack_registry, attacks, evaluate
from advlib.evaluate import batched_accuracy

from .conftest import counting_images

# Every registered family's cheap examples (advlib.attack_registry, "examples"), run as the evaluation runs
# them plainly (AttackSpec.__call__): a new family is under these tests by its registration alone.
# The step, where a spec takes one, as before: eps/4 but at least 1e-3.
ATTACKS = {spec: (lambda m, x, y, e, spec=spec: evaluate.parse_attack(spec, e, alpha=max(e / 4, 1e-3))(m, x, y))
           for spec in attack_registry.examples()}


def test_the_attack_list_covers_every_plain_attack():
    assert {"fgsm", "pgd-3", "pgd-2x3", "cw-3", "pgd-3-kl", "pgd-3-nors", "noise"} <= set(ATTACKS)
    kinds = {evaluate.parse_attack(s, 0.1).kind for s in ATTACKS}
    assert kinds == set(attack_registry.FAMILIES) - {"aa"}  # AutoAttack: against the package, in test_evaluate


images = st.integers(0, 2**31 - 1).map(lambda s: torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(s)))


@pytest.mark.parametrize("name", list(ATTACKS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=images, eps=st.floats(0.0, 1.0), binarise=st.booleans())
def test_perturbation_stays_in_ball_and_box(tiny_model, name, x, eps, binarise):
    if binarise:  # pixels at exactly 0 and 1 exercise the [0,1] clamp
        x = (x > 0.5).float()
    y = torch.arange(len(x)) % 10
    x_adv = ATTACKS[name](tiny_model, x, y, eps)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", list(ATTACKS))
def test_eps_zero_gives_clean_accuracy(trained_mnist, mnist_sample, name):
    x, y = mnist_sample[1].tensors(300)
    clean = batched_accuracy(trained_mnist, x, y)
    assert batched_accuracy(trained_mnist, x, y, lambda m, a, b: ATTACKS[name](m, a, b, 0.0)) == clean
    assert torch.equal(ATTACKS[name](trained_mnist, x, y, 0.0), x)


@pytest.mark.parametrize("name", [n for n in ATTACKS if not evaluate.parse_attack(n, 0.1).family.baseline])
@pytest.mark.parametrize("start_training", [True, False])
def test_model_mode_restored_and_no_parameter_gradients(name, start_training):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10))
    model.train(start_training)
    model[2].eval()  # a submodule in another mode than its parent must keep it
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    ATTACKS[name](model, x, y, 0.1)
    assert model.training == start_training and model[1].training == start_training
    assert model[2].training is False
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_restarts_keep_the_worst_case(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(300)
    torch.manual_seed(1)
    one = batched_accuracy(trained_mnist, x, y, lambda m, a, b: attacks.pgd(m, a, b, 0.1, 0.02, 5))
    torch.manual_seed(1)
    five = batched_accuracy(trained_mnist, x, y, lambda m, a, b: attacks.pgd(m, a, b, 0.1, 0.02, 5, restarts=5))
    assert five <= one


def test_pgd_is_stronger_than_fgsm_and_noise(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(500)
    eps = 0.1
    noise = batched_accuracy(trained_mnist, x, y, lambda m, a, b: attacks.random_noise(m, a, b, eps))
    fgsm = batched_accuracy(trained_mnist, x, y, lambda m, a, b: attacks.fgsm(m, a, b, eps))
    pgd = batched_accuracy(trained_mnist, x, y, lambda m, a, b: attacks.pgd(m, a, b, eps, 0.01, 20))
    assert pgd < fgsm < noise


@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=-0.1), "eps must be in"),
    (dict(eps=1.5), "eps must be in"),
    (dict(alpha=0.0), "alpha must be > 0"),
    (dict(steps=0), "steps must be an integer"),
    (dict(restarts=0), "restarts must be"),
    (dict(loss="mse"), "loss must be one of"),
    (dict(x=torch.rand(4, 1, 28, 28) * 2), "inputs must lie in"),
    (dict(x=torch.rand(4, 1, 28, 28) - 0.5), "inputs must lie in"),
    (dict(y=torch.zeros(3, dtype=torch.long)), "one label per image"),
    (dict(x=torch.randint(0, 255, (4, 1, 28, 28), dtype=torch.uint8)), "floating-point"),
])
def test_bad_arguments_raise_clear_errors(tiny_model, kwargs, message):
    args = dict(x=torch.rand(4, 1, 28, 28), y=torch.zeros(4, dtype=torch.long), eps=0.1, alpha=0.01, steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        attacks.pgd(tiny_model, **args)
    if set(kwargs) <= {"eps", "x", "y"}:
        with pytest.raises(ValueError, match=message):
            attacks.fgsm(tiny_model, args["x"], args["y"], args["eps"])


# ------------------------------------------------------------------ agreement with torchattacks


def _agreement(model, x, y, ours, theirs):
    acc_ours = batched_accuracy(model, x, y, lambda m, a, b: ours(a, b))
    acc_theirs = batched_accuracy(model, x, y, lambda m, a, b: theirs(a, b))
    return acc_ours, acc_theirs


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_fgsm_agrees_with_torchattacks(trained_mnist, mnist_sample, eps):
    x, y = mnist_sample[1].tensors(1000)
    ta = torchattacks.FGSM(trained_mnist, eps=eps)
    ours, theirs = _agreement(trained_mnist, x, y, lambda a, b: attacks.fgsm(trained_mnist, a, b, eps), ta)
    clean = batched_accuracy(trained_mnist, x, y)
    assert clean > 0.9
    assert 0.05 < ours < clean - 0.05, "the comparison must be made where the attack bites but does not saturate"
    assert abs(ours - theirs) <= 0.005
    same = (attacks.fgsm(trained_mnist, x, y, eps) == ta(x, y)).float().mean().item()
    assert same > 0.999


@pytest.mark.parametrize("eps, steps", [(0.05, 10), (0.1, 20)])
def test_pgd_agrees_with_torchattacks(trained_mnist, mnist_sample, eps, steps):
    x, y = mnist_sample[1].tensors(1000)
    alpha = attacks.madry_alpha(eps, steps)
    ta = torchattacks.PGD(trained_mnist, eps=eps, alpha=alpha, steps=steps, random_start=False)
    ours, theirs = _agreement(
        trained_mnist, x, y, lambda a, b: attacks.pgd(trained_mnist, a, b, eps, alpha, steps, random_start=False), ta)
    assert 0.0 < ours < batched_accuracy(trained_mnist, x, y) - 0.05
    assert abs(ours - theirs) <= 0.005


def test_autoattack_wrapper_runs_and_is_at_least_as_strong_as_pgd(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(40)
    eps = 0.1  # most points fall to APGD-CE, so the slow FAB and Square loops run on few of them
    torch.manual_seed(0)
    pgd = batched_accuracy(trained_mnist, x, y, lambda m, a, b: attacks.pgd(m, a, b, eps, eps / 4, 20))
    xa = attacks.autoattack(trained_mnist, x, y, eps)
    assert attacks.eps_ok(xa, x, eps)
    aa = batched_accuracy(trained_mnist, xa, y)
    assert aa <= pgd + 0.02


# ------------------------------------------------------------------ evaluation mode: stop on success


@pytest.mark.parametrize("loss", ["ce", "cw", "kl"])
def test_stop_on_success_never_weakens_pgd(trained_mnist, mnist_sample, loss):
    """Freezing each sample at its first fooling iterate, and restarting only unfooled samples, gives
    adversarial examples that fool the model at least as often as plain PGD, inside the ball."""
    x, y = mnist_sample[1].tensors(300)
    eps, steps = 0.1, 10
    torch.manual_seed(0)
    plain = attacks.pgd(trained_mnist, x, y, eps, attacks.madry_alpha(eps, steps), steps, restarts=2, loss=loss)
    torch.manual_seed(0)
    early = attacks.pgd(trained_mnist, x, y, eps, attacks.madry_alpha(eps, steps), steps, restarts=2, loss=loss,
                        stop_on_success=True)
    assert attacks.eps_ok(early, x, eps)
    acc_plain, acc_early = batched_accuracy(trained_mnist, plain, y), batched_accuracy(trained_mnist, early, y)
    # Not exact image by image: the second restart draws its random starts for the unfooled images only, so its
    # starts differ from plain PGD's, and one image in 300 can go either way (seen with OMP_NUM_THREADS=1).
    assert 0.05 < acc_early <= acc_plain + 2 / len(y), (acc_early, acc_plain)


def test_stop_on_success_does_less_work_on_a_weak_model(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(200)
    with counting_images(trained_mnist) as plain:
        attacks.pgd(trained_mnist, x, y, 0.3, 0.03, 20, restarts=3)
    with counting_images(trained_mnist) as early:
        attacks.pgd(trained_mnist, x, y, 0.3, 0.03, 20, restarts=3, stop_on_success=True)
    assert early["n"] < plain["n"] / 3, (early, plain)  # at eps 0.3 nearly every sample falls within a few steps
