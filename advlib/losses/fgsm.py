r"""FGSM-based adversarial training: the tutorial two-pass form, Goodfellow et al.'s adversarial
data augmentation, plain FGSM training, and fast adversarial training with a random start."""
import torch.nn.functional as F

from .. import attacks
from . import Context, register


@register("fgsm_two_pass", uses=("eps", "eps_ramp_epochs"))
def fgsm_two_pass(ctx: Context):
    """FGSM adversarial training as written in many tutorials: a clean forward/backward in
    training mode (its input gradient gives the FGSM example), then the loss on the FGSM example."""
    x_req = ctx.x.clone().requires_grad_(True)
    clean_loss = F.cross_entropy(ctx.model(x_req), ctx.y)
    clean_loss.backward()  # the parameter gradients this fills are discarded by the engine
    x_adv = (ctx.x + ctx.eps * x_req.grad.sign()).clamp(0, 1).detach()
    logits = ctx.model(x_adv)
    return F.cross_entropy(logits, ctx.y), logits


@register("fgsm_weighted", uses=("eps", "eps_ramp_epochs", "attack_mode"), params={"mix": 0.5},
          ranges={"mix": "[0, 1]"}, citation="Goodfellow et al., ICLR 2015")
def fgsm_weighted(ctx: Context):
    r"""Adversarial data augmentation (Goodfellow et al. 2015): :math:`(1-m)\,J(x) + m\,J(x_{FGSM})`
    with the mixing weight :math:`m` = ``params["mix"]`` (not α, the attack step; default 0.5, the paper's)."""
    x_adv = attacks.fgsm(ctx.model, ctx.x, ctx.y, ctx.eps, mode=ctx.cfg.attack_mode) if ctx.eps > 0 else ctx.x
    logits_clean = ctx.model(ctx.x)
    logits_adv = ctx.model(x_adv)
    mix = ctx.param("mix")
    loss = (1 - mix) * F.cross_entropy(logits_clean, ctx.y) + mix * F.cross_entropy(logits_adv, ctx.y)
    return loss, logits_adv


@register("fgsm", uses=("eps", "eps_ramp_epochs", "attack_mode"), citation="Goodfellow et al., ICLR 2015")
def fgsm(ctx: Context):
    """FGSM adversarial training without random start (prone to catastrophic overfitting)."""
    x_adv = attacks.fgsm(ctx.model, ctx.x, ctx.y, ctx.eps, mode=ctx.cfg.attack_mode) if ctx.eps > 0 else ctx.x
    logits = ctx.model(x_adv)
    return F.cross_entropy(logits, ctx.y), logits


@register("fgsm_rs", uses=("eps", "eps_ramp_epochs", "alpha", "attack_mode"), paper="FGSM",
          citation="Wong et al., ICLR 2020")
def fgsm_rs(ctx: Context):
    """Fast adversarial training (Wong et al. 2020): uniform random start, one signed step of
    alpha (default 1.25 eps), projected to the eps-ball and [0,1]."""
    x_adv = ctx.pgd(steps=1, alpha=ctx.step_size(1.25), random_start=True) if ctx.eps > 0 else ctx.x
    logits = ctx.model(x_adv)
    return F.cross_entropy(logits, ctx.y), logits
