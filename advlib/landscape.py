r"""Looking at the loss around an input: the pictures that give gradient masking away.

A model whose robustness comes from a broken gradient, not from a flat loss, shows it in two pictures
(Athalye, Carlini & Wagner 2018, "Obfuscated gradients give a false sense of security"; Engstrom, Ilyas
& Athalye 2018, "Evaluating and understanding the robustness of adversarial logit pairing"; the loss
surfaces of Wong, Rice & Kolter 2020, "Fast is better than free", and of Rice, Wong & Kolter 2020,
"Overfitting in adversarially robust deep learning"):

* :func:`loss_surface`: the cross-entropy on the plane spanned by the sign of the input gradient and a
  random ±1 direction, ε wide each way. A robust model's surface is smooth and low; a masked one is
  jagged, or flat along the gradient and high along the random direction (the gradient points nowhere).
* :func:`pgd_loss_trace`: the loss along the PGD iterates, restart by restart. On a robust model it
  climbs and levels off; on a masked one it stalls at the start or jumps between restarts.

Both are pure functions of the model and the images: the model runs in eval mode (its mode restored
after), no gradient is left on its parameters, and the randomness comes from a generator seeded by
``seed``, never from torch's global one.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks, utils

DIRECTIONS = ("gradient", "random")


def rademacher(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random direction of ±1 entries (Rademacher), the shape, dtype and device of ``like``."""
    return torch.randint(0, 2, like.shape, generator=gen, device=like.device).to(like.dtype).mul_(2).sub_(1)


@torch.no_grad()
def _grid_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, d1: torch.Tensor, d2: torch.Tensor,
               a: torch.Tensor, b: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Per-image cross-entropy at clamp(x + a_i·ε·d1 + b_j·ε·d2, 0, 1): (N, len(a), len(b)), at most
    ``batch_size`` points per forward pass."""
    ga, gb = torch.meshgrid(a, b, indexing="ij")
    coef = torch.stack([ga.flatten(), gb.flatten()], 1).to(x)  # (P, 2)
    out = torch.empty(len(x), len(coef), dtype=torch.float32)
    view = (-1, 1) + (1,) * (x.dim() - 1)
    for i in range(0, len(x), batch_size):
        xb, yb, d1b, d2b = x[i:i + batch_size], y[i:i + batch_size], d1[i:i + batch_size], d2[i:i + batch_size]
        per = max(1, batch_size // len(xb))  # grid points per forward pass
        for j in range(0, len(coef), per):
            c = coef[j:j + per]
            pts = xb + eps * (c[:, 0].view(view) * d1b + c[:, 1].view(view) * d2b)  # (k, n, C, H, W)
            logits = model(pts.clamp_(0, 1).flatten(0, 1))
            loss = F.cross_entropy(logits.float(), yb.repeat(len(c)), reduction="none")
            out[i:i + len(xb), j:j + len(c)] = loss.view(len(c), len(xb)).T.cpu()
    return out.view(len(x), len(a), len(b))


def loss_surface(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 21,
                 direction: str = "gradient", seed: int = 0, batch_size: int = 1000) -> dict:
    r"""Per-image cross-entropy on the plane :math:`x + a\,\varepsilon\,d_1 + b\,\varepsilon\,d_2`,
    :math:`a, b \in [-1, 1]` (``steps`` values each), every point clamped to [0,1].

    :math:`d_1` is the sign of the input gradient of the cross-entropy at ``x`` (``direction="gradient"``,
    the direction FGSM steps along) or a random ±1 direction (``"random"``); :math:`d_2` is a random ±1
    (Rademacher) direction, drawn first from a generator seeded by ``seed``, so it is the same for both
    directions and for every model given the same images. ``batch_size`` bounds the images per forward pass.

    Returns ``{"a", "b"}`` (the grid, 1-D), ``"loss"`` (N, steps, steps) with ``loss[n, i, j]`` at
    ``(a[i], b[j])``, the 1-D slices ``"along_d1"`` (N, steps: b = 0) and ``"along_d2"`` (N, steps: a = 0),
    ``"clean"`` (N: the loss at ``x``), ``"zero_gradient"`` (N: the fraction of input entries where the
    gradient is exactly 0, so ``d1`` is 0 there: on a model with masked gradients it is near 1 and the
    surface is flat along ``d1``), ``"eps"`` and ``"direction"``; tensors on the CPU.
    """
    model = attacks.unwrap(model)
    attacks.check_inputs(x, y, eps, model=model)
    utils.check_count("steps", steps, minimum=2)
    utils.check_count("batch_size", batch_size)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(map(repr, DIRECTIONS))}; got {direction!r}.")
    x = x.detach()
    gen = utils.seeded_generator(seed, x.device)
    d2 = rademacher(x, gen)
    with attacks.model_mode(model, "eval"), attacks.frozen(model):
        if direction == "gradient":
            g, _, _ = attacks.input_gradient(model, x, y)
            d1 = g.sign()
        else:
            d1 = rademacher(x, gen)
        grid = (2 * torch.arange(steps) - (steps - 1)) / (steps - 1)  # -1 to 1, symmetric, 0 exact for odd steps
        zero = torch.zeros(1)
        loss = _grid_loss(model, x, y, eps, d1, d2, grid, grid, batch_size)
        along_d1 = _grid_loss(model, x, y, eps, d1, d2, grid, zero, batch_size)[:, :, 0]
        along_d2 = _grid_loss(model, x, y, eps, d1, d2, zero, grid, batch_size)[:, 0, :]
        clean = _grid_loss(model, x, y, eps, d1, d2, zero, zero, batch_size)[:, 0, 0]
    return {"a": grid, "b": grid.clone(), "loss": loss, "along_d1": along_d1, "along_d2": along_d2, "clean": clean,
            "zero_gradient": (d1 == 0).flatten(1).float().mean(1).cpu(), "eps": float(eps), "direction": direction}


def pgd_loss_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
                   restarts: int = 1, seed: int = 0, *, mode: str = "eval", return_iterates: bool = False) -> dict:
    r"""The cross-entropy of every image at every iterate of PGD (Madry et al. 2018), restart by restart.

    The algorithm of :func:`advlib.attacks.pgd` with a uniform random start in the ε-ball and the
    cross-entropy: :math:`x \leftarrow \Pi(x + \alpha\,\mathrm{sign}(\nabla_x J))` with its own
    :func:`~advlib.attacks.input_gradient` and :func:`~advlib.attacks.project`; the random starts come from a
    generator seeded by ``seed`` (on the CPU, the numbers ``attacks.pgd`` draws after
    ``torch.manual_seed(seed)``, so one restart reproduces it).

    Returns ``{"loss"}`` (restarts, steps + 1, N), the start included; ``"correct"`` (restarts, N, bool):
    whether the model still classifies each restart's last iterate correctly; ``"eps"``, ``"alpha"``; and
    with ``return_iterates=True`` ``"iterates"`` (restarts, steps + 1, N, C, H, W) on the CPU (memory:
    that many copies of ``x``). ``mode`` as in :func:`advlib.attacks.pgd`.
    """
    model = attacks.unwrap(model)
    attacks.check_inputs(x, y, eps, alpha, steps, model=model)
    utils.check_count("restarts", restarts)
    x = x.detach()
    gen = utils.seeded_generator(seed, x.device)
    loss = torch.empty(restarts, steps + 1, len(x))
    correct = torch.empty(restarts, len(x), dtype=torch.bool)
    iterates = [] if return_iterates else None
    with attacks.model_mode(model, mode), attacks.frozen(model):
        for r in range(restarts):
            x_adv = attacks.project(x + torch.empty_like(x).uniform_(-eps, eps, generator=gen), x, eps)
            for k in range(steps + 1):
                if iterates is not None:
                    iterates.append(x_adv.cpu())
                if k == steps:  # the last iterate only needs its loss and prediction
                    with torch.no_grad():
                        logits = model(x_adv)
                    loss[r, k] = F.cross_entropy(logits, y, reduction="none").cpu()
                    correct[r] = (logits.argmax(1) == y).cpu()
                    break
                g, per, _ = attacks.input_gradient(model, x_adv, y)
                loss[r, k] = per.cpu()
                x_adv = attacks.project(x_adv + alpha * g.sign(), x, eps)
    out = {"loss": loss, "correct": correct, "eps": float(eps), "alpha": float(alpha)}
    if iterates is not None:
        out["iterates"] = torch.stack(iterates).view(restarts, steps + 1, *x.shape)
    return out
