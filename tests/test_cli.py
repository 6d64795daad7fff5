"""python -m advlib train / evaluate, end to end on the shipped sample."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO


def run(*args, env=None):
    e = dict(os.environ, ADVLIB_PROGRESS="off", ADVLIB_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "advlib", *args], cwd=REPO, env=e, capture_output=True,
                          text=True, timeout=600)


def test_cli_trains_and_evaluates(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--model", "fast_cnn", "--dataset", "mnist", "--source", "sample", "--method", "fgsm_rs",
            "--eps", "0.1", "--epochs", "1", "--train-samples", "2000", "--batch-size", "100", "--optimizer", "adam",
            "--lr", "0.002", "--weight-decay", "0", "--eval-samples", "100", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["out_dir"] == str(out)
    assert (out / "metrics.json").exists() and (out / "best.pt").exists()
    r = run("evaluate", "--checkpoint", str(out / "best.pt"), "--source", "sample", "--attacks", "fgsm", "pgd-5",
            "--n", "200", "--out", str(tmp_path / "eval.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "eval.json").read_text())
    assert res["kind"] == "evaluate" and res["n"] == 200 and res["eps"] == 0.1
    assert 0 <= res["robust"]["PGD-5"] <= res["clean"] <= 1
    assert "| fast_cnn |" in r.stdout


def test_cli_errors_are_clear(tmp_path):
    r = run("evaluate", "--checkpoint", str(tmp_path / "nope.pt"))
    assert r.returncode == 2 and "No checkpoint at" in r.stderr
    r = run("train", "--model", "resnet18", "--dataset", "mnist", "--out-dir", str(tmp_path / "x"))
    assert r.returncode == 2 and "is for cifar10, not mnist" in r.stderr
