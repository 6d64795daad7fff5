r"""AWP, adversarial weight perturbation (Wu, Xia and Wang, NeurIPS 2020), on SAT and on TRADES.

Adversarial training perturbs the inputs; AWP also perturbs the weights, towards where the training loss is
highest near them, so that the model is trained to keep a low loss in a neighbourhood of its weights (a flatter
weight-loss landscape, which the paper links to a smaller robust generalisation gap). One training step:

1. craft the adversarial examples x' with the current weights w (SAT's or TRADES' inner maximisation);
2. take one gradient *ascent* direction of the training loss at w on x', layer by layer, and scale it to a fixed
   fraction γ of that layer's weight norm: :math:`v_l = \gamma\,\|w_l\|\,g_l / \|g_l\|` with
   :math:`g_l = \nabla_{w_l} \mathcal{L}(w; x', y)`;
3. add v to the weights, compute the loss at w + v, backpropagate and take the optimiser's step;
4. subtract v again (the step's update stays, the perturbation goes).

Steps 2-3 happen in the method (:func:`awp_pgd`, :func:`awp_trades`), step 4 in :meth:`WeightAdversary.after_step`,
which the engine runs right after the optimiser step and before the weight average, the monitor and the
checkpoints see the model (:mod:`advlib.losses`, "Lifecycle"): they never see perturbed weights.

As in the official code (csdongxian/AWP; ``AT_AWP/utils_awp.py``, ``trades_AWP/utils_awp.py``, the same
functions, and the training scripts ``AT_AWP/train_cifar10.py``, ``trades_AWP/train_trades_cifar.py``):

* *what is perturbed*: every parameter of more than one dimension whose name contains ``weight`` (the
  convolution kernels and linear matrices; not biases, not batch norm's scale and shift), ``utils_awp.py``
  l.12-17;
* *the direction*: the code takes one SGD step of the negated training loss on a copy of the model (its
  *proxy*; ``calc_awp``, l.37-49 of ``AT_AWP/utils_awp.py``), then rescales the change of each weight to that
  weight's norm (``diff_in_weights``, l.16-17, with 1e-20 added to the denominator, l.5). The proxy step's size
  (SGD with lr 0.01, ``AT_AWP/train_cifar10.py`` l.241; lr 0.1, ``trades_AWP/train_trades_cifar.py`` l.279)
  cancels in that rescaling, so here the direction is the gradient itself, without a proxy; the proxy exists in
  the code so that the extra forward pass leaves the model's batch-norm statistics alone (the comment at
  ``train_trades_cifar.py`` l.277), which :class:`WeightAdversary` does by putting the buffers back. The pass
  runs in training mode, as the proxy's (``utils_awp.py`` l.39);
* *the loss the direction ascends*: SAT's cross-entropy at x' (``AT_AWP/utils_awp.py`` l.41), TRADES' own
  objective CE(f(x), y) + β·KL(f(x) ‖ f(x')) (``trades_AWP/utils_awp.py`` l.41-45);
* *the size*: ``--awp-gamma`` 0.01 for AT-AWP (``AT_AWP/train_cifar10.py`` l.162; the released logs
  ``AT_AWP/logs/cifar10_linf/*_awp/output.log`` ran ``awp_size=0.01``), 0.005 for TRADES-AWP
  (``trades_AWP/train_trades_cifar.py`` l.60); the perturbation is added with factor γ and subtracted with the
  same after the step (``perturb``/``restore``, l.51-55; the scripts call them at l.340-345 and l.362-363 of
  ``train_cifar10.py``, l.179-184 and l.205-206 of ``train_trades_cifar.py``);
* *the warm-up*: ``--awp-warmup`` epochs without the perturbation, 0 for AT-AWP (``train_cifar10.py`` l.163,
  epochs counted from 0, l.307 and l.340) and 10 for TRADES-AWP (``train_trades_cifar.py`` l.62), whose epochs
  count from 1 (l.26, l.294: ``epoch >= 10`` at l.179 leaves 9 epochs unperturbed); here ``awp_warmup`` is the
  number of epochs trained without it (ctx.epoch, counted from 0, reaching it), so 0 and 9. γ = 0 never
  perturbs (the code sets the warm-up to infinity, l.169-170 and l.68-69).

Under DistributedDataParallel the gradient that gives the direction is averaged over the ranks (the code's
``nn.DataParallel`` proxy sees the whole batch: ``train_cifar10.py`` l.226, ``train_trades_cifar.py`` l.278), which also keeps the ranks' weights identical.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import attacks, utils
from . import ATTACK_FIELDS, Context, MethodState, register

TINY = 1e-20  # utils_awp.py l.5: keeps the rescaling finite where a layer's gradient is zero


def perturbed_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters AWP perturbs, with their names: those of more than one dimension whose name contains
    ``weight`` (``utils_awp.py`` l.13-15: convolution kernels and linear matrices), that are trained."""
    return [(n, p) for n, p in attacks.unwrap(model).named_parameters()
            if p.dim() > 1 and "weight" in n and p.requires_grad]


def _mean_over_ranks(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients averaged over the ranks of a distributed run (the whole batch's); as they are on one."""
    world = utils.dist_info()[1]
    if world == 1:
        return grads
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    return [part.view(g.shape) for part, g in zip(flat.split([g.numel() for g in grads]), grads)]


class WeightAdversary(MethodState):
    """AWP's state for one run: the weights it perturbs and the perturbation they carry between the method's
    :meth:`perturb` and :meth:`restore` (the engine calls :meth:`after_step`, which restores). Nothing survives a
    step, so nothing goes into a checkpoint: the perturbation is computed afresh at every step, from the current
    weights and batch (the code's proxy is reloaded from the model at every step too, ``utils_awp.py`` l.38)."""

    def __init__(self, model: nn.Module, cfg=None):
        super().__init__(attacks.unwrap(model), cfg)
        self.weights = [p for _, p in perturbed_weights(self.model)]
        self.applied: list[torch.Tensor] = []  # the perturbation now in the weights (empty: none)

    def direction(self, loss_fn: Callable[[nn.Module], torch.Tensor]) -> list[torch.Tensor]:
        """The gradient of ``loss_fn(model)`` with respect to each perturbed weight, the model in training mode, its
        buffers (batch-norm statistics) as before, no ``p.grad`` filled; averaged over the ranks of a distributed
        run."""
        buffers = [b.detach().clone() for b in self.model.buffers()]
        with attacks.model_mode(self.model, "train"):
            loss = loss_fn(self.model)
        grads = torch.autograd.grad(loss, self.weights, allow_unused=True)
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), buffers):
                b.copy_(saved)
        return _mean_over_ranks([torch.zeros_like(w) if g is None else g for g, w in zip(grads, self.weights)])

    def perturb(self, loss_fn: Callable[[nn.Module], torch.Tensor], gamma: float) -> list[torch.Tensor]:
        """Add the adversarial weight perturbation for ``loss_fn`` (the training loss as a function of the network):
        to each perturbed weight w, γ·‖w‖·g/(‖g‖ + 1e-20) with g its gradient (:meth:`direction`). Returns the
        perturbation, one tensor per weight of :func:`perturbed_weights`."""
        if self.applied:
            raise RuntimeError("the weights already carry an AWP perturbation: restore() it before perturbing again")
        grads = self.direction(loss_fn)
        with torch.no_grad():
            for w, g in zip(self.weights, grads):
                v = g * (gamma * w.norm() / (g.norm() + TINY))
                w.add_(v)
                self.applied.append(v)
        return list(self.applied)

    def restore(self) -> None:
        """Subtract the perturbation again (nothing if there is none), as the code does after the optimiser step."""
        with torch.no_grad():
            for w, v in zip(self.weights, self.applied):
                w.sub_(v)
        self.applied = []

    def after_step(self, ctx: Context) -> None:
        self.restore()


def _perturbs(ctx: Context) -> bool:
    """Whether this step perturbs the weights: γ > 0 and the warm-up is over."""
    return ctx.param("awp_gamma") > 0 and ctx.epoch >= ctx.param("awp_warmup")


_RANGES = {"awp_gamma": "[0, inf)", "awp_warmup": "[0, inf)"}


@register("awp_pgd", uses=ATTACK_FIELDS, params={"awp_gamma": 0.01, "awp_warmup": 0.0}, ranges=_RANGES,
          state=WeightAdversary, citation="Wu, Xia and Wang, NeurIPS 2020")
def awp_pgd(ctx: Context):
    r"""AT-AWP (Wu et al. 2020): PGD adversarial training at adversarially perturbed weights, each weight
    moved by γ of its norm up the gradient of the loss.

    The cross-entropy at the PGD example x' (crafted as :func:`~advlib.losses.pgd.pgd` does: uniform random start,
    ``cfg.steps`` steps of 2.5·ε/steps unless ``cfg.alpha`` is set) with the weights moved by γ =
    ``params["awp_gamma"]`` (default 0.01, ``AT_AWP/train_cifar10.py`` l.162) of each layer's norm up the gradient
    of that cross-entropy, after ``params["awp_warmup"]`` epochs (default 0, l.163). See the module docstring for
    the perturbation and the official code's lines; with γ = 0 it is :func:`~advlib.losses.pgd.pgd`, step for
    step."""
    x_adv = ctx.pgd(random_start=True) if ctx.eps > 0 else ctx.x
    if _perturbs(ctx):
        ctx.state.perturb(lambda net: F.cross_entropy(net(x_adv), ctx.y), ctx.param("awp_gamma"))
    logits = ctx.model(x_adv)
    return F.cross_entropy(logits, ctx.y), logits


@register("awp_trades", uses=ATTACK_FIELDS, params={"beta": 6.0, "awp_gamma": 0.005, "awp_warmup": 9.0},
          ranges={"beta": "[0, inf)", **_RANGES}, state=WeightAdversary, citation="Wu, Xia and Wang, NeurIPS 2020")
def awp_trades(ctx: Context):
    r"""TRADES-AWP (Wu et al. 2020): TRADES at adversarially perturbed weights, each weight moved by γ of its
    norm up the gradient of TRADES' objective.

    :math:`CE(f(x), y) + \beta\,KL(f(x)\,\|\,f(x'))`, x' crafted as :func:`~advlib.losses.trades.trades` does (KL PGD from
    x + 0.001·N(0, 1), step 0.25·ε unless ``cfg.alpha`` is set), β = ``params["beta"]`` (default 6,
    ``trades_AWP/train_trades_cifar.py`` l.47); the weights moved by γ = ``params["awp_gamma"]`` (default 0.005,
    l.60) of each layer's norm up the gradient of that same objective (``trades_AWP/utils_awp.py`` l.41-45), from
    epoch ``params["awp_warmup"]`` on (default 9: the code's ``--awp-warmup 10`` with epochs counted from 1, l.62).

    The examples are crafted before the weights move, with the unperturbed model (the code, l.170-184); the
    outer loss runs the clean batch first, then x', as :func:`~advlib.losses.trades.trades` does (the code
    forwards x' first and the clean batch twice, l.187-192: the same loss; only the batch-norm running statistics
    see the batches in another order). With γ = 0, or before the warm-up ends, it is TRADES computed after the
    attack; :func:`~advlib.losses.trades.trades` forwards the clean batch before its attack, which only an
    eval-mode attack on a network with batch norm can tell apart (its running statistics have seen the batch)."""
    beta = ctx.param("beta")
    x_adv = ctx.pgd(alpha=ctx.step_size(0.25), random_start=True, loss="kl") if ctx.eps > 0 else None

    def objective(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        logits_clean = net(ctx.x)
        if x_adv is None:
            kl = logits_clean.new_zeros(())
        else:
            kl = F.kl_div(F.log_softmax(net(x_adv), 1), F.softmax(logits_clean, 1), reduction="batchmean")
        return F.cross_entropy(logits_clean, ctx.y) + beta * kl, logits_clean

    if _perturbs(ctx):
        ctx.state.perturb(lambda net: objective(net)[0], ctx.param("awp_gamma"))
    return objective(ctx.model)
