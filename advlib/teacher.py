"""The teacher of a distillation method: a frozen model in eval mode, loaded once per run.

:class:`Teacher` wraps a trained classifier so that a training method can ask for its logits or
its (temperature-scaled) soft labels on a batch without ever training it, changing its batch-norm
statistics or building a graph through it. With ``cache=True`` it remembers its output per image:
a teacher's forward pass is often the costliest part of a distillation step on a CPU, and the
same training image (with the same augmentation, e.g. no crop and no flip) comes back every epoch.
Images are recognised by a digest of their pixels, so a cached entry is only reused for the very same input.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks


class Teacher:
    """A frozen classifier: ``logits(x)`` and ``probs(x, tau)`` without gradients, always in eval mode."""

    def __init__(self, model: nn.Module, cache: bool = False, source: str = "given model"):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.cache = cache
        self.source = source
        self._store: dict[bytes, torch.Tensor] = {}
        self.hits = self.misses = 0

    @classmethod
    def load(cls, path: Union[str, Path], dataset: Optional[str] = None, device="cpu", cache: bool = False
             ) -> "Teacher":
        """The model of an advlib checkpoint, refused (with what to do) when it is for another dataset."""
        from . import models, train

        model = train.load_model(path, device=device)
        if dataset is not None and models.model_dataset(model.name) != dataset:
            raise ValueError(f"The teacher {path} is a {model.name!r} model for "
                             f"{models.model_dataset(model.name)}, not {dataset}: pass the checkpoint of a "
                             f"{dataset} model.")
        return cls(model, cache=cache, source=str(path))

    @staticmethod
    def _keys(x: torch.Tensor) -> list[bytes]:
        """A 128-bit digest of each image's pixels (16 bytes a key, not the whole image)."""
        flat = x.detach().to("cpu", torch.float32).reshape(len(x), -1).contiguous().numpy()
        return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cache:
            with attacks.model_mode(self.model, "eval"):
                return self.model(x)
        keys = self._keys(x)
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        if missing:
            with attacks.model_mode(self.model, "eval"):
                out = self.model(x[missing])
            for i, row in zip(missing, out):
                self._store[keys[i]] = row.clone()
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return torch.stack([self._store[k] for k in keys]).to(x.device)

    def probs(self, x: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """Soft labels: ``softmax(logits / tau)``."""
        return F.softmax(self.logits(x) / tau, dim=1)
