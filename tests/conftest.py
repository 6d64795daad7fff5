"""Shared fixtures: a small MNIST model trained on the shipped sample, isolated data roots."""
from __future__ import annotations

import contextlib
import os

import pytest
import torch
import torch.nn.functional as F

from advlib.paths import REPO_ROOT

os.environ.setdefault("ADVLIB_PROGRESS", "off")

REPO = REPO_ROOT
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch):
    """Every test starts as a new kernel would: no notice given yet (advlib.utils.notice says each once per
    process, so a notice an earlier test gave would otherwise be missing from the next one's output)."""
    from advlib import utils

    monkeypatch.setattr(utils, "_NOTICED", set())


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No data roots but an empty temporary one, and no downloads: as on a fresh offline machine."""
    from advlib import data

    monkeypatch.setenv("ADVLIB_OFFLINE", "1")
    monkeypatch.delenv("ADVLIB_DATA", raising=False)
    monkeypatch.setattr(data, "DEFAULT_ROOT", tmp_path / "data")
    monkeypatch.setenv("ADVLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="session")
def mnist_sample():
    from advlib import data

    return data.load("mnist", "train", source="sample"), data.load("mnist", "test", source="sample")


@pytest.fixture(scope="session")
def trained_mnist(mnist_sample):
    """fast_cnn trained for two epochs on the shipped 6,000-image MNIST sample (a few seconds)."""
    from advlib import models

    torch.manual_seed(0)
    train, _ = mnist_sample
    model = models.get_model("fast_cnn")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for epoch in range(2):
        loader = train.loader(100, shuffle=True, seed=epoch)
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


@pytest.fixture
def tiny_model():
    """An untrained model small enough for property-based tests."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 2), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 13 * 13, 10))


@contextlib.contextmanager
def counting_images(model):
    """Count the images that go through ``model``'s forward pass (``with counting_images(m) as seen: ...``,
    then ``seen["n"]``)."""
    seen = {"n": 0}
    real = model.forward

    def counting(inp):
        seen["n"] += len(inp)
        return real(inp)

    model.forward = counting
    try:
        yield seen
    finally:
        del model.forward
