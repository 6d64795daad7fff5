"""Which of AutoAttack's attacks break images on a course model, and what each costs: the evidence
for running APGD-CE + APGD-T (``aa-apgd``) on every test image and the standard version on a subset.

For each checkpoint, on the first ``--n`` test images: AutoAttack's first two attacks (APGD-CE,
APGD-T; the original code, standard settings) on all of them, then the rest of the standard
version (FAB-T, Square) on the first ``--n-check``, continuing the same runs
(``evaluate.evaluate(model, test, ["aa-apgd", "aa"], n_per_attack={"aa": n_check})``). It prints, per
model: both accuracies on the same ``n_check`` images and their gap, the images each sub-attack
broke there, each sub-attack's seconds and images attacked, and the time per image of the proxy
against the full standard version (estimated from the measured per-image cost of FAB-T and Square).

    python benchmarks/bench_autoattack.py runs/cpu/05_rslad_distillation_cifar10/sat/last.pt ... [--n 1017] [--n-check 200]

Run it with nothing else busy on the machine: the times are wall-clock. Prints a Markdown table too
(``--out FILE`` writes it to a file).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from advlib import data, evaluate, stats, train


def measure(path: Path, test, n: int, n_check: int, eps: float) -> dict:
    model = train.load_model(path).to(memory_format=torch.channels_last)
    t = time.perf_counter()
    res = evaluate.evaluate(model, test, ["aa-apgd", "aa"], eps=eps, n=n, n_per_attack={"aa": n_check},
                            progress=False, sanity_checks=False)
    wall = time.perf_counter() - t
    gap = res["autoattack_gap"]
    part, full = res["autoattack"]["APGD-CE+T"], res["autoattack"]["AutoAttack"]
    secs = {**part["seconds"], **{k: v for k, v in full["seconds"].items() if k not in part["seconds"]}}
    pts = {**part["points"], **{k: v for k, v in full["points"].items() if k not in part["points"]}}
    per_image_proxy = (secs.get("apgd-ce", 0.0) + secs.get("apgd-t", 0.0)) / res["n_attack"]["APGD-CE+T"]
    per_image_rest = (secs.get("fab-t", 0.0) + secs.get("square", 0.0)) / res["n_attack"]["AutoAttack"]
    return {"model": str(path), "n": res["n"], "clean": res["clean"], "proxy_all": res["robust"]["APGD-CE+T"],
            "n_check": gap["n"], "proxy": gap["partial"], "standard": gap["standard"], "gap": gap["gap"],
            "broken_by": full["broken_by"], "seconds": secs, "points": pts, "wall": wall,
            "s_per_image_proxy": per_image_proxy, "s_per_image_standard": per_image_proxy + per_image_rest}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--n", type=int, default=1017, help="APGD-CE + APGD-T on the first N test images")
    p.add_argument("--n-check", type=int, default=200, help="the standard version on the first N of them")
    p.add_argument("--source", default="exact", help="CIFAR-10 test images: exact (pixel-exact subset), full, auto")
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--out", type=Path, help="also write the Markdown table here")
    a = p.parse_args(argv)
    test = data.load("cifar10", "test", source=a.source)
    print(f"{test.label}; eps {a.eps:.5f}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rows = []
    for ck in a.checkpoints:
        r = measure(ck, test, a.n, a.n_check, a.eps)
        rows.append(r)
        print(f"\n== {ck}: {r['wall']:.0f} s in all")
        print(f"   APGD-CE+T on {r['n']} images: {100 * r['proxy_all']:.2f}% (clean {100 * r['clean']:.2f}%)")
        lo, hi = stats.wilson(round(r["standard"] * r["n_check"]), r["n_check"])
        print(f"   first {r['n_check']}: APGD-CE+T {100 * r['proxy']:.2f}%, standard AutoAttack {100 * r['standard']:.2f}% "
              f"({100 * lo:.1f}-{100 * hi:.1f}), gap {100 * r['gap']:.2f} points")
        print("   images broken there by: " + ", ".join(f"{k} {v}" for k, v in r["broken_by"].items()))
        print("   seconds (images attacked): " + ", ".join(f"{k} {v:.0f} s ({r['points'].get(k, '?')})"
                                                      for k, v in r["seconds"].items()))
        print(f"   per test image: APGD-CE+T {r['s_per_image_proxy']:.3f} s, standard {r['s_per_image_standard']:.3f} s "
              f"(ratio {r['s_per_image_proxy'] / r['s_per_image_standard']:.2f})")
    lines = ["| checkpoint | APGD-CE+T (all) | n check | APGD-CE+T | standard AA | gap (points) | broken by APGD-CE / APGD-T / FAB-T / Square | s per image, proxy / standard |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        b = r["broken_by"]
        lines.append(f"| {r['model']} | {100 * r['proxy_all']:.2f} ({r['n']}) | {r['n_check']} | {100 * r['proxy']:.2f} | "
                     f"{100 * r['standard']:.2f} | {100 * r['gap']:.2f} | {b.get('apgd-ce', 0)} / {b.get('apgd-t', 0)} / "
                     f"{b.get('fab-t', 0)} / {b.get('square', 0)} | {r['s_per_image_proxy']:.3f} / {r['s_per_image_standard']:.3f} |")
    table = "\n".join(lines)
    print("\n" + table)
    if a.out:
        a.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
