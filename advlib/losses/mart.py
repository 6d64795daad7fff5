r"""MART (Wang et al. 2020)."""
import torch
import torch.nn.functional as F

from . import ATTACK_FIELDS, Context, register


@register("mart", uses=ATTACK_FIELDS, params={"beta": 6.0}, ranges={"beta": "[0, inf)"},
          citation="Wang et al., ICLR 2020")
def mart(ctx: Context):
    r"""MART (Wang et al. 2020): boosted CE on x' plus :math:`\beta\,KL(f(x)\|f(x'))` weighted by
    :math:`1 - p_y(x)` (misclassification-aware); x' from CE PGD started at x + 0.001·N(0, 1) with step
    0.25·ε unless ``cfg.alpha`` is set (MART ``mart.py`` l.20-29: the official code starts from a tiny
    Gaussian, not uniformly in the ball, and uses 10 steps of 0.007 at ε = 0.031); β = ``params["beta"]``
    (default 6, the official code's).

    Reductions as in the official code: the boosted CE is a batch mean; the KL is summed over classes,
    weighted per sample by :math:`1 - p_y(x)` and averaged over the batch (``mart.py`` l.54-55); neither
    the natural probabilities nor the weight is detached."""
    y = ctx.y
    x_adv = ctx.pgd(alpha=ctx.step_size(0.25), random_start="normal") if ctx.eps > 0 else ctx.x
    logits_clean, logits_adv = ctx.model(ctx.x), ctx.model(x_adv)
    p_adv = F.softmax(logits_adv, 1)
    top2 = p_adv.topk(2, 1).indices
    other = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), other)
    p_clean = F.softmax(logits_clean, 1)
    true_p = p_clean.gather(1, y[:, None]).squeeze(1)
    kl = (F.kl_div(torch.log(p_adv + 1e-12), p_clean, reduction="none").sum(1) * (1.0000001 - true_p)).mean()
    return bce + ctx.param("beta") * kl, logits_adv
