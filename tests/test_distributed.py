"""``torchrun`` + DistributedDataParallel: two CPU processes with gloo run the same engine as one.

Each run trains a small MNIST net for a few steps on images that carry their own index in two
pixels, with a training method (registered inside the script) that records which images every
rank saw at every step. Checked: the ranks of one step together see exactly the images the
single-process run saw at that step; both ranks end with identical weights, equal to the single
process's up to float rounding, and so do their averages (weight averaging); an interrupted two-process run resumes under torchrun and ends
where the uninterrupted one does, averaged weights included.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    import torch.nn.functional as F
    from advlib import data, losses, train, utils
    from advlib.config import TrainConfig

    out, stop_at = sys.argv[1], int(sys.argv[2])
    seen = {}

    @losses.register("recorded_fgsm", uses=("eps",))
    def recorded_fgsm(ctx):
        px = (ctx.x[:, 0, 0, :2] * 255).round().long()
        step = len(seen)
        if step == stop_at:  # every rank stops at the same step, as after a Ctrl-C
            raise KeyboardInterrupt
        seen[step] = (px[:, 0] + 256 * px[:, 1]).tolist()
        return losses.get_method("fgsm")(ctx)

    g = torch.Generator().manual_seed(0)
    n = 64 + 256
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    x[:, 0, 0, 0] = torch.arange(n) % 256
    x[:, 0, 0, 1] = torch.arange(n) // 256
    ds = data.Dataset(x, torch.randint(0, 10, (n,), generator=g), "mnist", "train", "sample", data.MNIST_CLASSES)
    cfg = TrainConfig(model="fast_cnn", dataset="mnist", method="recorded_fgsm", eps=0.1, epochs=2, batch_size=16,
                      lr=0.05, holdout=64, eval_samples=32, eval_steps=1, checkpoint_every=1, progress=False,
                      ema_decay=0.8, ema_warmup_epochs=0.5, out_dir=os.path.join(out, "run"))
    utils.init_distributed()
    rank, world = utils.dist_info()
    try:
        train.fit(cfg, train_data=ds)
        code = 0
    except KeyboardInterrupt:
        code = 130
    # the steps of this launch only (a resumed launch starts at the checkpoint's step)
    first = train.load_checkpoint(os.path.join(out, "run", "last.pt"))["state"]["global_step"] - len(seen)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world": world, "first_step": first, "seen": seen}, f)
    if code == 0:  # the raw weights and their average
        last = os.path.join(out, "run", "last.pt")
        both = {f"{w}.{k}": v for w in ("raw", "averaged")
                for k, v in train.load_model(last, weights=w).state_dict().items()}
        torch.save(both, os.path.join(out, f"weights{rank}.pt"))
    utils.close_distributed()
    sys.exit(code)
''')


def launch(tmp: Path, nproc: int, stop_at: int = -1) -> subprocess.CompletedProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp.parent / "ddp_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVLIB_OFFLINE": "1"}
    if nproc == 1:
        cmd = [sys.executable, str(script), str(tmp), str(stop_at)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(script), str(tmp), str(stop_at)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def steps(folder: Path, rank: int) -> dict[int, list[int]]:
    d = json.loads((folder / f"rank{rank}.json").read_text())
    return {int(k) + d["first_step"]: v for k, v in d["seen"].items()}


def weights(folder: Path, rank: int) -> dict:
    return torch.load(folder / f"weights{rank}.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    single, double = root / "single", root / "double"
    for folder, n in ((single, 1), (double, 2)):
        p = launch(folder, n)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return single, double, root


def test_two_ranks_cover_exactly_the_single_process_samples(runs):
    single, double, _ = runs
    one = steps(single, 0)
    r0, r1 = steps(double, 0), steps(double, 1)
    assert len(one) == 2 * 16 == len(r0) == len(r1)  # 256 images, global batch 16, 2 epochs
    for step, images in one.items():
        assert not set(r0[step]) & set(r1[step]), f"step {step}: the ranks share images"
        assert sorted(r0[step] + r1[step]) == sorted(images), f"step {step}: other images than one process"
        assert len(r0[step]) == len(r1[step]) == 8


def test_both_ranks_end_with_identical_weights_close_to_one_process(runs):
    single, double, _ = runs
    w0, w1, w = weights(double, 0), weights(double, 1), weights(single, 0)
    for k in w:
        assert torch.equal(w0[k], w1[k]), f"{k} differs between the ranks"
        torch.testing.assert_close(w0[k], w[k], rtol=1e-3, atol=1e-4, msg=f"{k}: DDP and one process disagree")


def test_an_interrupted_torchrun_run_resumes_where_it_stopped(runs):
    _, double, root = runs
    resumed = root / "resumed"
    p = launch(resumed, 2, stop_at=21)
    assert p.returncode != 0, "the first launch should have been interrupted"
    assert json.loads((resumed / "rank0.json").read_text())["first_step"] == 0
    assert not (resumed / "weights0.pt").exists()
    p = launch(resumed, 2)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert min(steps(resumed, 0)) == 21, "the second launch should start at the interrupted step"
    for rank in (0, 1):
        assert steps(resumed, rank) == {k: v for k, v in steps(double, rank).items() if k >= 21}
        for k, v in weights(double, rank).items():
            assert torch.equal(weights(resumed, rank)[k], v), f"rank {rank}: {k} differs after resuming"
