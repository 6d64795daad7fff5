"""Named training recipes: every setting of a run the course (or a paper) made, in one place.

A recipe is a set of :class:`~advlib.config.TrainConfig` fields with a title and where it comes
from. Notebooks, ``python -m advlib train --recipe NAME`` and the benchmarks build their runs
from the same names, so a recipe is written once::

    cfg = recipes.config("mnist_pgd", out_dir="runs/x")          # TrainConfig; keywords override
    cfg = recipes.config("mnist_pgd", epochs_scale=0.25)          # a quarter of the epochs

Adding a recipe: one entry in :data:`RECIPES` (fields are checked against TrainConfig on import).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str  # how notebooks and reports name the run
    settings: dict  # TrainConfig fields
    source: str = ""  # where the settings come from

    def config(self, epochs_scale: float = 1.0, **overrides: Any) -> TrainConfig:
        fields = {**self.settings, **overrides}
        fields["epochs"] = fields.get("epochs", TrainConfig.epochs) * epochs_scale
        return TrainConfig.from_dict(fields)


MNIST_EPS = 0.3

# What notebook 02's five MNIST runs share: one architecture, Adam without weight decay, batch 100,
# a held-out PGD-10 monitor with step 0.03 (a monitor, not the evaluation).
_MNIST = dict(model="fast_cnn_wide", dataset="mnist", eps=MNIST_EPS, batch_size=100, optimizer="adam",
              weight_decay=0.0, eval_samples=500, eval_steps=10, eval_alpha=0.03)

_LIST = [
    Recipe("mnist_standard", "Standard",
           {**_MNIST, "method": "standard", "epochs": 2, "lr": 1e-3, "schedule": "cosine"},
           "course (notebook 02): the non-robust baseline"),
    Recipe("mnist_fgsm_two_pass", "FGSM (two-pass)",
           {**_MNIST, "method": "fgsm_two_pass", "epochs": 5, "lr": 1e-3, "schedule": "cosine"},
           "course (notebook 02): FGSM training as many tutorials write it"),
    Recipe("mnist_fgsm_augment", "FGSM augment (α=0.5)",
           {**_MNIST, "method": "fgsm_weighted", "mix": 0.5, "epochs": 5, "lr": 1e-3, "schedule": "cosine"},
           "Goodfellow et al. 2015, adversarial data augmentation with mixing weight 0.5"),
    Recipe("mnist_fgsm_rs", "FGSM-RS (fast AT)",
           {**_MNIST, "method": "fgsm_rs", "alpha": 1.25 * MNIST_EPS, "epochs": 10, "lr": 5e-3, "schedule": "cyclic"},
           "Wong et al. 2020 (fast_adversarial, MNIST): random start, step 1.25 eps, cyclic learning rate"),
    Recipe("mnist_pgd", "PGD (Madry)",
           {**_MNIST, "method": "pgd", "steps": 5, "eps_ramp_epochs": 2, "epochs": 8, "lr": 1e-3,
            "schedule": "cyclic", "cyclic_peak": 0.4},
           "course (notebook 02): PGD-5 with an eps ramp over 2 epochs and a one-cycle learning rate; "
           "clean 98.8% / PGD-50x10 91.4% / AutoAttack 89.2% on 1,000 test images in 8.7 CPU minutes"),
]
RECIPES: dict[str, Recipe] = {r.name: r for r in _LIST}

for _r in _LIST:  # a typo in a recipe fails on import, not after an hour of training
    _unknown = set(_r.settings) - {f.name for f in dataclasses.fields(TrainConfig)}
    if _unknown:
        raise ValueError(f"recipe {_r.name!r} sets unknown TrainConfig fields {sorted(_unknown)}")


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}; choose one of {', '.join(RECIPES)}.")
    return RECIPES[name]


def config(name: str, epochs_scale: float = 1.0, **overrides: Any) -> TrainConfig:
    """The TrainConfig of recipe ``name``, with ``epochs`` multiplied by ``epochs_scale`` and
    ``overrides`` applied (``out_dir``, ``seed``, ``source``, ``model``...)."""
    return get(name).config(epochs_scale, **overrides)


# Columns of a recipe table: what every run sets, then what only some methods read (their declaration).
TABLE_KEYS = ("method", "epochs", "batch_size", "optimizer", "lr", "schedule", "eps", "eps_ramp_epochs", "steps",
              "alpha", "mix", "beta", "model")
_ALWAYS = {"method", "epochs", "batch_size", "optimizer", "lr", "schedule", "model"}


def table(configs: dict[str, TrainConfig]) -> str:
    """A Markdown table of the hyper-parameters of several runs, one row each; '–' where a run's
    method does not read the setting (as the method declares in :func:`advlib.losses.register`),
    plus the methods' own ``params`` and the teacher when any run has them."""
    from . import losses, tables

    keys = list(TABLE_KEYS)
    keys += [k for k in ("params", "teacher") if any(getattr(c, k) for c in configs.values())]

    def fmt(v: Any) -> str:
        return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    def cell(c: TrainConfig, k: str) -> str:
        method = losses.get_method(c.method)
        if k == "params":
            return ", ".join(f"{p}={fmt(c.param(p))}" for p in method.params) or "–"
        if k not in _ALWAYS and k != "teacher" and k not in method.uses:
            return "–"
        v = getattr(c, k)
        return "default" if (k == "alpha" and v is None) else fmt(v)

    return tables.markdown(["run", *keys], ([name, *(cell(c, k) for k in keys)] for name, c in configs.items()))
