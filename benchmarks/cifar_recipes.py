"""Which CPU recipe buys the most robustness per minute? Short CIFAR-10 runs over the levers, at equal time.

    python benchmarks/cifar_recipes.py --minutes 6 --out-dir runs/recipes
    python benchmarks/cifar_recipes.py --minutes 6 --only pgd2 nfgsm --seeds 0 1
    python benchmarks/cifar_recipes.py --minutes 6 --runs nfgsm:1 nfgsm_cosine:0 --append

Every variant starts from notebook 03's SAT recipe as it was before this benchmark chose its attack
(``cifar_sat`` with PGD-2 in eval mode: airbench_m, one-cycle SGD, bfloat16 + channels-last) and changes
one lever: the attack (PGD-2, PGD-3, N-FGSM),
the width of the net (airbench_s / m / l), the batch size; the learning-rate variants change the
schedule of the attack the benchmark chose (N-FGSM): its peak, its shape (cosine after a warm-up
instead of one cycle) and the peak's place in the cycle. Every run keeps an exponential moving
average of its weights (``ema_decay``), so that each run gives two points: its raw last weights and
their average, a paired measurement of weight averaging at no extra training.

**Equal time.** First the seconds per training step of every variant are measured on random
batches, interleaved (``bench_cifar_levers.step_time``), plus the data loader's seconds per batch
(crop and flip of real images at that batch size), then each variant trains for as many epochs as
fit in ``--minutes`` (fractional epochs: the one-cycle schedule is compressed to them). So the runs
get equal compute whatever else the machine does; the table prints the training minutes each run
actually took, where another process on the machine shows as minutes above ``--minutes``.

**Evaluation.** Clean and PGD-20 accuracy (the RSLAD table's PGD_SAT column: cross-entropy, step
2/255, uniform start, ε = 8/255, float32) on the pixel-exact CIFAR-10 test images (1,017 of them:
``source="exact"``), with Wilson 95% intervals. The table goes to stdout and to ``--table`` (a
Markdown file the docs cite; ``--append`` adds the new rows to that file under their own command and
date, keeping the rows already there). Runs resume: a finished run folder is evaluated again, not retrained.

Run it with nothing else CPU-heavy on the machine: a second process slows PyTorch many times over.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cifar_levers import step_time  # noqa: E402

from advlib import data, evaluate, models, recipes, stats, train  # noqa: E402

BASE = "cifar_sat"
# name -> (what it changes, TrainConfig fields over the base recipe)
VARIANTS = {
    "pgd2": ("PGD-2 (cifar_sat before this benchmark)", {}),
    "pgd3": ("PGD-3: more attack steps, fewer epochs", {"steps": 3}),
    "nfgsm": ("N-FGSM (noise 2ε, step ε): one step, more epochs", {"method": "n_fgsm"}),
    "small": ("airbench_s: a narrower net, more epochs", {"model": "airbench_s"}),
    "large": ("airbench_l: a wider net, fewer epochs", {"model": "airbench_l"}),
    "batch256": ("batch 256, peak lr 0.4 (linear scaling)", {"batch_size": 256, "lr": 0.4}),
    # the learning-rate schedule, on the attack chosen above (N-FGSM; base: one cycle peaking at 0.2 at 30%)
    "nfgsm_lr01": ("N-FGSM, peak lr 0.1", {"method": "n_fgsm", "lr": 0.1}),
    "nfgsm_lr04": ("N-FGSM, peak lr 0.4", {"method": "n_fgsm", "lr": 0.4}),
    "nfgsm_cosine": ("N-FGSM, cosine decay after a linear warm-up of 15% of the steps",
                     {"method": "n_fgsm", "schedule": "cosine", "warmup_fraction": 0.15}),
    "nfgsm_peak60": ("N-FGSM, one cycle peaking at 60% of the steps", {"method": "n_fgsm", "cyclic_peak": 0.6}),
}
PGD_SAT = "pgd-20@2/255"


# the base: cifar_sat with the attack it had before this benchmark (PGD-2); every variant sets its own averaging
BASE_ATTACK = {"method": "pgd", "steps": 2}


def settings(name: str, ema_decay: float) -> dict:
    """TrainConfig fields of a variant (``warmup_fraction`` is resolved against the epochs in ``run_config``)."""
    return {**recipes.get(BASE).settings, **BASE_ATTACK, **VARIANTS[name][1], "ema_decay": ema_decay}


def run_config(s: dict, epochs: float, **fields) -> train.TrainConfig:
    """A variant's TrainConfig for ``epochs`` (fractional) epochs; a warm-up given as a fraction of the
    steps becomes ``warmup_epochs``."""
    s = dict(s)
    frac = s.pop("warmup_fraction", 0.0)
    return train.TrainConfig.from_dict({**s, "epochs": epochs, "warmup_epochs": frac * epochs, **fields})


def parse_runs(runs: list[str]) -> list[tuple[str, int]]:
    """``["nfgsm:1", "pgd2"]`` -> ``[("nfgsm", 1), ("pgd2", 0)]``; an unknown variant is an error that lists them."""
    out = []
    for r in runs:
        name, _, seed = r.partition(":")
        if name not in VARIANTS:
            raise SystemExit(f"--runs {r}: unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        try:
            out.append((name, int(seed) if seed else 0))
        except ValueError:
            raise SystemExit(f"--runs {r}: the seed after ':' must be an integer, e.g. {name}:1") from None
    return out


# fields that change no step's cost: variants differing only in these share one step-time measurement
SCHEDULE_FIELDS = ("lr", "schedule", "cyclic_peak", "warmup_fraction", "warmup_epochs", "milestones", "gamma")


def seconds_per_step(names: list[str], ema_decay: float, repeats: int, batches: int) -> dict[str, float]:
    """Median seconds of one training step of each variant (rounds interleaved across variants; variants
    that differ only in their learning-rate schedule are measured once, so they get exactly equal steps)."""
    def cost_key(n):
        return tuple(sorted((k, repr(v)) for k, v in settings(n, ema_decay).items() if k not in SCHEDULE_FIELDS))
    first = {}
    for n in names:
        first.setdefault(cost_key(n), n)
    times = {n: [] for n in first.values()}
    for _ in range(repeats):
        for n in times:
            s = settings(n, ema_decay)
            cfg_keys = {k: v for k, v in s.items() if k not in ("model", "dataset", "eps", "precision",
                                                               "channels_last", "warmup_fraction")}
            times[n].append(step_time(s["model"], cfg_keys, s["precision"], s["channels_last"], batches,
                                      s["batch_size"]) / batches)
    return {n: statistics.median(times[first[cost_key(n)]]) for n in names}


def loader_seconds_per_step(train_set: data.Dataset, batch_sizes: set[int], batches: int = 20) -> dict[int, float]:
    """Seconds the training loader takes per batch (random crop and flip, as the recipes train)."""
    out = {}
    for b in sorted(batch_sizes):
        loader = train_set.loader(b, shuffle=True, augment=True, drop_last=True)
        t0, it = time.perf_counter(), iter(loader)
        for _ in range(batches):
            next(it)
        out[b] = (time.perf_counter() - t0) / batches
    return out


def row_for(res: dict) -> tuple[float, float, int]:
    return res["clean"], res["robust"][next(iter(res["robust"]))], res["n"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=6.0, help="training minutes per run (default 6)")
    p.add_argument("--only", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--extra-seeds", nargs="*", default=["pgd2"], choices=list(VARIANTS),
                   help="variants also run with seed 1 (a first look at seed-to-seed spread)")
    p.add_argument("--runs", nargs="*", metavar="VARIANT[:SEED]",
                   help="exactly these runs (instead of --only/--seeds/--extra-seeds), e.g. nfgsm:1 nfgsm_cosine")
    p.add_argument("--epochs", type=float,
                   help="train every run this many epochs instead of fitting them to --minutes (to add rows at "
                        "the step count of an earlier table's run: only for variants of the same step cost)")
    p.add_argument("--append", action="store_true",
                   help="add the rows to --table under their own heading instead of replacing the file")
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--out-dir", type=Path, default=Path("runs/recipes"))
    p.add_argument("--table", type=Path, default=Path("benchmarks/results/cifar_recipes.md"))
    p.add_argument("--calibration-steps", type=int, default=8)
    p.add_argument("--n", type=int, default=1017, help="test images (first N of the pixel-exact subset)")
    a = p.parse_args()
    if a.runs:
        runs = parse_runs(a.runs)
        a.only = list(dict.fromkeys(n for n, _ in runs))
    else:
        runs = [(n, s) for n in a.only for s in a.seeds] + [(n, 1) for n in a.extra_seeds if n in a.only
                                                              and 1 not in a.seeds]

    test = data.load("cifar10", "test", source="exact")
    train_set = data.load("cifar10", "train", source="auto", verbose=False)
    train_n = len(train_set)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; base recipe {BASE}; "
          f"{a.minutes:g} training minutes per run; EMA decay {a.ema_decay}")
    per_step = seconds_per_step(a.only, a.ema_decay, repeats=2, batches=a.calibration_steps)
    loading = loader_seconds_per_step(train_set, {settings(n, a.ema_decay)["batch_size"] for n in a.only})
    per_step = {n: t + loading[settings(n, a.ema_decay)["batch_size"]] for n, t in per_step.items()}
    print("seconds per step (training + loading): " + ", ".join(f"{n} {t:.3f}" for n, t in per_step.items()))
    rows = []
    for name, seed in runs:
        s = settings(name, a.ema_decay)
        steps_per_epoch = (train_n - min(s.get("holdout", 1000), train_n // 5)) // s["batch_size"]
        epochs = a.epochs or round(a.minutes * 60 / (per_step[name] * steps_per_epoch), 2)
        out = a.out_dir / f"{name}_seed{seed}"
        cfg = run_config(s, epochs, seed=seed, out_dir=str(out), progress=False)
        print(f"\n{name} seed {seed}: {per_step[name]:.3f} s/step -> {epochs} epochs", flush=True)
        t0 = time.perf_counter()
        m = train.fit(cfg, resume="if_same")
        print(f"  trained in {m['train_seconds'] / 60:.1f} min ({(time.perf_counter() - t0) / 60:.1f} with the "
              "monitor)", flush=True)
        for weights in ("raw", "averaged"):
            model = train.load_model(out / "last.pt", weights=weights)
            res = evaluate.evaluate(model, test, [PGD_SAT], eps=recipes.CIFAR_EPS, n=a.n, sanity_checks=False,
                                    progress=False)
            clean, robust, n = row_for(res)
            rows.append({"variant": name, "what": VARIANTS[name][0], "seed": seed, "weights": weights,
                         "epochs": epochs, "minutes": m["train_seconds"] / 60, "clean": clean, "pgd20": robust,
                         "n": n, "sec_per_step": per_step[name]})
            print(f"  {weights:<8} clean {clean:.1%}  PGD-20 {robust:.1%}", flush=True)
    table = format_table(rows, a)
    print("\n" + table)
    a.table.parent.mkdir(parents=True, exist_ok=True)
    if a.append and a.table.exists():
        a.table.write_text(append_rows(a.table.read_text(), table))
    else:
        a.table.write_text(table + "\n")
    (a.out_dir / "cifar_recipes.json").write_text(json.dumps(rows, indent=1))
    print(f"\nwritten to {a.table} and {a.out_dir / 'cifar_recipes.json'}")


def pct_iv(acc: float, n: int) -> str:
    lo, hi = stats.wilson(round(acc * n), n)
    return f"{acc:.1%} [{lo:.1%}, {hi:.1%}]".replace("%", "")


def command(a) -> str:
    cmd = f"python benchmarks/cifar_recipes.py --minutes {a.minutes:g}"
    if a.epochs:
        cmd += f" --epochs {a.epochs:g}"
    if a.runs:
        return cmd + " --runs " + " ".join(a.runs) + (" --append" if a.append else "")
    return cmd + (" --only " + " ".join(a.only) if a.only != list(VARIANTS) else "")


def append_rows(existing: str, table: str) -> str:
    """``existing`` (a table file, its reading included) with ``table`` added under a heading of its own."""
    head, _, body = table.partition("\n\n")
    return existing.rstrip("\n") + "\n\n## Added rows: " + head.lstrip("# ") + "\n\n" + body + "\n"


def format_table(rows: list[dict], a) -> str:
    budget = (f"equal steps ({a.epochs:g} epochs a run)" if a.epochs
              else f"equal time ({a.minutes:g} training minutes a run)")
    head = (f"# CIFAR-10 CPU recipes at {budget}\n\n"
            f"Command: `{command(a)}`, "
            f"{datetime.date.today().isoformat()}, torch {torch.__version__}, {torch.get_num_threads()} threads. "
            f"Base: recipe `{BASE}`; every run keeps an EMA of its weights (decay {a.ema_decay}), "
            "*raw* is the last step's weights, *EMA* their average (same run, so a paired view of averaging). "
            f"Test: first {rows[0]['n'] if rows else a.n} pixel-exact CIFAR-10 test images, PGD-20 = "
            "PGD_SAT (cross-entropy, step 2/255, uniform start, ε 8/255), float32; accuracy in %, "
            "Wilson 95% interval in brackets.\n")
    lines = ["| variant | seed | s/step | epochs | train min | weights | clean | PGD-20 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['seed']} | {r['sec_per_step']:.3f} | {r['epochs']:g} | "
                     f"{r['minutes']:.1f} | {'EMA' if r['weights'] == 'averaged' else 'raw'} | "
                     f"{pct_iv(r['clean'], r['n'])} | {pct_iv(r['pgd20'], r['n'])} |")
    return head + "\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
