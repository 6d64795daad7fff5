"""AWP (advlib.losses.awp) and the methods' lifecycle it runs in (advlib.losses.MethodState, train.train_step):
the perturbation's size and direction, the weights after a step against a step written out by hand (and against
the official code's proxy formulation), the hooks' order around the optimiser step and the weight average, γ = 0
as plain SAT / TRADES, resume, two ranks under torchrun; and notebook 04's exercise (check_awp_step): each typical
mistake gets its own diagnosis."""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.optim.swa_utils import AveragedModel

from advlib import attacks, exercises, losses, train
from advlib.exercises import trades_mart_cifar10 as nb04
from advlib.losses import awp
from advlib.config import TrainConfig

from .conftest import REPO

EPS, STEPS, ALPHA = 0.1, 2, 0.05


def small_cfg(tmp_path, **kw):
    base = dict(model="fast_cnn", dataset="mnist", source="sample", method="awp_pgd", steps=STEPS, eps=EPS,
                alpha=ALPHA, epochs=1, batch_size=50, train_samples=600, holdout=100, eval_samples=50, eval_steps=1,
                optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="constant",
                out_dir=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return TrainConfig(**base)


def toy_net(seed: int = 0) -> nn.Module:
    """A conv net with batch norm (in training mode), so that the statistics AWP must leave alone exist."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 13 * 13, 10)).train()


def batch(seed: int = 1, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def strip(history):
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in history]


# --------------------------------------------------------------------------- the perturbation


def test_perturbed_weights_are_the_multi_dimensional_weights():
    assert [n for n, _ in awp.perturbed_weights(toy_net())] == ["0.weight", "4.weight"]  # not biases, not BN


@pytest.mark.parametrize("gamma", [0.01, 0.2])
def test_each_layer_moves_by_gamma_of_its_norm_up_its_gradient(gamma):
    net = toy_net()
    x, y = batch()
    before = snapshot(net)
    loss_fn = lambda m: F.cross_entropy(m(x), y)  # noqa: E731
    ref = toy_net()
    grads = torch.autograd.grad(loss_fn(ref), [p for _, p in awp.perturbed_weights(ref)])
    adversary = awp.WeightAdversary(net)
    v = adversary.perturb(loss_fn, gamma)
    after = snapshot(net)
    for (name, w), d, g in zip(awp.perturbed_weights(net), v, grads):
        moved = after[name] - before[name]
        torch.testing.assert_close(moved, d, rtol=0, atol=1e-6)
        assert (d.norm() / before[name].norm()).item() == pytest.approx(gamma, rel=1e-5), name
        assert F.cosine_similarity(d.flatten(), g.flatten(), dim=0).item() == pytest.approx(1.0, abs=1e-5), name
    for k in before:  # biases, batch norm's scale, shift and running statistics: untouched
        if k not in dict(awp.perturbed_weights(net)):
            assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in net.parameters()) and all(m.training for m in net.modules())
    adversary.restore()
    for k, w in snapshot(net).items():
        torch.testing.assert_close(w, before[k], rtol=0, atol=1e-7, msg=k)
    assert adversary.applied == []
    with pytest.raises(RuntimeError, match="already carry"):
        adversary.perturb(loss_fn, gamma)
        adversary.perturb(loss_fn, gamma)


def test_bf16_autocast_and_channels_last():
    """The training forward passes run under bfloat16 autocast and on channels-last weights (the cpu recipes): the
    gradient, and so the perturbation, stays float32 in the weights' own layout, of relative size γ per layer."""
    net, (x, y) = toy_net().to(memory_format=torch.channels_last), batch()
    before = snapshot(net)
    adversary = awp.WeightAdversary(net)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = adversary.perturb(lambda m: F.cross_entropy(m(x.contiguous(memory_format=torch.channels_last)), y), 0.01)
    for (name, w), d in zip(awp.perturbed_weights(net), v):
        assert d.dtype == torch.float32 and w.dtype == torch.float32
        assert (d.norm() / before[name].norm()).item() == pytest.approx(0.01, rel=1e-5), name
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    adversary.restore()
    for k, w in snapshot(net).items():
        torch.testing.assert_close(w, before[k], rtol=0, atol=1e-7, msg=k)


def test_the_direction_is_taken_in_training_mode_even_from_an_eval_mode_model():
    net, x, y = toy_net().eval(), *batch()
    ref = toy_net()
    g_train = torch.autograd.grad(F.cross_entropy(ref(x), y), ref[0].weight)[0]
    d = awp.WeightAdversary(net).direction(lambda m: F.cross_entropy(m(x), y))[0]
    torch.testing.assert_close(d, g_train)
    assert not any(m.training for m in net.modules())


# --------------------------------------------------------------------------- one step against references


def _awp_cfg(gamma: float) -> TrainConfig:
    return TrainConfig(model="fast_cnn", method="awp_pgd", eps=EPS, steps=STEPS, alpha=ALPHA,
                       params={"awp_gamma": gamma})


def _library_step(net, opt, x, y, gamma, seed=5):
    cfg = _awp_cfg(gamma)
    torch.manual_seed(seed)
    ctx = losses.Context(net, x, y, EPS, cfg, None, 0.0, awp.WeightAdversary(net, cfg))
    loss, _ = train.train_step(ctx, opt)
    return loss.item()


def _manual_step(net, opt, x, y, gamma, seed=5):
    """One AT-AWP step written out: the PGD example with the weights w, g = ∇_w CE at it (batch-norm statistics put
    back), v = γ‖w‖ g/‖g‖ per weight, the optimiser's step from w + v with the gradient there, then w − v."""
    torch.manual_seed(seed)
    x_adv = attacks.pgd(net, x, y, EPS, ALPHA, STEPS, random_start="uniform", mode="eval")
    weights = [p for n, p in net.named_parameters() if p.dim() > 1]
    buffers = [b.clone() for b in net.buffers()]
    grads = torch.autograd.grad(F.cross_entropy(net(x_adv), y), weights)
    with torch.no_grad():
        for b, s in zip(net.buffers(), buffers):
            b.copy_(s)
        v = [g * (gamma * w.norm() / (g.norm() + 1e-20)) for w, g in zip(weights, grads)]
        for w, d in zip(weights, v):
            w.add_(d)
    loss = F.cross_entropy(net(x_adv), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        for w, d in zip(weights, v):
            w.sub_(d)
    return loss.item()


def _official_step(net, opt, x, y, gamma, seed=5):
    """The official code's formulation (csdongxian/AWP AT_AWP/utils_awp.py): a proxy loaded from the model, one SGD
    step of lr 0.01 on −CE, the change of each weight rescaled to its norm, added with factor γ, subtracted after."""
    torch.manual_seed(seed)
    x_adv = attacks.pgd(net, x, y, EPS, ALPHA, STEPS, random_start="uniform", mode="eval")
    proxy = copy.deepcopy(net)
    proxy.load_state_dict(net.state_dict())
    proxy.train()
    proxy_opt = torch.optim.SGD(proxy.parameters(), lr=0.01)
    proxy_opt.zero_grad()
    (-F.cross_entropy(proxy(x_adv), y)).backward()
    proxy_opt.step()
    old, new = net.state_dict(), proxy.state_dict()
    diff = {k: old[k].norm() / ((new[k] - old[k]).norm() + 1e-20) * (new[k] - old[k])
            for k in old if old[k].dim() > 1 and "weight" in k}
    params = dict(net.named_parameters())
    with torch.no_grad():
        for k, d in diff.items():
            params[k].add_(gamma * d)
    loss = F.cross_entropy(net(x_adv), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        for k, d in diff.items():
            params[k].sub_(gamma * d)
    return loss.item()


def _run(step, gamma, n_steps=3):
    net = toy_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    values = [step(net, opt, *batch(seed=10 + i), gamma, seed=20 + i) for i in range(n_steps)]
    return snapshot(net), values


@pytest.mark.parametrize("gamma", [0.01, 0.1])
def test_a_step_equals_the_step_written_out(gamma):
    lib, lib_losses = _run(_library_step, gamma)
    ref, ref_losses = _run(_manual_step, gamma)
    assert lib_losses == ref_losses
    for k in ref:
        assert torch.equal(lib[k], ref[k]), k  # weights, batch-norm statistics and its step counter
    plain, _ = _run(_library_step, 0.0)
    assert not torch.allclose(lib["0.weight"], plain["0.weight"], rtol=0, atol=1e-6), "the perturbation changed nothing"


@pytest.mark.parametrize("gamma", [0.01, 0.1])
def test_a_step_agrees_with_the_official_proxy_formulation(gamma):
    lib, lib_losses = _run(_library_step, gamma)
    ref, ref_losses = _run(_official_step, gamma)
    assert lib_losses == pytest.approx(ref_losses, rel=1e-5)
    for k in ref:  # the proxy's rounding (w + 0.01 g) − w is the only difference
        torch.testing.assert_close(lib[k], ref[k], rtol=1e-4, atol=1e-6, msg=k)


def test_an_abandoned_step_still_restores_the_weights(monkeypatch):
    net, (x, y) = toy_net(), batch()
    before = snapshot(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    monkeypatch.setattr(opt, "step", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    state = awp.WeightAdversary(net)
    with pytest.raises(KeyboardInterrupt):
        train.train_step(losses.Context(net, x, y, EPS, _awp_cfg(0.1), None, 0.0, state), opt)
    assert state.applied == []
    for k, v in snapshot(net).items():
        if "running" not in k and "num_batches" not in k:  # the training forward pass did run
            torch.testing.assert_close(v, before[k], rtol=0, atol=1e-7, msg=k)


def test_compute_refuses_a_method_with_a_state():
    net, (x, y) = toy_net(), batch()
    with pytest.raises(ValueError, match="train_step"):
        losses.compute("awp_pgd", net, x, y, EPS)


def test_register_refuses_a_state_that_is_not_a_method_state():
    with pytest.raises(ValueError, match="MethodState"):
        losses.register("bad_state", state=dict)


# --------------------------------------------------------------------------- the lifecycle in the engine


@pytest.fixture
def hooked(monkeypatch):
    """A toy method with a state that logs every event of the lifecycle, the optimiser's steps, the weight
    average's updates and the checkpoints into one list; its state counts the steps and keeps the count across an
    interruption (state_dict)."""
    log = []

    class Logged(losses.MethodState):
        def __init__(self, model, cfg):
            super().__init__(model, cfg)
            self.count = 0
            log.append(("setup", type(model).__name__))

        def before_step(self, ctx):
            assert ctx.state is self
            assert all(p.grad is not None for p in self.model.parameters()), "before_step: the gradients are there"
            log.append("before_step")

        def after_step(self, ctx):
            self.count += 1
            log.append("after_step")

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state):
            self.count = state["count"]
            log.append(("loaded", state["count"]))

    @losses.register("toy_hooked", uses=losses.ATTACK_FIELDS, state=Logged)
    def toy_hooked(ctx):
        """Toy method with a logged lifecycle."""
        log.append("method")
        return losses.get_method("pgd")(ctx)

    handle = register_optimizer_step_post_hook(lambda *a: log.append("optimizer.step"))
    real_update, real_save = AveragedModel.update_parameters, train.save_checkpoint

    def update(self, model):
        log.append("ema")
        return real_update(self, model)

    def save(path, payload):
        log.append(("checkpoint", path.name, payload.get("method_state")))
        return real_save(path, payload)

    monkeypatch.setattr(AveragedModel, "update_parameters", update)
    monkeypatch.setattr(train, "save_checkpoint", save)
    try:
        yield log
    finally:
        handle.remove()
        losses.METHODS.pop("toy_hooked")


def test_hooks_run_in_order_around_the_optimiser_step(tmp_path, hooked):
    cfg = small_cfg(tmp_path, method="toy_hooked", epochs=1, train_samples=250, batch_size=50, ema_decay=0.9)
    train.fit(cfg)
    steps = 4  # 200 training images after the 50 held out, batch 50
    assert hooked[0] == ("setup", "Classifier") and hooked.count(hooked[0]) == 1  # once, on the network itself
    body = [e for e in hooked[1:] if not isinstance(e, tuple)]
    assert body == ["method", "before_step", "optimizer.step", "after_step", "ema"] * steps
    assert [e for e in hooked if isinstance(e, tuple) and e[0] == "checkpoint"] == [
        ("checkpoint", "best.pt", {"count": steps}), ("checkpoint", "last.pt", {"count": steps})]
    assert hooked.index(("checkpoint", "best.pt", {"count": steps})) == len(hooked) - 2


def test_a_resumed_run_gets_its_state_back(tmp_path, hooked, monkeypatch):
    cfg = small_cfg(tmp_path, method="toy_hooked", epochs=1, train_samples=250, batch_size=50, checkpoint_every=2)
    real = losses.METHODS["toy_hooked"]
    calls = {"n": 0}

    def interrupted(ctx):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real.fn(ctx)

    # Swapped by hand, not with monkeypatch: its undo would run after the fixture has unregistered the toy method
    # and register it again for every later test.
    losses.METHODS["toy_hooked"] = dataclasses.replace(real, fn=interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            train.fit(cfg)
    finally:
        losses.METHODS["toy_hooked"] = real
    assert hooked[-1] == "after_step", "after_step runs for a step an exception abandoned"
    hooked.clear()
    train.fit(cfg)
    assert hooked[:2] == [("setup", "Classifier"), ("loaded", 2)]  # the count saved at step 2
    assert train.load_checkpoint(tmp_path / "run" / "last.pt")["method_state"] == {"count": 4}


def test_the_weight_average_and_the_checkpoints_never_see_perturbed_weights(tmp_path, monkeypatch):
    states, seen = [], {"ema": 0, "perturbed": 0}
    real_init, real_perturb, real_update = (awp.WeightAdversary.__init__, awp.WeightAdversary.perturb,
                                            AveragedModel.update_parameters)

    def init(self, *a, **k):
        real_init(self, *a, **k)
        states.append(self)

    def perturb(self, *a, **k):
        seen["perturbed"] += 1
        return real_perturb(self, *a, **k)

    def update(self, model):
        assert all(s.applied == [] for s in states), "the average saw perturbed weights"
        seen["ema"] += 1
        return real_update(self, model)

    monkeypatch.setattr(awp.WeightAdversary, "__init__", init)
    monkeypatch.setattr(awp.WeightAdversary, "perturb", perturb)
    monkeypatch.setattr(AveragedModel, "update_parameters", update)
    train.fit(small_cfg(tmp_path, ema_decay=0.9, checkpoint_every=3))
    assert len(states) == 1 and seen["ema"] == seen["perturbed"] == 10
    assert train.load_checkpoint(tmp_path / "run" / "last.pt")["method_state"] == {}


# --------------------------------------------------------------------------- γ = 0, the warm-up, resume


@pytest.mark.parametrize("awp_method, plain, params", [
    ("awp_pgd", "pgd", {"awp_gamma": 0.0}),
    ("awp_trades", "trades", {"awp_gamma": 0.0, "awp_warmup": 0.0}),
    ("awp_trades", "trades", {}),  # the default warm-up (9 epochs) is not over in this run
    ("awp_pgd", "pgd", {"awp_gamma": 0.0, "precision": "bf16", "channels_last": True}),
])
def test_gamma_zero_is_the_plain_method_bit_for_bit(tmp_path, awp_method, plain, params):
    params = dict(params)
    fields = {k: params.pop(k) for k in ("precision", "channels_last") if k in params}
    a = train.fit(small_cfg(tmp_path / "a", method=awp_method, params=params, epochs=0.5, **fields))
    b = train.fit(small_cfg(tmp_path / "b", method=plain, epochs=0.5, **fields))
    wa = train.load_checkpoint(tmp_path / "a" / "run" / "last.pt")["model"]
    wb = train.load_checkpoint(tmp_path / "b" / "run" / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wb)
    assert strip(a["history"]) == strip(b["history"])


def test_awp_trades_perturbs_after_its_warm_up(tmp_path, monkeypatch):
    epochs = []
    real = awp.WeightAdversary.perturb

    def perturb(self, loss_fn, gamma):
        epochs.append(gamma)
        return real(self, loss_fn, gamma)

    monkeypatch.setattr(awp.WeightAdversary, "perturb", perturb)
    train.fit(small_cfg(tmp_path, method="awp_trades", params={"awp_warmup": 0.5}, epochs=1))
    assert epochs == [0.005] * 5  # steps 5-9 of 10 (0-based): epoch 0.5 on


def test_an_interrupted_awp_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    cfg = dict(epochs=2, checkpoint_every=4, ema_decay=0.9)
    ref = train.fit(small_cfg(tmp_path / "a", **cfg))
    real, calls = losses.METHODS["awp_pgd"], {"n": 0}

    def interrupted(ctx):
        calls["n"] += 1
        if calls["n"] == 14:
            raise KeyboardInterrupt
        return real.fn(ctx)

    monkeypatch.setitem(losses.METHODS, "awp_pgd", dataclasses.replace(real, fn=interrupted))
    with pytest.raises(KeyboardInterrupt):
        train.fit(small_cfg(tmp_path / "b", **cfg))
    monkeypatch.setitem(losses.METHODS, "awp_pgd", real)
    assert train.load_checkpoint(tmp_path / "b" / "run" / "last.pt")["state"]["global_step"] == 12
    resumed = train.fit(small_cfg(tmp_path / "b", **cfg))
    a = train.load_checkpoint(tmp_path / "a" / "run" / "last.pt")
    b = train.load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    for part in ("model", "optimizer"):
        flat_a, flat_b = a[part], b[part]
        if part == "optimizer":
            flat_a = {i: s["momentum_buffer"] for i, s in a[part]["state"].items()}
            flat_b = {i: s["momentum_buffer"] for i, s in b[part]["state"].items()}
        for k in flat_a:
            assert torch.equal(flat_a[k], flat_b[k]), (part, k)
    for k, v in a["ema"]["weights"].items():
        assert torch.equal(v, b["ema"]["weights"][k]), k
    assert strip(resumed["history"]) == strip(ref["history"])


# --------------------------------------------------------------------------- two ranks


DDP_SCRIPT = textwrap.dedent('''
    import os, sys
    import torch
    from advlib import data, train, utils
    from advlib.config import TrainConfig

    out = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    n = 64 + 32
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    ds = data.Dataset(x, torch.randint(0, 10, (n,), generator=g), "mnist", "train", "sample", data.MNIST_CLASSES)
    # ε = 0: the ranks draw attack noise of their own (train.fit), the weight perturbation is what is compared
    cfg = TrainConfig(model="fast_cnn", dataset="mnist", method="awp_pgd", eps=0.0, steps=2, alpha=0.05, epochs=1,
                      batch_size=16, lr=0.05, weight_decay=5e-4, holdout=32, eval_samples=16, eval_steps=1,
                      params={"awp_gamma": 0.1}, progress=False, out_dir=os.path.join(out, "run"))
    utils.init_distributed()
    rank, _ = utils.dist_info()
    train.fit(cfg, train_data=ds)
    torch.save(train.load_model(os.path.join(out, "run", "last.pt")).state_dict(), os.path.join(out, f"r{rank}.pt"))
    utils.close_distributed()
''')


def test_two_ranks_perturb_alike_and_end_where_one_process_does(tmp_path):
    """fast_cnn has no batch norm: the mean of the ranks' gradients is the whole batch's, for the training step
    and (all-reduced by AWP) for the perturbation, so two ranks train as one process does, up to float rounding;
    without the all-reduce their perturbations, and with weight decay and momentum their weights, would differ.
    At ε = 0 (x' = x), as the ranks' attacks draw noise of their own."""
    script = tmp_path / "awp_ddp.py"
    script.write_text(DDP_SCRIPT)
    # the advlib of this checkout, whichever one the interpreter's environment installs
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVLIB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for folder, n in (("one", 1), ("two", 2)):
        (tmp_path / folder).mkdir()
        cmd = ([sys.executable, str(script)] if n == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", str(script)])
        p = subprocess.run(cmd + [str(tmp_path / folder)], env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "r0.pt", weights_only=True)
    r0, r1 = (torch.load(tmp_path / "two" / f"r{r}.pt", weights_only=True) for r in (0, 1))
    for k in one:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between the ranks"
        torch.testing.assert_close(r0[k], one[k], rtol=1e-3, atol=1e-4, msg=f"{k}: DDP and one process disagree")


# --------------------------------------------------------------------------- notebook 04's exercise


def _solution():
    spec = importlib.util.spec_from_file_location("solutions_04", REPO / "solutions" / "04_trades_mart_cifar10.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.awp_step


def _verdict(fn, capsys) -> tuple[bool, str]:
    result = exercises.check_awp_step(fn)
    return result, capsys.readouterr().out


def test_the_solution_passes_and_the_check_leaves_the_rng_alone(capsys):
    state = torch.get_rng_state()
    ok, out = _verdict(_solution(), capsys)
    assert ok and out.startswith("✅ Correct:"), out
    assert torch.equal(state, torch.get_rng_state())


def _as_answer(step):
    """A student's answer that makes the step ``step`` (a variant's settings or a step function) and returns the
    loss at the weights it trained at."""
    def answer(model, optimizer, x_adv, y, gamma):
        if isinstance(step, dict):
            nb04._awp_variant(model, optimizer, x_adv, y, gamma, **step)
        else:
            step(model, optimizer, x_adv, y, gamma)
        return 0.0
    return answer


@pytest.mark.parametrize("step, message", nb04._AWP_VARIANTS,
                         ids=[s.__name__ if callable(s) else "-".join(f"{k}={v}" for k, v in s.items())
                              for s, _ in nb04._AWP_VARIANTS])
def test_each_typical_mistake_gets_its_diagnosis(step, message, capsys):
    ok, out = _verdict(_as_answer(step), capsys)
    assert not ok and out.startswith("❌ " + message), out


def test_a_perturbation_found_on_the_model_itself_is_caught_by_the_batch_norm_statistics(capsys):
    def on_the_model(model, optimizer, x_adv, y, gamma):
        weights = [p for p in model.parameters() if p.dim() > 1]
        grads = torch.autograd.grad(F.cross_entropy(model(x_adv), y), weights)  # updates the running statistics
        with torch.no_grad():
            v = [gamma * w.norm() / g.norm() * g for w, g in zip(weights, grads)]
            for w, d in zip(weights, v):
                w.add_(d)
        loss = F.cross_entropy(model(x_adv), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for w, d in zip(weights, v):
                w.sub_(d)
        return loss.item()

    ok, out = _verdict(on_the_model, capsys)
    assert not ok and "updated the batch-norm running statistics twice" in out and "copy.deepcopy(model)" in out, out


def test_saving_and_restoring_the_buffers_instead_of_a_proxy_passes(capsys):
    def with_buffers(model, optimizer, x_adv, y, gamma):
        saved = [b.clone() for b in model.buffers()]
        weights = [p for p in model.parameters() if p.dim() > 1]
        grads = torch.autograd.grad(F.cross_entropy(model(x_adv), y), weights)
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)
            v = [gamma * w.norm() / g.norm() * g for w, g in zip(weights, grads)]
            for w, d in zip(weights, v):
                w.add_(d)
        loss = F.cross_entropy(model(x_adv), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for w, d in zip(weights, v):
                w.sub_(d)
        return loss.item()

    ok, out = _verdict(with_buffers, capsys)
    assert ok, out


def test_the_returned_value_is_checked(capsys):
    solution = _solution()
    ok, out = _verdict(lambda *a: torch.tensor(solution(*a)), capsys)
    assert not ok and "return a Python float" in out, out

    def at_w(model, optimizer, x_adv, y, gamma):
        with torch.no_grad():
            before = F.cross_entropy(model(x_adv), y).item()
        solution(model, optimizer, x_adv, y, gamma)
        return before

    ok, out = _verdict(at_w, capsys)
    assert not ok and "the loss at the unperturbed weights" in out, out
    ok, out = _verdict(lambda m, o, x, y, g: (x.add_(0.1), solution(m, o, x.clone(), y, g))[1], capsys)
    assert not ok and "changed its argument `x_adv` in place" in out, out


def test_no_step_and_the_stub(capsys):
    ok, out = _verdict(lambda m, o, x, y, g: F.cross_entropy(m(x), y).item(), capsys)
    assert not ok and "the training step never happened" in out, out

    def stub(model, optimizer, x_adv, y, gamma):
        raise NotImplementedError

    ok, out = _verdict(stub, capsys)
    assert not ok and out.startswith("✏️ Not attempted yet"), out
