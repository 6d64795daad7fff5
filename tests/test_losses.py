"""The loss seam: methods declare what they read, a teacher reaches distillation methods through the
engine, and attacks maximise any per-sample objective (TRADES' and RSLAD's inner maximisations)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from advlib import attacks, losses, paths, reference, train
from advlib.config import TrainConfig
from advlib.teacher import Teacher


def small_cfg(tmp_path, **kw):
    base = dict(model="fast_cnn", dataset="mnist", source="sample", method="pgd", steps=2, eps=0.1,
                epochs=1, batch_size=100, train_samples=1500, holdout=300, eval_samples=100, eval_steps=2,
                optimizer="adam", lr=2e-3, weight_decay=0.0, schedule="cosine",
                out_dir=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def distil_method():
    """A toy RSLAD-like method registered for one test: KL to the teacher's soft labels on clean and
    on adversarial inputs, the adversarial ones maximising the KL to the teacher (no hard labels)."""
    seen = {"teachers": set(), "taus": set()}

    @losses.register("toy_distil", uses=("eps", "alpha", "steps", "attack_mode"), params={"tau": 1.0}, teacher=True)
    def toy_distil(ctx: losses.Context):
        """Toy distillation towards the teacher's soft labels."""
        tau = ctx.param("tau")
        seen["teachers"].add(id(ctx.teacher))
        seen["taus"].add(tau)
        soft = ctx.teacher.probs(ctx.x, tau)
        x_adv = ctx.pgd(steps=2, loss="kl", target=soft)
        logits, logits_adv = ctx.model(ctx.x), ctx.model(x_adv)
        kl = lambda z: F.kl_div(F.log_softmax(z / tau, 1), soft, reduction="batchmean")  # noqa: E731
        return kl(logits) + kl(logits_adv), logits

    yield seen
    losses.METHODS.pop("toy_distil")


def test_registered_methods_declare_real_fields():
    fields = set(TrainConfig.__dataclass_fields__)
    for m in losses.METHODS.values():
        assert set(m.uses) <= fields, m.name
        assert m.summary and m.summary != m.name, f"{m.name} needs a docstring"
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        losses.register("bad", uses=("temperature",))
    with pytest.raises(ValueError, match="already registered"):
        losses.register("pgd")(lambda ctx: None)
    with pytest.raises(ValueError, match="ranges for undeclared parameters"):
        losses.register("bad", params={"tau": 1.0}, ranges={"beta": "[0, inf)"})


def test_the_published_names_are_the_ones_the_methods_declare():
    """reference reads paper= and citation= from the source of advlib/losses/ (it sits below the methods): what it
    reads is what the registry holds."""
    assert reference.PUBLISHED_METHOD == {m.name: m.paper for m in losses.METHODS.values() if m.paper}
    assert reference.declared_by_methods("citation") == {m.name: m.citation for m in losses.METHODS.values()
                                                         if m.citation}
    assert reference.published_method("trades") == "TRADES" and reference.published_method("mart") is None
    assert {m.paper for m in losses.METHODS.values() if m.paper} - {"FGSM"} == set(reference.RSLAD_METHODS)


def test_a_method_declared_with_a_computed_paper_name_is_refused_by_reference(tmp_path):
    (tmp_path / "odd.py").write_text('NAME = "X"\n@register("odd", paper=NAME)\ndef odd(ctx):\n    pass\n')
    with pytest.raises(ValueError, match=r"odd.py:2: .*string literals"):
        reference.declared_by_methods("paper", tmp_path)


def test_the_readme_lists_every_method():
    row = next(line for line in (paths.REPO_ROOT / "README.md").read_text().splitlines()
               if line.startswith("| `losses` |"))
    assert [m for m in losses.METHODS if f"`{m}`" not in row] == []


@pytest.mark.parametrize("method, params", [("trades", {"beta": 6.0}), ("mart", {"beta": 6.0}),
                                            ("fgsm_weighted", {"mix": 0.5}), ("pgd", {}), ("standard", {})])
def test_upgrade_moves_beta_and_mix_into_the_params_of_the_methods_that_read_them(method, params):
    old = {"method": method, "beta": 6.0, "mix": 0.5, "params": {}}
    assert losses.upgrade(old) == {"method": method, "params": params}
    assert old == {"method": method, "beta": 6.0, "mix": 0.5, "params": {}}, "upgrade changes a copy"
    if params:  # a value params already sets wins
        name = next(iter(params))
        assert losses.upgrade({**old, "params": {name: 1.0}})["params"] == {name: 1.0}
    assert losses.upgrade({"method": "pgd", "eps": 0.1}) == {"method": "pgd", "eps": 0.1}


def test_teacher_reaches_a_distillation_method_through_the_engine(tmp_path, distil_method, monkeypatch):
    t = train.fit(small_cfg(tmp_path / "t", method="standard", epochs=2, train_samples=3000))
    assert t["final"]["holdout_clean"] > 0.8
    teacher_ck = tmp_path / "t" / "run" / "last.pt"
    before = torch.load(teacher_ck, weights_only=True)["model"]

    with pytest.raises(ValueError, match="distils from a teacher"):
        losses.validate(small_cfg(tmp_path, method="toy_distil"))
    with pytest.raises(ValueError, match="no parameter"):
        losses.validate(small_cfg(tmp_path, method="toy_distil", teacher=str(teacher_ck), params={"temp": 2}))

    loads = []
    real_load = Teacher.load.__func__
    monkeypatch.setattr(Teacher, "load", classmethod(lambda cls, *a, **k: loads.append(a) or real_load(cls, *a, **k)))
    cfg = small_cfg(tmp_path / "s", method="toy_distil", teacher=str(teacher_ck), params={"tau": 2.0}, epochs=2,
                    train_samples=3000)
    m = train.fit(cfg)
    assert len(loads) == 1, "the teacher is loaded once per run"
    assert len(distil_method["teachers"]) == 1 and distil_method["taus"] == {2.0}
    assert m["final"]["holdout_clean"] > 0.5, m["final"]
    after = torch.load(teacher_ck, weights_only=True)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before), "the teacher must stay frozen"


def test_teacher_is_frozen_in_eval_mode_and_caches_per_image():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    net.train()
    stats = net[1].running_mean.clone()
    t = Teacher(net, cache=True)
    x = torch.rand(6, 1, 28, 28)
    p1 = t.probs(x)
    p2 = t.probs(torch.cat([x[3:], torch.rand(2, 1, 28, 28)]))
    assert torch.allclose(p1[3:], p2[:3])
    assert (t.hits, t.misses) == (3, 8)
    assert torch.equal(net[1].running_mean, stats) and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert torch.allclose(p1.sum(1), torch.ones(6))
    assert torch.allclose(Teacher(net).probs(x, tau=3.0), F.softmax(net(x) / 3.0, 1))


def test_compute_runs_a_method_with_a_real_config(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(16)
    loss, logits = losses.compute("fgsm_weighted", trained_mnist, x, y, 0.1, params={"mix": 0.25})
    x_adv = attacks.fgsm(trained_mnist, x, y, 0.1)
    ref = 0.75 * F.cross_entropy(trained_mnist(x), y) + 0.25 * F.cross_entropy(trained_mnist(x_adv), y)
    assert torch.allclose(loss, ref, atol=1e-6)
    assert torch.allclose(logits, trained_mnist(x_adv), atol=1e-6)


def test_pgd_accepts_any_objective(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(64)
    run = lambda **kw: (torch.manual_seed(1), attacks.pgd(trained_mnist, x, y, 0.1, 0.02, 5, **kw))[1]  # noqa: E731
    ce_callable = lambda logits, yy: F.cross_entropy(logits, yy, reduction="none")  # noqa: E731
    assert torch.equal(run(loss="ce"), run(loss=ce_callable))
    with torch.no_grad():
        own = F.softmax(trained_mnist(x), 1)
    assert torch.equal(run(loss="kl"), run(loss="kl", target=own))  # TRADES: the model's own clean prediction
    other = torch.full_like(own, 0.1)  # a different target gives a different attack
    x_other = run(loss="kl", target=other)
    assert not torch.equal(run(loss="kl"), x_other)
    assert attacks.eps_ok(x_other, x, 0.1)
    # the attack ascends the objective it is given
    kl = lambda xa: F.kl_div(F.log_softmax(trained_mnist(xa), 1), other, reduction="none").sum(1)  # noqa: E731
    with torch.no_grad():
        assert kl(x_other).mean() > kl(x + 0.0).mean()


@pytest.mark.parametrize("start", ["uniform", "normal"])
def test_pgd_random_start_kinds(trained_mnist, mnist_sample, start):
    x, y = mnist_sample[1].tensors(32)
    seen = []
    attacks.pgd(trained_mnist, x, y, 0.2, 1e-6, 1, random_start=start, callback=lambda s, xa: seen.append(xa - x))
    d = seen[0].abs()
    if start == "normal":
        assert d.max() < 0.01  # 0.001 * N(0, 1)
    else:
        assert d.max() > 0.15  # spread over the ball
    with pytest.raises(ValueError, match="random_start"):
        attacks.pgd(trained_mnist, x, y, 0.2, 0.05, 1, random_start="gaussian")
    with pytest.raises(ValueError, match="loss must be one of"):
        attacks.pgd(trained_mnist, x, y, 0.2, 0.05, 1, loss="hinge")
