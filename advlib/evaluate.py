"""Clean and robust accuracy of a model for a list of named attacks, with the bookkeeping a reviewer expects.

Attacks are named by short specs, e.g. ``"fgsm"``, ``"pgd-20"``, ``"pgd-50x10"``, ``"pgd-20@2/255"`` (a step
of its own), ``"cw-20"`` (PGD on the CW margin), ``"aa"`` (AutoAttack, the original code), ``"noise"``. Each
family of specs (its grammar, what runs, its bookkeeping, its settings, the paper's column it reproduces) is
declared once in :mod:`advlib.attack_registry`; ``python -m advlib evaluate --help`` lists every spelling.

:func:`evaluate` is an orchestrator over those attacks (as AutoAttack is over its own):

* **Worst-case bookkeeping that never weakens an attack.** Images the model misclassifies clean are
  not attacked (they count as broken); PGD freezes an image at the first iterate that fools the
  model and restarts only the images no earlier restart fooled. Each column is the accuracy under
  that attack alone, equal to or lower than running it naively over every image; the column
  ``"All attacks"`` is the per-image worst case over the attacks, on the images every one of them ran
  on: an attack run on fewer images (``n_per_attack``) is left out of it and named in
  ``worst_case["left_out"]``, so that the worst case never mixes image sets.
* **Uncertainty.** Every accuracy comes with its 95% Wilson interval for the number of images used.
* **Sanity checks** (:mod:`advlib.checks`) run with every evaluation: AutoAttack's own flags, ε = 0
  against clean accuracy, accuracy at 2ε, FGSM against random noise, label leaking, PGD against
  AutoAttack, whether twice the PGD steps still lower the accuracy, and whether a multi-step attack is
  weaker than FGSM or than fewer steps of its own family (a weak attack, not a robust model).
* **Resumable.** With ``state_path``, every finished attack (and every chunk of AutoAttack) is saved;
  the same call after an interruption continues where it stopped.

:func:`rslad_columns` measures the RSLAD paper's table columns in one call.
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import torch
import torch.nn as nn

from . import attack_registry, attacks, autoattack, checks, data as data_mod, models, paths, reference, stats, utils
# The result tables live in advlib.results (record and course use them without the evaluation); re-exported here
# because notebooks, tests and the CLI call them as evaluate.percent_table, evaluate.format_table, ...
from .results import (WORST, as_rows, autoattack_column, counts, flags_table, format_table, gap_table,  # noqa: F401
                      intervals, mask, paired, percent_table)

DEFAULT_ATTACKS = ("fgsm", "pgd-20", "cw-20", "aa")
STATE_FORMAT = "advlib-evaluation-state-v2"  # v2: per-spec steps, PGD_TRADES on the cross-entropy


@dataclass
class AttackSpec:
    """One attack of an evaluation, as :func:`parse_attack` reads its spec; its family
    (:mod:`advlib.attack_registry`) says what runs it, what it records and which paper column it measures."""
    spec: str
    name: str
    kind: str  # the family's kind: fgsm | pgd | aa | noise | ... (attack_registry.FAMILIES)
    eps: float
    alpha: Optional[float] = None
    steps: int = 1
    restarts: int = 1
    loss: str = "ce"
    random_start: bool = True
    implementation: str = ""  # for "aa": "original" (pyautoattack) or "torchattacks"
    subattacks: tuple = ()  # for the original "aa": which of AutoAttack's standard attacks run, in order
    params: dict = field(default_factory=dict)  # a family's own settings, beyond the fields above

    @property
    def family(self) -> attack_registry.Family:
        return attack_registry.family(self.kind)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The adversarial images, as each attack computes them on its own (no bookkeeping)."""
        fn, kw = _function(self)
        if fn is autoattack.run:
            raise ValueError(f"{self.spec}: the original AutoAttack is run through advlib.autoattack.run, "
                             "which returns which images it broke")
        return fn(model, x, y, **kw)

    def settings(self) -> dict:
        """What metrics.json records of this attack: ``spec``, ``name``, ``kind``, ``eps``, then its family's
        settings and provenance (package and version of what produced the numbers)."""
        d = {"spec": self.spec, "name": self.name, "kind": self.kind, "eps": self.eps}
        d.update(self.family.settings(self))
        made_by = self.family.provenance(self) if self.family.provenance else None
        if made_by:
            d.update(_resolve(made_by[0])(**made_by[1]))
        return d


# The modules whose functions a registration names (attack_registry names them, being below them in the layers)
_MODULES = {"attacks": attacks, "autoattack": autoattack}


def _resolve(name: str) -> Callable:
    """The function ``"module.function"`` of advlib that a registration names."""
    module, _, fn = name.partition(".")
    if module not in _MODULES or not callable(getattr(_MODULES[module], fn, None)):
        raise ValueError(f"an attack registration names {name!r}, which is not a function of "
                         f"advlib.{' or advlib.'.join(_MODULES)}")
    return getattr(_MODULES[module], fn)


def _function(spec: AttackSpec) -> tuple[Callable, dict]:
    """The function that runs ``spec`` and its keyword arguments (besides model, x, y)."""
    name, kw = spec.family.run(spec)
    return _resolve(name), kw


def _runs_original_autoattack(spec: AttackSpec) -> bool:
    """Whether ``spec`` runs through advlib.autoattack.run (sub-attack by sub-attack, resumable)."""
    return _function(spec)[0] is autoattack.run


def parse_attack(spec: str, eps: float, alpha: Optional[float] = None) -> AttackSpec:
    """Turn a short spec (:func:`advlib.attack_registry.forms_help`) into an :class:`AttackSpec`. ``alpha``: the
    step of a spec that takes one and does not give its own (default: eps/4)."""
    attacks.check_settings(eps, attacks.NOT_GIVEN if alpha is None else alpha)
    fields = attack_registry.parse(spec, eps, alpha)
    if fields.get("alpha") is not None:  # a step of the spec's own ("@STEP")
        attacks.check_settings(alpha=fields["alpha"])
    return AttackSpec(**fields)


def batched_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     attack: Optional[Callable] = None, batch_size: int = 500, bar=None) -> float:
    """Accuracy of ``model`` on ``attack(model, x, y)`` (clean when ``attack`` is None), batched."""
    correct = correct_mask(model, x, y, attack, batch_size, bar)
    return correct.float().mean().item() if len(correct) else 0.0


def correct_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Optional[Callable] = None,
                 batch_size: int = 500, bar=None) -> torch.Tensor:
    """Per image, whether ``model`` classifies ``attack(model, x, y)`` (``x`` when None) correctly."""
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        xa = attack(model, xb, yb) if attack is not None else xb
        with attacks.model_mode(model, "eval"), torch.no_grad():
            out.append(model(xa).argmax(1) == yb)
        if bar is not None:
            bar.update(len(xb))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


def check_model_fits(model: nn.Module, dataset_name: str) -> None:
    """Raise ``ValueError`` when ``model`` is a registered model of another data set than ``dataset_name``."""
    name = getattr(model, "name", None)
    if name in models.MODELS and models.model_dataset(name) != dataset_name:
        ds = models.model_dataset(name)
        raise ValueError(f"the model {name!r} is for {ds}, not {dataset_name}: evaluate it on data.load({ds!r}, "
                         f"'test') (on the command line: leave out --dataset or pass --dataset {ds}).")


# --------------------------------------------------------------------------- one attack, with bookkeeping


def robust_mask(spec: AttackSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor, candidates: torch.Tensor,
                batch_size: int = 500, bar=None, aa_state: Optional[dict] = None,
                save: Optional[Callable[[dict], None]] = None, aa_prior: Optional[dict] = None) -> tuple[torch.Tensor, dict]:
    """Per image, whether it survives ``spec``; only ``candidates`` (a boolean mask, usually the images
    classified correctly) are attacked, the others count as broken. Returns ``(mask, info)``. The attack runs
    with its family's ``until_fooled`` keywords (:mod:`advlib.attack_registry`), or, for the original
    AutoAttack, through :func:`advlib.autoattack.run`, whose ``info`` says what each sub-attack broke.

    ``aa_prior``: the info of a finished run of AutoAttack's first sub-attacks over at least these
    candidates (in the same order); an original-AutoAttack spec then starts from it and runs only the
    sub-attacks it lacks (:func:`advlib.autoattack.continue_from`)."""
    idx = candidates.nonzero().squeeze(1)
    robust = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    info: dict = {}
    fn, kw = _function(spec)
    if fn is autoattack.run:
        if aa_prior is not None and not (aa_state or {}).get("robust"):
            start = autoattack.continue_from(aa_prior, len(idx))
            if aa_state is None:
                aa_state = start
            else:
                aa_state.update(start)
        rob, info = autoattack.run(model, x[idx], y[idx], chunk=batch_size, state=aa_state, save=save, **kw)
        robust[idx] = rob
        if bar is not None:
            bar.update(len(x))
        return robust, info
    kw = {**kw, **spec.family.until_fooled}  # e.g. PGD: keep an image at the first iterate that fools the model

    def attack(m, a, b):
        return fn(m, a, b, **kw)
    if len(idx):
        robust[idx] = correct_mask(model, x[idx], y[idx], attack, batch_size)
    if bar is not None:
        bar.update(len(x))
    return robust, info


# --------------------------------------------------------------------------- resumable state


def _fingerprint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, specs: list[AttackSpec], n_per: dict) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    h.update(y.detach().cpu().numpy().tobytes())
    h.update(repr([(s.spec, s.eps, s.alpha, n_per.get(s.spec)) for s in specs]).encode())
    return h.hexdigest()


class _State:
    """Finished attacks of an evaluation, on disk (JSON), keyed by what was evaluated."""

    def __init__(self, path: Optional[Union[str, Path]], fingerprint: str, verbose: bool = False):
        self.path = Path(path) if path else None
        self.data = {"format": STATE_FORMAT, "fingerprint": fingerprint, "attacks": {}, "partial": {}}
        if self.path and self.path.exists():
            old = utils.read_json(self.path)
            if old.get("format") == STATE_FORMAT and old.get("fingerprint") == fingerprint:
                self.data = old
                done = ", ".join(self.data["attacks"]) or "nothing yet"
                utils.say_resumed(f"Resuming the evaluation saved in {paths.shown(self.path)} (done: {done}).",
                                  verbose)

    def save(self) -> None:
        """Save the finished attacks; a failed write (a full disk, a folder made read-only) never stops
        the evaluation: it says so once and goes on without resumption."""
        if not self.path:
            return
        try:
            utils.write_json(self.path, self.data)
        except OSError as err:
            print(f"warning: could not save the evaluation state to {paths.shown(self.path)} "
                  f"({err.strerror or err}); going on, but an interruption now would lose the attacks run so far.",
                  file=sys.stderr)
            self.path = None


def _bits(mask: torch.Tensor) -> str:
    return "".join("1" if b else "0" for b in mask.tolist())


def _unbits(s: str, device) -> torch.Tensor:
    return torch.tensor([c == "1" for c in s], dtype=torch.bool, device=device)


# --------------------------------------------------------------------------- the orchestrator


def evaluate(model: nn.Module, dataset: Union[data_mod.Dataset, tuple], attack_specs: Sequence[str] = DEFAULT_ATTACKS,
             eps: float = 8 / 255, alpha: Optional[float] = None, n: Optional[int] = None,
             n_per_attack: Optional[dict] = None, batch_size: int = 500, device=None,
             progress: bool = True, sanity_checks: bool = True, n_checks: int = 200,
             state_path: Optional[Union[str, Path]] = None, verbose: bool = False, seed: Optional[int] = 0) -> dict:
    """Clean and robust accuracy for each attack spec on the first ``n`` items of ``dataset``.

    ``n_per_attack`` limits a slow attack to fewer items, e.g. ``{"aa": 1000}`` (its ``n`` is
    reported). ``n``, ``batch_size`` and those limits must be integers >= 1 (``n=None``: every item),
    and a registered model must be one of the data set's (``ValueError`` otherwise). ``sanity_checks``
    runs the checks of :mod:`advlib.checks` (their probes use the first ``n_checks`` images);
    ``state_path`` makes the evaluation resumable (see the module docstring); a resumed evaluation is named
    with the attacks already done when ``verbose`` (the command line), otherwise one notice per process says
    that saved work is reused. ``seed``: each attack's random starts (and the checks' probes) are drawn from
    ``seed`` + its position, so that an evaluation run again, or resumed after an interruption, draws the same
    numbers, and the caller's random stream does not move; ``None`` draws from torch's global generator.

    Returns ``{"data" (a label), "dataset" ("mnist", "cifar10"; None for tensors), "data_origin", "n",
    "eps", "clean", "robust": {name: acc}, "n_attack": {name: n}, "interval": {"Clean"/name: [low,
    high]}, "worst_case": {"accuracy", "n", "interval", "attacks"} (two attacks or more), "attacks":
    {name: settings}, "seconds": {name: s}, "flags": [flag dicts], "masks": {"Clean"/name: "0101..."}
    (per-image correctness, for paired tests), "autoattack": {name: sub-attack details}}``.
    """
    utils.check_count("n", n, none_means="every image")
    utils.check_count("batch_size", batch_size)
    utils.check_count("n_checks", n_checks)
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
    _check_logits(model, x[:batch_size])
    specs = [parse_attack(s, eps, alpha) for s in attack_specs]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"the attacks {list(attack_specs)} name the same attack twice.")
    n_per_attack = n_per_attack or {}
    state = _State(state_path, _fingerprint(model, x, y, specs, n_per_attack) if state_path else "", verbose)
    result = {"data": label, "dataset": dataset_name, "data_origin": origin, "n": len(x), "eps": eps,
              "clean": None, "robust": {}, "n_attack": {}, "interval": {}, "attacks": {}, "seconds": {},
              "flags": [], "masks": {}, "autoattack": {}}
    masks: dict[str, torch.Tensor] = {}
    infos: dict[str, dict] = {}
    n_of = {s.name: min(len(x), n_per_attack.get(s.spec, len(x))) for s in specs}
    total = len(x) + sum(n_of.values())
    with utils.progress(total=total, enabled=progress, desc="evaluate", unit="img") as bar:
        t = time.perf_counter()
        clean = correct_mask(model, x, y, None, batch_size, bar)
        result["seconds"]["Clean"] = round(time.perf_counter() - t, 2)
        _put(result, "Clean", clean)
        for i, s in enumerate(specs):
            m = min(len(x), n_per_attack.get(s.spec, len(x)))
            bar.set_postfix_str(s.name)
            done = state.data["attacks"].get(s.name)
            if done is not None:
                mask, seconds, info = _unbits(done["mask"], device), done["seconds"], done["info"]
                bar.update(m)
            else:
                t = time.perf_counter()
                aa_state = state.data["partial"].setdefault(s.name, {}) if state.path else None

                def save_partial(_st, _state=state):
                    _state.save()
                with utils.forked_seed(seed, device, offset=i):  # the same starts when resumed
                    mask, info = robust_mask(s, model, x[:m], y[:m], clean[:m], batch_size, bar, aa_state,
                                             save_partial if state.path else None, _aa_prior(s, specs, infos, n_of))
                seconds = round(time.perf_counter() - t, 2)
                state.data["attacks"][s.name] = {"mask": _bits(mask), "seconds": seconds, "info": info}
                state.data["partial"].pop(s.name, None)
                state.save()
            masks[s.name], infos[s.name] = mask, info
            _put(result, s.name, mask)
            result["seconds"][s.name] = seconds
            result["attacks"][s.name] = s.settings()
            if info:
                result["autoattack"][s.name] = {k: v for k, v in info.items() if k != "broken_at"}
    worst = worst_case(masks, n_of)
    if worst:
        result["worst_case"] = worst
    if len(infos) and any(_runs_original_autoattack(s) for s in specs):
        gap = autoattack_gap(specs, masks, infos, n_of)
        if gap:
            result["autoattack_gap"] = gap
    if sanity_checks:
        with utils.forked_seed(seed, device, offset=len(specs)):
            result["flags"] = [f.as_dict() for f in _sanity_checks(model, x, y, specs, clean, masks, result,
                                                                   batch_size, n_checks)]
    return utils.to_jsonable(result)


def image_counts(result: dict) -> dict[str, int]:
    """``{"Clean": n, attack: images it ran on}`` of one :func:`evaluate` result: what a figure's legend says when the
    columns were measured on different numbers of images (AutoAttack on the first few hundred)."""
    return {"Clean": int(result["n"]), **{k: int(v) for k, v in result.get("n_attack", {}).items()}}


def worst_case(masks: dict[str, torch.Tensor], n_of: dict[str, int]) -> Optional[dict]:
    """The per-image worst case over the attacks that ran on the most images (two or more); an attack run
    on fewer images is left out (``"left_out"``: ``{name: n}``) rather than mixing image sets."""
    if not masks:
        return None
    m = max(n_of[k] for k in masks)
    inside = [k for k in masks if n_of[k] == m]
    if len(inside) < 2:
        return None
    worst = torch.stack([masks[k] for k in inside]).all(0)
    out = {"accuracy": worst.float().mean().item(), "n": m, "interval": list(stats.wilson(int(worst.sum()), m)),
           "attacks": inside}
    left = {k: n_of[k] for k in masks if k not in inside}
    if left:
        out["left_out"] = left
    return out


def _aa_prior(spec: AttackSpec, specs: list[AttackSpec], infos: dict, n_of: dict) -> Optional[dict]:
    """The info of a finished run of AutoAttack's first sub-attacks that ``spec`` (an original AutoAttack
    run on at most as many images) can start from, if the evaluation has one."""
    if not _runs_original_autoattack(spec):
        return None
    for s in specs:
        if (s is not spec and s.name in infos and _runs_original_autoattack(s)
                and len(s.subattacks) < len(spec.subattacks) and spec.subattacks[:len(s.subattacks)] == s.subattacks
                and n_of[s.name] >= n_of[spec.name] and infos[s.name].get("broken_at") is not None):
            return infos[s.name]
    return None


def autoattack_gap(specs: list[AttackSpec], masks: dict, infos: dict, n_of: dict) -> Optional[dict]:
    """When an evaluation ran AutoAttack's first sub-attacks (``aa-apgd``) and the standard version on
    (the first) fewer images, both on those same images: ``{"n", "partial", "standard", "partial_attack",
    "gap" (partial − standard, a fraction), "broken_by" (the standard run's count per sub-attack)}``."""
    orig = [s for s in specs if _runs_original_autoattack(s) and s.name in masks]
    full = [s for s in orig if tuple(s.subattacks) == autoattack.STANDARD]
    part = [s for s in orig if s not in full]
    if not full or not part:
        return None
    f, p = full[0], part[0]
    k = min(n_of[f.name], n_of[p.name])
    a, b = masks[p.name][:k].float().mean().item(), masks[f.name][:k].float().mean().item()
    return {"n": k, "partial_attack": p.name, "standard_attack": f.name, "partial": a, "standard": b, "gap": a - b,
            "broken_by": dict(infos[f.name].get("broken_by", {}))}


def _put(result: dict, name: str, mask: torch.Tensor) -> None:
    """Record the accuracy, its interval and the per-image mask of one column ("Clean" or an attack)."""
    k, m = int(mask.sum()), len(mask)
    acc = k / m if m else 0.0
    if name == "Clean":
        result["clean"] = acc
    else:
        result["robust"][name], result["n_attack"][name] = acc, m
    result["interval"][name] = list(stats.wilson(k, m)) if m else [0.0, 1.0]
    result["masks"][name] = _bits(mask)


def _check_logits(model: nn.Module, x: torch.Tensor) -> None:
    """Refuse a model that returns probabilities: attacks need logits (softmax saturates the gradients)."""
    with attacks.model_mode(model, "eval"), torch.no_grad():
        out = model(x)
    if len(out) and out.min() >= 0 and out.max() <= 1 and torch.allclose(out.sum(1), torch.ones(len(out)).to(out),
                                                                        atol=1e-4):
        raise ValueError("the model returns probabilities (its outputs are >= 0 and sum to 1 per image), not "
                         "logits: remove the final softmax (attacks and AutoAttack need logits; a softmax "
                         "flattens their gradients and makes the model look robust).")


def _multi_step(s: AttackSpec) -> bool:
    return s.family.multi_step(s)


def _weak_attack_flags(specs: list[AttackSpec], masks: dict) -> list[checks.Flag]:
    """A multi-step attack must not leave more images correct than FGSM, nor than less work of its own
    family (its registration's ``budget``: for PGD, fewer steps with the same objective, start and step), on
    the same images: the weakest of them against FGSM, and within each family the run with more work against
    the one with less."""
    flags = []
    ran = [s for s in specs if s.name in masks]
    fg = next((s for s in ran if s.kind == "fgsm"), None)
    multi = [s for s in ran if _multi_step(s)]
    if fg is not None and multi:
        def acc(s, k):
            return masks[s.name][:k].float().mean().item()
        k_of = {s.name: min(len(masks[s.name]), len(masks[fg.name])) for s in multi}
        weakest = max(multi, key=lambda s: acc(s, k_of[s.name]) - acc(fg, k_of[s.name]))
        k = k_of[weakest.name]
        flags.append(checks.weaker_than(acc(weakest, k), acc(fg, k), k, weakest.name, fg.name))
    families: dict[tuple, list[tuple[int, AttackSpec]]] = {}
    for s in ran:
        if s.family.budget is not None:
            same, work = s.family.budget(s)
            families.setdefault((s.kind, same), []).append((work, s))
    for fam in families.values():
        fam = sorted(fam, key=lambda ws: ws[0])
        for (w_few, few), (w_more, more) in zip(fam, fam[1:]):
            if w_few < w_more:
                k = min(len(masks[few.name]), len(masks[more.name]))
                flags.append(checks.weaker_than(masks[more.name][:k].float().mean().item(),
                                                masks[few.name][:k].float().mean().item(), k, more.name, few.name))
    return flags


def _reference_pgd(specs: list[AttackSpec], eps: float) -> AttackSpec:
    """The PGD run the probes reuse: the strongest cross-entropy PGD of the evaluation, else PGD-20."""
    pgds = [s for s in specs if s.kind == "pgd" and s.loss == "ce"]
    if pgds:
        return max(pgds, key=lambda s: s.steps * s.restarts)
    return parse_attack("pgd-20", eps)


def _sanity_checks(model, x, y, specs, clean, masks, result, batch_size, n_checks) -> list[checks.Flag]:
    eps = result["eps"]
    n, k = len(x), min(n_checks, len(x))
    xs, ys, cs = x[:k], y[:k], clean[:k]
    flags: list[checks.Flag] = []
    # ε = 0: what the attacks see (their forward pass) must be what the evaluation sees
    with attacks.model_mode(model, "eval"), attacks.frozen(model):
        _, _, logits = attacks.input_gradient(model, xs, ys)
    flags.append(checks.eps_zero((logits.argmax(1) == ys).float().mean().item(), cs.float().mean().item(), k))
    if eps == 0:
        return flags
    ref = _reference_pgd(specs, eps)
    ref_mask = masks.get(ref.name)
    if ref_mask is None or len(ref_mask) < k:
        ref_mask, _ = robust_mask(ref, model, xs, ys, cs, batch_size)
    ref_mask = ref_mask[:k]
    acc_ref = ref_mask.float().mean().item()
    # accuracy at 2ε must not be higher
    big = replace(ref, eps=min(1.0, 2 * eps), alpha=min(1.0, 2 * ref.alpha))
    at2, _ = robust_mask(big, model, xs, ys, cs, batch_size)
    flags.append(checks.monotone_in_eps(acc_ref, at2.float().mean().item(), k, eps))
    # twice the steps, on the images the reference PGD left correct
    more = replace(ref, steps=2 * ref.steps)
    still, _ = robust_mask(more, model, xs, ys, ref_mask, batch_size)
    flags.append(checks.converged(acc_ref, still.float().mean().item(), k, ref.name))
    # FGSM against noise of the same size, and against clean accuracy. Both need FGSM run naively over every
    # image: the FGSM column counts an image wrong when clean as broken, which hides label leaking (FGSM
    # turning wrong predictions into right ones) and makes FGSM look stronger than noise run the same way.
    fg = next((s for s in specs if s.kind == "fgsm" and s.name in masks), None)
    m = len(masks[fg.name]) if fg is not None else k
    fgsm = correct_mask(model, x[:m], y[:m], parse_attack("fgsm", eps), batch_size)
    noise = correct_mask(model, x[:m], y[:m], parse_attack("noise", eps), batch_size)
    flags.append(checks.fgsm_vs_noise(fgsm.float().mean().item(), noise.float().mean().item(), m))
    flags.append(checks.label_leaking(fgsm.float().mean().item(), clean[:m].float().mean().item(), m))
    flags.extend(_weak_attack_flags(specs, masks))
    # cross-entropy PGD against the worst case over the other attacks, on the images all of them saw
    others = [s.name for s in specs if not s.family.baseline and s.name != ref.name and s.name in masks]
    if ref.name in masks and others:
        common = min(len(masks[ref.name]), *(len(masks[o]) for o in others))
        worst = torch.stack([masks[o][:common] for o in others]).all(0)
        flags.append(checks.pgd_vs_other_attacks(masks[ref.name][:common].float().mean().item(),
                                                 worst.float().mean().item(), common, ref.name, others))
    # the strongest PGD against AutoAttack, on the images both saw
    for s in specs:
        if s.kind != "aa":
            continue
        aa = masks[s.name]
        pgd_names = [p.name for p in specs if p.kind == "pgd"]
        if pgd_names:
            common = min(len(aa), *(len(masks[p]) for p in pgd_names))
            best = min(pgd_names, key=lambda p: masks[p][:common].float().mean().item())
            flags.append(checks.pgd_vs_autoattack(masks[best][:common].float().mean().item(),
                                                  aa[:common].float().mean().item(), common, best, s.name))
        info = result["autoattack"].get(s.name)
        if info:
            sq = checks.square_after_white_box(info["after"], len(aa))
            if sq is not None:
                flags.append(sq)
            flags.extend(checks.autoattack_messages(info.get("messages", [])))
    return flags


# --------------------------------------------------------------------------- the RSLAD paper's columns

# Zi et al. (ICCV 2021), Table 2, at ε = 8/255: each column is declared, with the file and line of the papers'
# evaluation code it follows, by the attack family that measures it (advlib.attack_registry, "reproduces").
# The AA column can be completed from a cheaper stand-in: with ``aa_proxy=True``, AutoAttack's first two attacks
# (APGD-CE, APGD-T; "APGD-CE+T") run on every image and the standard version on the first ``n_aa_check``, from
# the same runs: the measured gap between the two on those images is in ``res["autoattack_gap"]``.
RSLAD_STEP = reference.PGD_TRADES_STEP  # PGD_TRADES' step size (TRADES pgd_attack_cifar10.py l.24)
RSLAD_SPECS = {col: spec for col, (spec, _) in attack_registry.reproduced().items()}  # column: the spec measuring it
AA_PROXY = ("APGD-CE+T", "aa-apgd")  # (column, spec): AutoAttack's first two attacks, the stand-in for AA
RSLAD_SOURCES = {
    **{col: source for col, (_, source) in attack_registry.reproduced().items()},
    AA_PROXY[0]: "the standard AutoAttack's first two attacks (APGD-CE, APGD-T), same code and settings",
}


def rslad_columns(model: nn.Module, dataset: Union[data_mod.Dataset, tuple], eps: float = 8 / 255,
                  n: Optional[int] = None, n_aa: Optional[int] = None, with_aa: bool = True,
                  aa_proxy: bool = False, n_aa_check: Optional[int] = None, **kw) -> dict:
    """The RSLAD paper's columns (Clean, FGSM, PGD_SAT, PGD_TRADES, CW∞, AA; see :data:`RSLAD_SPECS` for
    what each one is and where it comes from) for one model, as :func:`evaluate` results whose
    ``"robust"`` keys are renamed to the paper's column names (``"columns"`` maps them back to our
    attack names; ``"sources"`` gives each column's file and line).

    ``n_aa`` runs AutoAttack on the first ``n_aa`` images only; ``with_aa=False`` leaves it out (smoke
    runs). ``aa_proxy=True`` runs the column ``"APGD-CE+T"`` (AutoAttack's first two attacks) on the
    first ``n_aa`` images and the standard AutoAttack (column ``"AA"``) on the first ``n_aa_check``
    (default 200) of them, continuing the same runs; ``res["autoattack_gap"]`` then holds both
    accuracies on those images and the gap."""
    specs = [(c, sp) for c, sp in RSLAD_SPECS.items() if with_aa or c != "AA"]
    n_per: dict = {}
    if with_aa and aa_proxy:
        specs.insert(len(specs) - 1, AA_PROXY)
        if n_aa:
            n_per[AA_PROXY[1]] = n_aa
        n_per["aa"] = n_aa_check or 200
        if n_aa and n_per["aa"] > n_aa:
            raise ValueError(f"n_aa_check={n_aa_check} is more than n_aa={n_aa}: the standard AutoAttack completes the "
                             "proxy's runs, so it can only run on images the proxy ran on")
    elif with_aa and n_aa:
        n_per["aa"] = n_aa
    res = evaluate(model, dataset, [sp for _, sp in specs], eps=eps, n=n, n_per_attack=n_per or None, **kw)
    ours = {parse_attack(sp, eps).name: col for col, sp in specs}
    for key in ("robust", "n_attack", "interval", "seconds", "attacks", "masks", "autoattack"):
        res[key] = {ours.get(k, k): v for k, v in res[key].items()}
    for key in ("worst_case", "autoattack_gap"):
        w = res.get(key)
        if w:
            if "attacks" in w:
                w["attacks"] = [ours.get(a, a) for a in w["attacks"]]
            if "left_out" in w:
                w["left_out"] = {ours.get(a, a): v for a, v in w["left_out"].items()}
            for k in ("partial_attack", "standard_attack"):
                if k in w:
                    w[k] = ours.get(w[k], w[k])
    res["columns"] = {col: name for name, col in ours.items()}
    res["sources"] = {col: RSLAD_SOURCES[col] for col in res["columns"]}
    for col, settings in res["attacks"].items():  # so that metrics.json says where each column comes from
        settings["source"] = RSLAD_SOURCES[col]
    return res


# --------------------------------------------------------------------------- curves


def sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Iterable[float],
          attack: Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor],
          batch_size: int = 500, progress: bool = True, desc: str = "eps sweep", seed: Optional[int] = 0) -> list[float]:
    """Accuracy under ``attack(model, x, y, eps)`` for each eps (an accuracy-vs-eps curve). Each eps's random starts
    are drawn from ``seed`` + its index (``None``: from torch's global generator), so that the curve comes out the same
    on every run and the caller's random stream does not move."""
    eps_values = list(eps_values)
    accs = []
    for i, e in enumerate(utils.progress(eps_values, enabled=progress, desc=desc)):
        with utils.forked_seed(seed, x.device, offset=i):
            accs.append(batched_accuracy(model, x, y, lambda m, xb, yb: attack(m, xb, yb, e), batch_size))
    return accs
