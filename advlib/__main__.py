"""Command line: ``python -m advlib train ...`` and ``python -m advlib evaluate ...``.

Examples::

    python -m advlib train --model fast_cnn --dataset mnist --method pgd --eps 0.3 --epochs 10 \
        --optimizer adam --lr 1e-3 --out-dir runs/cli/pgd
    python -m advlib evaluate --checkpoint runs/cli/pgd/best.pt --eps 0.3 --alpha 0.01 \
        --attacks fgsm pgd-50x10 aa --n 1000
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from . import data as data_mod, evaluate as ev, train as tr, utils


def _add_config_args(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(tr.TrainConfig)
    for f in dataclasses.fields(tr.TrainConfig):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        t = hints[f.name]
        if t is bool:
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"), default=None,
                           metavar="BOOL")
        elif f.name == "milestones":
            p.add_argument(flag, type=float, nargs="+", default=None)
        else:
            base = [a for a in typing.get_args(t) if a is not type(None)] or [t]
            p.add_argument(flag, type=base[0] if base[0] in (int, float, str) else str, default=None)


def cmd_train(a) -> int:
    cfg = {}
    if a.config:
        cfg.update(json.loads(Path(a.config).read_text()))
    for f in dataclasses.fields(tr.TrainConfig):
        v = getattr(a, f.name, None)
        if v is not None:
            cfg[f.name] = v
    config = tr.TrainConfig.from_dict(cfg)
    metrics = tr.fit(config, resume=not a.no_resume)
    fin = metrics["final"] or {}
    print(json.dumps({"out_dir": config.out_dir, "train_seconds": metrics["train_seconds"],
                      "holdout_clean": fin.get("holdout_clean"), "holdout_pgd": fin.get("holdout_pgd")}))
    return 0


def cmd_evaluate(a) -> int:
    model = tr.load_model(a.checkpoint, model_name=a.model, device=utils.get_device(a.device))
    ck_cfg = tr.load_checkpoint(a.checkpoint).get("config", {})
    dataset = a.dataset or ck_cfg.get("dataset", "mnist")
    eps = a.eps if a.eps is not None else ck_cfg.get("eps", 8 / 255)
    test = data_mod.load(dataset, "test", source=a.source)
    res = ev.evaluate(model, test, a.attacks, eps=eps, alpha=a.alpha, n=a.n,
                      n_per_attack={"aa": a.n_aa} if a.n_aa else None, batch_size=a.batch_size)
    res.update({"kind": "evaluate", "checkpoint": str(a.checkpoint), "model": model.name})
    out = Path(a.out) if a.out else Path(a.checkpoint).parent / "eval_metrics.json"
    utils.write_json(out, res)
    print(ev.format_table({model.name: res}))
    print(f"(data: {res['data']}, n={res['n']}, eps={eps:.4g}; written to {out})")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m advlib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a model (writes last.pt, best.pt, metrics.json into --out-dir)")
    t.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    t.add_argument("--no-resume", action="store_true", help="start over even if out-dir holds last.pt")
    _add_config_args(t)
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("evaluate", help="clean and robust accuracy of a checkpoint")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--model", help="refuse a checkpoint of another model")
    e.add_argument("--dataset", choices=data_mod.DATASETS)
    e.add_argument("--source", default="auto", choices=data_mod.SOURCES)
    e.add_argument("--attacks", nargs="+", default=list(ev.DEFAULT_ATTACKS))
    e.add_argument("--eps", type=float)
    e.add_argument("--alpha", type=float)
    e.add_argument("--n", type=int, help="first N test images (default: all)")
    e.add_argument("--n-aa", type=int, help="AutoAttack on the first N only")
    e.add_argument("--batch-size", type=int, default=500)
    e.add_argument("--device", default="auto")
    e.add_argument("--out", help="metrics JSON path (default: next to the checkpoint)")
    e.set_defaults(fn=cmd_evaluate)
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
