r"""RSLAD, Robust Soft Label Adversarial Distillation (Zi et al., ICCV 2021)."""
import torch
import torch.nn.functional as F

from . import ATTACK_FIELDS, Context, register


def soft_kl(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    r"""RSLAD's outer KL(soft ‖ softmax(logits)) *averaged over batch × classes* (the official
    ``kl_loss`` followed by ``torch.mean``, resnet18_rslad_cifar10.py l.38-40, l.59-62: the usual batch
    mean divided by the number of classes, kept on purpose), with its 1e-5 inside the logarithm."""
    return (soft * (torch.log(soft + 1e-5) - F.log_softmax(logits, 1))).mean()


@register("rslad", uses=ATTACK_FIELDS, params={"adv_weight": 5 / 6}, teacher=True,
          paper="RSLAD", citation="Zi et al., ICCV 2021")
def rslad(ctx: Context):
    r"""RSLAD (Zi et al. 2021): :math:`(1-w)\,KL(S(x)\,\|\,T(x)) + w\,KL(S(x')\,\|\,T(x))`, w = 5/6, where x'
    maximises the summed :math:`KL(S(x')\,\|\,T(x))` from x + 0.001·N(0, 1). No hard label anywhere; the
    teacher sees only clean images (its soft labels are the "robust soft labels").

    As in the official code (zibojia/RSLAD): ``rslad_loss.py`` l.36-51 (KL summed over the batch as the
    inner objective, start x + 0.001·N(0, 1), student in eval mode while crafting: ``attack_mode="eval"``),
    ``resnet18_rslad_cifar10.py`` l.53-63 (teacher logits on the clean batch without gradient, loss
    5/6·KL(adv) + 1/6·KL(nat), each averaged over batch × classes: :func:`soft_kl`)."""
    w = ctx.param("adv_weight")
    soft = ctx.teacher.probs(ctx.x)
    x_adv = ctx.pgd(loss="kl", target=soft, random_start="normal") if ctx.eps > 0 else ctx.x
    logits_nat, logits_adv = ctx.model(ctx.x), ctx.model(x_adv)
    return (1 - w) * soft_kl(logits_nat, soft) + w * soft_kl(logits_adv, soft), logits_adv
