r"""Self-checking exercises for the course notebooks.

A student writes a function in a notebook cell and passes it to a check, e.g.
``advlib.exercises.check_fgsm(my_fgsm)``. The check runs the function on fixed, seeded inputs
(a tiny fixed network built here, a few 28x28 one-channel images in [0,1] with pixels at exactly
0 and 1, and budgets where clamping matters), compares the result with the library's own
implementation, and prints a short verdict:

* ``✅ Correct: ...`` and returns ``True``;
* ``❌ <what is wrong> Hint: <what to do>`` and returns ``False``;
* ``Not attempted yet: ...`` and returns ``False`` for a stub that raises ``NotImplementedError``.

A check never raises for a wrong answer, so notebooks executed headless run through.

Checks, by notebook:

* 00_setup: :func:`check_linf_projection`, :func:`check_linf_distance`
* 01_fgsm_mnist: :func:`check_fgsm`, :func:`check_robust_accuracy`
* 02_adversarial_training_mnist: :func:`check_pgd_step`, :func:`check_weighted_fgsm_loss`,
  :func:`check_trades_loss`

:data:`EXERCISES` holds, per notebook, each exercise's statement (markdown), starter cell and
check cell; :func:`notebook_cells` turns them into cells to paste into a notebook.
"""
from __future__ import annotations

import functools
import os
import traceback
from types import SimpleNamespace
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks, evaluate, losses

__all__ = [
    "check_linf_projection", "check_linf_distance", "check_fgsm", "check_robust_accuracy",
    "check_pgd_step", "check_weighted_fgsm_loss", "check_trades_loss", "EXERCISES", "notebook_cells",
]

NOT_ATTEMPTED = "✏️ Not attempted yet: write your code in the cell above, then run this cell again."
TOL = 1e-5  # float32 slack for pixel values


# --------------------------------------------------------------------------- fixed inputs


def _model() -> nn.Module:
    """A tiny fixed network for 1x28x28 inputs (seeded, independent of the global RNG).

    Tanh rather than ReLU, so that no input gradient is exactly zero and every pixel has a
    well-defined FGSM direction. Rebuilt for every use, so a student function that changes the
    model cannot affect the reference.
    """
    g = torch.Generator().manual_seed(20240)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(4 * 14 * 14, 10))
    with torch.no_grad():
        conv, lin = net[0], net[3]
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.8)
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.3)
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.12)
        lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 0.3)
    return net.eval()


def _images(n: int = 4, seed: int = 1) -> torch.Tensor:
    """n images in [0,1]: a black band (exactly 0), a white band (exactly 1), near-black and
    near-white columns (where a step of eps leaves [0,1]) and random grey pixels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    x[:, :, :5, :] = 0.0
    x[:, :, 23:, :] = 1.0
    x[:, :, 5:23, :3] = 0.04
    x[:, :, 5:23, 25:] = 0.97
    return x


def _labels(n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randint(0, 10, (n,), generator=g)


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the cross-entropy with respect to x, as the library's attacks compute it."""
    with attacks.model_mode(model, "eval"), attacks.frozen(model):
        g, _, _ = attacks.input_gradient(model, x, y, "ce")
    return g


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


# --------------------------------------------------------------------------- running the student's code


class _NotAttempted(Exception):
    pass


class _StudentError(Exception):
    pass


_ERROR_HINTS = [
    ("does not require grad", "the tensor you differentiate with respect to must require gradients: "
     "make a copy with `x_req = x.clone().detach().requires_grad_(True)` and run the model on `x_req`; "
     "and do not compute gradients inside `torch.no_grad()`."),
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
    here = os.path.abspath(__file__)
    mine = [f for f in frames if os.path.abspath(f.filename) != here
            and "site-packages" not in f.filename and f"{os.sep}torch{os.sep}" not in f.filename
            and f"{os.sep}advlib{os.sep}" not in f.filename]
    if not mine:
        return ""
    f = mine[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f" (in {f.name}, line {f.lineno}:{code})"


def _call(fn: Callable, *args, hints: tuple = ()):
    """Run the student's function; its errors become a verdict (``hints``: extra (pattern, hint) pairs
    for this exercise, tried before the general ones)."""
    try:
        return fn(*args)
    except NotImplementedError as e:
        raise _NotAttempted() from e
    except Exception as e:  # noqa: BLE001 - the student's code may raise anything
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        text = f"❌ Your function raised an error: {type(e).__name__}: {msg}{_where(e)}"
        hint = next((h for pat, h in (*hints, *_ERROR_HINTS) if pat in str(e)), None)
        if hint:
            text += f" Hint: {hint}"
        raise _StudentError(text) from e


def _exercise(what: str):
    """Decorator: the check's body returns a list of problems (empty: correct) or a bool; the wrapper
    prints the verdict and turns every error of the student's code or of the check into False."""
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
            except _NotAttempted:
                print(NOT_ATTEMPTED)
                return False
            except _StudentError as e:
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


class _Watch:
    """Snapshots what a function must leave alone: its tensor arguments, the model's modes and
    the parameters' gradients (cleared first)."""

    def __init__(self, model: Optional[nn.Module], **tensors: torch.Tensor):
        self.model = model
        self.modes = [(m, m.training) for m in model.modules()] if model is not None else []
        self.tensors = {k: (t, t.detach().clone(), t.requires_grad) for k, t in tensors.items()}
        if model is not None:
            for p in model.parameters():
                p.grad = None

    def input_issues(self) -> list[str]:
        out = []
        for name, (t, copy, req) in self.tensors.items():
            if t.requires_grad and not req:
                out.append(f"Your function switched on requires_grad for the caller's `{name}`. "
                           f"Hint: work on a copy: `{name}_req = {name}.clone().detach().requires_grad_(True)`.")
            elif t.shape != copy.shape or not torch.equal(t.detach(), copy):
                out.append(f"Your function changed its argument `{name}` in place (the caller's tensor is "
                           f"modified). Hint: use out-of-place operations (`.clamp(...)`, not `.clamp_(...)`; "
                           f"`a = a + b`, not `a += b`) or work on `{name}.clone()`.")
        return out

    def mode_issues(self) -> list[str]:
        changed = [(m, was) for m, was in self.modes if m.training != was]
        if not changed:
            return []
        was = changed[0][1]
        now, before = ("training", "evaluation") if not was else ("evaluation", "training")
        return [f"Your function left the model in {now} mode (it was in {before} mode before the call). "
                f"Hint: do not call `model.train()`/`model.eval()` inside it, or restore the previous mode "
                f"before returning."]

    def grad_issues(self, context: str = "attack") -> list[str]:
        if self.model is None:
            return []
        filled = [p for p in self.model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        if not filled:
            return []
        if context == "loss":
            return ["Your function already put gradients into the model's parameters (`p.grad` is filled "
                    "when it returns, e.g. by a `.backward()` for the FGSM step); in a training loop they "
                    "would be added to the gradients of the training loss. Hint: get the input gradient "
                    "with `torch.autograd.grad(loss, x_req)`, which leaves `p.grad` alone, and do not call "
                    "`.backward()` on the returned loss."]
        return ["Your function left gradients in the model's parameters (`p.grad` is filled after the call, "
                "e.g. by `loss.backward()`); they would leak into the next training step. Hint: use "
                "`grad, = torch.autograd.grad(loss, x_req)`, which computes the gradient with respect to "
                "the input only (or call `model.zero_grad()` before returning)."]


def _tensor_issue(out, like: torch.Tensor, name: str, shape_hint: str = "") -> Optional[str]:
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


def _range(t: torch.Tensor) -> str:
    return f"min {t.min().item():.3g}, max {t.max().item():.3g}"


def _box_issue(out: torch.Tensor, name: str) -> Optional[str]:
    lo, hi = out.min().item(), out.max().item()
    if lo >= -TOL and hi <= 1 + TOL:
        return None
    where = "above 1" if hi > 1 + TOL else "below 0"
    if hi > 1 + TOL and lo < -TOL:
        where = "outside [0,1]"
    return (f"Your {name} has values {where} ({_range(out)}): an image must stay in [0,1]. "
            f"Hint: clamp the result with `.clamp(0, 1)`.")


def _same(a: torch.Tensor, b: torch.Tensor, mask: Optional[torch.Tensor] = None, tol: float = TOL) -> bool:
    if not torch.is_tensor(a) or a.shape != b.shape:
        return False
    close = (a - b).abs() <= tol
    return bool(close.all() if mask is None else close[mask].all())


# --------------------------------------------------------------------------- 00_setup


def _projection_cases():
    x = _images(4, seed=1)
    g = torch.Generator().manual_seed(2)
    cases = []
    for eps in (0.3, 0.1):
        noise = (torch.rand(x.shape, generator=g) * 2 - 1) * 3 * eps
        cases.append((x + noise, x.clone(), eps))
    return cases


@_exercise("your projection lands in the ε-ball around x and in [0,1], and leaves allowed pixels alone.")
def check_linf_projection(fn):
    """``fn(x_adv, x, eps)`` must return the projection of x_adv onto {‖x' - x‖∞ ≤ eps} ∩ [0,1]^d."""
    notes = []
    for x_adv, x, eps in _projection_cases():
        ref = attacks._project(x_adv.clone(), x, eps)
        a_in, x_in = x_adv.clone(), x.clone()
        watch = _Watch(None, x=x_in)
        a_copy = a_in.clone()
        out = _call(fn, a_in, x_in, eps)
        issue = _tensor_issue(out, x, "result", " (the shape of x)")
        if issue:
            return [issue], notes
        out = out.detach()
        inputs = watch.input_issues()
        if not torch.equal(a_in, a_copy) and not notes:
            notes.append("your function changes `x_adv` in place; that is fine here, but in-place changes of "
                         "tensors you still need are a classic source of bugs.")
        if _same(out, ref):
            if inputs:
                return inputs, notes
            continue
        return _projection_diagnosis(out, x_adv, x, eps, ref) + inputs, notes
    return [], notes


def _projection_diagnosis(out, x_adv, x, eps, ref) -> list[str]:
    delta = x_adv - x
    dist = (out - x).abs().max().item()
    per = delta.flatten(1)
    l2 = per.norm(dim=1).view(-1, 1, 1, 1)
    linf = per.abs().amax(dim=1).view(-1, 1, 1, 1)
    l2_scaled = x + delta * torch.clamp(eps / l2, max=1.0)
    linf_scaled = x + delta * torch.clamp(eps / linf, max=1.0)
    ball_only = torch.min(torch.max(x_adv, x - eps), x + eps)
    if _same(out, ball_only):
        return [f"Your result is in the ε-ball around x but not in [0,1] ({_range(out)}): an image must stay "
                f"valid. Hint: finish with `.clamp(0, 1)`."]
    if _same(out, x_adv.clamp(0, 1)):
        return [f"Your result is only clamped to [0,1]: it is still up to {dist:.3g} away from x, more than "
                f"ε = {eps}. The ε-ball has no effect (this also happens when you project around x_adv "
                f"instead of around the clean image x). Hint: also clip to [x - eps, x + eps], e.g. "
                f"`torch.min(torch.max(x_adv, x - eps), x + eps)`."]
    for v, what in ((l2_scaled, "‖δ‖₂ (an L2 projection)"), (linf_scaled, "‖δ‖∞")):
        if _same(out, v) or _same(out, v.clamp(0, 1)):
            return [f"You rescaled the whole perturbation δ = x_adv - x by ε / {what} instead of clipping each "
                    f"pixel: that changes pixels that were already allowed. The L∞ projection clips every pixel "
                    f"separately to [x - ε, x + ε] ∩ [0, 1]. Hint: `torch.min(torch.max(x_adv, x - eps), "
                    f"x + eps).clamp(0, 1)`."]
    if out.abs().max().item() <= eps + TOL and ref.abs().max().item() > eps + 0.05:
        return [f"All your values lie in [{out.min().item():.3g}, {out.max().item():.3g}], inside [-ε, ε]: it looks "
                f"like you projected around 0 (e.g. `x_adv.clamp(-eps, eps)`) or returned the perturbation δ "
                f"instead of the image. Hint: the ball is centred at the clean image x: clip x_adv to "
                f"[x - eps, x + eps] (or return `x + delta.clamp(-eps, eps)`), then clamp to [0,1]."]
    issues = []
    box = _box_issue(out, "result")
    if box:
        issues.append(box)
    if dist > eps + TOL:
        issues.append(f"Some of your pixels are farther than ε = {eps} from x (max |result - x| = {dist:.3g}). "
                      f"Hint: clip to [x - eps, x + eps] around the clean image x.")
    feasible = (delta.abs() <= eps) & (x_adv >= 0) & (x_adv <= 1)
    moved = feasible & ((out - x_adv).abs() > TOL)
    if moved.any():
        i = moved.nonzero()[0].tolist()
        issues.append(f"You changed pixels that were already allowed (e.g. a pixel with x = {x[tuple(i)].item():.3g} "
                      f"and x_adv = {x_adv[tuple(i)].item():.3g} became {out[tuple(i)].item():.3g}, with ε = {eps}): "
                      f"a projection leaves points of the set where they are. Hint: clip each pixel separately, "
                      f"do not rescale or shift the whole perturbation.")
    if not issues:
        bad = ((out - ref).abs() > TOL)
        issues.append(f"Your result differs from the projection on {int(bad.sum())} of {bad.numel()} pixels "
                      f"(largest difference {(out - ref).abs().max().item():.3g}): a pixel outside the set must "
                      f"move to the nearest allowed value (x ± ε, or 0 or 1). Hint: "
                      f"`torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)`.")
    return issues


def _distance_cases():
    x = _images(5, seed=3)
    g = torch.Generator().manual_seed(4)
    noise = (torch.rand(x.shape, generator=g) * 2 - 1) * torch.tensor([0.1, 0.2, 0.05, 0.3, 0.0]).view(-1, 1, 1, 1)
    noise[0] = -noise[0].abs()  # image 0 only gets darker: its largest change is negative
    noise[1, 0, 10, 10] = 0.45  # one large positive outlier
    noise[2, 0, 12, 7] = -0.4  # one large negative outlier
    return [(x + noise, x.clone())]


@_exercise("one L∞ distance per image, max over all pixels of |x_adv - x|.")
def check_linf_distance(fn):
    """``fn(x_adv, x)`` must return a tensor of shape (N,): max_i |x_adv_i - x_i| for each image."""
    for x_adv, x in _distance_cases():
        ref = (x_adv - x).flatten(1).abs().amax(dim=1)
        watch = _Watch(None, x_adv=x_adv.clone(), x=x.clone())
        out = _call(fn, *(t for t, _, _ in watch.tensors.values()))
        n = x.shape[0]
        if torch.is_tensor(out):
            out = out.detach()
            if out.numel() == 1:
                return [f"Your function returned a single number ({out.item():.3g}) for a batch of {n} images: "
                        f"the distance is per image, a tensor of shape ({n},). Hint: flatten each image first, "
                        f"`(x_adv - x).flatten(1)`, then take the max over dim=1."], []
            if out.numel() == n and out.shape != ref.shape:
                return [f"Your result has shape {tuple(out.shape)}; it should have shape ({n},). Hint: use "
                        f"`.amax(dim=1)` on the flattened difference, without keepdim (or `.flatten()` the result)."], []
            if out.shape != ref.shape:
                return [f"Your result has shape {tuple(out.shape)}; it should have shape ({n},), one number per "
                        f"image. Hint: flatten each image, `(x_adv - x).flatten(1)`, and reduce over dim=1 only "
                        f"(dim 0 runs over the batch)."], []
        issue = _tensor_issue(out, ref, "distances", ", one number per image")
        if issue:
            return [issue], []
        issues = []
        d = (x_adv - x).flatten(1)
        if not _same(out, ref):
            if _same(out, d.amax(dim=1)) or _same(out, d.amax(dim=1).clamp(min=0)):
                issues.append("You forgot the absolute value: a pixel that gets darker by 0.4 is as far as one that "
                              "gets brighter by 0.4. Hint: `.abs()` before the max.")
            elif _same(out, d.norm(dim=1), tol=1e-4):
                issues.append("That is the L2 norm (square root of the sum of squares); the L∞ norm is the largest "
                              "absolute change of any pixel. Hint: `.abs().amax(dim=1)`.")
            elif _same(out, d.abs().mean(dim=1)) or _same(out, d.abs().sum(dim=1), tol=1e-3):
                issues.append("You averaged or summed the absolute changes; the L∞ norm is their maximum. "
                              "Hint: `.abs().amax(dim=1)`.")
            else:
                issues.append(f"Your distances {[round(v, 3) for v in out.tolist()]} differ from the expected "
                              f"{[round(v, 3) for v in ref.tolist()]}. Hint: `(x_adv - x).flatten(1).abs().amax(dim=1)`.")
        issues += watch.input_issues()
        if issues:
            return issues, []
    return [], []


# --------------------------------------------------------------------------- 01_fgsm_mnist


def _fgsm_cases():
    x, y = _images(4, seed=1), _labels(4, seed=1)
    return [(x, y, 0.3), (x, y, 0.1)]


def _reliable(g: torch.Tensor) -> torch.Tensor:
    """Pixels whose gradient sign cannot flip with the rounding of a different loss reduction."""
    return g.abs() > 1e-4 * g.abs().max()


@_exercise("your FGSM example matches advlib.attacks.fgsm: one step of ε along the gradient's sign, "
           "clamped to [0,1], detached, and the model left untouched.")
def check_fgsm(fn):
    """``fn(model, x, y, eps)`` must return FGSM's x_adv = clamp(x + eps * sign(∇x CE), 0, 1), detached."""
    for x, y, eps in _fgsm_cases():
        ref_model = _model()
        ref = attacks.fgsm(ref_model, x, y, eps)
        g = _input_grad(ref_model, x, y)
        model = _model()
        x_in, y_in = x.clone(), y.clone()
        watch = _Watch(model, x=x_in)
        out = _call(fn, model, x_in, y_in, eps)
        issue = _tensor_issue(out, x, "x_adv", " (the shape of x)")
        if issue:
            return [issue], []
        side = watch.input_issues() + watch.mode_issues() + watch.grad_issues()
        if out.requires_grad:
            side.append("Your x_adv still requires grad (it is attached to the autograd graph of the attack). "
                        "Hint: return `x_adv.detach()`.")
        out = out.detach()
        reliable = _reliable(g)
        feasible = (out >= -TOL) & (out <= 1 + TOL) & ((out - x).abs() <= eps + TOL)
        if not bool(((out - ref).abs() <= TOL)[reliable].all() and feasible.all()):
            return _fgsm_diagnosis(out, x, y, eps, g, ref, ref_model) + side, []
        if side:
            return side, []
    return [], []


def _fgsm_diagnosis(out, x, y, eps, g, ref, model) -> list[str]:
    issues = []
    delta = out - x
    box = _box_issue(out, "x_adv")
    if box:
        issues.append(box)
    interior = _reliable(g) & (out > TOL) & (out < 1 - TOL)  # where no clamping to [0,1] happened
    if interior.any():
        mags = delta.abs()[interior]
        lo, hi = mags.min().item(), mags.max().item()
        if hi - lo > 1e-4:
            issues.append(f"Your perturbation does not have the same size on every pixel (|x_adv - x| ranges "
                          f"from {lo:.3g} to {hi:.3g} where no clamping happens), but FGSM moves every pixel by "
                          f"exactly ε = {eps}, to a corner of the ε-ball. Hint: use the sign of the gradient, "
                          f"`eps * grad.sign()`, not the raw gradient.")
        elif hi > eps + TOL:
            issues.append(f"Your perturbation is too large: every pixel moves by {hi:.3g} = {hi / eps:.3g} × ε, "
                          f"but FGSM moves by exactly ε = {eps} (so x_adv leaves the ε-ball). Hint: "
                          f"`x + eps * grad.sign()`; ε is already in pixel units of [0,1] (no factor 255), and "
                          f"use the `eps` argument, not a fixed number.")
        elif hi < TOL:
            issues.append(f"Your x_adv equals x wherever no clamping happens: there is no perturbation. Hint: add "
                          f"`eps * grad.sign()` to x.")
        elif hi < eps - TOL:
            issues.append(f"Your perturbation is too small: every pixel moves by {hi:.3g} = {hi / eps:.3g} × ε "
                          f"instead of the full budget ε = {eps}. Hint: `x + eps * grad.sign()`, and use the "
                          f"`eps` argument, not a fixed number.")
        moved = interior & (delta.abs() > TOL)
        if moved.any():
            agree = (delta.sign() == g.sign())[moved].float().mean().item()
            if agree < 0.05:
                issues.append(f"Your x_adv lowers the loss instead of raising it (cross-entropy {_ce(model, x, y):.3f} "
                              f"on x, {_ce(model, out.clamp(0, 1), y):.3f} on your x_adv): you stepped down the "
                              f"gradient. Hint: FGSM adds `eps * grad.sign()` (gradient ascent on the loss).")
            elif agree < 0.95:
                issues.append(f"Your perturbation does not follow the gradient of the loss: only {agree:.0%} of the "
                              f"pixels move in the direction that increases the cross-entropy. Hint: differentiate "
                              f"`F.cross_entropy(model(x_req), y)` with respect to `x_req`, with the true labels y.")
    dist = delta.abs().max().item()
    if not issues and dist > eps + TOL:
        issues.append(f"Some pixels move by more than ε = {eps} (max |x_adv - x| = {dist:.3g}). Hint: "
                      f"`(x + eps * grad.sign()).clamp(0, 1)`.")
    if not issues:
        bad = (delta - (ref - x)).abs() > TOL
        issues.append(f"Your x_adv differs from the FGSM example on {int(bad.sum())} of {bad.numel()} pixels "
                      f"(largest difference {(out - ref).abs().max().item():.3g}). Hint: x_adv = "
                      f"`(x + eps * grad.sign()).clamp(0, 1)` with grad the gradient of the cross-entropy "
                      f"with respect to x.")
    return issues


class _RecordingAttack:
    """FGSM from the library, remembering how it was called."""

    def __init__(self, eps: float):
        self.eps, self.calls, self.images = eps, 0, 0

    def __call__(self, model, x, y):
        self.calls += 1
        self.images += len(x)
        return attacks.fgsm(model, x, y, self.eps)


def _accuracy_case():
    """16 images; 12 labelled with the fixed model's prediction, 4 with another class."""
    x = _images(16, seed=5)
    with torch.no_grad():
        pred = _model()(x).argmax(1)
    y = pred.clone()
    y[[1, 6, 11, 14]] = (pred[[1, 6, 11, 14]] + 3) % 10
    # eps such that clean (0.75), robust (0.3125), 1 - robust, ... are all different numbers
    return x, y, 0.01


def _number(out):
    if isinstance(out, bool):
        return None
    if isinstance(out, (int, float)):
        return float(out)
    if torch.is_tensor(out) and out.numel() == 1:
        return float(out.detach().item())
    try:
        import numpy as np
        if isinstance(out, np.generic) or (isinstance(out, np.ndarray) and out.size == 1):
            return float(out)
    except ImportError:  # pragma: no cover
        pass
    return None


@_exercise("your loop measures the accuracy under attack as evaluate.batched_accuracy does.")
def check_robust_accuracy(fn):
    """``fn(model, x, y, attack) -> float``: the fraction of images still classified correctly after
    ``x_adv = attack(model, x, y)``."""
    x, y, eps = _accuracy_case()
    ref_model = _model()
    ref = evaluate.batched_accuracy(ref_model, x, y, lambda m, a, b: attacks.fgsm(m, a, b, eps))
    clean = evaluate.batched_accuracy(ref_model, x, y)
    x_fgsm = attacks.fgsm(ref_model, x, y, eps)
    with torch.no_grad():
        p_clean = ref_model(x).argmax(1)
        p_adv = ref_model(x_fgsm).argmax(1)
    n = len(y)
    model, attack = _model(), _RecordingAttack(eps)
    x_in, y_in = x.clone(), y.clone()
    watch = _Watch(model, x=x_in, y=y_in)
    out = _call(fn, model, x_in, y_in, attack, hints=(
        ("does not require grad", "the attack needs gradients: call `x_adv = attack(model, x, y)` outside "
         "`torch.no_grad()`, and put only the predictions on x_adv inside it."),))
    notes = []
    v = _number(out)
    if v is None:
        what = "None (did you forget `return`?)" if out is None else (
            f"a tensor of shape {tuple(out.shape)}" if torch.is_tensor(out) else f"a {type(out).__name__}")
        return [f"Your function returned {what}; it should return one number, the accuracy. Hint: "
                f"`(pred == y).float().mean().item()`."], notes
    if torch.is_tensor(out):
        notes.append("you return a tensor; `.item()` turns it into a plain Python number.")
    issues = []
    if attack.calls == 0:
        issues.append("You never called `attack(model, x, y)`: the accuracy under attack is measured on the "
                      "adversarial images. Hint: `x_adv = attack(model, x, y)`, then predict on x_adv.")
    if abs(v - ref) > 1e-6:
        both = ((p_clean == y) & (p_adv == y)).sum().item()
        variants = [
            (clean, f"That is the clean accuracy ({clean:.4g}): you predicted on x instead of on the attacked "
                    f"images. Hint: `model(x_adv).argmax(dim=1)`."),
            (1 - ref, f"That is the error rate under attack ({1 - ref:.4g}), one minus the accuracy. Hint: count "
                      f"the images where the prediction equals the label, `pred == y`."),
            (100 * ref, f"That is the accuracy in percent ({100 * ref:.4g}); return a fraction in [0,1]. Hint: "
                        f"drop the factor 100."),
            (ref * n, f"That is the number of correctly classified images ({int(ref * n)}); return a fraction. "
                      f"Hint: divide by `len(y)`, or use `.float().mean()`."),
            ((p_adv == p_clean).float().mean().item(),
             "You compared the predictions on x_adv with the predictions on x; accuracy compares them with the "
             "true labels y. Hint: `(model(x_adv).argmax(dim=1) == y)`."),
            (both / max((p_clean == y).sum().item(), 1),
             "You divided by the number of images classified correctly before the attack; the accuracy under "
             "attack is over all images. Hint: divide by `len(y)`."),
        ]
        for val, msg in variants:
            if abs(v - val) <= 1e-6:
                issues.append(msg)
                break
        else:
            issues.append(f"Your function returned {v:.4g}; the accuracy under attack is {ref:.4g} here (clean "
                          f"accuracy {clean:.4g}). Hint: `x_adv = attack(model, x, y)`, then "
                          f"`(model(x_adv).argmax(dim=1) == y).float().mean().item()`.")
    issues += watch.input_issues() + watch.mode_issues()
    return issues, notes


# --------------------------------------------------------------------------- 02_adversarial_training_mnist


def _pgd_cases():
    x, y = _images(4, seed=7), _labels(4, seed=7)
    g = torch.Generator().manual_seed(8)
    cases = []
    # alpha > eps first (fast adversarial training's 1.25 eps): it separates "projected around x_adv"
    # from "not projected"; then a usual PGD step size.
    for eps, alpha in ((0.1, 0.125), (0.2, 0.05)):
        start = attacks._project(x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps, x, eps)
        cases.append((start, x.clone(), y.clone(), eps, alpha))
    return cases


@_exercise("one signed-gradient ascent step from x_adv, projected onto the ε-ball around the clean x "
           "and onto [0,1], as in advlib.attacks.pgd.")
def check_pgd_step(fn):
    """``fn(model, x_adv, x, y, eps, alpha)`` must return Π(x_adv + alpha * sign(∇ CE at x_adv)),
    Π the projection onto the eps-ball around x intersected with [0,1]."""
    for x_adv, x, y, eps, alpha in _pgd_cases():
        ref_model = _model()
        g = _input_grad(ref_model, x_adv, y)
        ref = attacks._project(x_adv + alpha * g.sign(), x, eps)
        model = _model()
        a_in, x_in = x_adv.clone(), x.clone()
        watch = _Watch(model, x_adv=a_in, x=x_in)
        out = _call(fn, model, a_in, x_in, y.clone(), eps, alpha)
        issue = _tensor_issue(out, x, "x_next", " (the shape of x)")
        if issue:
            return [issue], []
        side = watch.input_issues() + watch.mode_issues() + watch.grad_issues()
        if out.requires_grad:
            side.append("Your x_next still requires grad (it is attached to the autograd graph). Hint: return "
                        "`x_next.detach()`, so the next step starts from a fresh leaf.")
        out = out.detach()
        reliable = _reliable(g)
        feasible = (out >= -TOL) & (out <= 1 + TOL) & ((out - x).abs() <= eps + TOL)
        if not bool(((out - ref).abs() <= TOL)[reliable].all() and feasible.all()):
            return _pgd_diagnosis(out, x_adv, x, y, eps, alpha, g, ref, ref_model) + side, []
        if side:
            return side, []
    return [], []


def _pgd_diagnosis(out, x_adv, x, y, eps, alpha, g, ref, model) -> list[str]:
    s = g.sign()
    step = x_adv + alpha * s
    proj = attacks._project
    dist = (out - x).abs().max().item()
    mask = _reliable(g)
    g_clean = _input_grad(model, x, y)
    variants = [
        (proj(step, x_adv, eps),
         f"You projected around the current iterate x_adv instead of the clean image x: the allowed set is the "
         f"ε-ball around the *clean* x (and [0,1]); around x_adv the iterates drift away from x by up to ε at "
         f"every step (your max |x_next - x| = {dist:.3g} > ε = {eps}). Hint: `torch.min(torch.max(x_next, "
         f"x - eps), x + eps).clamp(0, 1)`."),
        (step.clamp(0, 1),
         f"Your step leaves the ε-ball around the clean x (max |x_next - x| = {dist:.3g} > ε = {eps}): after "
         f"the gradient step, project back onto the ball around x. Hint: `torch.min(torch.max(x_next, x - eps), "
         f"x + eps)`, then `.clamp(0, 1)`."),
        (x + (step - x).clamp(-eps, eps).clamp(0, 1),
         f"You clamped the perturbation δ = x_next - x to [0,1] instead of the image: δ lies in [-ε, ε] and may "
         f"be negative; it is the image x + δ that must lie in [0,1] (your x_next: {_range(out)}). Hint: "
         f"`x_next = (x + delta.clamp(-eps, eps)).clamp(0, 1)`."),
        (torch.min(torch.max(step, x - eps), x + eps),
         f"Your x_next has values outside [0,1] ({_range(out)}): after projecting onto the ε-ball, also clamp to "
         f"the image range. Hint: `.clamp(0, 1)`."),
        (step,
         f"Your step is not projected at all: x_next leaves the ε-ball around x (max |x_next - x| = {dist:.3g} > "
         f"ε = {eps}) and [0,1] ({_range(out)}). Hint: clip to [x - eps, x + eps], then to [0, 1]."),
        (proj(x_adv - alpha * s, x, eps),
         f"Your step lowers the loss (cross-entropy {_ce(model, x_adv, y):.3f} at x_adv, "
         f"{_ce(model, out.clamp(0, 1), y):.3f} at your x_next): you stepped down the gradient. Hint: PGD "
         f"ascends the loss, `x_adv + alpha * grad.sign()`."),
        (proj(x_adv + alpha * g_clean.sign(), x, eps),
         "You took the gradient at the clean x; PGD takes it at the current iterate x_adv (that is what makes "
         "it iterative). Hint: `x_req = x_adv.clone().detach().requires_grad_(True)`, loss on `model(x_req)`."),
        (proj(x + alpha * s, x, eps),
         "You stepped from the clean x instead of from the current iterate x_adv. Hint: "
         "`x_next = x_adv + alpha * grad.sign()`, then project around x."),
    ]
    for v, msg in variants:
        if _same(out, v, mask):
            return [msg]
    issues = []
    box = _box_issue(out, "x_next")
    if box:
        issues.append(box)
    if dist > eps + TOL:
        issues.append(f"Your x_next leaves the ε-ball around the clean x (max |x_next - x| = {dist:.3g} > ε = {eps}). "
                      f"Hint: project with `torch.min(torch.max(x_next, x - eps), x + eps)`.")
    free = mask & ((step - x).abs() < eps - TOL) & (step > TOL) & (step < 1 - TOL)  # no projection binds
    if free.any():
        moves = (out - x_adv)[free]
        lo, hi = moves.abs().min().item(), moves.abs().max().item()
        if hi - lo > 1e-4:
            issues.append(f"Where the projection is not active, your step changes pixels by amounts from {lo:.3g} "
                          f"to {hi:.3g} instead of exactly α = {alpha}. Hint: use the sign of the gradient, "
                          f"`alpha * grad.sign()`, not the raw gradient.")
        elif abs(hi - alpha) > TOL:
            issues.append(f"Where the projection is not active, your step changes every pixel by {hi:.3g} instead of "
                          f"α = {alpha}. Hint: `x_adv + alpha * grad.sign()` (step α, not ε).")
        else:
            agree = (moves.sign() == s[free]).float().mean().item()
            if agree < 0.05:
                issues.append("Your step goes down the gradient, lowering the loss. Hint: PGD ascends: "
                              "`x_adv + alpha * grad.sign()`.")
            elif agree < 0.95:
                issues.append(f"Your step does not follow the gradient of the loss at x_adv ({agree:.0%} of the "
                              f"pixels agree). Hint: differentiate `F.cross_entropy(model(x_req), y)` with respect "
                              f"to `x_req`, a copy of x_adv, with the true labels y.")
    if not issues:
        bad = (out - ref).abs() > TOL
        issues.append(f"Your x_next differs from the expected PGD step on {int(bad.sum())} of {bad.numel()} pixels "
                      f"(largest difference {(out - ref).abs().max().item():.3g}). Hint: x_next = "
                      f"Π(x_adv + α·sign(∇J(x_adv))), Π = clip to [x - ε, x + ε], then to [0, 1].")
    return issues


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


def _loss_output_issues(out, model, name: str) -> Optional[str]:
    if out is None:
        return f"Your function returned None. Hint: end it with `return loss`."
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


def _graph_issues(out, model) -> list[str]:
    params = list(model.parameters())
    strangers = [v for v in _leaves(out) if not any(v is p for p in params)]
    if strangers:
        return ["Your loss is still connected to an input tensor that requires gradients (the copy of x you "
                "differentiated for the attack): the adversarial example was not detached, so backward would "
                "also run through the attack. Hint: `x_adv = x_adv.detach()`, and use the original x (not "
                "`x_req`) for the clean term."]
    return []


def _param_grads(loss, model):
    params = [p for p in model.parameters()]
    gs = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


def _grads_differ(out, model, ref, ref_model) -> Optional[bool]:
    """True if the parameter gradients of the student's loss differ from the reference's;
    None if the student's graph cannot be differentiated any more."""
    try:
        gs = _param_grads(out, model)
    except RuntimeError:
        return None
    gr = _param_grads(ref, ref_model)
    return not all(torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(gs, gr))


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


def _weighted_cases():
    x, y = _images(4, seed=9), _labels(4, seed=9)
    return [(x, y, 0.3, 0.3), (x, y, 0.1, 0.75)]


@_exercise("(1 - mix)·CE(clean) + mix·CE(FGSM example), as advlib.losses.fgsm_weighted computes it.")
def check_weighted_fgsm_loss(fn):
    """``fn(model, x, y, eps, mix)`` must return (1 - mix) * CE(model(x), y) + mix * CE(model(x_fgsm), y)."""
    for x, y, eps, mix in _weighted_cases():
        ref_model = _model().train()  # called in training mode, as in a training loop
        ref, _ = losses.fgsm_weighted(ref_model, x, y, eps, SimpleNamespace(mix=mix, attack_mode="eval"))
        x_fgsm = attacks.fgsm(ref_model, x, y, eps)
        model = _model().train()
        x_in, y_in = x.clone(), y.clone()
        watch = _Watch(model, x=x_in)
        out = _call(fn, model, x_in, y_in, eps, mix)
        issue = _loss_output_issues(out, model, "loss")
        if issue:
            return [issue] + watch.grad_issues("loss"), []
        side = watch.input_issues() + watch.mode_issues() + watch.grad_issues("loss") + _graph_issues(out, model)
        v = out.item()
        if not _close(v, ref.item()):
            s = _input_grad(ref_model, x, y).sign()
            c, a = _ce(ref_model, x, y), _ce(ref_model, x_fgsm, y)
            a_down = _ce(ref_model, (x - eps * s).clamp(0, 1), y)
            a_noclamp = _ce(ref_model, x + eps * s, y)
            variants = [
                (mix * c + (1 - mix) * a, f"You swapped the weights: the clean term gets (1 - mix) and the "
                 f"adversarial term gets mix (here mix = {mix}). Hint: `(1 - mix) * clean_loss + mix * adv_loss`."),
                (mix * a, "Your loss has no clean term: adversarial data augmentation keeps training on the clean "
                 "images too. Hint: add `(1 - mix) * F.cross_entropy(model(x), y)`."),
                (a, "Your loss is only the cross-entropy on the FGSM example: add the clean term and weight both. "
                 "Hint: `(1 - mix) * clean_loss + mix * adv_loss`."),
                ((1 - mix) * c, "Your loss has no adversarial term. Hint: add `mix * F.cross_entropy(model(x_adv), "
                 "y)` with x_adv the FGSM example."),
                (c, "Your loss is only the clean cross-entropy. Hint: `(1 - mix) * clean_loss + mix * adv_loss` "
                 "with adv_loss the cross-entropy on the FGSM example."),
                (c + a, "You forgot the weights: the loss is a weighted average, not a sum. Hint: "
                 "`(1 - mix) * clean_loss + mix * adv_loss`."),
                (0.5 * (c + a), f"You used equal weights 0.5/0.5; use the `mix` argument (here mix = {mix}). Hint: "
                 f"`(1 - mix) * clean_loss + mix * adv_loss`."),
                ((1 - mix) * c + mix * a_down, "Your FGSM example lowers the loss (wrong sign): it should add "
                 "`eps * grad.sign()`."),
                ((1 - mix) * c + mix * a_noclamp, "Your FGSM example is not clamped to [0,1]. Hint: "
                 "`(x + eps * grad.sign()).clamp(0, 1)`."),
            ]
            msg = next((m for val, m in variants if _close(v, val)), None)
            if msg is None:
                msg = (f"Your loss is {v:.5g}; the expected value here is {ref.item():.5g} (clean cross-entropy "
                       f"{c:.4g}, cross-entropy on the FGSM example {a:.4g}, mix = {mix}, ε = {eps}). Hint: "
                       f"`(1 - mix) * clean_loss + mix * adv_loss`, with the FGSM example "
                       f"`(x + eps * grad.sign()).clamp(0, 1)`.")
            return [msg] + side, []
        problems = side or _gradient_issues(out, model, ref, ref_model,
                                            "Your loss has the right value but the wrong gradients with respect to "
                                            "the model's parameters. Hint: compute both terms with the model (no "
                                            "`.detach()` on their logits); only the FGSM example itself is detached.")
        if problems:
            return problems, []
    return [], []


def _gradient_issues(out, model, ref, ref_model, wrong_gradient_message: str) -> list:
    """Problems with the parameter gradients of a loss whose value is already right."""
    differ = _grads_differ(out, model, ref, ref_model)
    if differ is None:
        return ["Your function already called backward on the loss it returns; the training loop does "
                "that itself. Hint: return the loss without calling `.backward()` on it."]
    return [wrong_gradient_message] if differ else []


def _trades_cases():
    x, y = _images(4, seed=11), _labels(4, seed=11)
    g = torch.Generator().manual_seed(12)
    x_adv = (x + 0.3 * (torch.rand(x.shape, generator=g) * 2 - 1).sign()).clamp(0, 1)
    return [(x, x_adv, y, 6.0), (x, x_adv, y, 2.5)]


def _trades_ref(model, x, x_adv, y, beta):
    """TRADES' objective with the library's KL term (advlib.attacks.attack_loss('kl'), the term of
    advlib.losses.trades): per-sample KL(softmax f(x) || softmax f(x_adv)), averaged over the batch."""
    logits_clean, logits_adv = model(x), model(x_adv)
    kl = attacks.attack_loss("kl", logits_adv, y, F.softmax(logits_clean, 1)).mean()
    return F.cross_entropy(logits_clean, y) + beta * kl


@_exercise("CE(f(x), y) + β·KL(softmax f(x) ‖ softmax f(x_adv)) with batchmean reduction, as in "
           "advlib.losses.trades and the TRADES code.")
def check_trades_loss(fn):
    """``fn(model, x, x_adv, y, beta)`` must return CE(f(x), y) + beta * KL(p(x) || p(x_adv)), batchmean."""
    for x, x_adv, y, beta in _trades_cases():
        ref_model = _model().train()
        ref = _trades_ref(ref_model, x, x_adv, y, beta)
        model = _model().train()
        x_in, a_in, y_in = x.clone(), x_adv.clone(), y.clone()
        watch = _Watch(model, x=x_in, x_adv=a_in)
        out = _call(fn, model, x_in, a_in, y_in, beta)
        issue = _loss_output_issues(out, model, "loss")
        if issue:
            return [issue] + watch.grad_issues("loss"), []
        side = watch.input_issues() + watch.mode_issues() + watch.grad_issues("loss") + _graph_issues(out, model)
        v = out.item()
        if not _close(v, ref.item()):
            with torch.no_grad():
                lc, la = ref_model(x), ref_model(x_adv)
                ce_c, ce_a = F.cross_entropy(lc, y).item(), F.cross_entropy(la, y).item()
                per = F.kl_div(F.log_softmax(la, 1), F.softmax(lc, 1), reduction="none")
                per_rev = F.kl_div(F.log_softmax(lc, 1), F.softmax(la, 1), reduction="none")
                kl = per.sum(1).mean().item()
                kl_rev = per_rev.sum(1).mean().item()
                kl_sum, kl_elem = per.sum().item(), per.mean().item()
                kl_noLog = F.kl_div(F.softmax(la, 1), F.softmax(lc, 1), reduction="batchmean").item()
            n = len(y)
            variants = [
                (ce_c + beta * kl_rev, "You swapped the direction of the KL divergence: TRADES uses "
                 "KL(p(x) ‖ p(x_adv)), the clean prediction as the target. `F.kl_div(input, target)` computes "
                 "KL(target ‖ input) and wants log-probabilities as input. Hint: "
                 "`F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction='batchmean')`."),
                (ce_c + kl, f"Your KL term is not multiplied by β (here β = {beta}). Hint: `ce + beta * kl`."),
                (beta * ce_c + kl, f"You multiplied the cross-entropy by β instead of the KL term. Hint: "
                 f"`ce + beta * kl`."),
                (ce_a + beta * kl, "Your cross-entropy is on the adversarial inputs; TRADES puts the cross-entropy on "
                 "the clean inputs (accuracy) and lets the KL term handle x_adv (robustness). Hint: "
                 "`F.cross_entropy(model(x), y)`."),
                (ce_c + beta * kl_sum, f"Your KL term is summed over the batch (reduction='sum'), so it grows "
                 f"with the batch size ({n}× too large here). Hint: `reduction='batchmean'` (the sum divided by "
                 f"the batch size, as in the TRADES code)."),
                (ce_c + beta * kl_elem, "Your KL term uses reduction='mean', which also averages over the 10 "
                 "classes (10× too small). Hint: `reduction='batchmean'`."),
                (ce_c + beta * kl_noLog, "`F.kl_div` expects log-probabilities as its first argument; you passed "
                 "probabilities. Hint: `F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), "
                 "reduction='batchmean')`."),
                (ce_a + beta * kl_rev, "Your cross-entropy is on x_adv and your KL divergence is reversed: TRADES "
                 "is CE(f(x), y) + β·KL(p(x) ‖ p(x_adv)). Hint: `F.kl_div(F.log_softmax(model(x_adv), 1), "
                 "F.softmax(model(x), 1), reduction='batchmean')`."),
            ]
            msg = next((m for val, m in variants if _close(v, val)), None)
            if msg is None:
                msg = (f"Your loss is {v:.5g}; the expected value here is {ref.item():.5g} (clean cross-entropy "
                       f"{ce_c:.4g}, KL(p(x) ‖ p(x_adv)) = {kl:.4g}, β = {beta}). Hint: `F.cross_entropy(model(x), y) "
                       f"+ beta * F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), "
                       f"reduction='batchmean')`.")
            return [msg] + side, []
        problems = side or _gradient_issues(out, model, ref, ref_model,
                                            "Your loss has the right value but the wrong gradients: in TRADES the "
                                            "gradient flows through both predictions in the KL term, the clean one "
                                            "too. Hint: do not `.detach()` (or compute under `torch.no_grad()`) "
                                            "`model(x)` or `model(x_adv)` inside the loss.")
        if problems:
            return problems, []
    return [], []


# --------------------------------------------------------------------------- statements for the notebooks


def _ex(name, title, function, markdown, starter, check):
    return {"name": name, "title": title, "function": function, "markdown": markdown.strip() + "\n",
            "starter": starter.strip() + "\n", "check": f"import advlib.exercises\n\n{check}\n"}


EXERCISES: dict[str, list[dict]] = {
    "00_setup": [
        _ex("linf_projection", "Project onto the threat model", "project_linf", r"""
### Exercise 1: project onto the threat model

Every attack in this course keeps its adversarial example in the set

$$S(x) = \{\, x' : \|x' - x\|_\infty \le \varepsilon \,\} \cap [0,1]^d .$$

Write `project_linf(x_adv, x, eps)` that returns the point of $S(x)$ closest to `x_adv` (the projection $\Pi_{S(x)}(x_{adv})$).

*Hints.* Both constraints act on each pixel separately, so the projection is a clip, pixel by pixel: first to $[x_i - \varepsilon,\ x_i + \varepsilon]$, then to $[0, 1]$. `torch.min`/`torch.max` (or `torch.clamp` with tensor bounds) work elementwise. The ball is centred at the **clean** image `x`. Pixels already in $S(x)$ must not change.
""", r'''
import torch

def project_linf(x_adv, x, eps):
    """Return the projection of x_adv onto {x' : |x' - x|_inf <= eps} ∩ [0,1]^d."""
    # Your code here: clip each pixel to [x - eps, x + eps], then to [0, 1].
    raise NotImplementedError
''', "advlib.exercises.check_linf_projection(project_linf)"),
        _ex("linf_distance", "Measure the size of a perturbation", "linf_distance", r"""
### Exercise 2: measure the size of a perturbation

The size of a perturbation in this course is its $L_\infty$ norm, the largest change of any pixel:

$$\|x_{adv} - x\|_\infty = \max_i\, |x_{adv,i} - x_i| .$$

Write `linf_distance(x_adv, x)` that returns this distance **for each image** of a batch of shape `(N, C, H, W)`: a tensor of shape `(N,)`. You will use it to check that attacks respect their budget $\varepsilon$.

*Hint.* `t.flatten(1)` turns each image into one row; then reduce over `dim=1`.
""", r'''
import torch

def linf_distance(x_adv, x):
    """Return a tensor of shape (N,): max over pixels of |x_adv - x|, for each image."""
    # Your code here.
    raise NotImplementedError
''', "advlib.exercises.check_linf_distance(linf_distance)"),
    ],
    "01_fgsm_mnist": [
        _ex("fgsm", "Implement FGSM", "my_fgsm", r"""
### Exercise 1: implement FGSM

Write `my_fgsm(model, x, y, eps)` that returns the FGSM example

$$x_{adv} = \mathrm{clip}_{[0,1]}\big(x + \varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x, y))\big),$$

with $J$ the cross-entropy averaged over the batch (`F.cross_entropy`). Like the library's attacks, your function must
- return a tensor **detached** from the autograd graph;
- leave the caller's `x`, the model's mode (`model.training`) and the parameters' gradients (`p.grad`) unchanged.

*Hints.* Differentiate with respect to a copy: `x_req = x.clone().detach().requires_grad_(True)`. `grad, = torch.autograd.grad(loss, x_req)` gives the gradient with respect to the input only (unlike `loss.backward()`, it leaves `p.grad` alone). Then `grad.sign()` and `.clamp(0, 1)`.
""", r'''
import torch
import torch.nn.functional as F

def my_fgsm(model, x, y, eps):
    """Return clip_[0,1](x + eps * sign(grad_x CE(model(x), y))), detached."""
    # Your code here: make x_req, compute the loss and its gradient with respect to x_req,
    # step by eps along the gradient's sign, clamp to [0, 1], detach.
    raise NotImplementedError
''', "advlib.exercises.check_fgsm(my_fgsm)"),
        _ex("robust_accuracy", "Accuracy under attack", "robust_accuracy", r"""
### Exercise 2: accuracy under attack

The numbers in this notebook's tables are *accuracies under attack*: the fraction of images the model still classifies correctly after the attack,

$$\mathrm{acc}_{adv} = \frac{1}{n}\sum_{k=1}^{n} \mathbb{1}\big[\arg\max_j f_j(x_{adv}^{(k)}) = y^{(k)}\big], \qquad x_{adv} = \mathrm{attack}(f, x, y).$$

Write `robust_accuracy(model, x, y, attack)` that returns this fraction as a Python `float` in $[0,1]$. `attack(model, x, y)` returns the adversarial images (e.g. `lambda m, a, b: attacks.fgsm(m, a, b, 0.1)`).

*Hints.* The attack needs gradients, so call it **outside** `torch.no_grad()`; the predictions on `x_adv` do not, so compute them inside it. `.argmax(dim=1)` gives the predicted classes, and `.float().mean().item()` turns a boolean tensor into a fraction.
""", r'''
import torch

def robust_accuracy(model, x, y, attack):
    """Return the fraction of images still classified correctly after x_adv = attack(model, x, y)."""
    # Your code here.
    raise NotImplementedError
''', "advlib.exercises.check_robust_accuracy(robust_accuracy)"),
    ],
    "02_adversarial_training_mnist": [
        _ex("pgd_step", "One PGD step", "pgd_step", r"""
### Exercise 1: one PGD step

PGD (Madry et al. 2018) repeats a signed-gradient ascent step followed by a projection onto the threat model around the **clean** image $x$:

$$x^{t+1} = \Pi_{S(x)}\Big(x^{t} + \alpha\,\mathrm{sign}\big(\nabla_{x} J(\theta, x^{t}, y)\big)\Big), \qquad S(x) = \{x' : \|x'-x\|_\infty \le \varepsilon\} \cap [0,1]^d .$$

Write `pgd_step(model, x_adv, x, y, eps, alpha)` that takes the current iterate `x_adv` $= x^t$ and returns $x^{t+1}$, detached. Leave `x`, `x_adv`, the model's mode and `p.grad` unchanged, as in the FGSM exercise.

*Hints.* The gradient is taken at the current iterate `x_adv`, the projection is around the clean `x`: clip to $[x-\varepsilon, x+\varepsilon]$, then to $[0,1]$.
""", r'''
import torch
import torch.nn.functional as F

def pgd_step(model, x_adv, x, y, eps, alpha):
    """Return proj_{S(x)}(x_adv + alpha * sign(grad CE at x_adv)), detached."""
    # Your code here: gradient of the cross-entropy at x_adv, step of alpha along its sign,
    # clip to [x - eps, x + eps] (the ball around the clean x), then to [0, 1].
    raise NotImplementedError
''', "advlib.exercises.check_pgd_step(pgd_step)"),
        _ex("weighted_fgsm_loss", "Adversarial data augmentation", "weighted_fgsm_loss", r"""
### Exercise 2: the loss of adversarial data augmentation

Goodfellow et al. (2015) train on a mix of clean and FGSM examples:

$$\tilde J(\theta, x, y) = (1 - m)\, J(\theta, x, y) + m\, J(\theta, x_{FGSM}, y), \qquad x_{FGSM} = \mathrm{clip}_{[0,1]}\big(x + \varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x, y))\big),$$

with $m$ = `mix` (they used $m = 0.5$). Write `weighted_fgsm_loss(model, x, y, eps, mix)` that returns $\tilde J$ as a scalar tensor a training loop can call `.backward()` on.

*Hints.* The FGSM example is a fixed input for the training step: build it with `torch.autograd.grad` (not `.backward()`, which would fill `p.grad`) and `.detach()` it, so the gradient of the loss does not flow through the attack. Do not call `.backward()` yourself and do not change the model's mode.
""", r'''
import torch
import torch.nn.functional as F

def weighted_fgsm_loss(model, x, y, eps, mix):
    """Return (1 - mix) * CE(model(x), y) + mix * CE(model(x_fgsm), y), a scalar tensor."""
    # Your code here: build the FGSM example (detached), then combine the two cross-entropies.
    raise NotImplementedError
''', "advlib.exercises.check_weighted_fgsm_loss(weighted_fgsm_loss)"),
        _ex("trades_loss", "The TRADES objective", "trades_loss", r"""
### Exercise 3: the TRADES objective

TRADES (Zhang et al. 2019) trades clean accuracy against robustness with

$$\mathcal{L}(\theta) = \mathrm{CE}\big(f(x), y\big) + \beta\, \frac{1}{n}\sum_{k=1}^{n} \mathrm{KL}\Big(\mathrm{softmax} f(x^{(k)}) \,\Big\|\, \mathrm{softmax} f(x_{adv}^{(k)})\Big),$$

the cross-entropy on the **clean** inputs plus $\beta$ times the KL divergence from the clean prediction to the prediction on the adversarial input, summed over classes and averaged over the batch (`reduction='batchmean'`, as in the TRADES code). Write `trades_loss(model, x, x_adv, y, beta)` that returns it as a scalar tensor.

*Hints.* `F.kl_div(input, target)` computes $\mathrm{KL}(\text{target} \,\|\, \cdot)$ and wants **log**-probabilities as `input`: `F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction='batchmean')`. Let the gradient flow through both predictions (no `.detach()`).
""", r'''
import torch
import torch.nn.functional as F

def trades_loss(model, x, x_adv, y, beta):
    """Return CE(model(x), y) + beta * KL(softmax model(x) || softmax model(x_adv)), batchmean."""
    # Your code here.
    raise NotImplementedError
''', "advlib.exercises.check_trades_loss(trades_loss)"),
    ],
}


def notebook_cells(notebook: str) -> list[dict]:
    """The exercise cells of a notebook, in order: ``[{"cell_type": "markdown"|"code", "source": str}]``
    (a heading, then per exercise its statement, starter cell and check cell)."""
    if notebook not in EXERCISES:
        raise ValueError(f"No exercises for {notebook!r}; choose one of {', '.join(EXERCISES)}.")
    cells = [{"cell_type": "markdown", "source": "Write your answer in each starter cell, then run the check "
              "cell below it. Stuck? Read the hint in the check's message. Instructors find reference "
              "answers in `solutions/`.\n"}]
    for ex in EXERCISES[notebook]:
        cells += [{"cell_type": "markdown", "source": ex["markdown"]},
                  {"cell_type": "code", "source": ex["starter"]},
                  {"cell_type": "code", "source": ex["check"]}]
    return cells
