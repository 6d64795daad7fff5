"""AdaAD (issue 21): the teacher's forward pass with input gradients, PGD objectives that see the iterate and the
clean images (attacks.InputObjective), the training method adaad against an independent transcription of the
official code (boyellow/AdaAD), its recipes and its exercise."""
from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from advlib import attacks, exercises as ex, losses, recipes, reference, train
from advlib.exercises import distillation_cifar10 as d05, harness
from advlib.losses.adaad import mean_kl, teacher_student_kl
from advlib.teacher import Teacher

EPS, ALPHA, STEPS = 0.05, 0.02, 3
SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"


class Net(nn.Module):
    """A tiny CIFAR-shaped net with batch norm (train vs eval mode matters)."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(8 * 16 * 16, 10))
        with torch.no_grad():  # running statistics away from their defaults: a mode leak changes the outputs
            self.body[1].running_mean.uniform_(-0.2, 0.2)
            self.body[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        return self.body(x)


def _student_teacher():
    student, teacher_net = Net(1).train(), Net(2)
    with torch.no_grad():  # a teacher with some opinion (larger logits)
        teacher_net.body[-1].weight.mul_(20)
    return student, teacher_net.eval()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    x = 0.2 + 0.6 * torch.rand(16, 3, 32, 32, generator=g)  # away from 0 and 1: no clamping at the start
    y = torch.randint(0, 10, (16,), generator=g)
    return x, y


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _ours(student, teacher_net, x, y, eps=EPS, **cfg):
    torch.manual_seed(7)
    return losses.compute("adaad", student, x, y, eps, teacher=Teacher(teacher_net), steps=STEPS, alpha=ALPHA,
                          attack_mode="eval", **cfg)


def _kl_sum(student, teacher_net, at):
    """Σ KL(T(at) ‖ S(at)) over batch and classes, both in eval mode, without side effects."""
    with torch.no_grad(), attacks.model_mode(student, "eval"), attacks.model_mode(teacher_net, "eval"):
        return F.kl_div(F.log_softmax(student(at), 1), F.softmax(teacher_net(at), 1), reduction="sum").item()


# --------------------------------------------------------------------------- the teacher's forward with gradients


def test_teacher_logits_with_grad_reach_the_input_only(batch):
    x, _ = batch
    _, net = _student_teacher()
    teacher = Teacher(net, cache=True)
    before = _state(net)
    x_req = x.clone().requires_grad_(True)
    out = teacher.logits(x_req, grad=True)
    assert out.requires_grad and out.dtype == torch.float32
    (g,) = torch.autograd.grad(out.logsumexp(1).sum(), x_req)
    assert g.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert teacher.hits == teacher.misses == 0 and not teacher._store, "grad=True bypasses the cache"
    # the same values as the cached path, in eval mode even if someone switched the teacher to training mode
    net.train()
    out2 = teacher.logits(x, grad=True)
    assert net.training, "the caller's mode is restored"
    net.eval()
    assert torch.allclose(out2, teacher.logits(x), atol=1e-6)
    assert _same_state(before, _state(net)), "weights and batch-norm statistics unchanged"
    with torch.no_grad():
        assert not teacher.logits(x_req, grad=True).requires_grad
    assert not teacher.logits(x_req).requires_grad and not teacher.probs(x_req, cached=False).requires_grad
    assert teacher.probs(x_req, grad=True).requires_grad


def test_teacher_with_grad_keeps_weights_frozen_even_if_switched_on(batch):
    x, _ = batch
    _, net = _student_teacher()
    teacher = Teacher(net)
    for p in net.parameters():
        p.requires_grad_(True)  # someone switched them back on
    x_req = x.clone().requires_grad_(True)
    teacher.logits(x_req, grad=True).sum().backward()
    assert x_req.grad is not None and all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters()), "the flags are given back as they were"


# --------------------------------------------------------------------------- PGD objectives that see the inputs


def test_input_objective_sees_the_iterate_and_the_clean_images(batch):
    x, y = batch
    student, _ = _student_teacher()
    seen = []

    @attacks.InputObjective
    def objective(logits, labels, x_adv, x0):
        seen.append((x_adv.requires_grad, x_adv.shape, x0.shape, torch.is_grad_enabled()))
        assert len(x0) < len(x) or torch.equal(x0, x), "the clean images of the samples attacked"
        return F.cross_entropy(logits, labels, reduction="none") + 0 * (x_adv - x0).flatten(1).sum(1)

    torch.manual_seed(0)
    out = attacks.pgd(student, x, y, EPS, ALPHA, STEPS, loss=objective)
    assert attacks.eps_ok(out, x, EPS)
    assert len(seen) == STEPS and all(r and s == x.shape and c == x.shape and g for r, s, c, g in seen)
    torch.manual_seed(0)  # the same attack as the plain objective: the inputs only add what the objective makes of them
    plain = attacks.pgd(student, x, y, EPS, ALPHA, STEPS, loss="ce")
    assert torch.equal(out, plain)
    # restarts rank the restarts without gradients; stop_on_success hands over matching subsets
    seen.clear()
    attacks.pgd(student, x, y, EPS, ALPHA, STEPS, loss=objective, restarts=2)
    assert any(not g for *_, g in seen)
    seen.clear()
    attacks.pgd(student, x, y, EPS, ALPHA, STEPS, loss=objective, stop_on_success=True)
    assert all(s == c for _, s, c, _ in seen)
    fg = attacks.fgsm(student, x, y, EPS, loss=objective)
    assert torch.equal(fg, attacks.fgsm(student, x, y, EPS))
    assert student.training and all(p.grad is None for p in student.parameters())


def test_input_objective_through_a_second_network_changes_the_gradient(batch):
    x, y = batch
    student, net = _student_teacher()
    teacher = Teacher(net)
    f = teacher_student_kl(teacher)
    with attacks.model_mode(student, "eval"), attacks.frozen(student):
        g_both, per, _ = attacks.input_gradient(student, x, y, f, clean=x)
        t = teacher.probs(x)  # the teacher's output as a fixed target: gradient through the student only
        g_fixed, per_fixed, _ = attacks.input_gradient(student, x, y, "kl", t)
    assert torch.allclose(per, per_fixed, atol=1e-6), "the same value at the point itself"
    assert (g_both.sign() != g_fixed.sign()).float().mean() > 0.05, "the teacher's path changes the gradient"
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="InputObjective wraps a function"):
        attacks.InputObjective(3)


# --------------------------------------------------------------------------- the method against the official code


def _official(student, teacher_net, x, y, adv_weight):
    """An independent transcription of boyellow/AdaAD: AT_helper.py l.8-48 (the attack) and main.py l.326-353
    (the loss, CIFAR-10 branch), in plain PyTorch."""
    torch.manual_seed(7)
    student.eval()
    teacher_net.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    for _ in range(STEPS):
        x_adv.requires_grad_()
        with torch.enable_grad():
            kl = nn.KLDivLoss(reduction="none")(F.log_softmax(student(x_adv), 1), F.softmax(teacher_net(x_adv), 1))
        (g,) = torch.autograd.grad(kl.sum(), [x_adv])
        x_adv = torch.min(torch.max(x_adv.detach() + ALPHA * g.sign(), x - EPS), x + EPS).clamp(0, 1)
    student.train()
    ori, adv = student(x), student(x_adv)
    with torch.no_grad():
        t_ori, t_adv = teacher_net(x), teacher_net(x_adv)
    with pytest.warns(UserWarning):  # nn.KLDivLoss()'s default "mean": the sum over batch x classes / their number
        kl1 = nn.KLDivLoss()(F.log_softmax(adv, 1), F.softmax(t_adv, 1))
        kl2 = nn.KLDivLoss()(F.log_softmax(ori, 1), F.softmax(t_ori, 1))
    return adv_weight * kl1 + (1 - adv_weight) * kl2, x_adv


@pytest.mark.parametrize("adv_weight", [1.0, 0.6])
def test_adaad_is_the_official_loss(batch, adv_weight):
    x, y = batch
    student, teacher_net = _student_teacher()
    ours, logits = _ours(student, teacher_net, x, y, params={"adv_weight": adv_weight})
    assert student.training, "the student is back in training mode"
    ours_stats = _state(student)
    student, teacher_net = _student_teacher()
    ref, x_adv = _official(student, teacher_net, x, y, adv_weight)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7), (ours.item(), ref.item())
    with torch.no_grad():  # the returned logits: the student's on x' (training mode, batch statistics)
        assert logits.shape == (len(x), 10)
    # the student's batch-norm statistics saw the clean and the adversarial batch, as in the code
    assert _same_state(ours_stats, _state(student))
    # parameter gradients agree too
    s1, t1 = _student_teacher()
    g_ours = torch.autograd.grad(_ours(s1, t1, x, y, params={"adv_weight": adv_weight})[0], list(s1.parameters()))
    s2, t2 = _student_teacher()
    g_ref = torch.autograd.grad(_official(s2, t2, x, y, adv_weight)[0], list(s2.parameters()))
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(g_ours, g_ref))


def test_the_attack_stays_in_the_ball_and_raises_the_student_teacher_kl():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(16, 3, 32, 32, generator=g)  # pixels near 0 and 1: the clamp to [0,1] binds
    x[:, :, :4] = 0.0
    x[:, :, -4:] = 1.0
    y = torch.randint(0, 10, (16,), generator=g)
    student, teacher_net = _student_teacher()
    captured = []
    real_pgd = losses.Context.pgd
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(losses.Context, "pgd",
                   lambda self, *a, **k: captured.append(real_pgd(self, *a, **k)) or captured[-1])
        torch.manual_seed(7)
        losses.compute("adaad", student, x, y, 8 / 255, teacher=Teacher(teacher_net), steps=5, alpha=2 / 255)
    (x_adv,) = captured
    assert attacks.eps_ok(x_adv, x, 8 / 255) and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 7 / 255, "the attack moved"
    student, teacher_net = _student_teacher()
    assert _kl_sum(student, teacher_net, x_adv) > 1.2 * _kl_sum(student, teacher_net, x)


def test_the_teacher_is_left_alone_and_the_attack_leaves_the_student_alone(batch):
    x, y = batch
    student, teacher_net = _student_teacher()
    t_before, s_before = _state(teacher_net), _state(student)
    teacher = Teacher(teacher_net)
    seen = []
    teacher_net.register_forward_hook(lambda m, inp, out: seen.append((m.training, torch.is_grad_enabled())))
    ctx = losses.Context(student, x, y, EPS, losses.TrainConfig(method="adaad", eps=EPS, steps=STEPS, alpha=ALPHA),
                         teacher)
    torch.manual_seed(7)
    x_adv = ctx.pgd(loss=teacher_student_kl(teacher), random_start="normal")
    assert _same_state(s_before, _state(student)), "the attack (eval mode) leaves the student's statistics alone"
    assert student.training and all(m.training for m in student.modules())
    assert len(seen) == STEPS and all(not training and grad for training, grad in seen), \
        "the teacher runs in eval mode on every iterate, inside the graph"
    assert attacks.eps_ok(x_adv, x, EPS)
    seen.clear()
    torch.manual_seed(7)
    loss, _ = losses.get_method("adaad")(ctx)
    loss.backward()
    assert all(p.grad is None for p in teacher_net.parameters())
    assert all(not m.training for m in teacher_net.modules())
    assert _same_state(t_before, _state(teacher_net)), "the teacher's weights and statistics are unchanged"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert seen[-1] == (False, False), "the teacher on x' for the outer loss: eval mode, no graph"


def test_eps_zero_is_pure_distillation_on_the_clean_batch(batch):
    x, y = batch
    student, teacher_net = _student_teacher()
    loss, _ = _ours(student, teacher_net, x, y, eps=0.0)
    student, teacher_net = _student_teacher()
    student(x)  # the engine's two training-mode passes on the same batch
    with torch.no_grad():
        t = F.softmax(teacher_net(x), 1)
    ref = (torch.xlogy(t, t) - t * F.log_softmax(student(x), 1)).sum() / t.numel()
    assert torch.allclose(loss, ref, rtol=1e-5)
    assert torch.allclose(mean_kl(student(x), t), ref, rtol=1e-5)


def test_adaad_is_registered_like_the_other_distillation_methods():
    m = losses.get_method("adaad")
    assert m.teacher and m.uses == losses.ATTACK_FIELDS and m.params == {"adv_weight": 1.0}
    assert m.citation == "Huang et al., CVPR 2023" == reference.declared_by_methods("citation")["adaad"]
    assert m.paper is None  # no published table here has an AdaAD row (reference.RSLAD_METHODS)
    cfg = recipes.config("cifar_d_adaad", teacher="t.pt", params={"adv_weight": 1.5})
    with pytest.raises(ValueError, match=r"adv_weight \(a parameter of adaad\) must be in \[0, 1\]"):
        losses.validate(cfg)
    with pytest.raises(ValueError, match="distils from a teacher"):
        losses.validate(recipes.config("cifar_d_adaad"))
    assert "boyellow/AdaAD" in inspect.getdoc(m.fn) and "AT_helper.py" in inspect.getdoc(m.fn)


# --------------------------------------------------------------------------- recipes


def test_the_cpu_recipe_shares_notebook_05s_budget():
    cfgs = [recipes.config(r) for r in recipes.DISTILLATION_STUDENTS]
    ada = recipes.config("cifar_d_adaad")
    for key in ("model", "epochs", "batch_size", "lr", "schedule", "eps", "steps", "alpha", "augment_crop", "precision",
                "channels_last", "optimizer", "weight_decay"):
        assert {getattr(c, key) for c in cfgs} == {getattr(ada, key)}, key
    assert ada.method == "adaad" and ada.attack_mode == "eval" and ada.params == {"adv_weight": 1.0}
    assert ada.loss_scale == recipes.config("cifar_d_rslad").loss_scale  # not searched: RSLAD's, a loss on its scale


def test_the_gpu_recipe_has_the_official_settings():
    cfg = recipes.config("cifar_adaad_gpu")
    assert (cfg.model, cfg.method, cfg.attack_mode) == ("resnet18", "adaad", "eval")
    assert (cfg.eps, cfg.steps, cfg.alpha) == (8 / 255, 10, 2 / 255)
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == \
        (200, 128, "sgd", 0.1, 0.9, 5e-4)
    assert (cfg.schedule, tuple(cfg.milestones), cfg.params) == ("multistep", (0.5, 0.75), {"adv_weight": 1.0})
    assert "boyellow/AdaAD" in recipes.get("cifar_adaad_gpu").source


@pytest.mark.slow  # a few seconds of training (the first train.fit of a process also imports torch._dynamo)
def test_adaad_trains_through_the_engine(tmp_path):
    """An AdaAD student through train.fit in the cpu profile's precision and memory layout (bfloat16 autocast,
    channels-last: the teacher's input gradient runs under both), from a teacher checkpoint of an untrained net."""
    from advlib import data, models, zoo

    g = torch.Generator().manual_seed(0)
    ds = data.Dataset((torch.rand(120, 3, 32, 32, generator=g) * 255).to(torch.uint8),
                      torch.randint(0, 10, (120,), generator=g), "cifar10", "train", "sample", data.CIFAR10_CLASSES)
    torch.manual_seed(0)
    teacher = zoo.save_as_checkpoint(models.get_model("airbench_s"), tmp_path / "teacher.pt", "a test's untrained net")
    cfg = train.TrainConfig(model="airbench_s", dataset="cifar10", source="sample", method="adaad",
                            teacher=str(teacher), steps=2, eps=EPS, epochs=1, batch_size=50, holdout=20,
                            eval_samples=10, eval_steps=1, augment=True, augment_crop=False, precision="bf16",
                            channels_last=True, progress=False, out_dir=str(tmp_path / "adaad"))
    run = train.fit(cfg, train_data=ds)
    assert run["complete"] and run["teacher"]["weights"] == Teacher.load(teacher).digest


# --------------------------------------------------------------------------- the exercise


def _solution():
    spec = importlib.util.spec_from_file_location("solutions_05", SOLUTIONS / "05_rslad_distillation_cifar10.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.adaad_step


def _answer(teacher_at="same", reverse=False, sign=1.0, projection="ball+box", at="x_adv", train_mode=False,
            backward=False, teacher_train=False, restore=True):
    """An answer to the exercise, right by default, with one mistake when asked."""
    def fn(model, teacher, x_adv, x, eps, alpha):
        was = model.training
        if not train_mode:
            model.eval()
        if teacher_train:
            teacher.train()
        a = (x_adv if at == "x_adv" else x).clone().detach().requires_grad_(True)
        if teacher_at == "clean":
            with torch.no_grad():
                t = teacher(x)
        else:
            t = teacher(a)
            if teacher_at == "detached":
                t = t.detach()
        s = model(a)
        if reverse:
            kl = F.kl_div(F.log_softmax(t, 1), F.softmax(s, 1), reduction="batchmean")
        else:
            kl = (F.softmax(t, 1) * (F.log_softmax(t, 1) - F.log_softmax(s, 1))).sum(1).mean()  # another reduction
        if backward:
            kl.backward()
            g = a.grad
        else:
            (g,) = torch.autograd.grad(kl, a)
        if restore:
            model.train(was)
        step = x_adv + sign * alpha * g.sign()
        if projection == "ball+box":
            step = torch.min(torch.max(step, x - eps), x + eps).clamp(0, 1)
        elif projection == "ball":
            step = torch.min(torch.max(step, x - eps), x + eps)
        elif projection == "box":
            step = step.clamp(0, 1)
        elif projection == "around x_adv":
            step = torch.min(torch.max(step, x_adv - eps), x_adv + eps).clamp(0, 1)
        return step.detach()
    return fn


def test_the_solution_and_an_equivalent_answer_pass(capsys):
    assert ex.check_adaad_step(_solution()) is True
    assert ex.check_adaad_step(_answer()) is True
    assert capsys.readouterr().out.startswith("✅ Correct:")


MISTAKES = [
    (dict(teacher_at="clean"), ["teacher looks at the clean x", "RSLAD's attack"]),
    (dict(teacher_at="detached"), ["flows through the student only"]),
    (dict(reverse=True), ["reversed the KL divergence"]),
    (dict(sign=-1.0), ["stepped down the gradient"]),
    (dict(at="x"), ["gradient at the clean x"]),
    (dict(projection="ball"), ["outside [0,1]"]),
    (dict(projection="box"), ["leaves the ε-ball"]),
    (dict(projection="around x_adv"), ["projected around the current iterate"]),
    (dict(train_mode=True), ["batch-norm running statistics", "every attack step"]),
    (dict(restore=False), ["left the model in evaluation mode"]),
    (dict(backward=True), ["gradients in the model's parameters", "*teacher's* parameters"]),
    (dict(teacher_train=True), ["left the *teacher*", "training mode"]),
]


@pytest.mark.parametrize("kw,phrases", MISTAKES, ids=[",".join(k) for k, _ in MISTAKES])
def test_each_mistake_gets_its_diagnosis(kw, phrases, capsys):
    assert ex.check_adaad_step(_answer(**kw)) is False
    out = capsys.readouterr().out
    assert out.startswith("❌"), out
    for p in phrases:
        assert p in out, f"expected {p!r} in:\n{out}"


def test_the_cases_separate_the_mistakes():
    """Each wrong gradient differs from AdaAD's in the sign of at least 5% of the reliable pixels, in every case."""
    for x_adv, x, eps, alpha in d05._adaad_cases():
        model, teacher = harness.fixed_model(), d05.teacher_model()
        g = d05._kl_grad(model, teacher, x_adv)
        for kw in (dict(teacher_at=x), dict(teacher_at="detached"), dict(reverse=True)):
            h = d05._kl_grad(model, teacher, x_adv, **kw)
            mask = harness.reliable(g) & harness.reliable(h)
            assert (g.sign() != h.sign())[mask].float().mean() > 0.05, kw
        h = d05._kl_grad(model, teacher, x)
        mask = harness.reliable(g) & harness.reliable(h)
        assert (g.sign() != h.sign())[mask].float().mean() > 0.05


def test_the_stub_is_not_attempted_and_errors_are_reported(capsys):
    def stub(*args):
        raise NotImplementedError

    assert ex.check_adaad_step(stub) is False
    assert harness.NOT_ATTEMPTED in capsys.readouterr().out

    def broken(*args):
        return undefined_name + 1  # noqa: F821

    assert ex.check_adaad_step(broken) is False
    out = capsys.readouterr().out
    assert "NameError" in out and "undefined_name" in out


def test_the_exercise_cells_are_well_formed(capsys):
    e = next(e for e in ex.EXERCISES["05_rslad_distillation_cifar10"] if e.name == "adaad_step")
    assert e.check is ex.check_adaad_step and e.name == "adaad_step" and e.function == "adaad_step"
    assert e.statement.strip().startswith("### Exercise") and "$" in e.statement
    assert "def adaad_step(model, teacher, x_adv, x, eps, alpha)" in e.starter
    assert "raise NotImplementedError" in e.starter
    assert e.check_source.endswith("passed = advlib.exercises.check_adaad_step(adaad_step)")
    ns = {}
    exec(e.starter, ns)
    exec(e.check_source, ns)
    assert ns["passed"] is False
    assert capsys.readouterr().out == harness.NOT_ATTEMPTED + "\n"


def test_the_check_leaves_the_global_rng_alone(capsys):
    state = torch.get_rng_state()
    ex.check_adaad_step(_solution())
    capsys.readouterr()
    assert torch.equal(state, torch.get_rng_state())
