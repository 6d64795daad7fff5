"""Deliberately masked models: networks that *look* robust to gradient attacks and are not.

Notebook 06 wraps a natural (non-robust) model in one of these to show how an evaluation fools itself and
how :mod:`advlib.checks` and AutoAttack catch it (Athalye, Carlini, Wagner 2018, "Obfuscated gradients give a
false sense of security"). Both leave the model's decisions almost unchanged and only starve the attacker
of gradient: never use them as a defence.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ScaledLogits(nn.Module):
    """The model's logits times ``scale``: the same predictions, but the softmax saturates in float32, so
    the cross-entropy's gradient underflows to exactly zero on every confidently classified image and
    PGD on the cross-entropy stands still. Scale-free objectives (the CW margin, AutoAttack's DLR loss)
    are untouched by the scale and break it."""

    def __init__(self, model: nn.Module, scale: float = 1e4):
        super().__init__()
        self.model, self.scale = model, scale
        self.name = f"{getattr(model, 'name', 'model')} x{scale:g} logits"

    def forward(self, x):
        return self.model(x) * self.scale


class QuantizedInput(nn.Module):
    """The model on its input rounded to ``levels`` grey levels per channel: ``torch.round`` has zero
    gradient almost everywhere, so every gradient attack sees a flat loss; a step of ε rarely crosses a
    rounding boundary (1/(levels - 1) apart). Attacks that do not use gradients (AutoAttack's Square)
    and gradient estimates through the step (BPDA: treat the rounding as the identity) break it."""

    def __init__(self, model: nn.Module, levels: int = 16):
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be >= 2; got {levels}")
        self.model, self.levels = model, levels
        self.name = f"{getattr(model, 'name', 'model')} on {levels}-level input"

    def forward(self, x):
        q = torch.round(x * (self.levels - 1)) / (self.levels - 1)
        return self.model(q)
