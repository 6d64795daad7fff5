from __future__ import annotations

import pytest
import torch

from advlib import models


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_registered_model_maps_images_to_ten_logits(name):
    shape = (1, 28, 28) if models.model_dataset(name) == "mnist" else (3, 32, 32)
    model = models.get_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.name == name


def test_normalisation_lives_inside_the_model():
    torch.manual_seed(0)
    plain = models.get_model("cifar_cnn").eval()
    norm = models.get_model("cifar_cnn", normalize=True).eval()
    norm.net.load_state_dict(plain.net.state_dict())
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(models._data.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models._data.CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(norm(x), plain((x - mean) / std), atol=1e-5)


def test_architectures_match_their_sources():
    # parameter counts of the reference implementations
    assert models.count_parameters(models.get_model("mnist_cnn")) == 1_199_882  # PyTorch MNIST example
    assert models.count_parameters(models.get_model("fast_cnn")) == 166_406  # fast_adversarial
    assert models.count_parameters(models.get_model("small_cnn")) == 312_202  # TRADES SmallCNN
    assert models.count_parameters(models.get_model("resnet18")) == 11_173_962
    assert models.count_parameters(models.get_model("wrn34_10")) == 46_160_474


def test_unknown_model_lists_the_registry():
    with pytest.raises(ValueError, match="resnet18"):
        models.get_model("resnet1000")
