"""The CIFAR-10 cpu profile's pieces: the speed levers, N-FGSM, the pixel-exact subset, the RSLAD columns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advlib import attacks, data, evaluate, losses, models, recipes, train
from advlib.config import TrainConfig

from .conftest import SHARED_DATA

EPS = 8 / 255


def test_bf16_channels_last_training_keeps_attacks_in_float32_inside_the_ball(tmp_path):
    seen = []
    sat = losses.get_method("pgd")

    def spy(ctx):
        x_adv = ctx.pgd(random_start=True)
        seen.append((x_adv.dtype, (x_adv - ctx.x).abs().max().item(), x_adv.min().item(), x_adv.max().item(),
                     torch.is_autocast_enabled("cpu")))
        return sat(ctx)

    losses.METHODS.pop("spy_pgd", None)
    losses.register("spy_pgd", uses=("eps", "steps"))(spy)
    try:
        cfg = TrainConfig(model="airbench_s", dataset="cifar10", source="sample", method="spy_pgd", eps=EPS, steps=2,
                          epochs=1, batch_size=50, train_samples=300, holdout=100, eval_samples=50, eval_steps=2,
                          precision="bf16", channels_last=True, out_dir=str(tmp_path / "run"), progress=False)
        m = train.fit(cfg)
    finally:
        losses.METHODS.pop("spy_pgd", None)
    assert m["complete"] and len(seen) == 4
    for dtype, dist, lo, hi, autocast_on in seen:
        assert dtype == torch.float32 and autocast_on
        assert dist <= EPS + 1e-6 and lo >= 0 and hi <= 1
    model = train.load_model(tmp_path / "run" / "last.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not torch.is_autocast_enabled("cpu")


def test_bf16_and_fp32_runs_of_one_recipe_agree_at_the_start(tmp_path):
    """Autocast changes the arithmetic, not the method: the first steps' losses agree to bf16 precision."""
    got = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        cfg = TrainConfig(model="airbench_s", dataset="cifar10", method="pgd", eps=EPS, steps=2, precision=precision,
                          channels_last=precision == "bf16")
        model = models.get_model("airbench_s")
        x, y = data.load("cifar10", "train", source="sample").tensors(32)
        torch.manual_seed(1)
        with train.autocast(cfg, torch.device("cpu")):
            loss, _ = losses.get_method("pgd")(losses.Context(model.train(), x, y, EPS, cfg))
        got[precision] = loss.item()
    assert got["bf16"] == pytest.approx(got["fp32"], rel=0.03)


def test_a_bad_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16").validate()


def test_n_fgsm_perturbation_is_larger_than_eps_but_bounded_and_valid(tiny_model, monkeypatch):
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    made = []
    orig = attacks.fgsm

    def keep(model, xin, yin, eps, **kw):
        made.append(orig(model, xin, yin, eps, **kw))
        return made[-1]

    monkeypatch.setattr(attacks, "fgsm", keep)
    cfg = TrainConfig(method="n_fgsm", eps=0.1)
    loss, logits = losses.get_method("n_fgsm")(losses.Context(tiny_model.train(), x, y, 0.1, cfg))
    d = (made[0] - x).abs()
    assert d.max() <= 3 * 0.1 + 1e-6 and d.max() > 0.1  # noise 2ε plus a step of ε, not projected to ε
    assert made[0].min() >= 0 and made[0].max() <= 1
    assert loss.ndim == 0 and logits.shape == (64, 10)


def test_the_batches_of_ranks_make_up_the_single_process_batch():
    ds = data.load("mnist", "test", source="sample").subset(250)
    one = [y for _, y in ds.loader(20, shuffle=True, seed=2, drop_last=True)]
    ranks = [[y for _, y in ds.loader(10, shuffle=True, seed=2, drop_last=True, rank=r, world_size=2)] for r in (0, 1)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 12
    for step, y in enumerate(one):
        assert torch.equal(torch.stack([ranks[0][step], ranks[1][step]], 1).flatten(), y)


@pytest.mark.skipif(not (SHARED_DATA / data.EXACT_SUBSET).exists(), reason="needs ../shared/data")
def test_the_pixel_exact_subset_is_labelled_as_such():
    test = data.load("cifar10", "test", source="exact", root=SHARED_DATA)
    assert test.label == "CIFAR-10 (pixel-exact subset)" and len(test) == 1017 and test.x.dtype == torch.uint8
    assert data.load("cifar10", "train", source="exact", root=SHARED_DATA).x.shape == (5085, 3, 32, 32)


def test_the_exact_subset_errors_say_what_to_do(isolated_data):
    with pytest.raises(data.DataNotFoundError, match="cifar10-exact-subset.npz was not found"):
        data.load("cifar10", "test", source="exact")
    with pytest.raises(ValueError, match="pixel-exact CIFAR-10 subset; mnist has none"):
        data.load("mnist", "test", source="exact")
    root = isolated_data / "root"
    root.mkdir()
    np.savez(root / data.EXACT_SUBSET, x_test=np.zeros((3, 32, 32), np.uint8), y_test=np.zeros(3, np.int64))
    with pytest.raises(data.DataCorruptError, match="not uint8 \\(N, 3, 32, 32\\)"):
        data.load("cifar10", "test", source="exact", root=root)


def test_rslad_columns_without_autoattack(trained_mnist, mnist_sample):
    _, test = mnist_sample
    res = evaluate.rslad_columns(trained_mnist, test, eps=0.1, n=60, with_aa=False, progress=False, sanity_checks=False)
    assert list(res["robust"]) == ["FGSM", "PGD_SAT", "PGD_TRADES", "CW∞"]
    assert res["robust"]["PGD_SAT"] <= res["clean"]


def test_the_cifar_recipes_name_real_settings():
    for name in recipes.RECIPES:
        cfg = recipes.config(name)
        if losses.get_method(cfg.method).teacher:  # a distillation recipe names its teacher when it is run
            with pytest.raises(ValueError, match="distils from a teacher"):
                losses.validate(cfg)
            cfg = cfg.replace(teacher="runs/teacher/last.pt")
        losses.validate(cfg)
    assert recipes.config("cifar_rslad_gpu").milestones == (215 / 300, 260 / 300, 285 / 300)
    assert recipes.config("cifar_ard_gpu").milestones == (0.5,)  # the official helper's one decay
    sat = recipes.config("cifar_sat")
    assert (sat.model, sat.precision, sat.channels_last, sat.method) == ("airbench_m", "bf16", True, "n_fgsm")
    assert sat.ema_decay > 0  # notebook 03's SAT model (and notebook 05's cpu teacher) is evaluated averaged
    assert recipes.config("cifar_trades_gpu").milestones == (74 / 76,)
    assert models.count_parameters(models.get_model("airbench_m")) < 1_000_000
