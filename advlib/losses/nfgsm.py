r"""N-FGSM (de Jorge et al., NeurIPS 2022): noise-augmented single-step adversarial training."""
import torch
import torch.nn.functional as F

from .. import attacks
from . import Context, register


@register("n_fgsm", uses=("eps", "eps_ramp_epochs", "alpha", "attack_mode"), params={"noise": 2.0},
          citation="de Jorge et al., NeurIPS 2022")
def n_fgsm(ctx: Context):
    r"""N-FGSM (de Jorge et al. 2022, "Make some noise"): start at :math:`x + \eta`,
    :math:`\eta \sim U[-k\varepsilon, k\varepsilon]` with :math:`k` = ``params["noise"]`` (default 2),
    take one signed step of ``alpha`` (default ε) and do **not** project back to the ε-ball (only to
    [0,1]): the training perturbation is larger than ε, which prevents catastrophic overfitting without
    a second step. Evaluation still uses the ε-ball."""
    if ctx.eps <= 0:
        logits = ctx.model(ctx.x)
        return F.cross_entropy(logits, ctx.y), logits
    k = ctx.param("noise")
    alpha = ctx.step_size(1.0)
    x_noisy = (ctx.x + torch.empty_like(ctx.x).uniform_(-k * ctx.eps, k * ctx.eps)).clamp(0, 1)
    x_adv = attacks.fgsm(ctx.model, x_noisy, ctx.y, alpha, mode=ctx.cfg.attack_mode)
    logits = ctx.model(x_adv)
    return F.cross_entropy(logits, ctx.y), logits
