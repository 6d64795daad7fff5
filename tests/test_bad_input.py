"""Bad input and lost work (issue 8): no silent wrong answers, no evaluation thrown away, errors
that say what to do. Each test names the item of the issue it covers; the data items are in
test_data.py, the command-line items in test_cli.py."""
from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from advlib import attacks, evaluate, losses, models, train

X = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 2, 3])


def small_cfg(tmp_path, **kw):
    base = dict(model="fast_cnn", dataset="mnist", source="sample", method="standard", epochs=0.1,
                batch_size=100, train_samples=1500, holdout=300, eval_samples=100, eval_steps=2,
                optimizer="adam", lr=2e-3, eps=0.1, out_dir=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return train.TrainConfig(**base)


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a single training step is taken (errors must come before the first step)."""
    def step(ctx):
        raise AssertionError("a training step was taken before the bad setting was refused")

    for name, method in list(losses.METHODS.items()):
        monkeypatch.setitem(losses.METHODS, name, dataclasses.replace(method, fn=step))


# ------------------------------------------------------------------ 2. NaN and Inf


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_inputs_are_refused(tiny_model, bad):
    """Issue 8.2: comparisons with NaN are false, so NaN passed the [0,1] check."""
    x = X.clone()
    x[1, 0, 3, 3] = bad
    for attack in (lambda: attacks.fgsm(tiny_model, x, Y, 0.1), lambda: attacks.pgd(tiny_model, x, Y, 0.1, 0.01, 2),
                   lambda: attacks.random_noise(tiny_model, x, Y, 0.1)):
        with pytest.raises(ValueError, match="NaN or infinite"):
            attack()


def test_evaluate_refuses_nan_images_instead_of_reporting_100_percent(tiny_model):
    """Issue 8.2: NaN images whose label is 0 scored 100% clean and robust accuracy."""
    x = torch.full((8, 1, 28, 28), float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate.evaluate(tiny_model, (x, torch.zeros(8, dtype=torch.long)), ["fgsm"], eps=0.1, progress=False)


# ------------------------------------------------------------------ 4. empty and negative sizes


@pytest.mark.parametrize("kw, message", [
    (dict(n=0), "n must be an integer >= 1"),
    (dict(n=-5), "n must be an integer >= 1"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(n_per_attack={"fgsm": 0}), r"n_per_attack\['fgsm'\] must be"),
    (dict(n_per_attack={"aa": 10}), "not among the attacks"),
])
def test_evaluate_refuses_empty_and_negative_sizes(tiny_model, mnist_sample, kw, message):
    """Issue 8.4: n=0 reported 0% clean and robust accuracy; n=-5 dropped five images."""
    with pytest.raises(ValueError, match=message):
        evaluate.evaluate(tiny_model, mnist_sample[1], ["fgsm"], eps=0.1, progress=False, **kw)


@pytest.mark.parametrize("field, value", [("train_samples", 0), ("train_samples", -100), ("eval_samples", 0),
                                          ("batch_size", 0), ("holdout", 0), ("steps", 0), ("eval_steps", 0),
                                          ("epochs", 0), ("epochs", float("nan")), ("lr", -0.1),
                                          ("cyclic_peak", 1.0), ("alpha", 0.0)])
def test_config_refuses_empty_negative_and_out_of_range_values(tmp_path, no_training, field, value):
    """Issue 8.4 and 8.8: train_samples=0 trained on everything, eval_samples=0 died after an epoch
    with ZeroDivisionError, batch_size=0 said 'range() arg 3 must not be zero'."""
    with pytest.raises(ValueError, match=f"{field} must be"):
        train.fit(small_cfg(tmp_path, **{field: value}))
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("field, value, message", [
    ("augment", "false", "augment must be true or false or None"),  # the string that turned augmentation on
    ("normalize", 1, "normalize must be true or false"),
    ("steps", 2.0, "steps must be an integer"),
    ("milestones", (50, 75), "milestones are fractions"),
    ("eps", "0.1", "eps must be a finite number"),
    ("source", "internet", "source must be one of"),
    ("device", "gpu", "device must be"),
])
def test_config_refuses_values_of_the_wrong_type(tmp_path, no_training, field, value, message):
    """Issue 8.1 (the same class of bug through the library or a --config file) and 8.8."""
    with pytest.raises(ValueError, match=message):
        train.fit(small_cfg(tmp_path, **{field: value}))


@pytest.mark.parametrize("method, name, value", [("fgsm_weighted", "mix", 2.0), ("trades", "beta", -1.0),
                                                 ("mart", "beta", float("nan")), ("trades", "beta", "6")])
def test_a_method_refuses_its_parameters_out_of_range(tmp_path, no_training, method, name, value):
    """A method's own hyper-parameters (TrainConfig fields once, issue 21) are checked as the fields are."""
    with pytest.raises(ValueError, match=rf"{name} \(a parameter of {method}\) must be in"):
        train.fit(small_cfg(tmp_path, method=method, params={name: value}))
    assert not (tmp_path / "run" / "last.pt").exists()


# ------------------------------------------------------------------ 5. half precision, autoattack's RNG


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_are_refused_with_the_autocast_hint(tiny_model, dtype):
    """Issue 8.5: in bfloat16, ||delta||_inf reached 0.0332 for eps = 8/255 (0.0314)."""
    with pytest.raises(ValueError, match=r"float32.*torch.autocast"):
        attacks.pgd(tiny_model, X.to(dtype), Y, 8 / 255, 2 / 255, 2)
    with pytest.raises(ValueError, match=r"float32.*torch.autocast"):
        attacks.fgsm(tiny_model.to(dtype), X, Y, 8 / 255)


def test_autoattack_leaves_the_global_rng_as_it_found_it(tiny_model):
    """Issue 8.5: torchattacks seeds the global RNG, so the caller's randomness no longer followed its seed."""
    with torch.no_grad():
        y = (tiny_model(X).argmax(1) + 1) % 10  # already misclassified: AutoAttack has nothing to do but seed
    torch.manual_seed(123)
    attacks.autoattack(tiny_model, X, y, 0.1)
    after = torch.rand(5)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(5))


# ------------------------------------------------------------------ 6, 8, 9. lost work


def test_an_unwritable_out_dir_is_refused_before_training(tmp_path, no_training):
    """Issue 8.6: it was discovered after a full epoch. (A path under a regular file cannot be a
    folder, even for root, for whom permission bits do not count.)"""
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"cannot write into the out_dir .*file/run"):
        train.fit(small_cfg(tmp_path, out_dir=str(tmp_path / "file" / "run")))


def test_eval_samples_zero_fails_before_the_first_step(tmp_path, no_training):
    """Issue 8.8: the whole config is validated before the first step, not after an epoch."""
    with pytest.raises(ValueError, match=r"eval_samples must be in \[1, inf\), an integer; got 0"):
        train.fit(small_cfg(tmp_path, eval_samples=0))


@pytest.mark.parametrize("free, reason", [(0, "the disk is full"), (10**12, "the write failed")])
def test_a_failed_checkpoint_write_says_why_and_keeps_the_last_one(tmp_path, monkeypatch, free, reason):
    """Issue 8.9: torch reports a full disk as "enforce fail at inline_container.cc". The write goes
    to /dev/full, which fails every write with ENOSPC as a full disk does."""
    last = tmp_path / "last.pt"
    payload = {"weights": torch.zeros(1000)}
    train.save_checkpoint(last, payload)
    before = last.read_bytes()
    (tmp_path / "last.tmp").symlink_to("/dev/full")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=free))
    with pytest.raises(OSError) as err:
        train.save_checkpoint(last, {"weights": torch.ones(1000)})
    msg = str(err.value)
    assert reason in msg and "the previous last.pt is intact" in msg and "re-run the same command" in msg
    assert last.read_bytes() == before and not (tmp_path / "last.tmp").exists()


# ------------------------------------------------------------------ 10. damaged checkpoints


@pytest.mark.parametrize("content", [b"just some text\n", b"", b"PK\x03\x04 truncated zip"])
def test_a_damaged_checkpoint_is_named_and_explained(tmp_path, content):
    """Issue 8.10: a text file renamed .pt raised KeyError: 101; a truncated one EOFError."""
    path = tmp_path / "best.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"best.pt is not a readable advlib checkpoint.*re-train"):
        train.load_model(path)


def test_a_truncated_real_checkpoint_is_named(tmp_path):
    path = tmp_path / "last.pt"
    train.save_checkpoint(path, {"format": train.CHECKPOINT_FORMAT, "model": models.get_model("fast_cnn").state_dict()})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="last.pt is not a readable advlib checkpoint"):
        train.load_checkpoint(path)


# ------------------------------------------------------------------ 11. the attacks' ValueError promise


@pytest.mark.parametrize("kwargs, message", [
    (dict(y=torch.tensor([0, 1, 2, 12])), r"class indices in \[0, 10\); got min 0, max 12"),
    (dict(y=torch.tensor([0, -1, 2, 3])), r"class indices in \[0, 10\); got min -1"),
    (dict(y=Y.float()), "int64 class indices"),
    (dict(y=[0, 1, 2, 3]), "must be a tensor"),
    (dict(y=None), "must be a tensor"),
    (dict(x=X.double()), "x is torch.float64 but the model's parameters are torch.float32"),
    (dict(x=X[0], y=Y[:1]), r"a batch \(N, C, H, W\).*unsqueeze\(0\)"),
    (dict(steps=2.0), r"steps must be an integer >= 1; got 2.0 \(write 2\)"),
    (dict(alpha=None), "alpha must be > 0, a number; got None"),
    (dict(eps=None), "eps must be in"),
    (dict(eps=float("nan")), "eps must be in"),
])
def test_bad_attack_arguments_raise_value_errors(tiny_model, kwargs, message):
    """Issue 8.11: these raised IndexError, RuntimeError (dtype, convolution, matrix shapes) or TypeError."""
    args = dict(x=X, y=Y, eps=0.1, alpha=0.01, steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        attacks.pgd(tiny_model, **args)
    if not set(kwargs) & {"alpha", "steps"}:
        with pytest.raises(ValueError, match=message):
            attacks.fgsm(tiny_model, args["x"], args["y"], args["eps"])


def test_autoattack_refuses_labels_out_of_range(tiny_model):
    """Issue 8.11: AutoAttack accepted label 12 of 10 classes silently."""
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\); got min 0, max 12"):
        attacks.autoattack(tiny_model, X, torch.tensor([0, 1, 2, 12]), 0.1)
    with pytest.raises(ValueError, match="n_classes=100 but the model gives 10 logits"):
        attacks.autoattack(tiny_model, X, Y, 0.1, n_classes=100)


def test_evaluate_refuses_a_model_of_another_dataset(mnist_sample):
    """Issue 8.11: an MNIST model on CIFAR-10 failed inside a convolution."""
    from advlib import data

    cifar = data.load("cifar10", "test", source="sample")
    with pytest.raises(ValueError, match="'fast_cnn' is for mnist, not cifar10"):
        evaluate.evaluate(models.get_model("fast_cnn"), cifar, ["fgsm"], eps=0.1, n=10, progress=False)


def test_a_model_that_cannot_take_the_images_is_a_value_error():
    """Issue 8.11: the same mistake with an unregistered model is caught by the attacks' shape probe."""
    cifar_net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 10))
    with pytest.raises(ValueError, match=r"cannot take inputs of shape \(1, 28, 28\)"):
        attacks.fgsm(cifar_net, X, Y, 0.1)


# ------------------------------------------------------------------ 12. the resume refusal names the CLI flag


def test_the_resume_refusal_names_the_cli_flag(tmp_path):
    """Issue 8.12: it said resume=False where the command line's flag is --no-resume."""
    train.fit(small_cfg(tmp_path))
    with pytest.raises(ValueError, match=r"resume=False \(on the command line: --no-resume\)"):
        train.fit(small_cfg(tmp_path, lr=0.5))
