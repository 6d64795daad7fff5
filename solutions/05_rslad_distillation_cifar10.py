"""Reference answers for the exercises of notebook 05_rslad_distillation_cifar10 (plain PyTorch, no advlib)."""
import torch
import torch.nn.functional as F


def rslad_loss(model, x, x_adv, teacher_probs):
    """Return (1/6) KL(teacher || student(x)) + (5/6) KL(teacher || student(x_adv)), means over batch x classes."""
    def kl(logits):  # the official element-wise terms, averaged over batch and classes
        return (teacher_probs * (torch.log(teacher_probs + 1e-5) - F.log_softmax(logits, dim=1))).mean()
    return kl(model(x)) / 6 + 5 * kl(model(x_adv)) / 6


def ard_loss(model, x, x_adv, y, teacher_logits, tau, kd_weight):
    """Return kd_weight * tau^2 * KL(softmax(T/tau) || softmax(S(x_adv)/tau)) (mean over batch x classes) + (1 - kd_weight) * CE(S(x), y)."""
    soft = F.softmax(teacher_logits / tau, dim=1)  # the teacher's soft labels on the clean x
    log_student = F.log_softmax(model(x_adv) / tau, dim=1)  # the student on the adversarial example, same temperature
    # nn.KLDivLoss() of 2020 (ARD's): the element-wise terms summed and divided by batch x classes
    kl = F.kl_div(log_student, soft, reduction="sum") / soft.numel()
    return kd_weight * tau ** 2 * kl + (1 - kd_weight) * F.cross_entropy(model(x), y)


def iad_loss(model, x, x_adv, y, teacher_logits, teacher_adv_logits, tau, beta):
    """Return tau^2 * KL(T^tau(x) || S^tau(x_adv)) + mean over the batch of (1 - a) * KL(S(x) || S(x_adv)), a = p_y(T(x_adv))^beta."""
    logits_adv = model(x_adv)
    distil = tau ** 2 * F.kl_div(F.log_softmax(logits_adv / tau, dim=1), F.softmax(teacher_logits / tau, dim=1),
                                 reduction="batchmean")
    # the trust in the teacher on x_adv: its probability of the true class, at temperature 1, to the power beta
    trust = F.softmax(teacher_adv_logits, dim=1).gather(1, y.unsqueeze(1)).squeeze(1).detach() ** beta
    # introspection: the student's own clean prediction as the target (not detached, as in the IAD code)
    self_kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(model(x), dim=1), reduction="none").sum(dim=1)
    return distil + (self_kl * (1 - trust)).mean()


def rslad_attack(model, x, teacher_probs, eps, alpha, steps, noise):
    """Return RSLAD's x_adv: start at proj(x + 0.001 * noise), then `steps` signed-gradient steps on the summed KL(teacher || student), each projected."""
    def project(v):  # the eps-ball around the clean x, then the image range
        return torch.min(torch.max(v, x - eps), x + eps).clamp(0, 1)

    was_training = model.training
    model.eval()  # RSLAD crafts its examples with the student in evaluation mode
    x_adv = project(x + 0.001 * noise)  # a tiny Gaussian start, as in the RSLAD (and TRADES) code
    for _ in range(steps):
        x_req = x_adv.clone().detach().requires_grad_(True)
        # the KL from the teacher's soft labels, summed over the batch: no hard label anywhere
        loss = F.kl_div(F.log_softmax(model(x_req), dim=1), teacher_probs, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_req)
        x_adv = project(x_adv + alpha * grad.sign())
    model.train(was_training)
    return x_adv.detach()


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
