"""Exercises of notebook 02b_adversarial_training_in_practice_mnist: predict catastrophic overfitting, turn a
threat stated in words into ε, read an evaluation table for gradient masking.

These exercises ask for an answer rather than a computation: the student's function returns it (a dict, a
number, a set of letters) and the check explains why it is right or wrong. The pattern is the same as for
the others: a starter cell that raises NotImplementedError, a check that prints a verdict."""
from __future__ import annotations

import re

from .cells import Exercise
from .harness import as_number, call, exercise

__all__ = ["check_prediction", "check_choose_eps", "check_masked_table", "NOTEBOOK", "EXERCISES"]


# --------------------------------------------------------------------------- predict catastrophic overfitting

COLLAPSES, ROBUST = "collapses", "robust"
PREDICTION = {"fgsm_no_rs": COLLAPSES, "rs_1.25": ROBUST, "rs_2": ROBUST, "rs_1.25_eps0.4": COLLAPSES}
"""What the notebook's FGSM training runs do in its cpu profile (MNIST, the same schedule; ε = 0.3 unless
the key names another budget), as measured: see the experiment's figure and table."""

_WHY = {
    "fgsm_no_rs": (
        "FGSM without a random start (step ε from x) collapses. Its training examples are always the corner "
        "x + ε·sign(∇x J) that one linear step from x reaches. The network can learn to make its loss curved "
        "around x, so that this one step no longer finds the high-loss points: FGSM accuracy climbs towards the "
        "clean accuracy while PGD accuracy falls to about zero (Wong et al. 2020, 'Fast is better than free', "
        "named this catastrophic overfitting). In the experiment (ε = 0.3) its PGD curve never gets far and falls "
        "back to the floor while its FGSM curve stays high."),
    "rs_1.25": (
        "FGSM with a random start and a step of 1.25ε stays robust at ε = 0.3: this is the recipe of Wong et al. "
        "2020. A pixel whose random start δ0 points against the gradient's sign by more than ε/4 ends at "
        "δ0 + 1.25ε·sign(g), strictly inside the ball, so the training perturbations vary; and the gradient is "
        "taken at a random point of the ball rather than at x. In the experiment its PGD curve rises and stays up."),
    "rs_2": (
        "FGSM with a random start and a step of 2ε did not collapse at ε = 0.3 in this course's run, a surprise if "
        "you expected it to: with |δ0| ≤ ε, δ0 + 2ε·sign(g) always clips to ±ε, so its training examples are "
        "corners of the ball like those of FGSM without a random start. What still differs is where the gradient "
        "is taken: at a random point x + δ0 instead of x, and that was enough here. It is not a guarantee: Wong et "
        "al. 2020 report catastrophic overfitting for large steps on CIFAR-10, Andriushchenko & Flammarion 2020 "
        "show that a random start does not prevent it at larger ε, and at ε = 0.4 this notebook's runs collapse."),
    "rs_1.25_eps0.4": (
        "At ε = 0.4 even the fast-AT recipe (random start, step 1.25ε) collapses in this course's run: within the "
        "first epoch its PGD accuracy falls to about zero while its FGSM accuracy climbs. A random start reduces "
        "the risk of catastrophic overfitting at a moderate budget; it does not remove it at a larger one "
        "(Andriushchenko & Flammarion 2020, who propose GradAlign against it)."),
}
_WORDS = {"collapses": COLLAPSES, "collapse": COLLAPSES, "collapsed": COLLAPSES, "robust": ROBUST}


@exercise("at ε = 0.3 the run without a random start collapses (PGD accuracy near zero, FGSM accuracy high) and "
          "both random-start runs stay robust; at ε = 0.4 the random start with a step of 1.25ε collapses too.")
def check_prediction(fn):
    """``fn()`` must return ``{"fgsm_no_rs": ..., "rs_1.25": ..., "rs_2": ..., "rs_1.25_eps0.4": ...}`` with each
    value "collapses" or "robust", equal to :data:`PREDICTION`."""
    out = call(fn)
    keys = ", ".join(f'"{k}"' for k in PREDICTION)
    if not isinstance(out, dict):
        return [f"Your function returned {'None' if out is None else 'a ' + type(out).__name__}; return a dict "
                f"with the keys {keys}, each mapped to \"collapses\" or \"robust\"."], []
    missing, unknown = [k for k in PREDICTION if k not in out], [k for k in out if k not in PREDICTION]
    if missing or unknown:
        return [f"Your dict has the keys {sorted(map(str, out))}; it needs exactly {keys}"
                + (f" (missing: {', '.join(missing)})" if missing else "")
                + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else "") + "."], []
    said = {k: _WORDS.get(v.strip().lower()) if isinstance(v, str) else None for k, v in out.items()}
    odd = [k for k, v in said.items() if v is None]
    if odd:
        return [f"Predict each run with the word \"collapses\" or \"robust\"; got {out[odd[0]]!r} for "
                f"\"{odd[0]}\"."], []
    wrong = [k for k in PREDICTION if said[k] != PREDICTION[k]]
    if wrong:
        return [f"Your prediction for \"{k}\" ({said[k]}) is not what happens. {_WHY[k]}" for k in wrong], []
    return [], [_WHY[k] for k in PREDICTION]


# --------------------------------------------------------------------------- from a threat in words to ε

LEVELS, MAX_LEVEL = 40, 255
EPS = LEVELS / MAX_LEVEL


@exercise(f"ε = {LEVELS}/{MAX_LEVEL} ≈ {EPS:.4f}: the budget in grey levels divided by the largest grey level, "
          f"the same scaling as the model's input x/{MAX_LEVEL}.")
def check_choose_eps(fn):
    """``fn()`` must return 40/255 (within 1e-6): a change of 40 grey levels on an image that the model
    receives divided by 255."""
    out = call(fn)
    v = as_number(out)
    if v is None:
        return [f"Your function returned {'None' if out is None else 'a ' + type(out).__name__}; return ε as one "
                f"number, in the units of the model's input [0, 1]."], []
    if abs(v - EPS) <= 1e-6:
        return [], ["a follow-up to think about (no code): this ε is about half the MNIST budget 0.3 used in "
                    "notebook 02. Would you train at exactly this ε, or a little above it, and what does each "
                    "choice cost in clean accuracy? And if the attacker could also change the image's contrast "
                    "or move it by a pixel, would any ε of this threat model describe that?"]
    variants = [
        (LEVELS, f"{v:g} is the budget in grey levels, but the model sees x/{MAX_LEVEL}: a change of {LEVELS} levels "
                 f"in the image is a change of {LEVELS}/{MAX_LEVEL} in the model's input. Hint: express ε in the "
                 f"units of the input the model receives."),
        (LEVELS / 256, f"You divided by 256, the number of grey levels; the input is x/{MAX_LEVEL}, which maps the "
                       f"largest level, {MAX_LEVEL}, to 1. Hint: use the same divisor as the input scaling."),
        (LEVELS / 100, "That treats 40 grey levels as 40 %. A grey level is 1/255 of the range, not 1/100. Hint: "
                       "use the same divisor as the input scaling."),
        (2 * EPS, f"That is twice the budget: ε is the radius of the ball, the largest change of a pixel in either "
                  f"direction (|x'ᵢ − xᵢ| ≤ ε), not the width 2ε of the interval [x − ε, x + ε]. The attacker moves "
                  f"a pixel by at most {LEVELS} levels up *or* down."),
        (EPS / 2, f"That is half the budget: the attacker may move a pixel by {LEVELS} levels in either direction, "
                  f"so the radius ε of the ball is {LEVELS} levels, not {LEVELS // 2}."),
        (0.3, "0.3 is the course's usual MNIST budget, not this threat's: derive ε from the statement, the number "
              "of grey levels the attacker may change and the scaling of the input."),
    ]
    for val, msg in variants:
        if abs(v - val) <= 1e-6:
            return [msg], []
    if abs(v - EPS) < 0.5 / MAX_LEVEL:  # within half a grey level
        return [f"{v:g} is {LEVELS}/{MAX_LEVEL} rounded; return the exact value (let Python compute the fraction): "
                f"the check compares within 1e-6, and a rounded ε describes a slightly different threat."], []
    return [f"ε = {v:g} does not describe this threat. Hint: the attacker changes a pixel by at most {LEVELS} of "
            f"the {MAX_LEVEL} grey levels above black, and the model receives x/{MAX_LEVEL}: what change of the "
            f"model's input is that?"], []


# --------------------------------------------------------------------------- reading an evaluation table

CHOICES = {
    "A": "The model's robust accuracy at ε = 0.3 is at most 79.8 % on these images.",
    "B": "PGD on the cross-entropy overestimates the robustness here: its gradients are poor guides to the "
         "adversarial examples (gradient masking).",
    "C": "AutoAttack's number is wrong because AutoAttack is randomized.",
    "D": "A black-box attack finding adversarial examples that the gradient-based attacks missed is a sign of "
         "gradient masking.",
    "E": "FGSM accuracy above PGD accuracy proves that the model is robust.",
}
TRUE = frozenset("ABD")
_REASONS = {
    "A": ("every attack exhibits real adversarial examples, so each column is an upper bound on the robust "
          "accuracy, and the lowest one, AutoAttack's 79.8 %, is the tightest: on 20.2 % of the images the model "
          "is wrong, on the clean image or on a point inside the ball that an attack found."),
    "B": ("PGD-50 with 10 restarts stops at 87.8 %, 8 points above AutoAttack on the same images: the extra "
          "adversarial examples exist, but following the cross-entropy gradient does not lead to them. That is "
          "what gradient masking means."),
    "C": ("randomness does not make an attack's number wrong: every adversarial example it reports is a concrete "
          "image inside the ball that the model misclassifies, checkable by anyone. A randomized attack can only "
          "*miss* examples: another seed may find more or fewer, but what it finds stays real, so the robust "
          "accuracy is at most the lowest number any run gives."),
    "D": ("a black-box attack such as Square sees only the outputs; on a model with informative gradients it is "
          "weaker than the gradient attacks. When it still finds examples they missed (here 2.8 points after APGD "
          "and FAB), the gradients are misleading: a classic sign of masking (Athalye et al. 2018; Carlini et al. "
          "2019)."),
    "E": ("a weaker attack giving a higher number proves nothing: attacks only bound the robust accuracy from "
          "above. Here FGSM (97.1 %) is almost as high as the clean accuracy (99.0 %) while stronger attacks find "
          "far more, which is itself a warning sign, not a proof."),
}


def _letters(out) -> tuple[set, list]:
    """(letters, items that are not letters A-E) of an answer given as a set, list, tuple or string."""
    if isinstance(out, str):  # "ABD", "A, B, D": a word made of choices is one letter each
        words = re.findall(r"[A-Za-z]+", out)
        items = [c for w in words for c in (w if set(w.upper()) <= set(CHOICES) else [w])]
    elif isinstance(out, (set, frozenset, list, tuple)):
        items = list(out)
    else:
        raise TypeError(type(out).__name__)
    letters = {i.strip().upper() for i in items if isinstance(i, str) and i.strip().upper() in CHOICES}
    return letters, [i for i in items if not (isinstance(i, str) and i.strip().upper() in CHOICES)]


@exercise("A, B and D: AutoAttack's 79.8 % bounds the robust accuracy from above, and both the 8-point gap "
          "between PGD and AutoAttack and the black-box attack's extra finds point to gradient masking.")
def check_masked_table(fn):
    """``fn()`` must return the letters of the true statements, {A, B, D} (a set, list, tuple or string)."""
    out = call(fn)
    try:
        chosen, other = _letters(out)
    except TypeError:
        return [f"Your function returned {'None' if out is None else 'a ' + type(out).__name__}; return the "
                f"letters of the statements you think are true, e.g. {{\"A\", \"C\"}}."], []
    if other:
        return [f"{other[0]!r} is not one of the statements; choose among {', '.join(CHOICES)}."], []
    if not chosen:
        return ["You chose no statement; at least one of them is true."], []
    problems = [f"{k} is false: {_REASONS[k]}" for k in sorted(chosen - TRUE)]
    problems += [f"{k} is true, and you left it out: {_REASONS[k]}" for k in sorted(TRUE - chosen)]
    return problems, []


# --------------------------------------------------------------------------- the notebook's exercise cells

NOTEBOOK = "02b_adversarial_training_in_practice_mnist"
EXERCISES = (
    Exercise(check_prediction, "predict", statement=r"""
### Exercise 1: predict catastrophic overfitting, before you run the experiment

The catastrophic-overfitting experiment of this notebook trains, at each budget, three models on MNIST with the same architecture and schedule, each on its own kind of FGSM example ($\delta_0$ is a uniform random start in $[-\varepsilon, \varepsilon]^d$, $\Pi$ the projection onto the ε-ball around $x$ and onto $[0,1]^d$). Predict for $\varepsilon = 0.3$ (the first three keys) and for the fast-AT run at $\varepsilon = 0.4$ (the last):

| key | run | training example |
|---|---|---|
| `"fgsm_no_rs"` | FGSM, no random start, step $\varepsilon$ | $\mathrm{clip}_{[0,1]}\big(x + \varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x, y))\big)$ |
| `"rs_1.25"` | FGSM with a random start, step $1.25\,\varepsilon$ | $\Pi\big(x + \delta_0 + 1.25\,\varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x + \delta_0, y))\big)$ |
| `"rs_2"` | FGSM with a random start, step $2\,\varepsilon$ | $\Pi\big(x + \delta_0 + 2\,\varepsilon\,\mathrm{sign}(\nabla_x J(\theta, x + \delta_0, y))\big)$ |
| `"rs_1.25_eps0.4"` | the `"rs_1.25"` run, at $\varepsilon = 0.4$ | as `"rs_1.25"` |

The training engine monitors each model's accuracy under FGSM and under PGD on held-out images during training. A run suffers *catastrophic overfitting* when its PGD accuracy suddenly falls to about zero while its FGSM accuracy stays high.

**Before** running the experiment, write `predict()` that returns, for each run, `"collapses"` (catastrophic overfitting) or `"robust"`: a dict `{"fgsm_no_rs": ..., "rs_1.25": ..., "rs_2": ..., "rs_1.25_eps0.4": ...}`. The check compares it with what the notebook's cpu-profile run measured, and explains.

*Hints.* Look at what the training perturbation $\delta = x_{adv} - x$ can be, pixel by pixel: with $|\delta_{0,i}| \le \varepsilon$, where can $\delta_{0,i} + \alpha\,\mathrm{sign}(g_i)$ land after clipping to $[-\varepsilon, \varepsilon]$, for $\alpha = 1.25\,\varepsilon$ and for $\alpha = 2\,\varepsilon$? A network trained only on one kind of point can learn to defeat that kind of point.
""", starter=r'''
def predict():
    """Return {"fgsm_no_rs": ..., "rs_1.25": ..., "rs_2": ..., "rs_1.25_eps0.4": ...}, each "collapses" or "robust"."""
    # Your prediction here, before you run the experiment.
    raise NotImplementedError
'''),
    Exercise(check_choose_eps, "choose_eps", statement=r"""
### Exercise 2: from a threat stated in words to ε

A threat model is usually stated in the units of the data, not of the model: *"an attacker may change each pixel of an 8-bit grayscale image (values $0, 1, \dots, 255$) by at most 40 grey levels"*. The model receives $x / 255$, so its inputs lie in $[0, 1]$, and training and evaluation use the $L_\infty$ ball

$$S(x) = \{\, x' : \|x' - x\|_\infty \le \varepsilon \,\} \cap [0,1]^d$$

in those input units. Write `choose_eps()` that returns the $\varepsilon$ of this threat, as a number.

*Hint.* Translate one grey level into the model's input units first; mind what the radius of a ball is.
""", starter=r'''
def choose_eps():
    """Return the epsilon, in the model's input units [0, 1], of the threat stated above."""
    # Your answer here.
    raise NotImplementedError
'''),
    Exercise(check_masked_table, "explain", statement=r"""
### Exercise 3: read an evaluation table

A model trained with FGSM-RS on MNIST is evaluated at $\varepsilon = 0.3$ on the same 1000 test images:

| attack | accuracy (%) |
|---|---|
| none (clean) | 99.0 |
| FGSM | 97.1 |
| PGD-50 × 10 restarts, cross-entropy | 87.8 |
| AutoAttack (APGD-CE, APGD-T, FAB-T, Square) | 79.8 |

AutoAttack runs its attacks one after another, each on the images the previous ones could not break. Square, a black-box random search that uses only the model's outputs, runs last and still lowers the accuracy by 2.8 points after APGD and FAB. Which of these statements are true?

- **A.** The model's robust accuracy at $\varepsilon = 0.3$ is at most 79.8 % on these images.
- **B.** PGD on the cross-entropy overestimates the robustness here: its gradients are poor guides to the adversarial examples (gradient masking).
- **C.** AutoAttack's number is wrong because AutoAttack is randomized.
- **D.** A black-box attack finding adversarial examples that the gradient-based attacks missed is a sign of gradient masking.
- **E.** FGSM accuracy above PGD accuracy proves that the model is robust.

Write `explain()` that returns the letters of the true statements, e.g. `{"A", "C"}`.

*Hint.* An attack's accuracy is what remains *after* it found what it could: what does each number bound, and which attack would you expect to be the strongest on a model whose gradients are informative?
""", starter=r'''
def explain():
    """Return the set of letters of the true statements, e.g. {"A", "C"}."""
    # Your answer here.
    raise NotImplementedError
'''),
)
