"""Reference answers for the exercises of notebook 02_adversarial_training_mnist (plain PyTorch, no advlib)."""
import torch
import torch.nn.functional as F


def pgd_step(model, x_adv, x, y, eps, alpha):
    """Return proj_{S(x)}(x_adv + alpha * sign(grad CE at x_adv)), detached."""
    was_training = model.training
    model.eval()  # batch norm: use the running statistics, and do not update them
    x_req = x_adv.clone().detach().requires_grad_(True)  # the gradient is taken at the current iterate
    loss = F.cross_entropy(model(x_req), y)
    (grad,) = torch.autograd.grad(loss, x_req)
    model.train(was_training)
    x_next = x_adv.detach() + alpha * grad.sign()
    x_next = torch.min(torch.max(x_next, x - eps), x + eps)  # the ball around the *clean* x
    return x_next.clamp(0, 1).detach()


def _fgsm(model, x, y, eps):
    x_req = x.clone().detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
    return (x + eps * grad.sign()).clamp(0, 1).detach()  # detached: a fixed input for the training step


def weighted_fgsm_loss(model, x, y, eps, mix):
    """Return (1 - mix) * CE(model(x), y) + mix * CE(model(x_fgsm), y), a scalar tensor."""
    x_adv = _fgsm(model, x, y, eps)
    return (1 - mix) * F.cross_entropy(model(x), y) + mix * F.cross_entropy(model(x_adv), y)
