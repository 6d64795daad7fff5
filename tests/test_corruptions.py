"""The corruption suite: outputs in [0,1], seeded and side-effect free, monotone in severity, checked input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advlib import corruptions, viz  # noqa: E402
from advlib.corruptions import CORRUPTIONS, LEVELS, SEVERITIES  # noqa: E402
from advlib.evaluate import batched_accuracy  # noqa: E402

NAMES = list(CORRUPTIONS)
RANDOM = ["gaussian_noise", "sensor_noise"]  # the corruptions that draw random numbers


def images(shape=(6, 1, 28, 28), seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_registry_and_table_agree():
    assert set(CORRUPTIONS) == set(SEVERITIES) == {"gaussian_noise", "sensor_noise", "blur", "contrast"}
    assert all(len(levels) == len(LEVELS) for levels in SEVERITIES.values())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (2, 3, 16, 12), (1, 1, 4, 4)])
def test_output_in_box_same_shape_and_dtype_new_tensor(name, shape):
    for dtype in (torch.float32, torch.float64):
        x = images(shape).to(dtype)
        x[0, 0, 0, 0], x[-1, -1, -1, -1] = 0.0, 1.0  # pixels at the edges of the box
        before = x.clone()
        for s in LEVELS:
            out = corruptions.corrupt(x, name, s, seed=s)
            assert out.shape == x.shape and out.dtype == x.dtype
            assert out.min() >= 0 and out.max() <= 1
            assert out.data_ptr() != x.data_ptr()
        assert torch.equal(x, before)  # the input is left alone


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_and_global_rng_untouched(name):
    x = images()
    state = torch.random.get_rng_state()
    a = corruptions.corrupt(x, name, 3, seed=7)
    b = corruptions.corrupt(x, name, 3, seed=7)
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(0)
    c = corruptions.corrupt(x, name, 3, seed=7)
    torch.manual_seed(1)
    assert torch.equal(corruptions.corrupt(x, name, 3, seed=7), c)  # independent of the global seed


@pytest.mark.parametrize("name", RANDOM)
def test_different_seeds_differ(name):
    x = images()
    assert not torch.equal(corruptions.corrupt(x, name, 3, seed=0), corruptions.corrupt(x, name, 3, seed=1))


@pytest.mark.parametrize("name", RANDOM)
def test_explicit_generator_and_global_rng(name):
    x = images()
    g = torch.Generator().manual_seed(5)
    assert torch.equal(CORRUPTIONS[name](x, 2, g), corruptions.corrupt(x, name, 2, seed=5))
    torch.manual_seed(3)
    a = CORRUPTIONS[name](x, 2)  # generator None: the global generator, as torch's own functions do
    torch.manual_seed(3)
    assert torch.equal(CORRUPTIONS[name](x, 2), a)


@pytest.mark.parametrize("name", NAMES)
def test_severity_increases_the_change(name):
    for x in (images(), images((4, 3, 16, 16), seed=1)):
        change = [(corruptions.corrupt(x, name, s, seed=0) - x).abs().mean().item() for s in LEVELS]
        assert all(lo < hi for lo, hi in zip(change, change[1:])), change


def test_contrast_keeps_the_mean_of_each_image():
    x = 0.5 + 0.3 * (images((5, 3, 10, 10)) - 0.5)  # mid-grey: no pixel reaches the clamp
    for s in LEVELS:
        out = corruptions.contrast(x, s)
        assert torch.allclose(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)
        assert torch.allclose(out.mean((2, 3)), x.mean((2, 3)), atol=1e-6)  # per channel too
        assert out.std() < x.std()


@pytest.mark.parametrize("size", [28, 5, 2])
def test_blur_of_a_constant_image_is_the_constant(size):
    x = torch.full((2, 1, size, size), 0.37)
    for s in LEVELS:
        assert torch.allclose(corruptions.blur(x, s), x, atol=1e-6)


def model_with_modes(start_training: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 2), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 13 * 13, 10))
    model.train(start_training)
    model[2].eval()  # a submodule in another mode than its parent must keep it
    return model


@pytest.mark.parametrize("start_training", [True, False])
def test_accuracy_under_corruptions(start_training):
    model = model_with_modes(start_training)
    x, y = images((20, 1, 28, 28)), torch.arange(20) % 10
    state = torch.random.get_rng_state()
    table = corruptions.accuracy_under_corruptions(model, x, y, severities=(1, 5), batch_size=7, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert list(table) == NAMES and all(list(v) == [1, 5] for v in table.values())
    assert model.training == start_training and model[1].training == start_training and not model[2].training
    assert all(p.grad is None for p in model.parameters())
    for name in NAMES:
        for s in (1, 5):
            x_c = corruptions.corrupt(x, name, s, seed=0)
            assert table[name][s] == batched_accuracy(model, x_c, y)  # whatever the batch size
    one = corruptions.accuracy_under_corruptions(model, x, y, names="blur", severities=[2], progress=False)
    assert list(one) == ["blur"] and list(one["blur"]) == [2]


def test_corruption_sizes():
    x = images()
    sizes = corruptions.corruption_sizes(x, severities=(1, 5))
    assert list(sizes) == NAMES
    for name in NAMES:
        for s in (1, 5):
            d = sizes[name][s]
            assert 0 < d["linf"] <= 1 and d["l2"] >= d["linf"]
        assert sizes[name][5]["l2"] > sizes[name][1]["l2"]
    x_c = corruptions.corrupt(x, "contrast", 5)
    assert torch.allclose(corruptions.linf_size(x, x_c), (x_c - x).abs().amax((1, 2, 3)))
    assert torch.allclose(corruptions.l2_size(x, x_c), (x_c - x).flatten(1).norm(dim=1))


@pytest.mark.parametrize("call, match", [
    (lambda x: corruptions.corrupt(x, "fog", 1), "gaussian_noise, sensor_noise, blur, contrast"),
    (lambda x: corruptions.corrupt(x, "blur", 0), "1, 2, 3, 4, 5"),
    (lambda x: corruptions.corrupt(x, "blur", 6), "1, 2, 3, 4, 5"),
    (lambda x: corruptions.corrupt(x, "blur", 2.0), "1, 2, 3, 4, 5"),
    (lambda x: corruptions.corrupt(x, "blur", True), "1, 2, 3, 4, 5"),
    (lambda x: corruptions.gaussian_noise(x, 9), "1, 2, 3, 4, 5"),
    (lambda x: corruptions.corrupt(x, "contrast", 1, seed=-1), "seed"),
    (lambda x: corruptions.corrupt(x[0], "blur", 1), r"unsqueeze\(0\)"),
    (lambda x: corruptions.corrupt(x * 255, "blur", 1), r"\[0,1\]"),
    (lambda x: corruptions.corrupt((x * 255).byte(), "blur", 1), "255"),
    (lambda x: corruptions.corruption_sizes(x, names=[]), "at least one"),
    (lambda x: corruptions.corruption_sizes(x, names=["blur", "snow"]), "contrast"),
    (lambda x: corruptions.accuracy_under_corruptions(torch.nn.Flatten(), x, torch.zeros(6).long(),
                                                      severities=(1, 7)), "1, 2, 3, 4, 5"),
])
def test_bad_input_says_what_is_valid(call, match):
    with pytest.raises(ValueError, match=match):
        call(images())


def test_corruption_examples_figure():
    fig = viz.corruption_examples(images((3, 1, 28, 28)), names=["blur", "contrast"], severities=(1, 3, 5), index=1)
    axes = fig.axes
    assert len(axes) == 2 * 4
    assert [a.get_title() for a in axes[:4]] == ["clean", "severity 1", "severity 3", "severity 5"]
    assert axes[0].get_ylabel() == "blur" and axes[4].get_ylabel() == "contrast"
    assert all(not a.get_xticks().size and not a.get_yticks().size for a in axes)
    assert fig._suptitle is not None
    plt.close(fig)
    plt.close(viz.corruption_examples(images((1, 3, 8, 8))[0]))  # one colour image (C, H, W)


def test_plot_corruption_accuracy():
    table = {"natural": {"blur": {1: 0.9, 5: 0.5}, "contrast": {1: 0.8, 5: 0.0}},
             "robust": {"blur": {1: 0.85, 5: 0.6}, "contrast": {1: 0.7, 5: 0.2}}}
    fig = viz.plot_corruption_accuracy(table, adversarial={"natural": 0.0, "robust": 0.7}, eps=0.3,
                                       clean={"natural": 0.99, "robust": 0.97}, n=100)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", "blur", "contrast", "adversarial (ε=0.3)"]
    assert "severity 5" in ax.get_title()
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("0") == 2  # the bars at 0% carry their value
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["natural", "robust"]
    plt.close(fig)
    fig = viz.plot_corruption_accuracy(table, severity=1, adversarial={"natural": 0.1, "robust": 0.4}, eps="8/255")
    assert "adversarial (ε=8/255)" in [t.get_text() for t in fig.axes[0].get_xticklabels()]
    plt.close(fig)
    with pytest.raises(ValueError, match="eps="):
        viz.plot_corruption_accuracy(table, adversarial={"natural": 0.0})
