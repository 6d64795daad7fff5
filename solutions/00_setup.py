"""Reference answers for the exercises of notebook 00_setup (plain PyTorch, no advlib)."""
import torch


def project_linf(x_adv, x, eps):
    """Return the projection of x_adv onto {x' : |x' - x|_inf <= eps} ∩ [0,1]^d."""
    # Both constraints act on each pixel separately: clip to the ball around the clean x, then to [0, 1].
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)


def linf_distance(x_adv, x):
    """Return a tensor of shape (N,): max over pixels of |x_adv - x|, for each image."""
    return (x_adv - x).flatten(1).abs().amax(dim=1)
