"""The training engine: methods, metrics, checkpoints, resume after an interruption."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from advlib import losses, train


def small_cfg(tmp_path, **kw):
    base = dict(model="fast_cnn", dataset="mnist", source="sample", method="pgd", steps=2, eps=0.2,
                epochs=2, batch_size=100, train_samples=1500, holdout=300, eval_samples=100, eval_steps=2,
                optimizer="adam", lr=2e-3, weight_decay=0.0, schedule="cosine", eps_ramp_epochs=1,
                out_dir=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return train.TrainConfig(**base)


@pytest.fixture(scope="module")
def mnist_teacher(tmp_path_factory):
    """A natural MNIST model for the distillation methods (any teacher will do to train a student)."""
    out = tmp_path_factory.mktemp("teacher")
    train.fit(small_cfg(out, method="standard", epochs=1, train_samples=2300))
    return str(out / "run" / "last.pt")


@pytest.mark.parametrize("method", list(losses.METHODS))
def test_every_method_trains_and_improves(tmp_path, method, request):
    teacher = request.getfixturevalue("mnist_teacher") if losses.get_method(method).teacher else None
    # a student learns from soft labels more slowly than from hard ones at this tiny budget: three epochs
    cfg = small_cfg(tmp_path, method=method, epochs=3 if teacher else 1, train_samples=2300, eps=0.1, teacher=teacher,
                    params={"begin_epochs": 0.5} if method == "iad" else {})
    m = train.fit(cfg)
    assert m["complete"] and m["epochs_done"] == cfg.epochs
    assert m["final"]["holdout_clean"] > 0.5, f"{method} did not learn: {m['final']}"


def test_metrics_and_checkpoints_are_written(tmp_path):
    cfg = small_cfg(tmp_path)
    train.fit(cfg)
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] and len(metrics["history"]) == 2
    assert metrics["data"] == "MNIST (shipped sample)"
    for key in ("holdout_clean", "holdout_pgd", "train_loss", "lr", "train_eps"):
        assert key in metrics["history"][-1]
    assert metrics["history"][0]["train_eps"] < cfg.eps  # the ramp
    model = train.load_model(out / "best.pt", model_name="fast_cnn")
    assert not model.training
    with pytest.raises(ValueError, match="holds a 'fast_cnn' model, not 'small_cnn'"):
        train.load_model(out / "best.pt", model_name="small_cnn")


def test_weights_of_another_model_are_refused(tmp_path):
    cfg = small_cfg(tmp_path, epochs=0.1)
    train.fit(cfg)
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    ck["model_name"] = "small_cnn"  # a checkpoint whose weights do not fit its claimed model
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="do not fit a 'small_cnn' model"):
        train.load_model(tmp_path / "bad.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an advlib checkpoint"):
        train.load_model(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="Train first"):
        train.load_model(tmp_path / "missing.pt")


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("stop_at, every", [(13, 0), (19, 4)])
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, monkeypatch, stop_at, every):
    """Kill the run at training step ``stop_at`` (mid-epoch 2 with 12 steps an epoch), resume it,
    and compare with a run that was never interrupted: same weights, same history."""
    ref = train.fit(small_cfg(tmp_path / "a", checkpoint_every=every))
    ref_model = torch.load(tmp_path / "a" / "run" / "last.pt", weights_only=True)["model"]

    real = losses.METHODS["pgd"]
    calls = {"n": 0}

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == stop_at:
            raise Interrupt
        return real(*args)

    monkeypatch.setitem(losses.METHODS, "pgd", dataclasses.replace(real, fn=interrupted))
    with pytest.raises(Interrupt):
        train.fit(small_cfg(tmp_path / "b", checkpoint_every=every))
    monkeypatch.setitem(losses.METHODS, "pgd", real)
    ck = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)
    done = ck["state"]["global_step"]
    assert done == (16 if every else 12)  # the last checkpoint before the interruption
    resumed = train.fit(small_cfg(tmp_path / "b", checkpoint_every=every))
    got = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)["model"]
    for k in ref_model:
        assert torch.equal(ref_model[k], got[k]), k
    strip = lambda h: [{k: v for k, v in r.items() if k != "train_seconds"} for r in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(ref["history"])


def test_resume_refuses_other_settings(tmp_path):
    train.fit(small_cfg(tmp_path, epochs=0.5))
    with pytest.raises(ValueError, match="other settings"):
        train.fit(small_cfg(tmp_path, epochs=0.5, lr=0.5))
    train.fit(small_cfg(tmp_path, epochs=0.5, lr=0.5), resume=False)  # explicit restart works
    m = train.fit(small_cfg(tmp_path, epochs=0.5, lr=0.1), resume="if_same")  # notebooks: start over
    assert m["complete"] and m["config"]["lr"] == 0.1


def test_a_checkpoint_trained_on_other_data_is_not_reused(tmp_path, mnist_sample):
    cfg = small_cfg(tmp_path, epochs=0.5, train_samples=None)
    train.fit(cfg, train_data=mnist_sample[0].subset(1500))
    with pytest.raises(ValueError, match="data"):  # same settings, other data (e.g. the full set appeared)
        train.fit(cfg, train_data=mnist_sample[0].subset(2000))
    m = train.fit(cfg, train_data=mnist_sample[0].subset(2000), resume="if_same")
    assert m["complete"]


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="is for mnist, not cifar10"):
        train.fit(small_cfg(tmp_path, dataset="cifar10"))
    with pytest.raises(ValueError, match="Unknown training method"):
        train.fit(small_cfg(tmp_path, method="magic"))
    with pytest.raises(ValueError, match="eps must be in"):
        train.fit(small_cfg(tmp_path, eps=8))


def test_lr_schedules():
    cfg = train.TrainConfig(schedule="cyclic", cyclic_peak=0.4)
    assert train.lr_factor(cfg, 0.0) == 0 and train.lr_factor(cfg, 0.4) == 1 and train.lr_factor(cfg, 1.0) == 0
    cfg = train.TrainConfig(schedule="multistep", milestones=(0.5, 0.75), gamma=0.1)
    assert [round(train.lr_factor(cfg, t), 6) for t in (0.1, 0.6, 0.9)] == [1, 0.1, 0.01]
    cfg = train.TrainConfig(eps=0.3, eps_ramp_epochs=2)
    assert train.current_eps(cfg, 1.0) == pytest.approx(0.15) and train.current_eps(cfg, 5) == 0.3


def test_monitor_every_records_a_trace_without_changing_the_training(tmp_path):
    """The within-epoch monitor (catastrophic overfitting shows between epoch ends) runs attacks with random
    starts: it must not move the training's random numbers, so the weights equal an unmonitored run's."""
    plain = small_cfg(tmp_path / "a", method="fgsm_rs", epochs=1, eps=0.3, eps_ramp_epochs=0)
    watched = plain.replace(monitor_every=3, out_dir=str(tmp_path / "b" / "run"))
    m_plain, m_watched = train.fit(plain), train.fit(watched)
    assert "trace" not in m_plain
    steps = 1200 // 100  # (train_samples - holdout) // batch_size
    trace = m_watched["trace"]
    assert [p["epoch"] for p in trace] == [3 / steps, 6 / steps, 9 / steps, 1.0]
    assert all({"holdout_clean", "holdout_fgsm", "holdout_pgd"} <= set(p) for p in trace)
    assert trace[-1]["holdout_pgd"] == m_watched["final"]["holdout_pgd"]
    a = train.load_checkpoint(tmp_path / "a" / "run" / "last.pt")["model"]
    b = train.load_checkpoint(tmp_path / "b" / "run" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # monitoring is not training time, and the trace survives a reuse of the finished run
    assert train.fit(watched)["trace"] == trace


def _before_issue_21(cfg: train.TrainConfig, beta: float = 6.0, mix: float = 0.5) -> dict:
    """The config dict a checkpoint of ``cfg`` held when beta and mix were TrainConfig fields (every config had both)."""
    d = cfg.to_dict()
    params = {k: v for k, v in d.pop("params").items() if k not in ("beta", "mix")}
    return {**d, "beta": beta, "mix": mix, "params": params}


@pytest.mark.parametrize("method, params", [("trades", {}), ("trades", {"beta": 6.0}), ("mart", {}),
                                            ("fgsm_weighted", {"mix": 0.5}), ("pgd", {})])
def test_a_checkpoint_from_when_beta_and_mix_were_fields_is_the_same_run(tmp_path, method, params):
    """beta and mix moved into the methods' params (issue 21): an older checkpoint with the same values resumes."""
    cfg = small_cfg(tmp_path, method=method, params=params)
    ck = {"config": _before_issue_21(cfg), "state": {"data": "d"}}
    assert train._config_diff(cfg, ck, "d") == {}
    assert train.TrainConfig.from_dict(losses.upgrade(ck["config"])) == cfg.replace(
        params={k: 6.0 if k == "beta" else 0.5 for k in losses.get_method(method).params})
    if losses.get_method(method).params:  # another value of the method's own parameter is another run
        changed = _before_issue_21(cfg, beta=3.0, mix=0.25)
        assert set(train._config_diff(cfg, {**ck, "config": changed}, "d")) == {"params"}
    else:  # a method that never read them: whatever the checkpoint held
        assert train._config_diff(cfg, {**ck, "config": _before_issue_21(cfg, beta=3.0, mix=0.25)}, "d") == {}


def test_a_field_added_later_counts_as_its_default_on_resume(tmp_path):
    cfg = small_cfg(tmp_path, epochs=0.2)
    train.fit(cfg)
    path = tmp_path / "run" / "last.pt"
    ck = train.load_checkpoint(path)
    del ck["config"]["monitor_every"]  # a checkpoint written before the field existed
    train.save_checkpoint(path, ck)
    assert train._config_diff(cfg, ck, ck["state"]["data"]) == {}
    assert "monitor_every" in train._config_diff(cfg.replace(monitor_every=5), ck, ck["state"]["data"])


# --------------------------------------------------------------------------- a finished twin elsewhere (reuse_from)


def _no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("trained although a finished run with the same settings was there to copy")
    monkeypatch.setattr(train, "train_step", refuse)


def test_a_finished_run_with_the_same_settings_is_copied_not_trained(tmp_path, monkeypatch):
    src = small_cfg(tmp_path / "nb04", epochs=0.2)
    done = train.fit(src)
    (tmp_path / "nb04" / "run" / "evaluation_last.json").write_text("{}")  # an evaluation travels with the weights
    twin = dataclasses.replace(src, out_dir=str(tmp_path / "nb05" / "sat"))
    _no_training(monkeypatch)
    m = train.fit(twin, resume="if_same", reuse_from=[tmp_path / "nb04"])
    out = tmp_path / "nb05" / "sat"
    assert m["complete"] and m["copied_from"].endswith("nb04/run")
    assert m["history"] == done["history"] and m["train_seconds"] == done["train_seconds"]
    assert (out / "evaluation_last.json").exists() and (out / "best.pt").exists()
    assert json.loads((out / "metrics.json").read_text())["config"]["out_dir"] == twin.out_dir
    a = torch.load(out / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "nb04" / "run" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train.fit(twin, resume="if_same")["copied_from"] == m["copied_from"]  # said again when reused later


def test_a_run_with_other_settings_or_unfinished_is_not_copied(tmp_path, monkeypatch):
    other = small_cfg(tmp_path / "nb04", epochs=0.2, lr=1e-3)
    train.fit(other)
    unfinished = small_cfg(tmp_path / "nb04b", epochs=0.2)
    train.fit(unfinished)
    rec = json.loads((tmp_path / "nb04b" / "run" / "metrics.json").read_text())
    (tmp_path / "nb04b" / "run" / "metrics.json").write_text(json.dumps({**rec, "complete": False}))
    cfg = dataclasses.replace(unfinished, out_dir=str(tmp_path / "nb05" / "sat"))
    m = train.fit(cfg, resume="if_same", reuse_from=[tmp_path / "nb04", tmp_path / "nb04b", tmp_path / "missing"])
    assert "copied_from" not in m and m["complete"]  # trained here


def test_a_stale_run_here_gives_way_to_a_finished_twin(tmp_path, monkeypatch, capsys):
    cfg = small_cfg(tmp_path / "nb05", epochs=0.2)
    train.fit(dataclasses.replace(cfg, lr=1e-3))  # this folder's run, with settings since edited
    (tmp_path / "nb05" / "run" / "evaluation_best.json").write_text("{}")  # and an evaluation of its weights
    train.fit(dataclasses.replace(cfg, out_dir=str(tmp_path / "nb04" / "s_sat")))  # the twin, finished elsewhere
    _no_training(monkeypatch)
    m = train.fit(cfg, resume="if_same", reuse_from=[tmp_path / "nb04"])
    assert m["copied_from"].endswith("nb04/s_sat") and m["config"]["lr"] == cfg.lr
    assert not (tmp_path / "nb05" / "run" / "evaluation_best.json").exists()  # it went with the stale run
    assert "training from scratch" not in capsys.readouterr().out
