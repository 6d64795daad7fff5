"""Figures and the computation behind the epsilon slider, as plain functions.

:class:`FGSMExplorer` caches the model's predictions and the loss gradient's sign on a fixed
test subset. The FGSM example :math:`x + \\varepsilon\\,\\mathrm{sign}(\\nabla_x J)` then costs
one clamp and one forward pass for any epsilon, so the slider stays responsive on a laptop CPU.
"""
from __future__ import annotations

import io
import textwrap
from collections import OrderedDict
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import matplotlib.transforms as mtransforms
from matplotlib import patheffects
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks, stats

EPS_LABEL = r"$\varepsilon$ ($L_\infty$, pixel range [0, 1])"


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, their softmax confidence), in eval mode (restored after)."""
    preds, confs = [], []
    with attacks.model_mode(model, "eval"):
        for i in range(0, len(x), batch_size):
            p = F.softmax(model(x[i:i + batch_size]), 1)
            c, k = p.max(1)
            preds.append(k)
            confs.append(c)
    return torch.cat(preds), torch.cat(confs)


class FGSMExplorer:
    """FGSM at any epsilon on a fixed subset, with cached gradients and results."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: Optional[Sequence[str]] = None,
                 show: Sequence[int] = (0, 1, 2, 3, 4, 5), cache_size: int = 64):
        attacks.check_inputs(x, y)
        self.model, self.x, self.y = model, x, y
        self.classes = list(classes) if classes is not None else [str(i) for i in range(10)]
        self.show = list(show)
        with attacks.model_mode(model, "eval"), attacks.frozen(model):
            g, _, _ = attacks.input_gradient(model, x, y)
        self.grad_sign = g.sign()
        self.clean_pred, self.clean_conf = predict(model, x)
        self.clean_accuracy = (self.clean_pred == y).float().mean().item()
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def adversarial(self, eps: float) -> torch.Tensor:
        attacks.check_inputs(self.x, eps=eps)
        return (self.x + eps * self.grad_sign).clamp(0, 1)

    def at(self, eps: float) -> dict:
        """Accuracy and per-image predictions at ``eps`` (cached)."""
        key = round(float(eps), 6)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        x_adv = self.adversarial(eps)
        pred, conf = predict(self.model, x_adv)
        out = {"eps": key, "accuracy": (pred == self.y).float().mean().item(), "pred": pred, "conf": conf,
               "x_adv": x_adv[self.show]}
        self._cache[key] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def readout(self, eps: float) -> str:
        r = self.at(eps)
        fooled = ((r["pred"] != self.y) & (self.clean_pred == self.y)).sum().item()
        return (f"ε = {eps:.3f}: FGSM accuracy {100 * r['accuracy']:.1f}% on {len(self.y)} test images "
                f"(clean {100 * self.clean_accuracy:.1f}%; {fooled} correct predictions flipped)")

    def figure(self, eps: float):
        """Original, perturbation and adversarial image for the ``show`` images, each with its prediction
        and confidence (see :func:`image_grid`)."""
        r = self.at(eps)
        return image_grid(self.x[self.show], r["x_adv"], self.y[self.show],
                          self.clean_pred[self.show], self.clean_conf[self.show],
                          r["pred"][self.show], r["conf"][self.show], self.classes, eps)

    def png(self, eps: float) -> bytes:
        fig = self.figure(eps)
        data = fig_to_png(fig)
        plt.close(fig)
        return data


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    a = img.detach().cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def image_grid(x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, conf: torch.Tensor,
               pred_adv: torch.Tensor, conf_adv: torch.Tensor, classes: Sequence[str], eps: float,
               size: float = 1.6):
    """A 3-row grid: originals, perturbations δ = x_adv − x, adversarial images,
    titled with prediction and confidence (green when right, red when wrong).

    Grey images: δ in blue (−ε) to red (+ε) with a colour bar in pixel units; white is δ = 0, where the [0, 1]
    clamp cancelled the step (a black pixel pushed darker, a white one pushed brighter); paler is a step the
    clamp cut short. Colour images: :func:`perturbation_image` (δ amplified ×1/(2ε), the factor in the row's
    label, grey where nothing changed), without a colour bar (each pixel mixes three channels' δ)."""
    n = len(x)
    fig, axes = plt.subplots(3, n, figsize=(size * n + 0.8, size * 3.3), squeeze=False, layout="constrained")
    delta = x_adv - x
    scale = max(float(eps), 1e-6)
    gray = x.shape[1] == 1
    im = None
    for j in range(n):
        for i, (img, title, ok) in enumerate([
            (x[j], f"{classes[pred[j]]} ({100 * conf[j]:.0f}%)", pred[j] == y[j]),
            (None, None, None),
            (x_adv[j], f"{classes[pred_adv[j]]} ({100 * conf_adv[j]:.0f}%)", pred_adv[j] == y[j]),
        ]):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 1:
                if gray:
                    im = ax.imshow(delta[j, 0].detach().cpu().numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
                else:
                    ax.imshow(perturbation_image(delta[j], scale))
                continue
            ax.imshow(_to_hwc(img), cmap="gray" if gray else None, vmin=0, vmax=1)
            ax.set_title(title, fontsize=9, color="green" if ok else "red")
    axes[0, 0].set_ylabel("original", fontsize=9)
    axes[1, 0].set_ylabel("perturbation δ\n" + ("(pixel units)" if gray else amplified_label(scale)), fontsize=9)
    axes[2, 0].set_ylabel(f"adversarial\nε = {eps:.3f}", fontsize=9)
    if im is not None:  # grey images only: a colour bar in pixel units
        cb = fig.colorbar(im, ax=list(axes[1]), shrink=0.9, pad=0.01)
        cb.set_ticks([-scale, 0, scale])
        cb.set_ticklabels([f"−{scale:.3g}", "0", f"+{scale:.3g}"])
        cb.ax.tick_params(labelsize=8)
    return fig


def fig_to_png(fig, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def plot_accuracy_vs_eps(eps: Sequence[float], series: dict[str, Sequence[float]], title: str = "",
                         ax=None, markers: bool = True, mark_eps: Optional[float] = None, n: Optional[int] = None):
    """Accuracy (%) against epsilon, one line per series; with ``n`` (the number of images) a shaded
    band shows each point's 95% Wilson interval. The legend sits beside the axes, off the data."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 4))
    for name, acc in series.items():
        line, = ax.plot(list(eps), [100 * a for a in acc], marker="o" if markers else None, ms=4, label=name)
        if n:
            band = [stats.interval(min(max(a, 0.0), 1.0), n) for a in acc]
            ax.fill_between(list(eps), [100 * lo for lo, _ in band], [100 * hi for _, hi in band],
                            color=line.get_color(), alpha=0.15, lw=0)
    if mark_eps is not None:
        ax.axvline(mark_eps, color="gray", ls=":", lw=1)
    ax.set_xlabel(EPS_LABEL)
    ax.set_ylabel("accuracy (%)" + (f", 95% interval shaded ({n} images)" if n else ""))
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_history(histories: dict[str, list[dict]], keys: Sequence[str] = ("holdout_clean", "holdout_pgd"),
                 labels: Optional[dict] = None, title: str = "", n: Optional[int] = None,
                 references: Optional[dict[str, float]] = None, zoom: bool = False):
    """Per-epoch held-out accuracies of several training runs. With ``n`` (the held-out images) a shaded band
    shows each point's 95% Wilson interval; ``references`` (``{label: accuracy}``) draws each as a labelled
    horizontal line (e.g. a teacher measured the same way); ``zoom=True`` fits the y-axis to the data, the
    intervals and the references instead of 0-100%. The legend sits below the axes, off the data."""
    labels = labels or {"holdout_clean": "clean", "holdout_pgd": "PGD", "holdout_fgsm": "FGSM"}
    fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    styles = ["-", "--", ":", "-."]
    shown = []
    for c, (name, hist) in enumerate(histories.items()):
        for s, k in enumerate(keys):
            ep = [h["epoch"] for h in hist]
            acc = [h[k] for h in hist]
            ax.plot(ep, [100 * a for a in acc], styles[s % 4], color=f"C{c}", marker="o", ms=3,
                    label=f"{name}: {labels.get(k, k)}")
            shown += acc
            if n:
                band = [stats.interval(min(max(a, 0.0), 1.0), n) for a in acc]
                ax.fill_between(ep, [100 * lo for lo, _ in band], [100 * hi for _, hi in band], color=f"C{c}",
                                alpha=0.15, lw=0)
                shown += [v for b in band for v in b]
    for r, (label, acc) in enumerate((references or {}).items()):
        ax.axhline(100 * acc, color="0.25", ls=(0, (5, 2 + 2 * r)), lw=1.2, label=label)
        shown.append(acc)
    ax.set_xlabel("epoch")
    epochs = sorted({h["epoch"] for hist in histories.values() for h in hist})
    if len(epochs) <= 12 and all(float(e).is_integer() for e in epochs):
        ax.set_xticks(epochs)  # whole epochs: one tick each
    ax.set_ylabel("held-out accuracy (%)" + (f"\n95% interval shaded ({n} images)" if n else ""))
    if zoom and shown:
        lo, hi = 100 * min(shown), 100 * max(shown)
        pad = max(1.0, 0.08 * (hi - lo))
        ax.set_ylim(max(-2, lo - pad), min(102, hi + pad))
    else:
        ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2 if len(ax.lines) < 9 else 3,
              frameon=False)
    if title:
        ax.set_title(title)
    return fig


def plot_tradeoff(points: dict[str, tuple[float, float]], xlabel: str = "clean accuracy (%)",
                  ylabel: str = "robust accuracy (%)", title: str = "",
                  intervals: Optional[dict[str, tuple[tuple[float, float], tuple[float, float]]]] = None):
    """One point per model, ``{label: (clean accuracy, robust accuracy)}`` (fractions), each annotated with its
    label: a trade-off such as TRADES' β sweep. With ``intervals`` (``{label: ((low, high) of the clean
    accuracy, (low, high) of the robust one)}``, e.g. the results' Wilson intervals) each point carries its 95%
    intervals as error bars in both directions (the axes' labels say so). The labels sit up and to the right of
    their points, between the error bars, and the axes leave room for them."""
    fig, ax = plt.subplots(figsize=(6, 4.4), layout="constrained")
    xy = np.array([[100 * x, 100 * y] for x, y in points.values()]).reshape(-1, 2)
    span = np.maximum(np.ptp(xy, 0) if len(xy) else np.ones(2), 1.0)
    for k, (label, (x, y)) in enumerate(points.items()):
        iv = (intervals or {}).get(label)
        err = ([[100 * (x - iv[0][0])], [100 * (iv[0][1] - x)]], [[100 * (y - iv[1][0])], [100 * (iv[1][1] - y)]]) \
            if iv else (None, None)
        ax.errorbar([100 * x], [100 * y], xerr=err[0], yerr=err[1], fmt="o", ms=7, color=f"C{k}", capsize=3, lw=1)
        near = int((np.abs(xy[:k] - xy[k]) < 0.06 * span).all(1).sum())  # earlier labels at (nearly) the same place
        ax.annotate(label, (100 * x, 100 * y), textcoords="offset points", xytext=(7, 7 + 14 * near), fontsize=10)
    ax.margins(x=0.25, y=0.2)
    suffix = ", 95% interval" if intervals else ""
    ax.set_xlabel(xlabel + suffix)
    ax.set_ylabel(ylabel + suffix)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    return fig


def plot_accuracy_vs_steps(curves: dict[str, Sequence[float]], attacks: Sequence[str], title: str = "",
                           xlabel: str = "attack", ylabel: str = "accuracy (%)"):
    """Accuracy (%) under a sequence of attacks (``attacks``: FGSM, PGD-1, PGD-2, ...), one line per model
    (``{model: accuracies}``), the last point annotated. The legend sits below the axes."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, c in curves.items():
        ax.plot(range(len(c)), [100 * v for v in c], marker="o", label=name)
        ax.annotate(f"{100 * c[-1]:.1f}", (len(c) - 1, 100 * c[-1]), textcoords="offset points", xytext=(6, -3),
                    fontsize=8)
    ax.set_xticks(range(len(attacks)))
    ax.set_xticklabels(attacks)
    _labels_and_legend_below(ax, xlabel, ylabel, title, ncol=2)
    return fig


def plot_monitor_vs_test(history: list[dict], n_monitor: int, points: dict[str, tuple[int, float]],
                         key: str = "holdout_pgd", monitor: str = "PGD-10", test_attack: str = "PGD-20",
                         ylabel: str = "robust accuracy (%)", title: str = ""):
    """A training run's held-out monitor per epoch (``history[i][key]``, attack ``monitor`` on ``n_monitor``
    images, with its 95% interval) and checkpoints measured on the test set, ``{checkpoint: (epoch, accuracy)}``
    (``"best"``, ``"last"``), as separate markers. The legend sits below the axes."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ep = [h["epoch"] for h in history]
    mon = [100 * h[key] for h in history]
    half = [100 * stats.half_width(h[key], n_monitor) for h in history]
    ax.errorbar(ep, mon, yerr=half, marker="o", capsize=2,
                label=f"held-out monitor ({monitor}, {n_monitor} images, 95% interval)")
    for (ck, (e, acc)), mk in zip(points.items(), ("s", "D", "^", "v")):
        ax.scatter([e], [100 * acc], marker=mk, s=60, zorder=3,
                   label=f"{ck} checkpoint on the test set ({test_attack}): {100 * acc:.1f}%")
    _labels_and_legend_below(ax, "epoch", ylabel, title, fontsize=8)
    return fig


def _labels_and_legend_below(ax, xlabel: str, ylabel: str, title: str, **legend) -> None:
    """The axes' labels, a small title, a light grid and the legend below the axes, off the data."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, **legend)
    ax.figure.tight_layout()


def plot_training_trace(traces: dict[str, dict[str, list[dict]]], n: Optional[int] = None,
                        keys: Sequence[str] = ("holdout_clean", "holdout_fgsm", "holdout_pgd"), title: str = ""):
    """Held-out accuracies during training, monitored within epochs (``TrainConfig.monitor_every``): one
    row of panels per entry of ``traces`` (``{row: {run: trace}}``, e.g. one row per ε), one panel per
    run, one line per accuracy; with ``n`` (held-out images) a shaded 95% band. Legend below the panels."""
    labels = {"holdout_clean": "clean", "holdout_fgsm": "FGSM", "holdout_pgd": "PGD-10"}
    rows, cols = len(traces), max(len(v) for v in traces.values())
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows + 0.6), squeeze=False, sharey=True)
    for i, (row, runs) in enumerate(traces.items()):
        for j in range(cols):
            ax = axes[i, j]
            if j >= len(runs):
                ax.axis("off")
                continue
            name, trace = list(runs.items())[j]
            ep = [p["epoch"] for p in trace]
            for k, key in enumerate(keys):
                acc = [p[key] for p in trace]
                line, = ax.plot(ep, [100 * a for a in acc], color=f"C{k}", lw=1.4, label=labels.get(key, key))
                if n:
                    band = [stats.interval(min(max(a, 0.0), 1.0), n) for a in acc]
                    ax.fill_between(ep, [100 * lo for lo, _ in band], [100 * hi for _, hi in band],
                                    color=line.get_color(), alpha=0.15, lw=0)
            ax.set_title(f"{name}\n{row}", fontsize=9)
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            if i == rows - 1:
                ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel("held-out accuracy (%)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def eps_gallery(rows: dict[str, tuple], eps_values: Sequence[float], classes: Optional[Sequence[str]] = None,
                size: float = 1.25):
    """A static gallery of adversarial examples: one row per entry ``{label: (model, attack, x, y)}``
    (``attack(model, x, y, eps)``, one image ``x`` of shape (1, C, H, W)), one column per ε (ε = 0 is
    the clean image), each titled with the model's prediction and confidence (green right, red wrong)."""
    classes = list(classes) if classes is not None else [str(i) for i in range(10)]
    fig, axes = plt.subplots(len(rows), len(eps_values), figsize=(size * len(eps_values) + 1.4, size * 1.2 * len(rows)),
                             squeeze=False)
    for i, (label, (model, attack, x, y)) in enumerate(rows.items()):
        for j, eps in enumerate(eps_values):
            x_adv = attack(model, x, y, eps) if eps > 0 else x
            pred, conf = predict(model, x_adv)
            ax = axes[i, j]
            ax.imshow(_to_hwc(x_adv[0]), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{classes[pred[0]]} ({100 * conf[0]:.0f}%)", fontsize=8,
                         color="green" if pred[0] == y[0] else "red")
            if i == 0:
                ax.text(0.5, 1.32, f"ε = {eps:g}", transform=ax.transAxes, ha="center", fontsize=9)
        axes[i, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def amplification(eps: float) -> float:
    """The factor k that :func:`perturbation_image` multiplies δ by: 1/(2ε), so that ±ε reaches black and white."""
    return 1 / (2 * max(float(eps), 1e-6))


def perturbation_image(delta: torch.Tensor, eps: float) -> np.ndarray:
    """A perturbation δ (C, H, W) as an image: each channel's δ·k + 0.5 with k = :func:`amplification` (ε), so that
    mid-grey is no change and black / white a full step of −ε / +ε in that channel (H, W, C, or H, W for one
    channel). Pixels where the [0, 1] clamp cut the step short show closer to grey."""
    return _to_hwc((delta * amplification(eps) + 0.5).clamp(0, 1))


def amplified_label(eps: float) -> str:
    """The label of a perturbation shown by :func:`perturbation_image`: its amplification written out."""
    return f"δ ×{amplification(eps):.3g} (+0.5)"


def perturbation_scale(panels: dict[str, tuple[torch.Tensor, torch.Tensor, float]], size: float = 1.25):
    """What an L∞ budget looks like on different data: one block of three rows per entry
    ``{label: (x, x_adv, eps)}``, one column per image: the clean images and the perturbed images, both as they
    are (true scale), then the perturbation δ = x_adv − x amplified by 1/(2ε), the factor written in the row's
    label (:func:`perturbation_image`: mid-grey is no change, black / white a full step of −ε / +ε per channel).
    No colour bar: on colour images each pixel mixes three channels' δ."""
    n = max(len(v[0]) for v in panels.values())
    fig = plt.figure(figsize=(size * n + 1.3, (3 * size + 0.45) * len(panels)), layout="constrained")
    for sub, (label, (x, x_adv, eps)) in zip(np.atleast_1d(fig.subfigures(len(panels), 1)), panels.items()):
        axes = sub.subplots(3, n, squeeze=False)
        gray = x.shape[1] == 1
        delta = x_adv - x
        for j in range(n):
            for a in axes[:, j]:
                a.set_xticks([])
                a.set_yticks([])
                if j >= len(x):
                    a.axis("off")
            if j < len(x):
                axes[0, j].imshow(_to_hwc(x[j]), cmap="gray" if gray else None, vmin=0, vmax=1)
                axes[1, j].imshow(_to_hwc(x_adv[j]), cmap="gray" if gray else None, vmin=0, vmax=1)
                axes[2, j].imshow(perturbation_image(delta[j], eps), cmap="gray" if gray else None, vmin=0, vmax=1)
        for a, row in zip(axes[:, 0], ("clean", "adversarial", "perturbation\n" + amplified_label(eps))):
            a.set_ylabel(row, fontsize=9)
        sub.suptitle(f"{label}: clean and adversarial images at true scale, perturbation amplified "
                     f"×{amplification(eps):.3g}", fontsize=10)
    return fig


def _wrap(label: str, width: int = 22) -> str:
    """A tick label broken into lines of at most ``width`` characters (at spaces), so that neighbours never overlap."""
    return textwrap.fill(label, width, break_long_words=False) if len(label) > width else label


BAR_LABEL_SIZE = 8  # points: the value written above each bar (the course's smallest font)


def plot_bars(table: dict[str, dict[str, float]], columns: Sequence[str], title: str = "",
              intervals: Optional[dict[str, dict[str, tuple]]] = None, n_images: Optional[dict[str, int]] = None):
    """Grouped bars: one group per row (model), one bar per column (attack), in %, each labelled with its
    value above its interval (a bar at 0% also gets a thick stroke on the axis in its colour, so it is seen);
    with ``intervals`` (``{row: {column: (low, high)}}``, e.g. :func:`advlib.evaluate.intervals`) each bar
    carries its 95% interval. The figure widens with the number of bars so that the labels (vertical,
    :data:`BAR_LABEL_SIZE` points) never overlap; long row names are wrapped; the legend sits below the axes.
    ``n_images`` (``{column: images}``, e.g. :func:`advlib.evaluate.image_counts`): when the columns were measured
    on different numbers of images, each legend entry names its count, so that a bar on 200 images is not read as
    one on 1,000."""
    rows = list(table)
    counts = {c: (n_images or {}).get(c) for c in columns}
    differ = len({v for v in counts.values() if v is not None}) > 1
    n_bars = len(rows) * len(columns)
    width = max(6.4, 1.2 + 0.2 * n_bars)
    fig, ax = plt.subplots(figsize=(width, 4.8), layout="constrained")
    w = 0.8 / len(columns)
    on_axis = mtransforms.offset_copy(ax.transData, fig, y=1.5, units="points")  # a 3-point stroke just above y = 0
    for j, c in enumerate(columns):
        vals = np.array([100 * table[r].get(c, np.nan) for r in rows], dtype=float)
        pos = np.arange(len(rows)) + (j - (len(columns) - 1) / 2) * w
        yerr = np.zeros((2, len(rows)))
        if intervals:
            iv = [intervals.get(r, {}).get(c) for r in rows]
            yerr = np.array([[v - 100 * i[0], 100 * i[1] - v] if i else [0, 0] for v, i in zip(vals, iv)]).T
            yerr = np.nan_to_num(np.clip(yerr, 0, None))
        label = f"{c} ({counts[c]:,} images)" if differ and counts[c] is not None else c
        bars = ax.bar(pos, vals, w, label=label, yerr=yerr if intervals else None, capsize=2, error_kw={"lw": 0.8})
        colour = bars.patches[0].get_facecolor()
        for p_, v, up in zip(pos, vals, yerr[1]):
            if not np.isfinite(v):
                continue
            ax.text(p_, v + up + 1.0, f"{v:.0f}", ha="center", va="bottom", rotation=90, fontsize=BAR_LABEL_SIZE)
            if v < 0.5:  # a zero-height bar: a thick stroke on the axis, in the bar's colour
                ax.plot([p_ - w / 2, p_ + w / 2], [0, 0], color=colour, lw=3, solid_capstyle="butt", transform=on_axis,
                        zorder=3)
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels([_wrap(r) for r in rows], fontsize=9)
    ax.set_ylabel("accuracy (%)" + (", 95% intervals" if intervals else ""))
    ax.set_ylim(0, 118)  # room for the labels above the highest interval
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    labels = ax.get_legend_handles_labels()[1]
    entry = 0.45 + 0.07 * max(map(len, labels))  # inches of one legend entry at 9 pt: handle, gap, its text
    ax.legend(fontsize=9, ncol=max(1, min(len(columns), int(width // entry))), loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.05 * max(
        r.count("\n") for r in map(_wrap, rows))), frameon=False)
    if title:
        ax.set_title(title)
    return fig


def plot_interval_width(ns: Sequence[int], accuracies: Sequence[float] = (0.1, 0.3, 0.5),
                        marks: Optional[dict[int, str]] = None, title: str = ""):
    """Half the width of the 95% Wilson interval (points) against the number of test images ``ns`` (log scale),
    one line per accuracy. ``marks`` (``{n: what}``) draws a dotted vertical line at each n, named on a scale
    above the axes, off the curves; the legend sits below the axes."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for p in accuracies:
        ax.plot(ns, [100 * stats.half_width(p, int(n)) for n in ns], marker="o", label=f"accuracy {p:.0%}")
    ax.set_xscale("log")
    if marks:
        for n in marks:
            ax.axvline(n, color="0.6", ls=":", lw=1)
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(marks), [_wrap(m, 14) for m in marks.values()], fontsize=8)
        top.minorticks_off()
    ax.set_xlabel("number of test images n")
    ax.set_ylabel("95% interval half-width (points)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=len(accuracies), frameon=False, fontsize=9)
    return fig


def plot_soft_labels(images: torch.Tensor, labels: torch.Tensor, probs: dict[str, tuple[torch.Tensor, torch.Tensor]],
                     classes: Sequence[str], eps_text: str = "8/255"):
    """Soft labels on natural vs adversarial inputs: one column per image (the image on top), one row of
    bar charts per model with its probabilities on x (grey) and on its own adversarial x' (red); the true
    class is marked by a green dotted line (in the legend) and its name in green. Class names are written in
    full under the bottom row (the rows share them). ``probs``: ``{model name: (p(x), p(x'))}``, each (n, classes)."""
    n, rows = len(images), len(probs)
    fig, axes = plt.subplots(1 + rows, n, figsize=(2.1 * n + 0.9, 2.2 + 1.9 * rows), layout="constrained",
                             gridspec_kw={"height_ratios": [1.0] + [1.25] * rows}, squeeze=False)
    idx = np.arange(len(classes))
    for j in range(n):
        true = int(labels[j])
        axes[0, j].imshow(_to_hwc(images[j]), interpolation="nearest")
        axes[0, j].set_title(f"true: {classes[true]}", fontsize=9)
        axes[0, j].axis("off")
        for i, (name, (p_nat, p_adv)) in enumerate(probs.items(), start=1):
            ax = axes[i, j]
            ax.bar(idx - 0.2, 100 * p_nat[j].cpu().numpy(), 0.4, color="0.55", label="natural x")
            ax.bar(idx + 0.2, 100 * p_adv[j].cpu().numpy(), 0.4, color="tab:red",
                   label=f"adversarial x' (PGD, ε = {eps_text})")
            ax.axvline(true, color="tab:green", lw=1.2, ls=":", label="true class")
            ax.set_ylim(0, 100)
            ax.set_xticks(idx)
            ax.tick_params(axis="both", labelsize=8)
            if i < rows:
                ax.set_xticklabels([])
            else:
                ax.set_xticklabels(classes, rotation=90, fontsize=8)
                ax.get_xticklabels()[true].set_color("tab:green")
            if j == 0:
                ax.set_ylabel(f"{name}\nprobability (%)", fontsize=9)
            else:
                ax.set_yticklabels([])
    handles, labels_ = axes[1, 0].get_legend_handles_labels()  # the line first: put it after the bars
    fig.legend(handles[1:] + handles[:1], labels_[1:] + labels_[:1], loc="outside lower center", ncol=3, fontsize=9,
               frameon=False)
    return fig


# --------------------------------------------------------------------------- distribution shift and loss landscapes
# (advlib.corruptions and advlib.landscape)


def corruption_examples(x: torch.Tensor, names: Optional[Sequence[str]] = None,
                        severities: Sequence[int] = (1, 2, 3, 4, 5), seed: int = 0, index: int = 0, size: float = 1.3):
    """One image under each corruption of :mod:`advlib.corruptions` (rows) at each severity (columns), the
    clean image first in every row. ``x``: a batch (N, C, H, W), of which image ``index`` is shown, or one
    image (C, H, W); ``names=None``: every corruption."""
    from . import corruptions  # on first use: it imports torchvision (two seconds), which no other figure needs

    img = x[index:index + 1] if x.dim() == 4 else x.unsqueeze(0)
    names, severities = corruptions.names_and_severities(names, severities)
    fig, axes = plt.subplots(len(names), 1 + len(severities), squeeze=False,
                             figsize=(size * (1 + len(severities)), size * 1.1 * len(names) + 0.5))
    gray = img.shape[1] == 1
    for i, name in enumerate(names):
        shown = [img] + [corruptions.corrupt(img, name, s, seed) for s in severities]
        for j, (ax, im) in enumerate(zip(axes[i], shown)):
            ax.imshow(_to_hwc(im[0]), cmap="gray" if gray else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("clean" if j == 0 else f"severity {severities[j - 1]}", fontsize=9)
        axes[i, 0].set_ylabel(name.replace("_", " "), fontsize=9)
    fig.suptitle(f"Common corruptions by severity (seed {seed})", fontsize=10)
    fig.tight_layout()
    return fig


def _eps_text(eps) -> str:
    return eps if isinstance(eps, str) else f"{eps:.3g}"


def plot_corruption_accuracy(table: dict[str, dict[str, dict[int, float]]],
                             adversarial: Optional[dict[str, float]] = None, eps=None,
                             severity: Optional[int] = None, clean: Optional[dict[str, float]] = None,
                             n: Optional[int] = None, title: str = ""):
    """Accuracy under each corruption at one ``severity`` (default: the highest every model was measured at),
    grouped by corruption, one bar per model, each bar labelled with its value (see :func:`plot_bars`).

    ``table``: ``{model: advlib.corruptions.accuracy_under_corruptions(...)}``. ``clean`` (``{model: accuracy}``)
    adds a first group "clean"; ``adversarial`` (``{model: robust accuracy}``) a last group
    "adversarial (ε=…)", whose ε comes from ``eps`` (a number or a text such as ``"8/255"``). With ``n``, the
    number of test images, each bar carries its 95% Wilson interval."""
    if not table:
        raise ValueError("table is empty: pass {model: accuracy_under_corruptions(model, x, y)}.")
    if adversarial is not None and eps is None:
        raise ValueError("adversarial accuracies need eps= (a number or a text such as '8/255') for their label.")
    names = list(dict.fromkeys(c for per_model in table.values() for c in per_model))
    if severity is None:
        severity = min(max(per_model[c]) for per_model in table.values() for c in per_model)
    rows: dict[str, dict[str, float]] = {}
    if clean is not None:
        rows["clean"] = dict(clean)
    for c in names:
        rows[c.replace("_", " ")] = {m: per_model[c][severity] for m, per_model in table.items()
                                     if severity in per_model.get(c, {})}
    if adversarial is not None:
        rows[f"adversarial (ε={_eps_text(eps)})"] = dict(adversarial)
    intervals = {r: {m: stats.interval(a, n) for m, a in v.items()} for r, v in rows.items()} if n else None
    return plot_bars(rows, list(table), title=title or f"Accuracy under common corruptions, severity {severity}",
                     intervals=intervals)


def _panels(k: int, width: float = 4.2, height: float = 3.4, **subplot_kw):
    """A figure with ``k`` panels side by side (a list of axes)."""
    fig = plt.figure(figsize=(width * k, height))
    return fig, [fig.add_subplot(1, k, i + 1, **subplot_kw) for i in range(k)]


def _legend_below(fig, ax) -> None:
    """The legend of ``ax`` below every panel, off the data."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))


def _pick(values: torch.Tensor, index: Optional[int]) -> np.ndarray:
    """Image ``index`` of per-image values, or their mean over images when ``index`` is None."""
    return (values.mean(0) if index is None else values[index]).detach().cpu().numpy()


def _which(index: Optional[int], n: int) -> str:
    return f"mean over {n} images" if index is None else f"image {index}"


GRADIENT_AXIS = "along sign of gradient (×ε)"
RANDOM_AXIS = "random direction (×ε)"


def _d1_label(result: dict) -> str:
    return GRADIENT_AXIS if result["direction"] == "gradient" else "first " + RANDOM_AXIS


def in_ball(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which points (a, b) of a :func:`advlib.landscape.loss_surface` plane lie in the ε-ball: both directions
    are ±1 in every pixel, so x + aε·d1 + bε·d2 moves some pixel by (|a| + |b|)·ε, and the L∞ ball is the diamond
    |a| + |b| ≤ 1 (the square's corners are 2ε away)."""
    return np.abs(a) + np.abs(b) <= 1 + 1e-9


def plot_loss_surface(surfaces: dict[str, dict], index: Optional[int] = 0, kind: str = "contour", log: bool = True):
    """The cross-entropy around image ``index`` (None: the mean over images), one panel per model, from
    ``{model: advlib.landscape.loss_surface(...)}``: filled contours (``kind="contour"``) or a 3-D surface
    (``"3d"``), each with its colour bar. The ε-ball is outlined (:func:`in_ball`: only the diamond |a| + |b| ≤ 1
    of the plane lies in the threat model) and the highest loss inside it is marked. ``log``: colours (3-D: the
    height) on a log scale, since the loss at the square's corners, 2ε away, can dwarf the loss inside the ball.

    Inside the ball, a model whose gradient is informative has its highest loss near (1, 0), the FGSM point,
    and its lowest towards (−1, 0); a surface flat or jagged along the gradient says the gradient is masked.
    Outside it, the gradient at x is no guide: the loss need not grow along it over steps of 2ε."""
    if kind not in ("contour", "3d"):
        raise ValueError(f"kind must be 'contour' or '3d'; got {kind!r}.")
    fig, axes = _panels(len(surfaces), 4.8, 4.2, **({"projection": "3d"} if kind == "3d" else {}))
    for ax, (name, r) in zip(axes, surfaces.items()):
        a, b = r["a"].numpy(), r["b"].numpy()
        ga, gb = np.meshgrid(a, b, indexing="ij")
        z = _pick(r["loss"], index)
        inside = in_ball(ga, gb)
        top = np.unravel_index(np.where(inside, z, -np.inf).argmax(), z.shape)
        if log:  # a loss of exactly 0 (a saturated softmax) is drawn at the smallest positive value shown
            z = np.maximum(z, max(float(z[z > 0].min()) if (z > 0).any() else 1e-12, float(z.max()) * 1e-9))
        lo, hi = float(z.min()), float(z.max())
        hi = hi if hi - lo > 1e-6 * (1 + abs(lo)) else lo * 10 if log else lo + 1.0  # a flat surface: one colour
        label = "cross-entropy" + (" (log scale)" if log else "")
        if kind == "3d":
            height = np.log10(z) if log else z
            im = ax.plot_surface(ga, gb, height, cmap="viridis", linewidth=0, antialiased=True)
            ax.set_zlabel("log₁₀ cross-entropy" if log else "cross-entropy", fontsize=8)
            ax.plot([1, 0, -1, 0, 1], [0, 1, 0, -1, 0], [float(height.min())] * 5, "k--", lw=1, label="ε-ball (‖δ‖∞ ≤ ε)")
            fig.colorbar(im, ax=ax, label=("log₁₀ " if log else "") + "cross-entropy", shrink=0.7, pad=0.15)
        else:
            levels = np.geomspace(lo, hi, 22) if log else np.linspace(lo, hi, 21)
            im = ax.contourf(ga, gb, z, levels=levels, cmap="viridis", norm=LogNorm(lo, hi) if log else None)
            edge = [patheffects.withStroke(linewidth=3, foreground="0.15")]  # white lines seen on light colours too
            ax.plot([1, 0, -1, 0, 1], [0, 1, 0, -1, 0], color="white", ls="--", lw=1.3, path_effects=edge,
                    label="ε-ball (‖δ‖∞ ≤ ε)")
            ax.plot([0], [0], "w+", ms=10, mew=1.8, ls="none", path_effects=edge, label="x (clean image)")
            ax.plot([a[top[0]]], [b[top[1]]], marker="X", color="tab:red", mec="white", ms=10, ls="none", clip_on=False,
                    zorder=3, label="highest loss in the ε-ball")
            cb = fig.colorbar(im, ax=ax, label=label)
            if log:
                ticks = _log_ticks(lo, hi)
                cb.set_ticks(ticks)
                cb.ax.yaxis.set_major_formatter(LogFormatterSciNotation() if _decades(ticks) else
                                                FuncFormatter(lambda v, _: f"{v:.3g}"))
                cb.ax.minorticks_off()
        ax.set_xlabel(_d1_label(r), fontsize=9)
        ax.set_ylabel(RANDOM_AXIS, fontsize=9)
        ax.set_title(f"{name}\n{_which(index, len(r['loss']))}, ε = {r['eps']:.3g}", fontsize=9)
    _legend_below(fig, axes[0])
    return fig


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Colour-bar ticks for a log scale from ``lo`` to ``hi``: the powers of ten between them (at most six), or
    four ticks spaced evenly on the log scale when fewer than two powers of ten lie between them."""
    powers = 10.0 ** np.arange(np.ceil(np.log10(lo)), np.floor(np.log10(hi)) + 1)
    powers = powers[::max(1, int(np.ceil(len(powers) / 6)))]
    return list(powers) if len(powers) >= 2 else list(np.geomspace(lo, hi, 4))


def _decades(ticks: Sequence[float]) -> bool:
    """Whether ``ticks`` are powers of ten (:func:`_log_ticks` over more than a decade)."""
    return all(np.isclose(np.log10(t), np.round(np.log10(t))) for t in ticks)


def plot_loss_slices(surfaces: dict[str, dict], index: Optional[int] = 0):
    """The cross-entropy along the two directions of :func:`advlib.landscape.loss_surface` through image
    ``index`` (None: the mean over images), one panel per model: a loss that rises along the sign of the
    gradient no faster than along a random direction says the gradient does not point uphill."""
    fig, axes = _panels(len(surfaces))
    for ax, (name, r) in zip(axes, surfaces.items()):
        a = r["a"].numpy()
        ax.plot(a, _pick(r["along_d1"], index), color="C3", label=_d1_label(r).replace(" (×ε)", ""))
        ax.plot(r["b"].numpy(), _pick(r["along_d2"], index), color="C0", ls="--",
                label=RANDOM_AXIS.replace(" (×ε)", ""))
        ax.axvline(0, color="gray", lw=0.8, ls=":")
        ax.set_xlabel("step along the direction (×ε)")
        ax.set_ylabel("cross-entropy")
        ax.set_title(f"{name}\n{_which(index, len(r['loss']))}, ε = {r['eps']:.3g}", fontsize=9)
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0])
    return fig


def plot_pgd_trace(traces: dict[str, dict]):
    """The cross-entropy along the PGD iterates, one panel per model, from ``{model:
    advlib.landscape.pgd_loss_trace(...)}``: one thin line per restart (mean over images) and, bold, the
    per-image highest loss over the restarts (mean over images). A robust model's loss climbs and levels
    off; a curve that stays flat from the start, or restarts that end far apart, point at masked gradients."""
    fig, axes = _panels(len(traces))
    for ax, (name, t) in zip(axes, traces.items()):
        loss = t["loss"]
        it = np.arange(loss.shape[1])
        for r in range(len(loss)):
            ax.plot(it, loss[r].mean(-1).numpy(), color="C0", lw=0.8, alpha=0.7,
                    label="one restart" if r == 0 else None)
        ax.plot(it, loss.amax(0).mean(-1).numpy(), color="C3", lw=2.2, label="per image, the highest over restarts")
        acc = t["correct"].all(0).float().mean().item()
        ax.set_title(f"{name}\nε = {t['eps']:.3g}, α = {t['alpha']:.3g}, accuracy under PGD {100 * acc:.1f}%",
                     fontsize=9)
        ax.set_xlabel("PGD iteration")
        ax.set_ylabel("cross-entropy (mean over images)")
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0])
    return fig
