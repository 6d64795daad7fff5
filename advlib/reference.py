"""Published figures the course compares its own numbers with, as plain Python data.

Transcribed from the course's reference sheet ``shared/reference/rslad-table.md``. All CIFAR-10
figures are L∞ with ε = 8/255, all MNIST figures L∞ with ε = 0.3; accuracies are in %.

* :data:`RSLAD_BEST`, :data:`RSLAD_LAST`: RSLAD paper, Table 2 (best and last checkpoint), keyed by
  ``(model, method)``, values in the order of :data:`RSLAD_COLUMNS`.
* :data:`RSLAD_REPRODUCTION`: an independent reproduction (last checkpoint); ``None`` = not reported.
* :data:`ANCHORS`: other single-model anchors (TRADES, fast_adversarial, AutoAttack READMEs).
* :data:`AWP_README`: AWP's WRN-34-10 rows (clean, AutoAttack) from its README (not on the sheet).
* :data:`ADAAD_ABSTRACT_AA`: AdaAD's ResNet-18 student under AutoAttack, the one figure its abstract gives.

:func:`published_tables` gives all of them as uniform tables (for the course report);
:func:`match` finds the published rows for a model and a training method that a notebook declared
(our names: :data:`PUBLISHED_MODEL`, :data:`PUBLISHED_METHOD`). Which of our attacks measures which
published column is declared with the attack families (:func:`advlib.attack_registry.published_column`),
which published name a training method goes by with the method (``paper=`` of
:func:`advlib.losses.register`). Nothing is guessed from the text of a row or a column.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SHEET = "shared/reference/rslad-table.md"
EPS = {"cifar10": "8/255", "mnist": "0.3"}
EPS_VALUE = {"cifar10": 8 / 255, "mnist": 0.3}

# --------------------------------------------------------------------------- RSLAD, Table 2

RSLAD_CITATION = ('Zi, Zhao, Ma, Jiang: "Revisiting Adversarial Robustness Distillation: Robust Soft Labels '
                  'Make Student Better", ICCV 2021, Table 2')
RSLAD_NOTE = ("CIFAR-10, L∞, ε = 8/255. Teacher for the distillation rows (ARD, IAD, RSLAD): WRN-34-10 trained "
              "with TRADES. PGD_SAT and PGD_TRADES are 20-step PGD on the CE and the TRADES KL objective; CW∞ is "
              "PGD on the CW margin; AA is AutoAttack.")
RSLAD_COLUMNS = ("Clean", "FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "AA")
PGD_TRADES_STEP = 0.003  # TRADES pgd_attack_cifar10.py l.24 (advlib.evaluate.RSLAD_STEP, the PGD_TRADES column)
RSLAD_MODELS = ("ResNet-18", "MobileNetV2")
RSLAD_METHODS = ("Natural", "SAT", "TRADES", "ARD", "IAD", "RSLAD")

RSLAD_BEST: dict[tuple[str, str], tuple[float, ...]] = {
    ("ResNet-18", "Natural"): (94.65, 19.26, 0.0, 0.0, 0.0, 0.0),
    ("ResNet-18", "SAT"): (83.38, 56.41, 49.11, 51.11, 48.67, 45.83),
    ("ResNet-18", "TRADES"): (81.93, 57.49, 52.66, 53.68, 50.58, 49.23),
    ("ResNet-18", "ARD"): (83.93, 59.31, 52.05, 54.20, 51.22, 49.19),
    ("ResNet-18", "IAD"): (83.24, 58.60, 52.21, 54.18, 51.25, 49.10),
    ("ResNet-18", "RSLAD"): (83.38, 60.01, 54.24, 55.94, 53.30, 51.49),
    ("MobileNetV2", "Natural"): (92.95, 14.47, 0.0, 0.0, 0.0, 0.0),
    ("MobileNetV2", "SAT"): (82.48, 56.44, 50.10, 51.74, 49.33, 46.32),
    ("MobileNetV2", "TRADES"): (80.57, 56.05, 51.06, 52.36, 49.36, 47.17),
    ("MobileNetV2", "ARD"): (83.20, 58.06, 50.86, 52.87, 50.39, 48.34),
    ("MobileNetV2", "IAD"): (81.91, 57.00, 51.88, 53.23, 50.45, 48.40),
    ("MobileNetV2", "RSLAD"): (83.40, 59.06, 53.16, 54.78, 51.91, 50.17),
}

RSLAD_LAST: dict[tuple[str, str], tuple[float, ...]] = {
    ("ResNet-18", "Natural"): (94.65, 19.26, 0.0, 0.0, 0.0, 0.0),
    ("ResNet-18", "SAT"): (84.44, 55.37, 46.22, 48.72, 47.14, 43.64),
    ("ResNet-18", "TRADES"): (82.20, 57.86, 52.30, 53.66, 50.69, 49.27),
    ("ResNet-18", "ARD"): (84.23, 59.33, 51.52, 53.74, 51.24, 48.90),
    ("ResNet-18", "IAD"): (83.90, 58.95, 51.35, 53.15, 50.52, 48.48),
    ("ResNet-18", "RSLAD"): (83.33, 59.90, 54.14, 55.61, 53.22, 51.32),
    ("MobileNetV2", "Natural"): (92.78, 14.59, 0.0, 0.0, 0.0, 0.0),
    ("MobileNetV2", "SAT"): (82.89, 56.43, 49.71, 51.48, 49.07, 45.92),
    ("MobileNetV2", "TRADES"): (80.57, 56.05, 51.06, 52.36, 49.36, 47.17),
    ("MobileNetV2", "ARD"): (83.42, 57.94, 50.63, 52.44, 50.09, 48.01),
    ("MobileNetV2", "IAD"): (83.49, 57.44, 49.77, 51.85, 49.41, 46.98),
    ("MobileNetV2", "RSLAD"): (83.11, 59.08, 53.04, 54.50, 51.60, 49.90),
}

REPRODUCTION_CITATION = ("An independent reproduction of RSLAD (last checkpoint), as quoted on the course's "
                         "reference sheet")
REPRODUCTION_NOTE = "CIFAR-10, L∞, ε = 8/255. CW∞ was not reported (–)."
RSLAD_REPRODUCTION: dict[tuple[str, str], tuple[Optional[float], ...]] = {
    ("ResNet-18", "RSLAD"): (83.54, 60.18, 54.22, 55.73, None, 51.67),
    ("MobileNetV2", "RSLAD"): (82.87, 59.14, 53.39, 54.76, None, 50.67),
}

# --------------------------------------------------------------------------- other anchors

TRADES_CITATION = ('Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan: "Theoretically Principled Trade-off between Robustness '
                   'and Accuracy", ICML 2019; repository README https://github.com/yaodongyu/TRADES')
FAST_CITATION = ('Wong, Rice, Kolter: "Fast is better than free: Revisiting adversarial training", ICLR 2020; '
                 'repository README https://github.com/locuslab/fast_adversarial')
AUTOATTACK_CITATION = ('Croce, Hein: "Reliable evaluation of adversarial robustness with an ensemble of diverse '
                       'parameter-free attacks", ICML 2020; repository README https://github.com/fra31/auto-attack')


@dataclass(frozen=True)
class Anchor:
    """One published model: clean, robust (under ``robust_attack``) and AutoAttack accuracy in %."""
    source: str
    setting: str
    dataset: str  # "cifar10" | "mnist"
    model: str
    method: str
    clean: float
    robust: float
    robust_attack: str  # "" when the sheet does not name it
    aa: float
    citation: str
    robust_pgd: Optional[tuple[int, int]] = None  # (steps, restarts) of robust_attack, a CE PGD; None if unnamed

    @property
    def eps(self) -> str:
        return EPS[self.dataset]

    @property
    def title(self) -> str:
        return f"{self.source}: {self.setting}"


ANCHORS: tuple[Anchor, ...] = (
    Anchor("TRADES repo README", "WRN-34-10, CIFAR-10", "cifar10", "WRN-34-10", "TRADES",
           84.92, 56.61, "PGD-20", 53.08, TRADES_CITATION, (20, 1)),
    Anchor("fast_adversarial README / RobustBench",
           "PreActResNet-18, FGSM with random start, 15 epochs, 12 GPU-minutes", "cifar10", "PreActResNet-18",
           "FGSM", 83.34, 46.06, "PGD-50×10", 43.21, FAST_CITATION, (50, 10)),
    Anchor("AutoAttack README", "Madry WRN-34-10", "cifar10", "WRN-34-10", "SAT",
           87.14, 47.04, "", 44.04, AUTOATTACK_CITATION),
    Anchor("TRADES repo README", "MNIST SmallCNN, β = 1, 100 epochs", "mnist", "SmallCNN", "TRADES",
           99.48, 96.07, "PGD-40", 92.81, TRADES_CITATION, (40, 1)),
    Anchor("fast_adversarial (MNIST)", "small CNN, FGSM α = 0.375, 10 epochs", "mnist", "small CNN", "FGSM",
           98.50, 88.77, "PGD-50×10, α 0.01", 82.93, FAST_CITATION, (50, 10)),
)
ANCHOR_COLUMNS = ("Clean", "robust", "AA")

# AWP's own figures (not on the course's reference sheet): the README of the official code, "The Leaderboard
# Under Auto Attack", WRN-34-10 on CIFAR-10, L∞ 8/255, 200 epochs; (clean, AutoAttack) in %. The README gives
# no PGD figure for these rows.
AWP_CITATION = ('Wu, Xia, Wang: "Adversarial Weight Perturbation Helps Robust Generalization", NeurIPS 2020; '
                'repository README https://github.com/csdongxian/AWP ("The Leaderboard Under Auto Attack")')
AWP_MODEL = "WRN-34-10"
AWP_README: dict[str, tuple[float, float]] = {"AT-AWP": (85.36, 53.97), "TRADES-AWP": (85.36, 56.17),
                                              "MART-AWP": (84.43, 54.23)}

# AdaAD's own figure (not on the sheet): the paper's abstract, "the ResNet-18 model trained by AdaAD achieves
# top-rank performance (54.23% robust accuracy) on RobustBench under AutoAttack" (CIFAR-10, L∞ 8/255). The
# official repository's README gives no table; the abstract gives no clean accuracy and does not name the teacher.
ADAAD_CITATION = ('Huang, Chen, Wang, Lu, Cheng, Wang: "Boosting Accuracy and Robustness of Student Models via '
                  'Adaptive Adversarial Distillation", CVPR 2023, abstract')
ADAAD_MODEL = "ResNet-18"
ADAAD_ABSTRACT_AA = 54.23


# --------------------------------------------------------------------------- uniform tables


def published_tables() -> list[dict]:
    """Every published table as ``{key, title, citation, dataset, eps, note, columns, rows}`` where ``rows``
    is ``{row name: {column: value in % or None}}`` (``robust`` cells of anchors carry their attack as
    ``robust_attack`` in a separate dict ``attacks``)."""
    def rslad_rows(table):
        return {f"{m} {meth}": dict(zip(RSLAD_COLUMNS, v)) for (m, meth), v in table.items()}

    tables = [
        dict(key="rslad_best", title="RSLAD paper, Table 2, best checkpoint", citation=RSLAD_CITATION,
             dataset="cifar10", eps=EPS["cifar10"], note=RSLAD_NOTE, columns=list(RSLAD_COLUMNS),
             rows=rslad_rows(RSLAD_BEST), attacks={}),
        dict(key="rslad_last", title="RSLAD paper, Table 2, last checkpoint", citation=RSLAD_CITATION,
             dataset="cifar10", eps=EPS["cifar10"], note=RSLAD_NOTE, columns=list(RSLAD_COLUMNS),
             rows=rslad_rows(RSLAD_LAST), attacks={}),
        dict(key="rslad_reproduction", title="Independent reproduction of RSLAD, last checkpoint",
             citation=REPRODUCTION_CITATION, dataset="cifar10", eps=EPS["cifar10"], note=REPRODUCTION_NOTE,
             columns=list(RSLAD_COLUMNS), rows=rslad_rows(RSLAD_REPRODUCTION), attacks={}),
    ]
    rows, attacks = {}, {}
    for a in ANCHORS:
        rows[a.title] = {"Clean": a.clean, "robust": a.robust, "AA": a.aa}
        attacks[a.title] = a.robust_attack
    tables.append(dict(key="anchors", title="Other anchors", citation="; ".join(dict.fromkeys(
        a.citation for a in ANCHORS)), dataset="cifar10+mnist", eps="CIFAR-10 8/255, MNIST 0.3",
        note="robust = the attack named in brackets (not named on the sheet for the Madry model).",
        columns=list(ANCHOR_COLUMNS), rows=rows, attacks=attacks))
    return tables


# --------------------------------------------------------------------------- matching our rows

LOSSES_DIR = Path(__file__).resolve().parent / "losses"  # the training methods, one module each


def declared_by_methods(keyword: str, where: Path = LOSSES_DIR) -> dict[str, str]:
    """``{method: value}`` of ``keyword`` (``"paper"``, ``"citation"``) in every ``register("<method>", ...)`` call
    of the training methods' modules that gives it. The methods sit above this module (docs/architecture.md,
    "Layers": they import torch, the report does not), so their declarations are read from the source, not
    imported; tests/test_losses.py checks that this equals what the registry holds."""
    out: dict[str, str] = {}
    for path in sorted(where.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "register"):
                continue
            for kw in node.keywords:
                if kw.arg == keyword:
                    try:
                        out[ast.literal_eval(node.args[0])] = ast.literal_eval(kw.value)
                    except (ValueError, IndexError):
                        raise ValueError(f"{path}:{node.lineno}: register(...) must name the method and give "
                                         f"{keyword}= as string literals (advlib.reference reads them)") from None
    return out


# Our names (advlib.models, advlib.losses) -> the names of the published tables. Only declared names are
# matched (see advlib.record: a result table's rows_meta and columns_meta), never guessed from a row's text.
PUBLISHED_MODEL = {"resnet18": "ResNet-18", "preact_resnet18": "PreActResNet-18", "mobilenet_v2": "MobileNetV2",
                   "wrn34_10": "WRN-34-10", "small_cnn": "SmallCNN"}
PUBLISHED_METHOD = declared_by_methods("paper")  # {"standard": "Natural", "pgd": "SAT", ...}, as each method declares


def _published(name: Optional[str], names: dict[str, str]) -> Optional[str]:
    return name if name in names.values() else names.get(name)  # type: ignore[arg-type]


def published_model(model: Optional[str]) -> Optional[str]:
    """The published name of one of our models ('preact_resnet18' -> 'PreActResNet-18'); a published
    name stays as it is; None when it has no published figures here."""
    return _published(model, PUBLISHED_MODEL)


def published_method(method: Optional[str]) -> Optional[str]:
    """The published family of one of our training methods, as the method declares it (``paper=`` of
    :func:`advlib.losses.register`): 'standard' -> 'Natural', 'pgd' -> 'SAT' (Madry PGD training), 'fgsm_rs'
    -> 'FGSM' (fast AT: FGSM with a random start), 'trades', 'ard', 'iad', 'rslad' -> upper case. None for the
    others (FGSM without a random start has no published counterpart here); a published name stays as it is."""
    return _published(method, PUBLISHED_METHOD)


def match(dataset: Optional[str], model: Optional[str], method: Optional[str],
          checkpoint: Optional[str] = None) -> list[dict]:
    """Published rows that correspond to a model ``model`` trained with ``method`` (our names, see
    :func:`published_model`, :func:`published_method`; or the published ones) measured on ``dataset``
    ('mnist' or 'cifar10').

    MNIST (whose published models are not ours; the anchors are shown for scale): TRADES training is
    set beside the TRADES SmallCNN anchor, FGSM with a random start beside the fast_adversarial MNIST
    anchor, PGD training beside both. CIFAR-10: the same model and method in RSLAD Table 2 (best,
    last, reproduction) and the anchors; a CIFAR-10 model that is not in the published tables (the cpu
    profile's small nets) is set beside the published ResNet-18 rows of its method, titled so (compare
    orderings and gaps, not levels). ``checkpoint`` ('best' or 'last', as a row declares it) keeps the
    published rows of that checkpoint only. Nothing for an unknown data set or method.
    Returns ``[{"kind": "rslad"|"anchor", "title", "citation", "values": {...}, "attack": str,
    "pgd": (steps, restarts) or None}]``.
    """
    out: list[dict] = []
    meth = published_method(method)
    if meth is None:
        return out
    if dataset == "mnist":
        mnist = [a for a in ANCHORS if a.dataset == "mnist"]
        picks = [a for a in mnist if a.method == meth] if meth in ("TRADES", "FGSM") else (
            mnist if meth == "SAT" else [])
        return [_anchor_entry(a) for a in picks]
    mod = published_model(model)
    if dataset != "cifar10" or not model:
        return out
    stand_in = mod is None  # not a published architecture: the published ResNet-18 rows, said so
    if stand_in:
        mod = "ResNet-18"
    for ck, title, table, cit in (("best", "RSLAD Table 2, best checkpoint", RSLAD_BEST, RSLAD_CITATION),
                                  ("last", "RSLAD Table 2, last checkpoint", RSLAD_LAST, RSLAD_CITATION),
                                  ("last", "independent reproduction, last checkpoint", RSLAD_REPRODUCTION,
                                   REPRODUCTION_CITATION)):
        if checkpoint in ("best", "last") and ck != checkpoint:
            continue
        if stand_in:
            title += f" (ResNet-18; ours is {model})"
        if (mod, meth) in table:
            out.append({"kind": "rslad", "title": title, "citation": cit,
                        "values": dict(zip(RSLAD_COLUMNS, table[(mod, meth)])), "attack": "", "pgd": None})
    for a in ANCHORS:
        if not stand_in and a.dataset == "cifar10" and a.model == mod and a.method == meth:
            out.append(_anchor_entry(a))
    return out


def _anchor_entry(a: Anchor) -> dict:
    return {"kind": "anchor", "title": a.title, "citation": a.citation,
            "values": {"Clean": a.clean, "robust": a.robust, "AA": a.aa}, "attack": a.robust_attack,
            "pgd": a.robust_pgd}
