"""The Minimum-Margin attack (Gao et al., ICML 2022): its specs, its optimisation on a model whose answer is
known, its target-by-target structure, and how it compares with PGD on a trained model. The invariants (inside
the ε-ball and [0,1], ε = 0 gives the clean images, modes restored, no parameter gradients) run on its
registered example ("mm3-3") in tests/test_attacks.py."""
from __future__ import annotations

import pytest
import torch

from advlib import attack_registry, attacks, evaluate

from .conftest import counting_images


def test_specs_names_and_recorded_settings():
    mm3 = evaluate.parse_attack("mm3", 8 / 255)
    assert (mm3.name, mm3.kind, mm3.steps, mm3.params) == ("MM3", "mm", 20, {"targets": 3})
    assert mm3.settings() == {"spec": "mm3", "name": "MM3", "kind": "mm", "eps": 8 / 255, "steps": 20, "targets": 3}
    plus = evaluate.parse_attack("MM+", 8 / 255)
    assert (plus.name, plus.steps, plus.params) == ("MM+", 100, {"targets": 9})
    assert evaluate.parse_attack("mm9-100", 0.1).name == "MM+" and evaluate.parse_attack("mm3-50", 0.1).name == "MM3-50"
    assert attack_registry.published_column(mm3.settings()) is None  # no column of the RSLAD table
    with pytest.raises(ValueError, match="Unknown attack spec"):
        evaluate.parse_attack("mm", 0.1)
    with pytest.raises(ValueError, match="at least one target class"):
        evaluate.parse_attack("mm0", 0.1)
    with pytest.raises(ValueError, match="targets must be an integer from 1 to the number of classes minus one"):
        attacks.minimum_margin(torch.nn.Linear(4, 3), torch.rand(2, 4), torch.tensor([0, 1]), 0.1, targets=3)


def _margin(model, x, y, t):
    with torch.no_grad():
        z = model(x)
    return z.gather(1, t[:, None]).squeeze(1) - z.gather(1, y[:, None]).squeeze(1)


def test_on_a_linear_model_it_reaches_the_largest_margin():
    """For logits Wx + b the margin to class t is linear in x: over the ε-ball (inside [0,1]) it is largest at
    x + ε·sign(w_t − w_y), which APGD's first step of 2ε reaches from any start and never leaves."""
    torch.manual_seed(0)
    model = torch.nn.Linear(20, 5)
    x = 0.25 + 0.5 * torch.rand(200, 20)  # ε below 0.25: the box never binds
    with torch.no_grad():
        y = model(x).argmax(1)
        target = model(x).masked_fill(torch.nn.functional.one_hot(y, 5).bool(), float("-inf")).argmax(1)
    eps = 0.02
    x_adv = attacks.minimum_margin(model, x, y, eps, steps=5, targets=1)
    fooled = model(x_adv).argmax(1) != y
    best = x + eps * (model.weight[target] - model.weight[y]).sign()
    assert 0 < fooled.sum() < len(x)  # both kinds of image are checked
    assert torch.allclose(_margin(model, x_adv, y, target)[~fooled], _margin(model, best, y, target)[~fooled],
                          atol=1e-5)
    assert (_margin(model, best, y, target)[fooled] > 0).all()  # the images it fooled can be fooled


def test_each_target_attacks_only_the_images_earlier_targets_left(trained_mnist, mnist_sample):
    x, y = mnist_sample[1].tensors(100)
    eps, steps = 0.15, 4
    attacks.n_outputs(trained_mnist, x)  # cached: no probe inside the counts below
    torch.manual_seed(5)
    first = attacks.minimum_margin(trained_mnist, x, y, eps, steps=steps, targets=1)
    with torch.no_grad():
        left = (trained_mnist(first).argmax(1) == y).sum().item()
    assert 0 < left < len(x)
    torch.manual_seed(5)  # the same first target, then a second one
    with counting_images(trained_mnist) as seen:
        two = attacks.minimum_margin(trained_mnist, x, y, eps, steps=steps, targets=2)
    # the clean pass, then steps + 1 passes per target: every image for the first, those it left for the second
    assert seen["n"] == len(x) + (steps + 1) * (len(x) + left)
    with torch.no_grad():
        assert (trained_mnist(two).argmax(1) == y).sum().item() <= left


def test_beside_pgd_on_a_trained_model(trained_mnist, mnist_sample):
    """A sanity comparison, not a claim that MM is stronger here: on the small MNIST model MM3 breaks about
    as many images as 20 steps of PGD on the cross-entropy, far more than FGSM, and the evaluation's checks
    raise nothing about it (MM9 not weaker than MM3 on the same images)."""
    torch.manual_seed(0)
    res = evaluate.evaluate(trained_mnist, mnist_sample[1], ["fgsm", "pgd-20", "mm3", "mm9"], eps=0.1, n=300,
                            progress=False, n_checks=100)
    acc = res["robust"]
    assert acc["MM3"] < acc["FGSM"] < res["clean"]
    assert abs(acc["MM3"] - acc["PGD-20"]) <= 0.05, acc
    assert acc["MM9"] <= acc["MM3"] + 1 / 300
    assert res["attacks"]["MM3"] == {"spec": "mm3", "name": "MM3", "kind": "mm", "eps": 0.1, "steps": 20,
                                     "targets": 3}
    assert not [f for f in res["flags"] if f["raised"]], res["flags"]
