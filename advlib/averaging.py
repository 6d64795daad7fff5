"""Weight averaging: an exponential moving average (EMA) of a model's weights during training.

Robust training gains several points of robustness from evaluating an average of the weights of the
last few thousand steps instead of the last weights (Gowal et al. 2020, "Uncovering the limits of
adversarial training", §4.4; Rebuffi et al. 2021, "Fixing data augmentation to improve adversarial
robustness": decay 0.999 for long runs). The average is taken with PyTorch's own
:class:`torch.optim.swa_utils.AveragedModel`; this module only chooses its decay:

.. math::  \\bar\\theta \\leftarrow d_n\\,\\bar\\theta + (1 - d_n)\\,\\theta, \\qquad
           d_n = \\min\\Big(d,\\ \\frac{1 + n}{10 + n}\\Big)

after ``n`` updates (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``): early on, when
the weights move fast, the average follows them closely, and it settles at the target decay ``d``
after about ``10 / (1 - d)`` steps. Before ``TrainConfig.ema_warmup_epochs`` the average is a plain
copy of the weights (its first steps are not worth remembering).

The batch-norm statistics are averaged the same way (``use_buffers=True``), so the averaged model
carries running statistics of its own instead of borrowing the raw model's; integer buffers (a
batch-norm layer's step counter) are copied. Every rank of a ``torchrun`` run holds the same raw
weights after each step (DistributedDataParallel) and so computes the same average.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel


def decay_at(decay: float, n_averaged: int) -> float:
    """The decay of the ``n_averaged + 1``-th update towards the target ``decay`` (see the module docstring)."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"the averaging decay must be in [0, 1) (0.995-0.999 in the papers); got {decay!r}")
    return min(decay, (1.0 + n_averaged) / (10.0 + n_averaged))


def averaged(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA of ``model``'s weights and batch-norm statistics with target ``decay`` (``.module`` is the
    averaged network; ``.update_parameters(model)`` after every optimiser step)."""
    decay_at(decay, 0)  # checks the value now

    def avg_fn(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        if not avg.is_floating_point():  # a batch-norm step counter: no average of it makes sense
            return new
        d = decay_at(decay, int(n))
        return avg * d + new * (1.0 - d)

    ema = AveragedModel(model, avg_fn=avg_fn, use_buffers=True)
    ema.module.eval()
    return ema


def restart(ema: AveragedModel) -> None:
    """Make the next update a copy of the weights (during the warm-up)."""
    ema.n_averaged.zero_()


def state(ema: AveragedModel) -> dict:
    """What a checkpoint keeps of the average: the averaged network's weights and the update count."""
    return {"weights": ema.module.state_dict(), "updates": int(ema.n_averaged)}


def load(ema: AveragedModel, saved: dict) -> None:
    ema.module.load_state_dict(saved["weights"])
    ema.n_averaged.fill_(int(saved["updates"]))
