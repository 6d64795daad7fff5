"""Checkpoints trained elsewhere ("bring your own model"), loaded safely into the course's models.

A checkpoint from another code base is a bare ``state_dict`` for its own module names. :func:`load`
reads it with ``torch.load(..., weights_only=True)`` (no code runs while loading), maps the names onto
a registered :mod:`advlib.models` architecture and refuses, saying what to do, when the weights do not
fit. :func:`autoattack_example` is the one third-party CIFAR-10 model on every machine that has the
original AutoAttack package: the example ResNet-18 that ``pyautoattack`` ships.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Union

import torch

from . import models, train

# Where known code bases name a module differently from advlib.models (kuangliu/pytorch-cifar's ResNet,
# used by the AutoAttack, TRADES and RSLAD repositories, calls the stages layer1..layer4).
RENAMES = {"resnet18": [(r"^layer(\d)\.", lambda m: f"layers.{int(m.group(1)) - 1}.")],
           "resnet34": [(r"^layer(\d)\.", lambda m: f"layers.{int(m.group(1)) - 1}.")]}


def _unwrap(obj):
    """The state dict inside common checkpoint layouts ({'state_dict': ...}, {'net': ...}, DataParallel)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "net"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError("it holds no state dict (a mapping of parameter names to tensors)")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def load(path: Union[str, Path], model_name: str, normalize: bool = False, device="cpu") -> models.Classifier:
    """A registered ``model_name`` with the weights of a foreign state-dict file (``weights_only=True``).
    ``ValueError`` naming the file and what to do when it is no state dict or does not fit the model."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        state = _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:
        raise ValueError(f"{path} could not be read as a state dict ({type(err).__name__}: {err}). Pass a file "
                         "written with torch.save(model.state_dict(), path).") from None
    for pattern, repl in RENAMES.get(model_name, []):
        state = {re.sub(pattern, repl, k): v for k, v in state.items()}
    model = models.get_model(model_name, normalize=normalize)
    state = {("net." + k if not k.startswith(("net.", "normalize.")) else k): v for k, v in state.items()}
    train.load_state(model, state, source=f"{path} (read as {model_name!r})")
    return model.to(device).eval()


def autoattack_example_path() -> Path:
    """The example checkpoint the original AutoAttack package ships (``pyautoattack/examples/model_test.pt``)."""
    import importlib.util

    spec = importlib.util.find_spec("pyautoattack")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The original AutoAttack package is not installed: pip install pyautoattack "
                                "(make setup installs it).")
    path = Path(next(iter(spec.submodule_search_locations))) / "examples" / "model_test.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from this pyautoattack installation; reinstall pyautoattack.")
    return path


AUTOATTACK_EXAMPLE = ("ResNet-18 (kuangliu/pytorch-cifar layout) trained without adversarial training by the AutoAttack "
                      "authors as the example of their package (pyautoattack, examples/model_test.pt, architecture in "
                      "examples/resnet.py); inputs in [0, 1], no normalisation")


def autoattack_example(device="cpu") -> models.Classifier:
    """The AutoAttack package's example CIFAR-10 ResNet-18 (a standard, non-robust model; see
    :data:`AUTOATTACK_EXAMPLE` for its provenance), as a course ``resnet18``."""
    return load(autoattack_example_path(), "resnet18", device=device)


def save_as_checkpoint(model: models.Classifier, path: Union[str, Path], provenance: str) -> Path:
    """Write a model (from :func:`load`) as an advlib checkpoint, so that it can serve as a teacher
    (``TrainConfig.teacher``) or be evaluated by path; ``provenance`` is stored with it."""
    path = Path(path)
    train.save_checkpoint(path, {"format": train.CHECKPOINT_FORMAT, "model_name": model.name,
                                 "config": {"normalize": not isinstance(model.normalize, torch.nn.Identity)},
                                 "model": model.state_dict(), "state": {}, "provenance": provenance})
    return path
