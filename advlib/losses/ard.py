r"""ARD, Adversarially Robust Distillation (Goldblum et al., AAAI 2020)."""
import torch.nn.functional as F

from . import ATTACK_FIELDS, Context, register


@register("ard", uses=ATTACK_FIELDS, params={"tau": 30.0, "kd_weight": 1.0}, teacher=True,
          paper="ARD", citation="Goldblum et al., AAAI 2020")
def ard(ctx: Context):
    r"""ARD (Goldblum et al. 2020): :math:`(1-w)\,CE(S(x), y) + w\,\tau^2\,KL(S^\tau(x')\,\|\,T^\tau(x))`, with
    x' from cross-entropy PGD on the student (uniform start in the ε-ball) and the teacher on the clean x.

    As in the official code (goldblum/AdversariallyRobustDistillation ``main.py``): τ = 30 and w = 1
    (``--temp``, ``--alpha``, l.23 and l.26: pure distillation, the hard labels unused); the KL is
    ``nn.KLDivLoss()`` with its default reduction (l.113, l.127), the mean over batch × classes; the
    attack (``AttackPGD``, l.68-79) sums the cross-entropy, starts uniformly in the ball and runs while
    the student is in training mode (``net.train()``, l.118): set ``attack_mode="train"`` for that
    (the course's cpu recipe does). ``kd_weight`` is the paper's α, renamed because α is the attack step."""
    tau, w = ctx.param("tau"), ctx.param("kd_weight")
    x_adv = ctx.pgd(random_start="uniform") if ctx.eps > 0 else ctx.x
    logits_adv = ctx.model(x_adv)
    soft = ctx.teacher.probs(ctx.x, tau)
    # nn.KLDivLoss() of 2020 ("mean"): summed, divided by batch x classes
    loss = w * tau ** 2 * F.kl_div(F.log_softmax(logits_adv / tau, 1), soft, reduction="sum") / soft.numel()
    if w < 1:
        loss = loss + (1 - w) * F.cross_entropy(ctx.model(ctx.x), ctx.y)
    return loss, logits_adv
