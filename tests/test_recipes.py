"""Named recipes: valid configs, the same settings from Python and from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from advlib import losses, recipes
from advlib.config import TrainConfig

from .conftest import REPO


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_is_a_valid_config(name):
    r = recipes.get(name)
    cfg = r.config()
    if losses.get_method(cfg.method).teacher:  # distillation recipes name their teacher when they are run
        cfg = r.config(teacher="runs/teacher/last.pt")
    losses.validate(cfg)
    assert cfg.method in losses.METHODS and r.title and r.source
    assert recipes.config(name, epochs_scale=0.5).epochs == pytest.approx(cfg.epochs / 2)
    assert recipes.config(name, seed=3).seed == 3


def test_unknown_recipe_names_the_choices():
    with pytest.raises(ValueError, match="mnist_pgd"):
        recipes.get("mnist_pdg")


def test_recipe_table_marks_settings_a_method_does_not_read():
    table = recipes.table({"std": recipes.config("mnist_standard"), "pgd": recipes.config("mnist_pgd"),
                           "aug": recipes.config("mnist_fgsm_augment")})
    header, _, std, pgd, aug = table.splitlines()
    cols = [c.strip() for c in header.strip("|").split("|")]
    std, pgd, aug = (dict(zip(cols, (c.strip() for c in row.strip("|").split("|")))) for row in (std, pgd, aug))
    assert std["steps"] == "–" and std["eps"] == "–" and pgd["steps"] == "5" and pgd["eps"] == "0.3"
    assert pgd["params"] == "–" and aug["params"] == "mix=0.5" and pgd["alpha"] == "default"
    # a method's parameter shows at the value the run reads, its default when the run leaves it out
    trades = recipes.config("cifar_s_trades", params={})
    assert trades.params == {} and "beta=6" in recipes.table({"t": trades})


def _cli(*args):
    env = dict(os.environ, ADVLIB_PROGRESS="off", ADVLIB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "advlib", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_recipe_trains_the_same_settings(tmp_path):
    out = tmp_path / "run"
    r = _cli("train", "--recipe", "mnist_fgsm_rs", "--model", "fast_cnn", "--source", "sample", "--epochs", "0.2",
             "--train-samples", "1000", "--eval-samples", "50", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    stored = TrainConfig.from_dict(json.loads((out / "metrics.json").read_text())["config"])
    expected = recipes.config("mnist_fgsm_rs", model="fast_cnn", source="sample", epochs=0.2, train_samples=1000,
                              eval_samples=50, out_dir=str(out))
    assert stored == expected
    r = _cli("train", "--recipe", "mnist_pgd", "--param", "tau=3", "--out-dir", str(tmp_path / "x"))
    assert r.returncode == 2 and "no parameter" in r.stderr, r.stderr
    # --beta, a TrainConfig field once, is the parameter of the methods that declare it
    r = _cli("train", "--recipe", "mnist_pgd", "--beta", "3", "--out-dir", str(tmp_path / "x"))
    assert r.returncode == 2 and "no parameter(s) ['beta']" in r.stderr, r.stderr
    r = _cli("train", "--recipe", "cifar_s_trades", "--beta", "-1", "--out-dir", str(tmp_path / "x"))
    assert r.returncode == 2 and "beta (a parameter of trades) must be in" in r.stderr, r.stderr


def test_notebook_02s_runs_are_one_definition_per_profile(tmp_path):
    cpu = recipes.mnist_course("cpu", tmp_path)
    assert list(cpu) == [recipes.get(n).title for n in recipes.MNIST_COURSE]
    assert all(c.model == "fast_cnn_wide" and c.out_dir == str(tmp_path / c.method) for c in cpu.values())
    smoke = recipes.mnist_course("smoke", tmp_path)
    assert smoke["PGD (Madry)"].epochs == pytest.approx(0.3 * cpu["PGD (Madry)"].epochs)
    with pytest.raises(ValueError, match="profile"):
        recipes.mnist_course("laptop", tmp_path)


@pytest.mark.parametrize("s, d", [("cifar_s_sat", "cifar_d_sat"), ("cifar_s_trades", "cifar_d_trades"),
                                  ("cifar_s_mart", "cifar_d_mart")])
def test_notebooks_04_and_05_train_sat_trades_and_mart_with_the_same_settings(s, d):
    """What lets notebook 05 copy notebook 04's three runs (train.fit's reuse_from) instead of training them again:
    the same settings in every field a resumed run compares."""
    from advlib import train
    a, b = recipes.config(s).to_dict(), recipes.config(d).to_dict()
    assert {k: (a[k], b[k]) for k in a if k not in train.RESUME_FREE and a[k] != b[k]} == {}
    assert a["augment_crop"] is False  # flips only: the distillation students' teacher cache needs it
