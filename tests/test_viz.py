"""The course's figures (advlib.viz) as a reader meets them: labels readable (at least 8 points) and not
overlapping, nothing clipped, legends and annotations off the data, 95% intervals where the notebooks show
accuracies, bars at 0% visible, perturbations shown with their amplification written out. Synthetic numbers
only; each figure is drawn (``canvas.draw``) so that the positions of its texts can be compared."""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from advlib import attacks, experiments, landscape, stats, train, viz  # noqa: E402

COLUMNS = ["Clean", "FGSM", "PGD_SAT", "PGD_TRADES", "CW∞", "All attacks"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def boxes(texts, renderer):
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]


def overlapping(bbs) -> list:
    return [(a, b) for a, b in itertools.combinations(bbs, 2) if a.overlaps(b)]


def inside(bb, fig) -> bool:
    """``bb`` (display units) lies within the figure as saved: nothing of it clipped."""
    w, h = fig.canvas.get_width_height()
    return bb.x0 >= -0.5 and bb.y0 >= -0.5 and bb.x1 <= w + 0.5 and bb.y1 <= h + 0.5


# --------------------------------------------------------------------------- perturbations


def test_perturbation_scale_shows_clean_adversarial_and_the_amplified_perturbation():
    eps = 8 / 255
    x = torch.full((2, 3, 4, 4), 0.5)
    delta = torch.zeros_like(x)
    delta[:, :, 0, 0], delta[:, :, 0, 1] = eps, -eps
    xm = torch.zeros(3, 1, 4, 4)
    fig = viz.perturbation_scale({"CIFAR-10": (x, x + delta, eps), "MNIST": (xm, (xm + 0.3).clamp(0, 1), 0.3)})
    axes = fig.axes
    assert len(axes) == 2 * 3 * 3  # two blocks of three rows, three columns (the first block's third one empty)
    assert all(a.images or not a.axison for a in axes), "an axes without an image: a colour bar"
    labels = [a.get_ylabel() for a in axes if a.get_ylabel()]
    assert labels == ["clean", "adversarial", "perturbation\nδ ×15.9 (+0.5)",
                      "clean", "adversarial", "perturbation\nδ ×1.67 (+0.5)"]
    titles = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert "true scale" in titles[0] and "amplified ×15.9" in titles[0] and "amplified ×1.67" in titles[1]
    first = fig.subfigs[0].axes  # rows: clean, adversarial, perturbation; columns: images
    clean, adv, pert = (np.asarray(first[k].images[0].get_array()) for k in (0, 3, 6))
    assert np.allclose(clean, 0.5) and adv[0, 0, 0] == pytest.approx(0.5 + eps)  # images as they are
    assert pert[0, 0] == pytest.approx([1, 1, 1]) and pert[0, 1] == pytest.approx([0, 0, 0], abs=1e-6)  # ±ε: white, black
    assert pert[1, 1] == pytest.approx([0.5, 0.5, 0.5])  # unchanged: mid-grey
    assert viz.amplification(eps) == pytest.approx(255 / 16)


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_colour_bar_only_for_grey_images(channels):
    n, eps = 3, 0.1
    x = torch.rand(n, channels, 5, 5)
    x_adv = (x + eps * torch.randn_like(x).sign()).clamp(0, 1)
    y = torch.zeros(n, dtype=torch.long)
    fig = viz.image_grid(x, x_adv, y, y, torch.ones(n), y, torch.ones(n), CLASSES, eps)
    colour_bars = len(fig.axes) - 3 * n
    assert colour_bars == (1 if channels == 1 else 0)
    label = fig.axes[n].get_ylabel()  # the perturbation row
    assert ("pixel units" in label) if channels == 1 else ("×5 (+0.5)" in label)


# --------------------------------------------------------------------------- bars


def bar_table():
    return {"Natural student": dict(zip(COLUMNS, [0.86, 0.04, 0.0, 0.0, 0.85, 0.0])),
            "… with logits ×10⁴ (ScaledLogits)": dict(zip(COLUMNS, [0.86, 0.86, 0.85, 0.0, 0.83, 0.0])),
            "… on 16-level input (QuantizedInput)": dict(zip(COLUMNS, [0.87, 0.87, 0.84, 0.85, 1.0, 0.03]))}


@pytest.mark.parametrize("rows", [3, 7])
def test_plot_bars_readable_labels_above_their_intervals(rows):
    table = bar_table() if rows == 3 else {f"student {i}": dict(zip(COLUMNS, np.linspace(0.2, 0.9, 6)[::-1 if i % 2 else 1]))
                                           for i in range(rows)}
    iv = {r: {c: stats.interval(v, 100) for c, v in d.items()} for r, d in table.items()}
    fig = viz.plot_bars(table, COLUMNS, title="t", intervals=iv)
    ax = fig.axes[0]
    renderer = drawn(fig)
    values = [t for t in ax.texts]
    assert len(values) == rows * len(COLUMNS)
    assert min(t.get_fontsize() for t in values) >= 8
    assert min(t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()) >= 8
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 8
    assert not overlapping(boxes(values, renderer)), "value labels overlap"
    assert not overlapping(boxes(ax.get_xticklabels(), renderer)), "row names overlap"
    assert all(inside(bb, fig) for bb in boxes(values + ax.get_xticklabels() + [ax.title], renderer))
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == len(COLUMNS) and all(c.errorbar is not None for c in bars)  # the intervals are drawn
    for j, col in enumerate(COLUMNS):  # each label above its bar's interval (labels column by column)
        for i, r in enumerate(table):
            assert values[j * rows + i].get_position()[1] >= 100 * iv[r][col][1]
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.y1 <= ax.get_window_extent(renderer).y0, "the legend is on the data"


@pytest.mark.parametrize("rows", [1, 4])
def test_plot_bars_legend_names_image_counts_only_when_they_differ(rows):
    table = {f"student {i}": dict(zip(COLUMNS, np.linspace(0.2, 0.9, 6))) for i in range(rows)}
    counts = {c: 1017 for c in COLUMNS}
    fig = viz.plot_bars(table, COLUMNS, n_images=counts)  # every column on the same images: plain names
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == COLUMNS
    counts[COLUMNS[-1]] = 200
    fig = viz.plot_bars(table, COLUMNS, n_images=counts)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names == [f"{c} (1,017 images)" for c in COLUMNS[:-1]] + [f"{COLUMNS[-1]} (200 images)"]
    renderer = drawn(fig)
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.y1 <= ax.get_window_extent(renderer).y0, "the legend is on the data"
    assert inside(legend, fig), "the longer legend entries run off the figure"


def test_plot_bars_zero_bars_are_visible():
    fig = viz.plot_bars(bar_table(), COLUMNS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts].count("0") == 5
    strokes = [ln for ln in ax.lines if ln.get_linewidth() >= 3]
    assert len(strokes) == 5  # one stroke on the axis per bar at 0%
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    colours = {tuple(c.patches[0].get_facecolor()) for c in bars}
    assert all(tuple(matplotlib.colors.to_rgba(s.get_color())) in colours for s in strokes)
    assert all(list(s.get_ydata()) == [0, 0] for s in strokes)
    fig = viz.plot_bars({"a": {"Clean": 0.5, "FGSM": 0.2}}, ["Clean", "FGSM"])
    assert not [ln for ln in fig.axes[0].lines if ln.get_linewidth() >= 3]  # no bar at 0%: no stroke


# --------------------------------------------------------------------------- trade-off


def test_plot_tradeoff_error_bars_and_labels_inside():
    pts = {"β = 0.5": (0.612, 0.162), "β = 2": (0.556, 0.245), "β = 6": (0.505, 0.273)}
    iv = {k: (stats.interval(a, 500), stats.interval(b, 500)) for k, (a, b) in pts.items()}
    fig = viz.plot_tradeoff(pts, ylabel="PGD-20 accuracy (%)", title="t", intervals=iv)
    ax = fig.axes[0]
    errs = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errs) == 3 and all(c.has_xerr and c.has_yerr for c in errs)
    lo, hi = errs[2].lines[2][1].get_segments()[0][:, 1]  # β = 6: the vertical bar spans the robust interval
    assert (lo, hi) == pytest.approx((100 * iv["β = 6"][1][0], 100 * iv["β = 6"][1][1]))
    assert "95% interval" in ax.get_xlabel() and "95% interval" in ax.get_ylabel()
    renderer = drawn(fig)
    box = ax.get_window_extent(renderer)
    labels = boxes(ax.texts, renderer)
    assert [t.get_text() for t in ax.texts] == list(pts) and len(labels) == 3
    assert all(box.x0 <= b.x0 and b.x1 <= box.x1 and box.y0 <= b.y0 and b.y1 <= box.y1 for b in labels), "clipped"
    fig = viz.plot_tradeoff(pts)  # without intervals: no error bars, plain labels
    assert not any(c.has_xerr or c.has_yerr for c in fig.axes[0].containers) and "95%" not in fig.axes[0].get_xlabel()

def test_plot_tradeoff_labels_of_coinciding_points_do_not_overlap():
    pts = {"β = 0.5": (0.1, 0.1), "β = 2": (0.1, 0.1), "β = 6": (0.1005, 0.1)}  # a smoke run: three equal models
    fig = viz.plot_tradeoff(pts)
    renderer = drawn(fig)
    assert not overlapping(boxes(fig.axes[0].texts, renderer))


# --------------------------------------------------------------------------- soft labels


def test_plot_soft_labels_full_class_names_and_the_true_class_in_the_legend():
    torch.manual_seed(0)
    p = {m: (torch.rand(3, 10).softmax(1), torch.rand(3, 10).softmax(1)) for m in ("teacher", "student")}
    y = torch.tensor([3, 8, 0])
    fig = viz.plot_soft_labels(torch.rand(3, 3, 8, 8), y, p, CLASSES)
    bottom = fig.axes[-3:]  # axes row by row: images, teacher, student
    for ax, true in zip(bottom, y.tolist()):
        names = [t.get_text() for t in ax.get_xticklabels()]
        assert names == CLASSES
        assert ax.get_xticklabels()[true].get_color() == "tab:green"
        assert min(t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()) >= 8
    assert all(not any(t.get_text() for t in ax.get_xticklabels()) for ax in fig.axes[3:6])  # upper rows share them
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[-1] == "true class" and legend[0] == "natural x"
    renderer = drawn(fig)
    assert all(inside(bb, fig) for ax in bottom for bb in boxes(ax.get_xticklabels(), renderer))


# --------------------------------------------------------------------------- training curves


def history(values):
    return [{"epoch": e + 1, "holdout_pgd": v} for e, v in enumerate(values)]


def test_plot_history_zoom_intervals_and_reference():
    hist = {"SAT": history([0.28, 0.30, 0.33, 0.36]), "RSLAD": history([0.20, 0.27, 0.31, 0.33])}
    fig = viz.plot_history(hist, keys=("holdout_pgd",), n=500, references={"teacher, same images: 41.0%": 0.41},
                           zoom=True)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert 10 < lo < 20 and 41 < hi < 50  # fitted to the data, its intervals and the reference, not 0-100
    assert len(ax.collections) == 2  # one 95% band per run
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(100 * stats.interval(0.28, 500)[0])
    ref = [ln for ln in ax.lines if ln.get_label() == "teacher, same images: 41.0%"]
    assert len(ref) == 1 and list(ref[0].get_ydata()) == [41.0, 41.0]
    assert "teacher, same images: 41.0%" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert "95% interval" in ax.get_ylabel() and "500 images" in ax.get_ylabel()
    renderer = drawn(fig)
    assert ax.get_legend().get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0  # below the data
    fig = viz.plot_history(hist, keys=("holdout_pgd",))  # the defaults: 0-100%, no band
    assert fig.axes[0].get_ylim() == (-2, 102) and not fig.axes[0].collections


# --------------------------------------------------------------------------- interval width


def test_plot_interval_width_marks_off_the_curves():
    ns = np.array([50, 100, 200, 500, 1000, 10000])
    marks = {200: "standard AA, cpu profile", 1017: "pixel-exact test subset", 10000: "full test set"}
    fig = viz.plot_interval_width(ns, (0.1, 0.5), marks=marks, title="t")
    ax = fig.axes[0]
    assert not ax.texts, "text inside the axes, over the curves"
    assert len(ax.lines) == 2 + 3
    assert ax.lines[1].get_ydata()[0] == pytest.approx(100 * stats.half_width(0.5, 50))
    top = ax.child_axes  # the secondary x-axis above
    renderer = drawn(fig)
    names = [t for t in top[0].get_xticklabels() if t.get_text()]
    assert [t.get_text().replace("\n", " ") for t in names] == list(marks.values())
    assert min(t.get_fontsize() for t in names) >= 8
    assert not overlapping(boxes(names, renderer))
    assert all(b.y0 >= ax.get_window_extent(renderer).y1 - 1 for b in boxes(names, renderer))  # above the axes
    assert all(inside(bb, fig) for bb in boxes(names, renderer))
    assert ax.get_legend().get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0


# --------------------------------------------------------------------------- a teacher through a run's monitor


def test_monitor_accuracy_matches_the_runs_own_monitor(tmp_path):
    cfg = train.TrainConfig(model="fast_cnn", dataset="mnist", source="sample", method="pgd", steps=1, eps=0.2,
                            epochs=0.2, batch_size=100, train_samples=1000, holdout=200, eval_samples=60,
                            eval_steps=2, optimizer="adam", lr=2e-3, out_dir=str(tmp_path / "run"), progress=False)
    metrics = train.fit(cfg)
    model = train.load_model(tmp_path / "run" / "last.pt")
    state = torch.get_rng_state()
    got = experiments.monitor_accuracy(model, cfg, trained_with=tmp_path / "run" / "last.pt")
    assert torch.equal(torch.get_rng_state(), state)  # the attacks' random starts leave the global RNG alone
    final = metrics["history"][-1]
    assert got["n"] == 60 and got["held_out"] is True
    assert got["holdout_clean"] == final["holdout_clean"] and got["holdout_fgsm"] == final["holdout_fgsm"]
    assert abs(got["holdout_pgd"] - final["holdout_pgd"]) <= 3 / 60  # PGD's random start only
    other = experiments.monitor_accuracy(model, cfg.replace(seed=1), trained_with=tmp_path / "run" / "last.pt")
    assert other["held_out"] is False  # another seed holds out other images: this model trained on some of them
    assert experiments.monitor_accuracy(model, cfg)["held_out"] is None


# --------------------------------------------------------------------------- loss surfaces


def test_in_ball_is_the_diamond_of_the_plane():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    x, y, eps = torch.full((1, 1, 4, 4), 0.5), torch.tensor([0]), 0.1
    d1 = attacks.input_gradient(model, x, y)[0].sign()  # the plane of landscape.loss_surface
    d2 = landscape.rademacher(x, torch.Generator().manual_seed(0))
    for a, b in [(1, 0), (0.5, 0.5), (1, 1), (-0.5, 1), (0, -1), (-1, -0.25)]:
        size = (eps * (a * d1 + b * d2)).abs().max().item()  # the step's L-infinity norm
        assert viz.in_ball(np.array(a), np.array(b)) == (size <= eps + 1e-7), (a, b, size)


def surface(values: np.ndarray, eps: float = 0.3) -> dict:
    a = torch.linspace(-1, 1, values.shape[0])
    loss = torch.as_tensor(values, dtype=torch.float32)[None]
    return {"a": a, "b": a.clone(), "loss": loss, "along_d1": loss[:, :, 2], "along_d2": loss[:, 2, :],
            "clean": loss[:, 2, 2], "eps": eps, "direction": "gradient", "zero_gradient": torch.zeros(1)}


def test_plot_loss_surface_outlines_the_ball_on_a_log_scale():
    z = np.full((5, 5), 1e-4)
    z[4, 2] = 1e-3  # (a, b) = (1, 0): the highest loss inside the ball, the FGSM point
    z[0, 4] = 1.0  # (-1, 1): a corner 2 eps away, far higher
    z[0, 0] = 0.0  # a saturated softmax: drawn, not an error, on the log scale
    fig = viz.plot_loss_surface({"model": surface(z)}, index=0)
    ax = fig.axes[0]
    outline = [ln for ln in ax.lines if ln.get_label().startswith("ε-ball")]
    assert len(outline) == 1 and list(outline[0].get_xdata()) == [1, 0, -1, 0, 1]
    top = [ln for ln in ax.lines if ln.get_label() == "highest loss in the ε-ball"]
    assert len(top) == 1 and (top[0].get_xdata()[0], top[0].get_ydata()[0]) == (1.0, 0.0)
    assert isinstance(ax.collections[0].norm, matplotlib.colors.LogNorm)
    assert "log scale" in fig.axes[1].get_ylabel()
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {"ε-ball (‖δ‖∞ ≤ ε)", "highest loss in the ε-ball"}
    narrow = viz.plot_loss_surface({"model": surface(np.linspace(1.9, 2.2, 25).reshape(5, 5))}, index=0)
    drawn(narrow)
    ticks = [t.get_text() for t in narrow.axes[1].get_yticklabels()]
    assert len(ticks) == 4 and ticks[0] == "1.9" and not any("10^" in t or "times" in t for t in ticks)  # within a decade
    fig = viz.plot_loss_surface({"model": surface(np.ones((5, 5)))}, index=0, log=False)  # flat, linear colours
    assert not isinstance(fig.axes[0].collections[0].norm, matplotlib.colors.LogNorm)
