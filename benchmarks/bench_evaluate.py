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

With ``--cifar CHECKPOINT ...`` it measures the RSLAD table instead, on CIFAR-10 course models (e.g.
notebook 05's students), on the first ``--n`` pixel-exact test images: advlib's
``evaluate.rslad_columns`` as notebooks 04 and 05 run it (FGSM, PGD_SAT, PGD_TRADES, CW∞, AutoAttack's
APGD-CE + APGD-T on every image and the standard AutoAttack completed on the first ``--n-check``)
against each attack run naively over every image (torchattacks' FGSM and PGD with each column's step,
PGD on the CW margin with advlib's plain ``attacks.pgd``, the original standard AutoAttack called
directly on every image). Both sets of accuracies are printed, the standard AutoAttack also on the
first ``--n-check`` images both ways, with the measured gap of APGD-CE + APGD-T there.

    python benchmarks/bench_evaluate.py --cifar runs/cpu/05_rslad_distillation_cifar10/sat/last.pt [--n 500]

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


def naive_rslad(model, x, y, eps, seed=0):
    """The RSLAD table's attacks, each over every image, as a user calling the libraries directly would.
    Returns (accuracies, seconds, the per-image AutoAttack mask)."""
    import torchattacks
    from pyautoattack import AutoAttack

    from advlib import attacks

    out, secs = {}, {}

    def run(name, fn):
        t = time.perf_counter()
        xa = torch.cat([fn(x[i:i + 500], y[i:i + 500]) for i in range(0, len(x), 500)])
        with torch.no_grad():
            out[name] = (model(xa).argmax(1) == y).float().mean().item()
        secs[name] = time.perf_counter() - t

    torch.manual_seed(seed)
    run("FGSM", torchattacks.FGSM(model, eps=eps))
    for col in ("PGD_SAT", "PGD_TRADES"):
        spec = evaluate.parse_attack(evaluate.RSLAD_SPECS[col], eps)
        run(col, torchattacks.PGD(model, eps=eps, alpha=spec.alpha, steps=spec.steps, random_start=True))
    cw = evaluate.parse_attack(evaluate.RSLAD_SPECS["CW∞"], eps)
    run("CW∞", lambda a, b: attacks.pgd(model, a, b, eps, cw.alpha, cw.steps, loss="cw"))
    t = time.perf_counter()
    with torch.random.fork_rng():
        aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed, device="cpu")
        aa.verbose = False
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=500)
    aa_mask = y_adv == y
    out["AA"] = aa_mask.float().mean().item()
    secs["AA"] = time.perf_counter() - t
    return out, secs, aa_mask


def cifar_main(a) -> int:
    test = data.load("cifar10", "test", source=a.source)
    x, y = test.tensors(a.n)
    n_check = min(a.n_check, len(x))
    print(f"{test.label}, first {len(x)} test images, eps 8/255, the RSLAD table's columns; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\nadvlib: evaluate.rslad_columns as notebooks 04/05 run it (APGD-CE+T on every "
          f"image, the standard AutoAttack completed on the first {n_check}); naive: every attack over every image, the "
          f"standard AutoAttack on all {len(x)}", flush=True)
    tot = {"advlib": 0.0, "naive": 0.0}
    for ck in a.cifar:
        model = train.load_model(ck).to(memory_format=torch.channels_last)
        torch.manual_seed(0)
        t = time.perf_counter()
        ours = evaluate.rslad_columns(model, (x, y), aa_proxy=True, n_aa_check=n_check, progress=False)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        theirs, secs, aa_mask = naive_rslad(model, x, y, 8 / 255)
        t_naive = time.perf_counter() - t
        tot["advlib"] += t_ours
        tot["naive"] += t_naive
        print(f"\n== {ck}: advlib {t_ours:.1f} s (checks included), naive {t_naive:.1f} s, ratio {t_ours / t_naive:.2f}")
        print(f"   {'column':<22}{'advlib %':>10}{'naive %':>10}{'advlib s':>10}{'naive s':>10}")
        print(f"   {'Clean':<22}{100 * ours['clean']:>10.2f}{'':>10}{ours['seconds']['Clean']:>10.1f}")
        for k in ("FGSM", "PGD_SAT", "PGD_TRADES", "CW∞"):
            print(f"   {k:<22}{100 * ours['robust'][k]:>10.2f}{100 * theirs[k]:>10.2f}{ours['seconds'][k]:>10.1f}"
                  f"{secs[k]:>10.1f}")
        print(f"   {'AA: APGD-CE+T / std':<22}{100 * ours['robust']['APGD-CE+T']:>10.2f}{100 * theirs['AA']:>10.2f}"
              f"{ours['seconds']['APGD-CE+T']:>10.1f}{secs['AA']:>10.1f}")
        naive_sub = aa_mask[:n_check].float().mean().item()
        print(f"   {f'AA, first {n_check}':<22}{100 * ours['robust']['AA']:>10.2f}{100 * naive_sub:>10.2f}"
              f"{ours['seconds']['AA']:>10.1f}")
        print(f"   {evaluate.WORST:<22}{100 * ours['worst_case']['accuracy']:>10.2f}")
        g = ours["autoattack_gap"]
        print(f"   measured gap on the first {g['n']}: APGD-CE+T {100 * g['partial']:.2f}% vs standard {100 * g['standard']:.2f}% "
              f"({100 * g['gap']:.2f} points); naive standard AutoAttack there: {100 * naive_sub:.2f}%")
        raised = [f["name"] for f in ours["flags"] if f["raised"]]
        print(f"   flags: {', '.join(raised) if raised else 'none'}")
    if not tot["naive"]:
        return 1
    print(f"\nTOTAL advlib {tot['advlib']:.1f} s, naive {tot['naive']:.1f} s, ratio {tot['advlib'] / tot['naive']:.2f} "
          "(goal <= 0.5)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cifar", nargs="+", type=Path, help="CIFAR-10 course checkpoints: measure the RSLAD table instead")
    p.add_argument("--source", default="exact", help="with --cifar: the test images (exact, full, auto)")
    p.add_argument("--n-check", type=int, default=200, help="with --cifar: the standard AutoAttack on the first N "
                   "(the notebooks' setting)")
    p.add_argument("--runs", default="runs/cpu/02_adversarial_training_mnist",
                   help="folder with one sub-folder per model, each holding last.pt")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--n", type=int, help="first N test images (default 1000, with --cifar 500)")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--dataset", default="mnist")
    a = p.parse_args(argv)
    if a.cifar:
        a.n = a.n or 500
        return cifar_main(a)
    a.n = a.n or 1000
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
