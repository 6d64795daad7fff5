"""Exercises of notebook 00_setup: project onto the threat model, measure the size of a perturbation."""
from __future__ import annotations

import torch

from .. import attacks
from .cells import Exercise
from .harness import (PROJECT_HINT, TOL, Watch, call, exercise, feasibility_issues, images, same, tensor_issue,
                      value_range)

__all__ = ["check_linf_projection", "check_linf_distance", "NOTEBOOK", "EXERCISES"]


def _projection_cases():
    x = images(4, seed=1)
    g = torch.Generator().manual_seed(2)
    cases = []
    for eps in (0.3, 0.1):
        noise = (torch.rand(x.shape, generator=g) * 2 - 1) * 3 * eps
        cases.append((x + noise, x.clone(), eps))
    return cases


@exercise("your projection lands in the ε-ball around x and in [0,1], and leaves allowed pixels alone.")
def check_linf_projection(fn):
    """``fn(x_adv, x, eps)`` must return the projection of x_adv onto {‖x' - x‖∞ ≤ eps} ∩ [0,1]^d."""
    notes = []
    for x_adv, x, eps in _projection_cases():
        ref = attacks.project(x_adv.clone(), x, eps)
        a_in, x_in = x_adv.clone(), x.clone()
        watch = Watch(None, x=x_in)
        a_copy = a_in.clone()
        out = call(fn, a_in, x_in, eps)
        issue = tensor_issue(out, x, "result", " (the shape of x)")
        if issue:
            return [issue], notes
        out = out.detach()
        inputs = watch.input_issues()
        if not torch.equal(a_in, a_copy) and not notes:
            notes.append("your function changes `x_adv` in place; that is fine here, but in-place changes of "
                         "tensors you still need are a classic source of bugs.")
        if same(out, ref):
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
    if same(out, ball_only):
        return [f"Your result is in the ε-ball around x but not in [0,1] ({value_range(out)}): an image must stay "
                f"valid. Hint: finish with a clamp to the image range [0, 1] (`torch.clamp`)."]
    if same(out, x_adv.clamp(0, 1)):
        return [f"Your result is only clamped to [0,1]: it is still up to {dist:.3g} away from x, more than "
                f"ε = {eps}. The ε-ball has no effect (this also happens when you project around x_adv "
                f"instead of around the clean image x). Hint: also clip each pixel to [x - eps, x + eps], the "
                f"bounds set by the clean x (`torch.min`/`torch.max` accept tensors as bounds)."]
    for v, what in ((l2_scaled, "‖δ‖₂ (an L2 projection)"), (linf_scaled, "‖δ‖∞")):
        if same(out, v) or same(out, v.clamp(0, 1)):
            return [f"You rescaled the whole perturbation δ = x_adv - x by ε / {what} instead of clipping each "
                    f"pixel: that changes pixels that were already allowed. The L∞ projection clips every pixel "
                    f"separately to [x - ε, x + ε] ∩ [0, 1]. Hint: {PROJECT_HINT}"]
    if out.abs().max().item() <= eps + TOL and ref.abs().max().item() > eps + 0.05:
        return [f"All your values lie in [{out.min().item():.3g}, {out.max().item():.3g}], inside [-ε, ε]: it looks "
                f"like you projected around 0 (e.g. `x_adv.clamp(-eps, eps)`) or returned the perturbation δ "
                f"instead of the image. Hint: the ball is centred at the clean image x: the bounds of a pixel are "
                f"x - eps and x + eps, not -eps and eps, and the function returns the image (clamped to [0,1]), "
                f"not δ."]
    issues = feasibility_issues(out, x, eps, "result", "clip to [x - eps, x + eps] around the clean image x.")
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
                      f"move to the nearest allowed value (x ± ε, or 0 or 1). Hint: {PROJECT_HINT}")
    return issues


def _distance_cases():
    x = images(5, seed=3)
    g = torch.Generator().manual_seed(4)
    noise = (torch.rand(x.shape, generator=g) * 2 - 1) * torch.tensor([0.1, 0.2, 0.05, 0.3, 0.0]).view(-1, 1, 1, 1)
    noise[0] = -noise[0].abs()  # image 0 only gets darker: its largest change is negative
    noise[1, 0, 10, 10] = 0.45  # one large positive outlier
    noise[2, 0, 12, 7] = -0.4  # one large negative outlier
    return [(x + noise, x.clone())]


@exercise("one L∞ distance per image, max over all pixels of |x_adv - x|.")
def check_linf_distance(fn):
    """``fn(x_adv, x)`` must return a tensor of shape (N,): max_i |x_adv_i - x_i| for each image."""
    for x_adv, x in _distance_cases():
        ref = (x_adv - x).flatten(1).abs().amax(dim=1)
        watch = Watch(None, x_adv=x_adv.clone(), x=x.clone())
        out = call(fn, *(t for t, _, _ in watch.tensors.values()))
        n = x.shape[0]
        if torch.is_tensor(out):
            out = out.detach()
            if out.numel() == 1:
                return [f"Your function returned a single number ({out.item():.3g}) for a batch of {n} images: "
                        f"the distance is per image, a tensor of shape ({n},). Hint: flatten each image into one "
                        f"row first (`flatten(1)`), then reduce over dim=1 only."], []
            if out.numel() == n and out.shape != ref.shape:
                return [f"Your result has shape {tuple(out.shape)}; it should have shape ({n},). Hint: reduce "
                        f"without keepdim (or flatten the result)."], []
            if out.shape != ref.shape:
                return [f"Your result has shape {tuple(out.shape)}; it should have shape ({n},), one number per "
                        f"image. Hint: flatten each image into one row (`flatten(1)`) and reduce over dim=1 only "
                        f"(dim 0 runs over the batch)."], []
        issue = tensor_issue(out, ref, "distances", ", one number per image")
        if issue:
            return [issue], []
        issues = []
        d = (x_adv - x).flatten(1)
        if not same(out, ref):
            if same(out, d.amax(dim=1)) or same(out, d.amax(dim=1).clamp(min=0)):
                issues.append("You forgot the absolute value: a pixel that gets darker by 0.4 is as far as one that "
                              "gets brighter by 0.4. Hint: take the absolute value (`torch.abs`) before the max.")
            elif same(out, d.norm(dim=1), tol=1e-4):
                issues.append("That is the L2 norm (square root of the sum of squares); the L∞ norm is the largest "
                              "absolute change of any pixel. Hint: the maximum (`amax`) of the absolute changes "
                              "of each image.")
            elif same(out, d.abs().mean(dim=1)) or same(out, d.abs().sum(dim=1), tol=1e-3):
                issues.append("You averaged or summed the absolute changes; the L∞ norm is their maximum. "
                              "Hint: reduce with `amax` instead.")
            else:
                issues.append(f"Your distances {[round(v, 3) for v in out.tolist()]} differ from the expected "
                              f"{[round(v, 3) for v in ref.tolist()]}. Hint: the distance of an image is the "
                              f"largest absolute difference between x_adv and x over all its pixels.")
        issues += watch.input_issues()
        if issues:
            return issues, []
    return [], []


# --------------------------------------------------------------------------- the notebook's exercise cells

NOTEBOOK = "00_setup"
EXERCISES = (
    Exercise(check_linf_projection, "project_linf", statement=r"""
### Exercise 1: project onto the threat model

Every attack in this course keeps its adversarial example in the set

$$S(x) = \{\, x' : \|x' - x\|_\infty \le \varepsilon \,\} \cap [0,1]^d .$$

Write `project_linf(x_adv, x, eps)` that returns the point of $S(x)$ closest to `x_adv` (the projection $\Pi_{S(x)}(x_{adv})$).

*Hints.* Both constraints act on each pixel separately, so the projection is a clip, pixel by pixel: first to $[x_i - \varepsilon,\ x_i + \varepsilon]$, then to $[0, 1]$. `torch.min`/`torch.max` (or `torch.clamp` with tensor bounds) work elementwise. The ball is centred at the **clean** image `x`. Pixels already in $S(x)$ must not change.
""", starter=r'''
import torch

def project_linf(x_adv, x, eps):
    """Return the projection of x_adv onto {x' : |x' - x|_inf <= eps} ∩ [0,1]^d."""
    # Your code here: clip each pixel to [x - eps, x + eps], then to [0, 1].
    raise NotImplementedError
'''),
    Exercise(check_linf_distance, "linf_distance", statement=r"""
### Exercise 2: measure the size of a perturbation

The size of a perturbation in this course is its $L_\infty$ norm, the largest change of any pixel:

$$\|x_{adv} - x\|_\infty = \max_i\, |x_{adv,i} - x_i| .$$

Write `linf_distance(x_adv, x)` that returns this distance **for each image** of a batch of shape `(N, C, H, W)`: a tensor of shape `(N,)`. You will use it to check that attacks respect their budget $\varepsilon$.

*Hint.* `t.flatten(1)` turns each image into one row; then reduce over `dim=1`.
""", starter=r'''
import torch

def linf_distance(x_adv, x):
    """Return a tensor of shape (N,): max over pixels of |x_adv - x|, for each image."""
    # Your code here.
    raise NotImplementedError
'''),
)
