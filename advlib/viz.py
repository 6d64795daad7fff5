"""Figures and the computation behind the epsilon slider, as plain functions.

:class:`FGSMExplorer` caches the model's predictions and the loss gradient's sign on a fixed
test subset. The FGSM example :math:`x + \\varepsilon\\,\\mathrm{sign}(\\nabla_x J)` then costs
one clamp and one forward pass for any epsilon, so the slider stays responsive on a laptop CPU.
"""
from __future__ import annotations

import io
from collections import OrderedDict
from typing import Optional, Sequence

import matplotlib.pyplot as plt
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

    def figure(self, eps: float, amplify: Optional[float] = None):
        """Original, perturbation (amplified to the full colour range) and adversarial image for the
        ``show`` images, each with its prediction and confidence."""
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
    """A 3-row grid: originals, perturbations (amplified), adversarial images, titled with
    prediction and confidence (green when right, red when wrong)."""
    n = len(x)
    fig, axes = plt.subplots(3, n, figsize=(size * n, size * 3.3), squeeze=False)
    delta = (x_adv - x)
    scale = max(delta.abs().max().item(), 1e-12)
    gray = x.shape[1] == 1
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
                d = _to_hwc(delta[j] / (2 * scale) + 0.5)
                ax.imshow(d, cmap="RdBu_r" if gray else None, vmin=0, vmax=1)
                continue
            ax.imshow(_to_hwc(img), cmap="gray" if gray else None, vmin=0, vmax=1)
            ax.set_title(title, fontsize=9, color="green" if ok else "red")
    axes[0, 0].set_ylabel("original", fontsize=9)
    axes[1, 0].set_ylabel(f"perturbation\n(×{0.5 / scale:.1f})" if eps > 0 else "perturbation", fontsize=9)
    axes[2, 0].set_ylabel(f"adversarial\nε = {eps:.3f}", fontsize=9)
    fig.tight_layout()
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
                 labels: Optional[dict] = None, title: str = ""):
    """Per-epoch held-out accuracies of several training runs."""
    labels = labels or {"holdout_clean": "clean", "holdout_pgd": "PGD", "holdout_fgsm": "FGSM"}
    fig, ax = plt.subplots(figsize=(6.4, 4))
    styles = ["-", "--", ":", "-."]
    for c, (name, hist) in enumerate(histories.items()):
        for s, k in enumerate(keys):
            ep = [h["epoch"] for h in hist]
            ax.plot(ep, [100 * h[k] for h in hist], styles[s % 4], color=f"C{c}", marker="o", ms=3,
                    label=f"{name}: {labels.get(k, k)}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    return fig


def perturbation_scale(panels: dict[str, tuple[torch.Tensor, torch.Tensor, float]], size: float = 1.7):
    """What an L-infinity budget looks like on different data: one row per entry ``{label: (x, x_adv, eps)}``
    with the perturbed images and the perturbations at their true scale, with a colour bar in pixel units
    (grey images: −ε blue, +ε red; colour images: each channel's δ as 0.5 + δ/(2ε), so grey means
    unchanged). Pixels where the [0, 1] clamp cut the step show paler than ±ε."""
    n = max(len(v[0]) for v in panels.values())
    fig, axes = plt.subplots(len(panels), 2 * n + 1, figsize=(size * (2 * n + 1), size * 1.15 * len(panels)),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * (2 * n) + [0.08]})
    for i, (label, (x, x_adv, eps)) in enumerate(panels.items()):
        gray = x.shape[1] == 1
        delta = x_adv - x
        im = None
        for j in range(n):
            a_img, a_d = axes[i, 2 * j], axes[i, 2 * j + 1]
            for a in (a_img, a_d):
                a.set_xticks([])
                a.set_yticks([])
            if j >= len(x):
                a_img.axis("off")
                a_d.axis("off")
                continue
            a_img.imshow(_to_hwc(x_adv[j]), cmap="gray" if gray else None, vmin=0, vmax=1)
            if gray:
                im = a_d.imshow(delta[j, 0].cpu().numpy(), cmap="RdBu_r", vmin=-eps, vmax=eps)
            else:  # each channel's δ mapped to 0.5 + δ/(2ε): grey where nothing changed
                a_d.imshow(_to_hwc((delta[j] / (2 * eps) + 0.5).clamp(0, 1)))
                im = im or plt.cm.ScalarMappable(plt.Normalize(-eps, eps), "gray")
            if i == 0:
                a_img.set_title("perturbed image", fontsize=8)
                a_d.set_title("perturbation", fontsize=8)
        axes[i, 0].set_ylabel(label, fontsize=8)
        cb = fig.colorbar(im, cax=axes[i, -1])
        cb.set_ticks([-eps, 0, eps])
        cb.set_ticklabels([f"−{eps:.3g}", "0", f"+{eps:.3g}"])
        cb.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def plot_bars(table: dict[str, dict[str, float]], columns: Sequence[str], title: str = "",
              intervals: Optional[dict[str, dict[str, tuple]]] = None):
    """Grouped bars: one group per row (model), one bar per column (attack), in %, each labelled with its
    value (so a bar at 0% is visible too); with ``intervals`` (``{row: {column: (low, high)}}``, e.g.
    :func:`advlib.evaluate.intervals`) each bar carries its 95% interval. The legend sits below the axes."""
    rows = list(table)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(rows), 4.4))
    w = 0.8 / len(columns)
    for j, c in enumerate(columns):
        vals = np.array([100 * table[r].get(c, np.nan) for r in rows], dtype=float)
        pos = np.arange(len(rows)) + (j - (len(columns) - 1) / 2) * w
        yerr = None
        if intervals:
            iv = [intervals.get(r, {}).get(c) for r in rows]
            yerr = np.array([[v - 100 * i[0], 100 * i[1] - v] if i else [0, 0] for v, i in zip(vals, iv)]).T
            yerr = np.nan_to_num(np.clip(yerr, 0, None))
        ax.bar(pos, vals, w, label=c, yerr=yerr, capsize=2, error_kw={"lw": 0.8})
        for p_, v in zip(pos, vals):
            if np.isfinite(v):
                ax.text(p_, v + 1.5, f"{v:.0f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels(rows, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)" + (", 95% intervals" if intervals else ""))
    ax.set_ylim(0, 108)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(columns), len(rows) + 1), loc="upper center", bbox_to_anchor=(0.5, -0.22),
              frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_soft_labels(images: torch.Tensor, labels: torch.Tensor, probs: dict[str, tuple[torch.Tensor, torch.Tensor]],
                     classes: Sequence[str], eps_text: str = "8/255"):
    """Soft labels on natural vs adversarial inputs: one column per image (the image on top), one row of
    bar charts per model with its probabilities on x (grey) and on its own adversarial x' (red); the true
    class is marked. ``probs``: ``{model name: (p(x), p(x'))}``, each (n, classes)."""
    n, rows = len(images), len(probs)
    fig, axes = plt.subplots(1 + rows, n, figsize=(2.0 * n + 0.6, 1.3 + 1.75 * rows),
                             gridspec_kw={"height_ratios": [1.0] + [1.25] * rows}, squeeze=False)
    idx = np.arange(len(classes))
    for j in range(n):
        axes[0, j].imshow(_to_hwc(images[j]), interpolation="nearest")
        axes[0, j].set_title(f"true: {classes[int(labels[j])]}", fontsize=8)
        axes[0, j].axis("off")
        for i, (name, (p_nat, p_adv)) in enumerate(probs.items(), start=1):
            ax = axes[i, j]
            ax.bar(idx - 0.2, 100 * p_nat[j].cpu().numpy(), 0.4, color="0.55", label="natural x")
            ax.bar(idx + 0.2, 100 * p_adv[j].cpu().numpy(), 0.4, color="tab:red",
                   label=f"adversarial x' (PGD, ε = {eps_text})")
            ax.axvline(int(labels[j]), color="tab:green", lw=0.8, ls=":")
            ax.set_ylim(0, 100)
            ax.set_xticks(idx)
            ax.set_xticklabels([c[:4] for c in classes], rotation=90, fontsize=6)
            ax.tick_params(axis="y", labelsize=6)
            if j == 0:
                ax.set_ylabel(f"{name}\nprobability (%)", fontsize=8)
    handles, labels_ = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
