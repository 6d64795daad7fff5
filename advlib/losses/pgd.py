"""PGD adversarial training (Madry et al. 2018)."""
import torch.nn.functional as F

from . import ATTACK_FIELDS, Context, register


@register("pgd", uses=ATTACK_FIELDS, paper="SAT", citation="Madry et al., ICLR 2018")
def pgd(ctx: Context):
    """PGD adversarial training (Madry et al. 2018): minimise the cross-entropy at the PGD example
    (uniform random start, ``cfg.steps`` steps of 2.5·ε/steps unless ``cfg.alpha`` is set)."""
    x_adv = ctx.pgd(random_start=True) if ctx.eps > 0 else ctx.x
    logits = ctx.model(x_adv)
    return F.cross_entropy(logits, ctx.y), logits
