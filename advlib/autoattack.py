"""AutoAttack (Croce & Hein, ICML 2020) with the authors' original code, one sub-attack at a time.

The original implementation is on PyPI as ``pyautoattack``; its ``standard`` version runs, in order,
APGD-CE (100 iterations, 1 restart), APGD-T (100 iterations, 9 target classes), FAB-T (100
iterations, 9 target classes) and Square (5,000 queries), each only on the points that every
earlier one left correctly classified. :func:`run` drives exactly those attacks, with the
parameters the ``standard`` version sets, but one sub-attack and one chunk of points at a time, so

* the robust accuracy after each sub-attack is known (Square lowering it after the white-box
  attacks is AutoAttack's own sign of gradient masking),
* a long evaluation resumes after an interruption where it stopped (``state``/``save``), and
* the first attacks alone (APGD-CE + APGD-T, :data:`APGD`) can run on many images and the standard
  version be completed on some of them (:func:`continue_from`), measuring what the others add, and
* AutoAttack's own sanity checks (randomness, probabilities instead of logits, zero gradients,
  dynamic models) are collected as messages instead of scrolling past in a log.

The global random state is left as it was (the original code reseeds it).
torchattacks' re-implementation (10 iterations where the original runs 100) stays available as
``advlib.attacks.autoattack``.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn

from . import attacks

STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")
APGD = STANDARD[:2]  # the white-box gradient attacks that break almost every image AutoAttack breaks on these models
NAMES = {"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "fab-t": "FAB-T", "square": "Square"}
ITERATIONS = {"apgd-ce": "100 iterations, 1 restart", "apgd-t": "100 iterations, 9 target classes",
              "fab-t": "100 iterations, 9 target classes", "square": "5000 queries, p_init 0.8"}


def check_attacks(attacks_to_run: Sequence[str]) -> tuple:
    """``attacks_to_run`` if it is the standard version or its first attacks, in order (a prefix of
    :data:`STANDARD`, so that its results can be completed into the standard version's); else ValueError."""
    a = tuple(attacks_to_run)
    if not a or a != STANDARD[:len(a)]:
        raise ValueError(f"AutoAttack's sub-attacks must be the standard version {STANDARD} or its first ones, in "
                         f"that order; got {a}")
    return a


def implementation(attacks_to_run: Sequence[str] = STANDARD) -> dict:
    """What produces the numbers: package, version, the sub-attacks run and their iteration counts."""
    import pyautoattack  # where AutoAttack runs, so that advlib imports without it (zoo says how to install it)

    a = check_attacks(attacks_to_run)
    return {"implementation": "pyautoattack (the original AutoAttack code)", "package_version": pyautoattack.__version__,
            "version": "standard" if a == STANDARD else "the standard version's first attacks: " + ", ".join(
                NAMES[k] for k in a),
            "attacks": list(a), "iterations": {k: ITERATIONS[k] for k in a}}


def continue_from(info: dict, k: int) -> dict:
    """A :func:`run` state for the first ``k`` points of a finished run whose ``info`` it returned: the
    sub-attacks that run made count as done on those points, so running more of the standard version
    from this state completes it there (e.g. APGD-CE + APGD-T on every image, the full standard
    version on the first ``k``) without running any sub-attack twice."""
    at = info.get("broken_at")
    if at is None or len(at) < k:
        raise ValueError(f"continue_from needs the per-point record ('broken_at') of a finished run over at least "
                         f"{k} points; got {None if at is None else len(at)}")
    at = at[:k]
    done = list(info["attacks"])
    robust = [b is None for b in at]
    after, left = {}, [b != "clean" for b in at]
    for sub in done:
        left = [ok and b != sub for ok, b in zip(left, at)]
        after[sub] = sum(left) / k if k else 0.0
    return {"robust": robust, "done": done, "after": after,
            "broken_by": {sub: sum(b == sub for b in at) for sub in done},
            "broken_at": list(at), "messages": list(info.get("messages", [])), "current": None}


class _Collect(logging.Handler):
    """Keeps AutoAttack's warnings (its sanity checks) instead of printing them."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, attacks_to_run: Sequence[str] = STANDARD,
        seed: int = 0, chunk: int = 500, state: Optional[dict] = None, save: Optional[Callable[[dict], None]] = None,
        progress: Optional[Callable[[str, int], None]] = None) -> tuple[torch.Tensor, dict]:
    """Standard AutoAttack (L∞) on ``(x, y)``: returns ``(robust, info)``, ``robust`` a boolean per point
    (False for points misclassified clean or broken by any sub-attack). ``attacks_to_run``: the standard
    version (default) or its first sub-attacks (e.g. :data:`APGD`).

    ``info``: ``{"after": {sub-attack: robust accuracy after it}, "broken_by": {sub-attack: count},
    "broken_at": [per point: "clean", a sub-attack or None], "seconds": {sub-attack: s}, "points":
    {sub-attack: how many points it attacked}, "messages": [AutoAttack's sanity-check warnings],
    **implementation()}``. ``state`` (a dict, e.g. loaded from disk, or
    :func:`continue_from`) and ``save(state)`` make the run resumable: ``save`` is called after every
    chunk of points; calling :func:`run` again with the saved state continues where it stopped.
    """
    from pyautoattack import AutoAttack  # where AutoAttack runs, as in implementation()

    to_run = check_attacks(attacks_to_run)
    attacks.check_inputs(x, y, eps, model=model)
    device = x.device
    state = state if state is not None else {}
    with attacks.model_mode(model, "eval"), torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        if "robust" not in state:
            with torch.no_grad():
                pred = torch.cat([model(x[i:i + chunk]).argmax(1) for i in range(0, len(x), chunk)])
            ok = (pred == y).tolist()
            state.update(robust=ok, done=[], after={}, broken_by={}, broken_at=[None if c else "clean" for c in ok],
                         messages=[], current=None)
            _save(save, state)
        if len(state["robust"]) != len(x):
            raise ValueError(f"the saved AutoAttack state covers {len(state['robust'])} points, not {len(x)}")
        robust = torch.tensor(state["robust"], dtype=torch.bool, device=device)
        aa = AutoAttack(model, norm="Linf", eps=float(eps), version="standard", seed=seed, device=device)
        aa.verbose = False
        collect = _Collect()
        aa.logger.addHandler(collect)
        try:
            for sub in to_run:
                if sub in state["done"]:
                    continue
                if state["current"] is None or state["current"]["attack"] != sub:
                    todo = robust.nonzero().squeeze(1).tolist()
                    state["current"] = {"attack": sub, "points": todo, "next": 0}
                    state.setdefault("points", {})[sub] = len(todo)
                cur = state["current"]
                points = cur["points"]
                aa.attacks_to_run = [sub]
                while cur["next"] < len(points):
                    idx = torch.tensor(points[cur["next"]:cur["next"] + chunk], dtype=torch.long, device=device)
                    t0 = time.perf_counter()
                    _, y_adv = aa.run_standard_evaluation(x[idx], y[idx], batch_size=chunk)
                    secs = state.setdefault("seconds", {})
                    secs[sub] = round(secs.get(sub, 0.0) + time.perf_counter() - t0, 2)
                    broken = idx[y_adv != y[idx]]
                    robust[broken] = False
                    for i in broken.tolist():
                        state["broken_at"][i] = sub
                    state["broken_by"][sub] = state["broken_by"].get(sub, 0) + len(broken)
                    cur["next"] += len(idx)
                    state["robust"] = robust.tolist()
                    state["messages"] = _merge(state["messages"], collect.messages)
                    _save(save, state)
                    if progress is not None:
                        progress(sub, len(idx))
                state["done"].append(sub)
                state["after"][sub] = robust.float().mean().item() if len(robust) else 0.0
                state["current"] = None
                _save(save, state)
        finally:
            aa.logger.removeHandler(collect)
    info = {"after": dict(state["after"]), "broken_by": dict(state["broken_by"]), "broken_at": list(state["broken_at"]),
            "seconds": dict(state.get("seconds", {})), "points": dict(state.get("points", {})),
            "messages": _merge(state["messages"], collect.messages), **implementation(to_run)}
    return robust, info


def _merge(a: list[str], b: list[str]) -> list[str]:
    return a + [m for m in b if m not in a]


def _save(save: Optional[Callable[[dict], None]], state: dict) -> None:
    if save is not None:
        save(state)
