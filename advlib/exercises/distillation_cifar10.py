"""Exercises of notebook 05_rslad_distillation_cifar10: the RSLAD objective.

A loss for a given adversarial example and given teacher soft labels, checked on the tiny fixed network
of :mod:`.harness` (MNIST-sized inputs: a loss does not care about the data set)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses.rslad import soft_kl
from .cells import Exercise
from .harness import check_loss, exercise, images, labels

__all__ = ["check_rslad_loss", "NOTEBOOK", "EXERCISES"]


def _rslad_cases() -> list[dict]:
    x = images(4, seed=21)
    g = torch.Generator().manual_seed(22)
    x_adv = (x + 0.3 * (torch.rand(x.shape, generator=g) * 2 - 1).sign()).clamp(0, 1)
    teacher_logits = 3 * torch.randn(4, 10, generator=g)
    return [dict(x=x, x_adv=x_adv, teacher_probs=F.softmax(teacher_logits, 1)),
            dict(x=x, x_adv=x_adv, teacher_probs=F.softmax(teacher_logits / 4, 1))]


def _rslad_reference(model, x, x_adv, teacher_probs) -> torch.Tensor:
    """RSLAD's outer loss as advlib.losses.rslad computes it (the official code's, with its 1e-5)."""
    return soft_kl(model(x), teacher_probs) / 6 + 5 * soft_kl(model(x_adv), teacher_probs) / 6


def _rslad_mistakes(v, expected, model, x, x_adv, teacher_probs) -> tuple[list, str]:
    with torch.no_grad():
        ln, la = model(x), model(x_adv)
        t = teacher_probs
        c = t.shape[1]
        kn, ka = soft_kl(ln, t).item(), soft_kl(la, t).item()  # mean over batch x classes
        rev = lambda logits: (F.softmax(logits, 1) * (F.log_softmax(logits, 1) - torch.log(t + 1e-5))).mean().item()  # noqa: E731
        y_t = t.argmax(1)
        ce_n, ce_a = F.cross_entropy(ln, y_t).item(), F.cross_entropy(la, y_t).item()
        nolog = (t * (torch.log(t + 1e-5) - F.softmax(la, 1))).mean().item()
    variants = [
        (5 * kn / 6 + ka / 6, "You swapped the weights: RSLAD puts 5/6 on the adversarial term and 1/6 on the "
         "natural one. Hint: `(1/6) * KL(natural) + (5/6) * KL(adversarial)`."),
        (c * (kn / 6 + 5 * ka / 6), f"Your KL terms are batch means (reduction='batchmean'), {c}× the official "
         f"RSLAD loss: its code averages the element-wise terms over batch *and* classes (`torch.mean`). Hint: "
         f"`(t * (torch.log(t + 1e-5) - F.log_softmax(logits, 1))).mean()`."),
        (ka, "Your loss has the adversarial term only: RSLAD also matches the teacher on the clean input, with "
         "weight 1/6. Hint: `(1/6) * KL(natural) + (5/6) * KL(adversarial)`."),
        (kn / 6 + 5 * kn / 6, "Both of your terms use the clean input: the second one is the student on x_adv."),
        (rev(ln) / 6 + 5 * rev(la) / 6, "You reversed the KL divergence: the teacher's soft labels are the "
         "target, KL(teacher ‖ student). `F.kl_div(input, target)` wants the student's log-probabilities as "
         "input and the teacher's probabilities as target."),
        (ce_n / 6 + 5 * ce_a / 6, "You used hard labels (the teacher's top class) with a cross-entropy: RSLAD "
         "uses no hard labels at all, only the teacher's soft labels. Hint: a KL divergence to `teacher_probs`."),
        (kn / 6 + 5 * nolog, "`log_softmax`, not `softmax`: the KL needs the student's log-probabilities."),
    ]
    return variants, (f"Your loss is {v:.5g}; the expected value here is {expected:.5g} (natural term {kn:.4g}, "
                      f"adversarial term {ka:.4g}, each the mean over batch × classes of "
                      f"t·(log(t + 1e-5) − log_softmax(student))). Hint: `(1/6) * nat + (5/6) * adv`.")


@exercise("(1/6)·KL(teacher ‖ student(x)) + (5/6)·KL(teacher ‖ student(x_adv)), each averaged over batch × "
          "classes, as in the RSLAD code and the training method rslad of advlib.losses.")
def check_rslad_loss(fn):
    """``fn(model, x, x_adv, teacher_probs)`` must return RSLAD's outer loss, with gradients through the
    student's two predictions, and leave the model's mode as it found it."""
    return check_loss(fn, _rslad_cases(), _rslad_reference, _rslad_mistakes,
                      "Your loss has the right value but the wrong gradients: the gradient must flow through the "
                      "student's predictions on x and on x_adv. Hint: do not `.detach()` (or compute under "
                      "`torch.no_grad()`) `model(x)` or `model(x_adv)`."), []


NOTEBOOK = "05_rslad_distillation_cifar10"
EXERCISES = (
    Exercise(check_rslad_loss, "rslad_loss", statement=r"""
### Exercise: the RSLAD objective

RSLAD (Zi et al. 2021) trains the student $S$ on the teacher's soft labels $t = \mathrm{softmax}\,T(x)$ only, on the clean and on the adversarial input:

$$\mathcal{L}(\theta) = \tfrac{1}{6}\,\mathrm{KL}\big(t\,\|\,\mathrm{softmax}\,S(x)\big) + \tfrac{5}{6}\,\mathrm{KL}\big(t\,\|\,\mathrm{softmax}\,S(x_{adv})\big),$$

each KL computed as the official code does: the element-wise terms $t_k\,\big(\log(t_k + 10^{-5}) - \log \mathrm{softmax}\,S_k\big)$ **averaged over the batch and the classes** (`torch.mean`, not the batch mean of PyTorch's `batchmean`). Write `rslad_loss(model, x, x_adv, teacher_probs)` that returns $\mathcal{L}$ as a scalar tensor.

*Hints.* `F.log_softmax(logits, 1)` gives the student's log-probabilities. The teacher's probabilities are given: nothing to compute (or differentiate) there.
""", starter=r'''
import torch
import torch.nn.functional as F

def rslad_loss(model, x, x_adv, teacher_probs):
    """Return (1/6) KL(teacher || student(x)) + (5/6) KL(teacher || student(x_adv)), means over batch x classes."""
    # Your code here.
    raise NotImplementedError
'''),
)
