"""Loss surfaces and PGD loss traces: shapes, the clean point, seeded and side-effect free, PGD's algorithm."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from advlib import attacks, landscape, masking, viz  # noqa: E402


def images(n=5, seed=0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def linear() -> nn.Module:
    """A linear model: the cross-entropy is convex and smooth in x."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()


def smooth_mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Softplus(), nn.Linear(32, 10)).eval()


def model_with_modes(start_training: bool) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, 2), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(4 * 13 * 13, 10))
    model.train(start_training)
    model[2].eval()  # a submodule in another mode than its parent must keep it
    return model


Y = torch.tensor([0, 1, 2, 3, 4])


def test_surface_shapes_and_clean_centre():
    model, x = smooth_mlp(), images()
    r = landscape.loss_surface(model, x, Y, 0.1, steps=7)
    assert r["a"].shape == r["b"].shape == (7,)
    assert r["a"][0] == -1 and r["a"][-1] == 1 and r["a"][3] == 0
    assert r["loss"].shape == (5, 7, 7)
    assert r["along_d1"].shape == r["along_d2"].shape == (5, 7) and r["clean"].shape == (5,)
    with torch.no_grad():
        clean = F.cross_entropy(model(x), Y, reduction="none")
    for centre in (r["loss"][:, 3, 3], r["along_d1"][:, 3], r["along_d2"][:, 3], r["clean"]):
        assert torch.allclose(centre, clean, atol=1e-5)
    assert torch.allclose(r["loss"][:, :, 3], r["along_d1"], atol=1e-5)  # the slices lie on the surface
    assert torch.allclose(r["loss"][:, 3, :], r["along_d2"], atol=1e-5)
    even = landscape.loss_surface(model, x, Y, 0.1, steps=2)  # no grid point at 0: the slices still have it
    assert even["loss"].shape == (5, 2, 2) and torch.allclose(even["clean"], clean, atol=1e-5)


def test_surface_points_are_clamped_to_the_box():
    model, x = linear(), images()
    x[:, :, :14] = 1.0  # half of every image at the top of the box
    r = landscape.loss_surface(model, x, Y, 0.5, steps=3)
    d1 = attacks.input_gradient(model, x, Y)[0].sign()
    d2 = landscape.rademacher(x, torch.Generator().manual_seed(0))
    corner = (x + 0.5 * d1 + 0.5 * d2).clamp(0, 1)
    with torch.no_grad():
        assert torch.allclose(r["loss"][:, 2, 2], F.cross_entropy(model(corner), Y, reduction="none"), atol=1e-5)


@pytest.mark.parametrize("make, eps", [(linear, 0.3), (smooth_mlp, 0.01)])
def test_loss_rises_along_the_gradient(make, eps):
    r = landscape.loss_surface(make(), images(), Y, eps, steps=11)
    centre = 5
    assert (r["along_d1"][:, centre + 1] >= r["clean"] - 1e-6).all()
    assert (r["along_d1"][:, centre + 1] > r["clean"]).any()


@pytest.mark.parametrize("make", [linear, smooth_mlp])
def test_gradient_direction_is_uphill_to_first_order(make):
    """The sign convention: d1 is the sign of the gradient of the loss (ascent), so a small step along +d1 raises
    the loss of every image and a step along -d1 lowers it, by about eps times the gradient's L1 norm."""
    model, x, eps = make(), images(), 1e-3
    r = landscape.loss_surface(model, x, Y, eps, steps=3)
    g = attacks.input_gradient(model, x, Y)[0]
    up, down = r["along_d1"][:, 2] - r["clean"], r["along_d1"][:, 0] - r["clean"]
    assert (up > 0).all() and (down < 0).all()
    assert torch.allclose(up, eps * g.abs().flatten(1).sum(1), rtol=0.05)


def test_masked_gradient_shows_as_a_flat_gradient_direction():
    model, x = linear(), images()
    masked = masking.ScaledLogits(model, 1e4)
    with torch.no_grad():
        y = model(x).argmax(1)  # classified right with a saturated softmax: the gradient underflows to 0
    r = landscape.loss_surface(masked, x, y, 0.1, steps=5)
    assert (r["zero_gradient"] == 1).all()
    assert torch.equal(r["along_d1"], r["clean"][:, None].expand(-1, 5))
    assert (landscape.loss_surface(model, x, y, 0.1, steps=5)["zero_gradient"] < 0.5).all()


@pytest.mark.parametrize("start_training", [True, False])
def test_mode_and_parameter_gradients_untouched(start_training):
    model, x = model_with_modes(start_training), images()
    landscape.loss_surface(model, x, Y, 0.1, steps=3)
    landscape.pgd_loss_trace(model, x, Y, 0.1, 0.05, 2, restarts=2)
    assert model.training == start_training and model[1].training == start_training and not model[2].training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_surface_seeded_batched_and_global_rng_untouched():
    model, x = smooth_mlp(), images()
    state = torch.random.get_rng_state()
    a = landscape.loss_surface(model, x, Y, 0.1, steps=5, seed=3)
    b = landscape.loss_surface(model, x, Y, 0.1, steps=5, seed=3, batch_size=7)  # other batches, same numbers
    c = landscape.loss_surface(model, x, Y, 0.1, steps=5, seed=4)
    r = landscape.loss_surface(model, x, Y, 0.1, steps=5, seed=3, direction="random")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.allclose(a["loss"], b["loss"], atol=1e-5)
    assert not torch.allclose(a["along_d2"], c["along_d2"])
    assert torch.allclose(a["along_d1"], c["along_d1"], atol=1e-6)  # the gradient direction needs no seed
    assert torch.allclose(r["along_d2"], a["along_d2"], atol=1e-6)  # the same random direction either way
    assert (r["zero_gradient"] == 0).all()


def test_trace_shapes_seeds_and_global_rng():
    model, x = smooth_mlp(), images()
    state = torch.random.get_rng_state()
    t = landscape.pgd_loss_trace(model, x, Y, 0.1, 0.02, 4, restarts=3, seed=1)
    u = landscape.pgd_loss_trace(model, x, Y, 0.1, 0.02, 4, restarts=3, seed=1)
    v = landscape.pgd_loss_trace(model, x, Y, 0.1, 0.02, 4, restarts=3, seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert t["loss"].shape == (3, 5, 5) and t["correct"].shape == (3, 5) and t["correct"].dtype == torch.bool
    assert torch.equal(t["loss"], u["loss"]) and not torch.equal(t["loss"], v["loss"])
    assert not torch.equal(t["loss"][0], t["loss"][1])  # each restart starts elsewhere


def test_trace_iterates_stay_in_the_ball_and_climb_on_a_convex_loss():
    model, x = linear(), images()
    x[0] = (x[0] > 0.5).float()  # pixels at 0 and 1: the box cuts the ball
    t = landscape.pgd_loss_trace(model, x, Y, 0.2, 0.03, 10, restarts=2, return_iterates=True)
    it = t["iterates"]
    assert it.shape == (2, 11, 5, 1, 28, 28)
    assert (it - x).abs().max() <= 0.2 + 1e-6 and it.min() >= 0 and it.max() <= 1
    with torch.no_grad():
        last = model(it[:, -1].flatten(0, 1))
    assert torch.allclose(t["loss"][:, -1].flatten(), F.cross_entropy(last, Y.repeat(2), reduction="none"), atol=1e-5)
    assert torch.equal(t["correct"].flatten(), last.argmax(1) == Y.repeat(2))
    # a sign step (cut by the box) never goes against the gradient, and the loss is convex: it never falls
    assert (t["loss"].diff(dim=1) >= -1e-5).all()
    assert (t["loss"][:, -1] > t["loss"][:, 0]).all()


def test_trace_reproduces_attacks_pgd():
    """On the CPU the seeded generator draws what attacks.pgd draws after torch.manual_seed(seed)."""
    model, x, seed = smooth_mlp(), images(), 11
    t = landscape.pgd_loss_trace(model, x, Y, 0.1, 0.02, 5, restarts=1, seed=seed, return_iterates=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x_adv = attacks.pgd(model, x, Y, 0.1, 0.02, 5)
    assert torch.equal(t["iterates"][0, -1], x_adv)
    with torch.no_grad():
        assert torch.allclose(t["loss"][0, -1], F.cross_entropy(model(x_adv), Y, reduction="none"))
    # with restarts, attacks.pgd keeps, per image, one of the same restarts
    t = landscape.pgd_loss_trace(model, x, Y, 0.1, 0.02, 5, restarts=3, seed=seed, return_iterates=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x_adv = attacks.pgd(model, x, Y, 0.1, 0.02, 5, restarts=3)
    same = (t["iterates"][:, -1] == x_adv).flatten(2).all(2)  # (restarts, N)
    assert same.any(0).all()


@pytest.mark.parametrize("call, match", [
    (lambda m, x: landscape.loss_surface(m, x, Y, -0.1), "eps"),
    (lambda m, x: landscape.loss_surface(m, x, Y, 0.1, steps=1), "steps"),
    (lambda m, x: landscape.loss_surface(m, x, Y, 0.1, steps=3.0), "steps"),
    (lambda m, x: landscape.loss_surface(m, x, Y, 0.1, direction="up"), "'gradient', 'random'"),
    (lambda m, x: landscape.loss_surface(m, x, Y, 0.1, seed=-1), "seed"),
    (lambda m, x: landscape.loss_surface(m, x, Y, 0.1, batch_size=0), "batch_size"),
    (lambda m, x: landscape.loss_surface(m, x * 255, Y, 0.1), r"\[0,1\]"),
    (lambda m, x: landscape.pgd_loss_trace(m, x, Y, -0.1, 0.01, 3), "eps"),
    (lambda m, x: landscape.pgd_loss_trace(m, x, Y, 0.1, 0.01, 3, restarts=0), "restarts"),
    (lambda m, x: landscape.pgd_loss_trace(m, x, Y, 0.1, 0.0, 3), "alpha"),
    (lambda m, x: landscape.pgd_loss_trace(m, x, Y, 0.1, 0.01, 0), "steps"),
    (lambda m, x: landscape.pgd_loss_trace(m, x, Y[:3], 0.1, 0.01, 3), "one label per image"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call(linear(), images())


def test_plots():
    x = images()
    surfaces = {"linear": landscape.loss_surface(linear(), x, Y, 0.1, steps=5),
                "mlp": landscape.loss_surface(smooth_mlp(), x, Y, 0.1, steps=5, direction="random")}
    for kind in ("contour", "3d"):
        fig = viz.plot_loss_surface(surfaces, index=1, kind=kind)
        panels = [a for a in fig.axes if a.get_title()]
        assert len(panels) == 2
        assert panels[0].get_xlabel() == "along sign of gradient (×ε)"
        assert panels[1].get_ylabel() == "random direction (×ε)"
        assert sum("cross-entropy" in a.get_ylabel() for a in fig.axes) == 2  # the colour bars
        plt.close(fig)
    fig = viz.plot_loss_slices(surfaces, index=None)
    assert len(fig.axes) == 2 and "mean over 5 images" in fig.axes[0].get_title() and fig.legends
    plt.close(fig)
    traces = {"linear": landscape.pgd_loss_trace(linear(), x, Y, 0.1, 0.03, 3, restarts=2)}
    fig = viz.plot_pgd_trace(traces)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "PGD iteration" and ax.get_ylabel() == "cross-entropy (mean over images)"
    assert len(ax.lines) == 3 and ax.get_legend() is None and len(fig.legends[0].get_texts()) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="contour"):
        viz.plot_loss_surface(surfaces, kind="wire")
