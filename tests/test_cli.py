"""python -m advlib train / evaluate: end to end on the shipped sample, and bad input (issue 8)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import torch

from advlib import __main__ as cli, losses, models, train, utils

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


# ------------------------------------------------------------------ bad input and lost work (issue 8)


@pytest.fixture
def captured_fit(monkeypatch):
    """``python -m advlib train`` in-process with ``fit`` replaced: what config would it train?"""
    seen = {}

    def fit(cfg, resume=True, verbose=False):
        losses.validate(cfg)  # as train.fit does
        seen["cfg"], seen["resume"], seen["verbose"] = cfg, resume, verbose
        return {"train_seconds": 0.0, "final": None}

    monkeypatch.setattr(train, "fit", fit)
    return seen


@pytest.mark.parametrize("text, value", [("false", False), ("False", False), ("0", False), ("no", False),
                                         ("off", False), ("true", True), ("TRUE", True), ("1", True),
                                         ("yes", True), ("on", True)])
def test_boolean_flags_mean_what_they_say(captured_fit, text, value):
    """Issue 8.1: --augment false turned augmentation on (any string was truthy)."""
    hints = typing.get_type_hints(train.TrainConfig)
    bools = [name for name, t in hints.items() if t is bool or bool in typing.get_args(t)]
    assert {"augment", "normalize", "nesterov", "progress"} <= set(bools)
    args = [a for name in bools for a in ("--" + name.replace("_", "-"), text)]
    assert cli.main(["train", *args]) == 0
    assert all(getattr(captured_fit["cfg"], name) is value for name in bools)


@pytest.mark.parametrize("text", ["maybe", "", "2", "nein"])
def test_other_boolean_spellings_are_refused(captured_fit, capsys, text):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--augment", text])
    assert exit_.value.code == 2 and "expected true or false" in capsys.readouterr().err
    assert "cfg" not in captured_fit


def test_every_flag_round_trips_its_field(captured_fit):
    """Issue 8.1, "check every CLI flag generated from TrainConfig": each flag, given its field's value
    as text, must give back exactly that value, of the field's type."""
    want = train.TrainConfig(train_samples=300, augment=False, alpha=0.05, grad_clip=1.0, eval_alpha=0.02,
                             extra={"note": "x"}, milestones=(0.3, 0.9), teacher="runs/t/best.pt")
    args = []
    for f in dataclasses.fields(want):
        v = getattr(want, f.name)
        if f.name in cli.NOT_FLAGS:
            continue
        assert v is not None, f"give {f.name} a value above so that its flag is tested"
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, tuple):
            args += [flag, *map(str, v)]
        else:
            args += [flag, json.dumps(v) if isinstance(v, dict) else str(v).lower() if isinstance(v, bool) else str(v)]
    assert cli.main(["train", *args]) == 0
    assert captured_fit["verbose"] is True  # the command line names the run it resumes, step and all
    got, hints = captured_fit["cfg"], typing.get_type_hints(train.TrainConfig)
    for f in dataclasses.fields(want):
        if f.name not in cli.NOT_FLAGS:
            kind = next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            assert getattr(got, f.name) == getattr(want, f.name), f.name
            assert type(getattr(got, f.name)) is kind, f"--{f.name} gives a {type(getattr(got, f.name))}"


def test_train_help_describes_every_flag_with_its_default():
    """Issue 8.12: train --help showed no description or default for any flag."""
    train_parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a for a in train_parser._actions if a.dest != "help"}
    fields = {f.name for f in dataclasses.fields(train.TrainConfig)}
    assert set(cli.TRAIN_HELP) == fields, "every TrainConfig field needs a line in advlib.__main__.TRAIN_HELP"
    assert fields - set(cli.NOT_FLAGS) <= set(flags)
    for dest, action in flags.items():
        assert action.help and "default" in action.help, f"--{dest} has no description or default"
    assert "(default: 128)" in flags["batch_size"].help and "(default: false)" in flags["normalize"].help


@pytest.mark.parametrize("args, message", [
    (["--train-samples", "0"], "train_samples must be in [1, inf), an integer; got 0"),
    (["--train-samples", "-100"], "train_samples must be"),
    (["--eval-samples", "0"], "eval_samples must be"),
    (["--batch-size", "0"], "batch_size must be in [1, inf), an integer; got 0"),
    (["--milestones", "50", "75"], "milestones are fractions"),
])
def test_train_refuses_bad_sizes_before_training(tmp_path, capsys, args, message):
    """Issue 8.4, 8.8, 8.12 on the command line: a clear error, exit code 2, nothing trained."""
    assert cli.main(["train", "--source", "sample", "--out-dir", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_train_refuses_an_unwritable_out_dir_before_training(tmp_path, capsys, monkeypatch):
    """Issue 8.6 on the command line."""
    monkeypatch.setattr(train.data_mod, "load", lambda *a, **k: pytest.fail("data loaded before the check"))
    (tmp_path / "file").write_text("")
    rc = cli.main(["train", "--source", "sample", "--out-dir", str(tmp_path / "file" / "run")])
    assert rc == 2 and "cannot write into the out_dir" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [("[1, 2]", "must hold a JSON object"), ("{epochs: 1", "not valid JSON")])
def test_a_bad_config_file_is_named(tmp_path, capsys, content, message):
    path = tmp_path / "cfg.json"
    path.write_text(content)
    assert cli.main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


@pytest.fixture
def mnist_checkpoint(tmp_path):
    """An (untrained) fast_cnn checkpoint as train writes it, in its own run folder."""
    torch.manual_seed(0)
    path = tmp_path / "run" / "best.pt"
    train.save_checkpoint(path, {"format": train.CHECKPOINT_FORMAT, "model_name": "fast_cnn",
                                 "config": train.TrainConfig(eps=0.1).to_dict(),
                                 "model": models.get_model("fast_cnn").state_dict()})
    return path


EVAL = ["--source", "sample", "--attacks", "fgsm", "--n", "20"]


def test_evaluate_names_its_file_after_the_checkpoint(mnist_checkpoint, capsys):
    """Issue 8.7: evaluating best.pt and then last.pt overwrote one eval_metrics.json."""
    shutil.copy(mnist_checkpoint, mnist_checkpoint.with_name("last.pt"))
    assert cli.main(["evaluate", "--checkpoint", str(mnist_checkpoint), *EVAL]) == 0
    assert cli.main(["evaluate", "--checkpoint", str(mnist_checkpoint.with_name("last.pt")), *EVAL]) == 0
    folder = mnist_checkpoint.parent
    assert json.loads((folder / "eval_best.json").read_text())["checkpoint"] == str(mnist_checkpoint)
    assert json.loads((folder / "eval_last.json").read_text())["checkpoint"] == str(folder / "last.pt")


def test_evaluate_prints_first_and_falls_back_when_the_folder_is_unwritable(mnist_checkpoint, tmp_path, capsys,
                                                                            monkeypatch):
    """Issue 8.7: results were written before they were printed, so an unwritable checkpoint folder
    lost the whole evaluation. (The folder is made unwritable for write_json, which works for root too.)"""
    real = utils.write_json

    def write_json(path, obj):
        if Path(path).parent == mnist_checkpoint.parent:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, obj)

    monkeypatch.setattr(utils, "write_json", write_json)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["evaluate", "--checkpoint", str(mnist_checkpoint), *EVAL]) == 0
    out, err = capsys.readouterr()
    assert "| fast_cnn |" in out
    assert f"could not write {mnist_checkpoint.parent / 'eval_best.json'} (Permission denied)" in err
    fallback = elsewhere / "eval_run_best.json"
    assert f"wrote the results to {fallback} instead" in err
    assert json.loads(fallback.read_text())["n"] == 20


@pytest.mark.parametrize("args, message", [
    (["--n", "-5"], "n must be an integer >= 1"),
    (["--n", "0"], "n must be an integer >= 1"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--dataset", "cifar10"], "'fast_cnn' is for mnist, not cifar10"),
    (["--n-aa", "10"], "--n-aa limits AutoAttack, which is not among --attacks"),
    (["--eps", "nan"], "eps must be in [0, 1]"),
    (["--aa-check", "10"], "--aa-check belongs to --paper"),
    (["--paper", "--aa-check", "10"], "give --n-aa too"),
])
def test_evaluate_refuses_bad_input(mnist_checkpoint, capsys, args, message):
    """Issue 8.4 (--n -5 dropped five images, --n 0 reported 0%), 8.11 (an MNIST checkpoint on
    CIFAR-10 failed inside a convolution), 8.12 (--batch-size 0 said 'range() arg 3 must not be zero')."""
    assert cli.main(["evaluate", "--checkpoint", str(mnist_checkpoint), *EVAL, *args]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and message in err
    assert not (mnist_checkpoint.parent / "eval_best.json").exists()


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b""])
def test_evaluate_a_damaged_checkpoint_is_an_error_not_a_traceback(tmp_path, capsys, content):
    """Issue 8.10: a text file renamed .pt came out as KeyError: 101."""
    path = tmp_path / "best.pt"
    path.write_bytes(content)
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path} is not a readable advlib checkpoint" in err


def test_damaged_data_is_an_error_not_a_traceback(mnist_checkpoint, tmp_path, capsys, monkeypatch):
    """Issue 8.10: a truncated MNIST file came out as "shape '[60000, 28, 28]' is invalid"."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\0" * 100)
    monkeypatch.setenv("ADVLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ADVLIB_OFFLINE", "1")
    args = ["--source", "full", "--attacks", "fgsm", "--n", "20"]
    assert cli.main(["evaluate", "--checkpoint", str(mnist_checkpoint), *args]) == 2
    err = capsys.readouterr().err
    assert f"error: {raw / 't10k-images-idx3-ubyte'}: it has 100 bytes, the official file 7,840,016" in err


def test_ctrl_c_says_how_to_resume(tmp_path):
    """Issue 8.12: SIGINT printed a bare traceback instead of what to do."""
    out = tmp_path / "run"
    env = dict(os.environ, ADVLIB_PROGRESS="off", ADVLIB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "advlib", "train", "--source", "sample", "--epochs", "50",
                             "--train-samples", "2000", "--batch-size", "50", "--optimizer", "adam", "--lr", "0.001",
                             "--checkpoint-every", "2", "--progress", "false", "--out-dir", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    step = torch.load(out / "last.pt", weights_only=True)["state"]["global_step"]
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"interrupted; re-run the same command to resume from step {step}" in err
    assert step > 0


def test_evaluate_paper_gives_the_rslad_columns(tmp_path, capsys):
    """``--paper``: the RSLAD table's columns with their sources, as notebooks 03-05 report them."""
    torch.manual_seed(0)
    path = tmp_path / "run" / "last.pt"
    train.save_checkpoint(path, {"format": train.CHECKPOINT_FORMAT, "model_name": "airbench_s",
                                 "config": train.TrainConfig(model="airbench_s", dataset="cifar10").to_dict(),
                                 "model": models.get_model("airbench_s").state_dict()})
    assert cli.main(["evaluate", "--checkpoint", str(path), "--source", "sample", "--n", "20", "--paper"]) == 0
    res = json.loads((path.parent / "eval_last.json").read_text())
    assert list(res["robust"]) == ["FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "AA"]
    assert set(res["sources"]) == set(res["robust"]) and res["n"] == 20
