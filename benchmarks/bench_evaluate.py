"""advlib's evaluation against running each attack naively, side by side in one run.

For every checkpoint (by default the five models of notebook 02, trained by ``make course``), on the
same test images:

* **advlib**: ``evaluate.evaluate(model, ..., ["fgsm", "pgd-50x10", "aa"])`` with its bookkeeping
  (images wrong when clean not attacked, PGD stopping on an image once fooled, restarts only on
  unbroken images) and its sanity checks (their probes included in its time);
* **naive**: torchattacks' FGSM, torchattacks' PGD run ten times over every image (an image is robust if
  it survives all ten restarts), and the original AutoAttack called directly
  (``pyautoattack.AutoAttack(...).run_standard_evaluation`` over every image).

It prints each model's times and their ratio, both sets of accuracies, and whether every advlib
accuracy is at most the naive one + 0.1 point; then the totals. For the most robust model it also
prints torchattacks' AutoAttack (``aa-ta``) on the same images, beside the original.

    python benchmarks/bench_evaluate.py [--runs runs/cpu/02_adversarial_training_mnist] [--n 1000]

Run it with nothing else busy on the machine: the times are wall-clock.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from advlib import data, evaluate, train

MODELS = ("standard", "fgsm_two_pass", "fgsm_weighted", "fgsm_rs", "pgd")


def naive(model, x, y, eps, alpha, steps, restarts, seed=0):
    """Every attack over every image, as a user calling the libraries directly would."""
    import torchattacks
    from pyautoattack import AutoAttack

    out, secs = {}, {}
    acc = lambda xa: (model(xa).argmax(1) == y).float().mean().item()  # noqa: E731
    t = time.perf_counter()
    xa = torch.cat([torchattacks.FGSM(model, eps=eps)(x[i:i + 500], y[i:i + 500]) for i in range(0, len(x), 500)])
    with torch.no_grad():
        out["FGSM"] = acc(xa)
    secs["FGSM"] = time.perf_counter() - t
    t = time.perf_counter()
    robust = torch.ones(len(x), dtype=torch.bool)
    pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    torch.manual_seed(seed)
    for _ in range(restarts):
        xa = torch.cat([pgd(x[i:i + 500], y[i:i + 500]) for i in range(0, len(x), 500)])
        with torch.no_grad():
            robust &= model(xa).argmax(1) == y
    out[f"PGD-{steps}×{restarts}"] = robust.float().mean().item()
    secs[f"PGD-{steps}×{restarts}"] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.random.fork_rng():
        aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed, device="cpu")
        aa.verbose = False
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=500)
    out["AutoAttack"] = (y_adv == y).float().mean().item()
    secs["AutoAttack"] = time.perf_counter() - t
    return out, secs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/cpu/02_adversarial_training_mnist",
                   help="folder with one sub-folder per model, each holding last.pt")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--n", type=int, default=1000, help="first N test images")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--dataset", default="mnist")
    a = p.parse_args(argv)
    test = data.load(a.dataset, "test")
    x, y = test.tensors(a.n)
    print(f"{test.label}, first {len(x)} test images, eps {a.eps}, PGD-50x10 step {a.alpha}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    total_ours = total_naive = 0.0
    worst_excess = -1.0
    best = None
    for name in a.models:
        ck = Path(a.runs) / name / "last.pt"
        if not ck.exists():
            print(f"{name}: no checkpoint at {ck} (train it with make course), skipped", file=sys.stderr)
            continue
        model = train.load_model(ck)
        torch.manual_seed(0)
        t = time.perf_counter()
        ours = evaluate.evaluate(model, (x, y), ["fgsm", "pgd-50x10", "aa"], eps=a.eps, alpha=a.alpha,
                                 progress=False)
        t_ours = time.perf_counter() - t
        torch.manual_seed(0)
        t = time.perf_counter()
        theirs, secs = naive(model, x, y, a.eps, a.alpha, 50, 10)
        t_naive = time.perf_counter() - t
        total_ours += t_ours
        total_naive += t_naive
        excess = max(ours["robust"][k] - theirs[k] for k in theirs)
        worst_excess = max(worst_excess, excess)
        print(f"\n== {name}: advlib {t_ours:.1f} s (attacks {sum(v for k, v in ours['seconds'].items()):.1f} s + "
              f"checks), naive {t_naive:.1f} s, ratio {t_ours / t_naive:.2f}")
        print(f"   {'column':<14}{'advlib %':>10}{'naive %':>10}{'advlib s':>10}{'naive s':>10}")
        print(f"   {'Clean':<14}{100 * ours['clean']:>10.2f}{'':>10}{ours['seconds']['Clean']:>10.1f}")
        for k in theirs:
            print(f"   {k:<14}{100 * ours['robust'][k]:>10.2f}{100 * theirs[k]:>10.2f}{ours['seconds'][k]:>10.1f}"
                  f"{secs[k]:>10.1f}")
        print(f"   {evaluate.WORST:<14}{100 * ours['worst_case']['accuracy']:>10.2f}")
        raised = [f["name"] for f in ours["flags"] if f["raised"]]
        print(f"   flags: {', '.join(raised) if raised else 'none'}")
        if best is None or ours["robust"]["AutoAttack"] > best[1]["robust"]["AutoAttack"]:
            best = (name, ours, model)
    if not total_naive:
        return 1
    print(f"\nTOTAL advlib {total_ours:.1f} s, naive {total_naive:.1f} s, ratio {total_ours / total_naive:.2f}; "
          f"largest advlib - naive accuracy {100 * worst_excess:+.2f} points "
          f"({'all within +0.1' if worst_excess <= 0.001 else 'ABOVE +0.1 somewhere'})")
    name, ours, model = best
    t = time.perf_counter()
    ta = evaluate.evaluate(model, (x, y), ["aa-ta"], eps=a.eps, progress=False, sanity_checks=False)
    print(f"\nMost robust model ({name}), same {len(x)} images: AutoAttack original code "
          f"{100 * ours['robust']['AutoAttack']:.2f}% vs torchattacks' re-implementation "
          f"{100 * ta['robust']['AutoAttack (torchattacks)']:.2f}% ({time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
