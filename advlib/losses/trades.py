r"""TRADES (Zhang et al. 2019)."""
import torch.nn.functional as F

from . import ATTACK_FIELDS, Context, register


@register("trades", uses=ATTACK_FIELDS, params={"beta": 6.0}, ranges={"beta": "[0, inf)"},
          paper="TRADES", citation="Zhang et al., ICML 2019")
def trades(ctx: Context):
    r"""TRADES (Zhang et al. 2019): :math:`CE(f(x), y) + \beta\,KL(f(x)\,\|\,f(x'))`, with x' from
    PGD on the KL term (started at x + 0.001·N(0, 1), step 0.25·ε unless ``cfg.alpha`` is set), β =
    ``params["beta"]`` (default 6, the paper's CIFAR-10 setting).

    As in the official code (yaodongyu/TRADES ``trades.py``): x' is crafted in ``cfg.attack_mode`` (the
    code: eval mode, l.28) from x + 0.001·N(0, 1) (l.31); the outer KL is summed and divided by the
    batch size (l.81-82, ``batchmean``), with gradients through both the clean and the adversarial
    prediction (nothing detached)."""
    logits_clean = ctx.model(ctx.x)
    if ctx.eps > 0:
        x_adv = ctx.pgd(alpha=ctx.step_size(0.25), random_start=True, loss="kl")
        logits_adv = ctx.model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")
    else:
        kl = logits_clean.new_zeros(())
    return F.cross_entropy(logits_clean, ctx.y) + ctx.param("beta") * kl, logits_clean
