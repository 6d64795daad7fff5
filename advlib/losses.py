r"""Training objectives, one function each, plugged into :func:`advlib.train.fit`.

Every method has the signature ``method(model, x, y, eps, cfg) -> (loss, logits)`` where
``eps`` is the current (possibly ramped) training epsilon, ``cfg`` the
:class:`advlib.train.TrainConfig`, ``loss`` a scalar to minimise and ``logits`` the
model's output on the inputs it trained on (for the running training accuracy).
The engine zeroes parameter gradients after the method returns and before
``loss.backward()``, so a method may use backward passes of its own.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import attacks

Method = Callable[..., tuple[torch.Tensor, torch.Tensor]]
METHODS: dict[str, Method] = {}


def register(name: str):
    def deco(fn: Method) -> Method:
        METHODS[name] = fn
        return fn
    return deco


def _alpha(cfg, eps: float, default_ratio: float) -> float:
    """Attack step: cfg.alpha if set (scaled with a ramped eps), else default_ratio * eps."""
    if cfg.alpha is None:
        return default_ratio * eps
    return cfg.alpha * (eps / cfg.eps) if cfg.eps > 0 else cfg.alpha


@register("standard")
def standard(model, x, y, eps, cfg):
    """Plain empirical risk minimisation: cross-entropy on clean inputs."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@register("fgsm_two_pass")
def fgsm_two_pass(model, x, y, eps, cfg):
    """FGSM adversarial training as written in many tutorials: a clean forward/backward in
    training mode (its input gradient gives the FGSM example), then the loss on the FGSM example."""
    x_req = x.clone().requires_grad_(True)
    clean_loss = F.cross_entropy(model(x_req), y)
    clean_loss.backward()  # the parameter gradients this fills are discarded by the engine
    x_adv = (x + eps * x_req.grad.sign()).clamp(0, 1).detach()
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@register("fgsm_weighted")
def fgsm_weighted(model, x, y, eps, cfg):
    r"""Adversarial data augmentation (Goodfellow et al.): :math:`(1-\alpha)\,J(x) + \alpha\,J(x_{FGSM})`
    with :math:`\alpha` = ``cfg.mix``."""
    x_adv = attacks.fgsm(model, x, y, eps, mode=cfg.attack_mode) if eps > 0 else x
    logits_clean = model(x)
    logits_adv = model(x_adv)
    loss = (1 - cfg.mix) * F.cross_entropy(logits_clean, y) + cfg.mix * F.cross_entropy(logits_adv, y)
    return loss, logits_adv


@register("fgsm")
def fgsm(model, x, y, eps, cfg):
    """FGSM adversarial training without random start (prone to catastrophic overfitting)."""
    x_adv = attacks.fgsm(model, x, y, eps, mode=cfg.attack_mode) if eps > 0 else x
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@register("fgsm_rs")
def fgsm_rs(model, x, y, eps, cfg):
    """Fast adversarial training (Wong et al. 2020): uniform random start, one signed step of
    alpha (default 1.25 eps), projected to the eps-ball and [0,1]."""
    if eps > 0:
        x_adv = attacks.pgd(model, x, y, eps, _alpha(cfg, eps, 1.25), 1, random_start=True, mode=cfg.attack_mode)
    else:
        x_adv = x
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@register("pgd")
def pgd(model, x, y, eps, cfg):
    """PGD adversarial training (Madry et al. 2018): minimise the loss at the PGD example."""
    if eps > 0:
        x_adv = attacks.pgd(model, x, y, eps, _alpha(cfg, eps, 2.5 / cfg.steps), cfg.steps,
                            random_start=True, mode=cfg.attack_mode)
    else:
        x_adv = x
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


@register("trades")
def trades(model, x, y, eps, cfg):
    r"""TRADES (Zhang et al. 2019): :math:`CE(f(x), y) + \beta\,KL(f(x)\,\|\,f(x'))`, with x' from
    PGD on the KL term."""
    logits_clean = model(x)
    if eps > 0:
        x_adv = attacks.pgd(model, x, y, eps, _alpha(cfg, eps, 0.25), cfg.steps, random_start=True,
                            loss="kl", mode=cfg.attack_mode)
        logits_adv = model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")
    else:
        kl = logits_clean.new_zeros(())
    return F.cross_entropy(logits_clean, y) + cfg.beta * kl, logits_clean


@register("mart")
def mart(model, x, y, eps, cfg):
    r"""MART (Wang et al. 2020): boosted CE on x' plus :math:`\beta\,KL(f(x)\|f(x'))` weighted by
    :math:`1 - p_y(x)` (misclassification-aware)."""
    x_adv = attacks.pgd(model, x, y, eps, _alpha(cfg, eps, 0.25), cfg.steps, random_start=True,
                        mode=cfg.attack_mode) if eps > 0 else x
    logits_clean, logits_adv = model(x), model(x_adv)
    p_adv = F.softmax(logits_adv, 1)
    top2 = p_adv.topk(2, 1).indices
    other = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), other)
    p_clean = F.softmax(logits_clean, 1)
    true_p = p_clean.gather(1, y[:, None]).squeeze(1)
    kl = (F.kl_div(torch.log(p_adv + 1e-12), p_clean, reduction="none").sum(1) * (1.0000001 - true_p)).mean()
    return bce + cfg.beta * kl, logits_adv


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"Unknown training method {name!r}; choose one of {', '.join(METHODS)}.")
    return METHODS[name]
