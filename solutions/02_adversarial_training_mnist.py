"""Reference answers for the exercises of notebook 02_adversarial_training_mnist (plain PyTorch, no advlib)."""
import torch
import torch.nn.functional as F


def two_pass_step(model, optimizer, x, y, eps):
    """One step of FGSM adversarial training, two-pass form; return the adversarial loss as a float."""
    # (1) clean pass, in training mode: its backward gives the input gradient (and fills p.grad too)
    x_req = x.clone().detach().requires_grad_(True)  # a copy: the caller's x stays untouched
    F.cross_entropy(model(x_req), y).backward()
    # (2) the FGSM example, a fixed input for the training step
    x_adv = (x + eps * x_req.grad.sign()).clamp(0, 1).detach()
    # (3) backward() adds into p.grad: drop the clean pass's (and any earlier step's) parameter gradients
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x_adv), y)
    loss.backward()
    optimizer.step()
    return loss.item()  # a number to log, not a tensor holding the graph


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
