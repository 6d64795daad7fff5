"""One training engine with a pluggable loss (see :mod:`advlib.losses`; settings in :mod:`advlib.config`).

``fit(TrainConfig(...))`` trains, evaluates clean and PGD accuracy on a held-out split each
epoch, keeps ``last.pt`` and ``best.pt`` (by robust accuracy) in ``cfg.out_dir``, writes
``metrics.json`` there, keeps an average of the weights when ``cfg.ema_decay`` is set
(:mod:`advlib.averaging`: monitored each epoch, saved beside the raw weights, what
:func:`advlib.checkpoints.load_model` returns), and resumes from ``last.pt`` after an interruption with
nothing lost (mid-epoch too when ``checkpoint_every`` is set): model, optimiser, schedule, RNG states, the
method's own state (:class:`advlib.losses.MethodState`) and the position in the epoch are all restored, so a
resumed run ends where an uninterrupted one does. Each step runs the method's lifecycle (:func:`train_step`).

It is rank-aware for a later ``torchrun`` + DistributedDataParallel run: each rank trains on
its own shard of every epoch, metrics are summed over ranks, and only rank 0 logs and writes.
"""
from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from . import attacks, averaging, data as data_mod, evaluate, losses, models, paths, utils
# load_model, load_checkpoint and save_checkpoint are re-exported here because notebooks, solutions, tests and
# benchmarks call them as train.load_model, ...; they live in advlib.checkpoints (read by the teacher and the zoo,
# which sit below the engine)
from .checkpoints import CHECKPOINT_FORMAT, load_checkpoint, load_model, load_state, save_checkpoint  # noqa: F401
from .config import TrainConfig  # noqa: F401  (advlib.train.TrainConfig, as before)
from .teacher import Teacher

# Fields that may change between an interrupted run and its resumption.
RESUME_FREE = {"out_dir", "progress", "device", "checkpoint_every", "extra", "eval_samples", "teacher"}
# (a teacher is compared by its weights, not by the path it was read from: see ``state["teacher"]``)


def lr_factor(cfg: TrainConfig, t: float) -> float:
    """Learning-rate multiplier at training progress ``t`` in [0, 1] (fraction of all steps)."""
    total_epochs = float(cfg.epochs)
    warm = cfg.warmup_epochs / total_epochs if total_epochs else 0.0
    if warm > 0 and t < warm:
        return t / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "multistep":
        return cfg.gamma ** sum(t >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    # cyclic (one cycle): 0 -> peak -> 0, linearly
    p = cfg.cyclic_peak
    return t / p if t < p else max(0.0, (1 - t) / (1 - p))


def monitors_robustness(cfg: TrainConfig) -> bool:
    """Whether best.pt is chosen by held-out robust accuracy: the method trains against an attack of ε > 0
    (a natural run carrying an ε in its config is ranked by clean accuracy)."""
    return cfg.eps > 0 and "eps" in losses.get_method(cfg.method).uses


def current_eps(cfg: TrainConfig, epoch_float: float) -> float:
    if cfg.eps_ramp_epochs > 0:
        return cfg.eps * min(1.0, epoch_float / cfg.eps_ramp_epochs)
    return cfg.eps


def autocast(cfg: TrainConfig, device: torch.device):
    """The training forward passes' precision: bfloat16 autocast for ``precision="bf16"``. The images,
    the attacks' perturbations and projections stay float32 (autocast only lowers the model's matrix
    products and convolutions), and the per-epoch evaluation runs outside it, in float32."""
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)


def train_step(ctx: losses.Context, optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step of the method ``ctx.cfg.method`` on the batch of ``ctx``, as :func:`fit` runs it, in
    the order the methods' lifecycle documents (:mod:`advlib.losses`, "Lifecycle"): the method under the run's
    autocast, ``zero_grad``, the backward pass of its loss (times ``loss_scale``), gradient clipping,
    ``ctx.state.before_step``, ``optimizer.step()``, and ``ctx.state.after_step``, which runs even when an
    exception abandons the step. Returns the method's ``(loss, logits)``."""
    cfg, state = ctx.cfg, ctx.state
    try:
        with autocast(cfg, ctx.x.device):
            loss, logits = losses.get_method(cfg.method)(ctx)
        optimizer.zero_grad(set_to_none=True)
        (loss * cfg.loss_scale if cfg.loss_scale != 1 else loss).backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(ctx.model.parameters(), cfg.grad_clip)
        if state is not None:
            state.before_step(ctx)
        optimizer.step()
    finally:
        if state is not None:
            state.after_step(ctx)
    return loss, logits


# --------------------------------------------------------------------------- the RNG states in a checkpoint


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


# --------------------------------------------------------------------------- evaluation during training


def quick_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
               batch_size: int = 500) -> dict:
    """Clean, FGSM and PGD accuracy on tensors; ranks split the work when distributed."""
    rank, world = utils.dist_info()
    x, y = x[rank::world], y[rank::world]
    runs = {"clean": None}
    if eps > 0:
        runs["fgsm"] = lambda m, a, b: attacks.fgsm(m, a, b, eps)
        runs["pgd"] = lambda m, a, b: attacks.pgd(m, a, b, eps, alpha, steps)
    counts = [evaluate.batched_accuracy(model, x, y, atk, batch_size) * len(x) for atk in runs.values()]
    *counts, n = utils.all_reduce_sum(counts + [len(x)], device=x.device)
    out = {f"holdout_{k}": c / n for k, c in zip(runs, counts)}
    out.setdefault("holdout_fgsm", float("nan"))
    out.setdefault("holdout_pgd", float("nan"))
    return out


def holdout_size(cfg: TrainConfig, n_images: int) -> int:
    """How many of a run's ``n_images`` training images it holds out: ``cfg.holdout``, at most a fifth."""
    return min(cfg.holdout, n_images // 5)


def split_holdout(cfg: TrainConfig, train_data: data_mod.Dataset) -> tuple[data_mod.Dataset, data_mod.Dataset]:
    """(training images, held-out images) of a run: :func:`holdout_size` images set aside with a permutation
    seeded by ``cfg.seed``; the monitor scores the first ``cfg.eval_samples`` of them."""
    return train_data.split_off(holdout_size(cfg, len(train_data)), seed=cfg.seed)


def monitor_alpha(cfg: TrainConfig) -> float:
    """The step of the monitor's PGD: ``cfg.eval_alpha``, by default ε/4."""
    return cfg.eval_alpha if cfg.eval_alpha is not None else cfg.eps / 4


# --------------------------------------------------------------------------- the engine


def fit(cfg: TrainConfig, model: Optional[nn.Module] = None, train_data: Optional[data_mod.Dataset] = None,
        resume: Union[bool, str] = True, verbose: bool = False, reuse_from: Sequence[Union[str, Path]] = ()) -> dict:
    """Train per ``cfg``; return the run's metrics (also written to ``out_dir/metrics.json``).

    ``resume=True`` continues from ``out_dir/last.pt`` (a finished run is reused as it is) and
    refuses a checkpoint written with other settings; ``resume="if_same"`` starts over in that
    case (what notebooks want after their settings were edited); ``resume=False`` always starts over.
    A resumed run is named with its step when ``verbose`` (the command line); otherwise one notice per
    process says that saved work is reused (:func:`advlib.utils.say_resumed`).

    ``reuse_from``: folders of other runs (e.g. another notebook's). When ``out_dir`` holds no ``last.pt`` (or, with
    ``resume="if_same"``, one written with other settings) and resuming is allowed, a *finished* run among their
    subfolders with the same settings, the same training data
    and the same teacher is copied into ``out_dir`` (:func:`adopt_finished`) and reused instead of trained again.
    """
    if resume not in (True, False, "if_same"):
        raise ValueError(f"resume must be True, False or 'if_same'; got {resume!r}")
    losses.validate(cfg)  # the config's fields, and what its method declares
    rank, world = utils.dist_info()
    device = utils.get_device(cfg.device)
    out = Path(cfg.out_dir)
    if utils.is_main():
        utils.check_writable_dir(out, "out_dir")  # now, not after the first epoch
    utils.set_seed(cfg.seed)

    if train_data is None:
        train_data = data_mod.load(cfg.dataset, "train", source=cfg.source, verbose=utils.is_main())
    if cfg.train_samples is not None:
        train_data = train_data.subset(cfg.train_samples)
    train_set, hold = split_holdout(cfg, train_data)
    hx, hy = hold.tensors(cfg.eval_samples, device=device)

    if model is None:
        model = models.get_model(cfg.model, normalize=cfg.normalize)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if world > 1:  # the same weights everywhere (DDP broadcast them); each rank its own attack noise
        torch.manual_seed(cfg.seed * 1000003 + rank * 7919)
    opt = make_optimizer(cfg, model)
    ema = averaging.averaged(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    evaluated = ema.module if ema is not None else model  # what the monitor scores and best.pt is ranked by
    augment = cfg.augment if cfg.augment is not None else cfg.dataset == "cifar10"
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is the global batch and must be divisible by the number of "
                         f"processes ({world}): each rank trains on batch_size / {world} images per step.")
    # batch_size is the global batch: rank r takes every world-th image of the single-process batch, so
    # the ranks of one step together see exactly the images one process would, in the same steps.
    loader = train_set.loader(cfg.batch_size // world, shuffle=True, seed=cfg.seed, augment=augment, drop_last=True,
                              device=device, rank=rank, world_size=world, crop=cfg.augment_crop)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the training shard ({len(train_set)} images).")
    total_steps = max(1, int(round(cfg.epochs * steps_per_epoch)))
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    method = losses.get_method(cfg.method)
    # the teacher's outputs are cached when every image comes back in finitely many versions (no random
    # crops), on disk beside the run so that the runs of one notebook sharing a teacher share its outputs
    teacher = (Teacher.load(cfg.teacher, dataset=cfg.dataset, device=device,
                            cache=not (augment and cfg.augment_crop), cache_dir=out.parent / "teacher_cache")
               if method.teacher else None)
    eval_alpha = monitor_alpha(cfg)
    # the method's per-run state (losses.MethodState), built once on the network itself, not its DDP wrapper
    method_state = method.state(model, cfg) if method.state is not None else None

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "trace": [], "best_robust": -1.0,
             "best_epoch": None, "train_seconds": 0.0, "data": f"{train_data.label}, {len(train_data)} images"}
    if teacher is not None:
        state["teacher"] = teacher.digest
    last = out / "last.pt"
    ck = load_checkpoint(last, map_location=device) if (resume and last.exists()) else None
    if resume and reuse_from and (ck is None or (resume == "if_same" and _config_diff(cfg, ck, state["data"],
                                                                                        state.get("teacher")))):
        # nothing here to resume (no run, or one whose settings changed): a finished twin elsewhere?
        if utils.is_main():
            adopt_finished(cfg, reuse_from, state["data"], state.get("teacher"))
        utils.barrier()
        if last.exists():
            ck = load_checkpoint(last, map_location=device)
    if ck is not None and resume == "if_same" and _config_diff(cfg, ck, state["data"], state.get("teacher")):
        if utils.is_main():
            print(f"The settings or the data changed since {paths.shown(last)} was written "
                  f"({sorted(_config_diff(cfg, ck, state['data'], state.get('teacher')))}): training from scratch.",
                  flush=True)
        ck = None
    if ck is not None:
        _check_resumable(cfg, ck, last, state["data"], state.get("teacher"))
        load_state(model, ck["model"], source=str(last))
        if ema is not None:
            averaging.load(ema, ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        if method_state is not None and "method_state" in ck:
            method_state.load_state_dict(ck["method_state"])
        state.update(ck["state"])
        _set_rng_state(ck["rng"])
        if world > 1:  # each rank its own attack noise, reproducibly
            torch.manual_seed(cfg.seed * 1000003 + rank * 7919 + state["global_step"])
        utils.say_resumed(f"Resuming {paths.shown(out)} at epoch {state['epoch'] + 1}, step {state['step_in_epoch']} "
                          f"({state['global_step']}/{total_steps} steps done).", verbose)

    def monitor(model: nn.Module, t_epoch: float, eps: float) -> dict:
        """One point of the within-epoch trace; its attacks' random starts do not move the training's RNG."""
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            ev = quick_eval(model, hx, hy, cfg.eps, eval_alpha, cfg.eval_steps)
        return {"epoch": round(t_epoch, 4), "train_eps": eps, **ev}

    def checkpoint(path: Path, **extra):
        if not utils.is_main():
            return
        if ema is not None:
            extra["ema"] = averaging.state(ema)
        if method_state is not None:
            extra["method_state"] = method_state.state_dict()
        save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "model_name": getattr(model, "name", cfg.model),
                               "config": cfg.to_dict(), "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "state": dict(state), "rng": _rng_state(), **extra})

    def write_metrics(final: bool):
        if utils.is_main():
            utils.write_json(out / "metrics.json", run_metrics(cfg, state, train_data, final, total_steps))

    for epoch in range(state["epoch"], n_epochs):
        model.train()
        loader.set_epoch(epoch)
        skip = state["step_in_epoch"]
        steps_this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        bar = utils.progress(total=steps_this_epoch, enabled=cfg.progress, desc=f"epoch {epoch + 1}/{n_epochs}",
                             initial=skip, leave=False)
        t0 = time.perf_counter()
        # running sums of this epoch; restored too when resuming mid-epoch
        seen, correct, loss_sum = state.get("running", (0, 0, 0.0)) if skip else (0, 0, 0.0)
        eps = current_eps(cfg, state["global_step"] / steps_per_epoch)
        for i, (xb, yb) in enumerate(loader):
            if i >= steps_this_epoch:
                break
            if i < skip:  # replay the (deterministic) order up to where the interrupted run stopped
                continue
            t_epoch = state["global_step"] / steps_per_epoch
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(cfg, state["global_step"] / total_steps)
            eps = current_eps(cfg, t_epoch)
            if cfg.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss, logits = train_step(losses.Context(net, xb, yb, eps, cfg, teacher, t_epoch, method_state), opt)
            if ema is not None:  # after the method's after_step: the weights as it leaves them (AWP: unperturbed)
                if t_epoch < cfg.ema_warmup_epochs:
                    averaging.restart(ema)
                ema.update_parameters(model)
            state["global_step"] += 1
            state["step_in_epoch"] = i + 1
            seen += len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            loss_sum += loss.item() * len(yb)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", eps=f"{eps:.3f}",
                            refresh=False)
            if cfg.monitor_every and state["global_step"] % cfg.monitor_every == 0 and i + 1 < steps_this_epoch:
                state["train_seconds"] += time.perf_counter() - t0  # monitoring is not training time
                state["trace"].append(monitor(evaluated, state["global_step"] / steps_per_epoch, eps))
                model.train()
                t0 = time.perf_counter()
            if cfg.checkpoint_every and state["global_step"] % cfg.checkpoint_every == 0:
                state["running"] = (seen, correct, loss_sum)
                state["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint(last)
        bar.close()
        state["train_seconds"] += time.perf_counter() - t0
        loss_sum, correct, seen = utils.all_reduce_sum([loss_sum, correct, seen], device=device)
        ev = quick_eval(evaluated, hx, hy, cfg.eps, eval_alpha, cfg.eval_steps)
        if ema is not None:  # the raw weights too, to see what averaging adds
            ev.update({f"raw_{k}": v for k, v in quick_eval(model, hx, hy, cfg.eps, eval_alpha,
                                                            cfg.eval_steps).items()})
        clean, robust = ev["holdout_clean"], ev["holdout_pgd"]
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_eps": eps,
               "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
               **ev, "train_seconds": state["train_seconds"]}
        state["history"].append(row)
        if cfg.monitor_every:
            state["trace"].append({"epoch": epoch + 1.0, "train_eps": eps, **ev})
        state["epoch"], state["step_in_epoch"], state["running"] = epoch + 1, 0, (0, 0, 0.0)
        score = robust if monitors_robustness(cfg) else clean
        if score > state["best_robust"]:
            state["best_robust"], state["best_epoch"] = score, epoch + 1
            checkpoint(out / "best.pt")
        checkpoint(last)
        if teacher is not None and utils.is_main():
            teacher.save_cache()
        write_metrics(final=False)
        if utils.is_main() and cfg.progress:
            rob = f", FGSM {ev['holdout_fgsm']:.1%}, PGD-{cfg.eval_steps} {robust:.1%}" if cfg.eps > 0 else ""
            print(f"epoch {epoch + 1}/{n_epochs}: loss {row['train_loss']:.3f}, train acc {row['train_acc']:.1%}, "
                  f"held-out clean {clean:.1%}{rob} ({state['train_seconds']:.0f}s)", flush=True)
    utils.barrier()
    write_metrics(final=True)
    return run_metrics(cfg, state, train_data, True, total_steps)


# What a finished run's folder holds that another folder can reuse: its weights, its record and its evaluations
# (advlib.evaluate's states, valid only for the weights and images they were computed on: their fingerprint).
ADOPTED_FILES = ("last.pt", "best.pt", "metrics.json", "evaluation_*.json")


def adopt_finished(cfg: TrainConfig, folders: Sequence[Union[str, Path]], data_desc: str,
                   teacher: Optional[str] = None) -> Optional[Path]:
    """Copy into ``cfg.out_dir`` the first finished run found in a subfolder of ``folders`` (or a folder itself)
    whose checkpoint has ``cfg``'s settings (up to :data:`RESUME_FREE`, e.g. its folder), was trained on
    ``data_desc`` and, for a distillation method, by the teacher of digest ``teacher``; return where it came from,
    or None. An interrupted run, or one with other settings, is never copied. Two notebooks that train the same
    recipe on the same budget thus train it once: the second copies the first's run (``fit(..., reuse_from=)``)."""
    out = Path(cfg.out_dir)
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for cand in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
            if cand.resolve() == out.resolve() or not (cand / "last.pt").exists():
                continue
            try:  # finished: its record says so (written after its last checkpoint)
                if not utils.read_json(cand / "metrics.json").get("complete"):
                    continue
                ck = load_checkpoint(cand / "last.pt")
            except Exception:  # no record, or a damaged or foreign file: not a run to reuse
                continue
            if _config_diff(cfg, ck, data_desc, teacher):
                continue
            out.mkdir(parents=True, exist_ok=True)
            for pattern in ADOPTED_FILES:  # what a stale run here left (its evaluations: other weights) goes first
                for f in out.glob(pattern):
                    f.unlink()
            for pattern in ADOPTED_FILES:
                for f in sorted(cand.glob(pattern)):
                    if f.name != "last.pt":
                        shutil.copy2(f, out / f.name)
            ck["state"]["copied_from"] = paths.shown(cand)  # kept in the run's state: its metrics.json says it
            save_checkpoint(out / "last.pt", ck)  # last, so that an interrupted copy is no run to resume
            print(f"{paths.shown(out)}: the same settings, data and teacher as the finished run "
                  f"{paths.shown(cand)}, copied from there instead of trained again.", flush=True)
            return cand
    return None


def _settings(config: dict) -> dict:
    """A config dict as resuming compares it: in today's fields (:func:`advlib.losses.upgrade`: TRADES' β of an
    older checkpoint is its ``params["beta"]``), a field added after it was written at its default, and every
    parameter its method declares at the value the run reads (one left at its default and one set to the same
    value are the same setting)."""
    d = {**TrainConfig().to_dict(), **losses.upgrade(config)}
    method = losses.METHODS.get(d["method"])
    d["params"] = {**(method.params if method else {}), **(d["params"] or {})}
    return d


def _config_diff(cfg: TrainConfig, ck: dict, data_desc: str, teacher: Optional[str] = None) -> dict:
    """Settings (and the training data, and the teacher's weights) that differ between ``cfg`` and a checkpoint."""
    old, new = _settings(ck.get("config", {})), _settings(cfg.to_dict())
    diff = {k: (old[k], v) for k, v in new.items() if k not in RESUME_FREE and old[k] != v}
    if ck.get("state", {}).get("data") != data_desc:
        diff["data"] = (ck.get("state", {}).get("data"), data_desc)
    if ck.get("state", {}).get("teacher") != teacher:
        diff["teacher"] = (ck.get("state", {}).get("teacher"), teacher)
    return diff


def _check_resumable(cfg: TrainConfig, ck: dict, path: Path, data_desc: str, teacher: Optional[str] = None) -> None:
    diff = _config_diff(cfg, ck, data_desc, teacher)
    if diff:
        raise ValueError(f"{path} was written by a run with other settings {diff} (old, new). "
                         "Resume with the same settings, choose another out_dir, or start over: resume=False "
                         "(on the command line: --no-resume).")


def run_metrics(cfg: TrainConfig, state: dict, train_data: data_mod.Dataset, final: bool, total_steps: int) -> dict:
    hist = state["history"]
    return utils.to_jsonable({
        "kind": "train", "complete": final and state["global_step"] >= total_steps,
        "config": cfg.to_dict(), "data": train_data.label, "data_origin": train_data.origin,
        **({"teacher": {"path": cfg.teacher, "weights": state["teacher"]}} if state.get("teacher") else {}),
        "epochs_done": state["epoch"], "train_seconds": round(state["train_seconds"], 2),
        **({"copied_from": state["copied_from"]} if state.get("copied_from") else {}),
        "best_epoch": state["best_epoch"],
        "best_holdout_pgd" if monitors_robustness(cfg) else "best_holdout_clean":
            state["best_robust"], "final": hist[-1] if hist else None, "history": hist,
        **({"trace": state["trace"]} if cfg.monitor_every else {}),
    })
