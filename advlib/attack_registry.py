"""The attack families of the evaluation, each declared once, beside :func:`advlib.losses.register`.

An attack *spec* names one attack run in a list such as ``["fgsm", "pgd-20@2/255", "cw-20", "aa"]``. All that
advlib knows about a family of specs is one :func:`register_attack` call in this module:

* its **grammar**: ``forms``, the spellings with what they mean (the CLI help and the error for an unknown
  spec), and ``parse``, a spec's text to the fields of an :class:`advlib.evaluate.AttackSpec` (its display name,
  step, steps...; family-specific settings go in ``params``);
* **what runs**: ``run``, the function of :mod:`advlib.attacks` (or :mod:`advlib.autoattack`) that computes the
  adversarial images, *named* (``"attacks.pgd"``), with its keyword arguments for a spec;
* its **bookkeeping** in the evaluation: ``until_fooled``, keywords that make the attack keep an image at the
  first iterate that fools the model and attack it no further (never weaker, cheaper); a spec that runs
  ``autoattack.run`` is driven sub-attack by sub-attack, resumably, and that function says which images survive;
* the **settings** recorded in metrics.json: ``settings`` (after ``spec``, ``name``, ``kind``, ``eps``) and
  ``provenance``, a named function whose dict says what produced the numbers (package and version);
* the **paper's columns** it reproduces: ``reproduces`` (column: the spec that measures it and the file and
  line of the papers' code it follows) and ``column``, which reads recorded settings back as a column;
* what the sanity checks need: ``multi_step`` (must not be weaker than FGSM), ``budget`` (more of the same
  must not be weaker), ``baseline`` (noise: no attack, left out of the comparisons with PGD);
* ``examples``: cheap specs of the family that the attack tests run (``tests/test_attacks.py``).

Derived from these: :func:`parse` (:func:`advlib.evaluate.parse_attack`), :func:`forms_help` (``python -m
advlib evaluate --help``), :func:`published_column` (the course report's published columns),
:func:`reproduced` (:data:`advlib.evaluate.RSLAD_SPECS` and :data:`~advlib.evaluate.RSLAD_SOURCES`) and
:func:`examples`. A registration is checked when it is made: a column it reproduces must be one of the
paper's, its spec must parse to the family, and ``column`` must read that spec's settings back as that column.

This module is plain Python in the lowest layer (docs/architecture.md, "Layers"), so that the course report
reads the published columns without PyTorch. It therefore names the functions that run instead of importing
them; :mod:`advlib.evaluate`, which imports :mod:`advlib.attacks`, calls them (``tests/test_evaluate.py``
checks that every name is a function there).

Adding a family: the attack in :mod:`advlib.attacks`, its :func:`register_attack` call at the end of this
module, its test. Nothing else: parsing, the evaluation's bookkeeping and checks, resumption, the CLI help,
the report and the tests' attack list read the registration.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Hashable, Optional

from . import reference

Spec = Any  # an advlib.evaluate.AttackSpec: the fields a family's parse returns, as attributes
Call = tuple[str, dict]  # ("module.function" of advlib, keyword arguments)


@dataclass(frozen=True)
class Family:
    """A registered attack family: what :func:`register_attack` was given (see the module docstring)."""

    kind: str
    forms: tuple[tuple[str, str], ...]
    parse: Callable[[str, float, Optional[float]], Optional[dict]]
    run: Callable[[Spec], Call]
    settings: Callable[[Spec], dict]
    provenance: Optional[Callable[[Spec], Optional[Call]]] = None
    until_fooled: dict = field(default_factory=dict)
    column: Callable[[dict], Optional[str]] = lambda settings: None
    reproduces: dict = field(default_factory=dict)  # {column: (spec, source)}
    multi_step: Callable[[Spec], bool] = lambda spec: False
    budget: Optional[Callable[[Spec], tuple[Hashable, int]]] = None
    baseline: bool = False
    examples: tuple[str, ...] = ()


FAMILIES: dict[str, Family] = {}
CLEAN = "clean"  # the kind of a clean-accuracy column's "attack" (advlib.record.CLEAN)


def register_attack(kind: str, *, forms: tuple[tuple[str, str], ...],
                    parse: Callable[[str, float, Optional[float]], Optional[dict]], run: Callable[[Spec], Call],
                    settings: Optional[Callable[[Spec], dict]] = None,
                    provenance: Optional[Callable[[Spec], Optional[Call]]] = None,
                    until_fooled: Optional[dict] = None, column: Optional[Callable[[dict], Optional[str]]] = None,
                    reproduces: Optional[dict] = None, multi_step: Optional[Callable[[Spec], bool]] = None,
                    budget: Optional[Callable[[Spec], tuple[Hashable, int]]] = None, baseline: bool = False,
                    examples: tuple[str, ...] = ()) -> Family:
    """Register the attack family ``kind`` (the ``"kind"`` of its recorded settings).

    ``forms``: ``(spelling, meaning)`` pairs; ``parse(text, eps, alpha)``: a lower-case spec to its fields
    (``"name"`` and any of :class:`advlib.evaluate.AttackSpec`'s) or None when the text is not this family's;
    ``run(spec)``: ``("attacks.fgsm", {"eps": spec.eps})``, the function called as ``f(model, x, y, **kw)``;
    ``settings(spec)``: what the recorded settings add after ``spec``, ``name``, ``kind``, ``eps``;
    ``provenance(spec)``: a named function and its keywords whose dict is added to them too (or None);
    ``until_fooled``: keywords the evaluation adds to ``run``'s; ``column(settings)``: the published
    column a recorded attack measures, or None; ``reproduces``: ``{column: (spec, source)}``;
    ``multi_step(spec)``, ``budget(spec)`` (``(what two compared runs share, how much work)``),
    ``baseline`` and ``examples`` as in the module docstring."""
    if kind in FAMILIES or kind == CLEAN:
        raise ValueError(f"an attack family of kind {kind!r} is already registered")
    if not forms:
        raise ValueError(f"attack family {kind!r}: forms= must list its spellings")
    fam = Family(kind, tuple(forms), parse, run, settings or (lambda spec: {}), provenance, dict(until_fooled or {}),
                 column or (lambda settings: None), dict(reproduces or {}), multi_step or (lambda spec: False), budget,
                 baseline, tuple(examples))
    for col, (spec, source) in fam.reproduces.items():
        if col not in reference.RSLAD_COLUMNS or not source:
            raise ValueError(f"attack family {kind!r} reproduces {col!r}: not a column of the paper's table "
                             f"{reference.RSLAD_COLUMNS}, or without a source")
        fields = fam.parse(spec, reference.EPS_VALUE["cifar10"], None)
        if fields is None:
            raise ValueError(f"attack family {kind!r}: its spec {spec!r} for {col!r} is not one of its own")
        settings_ = {"kind": kind, **fam.settings(SimpleNamespace(eps=reference.EPS_VALUE["cifar10"], **fields))}
        if fam.column(settings_) != col:
            raise ValueError(f"attack family {kind!r}: column() reads the settings of {spec!r} as "
                             f"{fam.column(settings_)!r}, not {col!r}")
    FAMILIES[kind] = fam
    return fam


def family(kind: str) -> Family:
    if kind not in FAMILIES:
        raise ValueError(f"no attack family of kind {kind!r}; registered: {', '.join(FAMILIES)}")
    return FAMILIES[kind]


def forms_help() -> str:
    """Every registered spelling with what it means, in registration order (the CLI help, the error for an
    unknown spec)."""
    return "; ".join(f"{form} ({meaning})" if meaning else form
                     for fam in FAMILIES.values() for form, meaning in fam.forms)


def parse(spec: str, eps: float, alpha: Optional[float] = None) -> dict:
    """The fields of an :class:`advlib.evaluate.AttackSpec` for ``spec``: ``spec`` (as given), ``kind``,
    ``eps`` and what its family's ``parse`` returns. ``ValueError`` for a spec no family (or two) claims."""
    text = spec.lower().strip()
    found = [(fam, fields) for fam in FAMILIES.values() if (fields := fam.parse(text, eps, alpha)) is not None]
    if not found:
        raise ValueError(f"Unknown attack spec {spec!r}. Use one of: {forms_help()}.")
    if len(found) > 1:
        raise ValueError(f"the attack spec {spec!r} is claimed by the families {[f.kind for f, _ in found]}: "
                         "make their grammars disjoint")
    fam, fields = found[0]
    return {"spec": spec, "kind": fam.kind, "eps": eps, **fields}


def published_column(attack: Optional[dict]) -> Optional[str]:
    """The column of the RSLAD paper's table (:data:`advlib.reference.RSLAD_COLUMNS`) measured by an attack with
    these recorded settings (:meth:`advlib.evaluate.AttackSpec.settings`; ``{"kind": "clean"}`` for clean
    accuracy), as its family's ``column`` reads them; None for an attack that measures none of them and for one
    not recorded."""
    if not isinstance(attack, dict):
        return None
    kind = attack.get("kind")
    if kind == CLEAN:
        return "Clean"
    fam = FAMILIES.get(kind)  # type: ignore[arg-type]
    return fam.column(attack) if fam is not None else None


def reproduced() -> dict[str, tuple[str, str]]:
    """``{column: (spec, source)}`` for the paper's columns some family reproduces, in the table's order."""
    got = {col: v for fam in FAMILIES.values() for col, v in fam.reproduces.items()}
    return {col: got[col] for col in reference.RSLAD_COLUMNS if col in got}


def examples() -> list[str]:
    """The registered families' cheap example specs: the tests' attack list."""
    return [s for fam in FAMILIES.values() for s in fam.examples]


# --------------------------------------------------------------------------- the families

# The RSLAD paper's columns (Zi et al., ICCV 2021, Table 2, at ε = 8/255), each declared with the family that
# measures it, as the papers' own evaluation code defines it (file and line; the snapshots read: zibojia/RSLAD
# c40e04f, yaodongyu/TRADES 6e8e11b, MadryLab/cifar10_challenge f15682d):
# * PGD_SAT, the attack of SAT (Madry et al.): 20 steps of 2/255 on the cross-entropy from a uniform start
#   in the ε-ball. cifar10_challenge config.json l.26-30 (epsilon 8, step_size 2.0, random_start true,
#   loss_func xent, on the 0-255 scale), pgd_attack.py l.47 (uniform start) and l.56 (signed step);
#   20 steps as in its README's white-box table (l.42: "20-step PGD on the cross-entropy loss").
# * PGD_TRADES, the attack of TRADES' evaluation: 20 steps of 0.003 on the cross-entropy from a uniform
#   start. TRADES pgd_attack_cifar10.py l.20-28 (num-steps 20, step-size 0.003, random start), l.63-65
#   (uniform start), l.72 (cross-entropy); the RSLAD code evaluates its students with the same attack at
#   8/255 (resnet18_rslad_cifar10.py l.72, rslad_loss.py l.8-18). TRADES' script uses epsilon 0.031; we keep
#   the table's 8/255 (0.0314), as the RSLAD code does. TRADES' KL from x + 0.001·N(0, 1) is its *training*
#   attack, not this column ("pgd-20-kl", PGD-KL, stays available to teach what a weak attack looks like).
# * CW∞: PGD on the CW margin with SAT's settings: cifar10_challenge pgd_attack.py l.28-36 (loss_func "cw":
#   the margin, clipped at 50, which never binds at ε = 8/255) and README l.43 ("20-step PGD on the CW loss").
#   The RSLAD paper does not give its step; we use PGD_SAT's, so the two columns differ only in the objective.
# * AA: AutoAttack's standard version, the original code (pyautoattack). Where running it on every image
#   costs too much, advlib.evaluate.rslad_columns(aa_proxy=True) runs its first two attacks (APGD-CE,
#   APGD-T; "APGD-CE+T", spec "aa-apgd") on every image and completes the standard version on a subset.

# -- FGSM

register_attack(
    "fgsm",
    forms=(("fgsm", "FGSM, one signed step of ε"),),
    parse=lambda text, eps, alpha: {"name": "FGSM"} if text == "fgsm" else None,
    run=lambda s: ("attacks.fgsm", {"eps": s.eps}),
    column=lambda settings: "FGSM",
    reproduces={"FGSM": ("fgsm", "Goodfellow et al. 2015: one signed step of ε from the clean image")},
    examples=("fgsm",),
)

# -- PGD on the cross-entropy, the CW margin or TRADES' KL

_PGD = re.compile(r"^(pgd|cw)-(\d+)(?:x(\d+))?((?:-kl|-nors)*)(?:@(\d*\.?\d+(?:/\d*\.?\d+)?))?$")
LOSS_NAMES = {"ce": "PGD", "cw": "CW∞", "kl": "PGD-KL"}


def start_name(loss: str, random_start) -> str:
    """How a PGD spec starts: "uniform" in the ε-ball, "normal" (x + 0.001·N(0, 1)) or "none"."""
    if random_start is True:
        return "normal" if loss == "kl" else "uniform"
    return random_start or "none"


def _step(text: str) -> float:
    num, _, den = text.partition("/")
    return float(num) / float(den) if den else float(num)


def _parse_pgd(text: str, eps: float, alpha: Optional[float]) -> Optional[dict]:
    m = _PGD.match(text)
    if not m:
        return None
    family_, steps, restarts, flags = m.group(1), int(m.group(2)), int(m.group(3) or 1), m.group(4) or ""
    loss = "cw" if family_ == "cw" else ("kl" if "-kl" in flags else "ce")
    name = LOSS_NAMES[loss] + f"-{steps}" + (f"×{restarts}" if restarts > 1 else "")
    if "-nors" in flags:
        name += " (no random start)"
    if m.group(5):  # the spec's own step (advlib.evaluate.parse_attack checks it)
        alpha = _step(m.group(5))
        name += f" (step {m.group(5)})"
    if alpha is None:
        alpha = eps / 4 if eps > 0 else 1 / 255  # at eps 0 the step is irrelevant but must be valid
    return {"name": name, "alpha": alpha, "steps": steps, "restarts": restarts, "loss": loss,
            "random_start": "-nors" not in flags}


def _pgd_column(settings: dict) -> Optional[str]:
    """PGD on the cross-entropy with the step of TRADES' evaluation is PGD_TRADES, with another step PGD_SAT;
    PGD on the CW margin is CW∞; PGD on the KL measures no column of the table."""
    loss = settings.get("loss", "ce")
    if loss == "ce":
        alpha = settings.get("alpha")
        trades = isinstance(alpha, (int, float)) and abs(alpha - reference.PGD_TRADES_STEP) < 1e-9
        return "PGD_TRADES" if trades else "PGD_SAT"
    return {"cw": "CW∞"}.get(loss)


register_attack(
    "pgd",
    forms=(("pgd-STEPS[xRESTARTS][-kl][-nors][@STEP]",
            "PGD on the cross-entropy, STEPS steps, uniform random start, the best of RESTARTS; -kl: on TRADES' KL "
            "term from x + 0.001·N(0, 1), TRADES' training attack, weak as an evaluation; -nors: no random start; "
            "@STEP: its own step size, a number or a fraction (pgd-20@2/255), else --alpha, else eps/4"),
           ("cw-STEPS[xRESTARTS][-nors][@STEP]", "PGD on the CW margin")),
    parse=_parse_pgd,
    run=lambda s: ("attacks.pgd", {"eps": s.eps, "alpha": s.alpha, "steps": s.steps, "random_start": s.random_start,
                                   "restarts": s.restarts, "loss": s.loss}),
    until_fooled={"stop_on_success": True},
    settings=lambda s: {"alpha": s.alpha, "steps": s.steps, "restarts": s.restarts, "loss": s.loss,
                        "random_start": start_name(s.loss, s.random_start)},
    column=_pgd_column,
    reproduces={
        "PGD_SAT": ("pgd-20@2/255", "MadryLab/cifar10_challenge config.json l.26-30, pgd_attack.py l.47, l.56, "
                                    "README.md l.42"),
        "PGD_TRADES": ("pgd-20@0.003", "yaodongyu/TRADES pgd_attack_cifar10.py l.20-28, l.63-65, l.72; zibojia/RSLAD "
                                       "resnet18_rslad_cifar10.py l.72, rslad_loss.py l.8-18"),
        "CW∞": ("cw-20@2/255", "MadryLab/cifar10_challenge pgd_attack.py l.28-36, README.md l.43 (step: PGD_SAT's, "
                               "a choice)"),
    },
    multi_step=lambda s: s.steps * s.restarts > 1,
    # the same objective, start and step: more steps (times restarts) must not leave more images correct
    budget=lambda s: ((s.loss, start_name(s.loss, s.random_start), s.alpha), s.steps * s.restarts),
    examples=("pgd-3", "pgd-2x3", "cw-3", "pgd-3-kl", "pgd-3-nors"),
)

# -- AutoAttack: the original code's standard version or its first two attacks; torchattacks' re-implementation

AUTOATTACK_SPECS = {  # spelling: (name, implementation, sub-attacks, in pyautoattack's names)
    "aa": ("AutoAttack", "original", ("apgd-ce", "apgd-t", "fab-t", "square")),
    "autoattack": ("AutoAttack", "original", ("apgd-ce", "apgd-t", "fab-t", "square")),
    "aa-apgd": ("APGD-CE+T", "original", ("apgd-ce", "apgd-t")),
    "aa-ta": ("AutoAttack (torchattacks)", "torchattacks", ()),
}


def _parse_autoattack(text: str, eps: float, alpha: Optional[float]) -> Optional[dict]:
    if text not in AUTOATTACK_SPECS:
        return None
    name, implementation, subattacks = AUTOATTACK_SPECS[text]
    return {"name": name, "implementation": implementation, "subattacks": subattacks}


def _autoattack_settings(s: Spec) -> dict:
    if s.implementation == "original":
        return {"implementation": "original"}  # completed by the provenance: advlib.autoattack.implementation
    import torchattacks  # on first use, as in advlib.attacks.autoattack: a second to import

    return {"implementation": "torchattacks", "package_version": torchattacks.__version__, "version": "standard",
            "iterations": "torchattacks' defaults (10 iterations for APGD, APGD-T and FAB)"}


register_attack(
    "aa",
    forms=(("aa", "AutoAttack, standard version, the authors' original code (pyautoattack); also autoattack"),
           ("aa-apgd", "the first two attacks of the standard version only (APGD-CE, APGD-T), same code and settings: "
                       "a cheaper stand-in whose gap to aa is measured"),
           ("aa-ta", "AutoAttack as re-implemented by torchattacks, 10 iterations where the original runs 100")),
    parse=_parse_autoattack,
    # the original code runs sub-attack by sub-attack and chunk by chunk, resumably (advlib.autoattack.run says
    # which images survive); torchattacks' returns the images
    run=lambda s: (("autoattack.run", {"eps": s.eps, "attacks_to_run": s.subattacks}) if s.implementation == "original"
                   else ("attacks.autoattack", {"eps": s.eps})),
    settings=_autoattack_settings,
    provenance=lambda s: ("autoattack.implementation", {"attacks_to_run": s.subattacks})
    if s.implementation == "original" else None,
    column=lambda settings: "AA" if settings.get("version", "standard") == "standard" else None,
    reproduces={"AA": ("aa", "Croce & Hein 2020, the standard version of the original code (pyautoattack)")},
    multi_step=lambda s: True,
)

# -- random noise: a baseline, not an attack

register_attack(
    "noise",
    forms=(("noise", "random sign noise of size eps, a baseline, not an attack"),),
    parse=lambda text, eps, alpha: {"name": "Random noise"} if text == "noise" else None,
    run=lambda s: ("attacks.random_noise", {"eps": s.eps}),
    baseline=True,
    examples=("noise",),
)

# -- MM, the Minimum-Margin attack (Gao et al., ICML 2022): APGD on the margin to each likely wrong class in turn

_MM = re.compile(r"^mm(\d+)(?:-(\d+))?$")


def _parse_mm(text: str, eps: float, alpha: Optional[float]) -> Optional[dict]:
    m = _MM.match(text)
    if text == "mm+":  # the paper's MM+ (Sjtubrian/MM-attack mm_attack.py l.192)
        targets, steps = 9, 100
    elif m:
        targets, steps = int(m.group(1)), int(m.group(2) or 20)  # 20 steps: MM3's (mm_attack.py l.180)
    else:
        return None
    if targets < 1 or steps < 1:
        raise ValueError(f"{text}: the MM attack needs at least one target class and one step (mm3, mm9-100)")
    name = "MM+" if (targets, steps) == (9, 100) else f"MM{targets}" + (f"-{steps}" if steps != 20 else "")
    return {"name": name, "steps": steps, "params": {"targets": targets}}


register_attack(
    "mm",
    forms=(("mmK[-STEPS]", "the Minimum-Margin attack (Gao et al. 2022): APGD on the margin to each of the K most "
                           "likely wrong classes in turn, STEPS iterations each (default 20); mm3 is the paper's MM3"),
           ("mm+", "the paper's MM+, mm9-100")),
    parse=_parse_mm,
    run=lambda s: ("attacks.minimum_margin", {"eps": s.eps, "steps": s.steps, "targets": s.params["targets"]}),
    settings=lambda s: {"steps": s.steps, "targets": s.params["targets"]},
    multi_step=lambda s: True,
    budget=lambda s: (s.steps, s.params["targets"]),  # more target classes, as many steps: never weaker
    examples=("mm3-3",),
)
