"""The teacher of a distillation method: a frozen model in eval mode, loaded once per run.

:class:`Teacher` wraps a trained classifier so that a training method can ask for its logits or
its (temperature-scaled) soft labels on a batch without ever training it, changing its batch-norm
statistics or building a graph through it.

**Soft-label cache.** A teacher's forward pass is often the costliest part of a distillation step on
a CPU, and with a finite set of augmentations (none, or flips only: ``TrainConfig.augment_crop=False``)
the same training image comes back every epoch. With ``cache=True`` the teacher remembers its output
per image, recognised by a 128-bit digest of its pixels, so an entry is only reused for the very same
input (a flipped image is another entry). With ``cache_path`` the cache is also kept on disk
(:meth:`Teacher.save_cache`, read back on load), keyed on the teacher's weights: the students of one
notebook that share a teacher pay for its forward passes once. Outputs on inputs that differ every time
(adversarial examples) bypass the cache: ``logits(x, cached=False)``.

**Gradients through the teacher.** A method whose attack maximises a quantity that depends on the teacher's
output at the adversarial point itself (AdaAD: the student-teacher KL at x', both networks evaluated on x')
needs the input gradient through the teacher: ``logits(x, grad=True)`` builds the graph from ``x`` through the
teacher (when the caller tracks gradients: not under ``torch.no_grad()``), still in eval mode and with the
teacher's weights frozen (they never get a ``.grad``), and never through the cache.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks, checkpoints, models, zoo
from .paths import shown

CACHE_FORMAT = "advlib-teacher-cache-v1"


def weights_digest(model: nn.Module) -> str:
    """A short digest of a model's weights and buffers (the key of its soft-label cache)."""
    h = hashlib.blake2b(digest_size=8)
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


class Teacher:
    """A frozen classifier: ``logits(x)`` and ``probs(x, tau)`` without gradients (``grad=True``: with the
    input gradient, the weights still frozen), always in eval mode."""

    def __init__(self, model: nn.Module, cache: bool = False, source: str = "given model",
                 cache_path: Optional[Union[str, Path]] = None):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.cache = cache
        self.source = source
        self._store: dict[bytes, torch.Tensor] = {}
        self.hits = self.misses = 0
        self.cache_path = Path(cache_path) if (cache and cache_path) else None
        self._saved = 0
        self.digest = f"{getattr(model, 'name', type(model).__name__)}-{weights_digest(model)}"
        if self.cache_path is not None:
            self._load_cache()

    @classmethod
    def load(cls, path: Union[str, Path], dataset: Optional[str] = None, device="cpu", cache: bool = False,
             cache_dir: Optional[Union[str, Path]] = None, model_name: Optional[str] = None) -> "Teacher":
        """The model of an advlib checkpoint, refused (with what to do) when it is for another dataset or,
        with ``model_name``, another architecture. With ``cache`` and ``cache_dir``, the soft-label cache
        lives in ``cache_dir/<architecture>-<weights digest>.pt``. A checkpoint from other code: convert it
        with :func:`advlib.zoo.save_as_checkpoint`. ``"robustbench:<name>"`` instead of a path: the CIFAR-10
        L∞ model of RobustBench's model zoo of that name (:func:`advlib.zoo.robustbench_model`), e.g.
        ``"robustbench:Zhang2019Theoretically"``, TRADES' WRN-34-10."""
        if str(path).startswith(zoo.ROBUSTBENCH):  # a CIFAR-10 model: refused before it is built
            if dataset not in (None, "cifar10") or model_name not in (None, str(path)):
                raise ValueError(f"The teacher {path} is a CIFAR-10 model of RobustBench, not "
                                 f"{'a ' + repr(model_name) + ' model' if model_name else 'one for ' + dataset}: "
                                 f"pass the checkpoint of a {dataset or model_name} model.")
            model = zoo.robustbench_model(str(path), device=device)
        else:
            model = checkpoints.load_model(path, model_name=model_name, device=device)
            if dataset is not None and models.model_dataset(model.name) != dataset:
                raise ValueError(f"The teacher {path} is a {model.name!r} model for "
                                 f"{models.model_dataset(model.name)}, not {dataset}: pass the checkpoint of a "
                                 f"{dataset} model.")
        teacher = cls(model, cache=cache, source=str(path))
        if cache and cache_dir:
            teacher.cache_path = Path(cache_dir) / f"{teacher.digest.replace(':', '-')}.pt"  # no ':' in a file name
            teacher._load_cache()
        return teacher

    @staticmethod
    def _keys(x: torch.Tensor) -> list[bytes]:
        """A 128-bit digest of each image's pixels (16 bytes a key, not the whole image)."""
        flat = x.detach().to("cpu", torch.float32).reshape(len(x), -1).contiguous().numpy()
        return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with attacks.model_mode(self.model, "eval"):
            return self.model(x).float()

    def logits(self, x: torch.Tensor, cached: bool = True, *, grad: bool = False) -> torch.Tensor:
        """The teacher's logits (float32); ``cached=False`` for inputs that never come back.

        ``grad=True``: the logits as a differentiable function of ``x`` (for an attack that differentiates
        through the teacher), computed afresh (never from or into the cache), in eval mode, the teacher's
        weights frozen: gradients reach ``x`` only. Under ``torch.no_grad()`` no graph is built either way."""
        if grad:
            with attacks.frozen(self.model):  # weights frozen even if someone switched them back on
                return self._forward(x)
        with torch.no_grad():
            return self._cached_logits(x, cached)

    def _cached_logits(self, x: torch.Tensor, cached: bool) -> torch.Tensor:
        if not (self.cache and cached):
            return self._forward(x)
        keys = self._keys(x)
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        if missing:
            out = self._forward(x[missing]).cpu()
            for i, row in zip(missing, out):
                self._store[keys[i]] = row.clone()
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return torch.stack([self._store[k] for k in keys]).to(x.device)

    def probs(self, x: torch.Tensor, tau: float = 1.0, cached: bool = True, *, grad: bool = False) -> torch.Tensor:
        """Soft labels: ``softmax(logits / tau)`` (``cached``, ``grad`` as in :meth:`logits`)."""
        return F.softmax(self.logits(x, cached, grad=grad) / tau, dim=1)

    # ------------------------------------------------------------------ the cache on disk

    def _load_cache(self) -> None:
        if not self.cache_path.exists():
            return
        try:
            ck = torch.load(self.cache_path, map_location="cpu", weights_only=True)
            if ck.get("format") != CACHE_FORMAT:
                raise ValueError("another format")
        except Exception as err:  # a damaged cache is only lost time: start a new one, say so
            print(f"Ignoring the teacher cache {shown(self.cache_path)} ({type(err).__name__}: {err}); it will be "
                  "rebuilt.", flush=True)
            return
        keys, rows = ck["keys"].numpy(), ck["logits"]
        self._store = {bytes(k): r for k, r in zip(keys, rows)}
        self._saved = len(self._store)

    def save_cache(self) -> None:
        """Write the cache to ``cache_path`` (atomically) if it grew since it was read or last written."""
        if self.cache_path is None or len(self._store) == self._saved:
            return
        keys = torch.frombuffer(bytearray(b"".join(self._store)), dtype=torch.uint8).reshape(-1, 16)
        checkpoints.save_checkpoint(self.cache_path, {"format": CACHE_FORMAT, "source": self.source, "keys": keys,
                                                      "logits": torch.stack(list(self._store.values()))})
        self._saved = len(self._store)
