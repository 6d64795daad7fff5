"""``TrainConfig.loss_scale`` (issue 20, item 1): with SGD, scaling the loss by s is the same step as scaling
the learning rate by s and dividing the weight decay by s, which is what makes it a fair knob for methods
whose losses are on other scales (benchmarks/distill_budget.py searches it)."""
from __future__ import annotations

import pytest
import torch

from advlib import train
from tests.test_train import small_cfg


def weights(path):
    return train.load_checkpoint(path)["model"]


def test_loss_scale_equals_the_learning_rate_and_weight_decay_it_stands_for(tmp_path):
    sgd = dict(epochs=1, optimizer="sgd", momentum=0.9, schedule="constant", method="standard", train_samples=600)
    s = 4.0
    train.fit(small_cfg(tmp_path / "a", lr=0.05, weight_decay=5e-3, **sgd))
    train.fit(small_cfg(tmp_path / "b", lr=0.05 / s, weight_decay=5e-3 * s, loss_scale=s, **sgd))
    train.fit(small_cfg(tmp_path / "c", lr=0.05, weight_decay=5e-3, loss_scale=s, **sgd))
    a, b, c = (weights(tmp_path / k / "run" / "last.pt") for k in "abc")
    for k, v in a.items():
        if v.is_floating_point():
            torch.testing.assert_close(b[k], v, atol=1e-5, rtol=1e-4)
    assert any(not torch.allclose(c[k], v, atol=1e-3) for k, v in a.items() if v.is_floating_point())


def test_loss_scale_must_be_positive():
    with pytest.raises(ValueError, match="loss_scale must be in"):
        train.TrainConfig(loss_scale=0).validate()


def test_recipes_keep_the_scales_the_committed_search_chose():
    """Each student recipe of notebook 05 carries the loss scale that benchmarks/distill_budget.py chose, as its
    committed table marks it (✓), so the recipes cannot drift from the figures that justify them."""
    import re

    from advlib import paths, recipes

    table = (paths.REPO_ROOT / "benchmarks" / "results" / "distill_budget.md").read_text()
    chosen = dict(re.findall(r"^\| (cifar_d_\w+) × ([\d.]+) \(seed \d+\) \|.*\| ✓ \|$", table, re.M))
    assert len(chosen) >= 6, f"the table marks too few choices: {chosen}"
    for recipe, scale in chosen.items():
        assert recipes.config(recipe).loss_scale == pytest.approx(float(scale)), recipe
    searched = {r for r in recipes.DISTILLATION_STUDENTS if r != "cifar_d_natural"}
    assert searched <= set(chosen), f"students without a searched scale: {sorted(searched - set(chosen))}"
