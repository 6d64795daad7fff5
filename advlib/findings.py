"""What a notebook concludes, in sentences written from its own numbers.

A sentence of a summary that states a result (a model is robust or not, one number is above another,
a cost is measurable or noise) is written here, by a function of the notebook's metrics (the dict a
:class:`advlib.record.Run` writes to ``metrics.json``), which picks each wording from the numbers and
their 95% intervals: "in between" is written only when the number is in between, "costs" only when
the difference is larger than the intervals allow. A notebook shows its findings with :func:`show`,
which also records them in ``metrics.json`` (``findings``); :meth:`advlib.record.Run.finish` embeds
the metrics in the committed notebook, and ``tests/test_findings.py`` fails when a notebook's
summary is not what this module writes from those metrics.

Adding a notebook's findings: one function ``f(metrics) -> list[str]`` decorated with
``@register("<notebook name>")``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from . import stats
from .record import META_KEY

REGISTRY: dict[str, Callable[[dict], list[str]]] = {}
META = "findings"  # what the summary cell's output carries in its metadata, under record.META_KEY


def register(notebook: str):
    def deco(fn: Callable[[dict], list[str]]):
        REGISTRY[notebook] = fn
        return fn
    return deco


def sentences(metrics: dict) -> list[str]:
    """The findings of ``metrics["notebook"]``, from its metrics."""
    name = metrics.get("notebook")
    if name not in REGISTRY:
        raise ValueError(f"no findings are written for notebook {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name](metrics)


def markdown(lines: Sequence[str]) -> str:
    return "\n".join(f"- {s}" for s in lines)


def show(run) -> list[str]:
    """Display the findings of ``run`` (a :class:`advlib.record.Run`) as a bullet list and record them."""
    from IPython.display import Markdown, display  # in a notebook only: advlib imports without IPython

    lines = sentences(run.compact())  # what the notebook embeds at its end, so the two can be compared
    run.set(findings=lines)
    display(Markdown(markdown(lines)), metadata={META_KEY: {META: run.notebook}})
    return lines


# --------------------------------------------------------------------------- reading metrics


def pct(v: float, digits: int = 1) -> str:
    return f"{100 * v:.{digits}f}%"


def pts(v: float) -> str:
    return f"{100 * abs(v):.1f} points"


def table(metrics: dict, name: str) -> dict:
    try:
        return metrics["tables"][name]
    except KeyError:
        raise ValueError(f"metrics of {metrics.get('notebook')!r} have no table {name!r}: was the notebook run to the "
                         "end?") from None


def n_of(tab: dict, column: str, default: int = 0) -> int:
    return int(tab.get("columns_meta", {}).get(column, {}).get("n", default))


def clearly_above(a: float, n_a: int, b: float, n_b: int) -> bool:
    """Whether accuracy ``a`` (on ``n_a`` images) is above ``b`` by more than their 95% intervals allow
    (the intervals do not overlap)."""
    return stats.interval(a, n_a)[0] > stats.interval(b, n_b)[1]


def compare(a: float, n_a: int, b: float, n_b: int) -> str:
    """'above', 'below' or 'within the noise of' (95% intervals)."""
    if clearly_above(a, n_a, b, n_b):
        return "above"
    if clearly_above(b, n_b, a, n_a):
        return "below"
    return "within the noise of"


def kind_column(tab: dict, kind: str) -> Optional[str]:
    """The first column of a results table whose attack is of ``kind`` (``"pgd"``, ``"autoattack"``...)."""
    for col, meta in tab.get("columns_meta", {}).items():
        if meta.get("attack", {}).get("kind") == kind:
            return col
    return None


def first_below(xs: Sequence[float], ys: Sequence[float], level: float) -> Optional[float]:
    return next((x for x, y in zip(xs, ys) if y < level), None)


# --------------------------------------------------------------------------- notebooks


@register("01_fgsm_mnist")
def fgsm_mnist(m: dict) -> list[str]:
    clean, n = m["values"]["clean_accuracy"], int(m["values"]["n_eval"])
    tab = table(m, "noise_vs_fgsm_vs_pgd")
    rows = tab["rows"]
    pgd = next(c for c in tab["columns"] if c.startswith("PGD"))
    lo, hi = rows[tab_row(rows, 0.1)], rows[tab_row(rows, 0.3)]
    out = [f"The standard model classifies {pct(clean)} of the first {n} {m.get('data', 'MNIST')} test images "
           f"correctly. FGSM leaves {pct(lo['FGSM'])} at ε = 0.1 and {pct(hi['FGSM'])} at ε = 0.3; "
           f"{pgd} leaves {pct(lo[pgd])} and {pct(hi[pgd])}."]
    noise_drop, fgsm_drop = clean - hi["random noise"], clean - hi["FGSM"]
    if clearly_above(hi["random noise"], n, hi["FGSM"], n):
        noise = ("costs nothing measurable" if not clearly_above(clean, n, hi["random noise"], n)
                 else f"costs {pts(noise_drop)}")
        out.append(f"Random ±ε noise of the same size {noise} at ε = 0.3 ({pct(hi['random noise'])}), FGSM "
                   f"{pts(fgsm_drop)}: the direction of the perturbation matters far more than its size.")
    else:
        out.append(f"At ε = 0.3 random noise ({pct(hi['random noise'])}) hurts as much as FGSM "
                   f"({pct(hi['FGSM'])}): an unexpected result, check the attack.")
    stronger = all(p <= f + 1e-9 for p, f in zip(rows_col(rows, pgd), rows_col(rows, "FGSM")))
    out.append(f"{pgd} is at least as strong as FGSM at every ε of the table." if stronger else
               f"FGSM beat {pgd} at some ε of the table: PGD's step size or number of steps is too small.")
    curve = m["curves"]["accuracy_vs_eps"]
    half = first_below(curve["x"], curve["series"]["FGSM"], clean / 2)
    if half is not None:
        out.append(f"FGSM accuracy falls below half the clean accuracy from ε = {half:.2f} on "
                   f"(the curve's grid); the slider shows what a perturbation of that size looks like.")
    return out


def tab_row(rows: dict, eps: float) -> str:
    key = next((r for r in rows if abs(float(r.split("=")[-1]) - eps) < 1e-9), None)
    if key is None:
        raise ValueError(f"no row for ε = {eps} among {list(rows)}")
    return key


def rows_col(rows: dict, col: str) -> list[float]:
    return [r[col] for r in rows.values()]


@register("02_adversarial_training_mnist")
def adversarial_training_mnist(m: dict) -> list[str]:
    tab = table(m, "robustness")
    rows, n = tab["rows"], n_of(tab, "Clean")
    pgd = kind_column(tab, "pgd")
    n_pgd = n_of(tab, pgd, n)
    aa = kind_column(tab, "aa")
    # rows by training method (a notebook's stored metrics may have their keys sorted)
    order = ("standard", "fgsm_two_pass", "fgsm_weighted", "fgsm_rs", "pgd")
    meta = tab.get("rows_meta", {})
    names = sorted(rows, key=lambda r: order.index(meta[r]["method"]) if r in meta and meta[r].get("method") in order
                   else list(rows).index(r))
    std, two, aug, rs, madry = (rows[k] for k in names)
    out = []
    # FGSM training without a random start
    fgsm_only = [(names[1], two), (names[2], aug)]
    beats = [k for k, r in fgsm_only if clearly_above(r["FGSM"], n, r[pgd], n_pgd)]
    like_std = [k for k, r in fgsm_only if compare(r[pgd], n_pgd, std[pgd], n_pgd) == "within the noise of"]
    out.append(f"{names[1]} keeps {pct(two['FGSM'])} under FGSM and {pct(two[pgd])} under {pgd}; {names[2]} "
               f"{pct(aug['FGSM'])} and {pct(aug[pgd])}. "
               + (f"Both resist FGSM far better than {pgd}. " if len(beats) == 2 else
                  f"Only {beats[0]} resists FGSM clearly better than {pgd}. " if beats else
                  f"Neither resists FGSM measurably better than {pgd}. ")
               + (f"Under {pgd} both are within the noise of the standard model ({pct(std[pgd])}): training against "
                  "FGSM alone bought no robustness to a stronger attack." if len(like_std) == 2 else
                  f"Under {pgd}, {like_std[0]} is within the noise of the standard model ({pct(std[pgd])})."
                  if like_std else f"Under {pgd} both are above the standard model ({pct(std[pgd])})."))
    naive = m["values"].get("fgsm_every_image", {}).get(names[1])
    if naive is not None:
        leak = clearly_above(naive, n, two["Clean"], n)
        out.append(f"{names[1]} scores {pct(naive)} under FGSM run on every image against {pct(two['Clean'])} on "
                   + ("clean images: it recognises the FGSM perturbation, which depends on the label "
                      "(label leaking), so FGSM accuracy says nothing about robustness." if leak else
                      "clean images: no label leaking measurable here."))
    strongest = aa or pgd
    n_s = n_of(tab, strongest, n)
    if aa:
        gap = rs[pgd] - rs[aa]
        flagged = "PGD close to AutoAttack" in m.get("flags_raised", {}).get(names[3], [])  # see Run.compact
        out.append(f"{names[3]}: {pct(rs[pgd])} under {pgd} but {pct(rs[aa])} under AutoAttack, "
                   + (f"{pts(gap)} lower, beyond the intervals: cross-entropy PGD overestimates its robustness"
                      if clearly_above(rs[pgd], n_pgd, rs[aa], n_s) else f"a gap of {pts(gap)} within the noise")
                   + (" (flagged by the sanity checks); notebook 02b looks at why." if flagged else
                      " (no sanity check raised)."))
    best = max(rows, key=lambda k: rows[k][strongest])
    runner = max((k for k in rows if k != best), key=lambda k: rows[k][strongest])
    out.append(f"Under {strongest}, the most robust model is {best} ({pct(rows[best][strongest])}), "
               f"{compare(rows[best][strongest], n_s, rows[runner][strongest], n_s)} {runner} "
               f"({pct(rows[runner][strongest])}).")
    d = std["Clean"] - madry["Clean"]
    ep = m.get("values", {}).get("epochs", {})
    epochs = f" (trained {ep[names[0]]:g} epochs against {ep[names[4]]:g})" if ep else ""
    if compare(std["Clean"], n, madry["Clean"], n) == "within the noise of":
        out.append(f"Clean accuracy: {names[0]} {pct(std['Clean'])}, {names[4]} {pct(madry['Clean'])}{epochs}: "
                   f"a difference of {pts(d)}, within the 95% intervals of {n} images, so no cost of robustness is "
                   f"measurable here (notebook 04 measures one on CIFAR-10).")
    else:
        word = "costs" if d > 0 else "gains"
        out.append(f"Clean accuracy: {names[0]} {pct(std['Clean'])}, {names[4]} {pct(madry['Clean'])}{epochs}: "
                   f"PGD training {word} {pts(d)}, beyond the 95% intervals of {n} images.")
    curve = m.get("curves", {}).get("pgd20_accuracy_vs_eps")
    if curve and m.get("eps") in [round(x, 6) for x in curve["x"]] and curve["x"][-1] > m["eps"]:
        i = [round(x, 6) for x in curve["x"]].index(m["eps"])
        y, nc = curve["series"][names[4]], int(m.get("settings", {}).get("n_curve", n))
        falls = clearly_above(y[i], nc, y[-1], nc)
        out.append(f"{names[4]} keeps {pct(y[i])} under PGD-20 at its training budget ε = {m['eps']:g} and "
                   f"{pct(y[-1])} at ε = {curve['x'][-1]:g}: " +
                   ("its robustness falls beyond the budget it was trained for." if falls else
                    "no measurable fall beyond the training budget on this grid."))
    return out


@register("02b_adversarial_training_in_practice_mnist")
def practice_mnist(m: dict) -> list[str]:
    v, out = m["values"], []
    co = v.get("catastrophic_overfitting", {})
    by_eps: dict[str, list] = {}
    for name, c in co.items():
        arm, eps = name.rsplit(", ε = ", 1)
        by_eps.setdefault(eps, []).append((arm, c))
    for eps, arms in by_eps.items():
        gone = [f"{arm} (PGD-10 {pct(c['peak_pgd'])} at epoch {c['peak_epoch']:.2f}, {pct(c['final_pgd'])} at the end, "
                f"FGSM {pct(c['final_fgsm'])})" for arm, c in arms if c["collapsed"]]
        kept = [f"{arm} (PGD-10 {pct(c['final_pgd'])} at the end)" for arm, c in arms if not c["collapsed"]]
        out.append(f"Catastrophic overfitting at ε = {eps}, same recipe for every run: "
                   + (f"collapsed: {'; '.join(gone)}. " if gone else "no run collapsed. ")
                   + (f"Did not collapse: {'; '.join(kept)}." if kept else "Every run collapsed."))
    leaks = [f"{name} ({pct(c['final_fgsm'])} vs {pct(c['final_clean'])})" for name, c in co.items()
             if c.get("final_clean") is not None and clearly_above(c["final_fgsm"], c["n"], c["final_clean"], c["n"])]
    if leaks:
        out.append("Held-out FGSM accuracy ended above clean accuracy (label leaking) in: " + "; ".join(leaks) + ".")
    tp = v.get("two_pass_label_leaking")
    if tp:
        n = int(tp["n"])
        out.append(f"Notebook 02's two-pass model scores {pct(tp['fgsm_every_image'])} under FGSM run on every test image "
                   f"and {pct(tp['clean'])} on clean ones: "
                   + ("label leaking, beyond the 95% intervals." if clearly_above(tp["fgsm_every_image"], n, tp["clean"], n)
                      else "no label leaking measurable on these images."))
    tr = v.get("pgd_trace", {})
    n_tr = int(m.get("settings", {}).get("n_trace", 0)) or None
    for name, s in tr.items():
        drop = s["robust_first_restart"] - s["robust_all_restarts"]
        flags = v.get("flags_02", {}).get(name)
        out.append(f"{name}: PGD leaves {pct(s['robust_first_restart'])} robust with one restart and "
                   f"{pct(s['robust_all_restarts'])} with all restarts ({pts(drop)} fewer); the mean loss goes from "
                   f"{s['loss_start']:.2f} to {s['loss_end']:.2f}, the final loss differs between restarts by "
                   f"{s['restart_spread']:.2f} on average"
                   + (f"; flags raised in notebook 02: {', '.join(flags)}." if flags else
                      "; no flag raised in notebook 02." if flags is not None else "."))
    if len(tr) == 2:
        (a, sa), (b, sb) = tr.items()
        if n_tr:
            out.append(f"With restarts, {a} is {compare(sa['robust_all_restarts'], n_tr, sb['robust_all_restarts'], n_tr)} "
                       f"{b} under PGD ({n_tr} images).")
    tab = m.get("tables", {}).get("choose_eps")
    if tab:
        n = int(m["settings"]["n_eval"])
        trained = [r for r in tab["rows"] if r.startswith("trained at ε = ")]
        cells = []
        for r in trained:
            e = float(r.split("= ")[1])
            own = tab["rows"][r].get(f"PGD-20 at ε = {e:g}")
            at3 = tab["rows"][r].get("PGD-20 at ε = 0.3")
            cells.append(f"{r}: clean {pct(tab['rows'][r]['clean'])}, PGD-20 {pct(own)} at its own ε"
                         + (f" and {pct(at3)} at ε = 0.3" if at3 is not None and abs(e - 0.3) > 1e-9 else ""))
        out.append("Choosing ε (fast AT): " + "; ".join(cells) + ".")
        if len(trained) >= 2:
            lo, hi = tab["rows"][trained[0]]["clean"], tab["rows"][trained[-1]]["clean"]
            out.append(f"Clean accuracy of the model trained at the largest ε is {compare(hi, n, lo, n)} that of the "
                       f"model trained at the smallest ({pct(hi)} vs {pct(lo)}, {n} images).")
    sh = m.get("tables", {}).get("distribution_shift")
    if sh and "Standard" in sh["rows"] and "PGD (Madry)" in sh["rows"]:
        n = int(m["settings"]["n_shift"])
        std, rob = sh["rows"]["Standard"], sh["rows"]["PGD (Madry)"]
        cols = [c for c in sh["columns"] if "(" in c and c.split(" (")[0] in ("gaussian_noise", "sensor_noise", "blur",
                                                                              "contrast")]
        verdicts = {c: compare(rob[c], n, std[c], n) for c in cols}
        better = [c for c, w in verdicts.items() if w == "above"]
        worse = [c for c, w in verdicts.items() if w == "below"]
        same = [c for c, w in verdicts.items() if w == "within the noise of"]
        fmt = lambda cs: ", ".join(f"{c} ({pct(rob[c])} vs {pct(std[c])})" for c in cs)
        out.append("Distribution shift, PGD-trained vs standard model: "
                   + (f"better under {fmt(better)}; " if better else "better under no corruption; ")
                   + (f"worse under {fmt(worse)}; " if worse else "worse under none; ")
                   + (f"no measurable difference under {fmt(same)}." if same else "a measurable difference everywhere."))
        adv = next((c for c in sh["columns"] if "notebook 02" in c), None)
        if adv and cols:
            gain = max(rob[c] - std[c] for c in cols)
            gap = rob[adv] - std[adv]
            out.append(f"Under attack (ε = 0.3) the PGD-trained model leads by {pts(gap)} ({pct(rob[adv])} vs "
                       f"{pct(std[adv])}); its largest lead under a corruption is {100 * gain:+.1f} points: "
                       + ("robustness to worst-case perturbations did not carry over to these corruptions in the same "
                          "measure." if gain < gap / 2 else "a comparable benefit."))
    return [s for s in out if s]
