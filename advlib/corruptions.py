r"""Common corruptions: distribution shift that is not adversarial, on images in [0,1].

A small suite in the spirit of MNIST-C (Mu & Gilmer 2019, "MNIST-C: a robustness benchmark for
computer vision") and ImageNet-C (Hendrycks & Dietterich 2019, "Benchmarking neural network robustness
to common corruptions and perturbations"): each corruption is a pure function
``corruption(x, severity, generator=None) -> x_c`` on a batch (N, C, H, W) of images in [0,1] (MNIST
mainly; any shape works), with five severities whose parameters stand in :data:`SEVERITIES`. The
result is a new tensor of the same shape and dtype, clamped to [0,1]. ``generator=None`` draws from
torch's global random number generator; :func:`corrupt` draws from its own, seeded one instead, so
the same seed gives the same corrupted images and the caller's random stream is left as it was.

These shifts are large in L-infinity (noise moves some pixel of almost every image by more than 0.5)
and yet often harmless, where an adversarial perturbation of ε = 0.3 is fatal:
:func:`corruption_sizes` puts numbers on it. Robustness to one kind of shift says little about the
other; :func:`accuracy_under_corruptions` measures the first, :mod:`advlib.evaluate` the second.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Iterable, Optional, Sequence

import torch
import torch.nn as nn
import torchvision.transforms.functional as TF

from . import attacks, evaluate, utils

LEVELS = (1, 2, 3, 4, 5)

# One parameter (or tuple of parameters) per severity 1..5. Severity 5 is hard for a model trained on
# clean MNIST yet leaves every digit readable to a person (see viz.corruption_examples): fast_cnn after two
# epochs of natural training (97.6% clean on the first 2,000 test images) keeps 58% under gaussian_noise 5,
# 83% under sensor_noise 5, 76% under blur 5 and 27% under contrast 5.
SEVERITIES: dict[str, tuple] = {
    # σ of the additive Gaussian noise N(0, σ²), independent per pixel, in pixel units ([0,1] range)
    "gaussian_noise": (0.1, 0.2, 0.3, 0.4, 0.5),
    # (photons, read σ, dead/hot fraction): a pixel of brightness v reads Poisson(v·photons) / photons
    # (shot noise: fewer photons, noisier; black stays black), plus Gaussian read noise of σ = read σ;
    # then a fraction of the pixels is stuck, half at 0 (dead) and half at 1 (hot): salt and pepper
    "sensor_noise": ((40, 0.03, 0.01), (20, 0.05, 0.03), (10, 0.07, 0.05), (6, 0.09, 0.08), (4, 0.1, 0.12)),
    # σ of the Gaussian blur kernel, in pixels (the kernel spans ±3σ, cut to the image size)
    "blur": (0.7, 1.0, 1.3, 1.6, 2.0),
    # factor c: each image becomes m + c·(x − m), m its mean per channel (c = 1: unchanged, 0: flat grey)
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.12),
}


# --------------------------------------------------------------------------- checks


def _check_images(x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is a batch (N, C, H, W) of finite float images in [0,1]."""
    if torch.is_tensor(x) and x.dim() != 4:
        raise ValueError(f"x has shape {tuple(x.shape)}: corruptions take a batch (N, C, H, W) of images; for one "
                         "image (C, H, W) pass x.unsqueeze(0), for MNIST as (N, 28, 28) pass x.unsqueeze(1).")
    attacks.check_inputs(x)


def _check_severity(severity) -> None:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or severity not in LEVELS:
        raise ValueError(f"severity must be one of the integers {', '.join(map(str, LEVELS))}; got {severity!r}.")


def _check_name(name) -> None:
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}.")


def _level(name: str, x: torch.Tensor, severity: int):
    """Check ``x`` and ``severity``; the parameters of ``name`` at that severity."""
    _check_images(x)
    _check_severity(severity)
    return SEVERITIES[name][severity - 1]


def _normal(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


# --------------------------------------------------------------------------- the corruptions


def gaussian_noise(x: torch.Tensor, severity: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""Additive Gaussian noise :math:`x + \sigma z`, :math:`z \sim N(0, 1)` per pixel (ImageNet-C's
    ``gaussian_noise``), clamped to [0,1]; σ from :data:`SEVERITIES`."""
    sigma = _level("gaussian_noise", x, severity)
    return (x + sigma * _normal(x, generator)).clamp_(0, 1)


def sensor_noise(x: torch.Tensor, severity: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """What a cheap camera sensor does in the dark: Poisson shot noise at ``photons`` photons for a white
    pixel (ImageNet-C's ``shot_noise``), Gaussian read noise, then dead and hot pixels (salt and pepper,
    the ``impulse_noise`` of ImageNet-C and MNIST-C), clamped to [0,1]. The parameters
    ``(photons, read σ, dead/hot fraction)`` come from :data:`SEVERITIES`."""
    photons, read, stuck = _level("sensor_noise", x, severity)
    out = torch.poisson(x * photons, generator=generator) / photons + read * _normal(x, generator)
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    out = out.masked_fill_(u < stuck / 2, 0.0).masked_fill_(u > 1 - stuck / 2, 1.0)
    return out.clamp_(0, 1)


def blur(x: torch.Tensor, severity: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gaussian blur (ImageNet-C's ``gaussian_blur``) with ``torchvision.transforms.functional.gaussian_blur``
    (reflected borders, so a constant image stays constant); σ in pixels from :data:`SEVERITIES`, the
    kernel spans ±3σ, cut to what the image size allows. Deterministic: ``generator`` is not used."""
    sigma = _level("blur", x, severity)
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * min(x.shape[-2:]) - 1)  # reflection padding needs k // 2 < size
    return TF.gaussian_blur(x, [k, k], [sigma, sigma]).clamp_(0, 1)


def contrast(x: torch.Tensor, severity: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""Lower contrast (ImageNet-C's ``contrast``): :math:`m + c\,(x - m)`, ``m`` each image's mean per
    channel, so that mean is kept; ``c < 1`` from :data:`SEVERITIES`. Deterministic: ``generator`` is not
    used."""
    c = _level("contrast", x, severity)
    m = x.mean(dim=(-2, -1), keepdim=True)
    return (m + c * (x - m)).clamp_(0, 1)


Corruption = Callable[[torch.Tensor, int, Optional[torch.Generator]], torch.Tensor]

CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "sensor_noise": sensor_noise,
    "blur": blur,
    "contrast": contrast,
}


# --------------------------------------------------------------------------- seeded use and measurements


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``x`` under the corruption ``name`` (a key of :data:`CORRUPTIONS`) at ``severity`` (1 to 5), with its
    own generator seeded by ``seed``: the same seed gives the same output, and torch's global random
    number generator is neither used nor moved."""
    _check_name(name)
    return CORRUPTIONS[name](x, severity, utils.seeded_generator(seed, x.device))


def names_and_severities(names: Optional[Iterable[str]], severities: Iterable[int]) -> tuple[list, list]:
    """The corruption names and severities as lists, each checked (``ValueError`` listing the valid ones)
    before any work starts; ``names=None`` means every corruption, a single name is one."""
    names = list(CORRUPTIONS) if names is None else ([names] if isinstance(names, str) else list(names))
    severities = list(severities)
    if not names or not severities:
        raise ValueError(f"give at least one corruption (of {', '.join(CORRUPTIONS)}) and one severity "
                         f"(of {', '.join(map(str, LEVELS))}).")
    for name in names:
        _check_name(name)
    for s in severities:
        _check_severity(s)
    return names, severities


def accuracy_under_corruptions(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                               names: Optional[Sequence[str]] = None, severities: Sequence[int] = (1, 3, 5),
                               seed: int = 0, batch_size: int = 500, progress: bool = True) -> dict[str, dict]:
    """Accuracy of ``model`` on ``x`` under each corruption and severity: ``{name: {severity: accuracy}}``
    (``names=None``: every corruption of :data:`CORRUPTIONS`).

    Each severity uses the same ``seed`` (common random numbers: the accuracy curves of one corruption
    and of several models differ by the severity and the model, not by the draw). The model predicts in
    eval mode, batched; its train/eval mode is restored after."""
    names, severities = names_and_severities(names, severities)
    _check_images(x)
    attacks.check_inputs(x, y, model=model)
    utils.check_count("batch_size", batch_size)
    utils.seeded_generator(seed)  # checks the seed before any work
    out: dict[str, dict] = {}
    with utils.progress(total=len(names) * len(severities), enabled=progress, desc="corruptions") as bar:
        for name in names:
            out[name] = {}
            for s in severities:
                bar.set_postfix_str(f"{name} {s}")
                out[name][s] = evaluate.batched_accuracy(model, corrupt(x, name, s, seed), y, batch_size=batch_size)
                bar.update(1)
    return out


def linf_size(x: torch.Tensor, x_c: torch.Tensor) -> torch.Tensor:
    """Per image, the L-infinity distance :math:`\\max_i |x_{c,i} - x_i|` (a tensor of N values)."""
    return (x_c - x).flatten(1).abs().amax(1)


def l2_size(x: torch.Tensor, x_c: torch.Tensor) -> torch.Tensor:
    """Per image, the L2 distance :math:`\\|x_c - x\\|_2` (a tensor of N values)."""
    return (x_c - x).flatten(1).norm(dim=1)


def corruption_sizes(x: torch.Tensor, names: Optional[Sequence[str]] = None, severities: Sequence[int] = (1, 3, 5),
                     seed: int = 0) -> dict[str, dict[int, dict[str, float]]]:
    """How far each corruption moves the images: ``{name: {severity: {"linf": mean L∞, "l2": mean L2}}}``,
    means over the images of ``x``. Compare with an attack's budget: on MNIST an L∞ attack at ε = 0.3
    has L∞ size 0.3 and L2 size at most 0.3·√784 = 8.4."""
    names, severities = names_and_severities(names, severities)
    out: dict[str, dict] = {}
    for name in names:
        out[name] = {}
        for s in severities:
            x_c = corrupt(x, name, s, seed)
            out[name][s] = {"linf": linf_size(x, x_c).mean().item(), "l2": l2_size(x, x_c).mean().item()}
    return out
