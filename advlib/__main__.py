"""Command line: ``python -m advlib train ...``, ``python -m advlib evaluate ...`` and ``python -m advlib export ...``.

Examples::

    python -m advlib train --model fast_cnn --dataset mnist --method pgd --eps 0.3 --epochs 10 \
        --optimizer adam --lr 1e-3 --out-dir runs/cli/pgd
    python -m advlib evaluate --checkpoint runs/cli/pgd/best.pt --eps 0.3 --alpha 0.01 \
        --attacks fgsm pgd-50x10 aa --n 1000
    python -m advlib evaluate --checkpoint data/models/cifar_teacher.pt --source exact --paper --n-aa 500
    python -m advlib export --checkpoint runs/teacher/last.pt --out data/models/cifar_teacher.pt

Under ``torchrun --nproc_per_node=N -m advlib train ...`` the same engine runs with
DistributedDataParallel (NCCL on GPUs, gloo on CPUs); ``--batch-size`` stays the global batch.

Bad input (a flag, the data, a checkpoint) ends with ``error: ...`` on stderr and exit code 2;
Ctrl-C during training ends with what to run to resume (exit code 130).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import typing
from pathlib import Path
from typing import Optional

from . import attack_registry, checkpoints, data as data_mod, evaluate as ev, losses, models, paths, recipes, train as tr, utils
from .config import ATTACK_MODES, OPTIMIZERS, PRECISIONS, SCHEDULES


# One line of help per TrainConfig field (its flag's --help line; the default is appended unless it
# is None, whose meaning the line gives). A field added to TrainConfig needs a line here (tests check).
TRAIN_HELP = {
    "model": "network, one of: " + ", ".join(models.MODELS),
    "dataset": "data set: " + " | ".join(data_mod.DATASETS),
    "source": "where the data comes from: auto (the full set, else the shipped sample with a notice) | full | sample",
    "method": "training objective, one of: " + ", ".join(
        f"{m.name} ({m.citation})" if m.citation else m.name for m in losses.METHODS.values()),
    "normalize": "put the data set's mean/std normalisation inside the model",
    "train_samples": "train on the first N training images only (default: all of them)",
    "holdout": "training images held out for the per-epoch evaluation",
    "augment": "random crop + horizontal flip (default: on for CIFAR-10, off for MNIST)",
    "augment_crop": "with augment: random crops too (off: flips only, so a distillation teacher's soft labels are "
                    "computed once per image and flip and cached)",
    "epochs": "training epochs, may be fractional",
    "batch_size": "images per training step",
    "optimizer": "optimiser: " + " | ".join(OPTIMIZERS),
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum for SGD",
    "weight_decay": "L2 weight decay",
    "schedule": "learning-rate schedule: " + " | ".join(SCHEDULES),
    "milestones": "multistep: fractions of the training in (0, 1] at which lr *= gamma",
    "gamma": "multistep: factor applied to lr at each milestone",
    "cyclic_peak": "cyclic: fraction of the training at which lr peaks",
    "warmup_epochs": "epochs of linear learning-rate warm-up",
    "grad_clip": "clip the gradient norm to this value (default: no clipping)",
    "eps": "L-infinity radius of the training adversary, for images in [0,1] (8/255 = 0.0314)",
    "alpha": "attack step size (default: the method's own ratio of eps)",
    "steps": "attack steps of the training adversary",
    "eps_ramp_epochs": "eps grows linearly from 0 over these epochs",
    "attack_mode": "model mode while crafting training examples: " + " | ".join(ATTACK_MODES),
    "precision": "training forward passes in: " + " | ".join(PRECISIONS) + " (bf16 = bfloat16 autocast; attacks' "
                 "perturbations and all evaluation stay float32)",
    "channels_last": "channels-last memory layout for the model and its batches (faster convolutions on CPUs)",
    "params": "method-specific hyper-parameters (use --param NAME=VALUE)",
    "teacher": "checkpoint of the teacher, for methods that distil from one (default: none)",
    "eval_samples": "held-out images evaluated (clean, FGSM, PGD) after each epoch",
    "eval_steps": "PGD steps of the per-epoch evaluation",
    "eval_alpha": "PGD step of the per-epoch evaluation (default: eps/4)",
    "ema_decay": "decay of an exponential moving average of the weights (0: off; 0.995-0.999 in the papers); "
                 "evaluation then uses the averaged weights",
    "ema_warmup_epochs": "epochs during which the weight average just copies the weights",
    "loss_scale": "multiply the method's loss by this before the backward pass (with SGD: lr x s, weight decay / s)",
    "monitor_every": "also evaluate on the held-out split every N steps (0: at epoch ends only); saved as the trace",
    "seed": "random seed (same seed, same run)",
    "out_dir": "folder for last.pt, best.pt and metrics.json (checked writable before training)",
    "checkpoint_every": "also write last.pt every N steps (0: at epoch ends only)",
    "device": "auto | cpu | cuda | cuda:N",
    "progress": "show progress bars and a line per epoch",
    "extra": "free-form notes stored with the run (a JSON object)",
}
NOT_FLAGS = ("params",)  # set through --param NAME=VALUE
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def parse_bool(text: str) -> bool:
    """'true'/'1'/'yes'/'on' -> True, 'false'/'0'/'no'/'off' -> False (any case); anything else is refused."""
    try:
        return BOOLEANS[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false (also 1/0, yes/no, on/off); got {text!r}") from None


def parse_json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"note\": \"x\"}}'; {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"note\": \"x\"}}'; got {text!r}")
    return value


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from the field's annotation, with its help and default."""
    hints = typing.get_type_hints(tr.TrainConfig)
    defaults = tr.TrainConfig()
    for f in dataclasses.fields(tr.TrainConfig):
        if f.name in NOT_FLAGS:
            continue
        kind = next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
        default = getattr(defaults, f.name)
        shown = (" ".join(map(str, default)) if isinstance(default, tuple)
                 else str(default).lower() if isinstance(default, bool) else default)
        help_ = TRAIN_HELP.get(f.name, "") + ("" if default is None else f" (default: {shown})")
        kw = {bool: dict(type=parse_bool, metavar="BOOL"), int: dict(type=int, metavar="N"),
              float: dict(type=float, metavar="X"), str: dict(type=str, metavar="TEXT"),
              tuple: dict(type=float, nargs="+", metavar="X"), dict: dict(type=parse_json_object, metavar="JSON")}
        if kind not in kw:
            raise TypeError(f"TrainConfig.{f.name}: no command-line flag for type {hints[f.name]}; add one here.")
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, help=help_, **kw[kind])


def _parse_param(text: str) -> tuple[str, object]:
    """'tau=30' -> ('tau', 30.0): a method-specific hyper-parameter (JSON values; plain text as a string)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--param takes NAME=VALUE (for example --param tau=30); got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def read_config_file(path: str) -> dict:
    """The TrainConfig fields in the JSON file ``path``; ``ValueError`` naming the file if it is not a JSON object."""
    try:
        d = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"--config {path} is not valid JSON ({err}): fix it, or pass the settings as flags.") from None
    if not isinstance(d, dict):
        raise ValueError(f"--config {path} must hold a JSON object of TrainConfig fields such as "
                         f'{{"epochs": 10, "lr": 0.1}}; got a {type(d).__name__}.')
    return d


def interrupted_message(out_dir: str, no_resume: bool) -> str:
    """What to do after Ctrl-C: the step the last checkpoint in ``out_dir`` resumes from."""
    last = Path(out_dir) / "last.pt"
    try:
        step = checkpoints.load_checkpoint(last)["state"]["global_step"] if last.exists() else 0
    except (ValueError, OSError, KeyError):
        step = 0
    again = "the same command without --no-resume" if no_resume else "the same command"
    return f"interrupted; re-run {again} to resume from step {step}"


def cmd_train(a) -> int:
    cfg = dict(recipes.get(a.recipe).settings) if a.recipe else {}
    if a.config:
        cfg.update(read_config_file(a.config))
    params = dict(_parse_param(s) for s in a.param or ())
    params.update({k: v for k in losses.MOVED_TO_PARAMS if (v := getattr(a, f"moved_{k}")) is not None})  # --beta X
    if params:
        cfg["params"] = {**cfg.get("params", {}), **params}
    for f in dataclasses.fields(tr.TrainConfig):
        v = getattr(a, f.name, None)
        if v is not None:
            cfg[f.name] = v
    config = tr.TrainConfig.from_dict(losses.upgrade(cfg))  # a --config file of an older advlib may set beta
    utils.init_distributed()  # under torchrun: DDP, NCCL on GPUs, gloo on CPUs
    try:
        metrics = tr.fit(config, resume=not a.no_resume, verbose=True)
    except KeyboardInterrupt:
        if utils.is_main():
            print(interrupted_message(config.out_dir, a.no_resume), file=sys.stderr)
        return 130
    finally:
        utils.close_distributed()
    if not utils.is_main():
        return 0
    fin = metrics["final"] or {}
    print(json.dumps({"out_dir": config.out_dir, "train_seconds": metrics["train_seconds"],
                      "holdout_clean": fin.get("holdout_clean"), "holdout_pgd": fin.get("holdout_pgd")}))
    return 0


def write_results(res: dict, path: Path, fallback_name: str) -> Optional[Path]:
    """Write ``res`` to ``path``; if that fails, to ``fallback_name`` in the current folder, then in the
    temporary folder, saying so on stderr. Returns where it went (None: nowhere)."""
    for where in (path, Path.cwd() / fallback_name, Path(tempfile.gettempdir()) / fallback_name):
        try:
            utils.write_json(where, res)
        except OSError as err:
            print(f"could not write {where} ({err.strerror or err})", file=sys.stderr)
            continue
        if where != path:
            print(f"wrote the results to {where} instead", file=sys.stderr)
        return where
    return None


def cmd_evaluate(a) -> int:
    checkpoint = Path(a.checkpoint)
    model = checkpoints.load_model(checkpoint, model_name=a.model, device=utils.get_device(a.device), weights=a.weights)
    ck = checkpoints.load_checkpoint(checkpoint)
    ck_cfg = ck.get("config", {})
    # the raw weights of an averaged run are another model: their results and resume state go to their own files
    stem = checkpoint.stem + ("_raw" if "ema" in ck and model.weights == "raw" else "")
    dataset = a.dataset or models.model_dataset(model.name)
    ev.check_model_fits(model, dataset)  # before loading data and attacking
    eps = a.eps if a.eps is not None else ck_cfg.get("eps", 8 / 255)
    n_per_attack = None
    if a.paper:
        if a.aa_check is not None and a.n_aa is None:
            raise ValueError("--aa-check completes the proxy's runs on the first --n-aa images: give --n-aa too.")
    elif a.aa_check is not None:
        raise ValueError("--aa-check belongs to --paper (the RSLAD paper's columns): add --paper or leave it out.")
    elif a.n_aa is not None:
        n_per_attack = {s: a.n_aa for s in a.attacks if ev.parse_attack(s, eps).kind == "aa"}
        if not n_per_attack:
            raise ValueError("--n-aa limits AutoAttack, which is not among --attacks: add aa or leave out --n-aa.")
    test = data_mod.load(dataset, "test", source=a.source)
    state = checkpoint.parent / f"eval_{stem}.state.json"  # finished attacks, for a resumed run
    try:
        utils.check_writable_dir(checkpoint.parent)
    except OSError:
        state = Path(tempfile.gettempdir()) / f"eval_{checkpoint.parent.name}_{stem}.state.json"
    if a.paper:  # the RSLAD table's columns; with --n-aa, APGD-CE+T on those images and the standard AA on --aa-check
        res = ev.rslad_columns(model, test, eps=eps, n=a.n, n_aa=a.n_aa, aa_proxy=a.n_aa is not None,
                               n_aa_check=a.aa_check, batch_size=a.batch_size, state_path=state, verbose=True)
    else:
        res = ev.evaluate(model, test, a.attacks, eps=eps, alpha=a.alpha, n=a.n, n_per_attack=n_per_attack,
                          batch_size=a.batch_size, state_path=state, verbose=True)
    res.update({"kind": "evaluate", "checkpoint": str(checkpoint), "model": model.name, "weights": model.weights})
    # first the results: a folder we cannot write loses nothing
    print(ev.format_table({model.name: res}, with_intervals=True), flush=True)
    print("(accuracy in %, 95% interval in brackets)\n\n" + ev.flags_table({model.name: res}), flush=True)
    out = write_results(res, Path(a.out) if a.out else checkpoint.parent / f"eval_{stem}.json",
                        f"eval_{checkpoint.parent.name}_{stem}.json")
    if out is None:
        print(json.dumps(res, indent=2))
        print("error: could not write the results anywhere (see above); they are printed above as JSON.",
              file=sys.stderr)
        return 1
    print(f"(data: {res['data']}, n={res['n']}, eps={eps:.4g}; written to {out})")
    return 0


def cmd_export(a) -> int:
    src, dst = Path(a.checkpoint), Path(a.out)
    info = checkpoints.export_model(src, dst, weights=a.weights, provenance=a.provenance)
    config = info.pop("config")  # as exported: no machine's paths
    record_ = src.parent / "metrics.json"
    if record_.exists():  # the training run's record: how long, how many epochs, with which settings
        m = json.loads(record_.read_text())
        info["training"] = {k: m[k] for k in ("train_seconds", "epochs_done", "best_epoch", "data_origin") if k in m}
        info["training"]["config"] = config
    out = dst.with_suffix(".json")
    out.write_text(json.dumps({"kind": "export", **info}, indent=1, default=str) + "\n")
    print(f"wrote {paths.shown(dst)} ({info['bytes'] / 2**20:.1f} MiB, {info['model']}, {info['weights']} weights) "
          f"and {paths.shown(out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m advlib``: subcommands ``train``, ``evaluate`` and ``export``."""
    p = argparse.ArgumentParser(prog="python -m advlib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a model (writes last.pt, best.pt, metrics.json into --out-dir)",
                       description="Train a model with one advlib.train.TrainConfig: every field is a flag below. "
                       "Writes last.pt, best.pt and metrics.json into --out-dir and, run again with the same "
                       "settings after an interruption, resumes from last.pt.")
    t.add_argument("--recipe", help="start from a named recipe of advlib.recipes (" + ", ".join(recipes.RECIPES)
                   + "); --config and flags override it (default: none)")
    t.add_argument("--config", help="JSON file of TrainConfig fields; flags override it (default: none)")
    t.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a method-specific hyper-parameter the method declares (repeatable), e.g. --param tau=30 "
                   "(default: the method's)")
    for name in losses.MOVED_TO_PARAMS:  # TrainConfig fields once: their flags stay, as --param NAME=X
        users = [m for m in losses.METHODS.values() if name in m.params]
        t.add_argument("--" + name, dest=f"moved_{name}", type=float, metavar="X",
                       help=f"the same as --param {name}=X, a parameter of "
                       + ", ".join(f"{m.name} (default: {m.params[name]:g})" for m in users))
    t.add_argument("--no-resume", action="store_true",
                   help="start over even if out-dir holds last.pt (default: resume from it)")
    _add_config_args(t)
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("evaluate", help="clean and robust accuracy of a checkpoint",
                       description="Clean and robust accuracy of a checkpoint on the test set: prints the table, "
                       "then writes it as JSON (eval_best.json for best.pt, beside the checkpoint unless --out).")
    e.add_argument("--checkpoint", required=True, help="an advlib checkpoint, last.pt or best.pt (required)")
    e.add_argument("--model", help="refuse a checkpoint of another model (default: accept any)")
    e.add_argument("--weights", choices=checkpoints.WEIGHTS, default="auto",
                   help="which weights of a run trained with weight averaging (--ema-decay): the average (auto, "
                        "averaged) or the last step's (raw); default: auto")
    e.add_argument("--dataset", choices=data_mod.DATASETS, help="test set (default: the model's data set)")
    e.add_argument("--source", default="auto", choices=data_mod.SOURCES, help="where the data comes from "
                   "(default: auto, the full set or else the shipped sample with a notice)")
    e.add_argument("--attacks", nargs="+", default=list(ev.DEFAULT_ATTACKS),
                   help=f"attack specs, any of: {attack_registry.forms_help()} "
                   f"(default: {' '.join(ev.DEFAULT_ATTACKS)})")
    e.add_argument("--eps", type=float, help="L-infinity radius for images in [0,1] (default: the training eps)")
    e.add_argument("--alpha", type=float, help="PGD step size (default: eps/4)")
    e.add_argument("--n", type=int, help="evaluate the first N test images (default: all)")
    e.add_argument("--n-aa", type=int, help="run AutoAttack (aa, aa-apgd, aa-ta) on the first N of them only "
                   "(default: all)")
    e.add_argument("--paper", action="store_true",
                   help="the RSLAD paper's columns (Clean, FGSM, PGD_SAT, PGD_TRADES, CW∞, AA; advlib.evaluate."
                   "rslad_columns) instead of --attacks; with --n-aa N, AutoAttack's APGD-CE+T on the first N images "
                   "and the standard AutoAttack on the first --aa-check of them, to measure the proxy's gap")
    e.add_argument("--aa-check", type=int, help="with --paper and --n-aa: images for the standard AutoAttack "
                   "(default: 200)")
    e.add_argument("--batch-size", type=int, default=500, help="images per batch (default: 500)")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    e.add_argument("--out", help="results JSON path (default: eval_<checkpoint name>.json beside the checkpoint)")
    e.set_defaults(fn=cmd_evaluate)
    x = sub.add_parser("export", help="a small checkpoint to ship: one set of weights, no optimiser state",
                       description="Write the model of a checkpoint as a small advlib checkpoint (one set of weights, "
                       "the training config, no optimiser state) and, beside it, a JSON record: the file's size and "
                       "SHA-256, and the training run's time and settings from its metrics.json.")
    x.add_argument("--checkpoint", required=True, help="an advlib checkpoint, e.g. runs/.../last.pt (required)")
    x.add_argument("--out", required=True, help="the file to write, e.g. data/models/cifar_teacher.pt (required)")
    x.add_argument("--weights", choices=checkpoints.WEIGHTS, default="auto",
                   help="the average of a run trained with weight averaging (auto, averaged) or the raw weights")
    x.add_argument("--provenance", help="a sentence stored in the file: what it is and how it was made")
    x.set_defaults(fn=cmd_export)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except (ValueError, OSError) as err:  # bad input, missing or damaged files, unwritable folders, a full disk
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
