r"""L-infinity attacks on inputs in [0,1].

Each attack is one plain function ``attack(model, x, y, eps, ...) -> x_adv`` with

* :math:`\|x_{adv} - x\|_\infty \le \varepsilon` and :math:`x_{adv} \in [0,1]`,
* no gradient left on the model's parameters, and the model's train/eval mode restored,
* a ``ValueError`` that says what to fix for bad arguments.

By default the model runs in eval mode during the attack (``mode="eval"``), as in
torchattacks and the TRADES code; ``mode="train"`` keeps batch-norm in training mode,
as fast_adversarial's training loop does.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import weakref
from typing import Any, Callable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSSES = ("ce", "cw", "kl")


# --------------------------------------------------------------------------- checks


NOT_GIVEN: Any = object()  # an argument of check_inputs / check_settings left out: not checked

HALF_DTYPES_HINT = ("attacks take float32 images: the perturbation, its projection onto the eps-ball and every "
                    "evaluation stay in float32 (in bfloat16, x + 8/255 is not even representable near 1, and "
                    "the projection leaves the ball). For half-precision speed keep x and the model in float32 "
                    "and run the model's forward pass under torch.autocast(device_type, dtype=torch.bfloat16).")


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_settings(eps: Any = NOT_GIVEN, alpha: Any = NOT_GIVEN, steps: Any = NOT_GIVEN) -> None:
    """Raise ``ValueError`` with a hint for an attack setting given but unusable (``None`` included);
    settings left out are not checked."""
    if eps is not NOT_GIVEN and not (_real(eps) and 0.0 <= eps <= 1.0):
        raise ValueError(f"eps must be in [0, 1], a number, for images in [0,1]; got {eps!r}. "
                         "For eps given in pixel levels write e.g. 8/255.")
    if alpha is not NOT_GIVEN and not (_real(alpha) and alpha > 0):
        raise ValueError(f"step size alpha must be > 0, a number; got {alpha!r}.")
    if steps is not NOT_GIVEN and not (isinstance(steps, numbers.Integral) and not isinstance(steps, bool)
                                       and steps >= 1):
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}"
                         + (f" (write {int(steps)})." if _real(steps) and steps == int(steps) >= 1 else "."))


_N_OUTPUTS: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()


def n_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """The number of logits ``model`` gives per input, from one forward pass on ``x[:1]`` in eval mode
    without gradients (no side effects), cached per model. A model that cannot take ``x`` raises
    ``ValueError``."""
    if model not in _N_OUTPUTS:
        try:
            with model_mode(model, "eval"), torch.no_grad():
                out = model(x[:1])
        except RuntimeError as err:
            raise ValueError(f"the model cannot take inputs of shape {tuple(x.shape[1:])} "
                             f"({str(err).splitlines()[0]}): images of another data set than the model's?") from None
        if not torch.is_tensor(out) or out.dim() != 2:
            raise ValueError(f"the model must return logits of shape (N, classes); got "
                             f"{tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}.")
        _N_OUTPUTS[model] = out.shape[1]
    return _N_OUTPUTS[model]


def check_inputs(x: torch.Tensor, y: Any = NOT_GIVEN, eps: Any = NOT_GIVEN, alpha: Any = NOT_GIVEN,
                 steps: Any = NOT_GIVEN, tol: float = 1e-6, *, model: Optional[nn.Module] = None,
                 n_classes: Optional[int] = None) -> None:
    """Raise ``ValueError`` with a hint for arguments an attack cannot work with.

    ``x``: a batch (N, ...) of finite float32 (or the model's dtype) images in [0,1] on the model's
    device; ``y``: int64 labels, one per image, in ``[0, n_classes)``; ``eps``, ``alpha``, ``steps``
    as in :func:`check_settings`. An argument left out is not checked; one given, even ``None``, must be
    valid. With ``model``, the dtype and device of ``x`` are checked against its parameters and
    the number of classes is the model's number of logits (:func:`n_outputs`) unless ``n_classes`` is given.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor of images in [0,1] (divide uint8 images by 255).")
    if x.dtype in (torch.float16, torch.bfloat16):
        raise ValueError(f"x is {x.dtype}: " + HALF_DTYPES_HINT)
    if x.dim() < 2 or x.dim() == 3:
        raise ValueError(f"x has shape {tuple(x.shape)}: attacks take a batch (N, C, H, W) of images. For one image "
                         "pass x.unsqueeze(0) and y of shape (1,).")
    lo, hi = (v.item() for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)  # NaN propagates to both
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"x holds {int((~torch.isfinite(x)).sum())} NaN or infinite values: attacks need finite "
                         "images in [0,1] (check the preprocessing that made them).")
    if lo < -tol or hi > 1 + tol:
        raise ValueError(f"inputs must lie in [0,1]; got min {lo:.3g}, max {hi:.3g}. "
                         "Pass un-normalised images and put any normalisation inside the model "
                         "(advlib.models.get_model(..., normalize=True)).")
    if model is not None:
        p = next((p for p in model.parameters() if p.is_floating_point()), None)
        if p is not None and p.dtype != x.dtype:
            hint = HALF_DTYPES_HINT if p.dtype in (torch.float16, torch.bfloat16) else f"pass x.to({p.dtype})."
            raise ValueError(f"x is {x.dtype} but the model's parameters are {p.dtype}: {hint}")
        if p is not None and p.device != x.device:
            raise ValueError(f"x is on {x.device} but the model on {p.device}: move x with x.to({str(p.device)!r}).")
    if y is not NOT_GIVEN:
        if not torch.is_tensor(y):
            raise ValueError(f"labels y must be a tensor of int64 class indices; got {type(y).__name__}.")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must be a 1-D tensor with one label per image; got x {tuple(x.shape)} "
                             f"and y {tuple(y.shape)}.")
        if y.dtype != torch.int64:
            raise ValueError(f"labels must be int64 class indices (torch.long); got {y.dtype}: pass y.long().")
        if y.device != x.device:
            raise ValueError(f"labels are on {y.device} but x on {x.device}: move them with y.to(x.device).")
        if model is not None and len(x):
            classes = n_outputs(model, x)
            if n_classes is not None and n_classes != classes:
                raise ValueError(f"n_classes={n_classes} but the model gives {classes} logits per image.")
            n_classes = classes
        if y.numel():
            y_lo, y_hi = (v.item() for v in torch.aminmax(y))
            if y_lo < 0 or (n_classes is not None and y_hi >= n_classes):
                top = n_classes if n_classes is not None else "classes"
                raise ValueError(f"labels must be class indices in [0, {top}); got min {y_lo}, max {y_hi}.")
    check_settings(eps, alpha, steps)


@contextlib.contextmanager
def model_mode(model: nn.Module, mode: str = "eval"):
    """Run ``model`` in ``mode`` ('eval', 'train' or 'keep') and restore every module's mode after."""
    if mode not in ("eval", "train", "keep"):
        raise ValueError(f"model_mode must be 'eval', 'train' or 'keep'; got {mode!r}")
    saved = [(m, m.training) for m in model.modules()]
    if mode != "keep":
        model.train(mode == "train")
    try:
        yield model
    finally:
        for m, t in saved:
            m.training = t


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Temporarily stop tracking parameter gradients: attacks only need d loss / d x."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


# --------------------------------------------------------------------------- losses to maximise


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CW margin per sample: max_{j != y} z_j - z_y (positive when misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class InputObjective:
    """A per-sample objective that also sees the images: ``fn(logits, y, x_adv, x) -> loss per sample``.

    A plain objective is a function of the attacked model's logits and the labels only. Wrap ``fn`` in
    ``InputObjective`` (or decorate it with ``@attacks.InputObjective``) when the quantity to maximise also
    depends on the input itself, typically through another network: ``x_adv`` is the iterate the attack
    differentiates, requiring grad while the gradient is taken, so a forward pass of a second network on it
    adds that network's path to the input gradient (AdaAD maximises :math:`KL(T(x')\\,\\|\\,S(x'))`: the
    teacher is run on ``x_adv`` with :meth:`advlib.teacher.Teacher.logits` ``(x_adv, grad=True)``); ``x`` is
    the clean images of the same samples (for an objective that compares with the start point). Only the
    attacked model is frozen and put in the attack's mode: a second network is the objective's to freeze (a
    :class:`~advlib.teacher.Teacher` is) and to run in the mode it needs. ``fn`` may also be called without
    gradients (to rank restarts) and on a subset of the batch (``stop_on_success``), ``x_adv``, ``x``, ``y``
    and the logits always of the same samples.
    """

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]):
        if not callable(fn):
            raise ValueError(f"InputObjective wraps a function (logits, y, x_adv, x) -> per-sample loss; got {fn!r}")
        self.fn = fn

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, y, x_adv, x)

    def __repr__(self) -> str:
        return f"InputObjective({getattr(self.fn, '__name__', self.fn)!r})"


def per_sample(f: Union[Objective, InputObjective], logits: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
               x: torch.Tensor) -> torch.Tensor:
    """``f``'s loss per sample at the iterate ``x_adv`` (logits ``logits``) of the clean ``x``: ``f(logits, y)``
    for a plain objective, ``f(logits, y, x_adv, x)`` for an :class:`InputObjective`."""
    return f(logits, y, x_adv, x) if isinstance(f, InputObjective) else f(logits, y)


def objective(loss: Union[str, Objective, InputObjective] = "ce", target: Optional[torch.Tensor] = None
              ) -> Union[Objective, InputObjective]:
    """The per-sample quantity an attack maximises, as a function ``(logits, y) -> loss per sample``.

    ``"ce"`` cross-entropy; ``"cw"`` the CW margin; ``"kl"`` :math:`KL(target\\,\\|\\,softmax(logits))`
    per sample, where ``target`` is a probability distribution per sample (TRADES: the model's own
    clean prediction; RSLAD: the teacher's); or any callable ``(logits, y) -> per-sample loss``; or an
    :class:`InputObjective`, ``(logits, y, x_adv, x) -> per-sample loss``, returned as it is (call either
    kind with :func:`per_sample`).
    """
    if callable(loss):
        return loss
    if loss == "ce":
        return lambda logits, y: F.cross_entropy(logits, y, reduction="none")
    if loss == "cw":
        return margin
    if loss == "kl":
        if target is None:
            raise ValueError("loss='kl' needs target=, a probability distribution per sample "
                             "(attacks.pgd sets it to the model's clean prediction when you leave it out).")
        return lambda logits, y: F.kl_div(F.log_softmax(logits, 1), target, reduction="none").sum(1)
    raise ValueError(f"loss must be one of {LOSSES}, a callable (logits, y) -> per-sample loss or an InputObjective; "
                     f"got {loss!r}")


def _channels_last(model: nn.Module) -> bool:
    """Image batches in channels-last layout let oneDNN skip layout reorders in every convolution
    (about 1.2-1.4x faster PGD steps for CIFAR conv nets on a CPU; the values are identical)."""
    return any(isinstance(m, nn.Conv2d) and m.in_channels > 1 for m in model.modules())


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   loss: Union[str, Objective, InputObjective] = "ce", target: Optional[torch.Tensor] = None, *,
                   clean: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gradient of the summed loss w.r.t. x, per-sample loss, logits), one forward and backward.
    ``loss`` and ``target`` as in :func:`objective`; ``clean``: the clean images an :class:`InputObjective`
    sees as ``x`` (default: ``x`` itself, the point of the gradient)."""
    f = objective(loss, target)
    x = x.detach()
    clean = x if clean is None else clean.detach()
    if x.dim() == 4 and _channels_last(model):
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.requires_grad_(True)
    logits = model(x)
    per = per_sample(f, logits, y, x, clean)
    (g,) = torch.autograd.grad(per.sum(), x)
    return g, per.detach(), logits.detach()


def _kl_target(model: nn.Module, x: torch.Tensor, loss, target: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """For loss='kl' without a target: the model's own clean prediction (TRADES' inner maximisation)."""
    if loss != "kl" or target is not None:
        return target
    with torch.no_grad():
        return F.softmax(model(x), 1)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper: attacks need input gradients only, so
    they run on the local replica (identical weights on every rank) without DDP's gradient hooks."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def madry_alpha(eps: float, steps: int) -> float:
    """The usual PGD step size, 2.5·ε/steps (Madry et al. 2018): enough to reach the boundary of the
    ε-ball from anywhere inside it and move along it."""
    return 2.5 * eps / steps


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project onto the intersection of the eps-ball around x and the [0,1] box."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)


# --------------------------------------------------------------------------- attacks


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, mode: str = "eval",
         loss: Union[str, Objective, InputObjective] = "ce", target: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Fast Gradient Sign Method (Goodfellow et al. 2015): :math:`x + \varepsilon\,\mathrm{sign}(\nabla_x J)`,
    clamped to [0,1]. ``loss``/``target`` as in :func:`objective`."""
    model = unwrap(model)
    check_inputs(x, y, eps, model=model)
    if eps == 0:
        return x.detach().clone()
    with model_mode(model, mode), frozen(model):
        target = _kl_target(model, x, loss, target)
        g, _, _ = input_gradient(model, x, y, loss, target)
    return (x + eps * g.sign()).clamp_(0, 1).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
        random_start: Union[bool, str] = True, restarts: int = 1, loss: Union[str, Objective, InputObjective] = "ce", *,
        target: Optional[torch.Tensor] = None, mode: str = "eval", stop_on_success: bool = False,
        callback: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
    r"""Projected gradient descent (Madry et al. 2018), L-infinity.

    Each step :math:`x \leftarrow \Pi_{B_\varepsilon(x_0)\cap[0,1]^d}(x + \alpha\,\mathrm{sign}(\nabla_x J))`
    ascends the per-sample objective ``J`` (see :func:`objective`): ``"ce"`` cross-entropy, ``"cw"``
    the CW margin (the CW-infinity column), ``"kl"`` the KL divergence from ``target`` (default: the
    model's own clean prediction, TRADES' inner maximisation; RSLAD passes the teacher's), or any
    callable ``(logits, y) -> per-sample loss``, or an :class:`InputObjective` ``(logits, y, x_adv, x) ->
    per-sample loss`` for an objective that also depends on the iterate or the clean images themselves
    (AdaAD's :math:`KL(T(x')\,\|\,S(x'))`, the teacher run on the iterate: the input gradient flows
    through both networks).

    ``random_start``: ``"uniform"`` in the ε-ball, ``"normal"`` (x + 0.001·N(0, 1), TRADES' and
    RSLAD's start), ``True`` (normal for ``"kl"``, uniform otherwise) or ``False``.
    With ``restarts > 1``, each sample keeps the restart that fooled the model, or failing
    that the one with the highest objective. ``callback(step, x_adv)`` sees every iterate.

    ``stop_on_success=True`` (for evaluation) never weakens the attack and saves its work: a sample
    misclassified at any iterate keeps that iterate and is attacked no further, and a restart runs only
    on the samples no earlier restart fooled; a sample never fooled keeps its last restart's last iterate
    (``callback`` then sees the iterates of the samples still attacked).
    """
    model = unwrap(model)
    check_inputs(x, y, eps, alpha, steps, model=model)
    if not isinstance(restarts, numbers.Integral) or isinstance(restarts, bool) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1; got {restarts!r}.")
    if random_start not in (True, False, "uniform", "normal"):
        raise ValueError(f"random_start must be True, False, 'uniform' or 'normal'; got {random_start!r}")
    if not callable(loss) and loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, a callable (logits, y) -> per-sample loss or an "
                         f"InputObjective; got {loss!r}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    if random_start is True:
        random_start = "normal" if loss == "kl" else "uniform"
    with model_mode(model, mode), frozen(model):
        target = _kl_target(model, x, loss, target)
        if stop_on_success:
            return _pgd_until_fooled(model, x, y, eps, alpha, steps, random_start, restarts, loss, target, callback)
        f = objective(loss, target)
        best, best_fooled, best_loss = x.clone(), None, None
        for _ in range(restarts):
            x_adv = _start(x, eps, random_start)
            for step in range(steps):
                g, _, _ = input_gradient(model, x_adv, y, f, clean=x)
                x_adv = project(x_adv + alpha * g.sign(), x, eps)
                if callback is not None:
                    callback(step, x_adv)
            if restarts == 1:
                return x_adv
            with torch.no_grad():
                logits = model(x_adv)
                fooled = logits.argmax(1) != y
                per = per_sample(f, logits, y, x_adv, x)
            if best_fooled is None:
                best, best_fooled, best_loss = x_adv, fooled, per
            else:
                better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (per > best_loss))
                best = torch.where(better.view(-1, *[1] * (x.dim() - 1)), x_adv, best)
                best_fooled, best_loss = best_fooled | fooled, torch.where(better, per, best_loss)
    return best


def _start(x: torch.Tensor, eps: float, random_start: Union[bool, str]) -> torch.Tensor:
    if random_start == "normal":
        return project(x + 0.001 * torch.randn_like(x), x, eps)
    if random_start == "uniform":
        return project(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)
    return x.clone()


def _pgd_until_fooled(model, x, y, eps, alpha, steps, random_start, restarts, loss, target, callback):
    """PGD that freezes each sample at the first iterate that fools the model (see :func:`pgd`).
    Runs inside the caller's ``model_mode`` and ``frozen``; only unfooled samples are computed."""
    out = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        todo = (~fooled).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        x_adv = _start(x[todo], eps, random_start)
        for step in range(steps + 1):
            if step < steps:
                sub_target = None if target is None else target[todo]
                g, _, logits = input_gradient(model, x_adv, y[todo], loss, sub_target, clean=x[todo])
            else:  # the last iterate only needs its prediction
                with torch.no_grad():
                    logits = model(x_adv)
            hit = logits.argmax(1) != y[todo]  # the current iterate already fools the model: keep it
            if hit.any():
                out[todo[hit]] = x_adv[hit]
                fooled[todo[hit]] = True
            if step == steps:  # the last iterate has been checked; no step after it
                out[todo[~hit]] = x_adv[~hit]
                break
            keep = ~hit
            todo, x_adv, g = todo[keep], x_adv[keep], g[keep]
            if todo.numel() == 0:
                break
            x_adv = project(x_adv + alpha * g.sign(), x[todo], eps)
            if callback is not None:
                callback(step, x_adv)
    return out


def random_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, sign: bool = True,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random L-infinity noise of the same size as an attack: ``eps * sign(uniform)`` (a corner of
    the ball, like FGSM) or uniform in the ball. A baseline that shows worst-case noise is special."""
    check_inputs(x, y, eps)
    u = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1
    return (x + eps * (u.sign() if sign else u)).clamp(0, 1)


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, version: str = "standard",
               n_classes: int = 10, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """AutoAttack (Croce & Hein 2020) through torchattacks' implementation (APGD-CE, APGD-T, FAB-T, Square).

    torchattacks seeds the global random number generators with ``seed``; they are saved before and
    restored after, so the randomness of the caller's program still follows the caller's own seed."""
    import torchattacks  # on first use: a second to import, and only this re-implementation needs it

    check_inputs(x, y, eps, model=model, n_classes=n_classes)
    if eps == 0:
        return x.detach().clone()
    cuda = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with model_mode(model, "eval"), torch.random.fork_rng(devices=cuda):
        atk = torchattacks.AutoAttack(model, norm="Linf", eps=float(eps), version=version,
                                      n_classes=n_classes, seed=seed)
        out = [atk(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out).detach()


def minimum_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 20,
                   targets: int = 3, *, rho: float = 0.75, mode: str = "eval") -> torch.Tensor:
    r"""The Minimum-Margin attack (Gao, Wang, Zhou, Liu, Xie, Niu, Han, Cheng: "Fast and Reliable Evaluation of
    Adversarial Robustness with Minimum-Margin Attack", ICML 2022), L-infinity.

    For each of the ``targets`` classes the model finds most likely after the true one on the clean image (the
    most likely first), APGD (Croce & Hein 2020) with ``steps`` iterations ascends the margin
    :math:`z_t - z_y` to that class, each target only on the images no earlier target fooled. MM3 (3 targets,
    20 steps) is the paper's cheap evaluation, MM+ (9 targets, 100 steps) its strong one.

    As in the authors' code (Sjtubrian/MM-attack, commit 0a9883e): ``attack_generator.py`` l.356-421 (the
    loop over the targets on the images still robust, one target class at a time, APGD with ``n_iter=steps``,
    ``rho=.75``), ``attack_apgd.py`` l.619-623 (the loss: the margin, not normalised), l.688 (the target: the
    ``(i+2)``-th largest clean logit, the ``i``-th most likely wrong class of an image classified correctly),
    l.161-170 and l.214-458 (APGD on L∞: a start at :math:`x + \varepsilon u/\|u\|_\infty`, ``u`` uniform in
    [-1, 1]; a first step of 2ε, then momentum 0.75; checkpoints after 22% of the steps, each interval 3% of
    the steps shorter than the last but at least 6%, at which the step of an image is halved and its iterate
    reset to its best one when at most ``rho`` of the steps since the last checkpoint raised its loss, or when
    its best loss did not improve since a checkpoint that left its step alone), ``mm_attack.py`` l.180 and
    l.192 (MM3 and MM+). Differences: the random state is the caller's (the authors' code reseeds the global
    generator); the first checkpoint counts the first step's rise against the start (theirs against an unwritten
    zero); an image that no target fooled gets its iterate of highest margin over the targets (theirs: the
    clean image).

    An image is kept at the first iterate that fools the model, so the evaluation's count of the images that
    survive is the attack's own. ``targets``: from 1 to the number of classes minus one.
    """
    model = unwrap(model)
    check_inputs(x, y, eps, steps=steps, model=model)
    classes = n_outputs(model, x) if len(x) else None
    if (not isinstance(targets, numbers.Integral) or isinstance(targets, bool) or targets < 1
            or (classes is not None and targets >= classes)):
        raise ValueError(f"targets must be an integer from 1 to the number of classes minus one"
                         f"{f' ({classes - 1})' if classes else ''}; got {targets!r}.")
    if not (_real(rho) and 0 < rho <= 1):
        raise ValueError(f"rho must be a number in (0, 1]; got {rho!r}.")
    x = x.detach()
    if eps == 0 or len(x) == 0:
        return x.clone()
    with model_mode(model, mode), frozen(model):
        with torch.no_grad():
            logits = model(x)
        wrong = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
        order = wrong.argsort(1, descending=True)[:, :targets]  # the most likely wrong classes, most likely first
        out = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        best = torch.full((len(x),), float("-inf"), device=x.device)
        for t in range(targets):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            x_t, hit, margin_t = _apgd_margin(model, x[todo], y[todo], order[todo, t], eps, steps, rho)
            keep = hit | (margin_t > best[todo])
            out[todo[keep]] = x_t[keep]
            best[todo] = torch.maximum(best[todo], margin_t)
            fooled[todo[hit]] = True
    return out


def _apgd_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, eps: float, steps: int,
                 rho: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """APGD (L∞) on the margin ``z_target - z_y`` (see :func:`minimum_margin`), inside the caller's
    ``model_mode`` and ``frozen``: (per image the first iterate that fooled the model, else the one of highest
    margin; whether one fooled it; the highest margin)."""
    def objective(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, target[:, None]).squeeze(1) - logits.gather(1, labels[:, None]).squeeze(1)

    shape = (-1,) + (1,) * (x.dim() - 1)
    u = torch.empty_like(x).uniform_(-1, 1)
    x_cur = project(x + eps * u / u.flatten(1).abs().amax(1).clamp_min(1e-12).view(shape), x, eps)
    g, loss, logits = input_gradient(model, x_cur, y, objective)
    fooled = logits.argmax(1) != y
    x_fool, x_best, g_best, loss_best = x_cur.clone(), x_cur.clone(), g.clone(), loss.clone()
    step = torch.full((len(x),) + (1,) * (x.dim() - 1), 2.0 * eps, dtype=x.dtype, device=x.device)
    x_prev, losses = x_cur, [loss]
    interval, since = max(int(0.22 * steps), 1), 0
    shorter, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    best_at_check, halved_at_check = loss_best.clone(), torch.ones_like(fooled)
    for i in range(steps):
        a = 0.75 if i > 0 else 1.0  # momentum from the second step on
        z = project(x_cur + step * g.sign(), x, eps)
        x_prev, x_cur = x_cur, project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev), x, eps)
        g, loss, logits = input_gradient(model, x_cur, y, objective)
        hit = (logits.argmax(1) != y) & ~fooled
        x_fool[hit] = x_cur[hit]
        fooled |= hit
        losses.append(loss)
        up = loss > loss_best
        x_best[up], g_best[up], loss_best[up] = x_cur[up], g[up], loss[up]
        since += 1
        if since == interval:  # a checkpoint
            rises = sum((losses[-j] > losses[-j - 1]).float() for j in range(1, interval + 1))
            halve = (rises <= interval * rho) | (~halved_at_check & (best_at_check >= loss_best))
            halved_at_check, best_at_check = halve, loss_best.clone()
            step[halve] /= 2
            x_cur = torch.where(halve.view(shape), x_best, x_cur)
            g = torch.where(halve.view(shape), g_best, g)
            interval, since = max(interval - shorter, shortest), 0
    return torch.where(fooled.view(shape), x_fool, x_best), fooled, loss_best


def eps_ok(x_adv: torch.Tensor, x: torch.Tensor, eps: float, tol: float = 1e-6) -> bool:
    """True if x_adv is in the eps-ball around x and in [0,1]."""
    return bool((x_adv - x).abs().max() <= eps + tol and x_adv.min() >= 0 and x_adv.max() <= 1)
