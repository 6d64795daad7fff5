"""What every exercise check shares: fixed inputs and models, running the student's code and turning
what it does into a verdict, guards for what a function must leave alone, and diagnostics of tensors
and losses.

A check is a function decorated with :func:`exercise` whose body returns ``(problems, notes)``;
everything it needs to run the student's function safely and to describe what went wrong lives here,
so a notebook's module (:mod:`advlib.exercises.setup`, ...) holds only its exercises' own logic.
"""
from __future__ import annotations

import functools
import os
import traceback
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import attacks

NOT_ATTEMPTED = "✏️ Not attempted yet: write your code in the cell above, then run this cell again."
TOL = 1e-5  # float32 slack for pixel values


# --------------------------------------------------------------------------- fixed inputs and models


def _seeded(net: nn.Sequential, seed: int) -> nn.Sequential:
    """Fill the convolution and the linear layer of ``net`` from a generator of its own, so the weights
    do not depend on (or shift) the global random numbers."""
    g = torch.Generator().manual_seed(seed)
    conv, lin = net[0], net[-1]
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.8)
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.3)
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.12)
        lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 0.3)
    return net


def fixed_model() -> nn.Module:
    """A tiny fixed network for 1x28x28 inputs, in evaluation mode (seeded, independent of the
    global RNG).

    Tanh rather than ReLU, so that no input gradient is exactly zero and every pixel has a
    well-defined FGSM direction; no batch norm, so its outputs do not depend on its mode. Rebuilt for
    every use, so a student function that changes the model cannot affect the reference.
    """
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(4 * 14 * 14, 10))
    return _seeded(net, 20240).eval()


def batchnorm_model() -> nn.Module:
    """:func:`fixed_model` with a batch-norm layer after the convolution, in TRAINING mode, as a
    network is in the middle of a training loop; its running statistics start away from their
    defaults (mean 0, variance 1), so evaluation and training mode give different outputs."""
    net = _seeded(nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Tanh(),
                                nn.Flatten(), nn.Linear(4 * 14 * 14, 10)), 20241)
    bn = net[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.4]))
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 0.8]))
        bn.num_batches_tracked.fill_(100)
    return net.train()


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    """n images in [0,1]: a black band (exactly 0), a white band (exactly 1), near-black and
    near-white columns (where a step of eps leaves [0,1]) and random grey pixels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    x[:, :, :5, :] = 0.0
    x[:, :, 23:, :] = 1.0
    x[:, :, 5:23, :3] = 0.04
    x[:, :, 5:23, 25:] = 0.97
    return x


def labels(n: int = 4, seed: int = 1) -> torch.Tensor:
    """n labels in 0..9, seeded."""
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randint(0, 10, (n,), generator=g)


def input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the cross-entropy with respect to x, as the library's attacks compute it."""
    with attacks.model_mode(model, "eval"), attacks.frozen(model):
        g, _, _ = attacks.input_gradient(model, x, y, "ce")
    return g


def ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean cross-entropy of ``model`` on (x, y), as a number."""
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


# --------------------------------------------------------------------------- running the student's code


class NotAttempted(Exception):
    """The student's function is still the starter cell's stub."""


class StudentError(Exception):
    """The student's function raised; the message is the verdict."""


ERROR_HINTS = [
    ("does not require grad", "the tensor you differentiate with respect to must require gradients: run the "
     "model on a detached copy of the input on which you switched them on (`clone`, `detach`, "
     "`requires_grad_`), not on the caller's tensor; and do not compute gradients inside `torch.no_grad()`."),
    ("only for scalar outputs", "reduce the loss to one number (`F.cross_entropy` does by default, "
     "or add `.mean()`) before calling `.backward()` or `torch.autograd.grad`."),
    ("backward through the graph a second time", "a graph can be differentiated only once: compute a "
     "fresh forward pass, or pass `retain_graph=True` to the first backward."),
    ("leaf Variable that requires grad", "do not modify a tensor that requires grad in place: "
     "use out-of-place operations (`x_req + ...`, `.clamp(...)`) or work on a detached copy."),
    ("is being used in an in-place operation", "do not modify a tensor that requires grad in place: "
     "use out-of-place operations or work on a detached copy."),
    ("shapes cannot be multiplied", "pass the images to the model unchanged, with shape (N, 1, 28, 28)."),
    ("positional argument", "check your function's signature against the one in the starter cell."),
    ("unexpected keyword argument", "check your function's signature against the one in the starter cell."),
    ("is not defined", "import what you use in your cell (e.g. `import torch` and "
     "`import torch.nn.functional as F`)."),
]


def _where(e: BaseException) -> str:
    """'(in fn, line 4: code)' for the innermost frame of the student's own code."""
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if "site-packages" not in f.filename and f"{os.sep}torch{os.sep}" not in f.filename
            and f"{os.sep}advlib{os.sep}" not in f.filename]
    if not mine:
        return ""
    f = mine[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f" (in {f.name}, line {f.lineno}:{code})"


def call(fn: Callable, *args, hints: tuple = ()):
    """Run the student's function; its errors become a verdict (``hints``: extra (pattern, hint) pairs
    for this exercise, tried before the general ones)."""
    try:
        return fn(*args)
    except NotImplementedError as e:
        raise NotAttempted() from e
    except Exception as e:  # noqa: BLE001 - the student's code may raise anything
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        text = f"❌ Your function raised an error: {type(e).__name__}: {msg}{_where(e)}"
        hint = next((h for pat, h in (*hints, *ERROR_HINTS) if pat in str(e)), None)
        if hint:
            text += f" Hint: {hint}"
        raise StudentError(text) from e


def exercise(what: str):
    """Decorator: the check's body returns ``(problems, notes)`` (no problems: correct); the wrapper
    prints the verdict, returns True or False, and turns every error of the student's code or of the
    check into False, so a notebook executed headless runs through."""
    def deco(body):
        @functools.wraps(body)
        def check(fn) -> bool:
            if not callable(fn):
                print(f"❌ Pass your function itself, not its result: e.g. `{body.__name__}(my_function)` "
                      f"(got a {type(fn).__name__}).")
                return False
            try:
                # fork_rng: building the fixed model must not shift the notebook's random numbers
                with torch.random.fork_rng(devices=[]), torch.enable_grad():
                    issues, notes = body(fn)
            except NotAttempted:
                print(NOT_ATTEMPTED)
                return False
            except StudentError as e:
                print(str(e))
                return False
            except Exception as e:  # noqa: BLE001 - an odd output the diagnosis did not foresee
                print(f"❌ Could not check your function's output ({type(e).__name__}: {e}). "
                      "Hint: compare what your function returns with the starter cell's description.")
                return False
            if issues:
                print("❌ " + issues[0])
                for extra in issues[1:]:
                    print("   Also: " + extra)
                return False
            print(f"✅ Correct: {what}")
            for n in notes:
                print("   Note: " + n)
            return True
        return check
    return deco


# --------------------------------------------------------------------------- what a function must leave alone

RESTORE_MODE_HINT = ("remember the caller's mode (`model.training`) at the start and hand it back to `model.train(...)` "
                     "before returning, which sets every submodule.")
LOSS_MODE_HINT = ("a loss runs in the mode the training loop chose: do not call `model.train()`/`model.eval()` "
                  "in it, or give the caller's mode (`model.training`, saved at the start) back to `model.train(...)` "
                  "before returning.")


class Watch:
    """Snapshots what a function must leave alone: its tensor arguments, the mode of every module of
    the model, the model's buffers (batch-norm running statistics) and the parameters' gradients
    (cleared first, unless ``keep_grads``: a training step may find the previous step's there)."""

    def __init__(self, model: Optional[nn.Module], keep_grads: bool = False, **tensors: torch.Tensor):
        self.model = model
        self.modes = [(name, m, m.training) for name, m in model.named_modules()] if model is not None else []
        self.buffers = [(name, b, b.detach().clone()) for name, b in model.named_buffers()] if model is not None else []
        self.tensors = {k: (t, t.detach().clone(), t.requires_grad) for k, t in tensors.items()}
        if model is not None and not keep_grads:
            for p in model.parameters():
                p.grad = None

    def input_issues(self) -> list[str]:
        out = []
        for name, (t, copy, req) in self.tensors.items():
            if t.requires_grad and not req:
                out.append(f"Your function switched on requires_grad for the caller's `{name}`. "
                           f"Hint: differentiate with respect to a detached copy of `{name}` (`clone`, `detach`) "
                           f"and switch requires_grad on for the copy only.")
            elif t.shape != copy.shape or not torch.equal(t.detach(), copy):
                out.append(f"Your function changed its argument `{name}` in place (the caller's tensor is "
                           f"modified). Hint: use out-of-place operations (`clamp`, not `clamp_`; a new tensor "
                           f"from `+`, not `+=`) or work on a copy (`clone`).")
        return out

    def mode_issues(self, hint: str = RESTORE_MODE_HINT) -> list[str]:
        """Every module's ``.training`` must be as before the call."""
        changed = [(name, m) for name, m, was in self.modes if m.training != was]
        if not changed:
            return []
        batchnorm = [(n, mod) for n, mod in changed if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
        name, m = next(((n, mod) for n, mod in changed if n == ""), (batchnorm or changed)[0])
        now, before = ("training", "evaluation") if m.training else ("evaluation", "training")
        if name == "":
            return [f"Your function left the model in {now} mode (it was in {before} mode before the call). "
                    f"Hint: {hint}"]
        return [f"Your function left {len(changed)} of the model's {len(self.modes) - 1} submodules (e.g. `{name}`, "
                f"a {type(m).__name__}) in {now} mode, although `model.training` is back to what it was. Hint: "
                f"restore the mode by calling `model.train(...)` with the saved flag, which sets every submodule; "
                f"assigning `model.training` sets only the flag of the outer module."]

    def statistics_issues(self, doing: str) -> list[str]:
        """The buffers (batch-norm running statistics) must be unchanged; ``doing``: what would change
        the model if they were not, for the message (e.g. 'every attack')."""
        changed = [name for name, b, copy in self.buffers
                   if b.shape != copy.shape or not torch.equal(b.detach(), copy)]
        if not changed:
            return []
        return [f"Your function changed the batch-norm running statistics of a model in training mode "
                f"(`{'`, `'.join(changed)}`): in training mode every forward pass normalises with the batch's own "
                f"statistics and updates the running averages, so {doing} would quietly change the model. "
                f"Hint: run the model in evaluation mode inside your function (`model.eval()`) and give the "
                f"caller's mode, saved from `model.training` at the start, back to `model.train(...)` before "
                f"returning."]

    def grad_issues(self, context: str = "attack") -> list[str]:
        if self.model is None:
            return []
        filled = [p for p in self.model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        if not filled:
            return []
        if context == "loss":
            return ["Your function already put gradients into the model's parameters (`p.grad` is filled "
                    "when it returns, e.g. by a `.backward()` for the FGSM step); in a training loop they "
                    "would be added to the gradients of the training loss. Hint: `torch.autograd.grad` gives the "
                    "input gradient without filling `p.grad`; and do not call `.backward()` on the returned loss."]
        return ["Your function left gradients in the model's parameters (`p.grad` is filled after the call, "
                "e.g. by `loss.backward()`); they would leak into the next training step. Hint: "
                "`torch.autograd.grad` computes the gradient with respect to the input only, without filling "
                "`p.grad` (or clear them with `model.zero_grad()` before returning)."]


def on_batchnorm_model(fn: Callable, *args) -> Watch:
    """Run ``fn(model, *args)`` on a fresh :func:`batchnorm_model` (training mode) and return the
    :class:`Watch` taken before the call, to ask what the call changed. Tensor arguments are cloned."""
    model = batchnorm_model()
    watch = Watch(model)
    call(fn, model, *(a.clone() if torch.is_tensor(a) else a for a in args))
    return watch


def as_number(out) -> Optional[float]:
    """``out`` as a float if it is one number (int, float, a one-element tensor or NumPy value; not a
    bool), else None."""
    if isinstance(out, bool):
        return None
    if isinstance(out, (int, float)):
        return float(out)
    if torch.is_tensor(out) and out.numel() == 1:
        return float(out.detach().item())
    try:
        if isinstance(out, np.generic) or (isinstance(out, np.ndarray) and out.size == 1):
            return float(out)
    except (TypeError, ValueError):  # pragma: no cover - a non-numeric array
        pass
    return None


# --------------------------------------------------------------------------- tensors and images


def tensor_issue(out, like: torch.Tensor, name: str, shape_hint: str = "") -> Optional[str]:
    """What is wrong with ``out`` as a float tensor shaped like ``like`` (None: nothing)."""
    if out is None:
        return f"Your function returned None. Hint: end it with `return {name}`."
    if not torch.is_tensor(out):
        return f"Your function returned a {type(out).__name__}, not a tensor. Hint: return the tensor `{name}`."
    if tuple(out.shape) != tuple(like.shape):
        return (f"Your {name} has shape {tuple(out.shape)} but should have shape {tuple(like.shape)}"
                f"{shape_hint}.")
    if not out.is_floating_point():
        return f"Your {name} has dtype {out.dtype}; it should be a float tensor like x."
    if not torch.isfinite(out).all():
        return f"Your {name} contains NaN or inf values."
    return None


def value_range(t: torch.Tensor) -> str:
    return f"min {t.min().item():.3g}, max {t.max().item():.3g}"


def box_issue(out: torch.Tensor, name: str) -> Optional[str]:
    """The problem of an image with values outside [0,1] (None if it has none)."""
    lo, hi = out.min().item(), out.max().item()
    if lo >= -TOL and hi <= 1 + TOL:
        return None
    where = "above 1" if hi > 1 + TOL else "below 0"
    if hi > 1 + TOL and lo < -TOL:
        where = "outside [0,1]"
    return (f"Your {name} has values {where} ({value_range(out)}): an image must stay in [0,1]. "
            f"Hint: clamp the result to the image range [0, 1] (`torch.clamp`).")


PROJECT_HINT = ("clip each pixel separately, first to [x - eps, x + eps] around the clean x, then to [0, 1] "
                "(elementwise `torch.min`/`torch.max`, or `torch.clamp` with tensor bounds).")


def feasibility_issues(out: torch.Tensor, x: torch.Tensor, eps: float, name: str, ball_hint: str) -> list[str]:
    """The problems of an image batch ``out`` that leaves [0,1] or the ε-ball around the clean x."""
    issues = [box] if (box := box_issue(out, name)) else []
    dist = (out - x).abs().max().item()
    if dist > eps + TOL:
        issues.append(f"Your {name} leaves the ε-ball around the clean x (max |{name} - x| = {dist:.3g} > ε = {eps}). "
                      f"Hint: {ball_hint}")
    return issues


def same(a: torch.Tensor, b: torch.Tensor, mask: Optional[torch.Tensor] = None, tol: float = TOL) -> bool:
    """a and b agree within ``tol`` (on ``mask`` only, if given)."""
    if not torch.is_tensor(a) or a.shape != b.shape:
        return False
    close = (a - b).abs() <= tol
    return bool(close.all() if mask is None else close[mask].all())


def reliable(g: torch.Tensor) -> torch.Tensor:
    """Pixels whose gradient sign cannot flip with the rounding of a different loss reduction."""
    return g.abs() > 1e-4 * g.abs().max()


def agrees(out: torch.Tensor, ref: torch.Tensor, x: torch.Tensor, eps: float, g: torch.Tensor) -> bool:
    """An attack's output equals the reference wherever the gradient ``g`` has a reliable sign, and
    lies in [0,1] and in the ε-ball around x everywhere."""
    feasible = (out >= -TOL) & (out <= 1 + TOL) & ((out - x).abs() <= eps + TOL)
    return bool(((out - ref).abs() <= TOL)[reliable(g)].all() and feasible.all())


def attack_output(out, x: torch.Tensor, name: str, watch: Watch, detach_hint: str
                  ) -> tuple[Optional[torch.Tensor], list[str]]:
    """The output of an attack-type function, detached, and what it did wrong besides its values
    (arguments, mode, parameter gradients, attached to a graph); ``(None, [problem])`` if the output
    is not an image batch like x at all."""
    issue = tensor_issue(out, x, name, " (the shape of x)")
    if issue:
        return None, [issue]
    side = watch.input_issues() + watch.mode_issues() + watch.grad_issues()
    if out.requires_grad:
        side.append(f"Your {name} still requires grad (it is attached to the autograd graph of the attack). "
                    f"Hint: {detach_hint}")
    return out.detach(), side


# --------------------------------------------------------------------------- losses


def close(a: float, b: float) -> bool:
    """Two loss values agree (relative tolerance 1e-4)."""
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


def _leaves(t: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors the autograd graph of t accumulates gradients into."""
    out, seen, stack = [], set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            out.append(node.variable)
        stack.extend(f for f, _ in node.next_functions)
    return out


def loss_output_issue(out) -> Optional[str]:
    """What is wrong with ``out`` as a loss a training loop can call ``.backward()`` on (None: nothing)."""
    if out is None:
        return "Your function returned None. Hint: end it with `return loss`."
    if not torch.is_tensor(out):
        return (f"Your function returned a {type(out).__name__}, not a tensor: the training loop needs a tensor "
                f"to call `.backward()` on. Hint: do not use `.item()` on the loss.")
    if out.numel() != 1:
        return (f"Your loss has shape {tuple(out.shape)}; it should be a single number (a 0-dim tensor). Hint: "
                f"average over the batch (F.cross_entropy's default reduction), not `reduction='none'`.")
    if not out.requires_grad:
        return ("Your loss is not connected to the model's parameters (it does not require grad), so training "
                "could not learn from it. Hint: do not compute it inside `torch.no_grad()` and do not detach it.")
    return None


def graph_issues(out: torch.Tensor, model: nn.Module, input_grad_ref: torch.Tensor) -> list[str]:
    """Besides the parameters, a loss may reach a leaf that requires grad only as the clean input it is
    computed on (say the copy of x whose forward pass also gave the FGSM gradient): the gradient that
    reaches such leaves must be the reference loss's gradient with respect to x (``input_grad_ref``),
    so nothing flows back through the adversarial example."""
    params = list(model.parameters())
    strangers = [v for v in _leaves(out) if not any(v is p for p in params)]
    if not strangers:
        return []
    try:
        grads = torch.autograd.grad(out, strangers, retain_graph=True, allow_unused=True)
    except RuntimeError:  # the graph is gone (a backward inside the function): gradient_issues says so
        return []
    grads = [g for g in grads if g is not None]
    if all(g.shape == input_grad_ref.shape for g in grads):
        total = sum(grads, torch.zeros_like(input_grad_ref))
        if (total - input_grad_ref).abs().max() <= 1e-4 * input_grad_ref.abs().max() + 1e-8:
            return []
    return ["Your loss is still connected to the adversarial example's autograd graph (the adversarial example "
            "was not detached), so backward would also run through the attack into the copy of x you "
            "differentiated. Hint: detach the adversarial example (`.detach()`) before computing the loss on it."]


def _param_grads(loss: torch.Tensor, model: nn.Module) -> list[torch.Tensor]:
    params = list(model.parameters())
    gs = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


def gradient_issues(out, model, ref, ref_model, wrong_gradient_message: str) -> list[str]:
    """Problems with the parameter gradients of a loss whose value is already right."""
    try:
        gs = _param_grads(out, model)
    except RuntimeError:
        return ["Your function already called backward on the loss it returns; the training loop does "
                "that itself. Hint: return the loss without calling `.backward()` on it."]
    gr = _param_grads(ref, ref_model)
    differ = not all(torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(gs, gr))
    return [wrong_gradient_message] if differ else []


def check_loss(fn: Callable, cases: list[dict], reference: Callable, mistakes: Callable,
               wrong_gradient: str) -> list[str]:
    """The body of a loss-type check (the loss of one training step, called in training mode).

    ``cases``: the student's arguments after ``model``, by name in the order of its signature, the
    clean images under ``"x"``; ``reference(model, **case)``: the expected loss, differentiable (x may
    require grad); ``mistakes(value, expected, model, **case)``: ``(variants, other)``, the values of
    typical mistakes with their diagnoses ``[(value, message)]`` and the message for any other wrong
    value; ``wrong_gradient``: the message for the right value with the wrong parameter gradients.

    On the fixed network in training mode the loss must have the reference's value and parameter
    gradients, leave its arguments, the mode and ``p.grad`` alone, and not reach back through the
    attack; on :func:`batchnorm_model` it must leave every module's mode as it found it (its value
    depends there on how the attack treats batch norm, so it is not compared).
    """
    for case in cases:
        ref_model = fixed_model().train()  # called in training mode, as in a training loop
        x_req = case["x"].clone().requires_grad_(True)
        ref = reference(ref_model, **{**case, "x": x_req})
        (ref_input_grad,) = torch.autograd.grad(ref, x_req, retain_graph=True)
        model = fixed_model().train()
        args = {k: v.clone() if torch.is_tensor(v) else v for k, v in case.items()}
        watch = Watch(model, **{k: v for k, v in args.items() if torch.is_tensor(v)})
        out = call(fn, model, *args.values())
        issue = loss_output_issue(out)
        if issue:
            return [issue] + watch.grad_issues("loss")
        side = (watch.input_issues() + watch.mode_issues(LOSS_MODE_HINT) + watch.grad_issues("loss")
                + graph_issues(out, model, ref_input_grad))
        v = out.item()
        if not close(v, ref.item()):
            variants, other = mistakes(v, ref.item(), ref_model, **case)
            return [next((msg for val, msg in variants if close(v, val)), other)] + side
        problems = side or gradient_issues(out, model, ref, ref_model, wrong_gradient)
        if problems:
            return problems
    return on_batchnorm_model(fn, *cases[0].values()).mode_issues(LOSS_MODE_HINT)
