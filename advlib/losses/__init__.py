r"""Training objectives: one module per method, plugged into :func:`advlib.train.fit`.

A method is a function of one :class:`Context` (the model, the batch, the current ε, the run's
:class:`~advlib.config.TrainConfig`, and the teacher when the method distils from one) that
returns ``(loss, logits)``: a scalar to minimise and the model's output on the inputs it trained
on (for the running training accuracy). The engine zeroes the parameter gradients after the
method returns and before ``loss.backward()``, so a method may run backward passes of its own.

A method is registered with what it reads, once, in its own module::

    @register("trades", uses=ATTACK_FIELDS, params={"beta": 6.0}, ranges={"beta": "[0, inf)"},
              paper="TRADES", citation="Zhang et al., ICML 2019")
    def trades(ctx: Context):
        ...

``uses`` names the :class:`~advlib.config.TrainConfig` fields the method reads (recipe tables
and exercise checks read this declaration; :data:`ATTACK_FIELDS` are those of the training adversary);
``params`` declares method-specific hyper-parameters with their defaults (a run sets them in
``TrainConfig.params``, the method reads them with ``ctx.param(name)``) and ``ranges`` the values
:func:`validate` accepts for some of them; ``teacher=True`` makes the engine load the frozen teacher
named by ``TrainConfig.teacher`` once and hand it over as ``ctx.teacher``; ``paper`` is the name the
published tables give the method (:mod:`advlib.reference` matches our rows with theirs by it) and
``citation`` the paper that introduced it. :func:`validate` checks a config against what its method
declares (the engine calls it before training), :func:`param` reads a method's hyper-parameter of a
config, :func:`upgrade` reads a config dict written by an older advlib.

Lifecycle. A method that keeps something from one step to the next, or acts on the model around the optimiser step,
declares a state class, ``register(..., state=MyState)``, a subclass of :class:`MethodState`. The engine builds one
per run, ``MyState(model, cfg)`` (the network itself, never its DistributedDataParallel wrapper, on its device and
in its memory format), before the first step, and hands it to every call of the method as ``ctx.state``. One
training step (:func:`advlib.train.train_step`, what :func:`advlib.train.fit` runs) is then:

1. ``loss, logits = fn(ctx)``, under the run's autocast; the method may change the model here (AWP adds its
   weight perturbation between crafting its examples and its training forward pass);
2. ``optimizer.zero_grad()``, ``(loss * cfg.loss_scale).backward()``, gradient clipping when ``cfg.grad_clip``;
3. ``ctx.state.before_step(ctx)``: the gradients are final, the weights not yet updated;
4. ``optimizer.step()``;
5. ``ctx.state.after_step(ctx)``, also when the step is abandoned by an exception (then after neither 3 nor 4), so
   that what ``fn`` did to the model is always undone (AWP removes its perturbation here). The weight average's
   update, the held-out monitor and every checkpoint come after it and see the model as it leaves it.

What must survive an interruption goes in ``state_dict()`` (tensors, numbers, strings, lists and dicts of them),
which the checkpoints keep and a resumed run gives back to ``load_state_dict``; what is rebuilt at every step (AWP's
perturbation) need not. Every hook defaults to doing nothing, and a method without ``state=`` has
``ctx.state = None``: the ``fn(ctx) -> (loss, logits)`` contract is unchanged. A method with a state runs a step at
a time (:func:`advlib.train.train_step`), not through :func:`compute`, whose loss could not be backpropagated once
``after_step`` had undone the change.

Adding a method: write ``advlib/losses/<name>.py`` with a registered function (every module of
this package is imported, so nothing else needs editing), an exercise, its solution and a test.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
import torch.nn as nn

from .. import attacks, utils
from ..config import TrainConfig, in_range

if TYPE_CHECKING:  # pragma: no cover
    from ..teacher import Teacher

# The TrainConfig fields of the training adversary: what a method that crafts its examples with ctx.pgd reads
# (``uses=ATTACK_FIELDS``). A method's ``uses`` lists only what shapes its own loss, not what every method
# reads through the engine (optimiser, schedule, data...).
ATTACK_FIELDS = ("eps", "eps_ramp_epochs", "alpha", "steps", "attack_mode")

# TrainConfig fields that became parameters of the methods that read them (issue 21): a config dict written
# before then (a checkpoint's, a metrics.json's, a --config file) carries them for every method; upgrade().
MOVED_TO_PARAMS = ("beta", "mix")


@dataclass
class Context:
    """What a training method receives for one batch."""

    model: nn.Module  # the network being trained (DDP-wrapped under torchrun); in training mode
    x: torch.Tensor  # images in [0,1]
    y: torch.Tensor  # labels
    eps: float  # the current (possibly ramped) training epsilon
    cfg: "TrainConfig"
    teacher: Optional["Teacher"] = None  # frozen, eval mode; only for methods registered with teacher=True
    epoch: float = 0.0  # training progress in epochs (fractional), for warm-ups
    state: Optional["MethodState"] = None  # the run's state of a method registered with state=; None otherwise

    def param(self, name: str) -> Any:
        """A method-specific hyper-parameter (``cfg.params``, else the method's declared default)."""
        return param(self.cfg, name)

    def step_size(self, default_ratio: float) -> float:
        """The attack step: ``cfg.alpha`` if set (scaled with a ramped ε), else ``default_ratio * eps``."""
        cfg = self.cfg
        if cfg.alpha is None:
            return default_ratio * self.eps
        return cfg.alpha * (self.eps / cfg.eps) if cfg.eps > 0 else cfg.alpha

    def pgd(self, steps: Optional[int] = None, alpha: Optional[float] = None, **kw) -> torch.Tensor:
        """PGD examples for this batch at the current ε, crafted in ``cfg.attack_mode``: ``steps``
        defaults to ``cfg.steps``, ``alpha`` to Madry's rule 2.5·ε/steps (or ``cfg.alpha``); other
        keywords go to :func:`advlib.attacks.pgd` (``loss=``, ``target=``, ``random_start=``)."""
        steps = self.cfg.steps if steps is None else steps
        if alpha is None:
            alpha = self.step_size(attacks.madry_alpha(1.0, steps))
        kw.setdefault("mode", self.cfg.attack_mode)
        return attacks.pgd(self.model, self.x, self.y, self.eps, alpha, steps, **kw)


class MethodState:
    """The per-run state of a training method and its hooks around the optimiser step (the module docstring,
    "Lifecycle", gives the order). A method's state class subclasses this one and overrides what it needs; every
    hook defaults to doing nothing. The engine builds it once per run as ``cls(model, cfg)``."""

    def __init__(self, model: nn.Module, cfg: TrainConfig):
        self.model, self.cfg = model, cfg  # the network itself (not its DDP wrapper) and the run's settings

    def before_step(self, ctx: Context) -> None:
        """After the backward pass (and gradient clipping), before ``optimizer.step()``."""

    def after_step(self, ctx: Context) -> None:
        """After ``optimizer.step()``, or after a step abandoned by an exception; before the weight average, the
        monitor and the checkpoints see the model."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the state, for a resumed run (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what :meth:`state_dict` returned (on resume)."""


@dataclass(frozen=True)
class Method:
    """A registered training method: the function and what it declares."""

    name: str
    fn: Callable[[Context], tuple[torch.Tensor, torch.Tensor]]
    uses: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    teacher: bool = False
    ranges: dict = field(default_factory=dict)  # {param: interval such as "[0, 1]"}, checked by validate()
    paper: Optional[str] = None  # the method's name in the published tables (advlib.reference)
    citation: Optional[str] = None  # the paper that introduced it
    state: Optional[type] = None  # a MethodState subclass, built once per run (module docstring, "Lifecycle")

    @property
    def summary(self) -> str:
        doc = (self.fn.__doc__ or "").strip()
        return doc.split("\n\n")[0].replace("\n", " ") if doc else self.name

    def __call__(self, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fn(ctx)


METHODS: dict[str, Method] = {}


def register(name: str, *, uses: tuple[str, ...] = (), params: Optional[dict] = None, teacher: bool = False,
             ranges: Optional[dict] = None, paper: Optional[str] = None, citation: Optional[str] = None,
             state: Optional[type] = None):
    """Register a training method under ``name`` (see the module docstring). ``paper`` and ``citation`` are
    written as string literals: :mod:`advlib.reference`, which sits below this package, reads them from the
    source of the call. ``state``: a :class:`MethodState` subclass for a method with a per-run state or hooks
    around the optimiser step (the module docstring, "Lifecycle")."""
    fields = set(TrainConfig.__dataclass_fields__)
    unknown = set(uses) - fields
    if unknown:
        raise ValueError(f"method {name!r} declares unknown TrainConfig fields {sorted(unknown)}; "
                         "method-specific hyper-parameters go in params={...}.")
    params, ranges = dict(params or {}), dict(ranges or {})
    if set(ranges) - set(params):
        raise ValueError(f"method {name!r} gives ranges for undeclared parameters {sorted(set(ranges) - set(params))}")
    if state is not None and not (isinstance(state, type) and issubclass(state, MethodState)):
        raise ValueError(f"method {name!r}: state= takes a subclass of advlib.losses.MethodState; got {state!r}")

    def deco(fn: Callable[[Context], tuple[torch.Tensor, torch.Tensor]]) -> Method:
        if name in METHODS:
            raise ValueError(f"a training method named {name!r} is already registered")
        METHODS[name] = Method(name, fn, tuple(uses), params, teacher, ranges, paper, citation, state)
        return METHODS[name]
    return deco


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"Unknown training method {name!r}; choose one of {', '.join(METHODS)}.")
    return METHODS[name]


def param(cfg: TrainConfig, name: str) -> Any:
    """A method-specific hyper-parameter of the run ``cfg``: ``cfg.params[name]`` if set, else the default that
    ``cfg.method`` declares. ``KeyError`` if the method declares no such parameter."""
    declared = get_method(cfg.method).params
    if name not in declared:
        raise KeyError(f"method {cfg.method!r} declares no parameter {name!r} (it declares {sorted(declared)})")
    return cfg.params.get(name, declared[name])


def validate(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` saying what to fix for a config training could not use: its fields
    (:meth:`TrainConfig.validate <advlib.config.TrainConfig.validate>`), then what its method declares: a
    registered method, only the parameters it declares, each in the range it declares, and a teacher for a
    method that distils from one.
    :func:`advlib.train.fit` calls it before the first training step."""
    cfg.validate()
    method = get_method(cfg.method)
    unknown = set(cfg.params) - set(method.params)
    if unknown:
        raise ValueError(f"method {cfg.method!r} has no parameter(s) {sorted(unknown)}; it declares "
                         f"{sorted(method.params) or 'none'}.")
    for name, interval in method.ranges.items():
        value = cfg.params.get(name, method.params[name])
        number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not (number and in_range(value, interval)):
            raise ValueError(f"{name} (a parameter of {cfg.method}) must be in {interval}, a finite number; "
                             f"got {value!r}.")
    if method.teacher and not cfg.teacher:
        raise ValueError(f"method {cfg.method!r} distils from a teacher: set teacher= to the path of a "
                         "checkpoint (a last.pt or best.pt of a robust model of this dataset).")


def upgrade(d: dict) -> dict:
    """A TrainConfig dict (a checkpoint's or a metrics.json's config, a --config file) in today's fields: the
    fields of :data:`MOVED_TO_PARAMS`, which every config carried whatever its method, become ``params`` of a
    method that declares them (a value ``params`` already sets wins) and are dropped for the others, which never
    read them. A copy; ``d`` itself is left as it is."""
    d = dict(d)
    moved = {k: d.pop(k) for k in MOVED_TO_PARAMS if k in d}
    method = METHODS.get(d.get("method", TrainConfig.method))
    kept = {k: v for k, v in moved.items() if method is not None and k in method.params}
    if kept:
        d["params"] = {**kept, **(d.get("params") or {})}
    return d


def compute(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
            teacher: Optional["Teacher"] = None, epoch: float = 0.0, **cfg_fields: Any
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run training method ``name`` on one batch, outside the engine (notebooks, exercise checks):
    ``compute("fgsm_weighted", model, x, y, 0.3, params={"mix": 0.5})``. ``cfg_fields`` are TrainConfig fields.
    A method with a per-run state (``state=``, such as AWP, which changes the weights until after the optimiser
    step) is refused: it runs a step at a time, :func:`advlib.train.train_step`."""
    method = get_method(name)
    if method.state is not None:
        raise ValueError(f"method {name!r} keeps a state across the steps of a run and acts around the optimiser step; "
                         "run it a step at a time with advlib.train.train_step (or train with advlib.train.fit).")
    cfg = TrainConfig(method=name, eps=eps, **cfg_fields)
    return method(Context(model, x, y, eps, cfg, teacher, epoch))


utils.import_submodules(__name__, __path__)  # every module of this package registers its methods when imported
