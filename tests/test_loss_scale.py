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
