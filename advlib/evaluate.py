"""Clean and robust accuracy of a model for a list of named attacks, as a JSON-serialisable table.

Attacks are named by short specs::

    "fgsm"          FGSM
    "pgd-20"        PGD, 20 steps, uniform random start (cross-entropy)
    "pgd-50x10"     PGD, 50 steps, 10 restarts (worst restart per sample)
    "pgd-20-nors"   PGD without random start
    "pgd-20-kl"     PGD on TRADES' KL objective (the PGD_TRADES column)
    "cw-20"         PGD on the CW margin (the CW-infinity column)
    "aa"            AutoAttack, standard version (torchattacks' implementation)
    "noise"         random sign noise of size eps (a baseline, not an attack)

The step size is ``alpha`` if given, else eps/4 (2/255 at eps 8/255, as in the RSLAD evaluation).
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

import torch
import torch.nn as nn

from . import attacks, data as data_mod, models, tables, utils

DEFAULT_ATTACKS = ("fgsm", "pgd-20", "pgd-20-kl", "cw-20", "aa")


@dataclass
class AttackSpec:
    spec: str
    name: str
    kind: str  # fgsm | pgd | aa | noise
    eps: float
    alpha: Optional[float] = None
    steps: int = 1
    restarts: int = 1
    loss: str = "ce"
    random_start: bool = True

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "fgsm":
            return attacks.fgsm(model, x, y, self.eps)
        if self.kind == "pgd":
            return attacks.pgd(model, x, y, self.eps, self.alpha, self.steps, random_start=self.random_start,
                               restarts=self.restarts, loss=self.loss)
        if self.kind == "aa":
            return attacks.autoattack(model, x, y, self.eps)
        if self.kind == "noise":
            return attacks.random_noise(model, x, y, self.eps)
        raise ValueError(self.kind)

    def settings(self) -> dict:
        d = asdict(self)
        if self.kind != "pgd":
            for k in ("alpha", "steps", "restarts", "loss", "random_start"):
                d.pop(k)
        return d


_PGD = re.compile(r"^(pgd|cw)-(\d+)(?:x(\d+))?((?:-kl|-nors)*)$")


def parse_attack(spec: str, eps: float, alpha: Optional[float] = None) -> AttackSpec:
    """Turn a short spec (see the module docstring) into an :class:`AttackSpec`."""
    s = spec.lower().strip()
    attacks.check_settings(eps, attacks.NOT_GIVEN if alpha is None else alpha)
    if s == "fgsm":
        return AttackSpec(spec, "FGSM", "fgsm", eps)
    if s in ("aa", "autoattack"):
        return AttackSpec(spec, "AutoAttack", "aa", eps)
    if s == "noise":
        return AttackSpec(spec, "Random noise", "noise", eps)
    m = _PGD.match(s)
    if not m:
        raise ValueError(f"Unknown attack spec {spec!r}. Use fgsm, pgd-STEPS[xRESTARTS][-kl][-nors], cw-STEPS, aa or noise.")
    family, steps, restarts, flags = m.group(1), int(m.group(2)), int(m.group(3) or 1), m.group(4) or ""
    loss = "cw" if family == "cw" else ("kl" if "-kl" in flags else "ce")
    name = {"ce": "PGD", "cw": "CW∞", "kl": "PGD-TRADES"}[loss] + f"-{steps}" + (f"×{restarts}" if restarts > 1 else "")
    if "-nors" in flags:
        name += " (no random start)"
    if alpha is None:
        alpha = eps / 4 if eps > 0 else 1 / 255  # at eps 0 the step is irrelevant but must be valid
    return AttackSpec(spec, name, "pgd", eps, alpha, steps, restarts, loss,
                      "-nors" not in flags)


def batched_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     attack: Optional[Callable] = None, batch_size: int = 500, bar=None) -> float:
    """Accuracy of ``model`` on ``attack(model, x, y)`` (clean when ``attack`` is None), batched."""
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        xa = attack(model, xb, yb) if attack is not None else xb
        with attacks.model_mode(model, "eval"), torch.no_grad():
            correct += (model(xa).argmax(1) == yb).sum().item()
        if bar is not None:
            bar.update(len(xb))
    return correct / max(len(x), 1)


def check_model_fits(model: nn.Module, dataset_name: str) -> None:
    """Raise ``ValueError`` when ``model`` is a registered model of another data set than ``dataset_name``."""
    name = getattr(model, "name", None)
    if name in models.MODELS and models.model_dataset(name) != dataset_name:
        ds = models.model_dataset(name)
        raise ValueError(f"the model {name!r} is for {ds}, not {dataset_name}: evaluate it on data.load({ds!r}, "
                         f"'test') (on the command line: leave out --dataset or pass --dataset {ds}).")


def evaluate(model: nn.Module, dataset: Union[data_mod.Dataset, tuple], attack_specs: Sequence[str] = DEFAULT_ATTACKS,
             eps: float = 8 / 255, alpha: Optional[float] = None, n: Optional[int] = None,
             n_per_attack: Optional[dict] = None, batch_size: int = 500, device=None,
             progress: bool = True) -> dict:
    """Clean and robust accuracy for each attack spec on the first ``n`` items of ``dataset``.

    ``n_per_attack`` limits a slow attack to fewer items, e.g. ``{"aa": 1000}`` (its ``n`` is
    reported). ``n``, ``batch_size`` and those limits must be integers >= 1 (``n=None``: every item),
    and a registered model must be one of the data set's (``ValueError`` otherwise).
    Returns ``{"data" (a label), "dataset" ("mnist", "cifar10"; None for tensors), "data_origin", "n", "eps", "clean", "robust": {name: acc}, "n_attack": {name: n}, "attacks":
    {name: settings}, "seconds": {name: s}}``.
    """
    utils.check_count("n", n, none_means="every image")
    utils.check_count("batch_size", batch_size)
    for spec, m in (n_per_attack or {}).items():
        if spec not in attack_specs:
            raise ValueError(f"n_per_attack names {spec!r}, which is not among the attacks {list(attack_specs)}.")
        utils.check_count(f"n_per_attack[{spec!r}]", m)
    device = device or next(model.parameters()).device
    if isinstance(dataset, data_mod.Dataset):
        x, y = dataset.tensors(n, device=device)
        dataset_name, label, origin = dataset.name, dataset.label, dataset.origin
        check_model_fits(model, dataset_name)
    else:
        x, y = dataset
        x, y = x[:n].to(device), y[:n].to(device)
        dataset_name, label, origin = None, "tensors", "given"
    attacks.check_inputs(x, y, eps, model=model)
    specs = [parse_attack(s, eps, alpha) for s in attack_specs]
    n_per_attack = n_per_attack or {}
    result = {"data": label, "dataset": dataset_name, "data_origin": origin, "n": len(x), "eps": eps,
              "clean": None, "robust": {}, "n_attack": {}, "attacks": {}, "seconds": {}}
    total = len(x) + sum(min(len(x), n_per_attack.get(s.spec, len(x))) for s in specs)
    with utils.progress(total=total, enabled=progress, desc="evaluate", unit="img") as bar:
        t = time.perf_counter()
        result["clean"] = batched_accuracy(model, x, y, None, batch_size, bar)
        result["seconds"]["clean"] = round(time.perf_counter() - t, 2)
        for s in specs:
            m = min(len(x), n_per_attack.get(s.spec, len(x)))
            bar.set_postfix_str(s.name)
            t = time.perf_counter()
            result["robust"][s.name] = batched_accuracy(model, x[:m], y[:m], s, batch_size, bar)
            result["seconds"][s.name] = round(time.perf_counter() - t, 2)
            result["n_attack"][s.name] = m
            result["attacks"][s.name] = s.settings()
    return utils.to_jsonable(result)


def sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Iterable[float],
          attack: Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor],
          batch_size: int = 500, progress: bool = True, desc: str = "eps sweep") -> list[float]:
    """Accuracy under ``attack(model, x, y, eps)`` for each eps (an accuracy-vs-eps curve)."""
    eps_values = list(eps_values)
    accs = []
    for e in utils.progress(eps_values, enabled=progress, desc=desc):
        accs.append(batched_accuracy(model, x, y, lambda m, xb, yb: attack(m, xb, yb, e), batch_size))
    return accs


def as_rows(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """``{name: evaluate(...) result}`` -> ``{name: {"Clean": acc, attack: acc, ...}}``."""
    return {name: {"Clean": r["clean"], **r["robust"]} for name, r in results.items()}


def percent_table(rows: dict[str, dict[str, float]], columns: Optional[Sequence[str]] = None) -> str:
    """A markdown table of accuracies in % from ``{row: {column: accuracy in [0,1]}}`` (columns: every
    key of the rows unless given), ending with a line break."""
    columns = tables.columns_of(rows) if columns is None else list(columns)
    return tables.markdown_table(rows, columns, tables.percent, align="l" + "r" * len(columns)) + "\n"


def format_table(results: dict[str, dict]) -> str:
    """A markdown table (Clean, then each attack, in %) from ``{name: evaluate(...) result}``."""
    return percent_table(as_rows(results))
