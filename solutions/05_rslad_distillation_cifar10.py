"""Reference answers for the exercises of notebook 05_rslad_distillation_cifar10 (plain PyTorch, no advlib)."""
import torch
import torch.nn.functional as F


def rslad_loss(model, x, x_adv, teacher_probs):
    """Return (1/6) KL(teacher || student(x)) + (5/6) KL(teacher || student(x_adv)), means over batch x classes."""
    def kl(logits):  # the official element-wise terms, averaged over batch and classes
        return (teacher_probs * (torch.log(teacher_probs + 1e-5) - F.log_softmax(logits, dim=1))).mean()
    return kl(model(x)) / 6 + 5 * kl(model(x_adv)) / 6
