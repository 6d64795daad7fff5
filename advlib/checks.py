"""Sanity checks that catch an evaluation fooling itself, as pure functions of measured numbers.

Each check returns a :class:`Flag` whether or not it is raised, so a report can show what was
checked as well as what went wrong. A raised flag says in plain words what the numbers suggest and
what to try. The thresholds leave room for chance: a difference must exceed both a fixed margin and
the width of the 95% intervals of the numbers compared (see :mod:`advlib.stats`).

The checks follow the advice of Carlini et al., "On Evaluating Adversarial Robustness" (2019), and
Croce & Hein's AutoAttack flags (``pyautoattack.checks``): gradient masking shows as single-step or
white-box attacks doing worse than they should, randomness, or attacks that have not converged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from . import stats


@dataclass
class Flag:
    name: str
    raised: bool
    observed: str  # the numbers, in words
    suggests: str = ""  # what a raised flag suggests
    to_try: str = ""  # what to try when it is raised

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if not self.raised:
            return f"ok  {self.name}: {self.observed}"
        return f"FLAG {self.name}: {self.observed}. {self.suggests} Try: {self.to_try}"


def _pct(a: float) -> str:
    return f"{100 * a:.1f}%"


def _beyond_noise(higher: float, lower: float, n: int, margin: float) -> bool:
    """``higher`` exceeds ``lower`` by more than ``margin`` and by more than their intervals' half-widths."""
    if n <= 0:
        return False
    noise = stats.half_width(higher, n) + stats.half_width(lower, n)
    return higher - lower > max(margin, noise)


def eps_zero(acc_eps0: float, clean: float, n: int) -> Flag:
    """An attack at ε = 0 must give the clean accuracy exactly."""
    raised = abs(acc_eps0 - clean) > 0.5 / max(n, 1)
    return Flag("ε = 0 gives the clean accuracy", raised,
                f"PGD at ε = 0: {_pct(acc_eps0)}, clean: {_pct(clean)} ({n} images)",
                "The model predicts differently on the same images inside the attack: it is probably left in "
                "training mode (batch-norm statistics or dropout), or it is random.",
                "evaluate in eval mode (model.eval()); check that the attack restores the mode it found.")


def monotone_in_eps(acc_eps: float, acc_2eps: float, n: int, eps: float) -> Flag:
    """Accuracy under a larger budget cannot be higher (the larger ball contains the smaller)."""
    raised = _beyond_noise(acc_2eps, acc_eps, n, margin=0.01)
    return Flag("accuracy falls as ε grows", raised,
                f"PGD at ε = {eps:.4g}: {_pct(acc_eps)}, at 2ε: {_pct(acc_2eps)} ({n} images)",
                "A bigger budget made the attack weaker: the attack is not finding the worst case (gradient "
                "masking, too small a step, too few steps).",
                "more steps and restarts, a step size proportional to ε, AutoAttack; plot accuracy against ε.")


def fgsm_vs_noise(fgsm: float, noise: float, n: int) -> Flag:
    """A gradient step should hurt more than random noise of the same size (both run over every image)."""
    raised = _beyond_noise(fgsm, noise, n, margin=0.01)
    return Flag("FGSM beats random noise", raised,
                f"FGSM over every image: {_pct(fgsm)}, random sign noise of the same size: {_pct(noise)} ({n} images)",
                "The gradient points the wrong way locally: a sign of gradient masking (or obfuscated gradients).",
                "PGD with random restarts, a black-box attack (Square, in AutoAttack), a loss-landscape plot.")


def label_leaking(fgsm: float, clean: float, n: int) -> Flag:
    """FGSM examples classified better than clean ones: the model learnt the attack's signature. ``fgsm``
    must be measured over every image (an evaluation that counts images wrong when clean as broken can
    never see it)."""
    raised = _beyond_noise(fgsm, clean, n, margin=0.005)
    return Flag("FGSM accuracy not above clean accuracy", raised,
                f"FGSM over every image: {_pct(fgsm)}, clean: {_pct(clean)} ({n} images)",
                "Label leaking: the model recognises the FGSM perturbation (which depends on the label) and "
                "uses it to classify; typical of FGSM training without random start, and of catastrophic "
                "overfitting.",
                "trust multi-step attacks (PGD, AutoAttack) only; train with a random start (FGSM-RS) or PGD.")


def pgd_vs_autoattack(best_pgd: float, aa: float, n: int, pgd_name: str = "PGD", aa_name: str = "AutoAttack") -> Flag:
    """A large gap between the strongest white-box PGD and AutoAttack means PGD was fooled."""
    raised = _beyond_noise(best_pgd, aa, n, margin=0.02)
    return Flag("PGD close to AutoAttack", raised,
                f"{pgd_name}: {_pct(best_pgd)}, {aa_name}: {_pct(aa)} ({n} images; gap {100 * (best_pgd - aa):.1f} points)",
                "PGD with cross-entropy overestimates robustness here: gradient masking or a badly scaled loss.",
                "report AutoAttack, not PGD; look for the cause (loss landscape along the gradient, "
                "PGD on the CW margin, Square's share of the broken points).")


def pgd_vs_other_attacks(ce_pgd: float, others: float, n: int, pgd_name: str = "PGD",
                         other_names: Sequence[str] = ()) -> Flag:
    """PGD on the cross-entropy should not leave far more images correct than the other attacks together
    (per image: the worst case over them). A large gap is what a saturated softmax (scaled logits) or
    masked cross-entropy gradients look like, even where another attack in the table already breaks the model."""
    raised = _beyond_noise(ce_pgd, others, n, margin=0.02)
    names = ", ".join(other_names) or "the other attacks"
    return Flag("cross-entropy PGD close to the other attacks", raised,
                f"{pgd_name}: {_pct(ce_pgd)}, worst case over {names}: {_pct(others)} ({n} images)",
                "The cross-entropy's gradient vanishes or misleads (a saturated softmax, e.g. scaled logits, or "
                "gradient masking): attacks on other objectives find what PGD on the cross-entropy misses.",
                "report the worst case over all attacks and AutoAttack; attack a scale-free loss (the CW margin, "
                "AutoAttack's DLR); look for the cause before trusting any cross-entropy number.")


def weaker_than(acc_strong: float, acc_weak: float, n: int, strong: str = "PGD", weak: str = "FGSM") -> Flag:
    """An attack that should be at least as strong (many steps against FGSM, more steps against fewer of
    the same attack) must not leave more images correct, measured on the same images. When it does, the
    attack is weak (a vanishing gradient at its start, a badly scaled objective, too small a step), and
    its column says nothing about the model."""
    raised = _beyond_noise(acc_strong, acc_weak, n, margin=0.01)
    return Flag(f"{strong} at least as strong as {weak}", raised,
                f"{strong}: {_pct(acc_strong)}, {weak}: {_pct(acc_weak)} ({n} images, the same for both)",
                f"{strong} is weaker than {weak}, which it should dominate: the attack is failing (its objective's "
                "gradient vanishes or misleads at its start, or its step is too small), not the model resisting.",
                "check the attack's objective and start on this model (a KL objective from x + 0.001·N has no "
                "gradient on a confident model); report the strongest attacks and their per-image worst case.")


def converged(acc: float, acc_more: float, n: int, what: str = "PGD") -> Flag:
    """More steps or restarts should not lower the accuracy further."""
    raised = _beyond_noise(acc, acc_more, n, margin=0.01)
    return Flag("attack converged", raised,
                f"{what}: {_pct(acc)} → {_pct(acc_more)} with twice the steps ({n} images)",
                "The attack had not converged: a stronger run of it still finds adversarial examples.",
                "more steps and restarts until the accuracy stops falling; AutoAttack.")


def square_after_white_box(after: dict, n: int) -> Optional[Flag]:
    """AutoAttack's own check: Square (black-box, no gradients) breaking points that APGD and FAB could not."""
    if "square" not in after or "fab-t" not in after:
        return None
    drop = after["fab-t"] - after["square"]
    raised = drop > 0.002
    return Flag("Square adds nothing after the white-box attacks", raised,
                f"robust accuracy after APGD-CE, APGD-T, FAB-T: {_pct(after['fab-t'])}, after Square: "
                f"{_pct(after['square'])} ({n} images)",
                "A black-box attack found adversarial examples the gradient-based ones missed: a sign of "
                "gradient masking (AutoAttack's own flag).",
                "Square with more queries and restarts, an adaptive attack; do not trust PGD numbers here.")


def autoattack_messages(messages: list[str]) -> list[Flag]:
    """AutoAttack's warnings (randomness, probabilities instead of logits, zero gradients, dynamic model)."""
    return [Flag("AutoAttack's own checks", True, m,
                 "AutoAttack considers this evaluation unreliable as it stands.",
                 "read the AutoAttack flags documentation (flags_doc.md in its repository) for this message.")
            for m in messages]


def catastrophic_overfitting(trace: Sequence[dict], n: int, key: str = "holdout_pgd") -> dict:
    """Did a training run lose, within the run, the multi-step robustness it once had, while FGSM
    accuracy stayed high (catastrophic overfitting, Wong et al. 2020)? ``trace``: the engine's
    within-epoch monitor (``TrainConfig.monitor_every``), points ``{"epoch", "holdout_fgsm", key}``
    measured on ``n`` held-out images.

    ``collapsed`` is raised when the final PGD accuracy is below the run's peak by more than the 95%
    intervals and 10 points, and the final FGSM accuracy is above the final PGD accuracy by as much;
    ``when`` is the first monitored point after the peak at which PGD accuracy fell below half the peak."""
    if not trace:
        raise ValueError("the trace is empty: train with monitor_every > 0 to record one")
    pgd = [p[key] for p in trace]
    peak_i = max(range(len(pgd)), key=pgd.__getitem__)
    last = trace[-1]
    fell = _beyond_noise(pgd[peak_i], last[key], n, margin=0.10)
    gap = _beyond_noise(last["holdout_fgsm"], last[key], n, margin=0.10)
    when = next((p["epoch"] for p in trace[peak_i + 1:] if p[key] < pgd[peak_i] / 2), None)
    return {"peak_pgd": pgd[peak_i], "peak_epoch": trace[peak_i]["epoch"], "final_pgd": last[key],
            "final_fgsm": last["holdout_fgsm"], "final_clean": last.get("holdout_clean"),
            "collapsed": bool(fell and gap), "when": when if fell and gap else None, "n": n}
