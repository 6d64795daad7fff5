r"""L-infinity attacks on inputs in [0,1].

Each attack is one plain function ``attack(model, x, y, eps, ...) -> x_adv`` with

* :math:`\|x_{adv} - x\|_\infty \le \varepsilon` and :math:`x_{adv} \in [0,1]`,
* no gradient left on the model's parameters, and the model's train/eval mode restored,
* a ``ValueError`` that says what to fix for bad arguments.

By default the model runs in eval mode during the attack (``mode="eval"``), as in
torchattacks and the TRADES code; ``mode="train"`` keeps batch-norm in training mode,
as fast_adversarial's training loop does.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSSES = ("ce", "cw", "kl")


# --------------------------------------------------------------------------- checks


def check_inputs(x: torch.Tensor, y: Optional[torch.Tensor] = None, eps: Optional[float] = None,
                 alpha: Optional[float] = None, steps: Optional[int] = None, tol: float = 1e-6) -> None:
    """Raise ``ValueError`` with a hint for arguments an attack cannot work with."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor of images in [0,1] (divide uint8 images by 255).")
    if x.numel() and (x.min().item() < -tol or x.max().item() > 1 + tol):
        raise ValueError(f"inputs must lie in [0,1]; got min {x.min().item():.3g}, max {x.max().item():.3g}. "
                         "Pass un-normalised images and put any normalisation inside the model "
                         "(advlib.models.get_model(..., normalize=True)).")
    if y is not None:
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must be a 1-D tensor with one label per image; got x {tuple(x.shape)} "
                             f"and y {tuple(y.shape)}.")
    if eps is not None and not (0.0 <= float(eps) <= 1.0):
        raise ValueError(f"eps must be in [0, 1] for images in [0,1]; got {eps}. "
                         "For eps given in pixel levels write e.g. 8/255.")
    if alpha is not None and not float(alpha) > 0:
        raise ValueError(f"step size alpha must be > 0; got {alpha}.")
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be an integer >= 1; got {steps}.")


@contextlib.contextmanager
def model_mode(model: nn.Module, mode: str = "eval"):
    """Run ``model`` in ``mode`` ('eval', 'train' or 'keep') and restore every module's mode after."""
    if mode not in ("eval", "train", "keep"):
        raise ValueError(f"model_mode must be 'eval', 'train' or 'keep'; got {mode!r}")
    saved = [(m, m.training) for m in model.modules()]
    if mode != "keep":
        model.train(mode == "train")
    try:
        yield model
    finally:
        for m, t in saved:
            m.training = t


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Temporarily stop tracking parameter gradients: attacks only need d loss / d x."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


# --------------------------------------------------------------------------- losses to maximise


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CW margin per sample: max_{j != y} z_j - z_y (positive when misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def attack_loss(kind: str, logits: torch.Tensor, y: torch.Tensor,
                clean_prob: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-sample loss the attacker maximises."""
    if kind == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if kind == "cw":
        return margin(logits, y)
    if kind == "kl":
        return F.kl_div(F.log_softmax(logits, 1), clean_prob, reduction="none").sum(1)
    raise ValueError(f"loss must be one of {LOSSES}; got {kind!r}")


def _channels_last(model: nn.Module) -> bool:
    """Image batches in channels-last layout let oneDNN skip layout reorders in every convolution
    (about 1.2-1.4x faster PGD steps for CIFAR conv nets on a CPU; the values are identical)."""
    return any(isinstance(m, nn.Conv2d) and m.in_channels > 1 for m in model.modules())


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce",
                   clean_prob: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gradient of the summed loss w.r.t. x, per-sample loss, logits), one forward and backward."""
    x = x.detach()
    if x.dim() == 4 and _channels_last(model):
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.requires_grad_(True)
    logits = model(x)
    per = attack_loss(loss, logits, y, clean_prob)
    (g,) = torch.autograd.grad(per.sum(), x)
    return g, per.detach(), logits.detach()


# --------------------------------------------------------------------------- attacks


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, mode: str = "eval",
         loss: str = "ce") -> torch.Tensor:
    r"""Fast Gradient Sign Method: :math:`x + \varepsilon\,\mathrm{sign}(\nabla_x J)`, clamped to [0,1]."""
    check_inputs(x, y, eps)
    if eps == 0:
        return x.detach().clone()
    with model_mode(model, mode), frozen(model):
        clean_prob = _clean_prob(model, x) if loss == "kl" else None
        g, _, _ = input_gradient(model, x, y, loss, clean_prob)
    return (x + eps * g.sign()).clamp_(0, 1).detach()


def _clean_prob(model, x):
    with torch.no_grad():
        return F.softmax(model(x), 1)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project onto the intersection of the eps-ball around x and the [0,1] box."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
        random_start: bool = True, restarts: int = 1, loss: str = "ce", *, mode: str = "eval",
        callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
    r"""Projected gradient descent (Madry et al.), L-infinity.

    Each step :math:`x \leftarrow \Pi_{B_\varepsilon(x_0)\cap[0,1]^d}(x + \alpha\,\mathrm{sign}(\nabla_x J))`.
    ``loss``: ``"ce"`` cross-entropy, ``"cw"`` the CW margin (for the CW-infinity column),
    ``"kl"`` TRADES' KL divergence from the model's clean prediction (its random start is
    TRADES' ``0.001 * N(0, 1)``; the others start uniformly in the eps-ball).
    With ``restarts > 1``, each sample keeps the restart that fooled the model, or failing
    that the one with the highest loss. ``callback(step, x_adv)`` sees every iterate.
    """
    check_inputs(x, y, eps, alpha, steps)
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1; got {restarts}.")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    with model_mode(model, mode), frozen(model):
        clean_prob = _clean_prob(model, x) if loss == "kl" else None
        best, best_fooled, best_loss = x.clone(), None, None
        for _ in range(restarts):
            if random_start:
                noise = (0.001 * torch.randn_like(x) if loss == "kl"
                         else torch.empty_like(x).uniform_(-eps, eps))
                x_adv = _project(x + noise, x, eps)
            else:
                x_adv = x.clone()
            for step in range(steps):
                g, _, _ = input_gradient(model, x_adv, y, loss, clean_prob)
                x_adv = _project(x_adv + alpha * g.sign(), x, eps)
                if callback is not None:
                    callback(step, x_adv)
            if restarts == 1:
                return x_adv
            with torch.no_grad():
                logits = model(x_adv)
                fooled = logits.argmax(1) != y
                per = attack_loss(loss, logits, y, clean_prob)
            if best_fooled is None:
                best, best_fooled, best_loss = x_adv, fooled, per
            else:
                better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (per > best_loss))
                best = torch.where(better.view(-1, *[1] * (x.dim() - 1)), x_adv, best)
                best_fooled, best_loss = best_fooled | fooled, torch.where(better, per, best_loss)
    return best


def random_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, sign: bool = True,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random L-infinity noise of the same size as an attack: ``eps * sign(uniform)`` (a corner of
    the ball, like FGSM) or uniform in the ball. A baseline that shows worst-case noise is special."""
    check_inputs(x, y, eps)
    u = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1
    return (x + eps * (u.sign() if sign else u)).clamp(0, 1)


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, version: str = "standard",
               n_classes: int = 10, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """AutoAttack (Croce & Hein 2020) through torchattacks' implementation (APGD-CE, APGD-T, FAB-T, Square)."""
    import torchattacks

    check_inputs(x, y, eps)
    if eps == 0:
        return x.detach().clone()
    with model_mode(model, "eval"):
        atk = torchattacks.AutoAttack(model, norm="Linf", eps=float(eps), version=version,
                                      n_classes=n_classes, seed=seed)
        out = [atk(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out).detach()


def eps_ok(x_adv: torch.Tensor, x: torch.Tensor, eps: float, tol: float = 1e-6) -> bool:
    """True if x_adv is in the eps-ball around x and in [0,1]."""
    return bool((x_adv - x).abs().max() <= eps + tol and x_adv.min() >= 0 and x_adv.max() <= 1)
