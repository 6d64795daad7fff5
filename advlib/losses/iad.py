r"""IAD, Introspective Adversarial Distillation (Zhu et al., ICLR 2022), the IAD-I variant."""
import torch
import torch.nn.functional as F

from . import ATTACK_FIELDS, Context, register


@register("iad", uses=ATTACK_FIELDS, params={"tau": 1.0, "kd_weight": 1.0, "trust_power": 0.1, "begin_epochs": 60.0},
          teacher=True, paper="IAD", citation="Zhu et al., ICLR 2022")
def iad(ctx: Context):
    r"""IAD-I (Zhu et al. 2022): distil towards the teacher, and, where the teacher is not to be trusted on the
    adversarial input, towards the student's own clean output. With :math:`a = T(x')_y^{\beta}` (the teacher's
    probability of the true class on x', to the power β = ``trust_power``, no gradient):

    .. math:: \tau^2\,KL(S^\tau(x')\,\|\,T^\tau(x)) + (1 - a)\,KL(S(x')\,\|\,S(x))

    each KL summed over classes and averaged over the batch; before ``begin_epochs`` only the first term.
    x' from cross-entropy PGD on the student (uniform start).

    As in the official code (ZFancy/IAD ``IAD-I.py``): τ = 1, β = 0.1, ``begin`` = 60 of 200 epochs
    (l.26, l.34-35); the first term is *not* weighted by a, the second by 1 − a (l.173-179), and the
    student's clean output there is not detached (l.179); the attack runs with the student in training
    mode (l.159, ``AttackPGD`` l.95-106; set ``attack_mode="train"``). ``kd_weight`` (the code's
    ``--alpha``, 1 by default) mixes in (1 − w)·CE(S(x), y)."""
    tau, w = ctx.param("tau"), ctx.param("kd_weight")
    x_adv = ctx.pgd(random_start="uniform") if ctx.eps > 0 else ctx.x
    logits_adv = ctx.model(x_adv)
    soft = ctx.teacher.probs(ctx.x, tau)
    log_s = F.log_softmax(logits_adv / tau, 1)
    loss = w * tau ** 2 * F.kl_div(log_s, soft, reduction="batchmean")
    logits_clean = None
    if ctx.epoch >= ctx.param("begin_epochs"):
        with torch.no_grad():  # the teacher on the student's adversarial example: never the same twice
            trust = ctx.teacher.probs(x_adv, cached=False).gather(1, ctx.y[:, None]).squeeze(1) ** ctx.param("trust_power")
        logits_clean = ctx.model(ctx.x)
        self_kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="none").sum(1)
        loss = loss + w * (self_kl * (1 - trust)).mean()
    if w < 1:
        logits_clean = ctx.model(ctx.x) if logits_clean is None else logits_clean
        loss = loss + (1 - w) * F.cross_entropy(logits_clean, ctx.y)
    return loss, logits_adv
