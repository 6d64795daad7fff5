"""The experiment layer of notebooks 03–06 (advlib.experiments) and the paired tests it reads (advlib.results):
where runs live, training a list of runs, best and last checkpoints in the paper's columns, the public masks,
another notebook's models, channels-last where a model is loaded. Small synthetic models and results only."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from advlib import (checkpoints, evaluate, experiments, models, paths, recipes, record, reference, results,  # noqa: E402
                    viz)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """An empty runs root (``ADVLIB_RUNS``)."""
    monkeypatch.setenv("ADVLIB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def write_checkpoint(path, channels_last: bool, model_name: str = "airbench_s", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = models.get_model(model_name)
    checkpoints.save_checkpoint(path, {"format": checkpoints.CHECKPOINT_FORMAT, "model_name": model_name,
                                       "config": {"channels_last": channels_last}, "model": model.state_dict()})
    return model


def is_channels_last(model: nn.Module) -> bool:
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()


class Linear(nn.Module):
    """A tiny CIFAR-shaped classifier: fast enough to run the paper's columns on a few images."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def tensors(n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def fake_result(bits: dict[str, str], data: str = "CIFAR-10 (test)") -> dict:
    """An evaluate result with the given per-image masks (the fields the paired tests read)."""
    robust = {c: m.count("1") / len(m) for c, m in bits.items() if c != "Clean"}
    return {"data": data, "n": len(bits.get("Clean", next(iter(bits.values())))), "robust": robust,
            "n_attack": {c: len(m) for c, m in bits.items() if c != "Clean"}, "masks": dict(bits)}


# --------------------------------------------------------------------------- where runs live


@pytest.mark.parametrize("recipe, key", [("cifar_sat", "sat"), ("cifar_s_trades", "s_trades"),
                                         ("cifar_d_rslad", "rslad"), ("cifar_trades_gpu", "trades"),
                                         ("cifar_teacher", "teacher"), ("cifar_s_trades_beta0.5", "s_trades_beta0.5"),
                                         ("sat", "sat")])
def test_one_run_folder_convention(recipe, key):
    assert experiments.run_key(recipe) == key


def test_run_key_refuses_a_name_that_is_no_folder():
    for bad in ("cifar_", "cifar_d__gpu", "../x", ".."):
        with pytest.raises(ValueError, match="names no run folder"):
            experiments.run_key(bad)


def test_run_dir_is_below_the_runs_root(runs):
    assert experiments.run_dir("05_rslad_distillation_cifar10", "cifar_d_sat", "cpu") == \
        runs / "cpu" / "05_rslad_distillation_cifar10" / "sat"
    with pytest.raises(ValueError, match="profile"):
        experiments.run_dir("05_rslad_distillation_cifar10", "cifar_d_sat", "laptop")


def test_notebook_05s_students_are_the_recipes_list():
    students = experiments.titled(recipes.DISTILLATION_STUDENTS)
    assert list(students.values()) == list(recipes.DISTILLATION_STUDENTS)
    assert list(students)[:7] == ["Natural", "SAT", "TRADES", "MART", "ARD", "IAD", "RSLAD"]
    with pytest.raises(ValueError, match="share a title"):
        experiments.titled(["cifar_d_sat", "cifar_s_sat"])  # both titled "SAT"


def test_configs_write_into_the_notebooks_folder(tmp_path):
    cfgs = experiments.configs({"SAT": "cifar_d_sat", "RSLAD": "cifar_d_rslad"}, tmp_path, 0.2, teacher="t.pt",
                               seed=3, source="sample", model="airbench_s")
    assert list(cfgs) == ["SAT", "RSLAD"]
    assert cfgs["SAT"].out_dir == str(tmp_path / "sat") and cfgs["RSLAD"].out_dir == str(tmp_path / "rslad")
    assert cfgs["SAT"].teacher is None and cfgs["RSLAD"].teacher == "t.pt"  # only a distilling method reads one
    assert cfgs["SAT"].epochs == pytest.approx(0.2 * recipes.get("cifar_d_sat").settings["epochs"])
    assert cfgs["SAT"].seed == 3 and cfgs["SAT"].source == "sample" and cfgs["RSLAD"].model == "airbench_s"
    assert cfgs["SAT"] == recipes.config("cifar_d_sat", epochs_scale=0.2, seed=3, source="sample", model="airbench_s",
                                         out_dir=str(tmp_path / "sat"))


def test_another_notebooks_model_and_metrics(runs):
    nb = "05_rslad_distillation_cifar10"
    with pytest.raises(FileNotFoundError, match=r"run notebook 05_rslad_distillation_cifar10 in the 'cpu' profile first"
                                                r" \(python -m advlib.course run --profile cpu --only 05_rslad"):
        experiments.course_model(nb, "cifar_d_sat", "cpu")
    folder = experiments.run_dir(nb, "cifar_d_sat", "cpu")
    folder.mkdir(parents=True)
    original = write_checkpoint(folder / "last.pt", channels_last=True)
    loaded = experiments.course_model(nb, "cifar_d_sat", "cpu")
    assert is_channels_last(loaded) and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(original.state_dict().values(), loaded.state_dict().values()))
    assert not is_channels_last(experiments.course_model(nb, "cifar_d_sat", "cpu", channels_last=False))
    with pytest.raises(FileNotFoundError, match="best.pt is missing"):
        experiments.course_checkpoint(nb, "cifar_d_sat", "cpu", "best")
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        experiments.course_checkpoint(nb, "cifar_d_sat", "cpu", "middle")

    assert experiments.course_metrics(nb, "cpu", missing_ok=True) == {}
    with pytest.raises(FileNotFoundError, match="metrics.json is missing"):
        experiments.course_metrics(nb, "cpu")
    record.Run(nb, "cpu").value(x=1.0, units="number")
    assert experiments.course_metrics(nb, "cpu")["values"] == {"x": 1.0}
    (folder / "metrics.json").write_text('{"best_epoch": 2}')
    assert experiments.course_metrics(nb, "cpu", "cifar_d_sat") == {"best_epoch": 2}


# --------------------------------------------------------------------------- channels-last where a model is loaded


@pytest.mark.parametrize("trained, asked, expected", [(True, None, True), (False, None, False), (False, True, True),
                                                      (True, False, False)])
def test_channels_last_as_the_config_says_or_as_told(tmp_path, trained, asked, expected):
    path = tmp_path / "run" / "last.pt"
    write_checkpoint(path, channels_last=trained)
    assert is_channels_last(experiments.load(path.parent, "last", channels_last=asked)) is expected
    assert is_channels_last(experiments.load(path, channels_last=asked)) is expected
    assert not is_channels_last(checkpoints.load_model(path))  # load_model's default is unchanged


def test_load_takes_a_config(tmp_path):
    cfg = recipes.config("cifar_s_sat", out_dir=str(tmp_path))
    write_checkpoint(tmp_path / "best.pt", channels_last=cfg.channels_last)
    assert is_channels_last(experiments.load(cfg, "best")) is cfg.channels_last
    with pytest.raises(FileNotFoundError):
        experiments.load(cfg, "last")
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        experiments.load(cfg, "final")


def test_channels_last_of_a_model_from_elsewhere():
    m = models.get_model("airbench_s")
    assert is_channels_last(experiments.channels_last(m))
    assert experiments.channels_last(models.get_model("airbench_s"), enabled=False) is not None


# --------------------------------------------------------------------------- training a list of runs


def fit_of(seconds: float, best: int, done: int, clean: float = 0.8, pgd=0.4) -> dict:
    return {"train_seconds": seconds, "best_epoch": best, "epochs_done": done,
            "final": {"holdout_clean": clean, "holdout_pgd": pgd}, "history": []}


def test_train_all_in_order_with_its_timing(runs, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(experiments.train, "fit", lambda cfg, resume, reuse_from: calls.append(
        (cfg.out_dir, resume, list(reuse_from))) or fit_of(60.0 * len(calls), 2, 3))
    run = record.Run("03_x", "smoke")
    cfgs = experiments.configs({"Standard": "cifar_standard", "SAT": "cifar_sat"}, run.dir)
    other = experiments.notebook_dir("04_x", "smoke")
    fits = experiments.train_all(run, cfgs, reuse_from=[other])
    assert other == run.dir.parent / "04_x"
    assert calls == [(str(run.dir / "standard"), "if_same", [other]), (str(run.dir / "sat"), "if_same", [other])]
    assert capsys.readouterr().out == "== Standard\n== SAT\n"
    assert run.data["train_seconds"] == {"Standard": 60.0, "SAT": 120.0}
    table = experiments.timing_table(cfgs, fits)
    assert table.splitlines()[:3] == [
        "| run | training (min) | best epoch | held-out clean | held-out PGD-10 |",
        "|---|---:|---:|---:|---:|",
        "| Standard | 1.0 | 2 of 3 | 80.0 | 40.0 |"]
    wide = experiments.timing_table(cfgs, fits, ("model", "epochs", "held-out PGD"), stub="student")
    assert wide.splitlines()[0] == "| student | model | epochs | held-out PGD-10 |"
    assert wide.splitlines()[1] == "|---|---|---:|---:|"


def test_timing_table_says_each_monitor_when_they_differ():
    cfgs = {"a": recipes.config("cifar_s_sat", eval_steps=10), "b": recipes.config("cifar_s_sat", eval_steps=2),
            "c": recipes.config("cifar_s_sat", eps=0.0)}
    fits = {"a": fit_of(6, 1, 1), "b": fit_of(6, 1, 1), "c": fit_of(6, 1, 1, pgd=None)}
    lines = experiments.timing_table(cfgs, fits, ("held-out PGD",)).splitlines()
    assert lines[0] == "| run | held-out PGD |"
    assert lines[2:] == ["| a | 40.0 (PGD-10) |", "| b | 40.0 (PGD-2) |", "| c | – |"]
    with pytest.raises(ValueError, match="unknown columns"):
        experiments.timing_table(cfgs, fits, ("speed",))


# --------------------------------------------------------------------------- best and last in the paper's columns


@pytest.fixture
def two_runs(runs, monkeypatch):
    """Two runs whose checkpoints 'load' as tiny linear models (SAT: best epoch = last), and the loads made."""
    run = record.Run("04_x", "smoke")
    cfgs = experiments.configs({"SAT": "cifar_s_sat", "TRADES": "cifar_s_trades"}, run.dir)
    fits = {"SAT": fit_of(1, 5, 5), "TRADES": fit_of(1, 3, 5)}
    loads = []

    def load(cfg, ck):
        loads.append((Path(cfg.out_dir).name, ck))
        return Linear(seed=len(loads))

    monkeypatch.setattr(experiments, "load", load)
    return run, cfgs, fits, loads


def test_best_and_last_by_run(two_runs, capsys):
    run, cfgs, fits, loads = two_runs
    x, y = tensors()
    ev = experiments.evaluate_checkpoints(cfgs, fits, (x, y), ("best", "last"), n=16, progress=False,
                                          sanity_checks=False)
    assert loads == [("s_sat", "best"), ("s_trades", "best"), ("s_trades", "last")]  # SAT's last: the same weights
    assert capsys.readouterr().out == "== SAT (best)\n== TRADES (best)\n== TRADES (last)\n"
    assert list(ev.results) == ["SAT (best)", "SAT (last)", "TRADES (best)", "TRADES (last)"]
    assert ev.results["SAT (last)"] is ev.results["SAT (best)"] and ev.same == ["SAT"]
    assert ev.rows == {"SAT": ["SAT (best)", "SAT (last)"], "TRADES": ["TRADES (best)", "TRADES (last)"]}
    assert ev.rows_meta["TRADES (last)"] == {"model": "airbench_s", "method": "trades", "checkpoint": "last"}
    assert ev.models == {}
    r = ev.results["TRADES (last)"]
    assert list(r["robust"]) == ["FGSM", "PGD_SAT", "PGD_TRADES", "CW∞"] and r["n"] == 16  # no AutoAttack: n_aa=0
    assert (run.dir / "s_trades" / "evaluation_last.json").exists()  # resumable, beside each checkpoint
    assert not (run.dir / "s_sat" / "evaluation_last.json").exists()

    rows, text = experiments.paper_table(run, ev)
    assert list(rows) == list(ev.results)
    table = run.data["tables"]["rslad_columns"]
    assert table["note"] == "tensors, ε = 8/255, 16 test images (no AutoAttack in this profile)"
    assert table["rows_meta"] == ev.rows_meta
    assert text.startswith("**tensors, ε = 8/255, 16 test images (no AutoAttack in this profile)**; accuracy in %, "
                           "95% interval in brackets. For SAT the best epoch was the last: both rows are the same weights.")


def test_same_weights_read_the_other_checkpoints_evaluation(two_runs, monkeypatch):
    """When best.pt and last.pt hold the same weights, the state saved for one (e.g. by another notebook that
    evaluated its last first, then copied here with the run) serves the other; never for different weights."""
    run, cfgs, fits, loads = two_runs
    used = []
    monkeypatch.setattr(experiments, "paper_columns", lambda model, data, state_path=None, **kw: used.append(
        (state_path.parent.name, state_path.name)) or {})
    for folder in ("s_sat", "s_trades"):
        (run.dir / folder).mkdir(parents=True, exist_ok=True)
        (run.dir / folder / "evaluation_last.json").write_text("{}")
    experiments.evaluate_checkpoints(cfgs, fits, tensors(), ("best", "last"))
    assert used == [("s_sat", "evaluation_last.json"),  # SAT: best epoch = last, the same weights
                    ("s_trades", "evaluation_best.json"), ("s_trades", "evaluation_last.json")]


def test_last_first_by_checkpoint_with_single_rows_and_kept_models(two_runs, capsys):
    run, cfgs, fits, loads = two_runs
    x, y = tensors()
    ev = experiments.evaluate_checkpoints(cfgs, fits, (x, y), {"SAT": ("last", "best"), "TRADES": "last"},
                                          by="checkpoint", meta={"SAT": {"method": "pgd-n"}}, keep_models=True, n=8,
                                          progress=False, sanity_checks=False)
    assert loads == [("s_sat", "last"), ("s_trades", "last")]
    assert list(ev.results) == ["SAT (best)", "SAT (last)", "TRADES"]  # every run's best, then every run's last
    assert ev.rows_meta["TRADES"] == {"model": "airbench_s", "method": "trades"}  # one row: no checkpoint named
    assert ev.rows_meta["SAT (best)"]["method"] == "pgd-n"
    assert ev.models["SAT (best)"] is ev.models["SAT (last)"] and set(ev.models) == set(ev.results)
    _, text = experiments.paper_table(run, ev, note="my note")
    assert text.startswith("**my note**; accuracy in %, 95% interval in brackets. For SAT the best")
    with pytest.raises(ValueError, match="no run titled"):
        experiments.evaluate_checkpoints(cfgs, fits, (x, y), {"MART": "last"})
    with pytest.raises(ValueError, match="each once"):
        experiments.evaluate_checkpoints(cfgs, fits, (x, y), ("last", "last"))
    with pytest.raises(ValueError, match="by must be"):
        experiments.evaluate_checkpoints(cfgs, fits, (x, y), by="epoch")


def test_paper_columns_takes_the_profiles_autoattack_settings(monkeypatch):
    seen = []
    monkeypatch.setattr(experiments.evaluate, "rslad_columns", lambda model, data, **kw: seen.append(kw) or {})
    experiments.paper_columns(None, None, n=None, n_aa=500, aa_proxy=True, n_aa_check=200, state_path="s")
    experiments.paper_columns(None, None, n=100, n_aa=0, aa_proxy=False, n_aa_check=0)
    experiments.paper_columns(None, None, n=20, n_aa=500)
    assert [(k["n_aa"], k["with_aa"], k["aa_proxy"], k["n_aa_check"]) for k in seen] == [
        (500, True, True, 200), (None, False, False, None), (20, True, False, None)]
    assert seen[0]["state_path"] == "s" and seen[0]["eps"] == recipes.CIFAR_EPS


def test_caption_names_the_autoattack_images():
    r = {"data": "CIFAR-10", "eps": 8 / 255, "n": 1017, "n_attack": {"AA": 200}}
    assert experiments.caption({"a": r}) == "CIFAR-10, ε = 8/255, 1017 test images (standard AutoAttack on the first 200)"
    assert experiments.caption({"a": {**r, "n_attack": {}, "eps": 0.3}}) == \
        "CIFAR-10, ε = 0.3, 1017 test images (no AutoAttack in this profile)"
    assert experiments.caption({"a": r}, aa_note=False) == "CIFAR-10, ε = 8/255, 1017 test images"


def test_beside_the_paper():
    cfgs = {"SAT": recipes.config("cifar_d_sat"), "Fast": recipes.config("cifar_sat")}  # n_fgsm: no paper row
    rows = {f"{n} ({ck})": {"Clean": 0.5} for n in cfgs for ck in ("best", "last")}
    side, missing = experiments.beside_paper(rows, cfgs)
    assert missing == ["Fast"]
    assert list(side) == ["SAT (best), ours", "SAT (best), paper ResNet-18", "SAT (last), ours",
                          "SAT (last), paper ResNet-18", "Fast (best), ours", "Fast (last), ours"]
    sat = reference.RSLAD_BEST[("ResNet-18", "SAT")]
    assert side["SAT (best), paper ResNet-18"] == {c: v / 100 for c, v in zip(reference.RSLAD_COLUMNS, sat)}
    side, _ = experiments.beside_paper(rows, cfgs, by="checkpoint")
    assert list(side)[:3] == ["SAT (best), ours", "SAT (best), paper ResNet-18", "Fast (best), ours"]


# --------------------------------------------------------------------------- public masks, paired tests


def test_mask_and_paired_test():
    a = fake_result({"Clean": "1111111111", "PGD": "1111111100", "AA": "11110"})
    b = fake_result({"Clean": "1111111111", "PGD": "0000000011", "AA": "11111"})
    assert results.mask(a, "AA") == [True, True, True, True, False]
    with pytest.raises(KeyError, match="no per-image mask for 'CW'"):
        results.mask(a, "CW")
    t = results.paired(a, b, "PGD")
    assert t == {"column": "PGD", "n": 10, "a": 0.8, "b": 0.2, "a_only": 8, "b_only": 2,
                 "p_value": pytest.approx(0.109375), "a_better": True, "significant": False}
    assert t["a"] - t["b"] == a["robust"]["PGD"] - b["robust"]["PGD"]  # the accuracies the result holds
    assert results.paired(a, b, "AA")["n"] == 5
    assert evaluate.paired is results.paired and evaluate.mask is results.mask  # notebooks call them there
    with pytest.raises(ValueError, match="same images"):
        results.paired(a, fake_result({"PGD": "1" * 10}, data="MNIST"), "PGD")
    with pytest.raises(ValueError, match="measured on 10 and 9 images"):
        results.paired(a, fake_result({"PGD": "1" * 9}), "PGD")


def test_paired_on_real_evaluations_is_mcnemar_on_their_masks():
    x, y = tensors(30)
    ra, rb = (evaluate.evaluate(Linear(s), (x, y), ["fgsm"], eps=8 / 255, progress=False, sanity_checks=False)
              for s in (1, 2))
    t = results.paired(ra, rb, "FGSM")
    from advlib import stats

    ref = stats.mcnemar(evaluate._unbits(ra["masks"]["FGSM"], "cpu"), evaluate._unbits(rb["masks"]["FGSM"], "cpu"))
    assert (t["a_only"], t["b_only"], t["p_value"]) == (ref["a_only"], ref["b_only"], ref["p_value"])
    assert (t["a"], t["b"]) == (ra["robust"]["FGSM"], rb["robust"]["FGSM"])


def test_autoattack_column():
    assert results.autoattack_column({"robust": {"PGD_SAT": 0.4, "APGD-CE+T": 0.3, "AA": 0.29}}) == "APGD-CE+T"
    assert results.autoattack_column({"robust": {"PGD_SAT": 0.4, "AA": 0.29}}) == "AA"
    assert results.autoattack_column({"robust": {"PGD_SAT": 0.4}}) == "PGD_SAT"


# --------------------------------------------------------------------------- distillation


def test_teacher_given_shipped_or_trained(runs, monkeypatch, tmp_path):
    spec = dict(shipped="data/models/cifar_teacher.pt", notebook="05_n", recipe="cifar_teacher", scale=1.0, override={})
    path, source = experiments.teacher_checkpoint(spec, "cpu", str(tmp_path / "t.pt"))
    assert (path, source) == (str(tmp_path / "t.pt"), f"given by path: {paths.shown(tmp_path / 't.pt')}")
    path, source = experiments.teacher_checkpoint(spec, "cpu")
    assert path.endswith("data/models/cifar_teacher.pt") and source.startswith("shipped with the course")
    fitted = []
    monkeypatch.setattr(experiments.train, "fit", lambda cfg, resume: fitted.append(cfg) or {})
    spec = dict(notebook="03_n", recipe="cifar_sat", scale=0.02, override={"model": "airbench_s"})
    path, source = experiments.teacher_checkpoint(spec, "smoke", source="sample", seed=1)
    assert path == str(runs / "smoke" / "03_n" / "sat" / "last.pt")
    assert source == "notebook 03_n, recipe cifar_sat, last checkpoint"
    assert fitted[0].model == "airbench_s" and fitted[0].source == "sample" and fitted[0].seed == 1


def test_cached_soft_labels(tmp_path):
    assert experiments.cached_soft_labels(tmp_path) == (0, 0)
    torch.save({"keys": [b"a", b"b"]}, tmp_path / "x.pt")
    torch.save({"keys": [b"c"]}, tmp_path / "y.pt")
    assert experiments.cached_soft_labels(tmp_path) == (3, 2)


def test_soft_labels_and_their_stability():
    x, y = tensors(12)
    model = Linear(3)
    p, q = experiments.soft_labels(model, x, y, steps=2, seed=0, chunk=5)
    assert p.shape == q.shape == (12, 10) and torch.allclose(p.sum(1), torch.ones(12))
    p2, q2 = experiments.soft_labels(model, x, y, steps=2, seed=0, chunk=5)
    assert torch.equal(q, q2)  # the random starts follow the seed
    s = experiments.soft_label_stats(p, q, y)
    assert list(s) == list(experiments.SOFT_LABEL_UNITS)
    assert 0.0 <= s["prediction changed"] <= 1.0 and s["KL(p(x) ‖ p(x'))"] >= 0.0
    same = experiments.soft_label_stats(p, p, y)
    assert same["KL(p(x) ‖ p(x'))"] == pytest.approx(0.0, abs=1e-6) and same["prediction changed"] == 0.0


# --------------------------------------------------------------------------- the figures the notebooks moved to viz


def test_the_notebooks_figures():
    fig = viz.plot_tradeoff({"β = 1": (0.8, 0.4), "β = 6": (0.7, 0.45)}, title="t")
    assert len(fig.axes[0].containers) == 2 and len(fig.axes[0].texts) == 2  # a point and a label per model
    fig = viz.plot_accuracy_vs_steps({"a": [0.5, 0.4, 0.3]}, ["FGSM", "PGD-1", "PGD-2"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["FGSM", "PGD-1", "PGD-2"]
    hist = [{"epoch": e, "holdout_pgd": 0.3 + 0.01 * e} for e in (1, 2, 3)]
    fig = viz.plot_monitor_vs_test(hist, 250, {"best": (3, 0.4), "last": (3, 0.41)})
    assert sorted(fig.axes[0].get_legend_handles_labels()[1]) == [
        "best checkpoint on the test set (PGD-20): 40.0%", "held-out monitor (PGD-10, 250 images, 95% interval)",
        "last checkpoint on the test set (PGD-20): 41.0%"]


@pytest.mark.parametrize("name", ["03_pgd_training_cifar10", "04_trades_mart_cifar10", "05_rslad_distillation_cifar10",
                                  "06_evaluating_robustness"])
def test_the_cifar_notebooks_code_cells_stay_short(name):
    """Notebooks 03-06 declare their experiments and leave the work to advlib (docs/architecture.md): no code cell
    of more than 25 lines."""
    nb = json.loads((paths.REPO_ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
    long = [(i, len("".join(c["source"]).splitlines())) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and len("".join(c["source"]).splitlines()) > 25]
    assert not long, f"{name}: code cells longer than 25 lines (cell, lines): {long}"


def test_run_settings_and_the_monitors_peak(tmp_path):
    cfgs = experiments.configs({"SAT": "cifar_sat", "SAT, small data": "cifar_sat_small_data"}, tmp_path)
    s = experiments.run_settings(cfgs)
    assert s["SAT"]["model"] == "airbench_m" and s["SAT"]["method"] == "n_fgsm" and s["SAT"]["train_images"] is None
    assert s["SAT, small data"]["train_images"] == 4000  # 5,000 less the 1,000 held out
    assert s["SAT"]["folder"] == "sat" and s["SAT, small data"]["folder"] == "sat_small_data"
    hist = [{"epoch": e, "holdout_pgd": p} for e, p in zip((1, 2, 3, 4), (0.30, 0.34, 0.34, 0.31))]
    assert experiments.peak_and_last(hist, cfgs["SAT, small data"]) == {
        "best_epoch": 2, "epochs": 4, "best_pgd": 0.34, "last_pgd": 0.31, "n": 250, "steps": 10}
