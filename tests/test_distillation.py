"""Robustness distillation (issue 9): ARD, IAD and RSLAD agree with independent transcriptions of the
official code, the teacher's soft labels are cached per image and flip and shared on disk between runs,
a run is tied to its teacher's weights (not to the path it was read from), and checkpoints from other
code load safely (``advlib.zoo``)."""
from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from advlib import losses, recipes, train, zoo
from advlib.exercises import check_rslad_loss
from advlib.teacher import Teacher

EPS, ALPHA, STEPS = 0.05, 0.02, 3


class Net(nn.Module):
    """A tiny CIFAR-shaped net with batch norm (train vs eval mode matters)."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(8 * 16 * 16, 10))

    def forward(self, x):
        return self.body(x)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    x = 0.2 + 0.6 * torch.rand(16, 3, 32, 32, generator=g)  # away from 0 and 1: no clamping at the start
    y = torch.randint(0, 10, (16,), generator=g)
    return x, y


def _student_teacher():
    student, teacher_net = Net(1).train(), Net(2)
    with torch.no_grad():  # a teacher with some opinion (larger logits), fixed batch-norm statistics
        teacher_net.body[-1].weight.mul_(20)
    return student, teacher_net.eval()


def _ours(name, student, teacher_net, x, y, epoch=0.0, **cfg):
    torch.manual_seed(7)
    loss, _ = losses.compute(name, student, x, y, EPS, teacher=Teacher(teacher_net), epoch=epoch, steps=STEPS,
                             alpha=ALPHA, **cfg)
    return loss


def _official_pgd(model, x, y, start, objective):
    """The attack loop the three repositories share: sign steps, projection, clamp (no projection of the start)."""
    x_adv = start
    for _ in range(STEPS):
        x_adv = x_adv.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(objective(model(x_adv)), x_adv)
        x_adv = x_adv.detach() + ALPHA * g.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
    return x_adv.detach()


def test_rslad_is_the_official_loss(batch):
    x, y = batch
    student, teacher_net = _student_teacher()
    ours = _ours("rslad", student, teacher_net, x, y, attack_mode="eval")
    assert student.training, "the student is back in training mode"
    student, teacher_net = _student_teacher()  # our training-mode passes moved the batch-norm statistics: start over
    torch.manual_seed(7)  # rslad_loss.py l.36-59 and resnet18_rslad_cifar10.py l.53-63, transcribed
    with torch.no_grad():
        t_logits = teacher_net(x)
    student.eval()
    crit = nn.KLDivLoss(reduction="none")
    x_adv = _official_pgd(student, x, y, x + 0.001 * torch.randn(x.shape),
                          lambda out: crit(F.log_softmax(out, 1), F.softmax(t_logits, 1)).sum())
    student.train()
    kl = lambda a, b: -a * b + torch.log(b + 1e-5) * b  # noqa: E731
    ref = (5 / 6 * kl(F.log_softmax(student(x_adv), 1), F.softmax(t_logits, 1)).mean()
           + 1 / 6 * kl(F.log_softmax(student(x), 1), F.softmax(t_logits, 1)).mean())
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7), (ours.item(), ref.item())


def test_ard_is_the_official_loss(batch):
    x, y = batch
    for kd_weight in (1.0, 0.7):
        student, teacher_net = _student_teacher()
        ours = _ours("ard", student, teacher_net, x, y, attack_mode="train", params={"kd_weight": kd_weight})
        student, teacher_net = _student_teacher()  # the attack in train mode moves batch-norm statistics: start over
        torch.manual_seed(7)  # main.py l.68-79 (AttackPGD, student in train mode) and l.113, l.125-127
        start = x + torch.zeros_like(x).uniform_(-EPS, EPS)
        x_adv = _official_pgd(student, x, y, start, lambda out: F.cross_entropy(out, y, reduction="sum"))
        out = student(x_adv)
        T = 30.0
        with torch.no_grad():
            t_out = teacher_net(x)
        with pytest.warns(UserWarning):  # nn.KLDivLoss()'s default "mean" reduction: batch x classes
            kl = nn.KLDivLoss()(F.log_softmax(out / T, 1), F.softmax(t_out / T, 1))
        ref = kd_weight * T * T * kl + (1 - kd_weight) * F.cross_entropy(student(x), y)
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7), (kd_weight, ours.item(), ref.item())


@pytest.mark.parametrize("epoch", [0.5, 2.0])
def test_iad_is_the_official_loss(batch, epoch):
    x, y = batch
    student, teacher_net = _student_teacher()
    ours = _ours("iad", student, teacher_net, x, y, epoch=epoch, attack_mode="train", params={"begin_epochs": 1.0})
    student, teacher_net = _student_teacher()
    torch.manual_seed(7)  # IAD-I.py l.95-106 (attack), l.165-181 (loss), tau 1, beta 0.1
    start = x + torch.zeros_like(x).uniform_(-EPS, EPS)
    x_adv = _official_pgd(student, x, y, start, lambda out: F.cross_entropy(out, y, reduction="sum"))
    outputs = student(x_adv)
    with torch.no_grad():
        teacher_outputs, guide = teacher_net(x), teacher_net(x_adv)
    n = len(outputs)
    kl = nn.KLDivLoss(reduction="none")
    ref = (1 / n) * torch.sum(kl(F.log_softmax(outputs, 1), F.softmax(teacher_outputs, 1)).sum(1))
    if epoch >= 1.0:
        alpha = torch.tensor([F.softmax(guide, 1)[i][y[i]].pow(0.1).item() for i in range(n)])
        ref = ref + (1 / n) * torch.sum(kl(F.log_softmax(outputs, 1), F.softmax(student(x), 1)).sum(1).mul(1 - alpha))
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7), (ours.item(), ref.item())


def test_distillation_attacks_stay_in_the_ball_and_the_teacher_sees_clean_images_only(batch):
    x, y = batch
    for name, mode in (("rslad", "eval"), ("ard", "train"), ("iad", "train")):
        student, teacher_net = _student_teacher()
        seen = []
        teacher_net.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
        captured = []
        real_pgd = losses.Context.pgd
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(losses.Context, "pgd", lambda self, *a, **k: captured.append(real_pgd(self, *a, **k)) or captured[-1])
            _ours(name, student, teacher_net, x, y, epoch=5.0, attack_mode=mode, params={"begin_epochs": 0.0} if name == "iad" else {})
        x_adv = captured[0]
        assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert torch.equal(seen[0], x), f"{name}: the teacher's soft labels come from the clean images"
        assert len(seen) == (2 if name == "iad" else 1)  # IAD also asks the teacher about x'


def test_teacher_cache_on_disk_round_trip_and_damage(tmp_path, capsys):
    net = Net(4).eval()
    path = tmp_path / "cache" / "t.pt"
    x = torch.rand(6, 3, 32, 32)
    t1 = Teacher(net, cache=True, cache_path=path)
    p1 = t1.probs(x)
    t1.probs(x.flip(-1))  # a flipped image is another entry
    assert (t1.hits, t1.misses) == (0, 12)
    t1.save_cache()
    t2 = Teacher(net, cache=True, cache_path=path)
    assert torch.allclose(t2.probs(x), p1) and (t2.hits, t2.misses) == (6, 0)
    x_new = torch.rand(3, 3, 32, 32)
    t2.logits(x_new, cached=False)  # inputs that never come back are not stored
    assert len(t2._store) == 12
    path.write_bytes(b"not a cache")
    t3 = Teacher(net, cache=True, cache_path=path)
    assert "Ignoring the teacher cache" in capsys.readouterr().out and t3.probs(x).shape == (6, 10)


def _cifar_like(n=600):
    from advlib import data

    g = torch.Generator().manual_seed(0)
    xs = (torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    ys = torch.randint(0, 10, (n,), generator=g)
    return data.Dataset(xs, ys, "cifar10", "train", "sample", data.CIFAR10_CLASSES)


def _small(tmp_path, name, **kw):
    base = dict(model="airbench_s", dataset="cifar10", source="sample", steps=1, alpha=EPS, eps=EPS, epochs=1,
                batch_size=100, holdout=100, eval_samples=50, eval_steps=1, augment=True, augment_crop=False,
                out_dir=str(tmp_path / name), progress=False)
    base.update(kw)
    return train.TrainConfig(**base)


def test_students_share_the_teachers_soft_labels_and_runs_are_tied_to_its_weights(tmp_path, monkeypatch):
    ds = _cifar_like()
    t_run = train.fit(_small(tmp_path, "teacher", method="standard"), train_data=ds)
    assert t_run["complete"]
    teacher_ck = tmp_path / "teacher" / "last.pt"
    computed = []
    real_forward = Teacher._forward
    monkeypatch.setattr(Teacher, "_forward", lambda self, x: computed.append(len(x)) or real_forward(self, x))
    students = tmp_path / "students"
    train.fit(_small(students, "ard", method="ard", teacher=str(teacher_ck)), train_data=ds)
    first = sum(computed)
    assert 0 < first <= 2 * 500  # at most once per training image and flip
    cache = list((students / "teacher_cache").glob("*.pt"))
    assert len(cache) == 1 and len(torch.load(cache[0], weights_only=True)["keys"]) == first
    computed.clear()
    train.fit(_small(students, "rslad", method="rslad", teacher=str(teacher_ck)), train_data=ds)
    assert sum(computed) == 0, "the second student reads the first one's cached soft labels"

    # the same teacher weights under another path: the finished run is reused, not retrained
    copy = tmp_path / "elsewhere" / "teacher.pt"
    copy.parent.mkdir()
    shutil.copy(teacher_ck, copy)
    done = train.fit(_small(students, "rslad", method="rslad", teacher=str(copy)), train_data=ds)
    assert done["teacher"]["weights"] == Teacher.load(teacher_ck).digest
    # another teacher: refused on resume=True, retrained with resume="if_same"
    train.fit(_small(tmp_path, "teacher2", method="standard", seed=1), train_data=ds)
    other = str(tmp_path / "teacher2" / "last.pt")
    with pytest.raises(ValueError, match="teacher"):
        train.fit(_small(students, "rslad", method="rslad", teacher=other), train_data=ds)
    again = train.fit(_small(students, "rslad", method="rslad", teacher=other), train_data=ds, resume="if_same")
    assert again["teacher"]["weights"] == Teacher.load(other).digest


def test_crops_turn_the_cache_off(tmp_path, monkeypatch):
    ds = _cifar_like(300)
    train.fit(_small(tmp_path, "teacher", method="standard"), train_data=ds)
    made = []
    real_init = Teacher.__init__
    monkeypatch.setattr(Teacher, "__init__", lambda self, *a, **k: made.append(k.get("cache")) or real_init(self, *a, **k))
    train.fit(_small(tmp_path / "s", "ard", method="ard", augment_crop=True,
                     teacher=str(tmp_path / "teacher" / "last.pt")), train_data=ds)
    assert made == [False]
    assert not (tmp_path / "s" / "teacher_cache").exists()


def test_flip_only_augmentation_keeps_pixels():
    ds = _cifar_like(64)
    xb, _ = next(iter(ds.loader(64, augment=True, crop=False, seed=0)))
    ref = ds.x.float() / 255
    same = (xb == ref).flatten(1).all(1)
    flipped = (xb == ref.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_teacher_architecture_and_foreign_checkpoints(tmp_path):
    ds = _cifar_like(300)
    train.fit(_small(tmp_path, "t", method="standard"), train_data=ds)
    with pytest.raises(ValueError, match="holds a 'airbench_s' model, not 'wrn34_10'"):
        Teacher.load(tmp_path / "t" / "last.pt", dataset="cifar10", model_name="wrn34_10")
    with pytest.raises(ValueError, match="not cifar10"):
        Teacher.load(_mnist_checkpoint(tmp_path), dataset="cifar10")
    model = zoo.autoattack_example()
    assert model.name == "resnet18" and not model.training
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="do not fit a 'airbench_s' model"):
        zoo.load(zoo.autoattack_example_path(), "airbench_s")
    bad = tmp_path / "bad.pt"
    torch.save({"weights": [1, 2, 3]}, bad)
    with pytest.raises(ValueError, match="state dict"):
        zoo.load(bad, "resnet18")
    # a foreign model converted to an advlib checkpoint serves as a teacher, checked by architecture
    ck = zoo.save_as_checkpoint(model, tmp_path / "aa_example.pt", zoo.AUTOATTACK_EXAMPLE)
    t = Teacher.load(ck, dataset="cifar10", model_name="resnet18")
    assert all(torch.equal(a, b) for a, b in zip(t.model.state_dict().values(), model.state_dict().values()))


def _mnist_checkpoint(tmp_path):
    from advlib import data

    mn = data.load("mnist", "train", source="sample").subset(300)
    cfg = train.TrainConfig(model="fast_cnn", dataset="mnist", source="sample", method="standard", epochs=1,
                            batch_size=100, holdout=100, eval_samples=50, out_dir=str(tmp_path / "mnist"), progress=False)
    train.fit(cfg, train_data=mn)
    return tmp_path / "mnist" / "last.pt"


def test_the_seven_students_share_one_budget():
    cfgs = [recipes.config(r) for r in recipes.DISTILLATION_STUDENTS]
    for key in ("model", "epochs", "batch_size", "lr", "schedule", "eps", "steps", "alpha", "augment_crop", "precision"):
        assert len({getattr(c, key) for c in cfgs}) == 1, key
    assert {c.method for c in cfgs} == {"standard", "pgd", "trades", "mart", "ard", "iad", "rslad"}
    assert recipes.get("cifar_d_ard").settings["attack_mode"] == "train"  # as the official ARD/IAD code
    assert recipes.get("cifar_d_rslad").settings["attack_mode"] == "eval"


def test_rslad_exercise_check(capsys):
    def solution(model, x, x_adv, teacher_probs):
        kl = lambda z: (teacher_probs * (torch.log(teacher_probs + 1e-5) - F.log_softmax(z, 1))).mean()  # noqa: E731
        return kl(model(x)) / 6 + 5 * kl(model(x_adv)) / 6

    assert check_rslad_loss(solution) is True

    def swapped(model, x, x_adv, teacher_probs):
        kl = lambda z: (teacher_probs * (torch.log(teacher_probs + 1e-5) - F.log_softmax(z, 1))).mean()  # noqa: E731
        return 5 * kl(model(x)) / 6 + kl(model(x_adv)) / 6

    def batchmean(model, x, x_adv, teacher_probs):
        kl = lambda z: F.kl_div(F.log_softmax(z, 1), teacher_probs, reduction="batchmean")  # noqa: E731
        return kl(model(x)) / 6 + 5 * kl(model(x_adv)) / 6

    def detached(model, x, x_adv, teacher_probs):
        kl = lambda z: (teacher_probs * (torch.log(teacher_probs + 1e-5) - F.log_softmax(z, 1))).mean()  # noqa: E731
        return kl(model(x).detach()) / 6 + 5 * kl(model(x_adv)) / 6

    def leaves_eval_mode(model, x, x_adv, teacher_probs):
        model.eval()
        return solution(model, x, x_adv, teacher_probs)

    capsys.readouterr()
    for fn, words in ((swapped, "swapped the weights"), (batchmean, "reduction='batchmean'"),
                      (detached, "wrong gradients"), (leaves_eval_mode, "mode")):
        assert check_rslad_loss(fn) is False, fn.__name__
        out = capsys.readouterr().out
        assert words in out, (fn.__name__, out)
