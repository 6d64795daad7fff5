"""AutoAttack (Croce & Hein, ICML 2020) with the authors' original code, one sub-attack at a time.

The original implementation is on PyPI as ``pyautoattack``; its ``standard`` version runs, in order,
APGD-CE (100 iterations, 1 restart), APGD-T (100 iterations, 9 target classes), FAB-T (100
iterations, 9 target classes) and Square (5,000 queries), each only on the points that every
earlier one left correctly classified. :func:`run` drives exactly those attacks, with the
parameters the ``standard`` version sets, but one sub-attack and one chunk of points at a time, so

* the robust accuracy after each sub-attack is known (Square lowering it after the white-box
  attacks is AutoAttack's own sign of gradient masking),
* a long evaluation resumes after an interruption where it stopped (``state``/``save``), and
* AutoAttack's own sanity checks (randomness, probabilities instead of logits, zero gradients,
  dynamic models) are collected as messages instead of scrolling past in a log.

The global random state is left as it was (the original code reseeds it).
torchattacks' re-implementation (10 iterations where the original runs 100) stays available as
``advlib.attacks.autoattack``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from . import attacks

STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")
NAMES = {"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "fab-t": "FAB-T", "square": "Square"}


def implementation() -> dict:
    """What produces the numbers: package, version and the standard version's iteration counts."""
    import pyautoattack

    return {"implementation": "pyautoattack (the original AutoAttack code)", "package_version": pyautoattack.__version__,
            "version": "standard", "attacks": list(STANDARD),
            "iterations": {"apgd-ce": "100 iterations, 1 restart", "apgd-t": "100 iterations, 9 target classes",
                           "fab-t": "100 iterations, 9 target classes", "square": "5000 queries, p_init 0.8"}}


class _Collect(logging.Handler):
    """Keeps AutoAttack's warnings (its sanity checks) instead of printing them."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, seed: int = 0, chunk: int = 500,
        state: Optional[dict] = None, save: Optional[Callable[[dict], None]] = None,
        progress: Optional[Callable[[str, int], None]] = None) -> tuple[torch.Tensor, dict]:
    """Standard AutoAttack (L∞) on ``(x, y)``: returns ``(robust, info)``, ``robust`` a boolean per point
    (False for points misclassified clean or broken by any sub-attack).

    ``info``: ``{"after": {sub-attack: robust accuracy after it}, "broken_by": {sub-attack: count},
    "messages": [AutoAttack's sanity-check warnings], **implementation()}``. ``state`` (a dict, e.g.
    loaded from disk) and ``save(state)`` make the run resumable: ``save`` is called after every chunk
    of points; calling :func:`run` again with the saved state continues where it stopped.
    """
    from pyautoattack import AutoAttack

    attacks.check_inputs(x, y, eps, model=model)
    device = x.device
    state = state if state is not None else {}
    with attacks.model_mode(model, "eval"), torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        if "robust" not in state:
            with torch.no_grad():
                pred = torch.cat([model(x[i:i + chunk]).argmax(1) for i in range(0, len(x), chunk)])
            state.update(robust=(pred == y).tolist(), done=[], after={}, broken_by={}, messages=[], current=None)
            _save(save, state)
        robust = torch.tensor(state["robust"], dtype=torch.bool, device=device)
        aa = AutoAttack(model, norm="Linf", eps=float(eps), version="standard", seed=seed, device=device)
        aa.verbose = False
        collect = _Collect()
        aa.logger.addHandler(collect)
        try:
            for sub in STANDARD:
                if sub in state["done"]:
                    continue
                if state["current"] is None or state["current"]["attack"] != sub:
                    todo = robust.nonzero().squeeze(1).tolist()
                    state["current"] = {"attack": sub, "points": todo, "next": 0}
                cur = state["current"]
                points = cur["points"]
                aa.attacks_to_run = [sub]
                while cur["next"] < len(points):
                    idx = torch.tensor(points[cur["next"]:cur["next"] + chunk], dtype=torch.long, device=device)
                    _, y_adv = aa.run_standard_evaluation(x[idx], y[idx], batch_size=chunk)
                    broken = idx[y_adv != y[idx]]
                    robust[broken] = False
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
    info = {"after": dict(state["after"]), "broken_by": dict(state["broken_by"]),
            "messages": _merge(state["messages"], collect.messages), **implementation()}
    return robust, info


def _merge(a: list[str], b: list[str]) -> list[str]:
    return a + [m for m in b if m not in a]


def _save(save: Optional[Callable[[dict], None]], state: dict) -> None:
    if save is not None:
        save(state)
