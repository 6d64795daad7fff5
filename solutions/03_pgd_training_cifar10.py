"""Reference answers for the exercises of notebook 03_pgd_training_cifar10 (plain PyTorch, no advlib)."""
import math

import torch
import torch.nn.functional as F


def _project(x_adv, x, eps):
    """Clip each pixel to [x - eps, x + eps] around the clean x, then to [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)


def pgd_attack(model, x, y, eps, alpha, steps, noise):
    """Return PGD's x_adv: start at proj(x + eps * noise), then `steps` steps of alpha * sign(grad CE), each projected."""
    was_training = model.training
    model.eval()  # batch norm: use the running statistics, and do not update them
    x_adv = _project(x + eps * noise, x, eps)  # the uniform random start, inside the image range too
    for _ in range(steps):
        x_req = x_adv.clone().detach().requires_grad_(True)  # the gradient at the current iterate
        loss = F.cross_entropy(model(x_req), y)
        (grad,) = torch.autograd.grad(loss, x_req)  # the input gradient only: p.grad stays empty
        x_adv = _project(x_adv + alpha * grad.sign(), x, eps)  # always around the *clean* x
    model.train(was_training)  # the caller's mode, in every submodule
    return x_adv.detach()


def _wilson(correct, n, z=1.96):
    """The 95% Wilson score interval of correct / n."""
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def choose_checkpoint(history, n):
    """Return {"best_epoch": e, "report": "best" or "last"} for a history of per-epoch dicts measured on n images."""
    robust = [row["holdout_pgd"] for row in history]  # the robust held-out accuracy, not the clean one
    i = robust.index(max(robust))  # the first epoch of the highest accuracy, as the engine keeps it
    low, _ = _wilson(round(robust[i] * n), n)  # round: the accuracy is a count of images over n
    # the best checkpoint is worth reporting only if the last epoch fell beyond the monitor's noise
    return {"best_epoch": history[i]["epoch"], "report": "best" if robust[-1] < low else "last"}
