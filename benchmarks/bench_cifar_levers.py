"""Training speed of the cpu-profile CIFAR-10 model under each lever, as ratios to plain fp32, in one run.

    python benchmarks/bench_cifar_levers.py [--model airbench_s] [--batches 20] [--repeats 3]
    python benchmarks/bench_cifar_levers.py --accuracy runs/levers   # also the robust accuracy per lever

One training step of the engine (``advlib.train``: the method's attack and loss, backward, SGD
step) on batch-128 CIFAR-10-shaped inputs, for every combination of the levers
``precision`` (fp32 | bf16 autocast) and ``channels_last``, with the methods named by ``--methods``
(default: FGSM-RS, PGD-3 crafted in eval mode, PGD-3 crafted in train mode). Rounds are interleaved
so that machine noise hits every lever alike; the table prints the median images per second and
its ratio to fp32 for the same method. Run it on a quiet machine: a second CPU-heavy process slows
PyTorch many times over.

``--accuracy DIR`` also prints the clean and PGD-20 test accuracy (float32) and the training time of
every run under DIR, for example one recipe trained under several levers::

    python -m advlib train --recipe cifar_s_sat --out-dir runs/levers/s_sat_bf16_cl
    python -m advlib train --recipe cifar_s_sat --precision fp32 --channels-last false --out-dir runs/levers/s_sat_fp32
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import torch

from advlib import losses, models, train
from advlib.config import TrainConfig

EPS = 8 / 255
METHODS = {
    "FGSM-RS": dict(method="fgsm_rs"),
    "PGD-3 (eval-mode attack)": dict(method="pgd", steps=3, attack_mode="eval"),
    "PGD-3 (train-mode attack)": dict(method="pgd", steps=3, attack_mode="train"),
    "N-FGSM": dict(method="n_fgsm"),
}
LEVERS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def lever_name(precision: str, channels_last: bool) -> str:
    return precision + (" + channels-last" if channels_last else "")


def step_time(model_name: str, settings: dict, precision: str, channels_last: bool, batches: int,
              batch_size: int) -> float:
    """Seconds for ``batches`` training steps (after one warm-up step)."""
    torch.manual_seed(0)
    cfg = TrainConfig(model=model_name, dataset="cifar10", eps=EPS, precision=precision,
                      channels_last=channels_last, **settings)
    model = models.get_model(model_name)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = train.make_optimizer(cfg, model)
    method = losses.get_method(cfg.method)
    x = torch.rand(batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (batch_size,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def one():
        with train.autocast(cfg, torch.device("cpu")):
            loss, _ = method(losses.Context(model, x, y, EPS, cfg))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one()
    t0 = time.perf_counter()
    for _ in range(batches):
        one()
    return time.perf_counter() - t0


def accuracy_table(root: Path, source: str, n: int) -> None:
    """Clean and PGD-20 test accuracy (float32, step 2/255, random start) of each run under ``root``."""
    from advlib import data, evaluate

    test = data.load("cifar10", "test", source=source)
    print(f"\naccuracy of the runs under {root}: {test.label}, first {min(n, len(test))} test images, "
          f"PGD-20 step 2/255 at 8/255, float32")
    print(f"{'run':<22} {'model':<11} {'method':<8} {'lever':<22} {'train min':>9} {'clean':>7} {'PGD-20':>7}")
    for ck in sorted(root.glob("*/last.pt")):
        m = json.loads((ck.parent / "metrics.json").read_text())
        cfg = m["config"]
        res = evaluate.evaluate(train.load_model(ck), test, ["pgd-20"], eps=EPS, alpha=2 / 255, n=n,
                                sanity_checks=False, progress=False)
        lever = lever_name(cfg.get("precision", "fp32"), cfg.get("channels_last", False))
        print(f"{ck.parent.name:<22} {cfg['model']:<11} {cfg['method']:<8} {lever:<22} "
              f"{m['train_seconds'] / 60:>9.1f} {res['clean']:>7.1%} {res['robust']['PGD-20']:>7.1%}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="airbench_s")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=10, help="timed training steps per round")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (the median is reported)")
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--accuracy", type=Path, help="folder of training runs (one per lever) whose test accuracy to print")
    p.add_argument("--test-source", default="exact", help="test images for --accuracy: exact (the pixel-exact "
                   "subset) | full | sample")
    p.add_argument("--n", type=int, default=1017, help="test images for --accuracy")
    a = p.parse_args()
    print(f"model {a.model} ({models.count_parameters(models.get_model(a.model)) / 1e6:.2f}M parameters), "
          f"batch {a.batch_size}, eps 8/255, {a.batches} steps x {a.repeats} rounds, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    times = {k: [] for k in itertools.product(a.methods, LEVERS)}
    for _ in range(a.repeats):
        for key in times:
            times[key].append(step_time(a.model, METHODS[key[0]], *key[1], a.batches, a.batch_size))
    print(f"\n{'method':<27} {'lever':<22} {'images/s':>9} {'vs fp32':>8} {'min per 50k epoch':>18}")
    for method in a.methods:
        base = statistics.median(times[(method, LEVERS[0])])
        for lever in LEVERS:
            t = statistics.median(times[(method, lever)])
            ips = a.batches * a.batch_size / t
            print(f"{method:<27} {lever_name(*lever):<22} {ips:>9.0f} {base / t:>7.2f}x {50000 / ips / 60:>18.1f}")
    if a.accuracy:
        accuracy_table(a.accuracy, a.test_source, a.n)


if __name__ == "__main__":
    main()
