"""Reference answers for the exercises of notebook 05_rslad_distillation_cifar10 (plain PyTorch, no advlib)."""
import torch
import torch.nn.functional as F


def rslad_loss(model, x, x_adv, teacher_probs):
    """Return (1/6) KL(teacher || student(x)) + (5/6) KL(teacher || student(x_adv)), means over batch x classes."""
    def kl(logits):  # the official element-wise terms, averaged over batch and classes
        return (teacher_probs * (torch.log(teacher_probs + 1e-5) - F.log_softmax(logits, dim=1))).mean()
    return kl(model(x)) / 6 + 5 * kl(model(x_adv)) / 6


def adaad_step(model, teacher, x_adv, x, eps, alpha):
    """Return proj_B(x)(x_adv + alpha * sign(grad of sum KL(teacher(x_adv) || model(x_adv)))), detached."""
    was_training = model.training
    model.eval()  # the teacher comes in evaluation mode and stays there
    x_req = x_adv.clone().detach().requires_grad_(True)
    # both networks on the same iterate: the gradient flows through the student and the teacher
    kl = F.kl_div(F.log_softmax(model(x_req), dim=1), F.softmax(teacher(x_req), dim=1), reduction="sum")
    (grad,) = torch.autograd.grad(kl, x_req)  # the input gradient only: no p.grad filled, the teacher's included
    model.train(was_training)
    x_next = x_adv + alpha * grad.sign()
    x_next = torch.min(torch.max(x_next, x - eps), x + eps).clamp(0, 1)
    return x_next.detach()
