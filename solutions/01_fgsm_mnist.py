"""Reference answers for the exercises of notebook 01_fgsm_mnist (plain PyTorch, no advlib)."""
import torch
import torch.nn.functional as F


def my_fgsm(model, x, y, eps):
    """Return clip_[0,1](x + eps * sign(grad_x CE(model(x), y))), detached."""
    was_training = model.training
    model.eval()  # batch norm: use the running statistics, and do not update them
    x_req = x.clone().detach().requires_grad_(True)  # a copy: the caller's x stays untouched
    loss = F.cross_entropy(model(x_req), y)
    (grad,) = torch.autograd.grad(loss, x_req)  # gradient w.r.t. the input only: p.grad stays empty
    model.train(was_training)  # the caller's mode, in every submodule
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def robust_accuracy(model, x, y, attack):
    """Return the fraction of images still classified correctly after x_adv = attack(model, x, y)."""
    was_training = model.training
    model.eval()  # measure the model as it is deployed; batch norm keeps its running statistics
    x_adv = attack(model, x, y)  # outside no_grad: the attack needs gradients
    with torch.no_grad():
        pred = model(x_adv).argmax(dim=1)
    model.train(was_training)
    return (pred == y).float().mean().item()
