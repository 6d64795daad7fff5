"""The settings of one training run, as one flat dataclass: every hyper-parameter visible at a glance.

:class:`TrainConfig` is what :func:`advlib.train.fit` runs, what a checkpoint stores, what
``python -m advlib train`` builds from its flags and what :mod:`advlib.recipes` names.
Method-specific hyper-parameters that only one training method reads (for example a
distillation temperature) live in ``params``; each method declares them, with their defaults,
where it is registered (:func:`advlib.losses.register`), so adding a method never edits this file.

This module knows the data sets and the models by name but nothing of the training methods: what a
method declares is checked with the methods, by :func:`advlib.losses.validate` (which
:func:`advlib.train.fit` calls), and a method's hyper-parameter is read with :func:`advlib.losses.param`.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from . import data as data_mod, models, utils

SCHEDULES = ("constant", "multistep", "cosine", "cyclic")
OPTIMIZERS = ("sgd", "adam")
ATTACK_MODES = ("eval", "train")
PRECISIONS = ("fp32", "bf16")
# Allowed values of the numeric fields, checked by TrainConfig.validate ("[" includes the end, "(" excludes it).
RANGES = {
    "train_samples": "[1, inf)", "holdout": "[1, inf)", "epochs": "(0, inf)", "batch_size": "[1, inf)",
    "lr": "[0, inf)", "momentum": "[0, inf)", "weight_decay": "[0, inf)", "gamma": "(0, inf)",
    "cyclic_peak": "(0, 1)", "warmup_epochs": "[0, inf)", "grad_clip": "(0, inf)", "eps": "[0, 1]",
    "alpha": "(0, inf)", "steps": "[1, inf)", "eps_ramp_epochs": "[0, inf)",
    "eval_samples": "[1, inf)", "eval_steps": "[1, inf)", "eval_alpha": "(0, inf)", "checkpoint_every": "[0, inf)",
    "monitor_every": "[0, inf)", "ema_decay": "[0, 1)", "ema_warmup_epochs": "[0, inf)", "loss_scale": "(0, inf)",
}


def in_range(value: float, interval: str) -> bool:
    """Whether ``value`` lies in ``interval``, written like ``"(0, 1]"``."""
    lo, hi = (float(t) for t in interval[1:-1].split(","))
    above = lo < value or (interval[0] == "[" and value == lo)
    return above and (value < hi or (interval[-1] == "]" and value == hi))


def _type_ok(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of the annotated ``kind`` (a bool is not a number here; a float must be finite)."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if kind is tuple:
        return isinstance(value, (tuple, list)) and all(_type_ok(v, float) for v in value)
    return isinstance(value, kind) if isinstance(kind, type) else True


@dataclass
class TrainConfig:
    # what
    model: str = "fast_cnn"
    dataset: str = "mnist"
    source: str = "auto"
    method: str = "standard"
    normalize: bool = False
    train_samples: Optional[int] = None  # use only the first N training images (CPU budgets)
    holdout: int = 1000  # images held out of the training set for per-epoch evaluation
    augment: Optional[bool] = None  # crop + flip; default: on for CIFAR-10
    augment_crop: bool = True  # with augment: random crops too (False: flips only, so a teacher's output is cached)
    # optimisation
    epochs: float = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "multistep"  # constant | multistep | cosine | cyclic
    milestones: tuple = (0.5, 0.75)  # multistep: fractions of training at which lr *= gamma
    gamma: float = 0.1
    cyclic_peak: float = 0.4  # cyclic: fraction of training where the lr peaks (fast_adversarial: 2/5)
    warmup_epochs: float = 0.0
    grad_clip: Optional[float] = None
    # multiplies the method's loss before the backward pass: with SGD, the same as lr x s and weight decay / s, so it
    # sets how far the data term moves the weights against weight decay (benchmarks/distill_budget.py searches it)
    loss_scale: float = 1.0
    # weight averaging (advlib.averaging): an EMA of the weights and batch-norm statistics, monitored each epoch,
    # kept in the checkpoints beside the raw weights and the model that load_model returns
    ema_decay: float = 0.0  # 0: off; the papers use 0.995-0.999
    ema_warmup_epochs: float = 0.0  # the average copies the weights until then
    # adversary used in training
    eps: float = 0.3
    alpha: Optional[float] = None  # attack step; None: the method's default ratio of eps
    steps: int = 10
    eps_ramp_epochs: float = 0.0  # eps grows linearly from 0 over these epochs
    attack_mode: str = "eval"  # model mode while crafting training examples: eval | train
    params: dict = field(default_factory=dict)  # method-specific hyper-parameters (declared by the method)
    teacher: Optional[str] = None  # checkpoint of the teacher, for methods that distil from one
    # speed levers (CPU: about 4x together on AVX512-BF16 cores); attacks' perturbations and every
    # evaluation stay in float32
    precision: str = "fp32"  # fp32 | bf16 (bfloat16 autocast of the training forward passes)
    channels_last: bool = False  # channels-last memory layout for the model and its input batches
    # per-epoch evaluation on the held-out split
    eval_samples: int = 500
    eval_steps: int = 10
    eval_alpha: Optional[float] = None  # default eps / 4
    monitor_every: int = 0  # also evaluate on the held-out split every N steps (0: at epoch ends only): state["trace"]
    # bookkeeping
    seed: int = 0
    out_dir: str = "runs/train"
    checkpoint_every: int = 0  # also checkpoint every N steps (0: at epoch ends only)
    device: str = "auto"
    progress: bool = True
    extra: dict = field(default_factory=dict)  # free-form notes stored with the run

    def to_dict(self) -> dict:
        return utils.to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields: {sorted(unknown)} (a hyper-parameter of one method goes "
                             "in params, as the method declares it; a config written by an older advlib reads "
                             "with advlib.losses.upgrade)")
        d = dict(d)
        if "milestones" in d and d["milestones"] is not None:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (``params`` merged into the existing ones)."""
        if "params" in changes:
            changes["params"] = {**self.params, **(changes["params"] or {})}
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what it accepts for any setting training could not
        use: every field's type and range, the source, device, data set and model, before the first
        training step, not an epoch into the run. The method (a registered name, the ``params`` it
        declares, the ``teacher`` it needs) is checked with the methods: :func:`advlib.losses.validate`
        runs this and those checks, and :func:`advlib.train.fit` runs that."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, args = getattr(self, f.name), typing.get_args(hints[f.name])
            optional = type(None) in args
            if value is None and optional:
                continue
            kind = next((a for a in args if a is not type(None)), hints[f.name])
            what = {bool: "true or false", int: "an integer", float: "a finite number",
                    tuple: "a list of numbers"}.get(kind, getattr(kind, "__name__", str(kind)))
            if not _type_ok(value, kind):
                raise ValueError(f"{f.name} must be {what}{' or None' if optional else ''}; got {value!r}.")
            if f.name in RANGES and not in_range(value, RANGES[f.name]):
                raise ValueError(f"{f.name} must be in {RANGES[f.name]}, {what}; got {value!r}.")
        if not all(0 < m <= 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of the training in (0, 1] at which lr *= gamma (for epochs "
                             f"50 and 75 of 100 write 0.5 0.75); got {list(self.milestones)}.")
        if self.source not in data_mod.SOURCES:
            raise ValueError(f"source must be one of {data_mod.SOURCES}; got {self.source!r}")
        if self.device != "auto":
            try:
                device = torch.device(self.device)
            except RuntimeError as err:
                raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {self.device!r} "
                                 f"({err})") from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise ValueError(f"device {self.device!r} asks for a GPU but torch sees none: "
                                 "use device='auto' or 'cpu'.")
        if self.dataset not in data_mod.DATASETS:
            raise ValueError(f"dataset must be one of {data_mod.DATASETS}; got {self.dataset!r}")
        if self.model not in models.MODELS:
            raise ValueError(f"Unknown model {self.model!r}; registered: {', '.join(models.MODELS)}")
        if models.model_dataset(self.model) != self.dataset:
            raise ValueError(f"Model {self.model!r} is for {models.model_dataset(self.model)}, not {self.dataset}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be constant, multistep, cosine or cyclic; got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if self.attack_mode not in ATTACK_MODES:
            raise ValueError(f"attack_mode must be 'eval' or 'train'; got {self.attack_mode!r}")
