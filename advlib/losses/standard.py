"""Standard training: empirical risk minimisation on clean inputs."""
import torch.nn.functional as F

from . import Context, register


@register("standard", paper="Natural")
def standard(ctx: Context):
    """Plain empirical risk minimisation: cross-entropy on clean inputs."""
    logits = ctx.model(ctx.x)
    return F.cross_entropy(logits, ctx.y), logits
