"""Weight averaging (``TrainConfig.ema_decay``, :mod:`advlib.averaging`): the engine's average equals one
computed by hand from the weights of every step, survives an interruption bit for bit, and is what
evaluation loads."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from advlib import averaging, losses, train
from tests.test_train import Interrupt, small_cfg


def test_decay_warms_up_to_its_target():
    assert averaging.decay_at(0.99, 0) == pytest.approx(0.1)
    assert averaging.decay_at(0.99, 10) == pytest.approx(11 / 20)
    assert averaging.decay_at(0.99, 10_000) == 0.99
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        averaging.decay_at(1.0, 0)
    with pytest.raises(ValueError, match="ema_decay must be in"):
        train.TrainConfig(ema_decay=1.5).validate()


def record_weights(monkeypatch, method="pgd"):
    """Record the model's weights and buffers as each training step starts (those after the previous step)."""
    real, seen = losses.METHODS[method], []

    def recording(ctx):
        seen.append({k: v.detach().clone() for k, v in ctx.model.state_dict().items()})
        return real(ctx)

    monkeypatch.setitem(losses.METHODS, method, dataclasses.replace(real, fn=recording))
    return seen


def test_the_average_equals_a_reference_average(tmp_path, monkeypatch):
    decay, warmup = 0.9, 0.5  # 12 steps an epoch: the first 6 steps only copy the weights
    cfg = small_cfg(tmp_path, ema_decay=decay, ema_warmup_epochs=warmup)
    seen = record_weights(monkeypatch)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 13 * 13, 10))  # with batch norm
    m = train.fit(cfg, model=net)
    ck = train.load_checkpoint(tmp_path / "run" / "last.pt")
    after_step = seen[1:] + [ck["model"]]  # the weights after each step
    steps_per_epoch = len(seen) / cfg.epochs
    avg, n = None, 0
    for step, w in enumerate(after_step):
        if step / steps_per_epoch < warmup or avg is None:
            avg, n = {k: v.clone() for k, v in w.items()}, 1
            continue
        d = min(decay, (1 + n) / (10 + n))
        avg = {k: (a * d + w[k] * (1 - d)) if a.is_floating_point() else w[k].clone() for k, a in avg.items()}
        n += 1
    got = ck["ema"]["weights"]
    assert ck["ema"]["updates"] == n == len(after_step) - int(warmup * steps_per_epoch) + 1
    assert any("running_mean" in k for k in got), "the batch-norm statistics are averaged too"
    for k in avg:
        torch.testing.assert_close(got[k], avg[k], rtol=0, atol=1e-6, msg=k)
    assert not all(torch.equal(got[k], ck["model"][k]) for k in got), "the average is not the raw weights"
    # the monitor scores the average and, beside it, the raw weights
    assert {"holdout_pgd", "raw_holdout_pgd", "raw_holdout_clean"} <= set(m["history"][-1])


def test_an_interrupted_run_resumes_with_identical_averages(tmp_path, monkeypatch):
    cfg = dict(ema_decay=0.95, checkpoint_every=5)
    ref = train.fit(small_cfg(tmp_path / "a", **cfg))
    real, calls = losses.METHODS["pgd"], {"n": 0}

    def interrupted(ctx):
        calls["n"] += 1
        if calls["n"] == 19:
            raise Interrupt
        return real(ctx)

    monkeypatch.setitem(losses.METHODS, "pgd", dataclasses.replace(real, fn=interrupted))
    with pytest.raises(Interrupt):
        train.fit(small_cfg(tmp_path / "b", **cfg))
    monkeypatch.setitem(losses.METHODS, "pgd", real)
    assert train.load_checkpoint(tmp_path / "b" / "run" / "last.pt")["state"]["global_step"] == 15
    resumed = train.fit(small_cfg(tmp_path / "b", **cfg))
    a = train.load_checkpoint(tmp_path / "a" / "run" / "last.pt")
    b = train.load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert a["ema"]["updates"] == b["ema"]["updates"]
    for k, v in a["ema"]["weights"].items():
        assert torch.equal(v, b["ema"]["weights"][k]), k
    strip = lambda h: [{k: v for k, v in r.items() if k != "train_seconds"} for r in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(ref["history"])


def test_evaluation_loads_the_average_unless_told_otherwise(tmp_path):
    train.fit(small_cfg(tmp_path / "avg", epochs=1, ema_decay=0.9))
    train.fit(small_cfg(tmp_path / "plain", epochs=1))
    last = tmp_path / "avg" / "run" / "last.pt"
    ck = train.load_checkpoint(last)
    default, raw = train.load_model(last), train.load_model(last, weights="raw")
    assert default.weights == "averaged" and raw.weights == "raw"
    for k, v in default.state_dict().items():
        assert torch.equal(v, ck["ema"]["weights"][k]) and torch.equal(raw.state_dict()[k], ck["model"][k])
    # best.pt is ranked by the average's held-out robustness
    m = train.load_checkpoint(tmp_path / "avg" / "run" / "best.pt")
    assert "ema" in m and m["state"]["best_robust"] == max(r["holdout_pgd"] for r in m["state"]["history"])
    plain = tmp_path / "plain" / "run" / "last.pt"
    assert train.load_model(plain).weights == "raw"
    with pytest.raises(ValueError, match="holds no averaged weights"):
        train.load_model(plain, weights="averaged")
    with pytest.raises(ValueError, match="weights must be one of"):
        train.load_model(last, weights="ema")


def test_export_keeps_the_chosen_weights_and_nothing_else(tmp_path, capsys):
    """``python -m advlib export`` (the shipped teacher, data/models/): one set of weights, read back by
    load_model and Teacher exactly, with a record of the file and of the training run."""
    from advlib import __main__ as cli
    from advlib.teacher import Teacher

    train.fit(small_cfg(tmp_path / "avg", epochs=1, ema_decay=0.9))
    last = tmp_path / "avg" / "run" / "last.pt"
    for weights in ("auto", "raw"):
        out = tmp_path / f"shipped_{weights}.pt"
        assert cli.main(["export", "--checkpoint", str(last), "--out", str(out), "--weights", weights]) == 0
        want = train.load_model(last, weights=weights)
        got = train.load_model(out)
        assert got.weights == want.weights == ("averaged" if weights == "auto" else "raw")
        for k, v in want.state_dict().items():
            assert torch.equal(v, got.state_dict()[k]), k
        ck = train.load_checkpoint(out)
        assert "ema" not in ck and "optimizer" not in ck and ck["weights"] == got.weights
        assert out.stat().st_size < 0.6 * last.stat().st_size  # no optimiser state, no second copy
        rec = json.loads(out.with_suffix(".json").read_text())
        assert rec["bytes"] == out.stat().st_size and rec["weights"] == got.weights
        assert rec["training"]["epochs_done"] == 1 and rec["training"]["config"]["ema_decay"] == 0.9
        assert Teacher.load(out).model.weights == got.weights
    assert train.load_model(tmp_path / "shipped_auto.pt", weights="averaged").weights == "averaged"
    with pytest.raises(ValueError, match="holds no averaged weights"):
        train.load_model(tmp_path / "shipped_raw.pt", weights="averaged")
