r"""AdaAD, Adaptive Adversarial Distillation (Huang, Chen, Wang, Lu, Cheng, Wang: "Boosting Accuracy and
Robustness of Student Models via Adaptive Adversarial Distillation", CVPR 2023).

ARD, IAD and RSLAD craft the student's adversarial example against a fixed target: the labels, or the
teacher's soft labels on the *clean* image. AdaAD lets the teacher take part in the inner maximisation: x'
is the point of the ε-ball where student and teacher disagree most, both evaluated on x', and the student is
then taught to agree with the teacher there. Where the teacher itself changes its mind inside the ball, the
student is not pushed towards a prediction the teacher would not make (the "overcorrection towards model
smoothness" of a fixed target).

Notation: KL below is what the code computes, ``nn.KLDivLoss`` of the student's log-probabilities against
the teacher's probabilities, :math:`\sum_k T_k(\log T_k - \log S_k)`, written :math:`KL(T\,\|\,S)`.
"""
import torch
import torch.nn.functional as F

from .. import attacks
from . import ATTACK_FIELDS, Context, register


def teacher_student_kl(teacher) -> attacks.InputObjective:
    r"""AdaAD's inner objective for :func:`advlib.attacks.pgd`: per sample :math:`KL(T(x')\,\|\,S(x'))` summed
    over the classes, the teacher run on the iterate x' itself with its input gradient
    (:meth:`advlib.teacher.Teacher.probs` with ``grad=True``: eval mode, weights frozen, no cache), so that the
    gradient of the attack flows through both networks."""
    def kl(logits: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = teacher.probs(x_adv, cached=False, grad=True)
        return F.kl_div(F.log_softmax(logits, 1), t, reduction="none").sum(1)
    return attacks.InputObjective(kl)


def mean_kl(logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    r""":math:`KL(T\,\|\,S)` averaged over batch × classes: ``nn.KLDivLoss()`` with its default reduction
    (``"mean"``: the sum over every element divided by their number), as the official code's CIFAR-10 branch
    computes it (main.py l.341-345)."""
    return F.kl_div(F.log_softmax(logits, 1), teacher_probs, reduction="sum") / teacher_probs.numel()


@register("adaad", uses=ATTACK_FIELDS, params={"adv_weight": 1.0}, ranges={"adv_weight": "[0, 1]"}, teacher=True,
          citation="Huang et al., CVPR 2023")
def adaad(ctx: Context):
    r"""AdaAD (Huang et al. 2023): :math:`w\,KL(T(x')\,\|\,S(x')) + (1-w)\,KL(T(x)\,\|\,S(x))`, w = 1, where x'
    maximises the summed :math:`KL(T(x')\,\|\,S(x'))` over the ε-ball from x + 0.001·N(0, 1), student *and
    teacher* evaluated on x' (the gradient flows through both). No hard label anywhere.

    As in the official code (boyellow/AdaAD, commit 9e5c6e5; lines of ``AT_helper.py`` and ``main.py``):

    * inner maximisation, ``adaad_inner_loss`` (AT_helper.py l.8-48): start x + 0.001·N(0, 1) (l.26-27); the
      element-wise KL of the student's log-probabilities against the teacher's probabilities *on the iterate*,
      summed over batch and classes (l.19, l.33-35), the teacher's forward inside the graph (l.32-34), so the
      input gradient runs through both networks; sign step, projection onto the ε-ball, clamp to [0, 1]
      (l.36-40); the student in eval mode while crafting (``BN_eval=True``, l.14, l.20-21: ``attack_mode="eval"``),
      the teacher in eval mode (l.24), the student back in training mode after (l.42-44);
    * outer loss (main.py l.326-353): the student in training mode (l.330), on the clean batch then on x'
      (l.333-334); the teacher on x and on x' without gradient, in eval mode (l.336-339); each KL
      ``nn.KLDivLoss()`` with its default reduction, the mean over batch × classes (CIFAR-10 branch, l.341-345:
      :func:`mean_kl`); loss ``AdaAD_alpha``·KL(adv) + (1 − ``AdaAD_alpha``)·KL(nat) (l.353), ``AdaAD_alpha`` =
      1 by default (l.41; the README's commands, l.51-83, leave it there): ``adv_weight`` here, renamed because
      α is the attack step;
    * no temperature: ``--temp`` (main.py l.38) is read only by the AdaIAD variant (l.377-381); softmax at τ = 1.

    Choices where the code is silent or the course differs: the random start is projected onto the ball and
    [0, 1] before the first gradient (the code clamps only after the first step; advlib's attacks never
    evaluate a point outside [0, 1]); with w = 1 the natural term weighs nothing, but the student still runs on
    the clean batch, without a graph, so that its batch-norm running statistics see the clean and the
    adversarial batch as in the code (whose clean forward also feeds the training accuracy); the teacher's
    clean soft labels are then not needed and not computed. The CIFAR-100 branch (l.347-351) uses the batch
    mean instead (``batchmean``, 100× this one on 100 classes); the course trains on CIFAR-10. The returned
    logits (for the running training accuracy) are the student's on x', as for RSLAD."""
    w = ctx.param("adv_weight")
    x_adv = ctx.pgd(loss=teacher_student_kl(ctx.teacher), random_start="normal") if ctx.eps > 0 else ctx.x
    if w < 1:
        logits_nat = ctx.model(ctx.x)
    else:
        with torch.no_grad():  # the batch-norm statistics see the clean batch, as in the code; no gradient needed
            ctx.model(ctx.x)
    logits_adv = ctx.model(x_adv)
    with torch.no_grad():  # the teacher on the student's adversarial example: never the same twice, not cached
        t_adv = ctx.teacher.probs(x_adv, cached=False)
    loss = w * mean_kl(logits_adv, t_adv)
    if w < 1:
        loss = loss + (1 - w) * mean_kl(logits_nat, ctx.teacher.probs(ctx.x))
    return loss, logits_adv
