"""advlib PGD vs torchattacks PGD: same model, same batch, same settings, interleaved in one run.

    python benchmarks/bench_pgd.py [--model fast_cnn] [--batch 256] [--steps 20] [--repeats 7]

Prints each round's seconds side by side and the median ratio advlib / torchattacks (lower is
better; the goal is <= 0.8). Both attacks run the same number of forward/backward passes.
Timings on a shared machine are noisy: read the ratio, not the seconds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchattacks

from advlib import attacks, models


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="fast_cnn")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = models.get_model(a.model).eval()
    shape = (1, 28, 28) if models.model_dataset(a.model) == "mnist" else (3, 32, 32)
    eps = 0.3 if shape[0] == 1 else 8 / 255
    alpha = eps / 4
    x, y = torch.rand(a.batch, *shape), torch.randint(0, 10, (a.batch,))
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=a.steps, random_start=True)

    def ours():
        return attacks.pgd(model, x, y, eps, alpha, a.steps)

    def theirs():
        return ta(x, y)

    for f in (ours, theirs):  # warm-up
        f()
    rows = []
    print(f"model {a.model}, batch {a.batch}, PGD-{a.steps}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"{'round':>5} {'advlib s':>10} {'torchattacks s':>15} {'ratio':>7}")
    for r in range(a.repeats):
        pair = []
        for f in ((ours, theirs) if r % 2 == 0 else (theirs, ours)):  # alternate the order
            t = time.perf_counter()
            f()
            pair.append((f.__name__, time.perf_counter() - t))
        d = dict(pair)
        rows.append(d["ours"] / d["theirs"])
        print(f"{r:>5} {d['ours']:>10.3f} {d['theirs']:>15.3f} {rows[-1]:>7.3f}")
    print(f"median ratio advlib/torchattacks = {statistics.median(rows):.3f} (goal <= 0.8)")


if __name__ == "__main__":
    main()
