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

A result a notebook states before its end (a verdict on robust overfitting below its figure, a paired test
under its table) is a *partial finding*: a function ``f(metrics) -> list[str]`` decorated with
``@part("<notebook name>", "<name>")``, shown where the notebook needs it by :func:`show_part`, which records
it in ``metrics.json`` (``finding_parts``) and marks its output, so that the test compares it with the metrics
the notebook embeds at its end, as it does the summary. A part reads only what the notebook recorded before
it (:func:`show` refuses a part that the final metrics would write differently).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from . import reference, stats
from .record import META_KEY

REGISTRY: dict[str, Callable[[dict], list[str]]] = {}
PARTS: dict[str, dict[str, Callable[[dict], list[str]]]] = {}
META = "findings"  # what the summary cell's output carries in its metadata, under record.META_KEY
PART_META = "finding"  # what a partial finding's output carries in its metadata (its name), under record.META_KEY
PARTS_KEY = "finding_parts"  # where metrics.json records the partial findings shown, {name: sentences}


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
    """Display the findings of ``run`` (a :class:`advlib.record.Run`) as a bullet list and record them.

    Raises ValueError when a partial finding shown earlier (:func:`show_part`) would read differently from the
    metrics as they are now: it read a number recorded after it, or one recorded again since."""
    from IPython.display import Markdown, display  # in a notebook only: advlib imports without IPython

    metrics = run.compact()  # what the notebook embeds at its end, so the two can be compared
    stale = [name for name, shown in metrics.get(PARTS_KEY, {}).items() if part_sentences(metrics, name) != shown]
    if stale:
        raise ValueError(f"{run.notebook}: the partial findings {stale} were shown from other numbers than the final "
                         "metrics hold: a part may read only what the notebook recorded before it (run the notebook "
                         "from the top)")
    lines = sentences(metrics)
    run.set(findings=lines)
    display(Markdown(markdown(lines)), metadata={META_KEY: {META: run.notebook}})
    return lines


def part(notebook: str, name: str):
    """Register ``f(metrics) -> list[str]`` as the partial finding ``name`` of ``notebook``."""
    def deco(fn: Callable[[dict], list[str]]):
        PARTS.setdefault(notebook, {})[name] = fn
        return fn
    return deco


def part_sentences(metrics: dict, name: str) -> list[str]:
    """The partial finding ``name`` of ``metrics["notebook"]``, from its metrics."""
    notebook = metrics.get("notebook")
    fn = PARTS.get(notebook, {}).get(name)
    if fn is None:
        raise ValueError(f"no partial finding {name!r} is written for notebook {notebook!r}; known: "
                         f"{sorted(PARTS.get(notebook, {}))}")
    return fn(metrics)


def part_markdown(lines: Sequence[str]) -> str:
    """A partial finding as Markdown: one sentence as a paragraph, several as a bullet list."""
    return lines[0] if len(lines) == 1 else markdown(lines)


def show_part(run, name: str) -> list[str]:
    """Display the partial finding ``name`` of ``run`` where the notebook states that result, and record it."""
    from IPython.display import Markdown, display  # in a notebook only: advlib imports without IPython

    lines = part_sentences(run.compact(), name)
    run.set(**{PARTS_KEY: {**run.data.get(PARTS_KEY, {}), name: lines}})
    display(Markdown(part_markdown(lines)), metadata={META_KEY: {PART_META: name}})
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
    meta = tab.get("rows_meta", {})
    names = sorted(rows, key=lambda r: METHOD_ORDER.index(meta[r]["method"])
                   if r in meta and meta[r].get("method") in METHOD_ORDER else list(rows).index(r))
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


# --------------------------------------------------------------------------- the CIFAR-10 notebooks (03-06)


def eps_text(eps: float) -> str:
    """A budget or a step as the papers write it: ``8/255`` for 8/255, else the number (``0.003``)."""
    k = eps * 255  # budgets on a grid are often rounded to 5 decimals (0.03137 for 8/255)
    return f"{round(k)}/255" if abs(k - round(k)) < 2e-3 and k >= 0.5 else f"{eps:g}"


def signed(v: float) -> str:
    return f"{100 * v:+.1f} points"


def verdict(a: float, n_a: int, b: float, n_b: int, above: str, below: str, same: str) -> str:
    """``above``, ``below`` or ``same`` as :func:`compare` finds ``a`` against ``b`` (95% intervals)."""
    return {"above": above, "below": below}.get(compare(a, n_a, b, n_b), same)


def images(k: int) -> str:
    return f"{k} image" + ("" if k == 1 else "s")


def p_text(p: float) -> str:
    return f"p = {p:.2g}"


def chance(p: float) -> str:
    """What McNemar's p says: the test covers the choice of test images, not the training seed."""
    return ("beyond what the choice of test images explains" if p < 0.05 else
            "within what the choice of test images explains")


SEEDS = ("McNemar's test covers the choice of test images only: each run trained once, from one seed, so a difference "
         "between two runs may still be the seed's (notebook 05 points to a benchmark with several seeds).")


def autoattack_col(tab: dict) -> Optional[str]:
    """The AutoAttack column of a table of the paper's columns measured on the most images, if any."""
    return next((c for c in ("APGD-CE+T", "AA") if c in tab.get("columns", [])), None)


def paired_attacks(tab: dict, row: str, a: str, b: str) -> Optional[dict]:
    """Two attack columns of one row, paired image by image through the table's worst-case column when that column
    is the per-image worst case over exactly these two on the same images: ``{"n", "only_a_breaks",
    "only_b_breaks", "p_value"}`` (exact McNemar). ``None`` when the table cannot pair them."""
    meta = tab.get("columns_meta", {})
    worst = next((c for c, cm in meta.items() if cm.get("attack", {}).get("kind") == "worst_case"
                  and sorted(cm["attack"].get("of", [])) == sorted([a, b])), None)
    if worst is None or not n_of(tab, a) == n_of(tab, b) == n_of(tab, worst) > 0:
        return None
    r, n = tab["rows"][row], n_of(tab, worst)
    # an image right under A but not under both was broken by B alone, and the other way round
    only_b, only_a = round(n * (r[a] - r[worst])), round(n * (r[b] - r[worst]))
    return {"n": n, "only_a_breaks": only_a, "only_b_breaks": only_b, "p_value": stats.mcnemar_p(only_a, only_b)}


def attack_gap_text(tab: dict, row: str, a: str, b: str) -> str:
    """Whether attack ``a`` or ``b`` is the stronger on one row's images: by McNemar's test when the table pairs
    them (:func:`paired_attacks`), else by the 95% intervals."""
    r, n = tab["rows"][row], n_of(tab, a)
    t = paired_attacks(tab, row, a, b)
    short = {c: c.split(" (")[0] for c in (a, b)}  # "PGD-20 (step 2/255)" -> "PGD-20"
    if t is None:
        return f"{short[a]} is " + compare(r[a], n, r[b], n_of(tab, b)) + f" {short[b]} on the same images."
    counts = (f"{short[b]} breaks {t['only_b_breaks']} images that {short[a]} leaves correct, {short[a]} "
              f"{t['only_a_breaks']} that {short[b]} leaves (exact McNemar {p_text(t['p_value'])})")
    if t["p_value"] >= 0.05:
        return counts + ": the two attacks are within the noise of each other on these images."
    strong, weak = (b, a) if t["only_b_breaks"] > t["only_a_breaks"] else (a, b)
    return (counts + f": {short[weak]} overstates this model's robustness by {pts(r[weak] - r[strong])} on these "
            "images.")


def run_text(m: dict, title: str) -> str:
    """What a training run of the notebook was, from ``metrics["runs"]`` (:func:`advlib.experiments.run_settings`)."""
    r = m.get("runs", {}).get(title)
    if not r:
        return ""
    data = f"{r['train_images']:,} training images" if r.get("train_images") else "the full training set"
    return f"{r['model']}, {r['method']}, {r['epochs']:g} epochs on {data}"


def paper_row(method: Optional[str], checkpoint: str, column: str, model: str = "ResNet-18") -> Optional[float]:
    """The RSLAD paper's figure (a fraction) for one of our training methods, checkpoint and column, if it has one."""
    table = {"best": reference.RSLAD_BEST, "last": reference.RSLAD_LAST}[checkpoint]
    row = table.get((model, reference.published_method(method)))
    return None if row is None else row[reference.RSLAD_COLUMNS.index(column)] / 100


def ordering_vs_paper(m: dict, tab: dict, a: str, b: str, checkpoint: str, tests: Optional[dict] = None,
                      column: str = "PGD_SAT") -> Optional[str]:
    """How runs ``a`` and ``b`` are ordered under ``column`` here against the RSLAD paper's ResNet-18 rows, and,
    where the order is reversed, what the clean column says beside it; None when the paper has no row for one of
    them. ``tests``: McNemar's tests of ``a`` against ``b`` by column (:func:`advlib.results.paired`), which decide
    the order on the same images; a column without one is read by the 95% intervals."""
    meta, rows = tab.get("rows_meta", {}), tab["rows"]
    ra, rb = f"{a} ({checkpoint})", f"{b} ({checkpoint})"
    pa, pb = (paper_row(meta.get(r, {}).get("method"), checkpoint, column) for r in (ra, rb))
    if pa is None or pb is None or pa == pb:
        return None

    def order(col: str) -> str:  # "above", "below" or "undecided": a against b under col
        t = (tests or {}).get(col)
        if t is not None:
            return "undecided" if t["p_value"] >= 0.05 else "above" if t["a"] > t["b"] else "below"
        n = n_of(tab, col)
        return {"within the noise of": "undecided"}.get(compare(rows[ra][col], n, rows[rb][col], n),
                                                        compare(rows[ra][col], n, rows[rb][col], n))

    ours, paper_word = order(column), ("above" if pa > pb else "below")
    text = (f"The RSLAD paper's ResNet-18 rows ({checkpoint} checkpoints) put {a} {paper_word} {b} under {column} "
            f"({pct(pa, 2)} vs {pct(pb, 2)}); here {a} is at {pct(rows[ra][column])} and {b} at "
            f"{pct(rows[rb][column])}: " + ("the same order." if ours == paper_word else
                                              "the order is not decided on these images." if ours == "undecided" else
                                              "the reverse of the paper's order."))
    if ours not in (paper_word, "undecided"):
        clean, t = order("Clean"), (tests or {}).get("Clean")
        how = (f"{p_text(t['p_value'])}, {chance(t['p_value'])}" if t is not None else
               {"undecided": "within the 95% intervals"}.get(clean, "beyond the 95% intervals"))
        text += (f" Clean accuracy: {a} {pct(rows[ra]['Clean'])} against {b} {pct(rows[rb]['Clean'])} ({how})"
                 + (f": on this budget {a} sits at another point of the trade-off between clean and robust accuracy "
                    f"than {b}, not simply below it." if {clean, ours} == {"above", "below"} else "."))
    return text


def checkpoint_rows(m: dict, checkpoint: str) -> tuple[dict, dict, int, list[str], Optional[str]]:
    """The table of the paper's columns of notebooks 04 and 05: ``(table, rows, images, the titles of the runs with a
    row at checkpoint, the AutoAttack column measured on the most images or None)``."""
    tab = table(m, "rslad_columns")
    titles = [r[:-len(f" ({checkpoint})")] for r in tab["rows"] if r.endswith(f" ({checkpoint})")]
    return tab, tab["rows"], n_of(tab, "Clean"), in_method_order(tab, titles, checkpoint), autoattack_col(tab)


# The order in which the notebooks introduce the training methods (names of advlib.losses): findings list rows in it,
# since a committed notebook stores its metrics with their keys sorted (nbformat), so the order of a dict is lost.
METHOD_ORDER = ("standard", "fgsm", "fgsm_two_pass", "fgsm_weighted", "fgsm_rs", "n_fgsm", "pgd", "trades", "mart",
                "awp_pgd", "awp_trades", "ard", "iad", "rslad", "adaad")


def in_method_order(tab: dict, titles: Sequence[str], checkpoint: str) -> list[str]:
    """``titles`` by their rows' training method (:data:`METHOD_ORDER`; unknown methods last), then by name: the
    same order whether or not the metrics' keys were sorted."""
    meta = tab.get("rows_meta", {})

    def key(t: str) -> tuple:
        method = meta.get(f"{t} ({checkpoint})", {}).get("method")
        return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), t)
    return sorted(titles, key=key)


def paired_in_order(m: dict, titles: Sequence[str]) -> list[tuple[str, dict]]:
    """The notebook's paired tests ``("A vs B", tests)`` ordered by B, then A, in the order of ``titles``."""
    pos = {t: i for i, t in enumerate(titles)}

    def key(name: str) -> tuple:
        a, b = name.split(" vs ")
        return (pos.get(b, len(pos)), pos.get(a, len(pos)), name)
    return [(k, m["paired"][k]) for k in sorted(m.get("paired", {}), key=key)]


def leaders(tab: dict, titles: Sequence[str], checkpoint: str, column: str = "PGD_SAT") -> tuple[list[str], list[str]]:
    """``titles`` from the highest ``column`` down, and those within the 95% intervals of the highest."""
    rows, n = tab["rows"], n_of(tab, column)
    order = sorted(titles, key=lambda t: -rows[f"{t} ({checkpoint})"][column])
    top = rows[f"{order[0]} ({checkpoint})"][column]
    return order, [t for t in order[1:]
                   if compare(rows[f"{t} ({checkpoint})"][column], n, top, n) == "within the noise of"]


def paired_test(m: dict, a: str, b: str, column: str = "PGD_SAT") -> Optional[dict]:
    """The notebook's McNemar test of ``a`` against ``b`` under ``column`` (``metrics["paired"]``, keyed "A vs B"),
    turned round when it was recorded as "B vs A"; ``None`` when there is none."""
    paired = m.get("paired", {})
    if column in paired.get(f"{a} vs {b}", {}):
        return paired[f"{a} vs {b}"][column]
    t = paired.get(f"{b} vs {a}", {}).get(column)
    if t is None:
        return None
    return {**t, "a": t["b"], "b": t["a"], "a_only": t["b_only"], "b_only": t["a_only"], "a_better": t["b_only"] > t["a_only"]}


def leader_text(m: dict, tab: dict, titles: Sequence[str], checkpoint: str, column: str = "PGD_SAT") -> str:
    """Which row leads under ``column``, and how each other row stands against it: by the notebook's McNemar test on
    the same images where it recorded one, else by the 95% intervals."""
    order, tied = leaders(tab, titles, checkpoint, column)
    top = order[0]
    text = f"Highest {column} among the {checkpoint} checkpoints: {top} ({pct(tab['rows'][f'{top} ({checkpoint})'][column])})"
    tests = {t: paired_test(m, t, top, column) for t in order[1:]}
    if not any(tests.values()):
        return text + (f"; within the 95% intervals of it: {', '.join(tied)}." if tied else
                       ", above every other row by more than the 95% intervals.")
    said = []
    for t in order[1:]:
        pt = tests[t]
        if pt is None:
            said.append(f"{t} {'within the 95% intervals of it' if t in tied else 'below it by the 95% intervals'}")
        else:
            said.append(f"{t} {'within the noise of it' if pt['p_value'] >= 0.05 else 'below it'} "
                        f"(McNemar {p_text(pt['p_value'])})")
    return text + "; on the same images, " + "; ".join(said) + "."


# ------------------------------------------------------------------ 03


NB03 = "03_pgd_training_cifar10"


@part(NB03, "perturbation_scale")
def _03_perturbation_scale(m: dict) -> list[str]:
    p = m["values"]["perturbation_scale"]
    return [f"The standard model misclassifies {p['fooled']} of these {p['n']} perturbed test images."]


def _03_overfitting(title: str, r: dict, desc: str) -> str:
    drop = r["best_pgd"] - r["last_pgd"]
    beyond = r["last_pgd"] < stats.interval(r["best_pgd"], r["n"])[0]
    return (f"{title}" + (f" ({desc})" if desc else "") + f": held-out PGD-{r.get('steps', 10)} accuracy peaks at "
            f"epoch {r['best_epoch']} of {r['epochs']} ({pct(r['best_pgd'])}) and ends at {pct(r['last_pgd'])}"
            + (f", {pts(drop)} below the peak: " if drop > 0 else ", at its peak: ")
            + ("below the peak's 95% interval on the monitor's " f"{r['n']} images: robust overfitting." if beyond else
               f"within the peak's 95% interval on the monitor's {r['n']} images: no robust overfitting measurable "
               "within this budget."))


@part(NB03, "robust_overfitting")
def _03_robust_overfitting(m: dict) -> list[str]:
    return [_03_overfitting(t, r, run_text(m, t)) for t, r in m["values"]["robust_overfitting"].items()]


def _03_goal(m: dict) -> str:
    g = m["goal"]
    t = g["targets"]
    met = {f"clean ≥ {pct(t['clean'], 0)}": g["clean"] >= t["clean"],
           f"PGD-20 ≥ {pct(t['pgd20'], 0)}": g["pgd20"] >= t["pgd20"],
           f"training ≤ {t['minutes']:g} min": g["minutes"] <= t["minutes"]}
    lo, hi = stats.interval(g["pgd20"], g["n"])
    return (f"SAT (last checkpoint, epoch {g['epochs']}) on {g['n']} images of {m.get('data', 'CIFAR-10')}: "
            f"**{pct(g['clean'])} clean, {pct(g['pgd20'])} PGD-20** (step 2/255; 95% interval {pct(lo)}–{pct(hi)}) "
            f"after **{g['minutes']:.1f} minutes** of training ({g['model']}, {g['parameters'] / 1e6:.2f}M parameters). "
            + ("All three parts of the goal are met." if all(met.values()) else
               "Not met: " + ", ".join(k for k, ok in met.items() if not ok) + "."
               + ("" if m.get("profile") == "cpu" else f" (This is the `{m.get('profile')}` profile; the goal is the "
                                                        "`cpu` profile's.)")))


@part(NB03, "goal")
def _03_goal_part(m: dict) -> list[str]:
    return [_03_goal(m)]


def _budget_index(xs: Sequence[float], eps: float) -> int:
    return min(range(len(xs)), key=lambda i: abs(xs[i] - eps))


@part(NB03, "accuracy_vs_eps")
def _03_accuracy_vs_eps(m: dict) -> list[str]:
    c = m["curves"]["pgd20_accuracy_vs_eps"]
    xs, n = c["x"], int(m["values"]["n_curve"])
    std, sat = c["series"]["Standard"], c["series"]["SAT (last)"]
    i = _budget_index(xs, m["eps"])
    per = lambda y, a, b: 100 * (y[a] - y[b]) / ((xs[b] - xs[a]) * 255)  # points lost per 1/255
    first = f"{pct(std[1])} at ε = {eps_text(xs[1])} and " if i > 1 else ""
    out = [f"PGD-20 (step 2.5ε/20) on the first {n} test images: the standard model keeps {first}{pct(std[i])} at "
           f"8/255; the SAT model goes from {pct(sat[0])} at ε = 0 to "
           f"{pct(sat[i])} at its training budget 8/255 and {pct(sat[-1])} at ε = {eps_text(xs[-1])}: it loses "
           f"{per(sat, 0, i):.1f} points per 1/255 up to the budget and {per(sat, i, len(xs) - 1):.1f} beyond it."]
    out.append("Beyond the training budget its accuracy keeps falling, by more than the 95% intervals."
               if clearly_above(sat[i], n, sat[-1], n) else
               "No fall beyond the training budget is measurable on these images.")
    return out


@part(NB03, "catastrophic_overfitting")
def _03_catastrophic_overfitting(m: dict) -> list[str]:
    co = m["values"]["catastrophic_overfitting"]
    gone = [f"{t} (held-out PGD-10 {pct(c['peak_pgd'])} at epoch {c['peak_epoch']:g}, {pct(c['final_pgd'])} at the "
            f"end, FGSM {pct(c['final_fgsm'])})" for t, c in co.items() if c["collapsed"]]
    kept = [f"{t} (held-out PGD-10 {pct(c['final_pgd'])} at the end, peak {pct(c['peak_pgd'])})"
            for t, c in co.items() if not c["collapsed"]]
    n_mon = sorted({int(c["n"]) for c in co.values()})
    first = next(iter(co.values()))
    return ["Catastrophic overfitting (`checks.catastrophic_overfitting` on the per-epoch monitor of "
            f"{', '.join(map(str, n_mon))} held-out images): "
            + (f"collapsed: {'; '.join(gone)}. " if gone else "no run collapsed within this budget. ")
            + (f"Did not collapse: {'; '.join(kept)}." if kept else "Every run collapsed."),
            f"On the first {first['n_test']} test images (step 2/255): " + "; ".join(
                f"{t} FGSM {pct(c['test_fgsm'])}, PGD-20 {pct(c['test_pgd20'])}" for t, c in co.items()) + "."]


@part(NB03, "pgd20_figures")
def _03_pgd20_figures(m: dict) -> list[str]:
    tab = table(m, "rslad_columns")
    meta = tab["columns_meta"]["PGD_SAT"]
    a = meta["attack"]
    figures = [f"{pct(tab['rows']['SAT (last)']['PGD_SAT'])} in the table's PGD_SAT column (step {eps_text(a['alpha'])}, "
               f"{a.get('random_start', 'uniform')} random start, {meta['n']} images)"]
    aa = m.get("tables", {}).get("autoattack")
    if aa:
        col = kind_column(aa, "pgd")
        figures.append(f"{pct(aa['rows']['SAT (last)'][col])} beside AutoAttack (the same attack, other random starts, "
                       f"the first {n_of(aa, col)} images)")
    c = m.get("curves", {}).get("pgd20_accuracy_vs_eps")
    if c:
        i = _budget_index(c["x"], m["eps"])
        figures.append(f"{pct(c['series']['SAT (last)'][i])} on the ε curve at 8/255 (step 2.5ε/20 = "
                       f"{eps_text(2.5 * c['x'][i] / 20)}, the first {int(m['values']['n_curve'])} images)")
    return [f"SAT (last) has {len(figures)} PGD-20 figures in this notebook: " + "; ".join(figures) + ". They differ "
            "in step size, images or random start, so they are not compared with one another; notebook 06 measures "
            "this checkpoint once more, with other random starts."]


@register(NB03)
def pgd_training_cifar10(m: dict) -> list[str]:
    tab = table(m, "rslad_columns")
    rows, n = tab["rows"], n_of(tab, "Clean")
    std, sat, best = rows["Standard"], rows["SAT (last)"], rows["SAT (best)"]
    n_p = n_of(tab, "PGD_SAT", n)
    minutes = m.get("train_seconds", {}).get("SAT", 0) / 60
    out = [f"Standard training ({run_text(m, 'Standard') or 'the standard run'}) reaches {pct(std['Clean'])} clean "
           f"accuracy on {n} images of {m.get('data', 'CIFAR-10')} and {pct(std['PGD_SAT'])} under PGD_SAT (PGD-20, "
           f"step 2/255) at ε = 8/255."]
    worst = f", {pct(sat['All attacks'])} under every attack per image" if "All attacks" in sat else ""
    out.append(f"SAT ({run_text(m, 'SAT')}; {minutes:.1f} minutes of training), last checkpoint: {pct(sat['Clean'])} "
               f"clean, {pct(sat['PGD_SAT'])} PGD_SAT, {pct(sat['CW∞'])} CW∞{worst}, on the same images. Against the "
               f"standard model it "
               + verdict(sat["PGD_SAT"], n_p, std["PGD_SAT"], n_p, f"gains {pts(sat['PGD_SAT'] - std['PGD_SAT'])}",
                         f"loses {pts(sat['PGD_SAT'] - std['PGD_SAT'])}", "gains nothing measurable")
               + " under PGD_SAT and "
               + verdict(std["Clean"], n, sat["Clean"], n, f"costs {pts(std['Clean'] - sat['Clean'])} of clean accuracy",
                         f"gains {pts(std['Clean'] - sat['Clean'])} of clean accuracy", "costs no clean accuracy "
                         "measurable on these images") + ", by the 95% intervals.")
    aa = m.get("tables", {}).get("autoattack")
    if aa:
        r, pgd = aa["rows"]["SAT (last)"], kind_column(aa, "pgd")
        col = autoattack_col(aa)
        n_aa = n_of(aa, col)
        text = (f"On the first {n_aa} images, SAT (last) keeps {pct(r[pgd])} under PGD-20 and {pct(r[col])} under "
                f"{col}: " + attack_gap_text(aa, "SAT (last)", pgd, col))
        gap = m.get("values", {}).get("autoattack_gap")
        if gap:
            text += (f" On the first {gap['n']}, the standard AutoAttack leaves {pct(gap['standard'])} against "
                     f"{pct(gap['partial'])} for {gap['partial_attack']} (a gap of {pts(gap['gap'])}).")
        out.append(text)
    t = m.get("best_vs_last")
    if best == sat:
        out.append("SAT's best checkpoint by the held-out monitor is its last epoch: one set of weights.")
    elif t:
        out.append(f"SAT's best checkpoint by the held-out monitor scores {pct(t['b'])} under PGD_SAT, the last "
                   f"{pct(t['a'])} ({t['n']} images; {t['a_only']} only the last keeps, {t['b_only']} only the best; "
                   f"McNemar {p_text(t['p_value'])}, {chance(t['p_value'])}).")
    ro = m.get("values", {}).get("robust_overfitting", {})
    if ro:
        seen = [t for t, r in ro.items() if r["last_pgd"] < stats.interval(r["best_pgd"], r["n"])[0]]
        out.append("Robust overfitting: " + (f"measurable in {', '.join(seen)}" if seen else
                                             "no run shows a drop beyond its monitor's 95% interval within this budget")
                   + " (" + "; ".join(f"{t}: best epoch {r['best_epoch']} of {r['epochs']}, last "
                                      f"{pts(r['best_pgd'] - r['last_pgd'])} below the peak" for t, r in ro.items()) + ").")
    co = m.get("values", {}).get("catastrophic_overfitting", {})
    if co:
        hit = [t for t, c in co.items() if c["collapsed"]]
        out.append("Catastrophic overfitting: " + (", ".join(hit) + " collapsed" if hit else
                                                   f"none of the {len(co)} single-step runs collapsed within this budget")
                   + "; test PGD-20: " + ", ".join(f"{t} {pct(c['test_pgd20'])}" for t, c in co.items()) + ".")
    if "goal" in m:
        out.append(_03_goal(m))
    return out


# ------------------------------------------------------------------ 04


NB04 = "04_trades_mart_cifar10"


def paired_line(name: str, t: dict, checkpoint: str) -> str:
    """One McNemar test ``{"column", "n", "a", "b", "a_only", "b_only", "p_value"}`` of runs ``"<A> vs <B>"``."""
    a, b = name.split(" vs ")
    return (f"{a} vs {b} ({t['column']}, {checkpoint} checkpoints, {t['n']} images): {pct(t['a'])} vs {pct(t['b'])}, "
            f"{signed(t['a'] - t['b'])}; {images(t['a_only'])} only {a} keeps, {t['b_only']} only {b}; "
            f"{p_text(t['p_value'])}, {chance(t['p_value'])}.")


def _04_orderings(m: dict) -> list[str]:
    tab, _, _, titles, _ = checkpoint_rows(m, "best")
    out = []
    for name, tests in paired_in_order(m, titles):
        a, b = name.split(" vs ")
        text = ordering_vs_paper(m, tab, a, b, "best", tests)
        if text:
            out.append(text)
    return out


@part(NB04, "paired")
def _04_paired(m: dict) -> list[str]:
    titles = checkpoint_rows(m, "best")[3]
    return ([paired_line(k, t["PGD_SAT"], "best") for k, t in paired_in_order(m, titles)] + _04_orderings(m)
            + [SEEDS])


def _04_sweep(m: dict) -> list[str]:
    tab = table(m, "beta_sweep")
    rows, n = tab["rows"], n_of(tab, "Clean")
    col = kind_column(tab, "pgd")
    betas = sorted(rows, key=lambda r: float(r.split("=")[1]))
    lo, hi = rows[betas[0]], rows[betas[-1]]
    moved = lambda c: verdict(hi[c], n, lo[c], n, f"rises by {pts(hi[c] - lo[c])}", f"falls by {pts(hi[c] - lo[c])}",
                              "moves within the noise")
    text = (f"TRADES β sweep (one model per β, last checkpoints, first {n} test images): "
            + ", ".join(f"{r.replace('=', ' = ')}: {pct(rows[r]['Clean'])} clean / {pct(rows[r][col])} {col}"
                        for r in betas)
            + f". From {betas[0].replace('=', ' = ')} to {betas[-1].replace('=', ' = ')} clean accuracy {moved('Clean')} "
              f"and {col} accuracy {moved(col)}, by the 95% intervals")
    trade = compare(hi["Clean"], n, lo["Clean"], n) == "below" and compare(hi[col], n, lo[col], n) == "above"
    return [text + (": the larger β buys robustness with clean accuracy, the trade-off TRADES is named for." if trade
                    else ": no trade-off measurable between these two β on these images.")]


@part(NB04, "beta_sweep")
def _04_beta_sweep(m: dict) -> list[str]:
    return _04_sweep(m)


@register(NB04)
def trades_mart_cifar10(m: dict) -> list[str]:
    tab, rows, n, titles, aa = checkpoint_rows(m, "best")
    first = m.get("runs", {}).get(titles[0], {})
    same = [t for t in titles if rows[f"{t} (best)"] == rows.get(f"{t} (last)")]
    out = [f"Same net ({first.get('model', '?')}), same attack budget, same epochs ({first.get('epochs', 0):g}), best "
           f"checkpoints on {n} test images" + (f" ({aa} on the first {n_of(tab, aa)})" if aa else "") + ": "
           + "; ".join(f"{t} {pct(rows[f'{t} (best)']['Clean'])} clean / {pct(rows[f'{t} (best)']['PGD_SAT'])} PGD_SAT"
                       + (f" / {pct(rows[f'{t} (best)'][aa])} {aa}" if aa else "") for t in titles) + "."
           + (f" For {', '.join(same)} the best epoch was the last (one set of weights)." if same else "")]
    out.append(leader_text(m, tab, titles, "best"))
    if aa:
        n_aa = n_of(tab, aa)
        ivs = [stats.interval(rows[f"{t} (best)"][aa], n_aa) for t in titles]
        out.append(f"{aa} on {n_aa} images: " + (
            "the 95% intervals of the best checkpoints overlap, so it does not rank them here."
            if max(lo for lo, _ in ivs) <= min(hi for _, hi in ivs) else
            "the 95% intervals of the best checkpoints do not all overlap (highest: "
            f"{max(titles, key=lambda t: rows[f'{t} (best)'][aa])})."))
    if m.get("paired"):
        out.append("Paired tests (PGD_SAT, best checkpoints, the same images): " + "; ".join(
            f"{k} {signed(t['PGD_SAT']['a'] - t['PGD_SAT']['b'])} ({p_text(t['PGD_SAT']['p_value'])})"
            for k, t in paired_in_order(m, titles)) + ".")
        out += _04_orderings(m)
        out.append(SEEDS)
    if "beta_sweep" in m.get("tables", {}):
        out += _04_sweep(m)
    return out


# ------------------------------------------------------------------ 05


NB05 = "05_rslad_distillation_cifar10"
SEEDS_05 = SEEDS.replace("(notebook 05 points to a benchmark with several seeds)",
                         "(`benchmarks/results/distill_ablation.md` trains three seeds of a smaller budget)")


def _05_soft(m: dict) -> list[str]:
    tab = table(m, "soft_label_stability")
    n = int(m["values"]["n_soft"])
    t_name, s_name = sorted(tab["rows"], key=lambda r: "teacher" not in r.lower())[:2]  # the teacher's row first
    t, s = tab["rows"][t_name], tab["rows"][s_name]
    changed, on_adv, on_x, kl = "prediction changed", "true class on x'", "true class on x", "KL(p(x) ‖ p(x'))"
    out = [f"Over the first {n} test images, each model's prediction on its own PGD-10 example x' differs from its "
           f"prediction on x for {pct(t[changed])} of the images for the {t_name} and {pct(s[changed])} for the "
           f"{s_name}; the true class keeps on average {pct(t[on_adv])} of the teacher's probability on x' "
           f"({pct(t[on_x])} on x) against {pct(s[on_adv])} ({pct(s[on_x])}), and the soft labels move by "
           f"{t[kl]:.2f} nats (KL) against {s[kl]:.2f}."]
    fewer = clearly_above(s[changed], n, t[changed], n)
    moves = stats.interval(t[changed], n)[0] > 0
    out.append(("The robust teacher's predictions change less often inside the ball than the natural model's, beyond "
                "the 95% intervals" if fewer else
                "The robust teacher's predictions do not change measurably less often inside the ball than the natural "
                "model's")
               + (f"; but they do change, on {pct(t[changed])} of the images: robust soft labels are steadier, not "
                  "fixed." if moves else "."))
    return out


@part(NB05, "soft_labels")
def _05_soft_labels(m: dict) -> list[str]:
    return _05_soft(m)


def _05_goal(m: dict, short: bool = False) -> list[str]:
    g = m["goal"]
    col, tests = g["column"], g["tests"]
    out = []
    if not short:
        for other, ts in tests.items():
            t, tp = ts[col], ts["PGD_SAT"]
            out.append(paired_line(f"RSLAD vs {other}", t, "last")[:-1]
                       + f"; under PGD_SAT on all {tp['n']} images: {pct(tp['a'])} vs {pct(tp['b'])}, {p_text(tp['p_value'])}.")
    won = {o: ts[col]["a"] > ts[col]["b"] and ts[col]["p_value"] < 0.05 for o, ts in tests.items()}
    out.append(f"Goal (RSLAD beats {' and '.join(tests)} under {col}, paired test at 95%): "
               + ("met: the RSLAD student is ahead of both beyond what the choice of test images explains." if all(
                   won.values()) else "not met on this run: " + "; ".join(
                   f"against {o}, " + ("ahead beyond chance" if won[o] else
                                       f"behind by {pts(ts[col]['b'] - ts[col]['a'])}" + (" (beyond chance)" if ts[col]["p_value"] < 0.05 else " (within chance)")
                                       if ts[col]["a"] < ts[col]["b"] else
                                       f"ahead by {pts(ts[col]['a'] - ts[col]['b'])} but within chance ({p_text(ts[col]['p_value'])})")
                   for o, ts in tests.items()) + "."))
    if not short:
        out.append(SEEDS_05)
    return out


def _05_teacher(m: dict) -> str:
    t_tab, tab = table(m, "teacher"), table(m, "rslad_columns")
    t, n = t_tab["rows"]["teacher"], n_of(t_tab, "Clean")
    info = m.get("teacher", {})
    sat = tab["rows"].get("SAT (last)")
    text = (f"Teacher: `{info.get('model', '?')}` ({info.get('parameters', 0) / 1e6:.2f}M parameters; {info.get('source', '')}): "
            f"{pct(t['Clean'])} clean, {pct(t['PGD_SAT'])} PGD_SAT on the {n} test images")
    if sat is not None and n_of(tab, "PGD_SAT") == n_of(t_tab, "PGD_SAT"):
        n_p = n_of(tab, "PGD_SAT")
        paper_t = next(a for a in reference.ANCHORS if a.model == "WRN-34-10" and a.method == "TRADES").robust / 100
        paper_sat = paper_row("pgd", "best", "PGD_SAT")
        text += (f", {signed(t['PGD_SAT'] - sat['PGD_SAT'])} against the SAT student's last checkpoint on the same images "
                 f"({compare(t['PGD_SAT'], n_p, sat['PGD_SAT'], n_p)} it by the 95% intervals). In the RSLAD paper the "
                 f"WRN-34-10 TRADES teacher ({pct(paper_t)} PGD-20, TRADES README) stands {pts(paper_t - paper_sat)} "
                 f"above the SAT ResNet-18 ({pct(paper_sat)} PGD_SAT, best checkpoint).")
    else:
        text += "."
    return text


@part(NB05, "seeds")
def _05_seeds(m: dict) -> list[str]:
    """The goal's comparisons on several seeds, from ``benchmarks/distill_ablation.py``'s committed results, which
    the notebook reads (``experiments.seed_benchmark``) and records under ``seed_benchmark``."""
    b = m.get("seed_benchmark")
    if not b or not b.get("goal"):
        return ["The benchmark with several seeds (`benchmarks/results/distill_ablation.json`) has no result on the "
                "goal's column here: run `python benchmarks/distill_ablation.py`."]
    g, rows = b["goal"], b["rows"]
    col, me = g["column"], g["student"]

    def ms(k: str) -> str:
        r = rows[k]
        return f"{r['label']} {100 * r['mean'][col]:.1f} ± {100 * r['sd'][col]:.1f}"

    out = [f"On {len(b['seeds'])} seeds of a smaller budget ({b['train_samples']:,} training images, {b['epochs']} epochs, "
           f"the same test images; `benchmarks/results/distill_ablation.md`, read here, not run), under {col} on the "
           f"first {g['n']} test images, mean ± standard deviation over seeds: "
           + "; ".join(ms(k) for k in (me, *g["against"])) + "."]
    for o, v in g["against"].items():
        out.append(f"{rows[me]['label']} − {rows[o]['label']}: {signed(v['diff'])} on average, against a standard "
                   f"deviation over seeds of {pts(v['sd'])}: " + ("above by more than it" if v["higher"] else
                                                             "below by more than it" if v["diff"] < -v["sd"] else
                                                             "within it")
                   + "; per seed " + ", ".join(f"{signed(t['diff'])} ({p_text(t['p_value'])})" for t in v["seeds"].values())
                   + " (McNemar, the choice of test images).")
    ab = b.get("ablation")
    if ab:
        out.append(f"The paper's ablation, on these seeds: robust soft labels − a natural teacher's soft labels "
                   f"{signed(ab['diff'])} under {col} (standard deviation over seeds {pts(ab['sd'])}), "
                   + ("beyond the seeds' spread: the robust teacher's labels help." if ab["higher"] else
                      "within the seeds' spread: no effect of the teacher's robustness is shown on this budget."))
    out.append(f"Goal on the seeds (RSLAD's mean above SAT's and ARD's by more than the seeds' standard deviation): "
               + ("met." if g["met"] else "not met on this budget.")
               + ("" if b.get("largest_autoattack_gap") is None else
                  " APGD-CE+T stands in for AutoAttack there: on the first 200 images of each run the standard version "
                  + (f"lowered it by at most {pts(b['largest_autoattack_gap'])}." if b["largest_autoattack_gap"] > 0 else
                     "broke no image more.")))
    return out


@part(NB05, "goal")
def _05_goal_part(m: dict) -> list[str]:
    out = _05_goal(m)
    if not m["goal"]["met"]:
        out.append(_05_teacher(m))
    return out


@register(NB05)
def rslad_distillation_cifar10(m: dict) -> list[str]:
    tab, rows, n, titles, aa = checkpoint_rows(m, "last")
    runs = m.get("runs", {})
    out = [_05_teacher(m)]
    if "soft_label_stability" in m.get("tables", {}):
        out.append(_05_soft(m)[1])
    first = runs.get(titles[0], {})
    minutes = sum(m.get("train_seconds", {}).get(t, 0) for t in titles) / 60
    out.append(f"{len(titles)} `{first.get('model', '?')}` students, {first.get('epochs', 0):g} epochs each, "
               f"{minutes:.{0 if minutes >= 10 else 1}f} min of training in all; last checkpoints on {n} test images"
               + (f" ({aa} on the first {n_of(tab, aa)})" if aa else "") + ": "
               + "; ".join(f"{t} {pct(rows[f'{t} (last)']['Clean'])} clean / {pct(rows[f'{t} (last)']['PGD_SAT'])} PGD_SAT"
                           + (f" / {pct(rows[f'{t} (last)'][aa])} {aa}" if aa else "") for t in titles) + ".")
    scales = {t: r.get("loss_scale") for t, r in runs.items() if r.get("loss_scale") is not None}
    if scales and len(set(scales.values())) > 1:
        out.append("Each student's loss is scaled as its recipe says (one search on the held-out monitor, the same for "
                   "every method): " + ", ".join(f"{t} ×{s:g}" for t, s in scales.items()) + ".")
    if "goal" in m:
        out += _05_goal(m, short=True)
        out.append("Paired tests: " + " ".join(
            paired_line(f"RSLAD vs {o}", ts[m["goal"]["column"]], "last") for o, ts in m["goal"]["tests"].items())
                   + " " + SEEDS_05)
        for o, ts in m["goal"]["tests"].items():
            text = ordering_vs_paper(m, tab, "RSLAD", o, "last", ts)
            if text:
                out.append(text)
    if (m.get("seed_benchmark") or {}).get("goal"):
        seeds = _05_seeds(m)
        out += [seeds[0], seeds[-1]]  # the benchmark's seeds: its means, and the goal decided on them
    robust = [t for t in titles if t != "Natural"]
    if robust:
        # The goal's McNemar tests (RSLAD against SAT and ARD, the same images) rank those rows against the leader;
        # the other rows are ranked by their 95% intervals.
        goal = {f"RSLAD vs {o}": ts for o, ts in m.get("goal", {}).get("tests", {}).items()}
        order = leaders(tab, robust, "last")[0]
        out.append("Under PGD_SAT (last checkpoints): " + ", ".join(f"{t} {pct(rows[f'{t} (last)']['PGD_SAT'])}"
                                                                   for t in order) + ". "
                   + leader_text({**m, "paired": goal}, tab, robust, "last"))
    third = m.get("tables", {}).get("third_party")
    if third:
        name, r = next(iter(third["rows"].items()))
        nat = paper_row("standard", "last", "PGD_SAT")
        out.append(f"{name}: {pct(r['Clean'])} clean, {pct(r['PGD_SAT'])} PGD_SAT on its first {n_of(third, 'Clean')} "
                   f"images; the paper's Natural ResNet-18: {pct(reference.RSLAD_LAST[('ResNet-18', 'Natural')][0] / 100)} "
                   f"/ {pct(nat)}.")
    return out


# ------------------------------------------------------------------ 06


NB06 = "06_evaluating_robustness"


def _06_steps(m: dict) -> list[str]:
    c = m["curves"]["accuracy_vs_steps"]
    xs, n = c["x"], int(m["values"]["n_steps_images"])
    i20, i50 = xs.index(20), xs.index(50)
    out = []
    for name, y in c["series"].items():
        fgsm, pgd50 = y[0], y[i50]
        gap = verdict(fgsm, n, pgd50, n, "beyond the 95% intervals: the loss curves inside the ball enough that more "
                      "steps find adversarial examples one step misses",
                      "below it beyond the 95% intervals: a sign that PGD is failing here, not that FGSM is strong",
                      "within the 95% intervals: on this model one step finds about what fifty find, as expected where "
                      "the loss is close to linear inside the ball (PGD training tends to make it so)")
        more = verdict(y[i20], n, pgd50, n, "beyond the 95% intervals: more steps still find adversarial examples",
                       "above PGD-20 beyond the 95% intervals: the random starts matter here",
                       "within the noise: 20 steps suffice here")
        out.append(f"{name}: FGSM {pct(fgsm)}, PGD-10 {pct(y[xs.index(10)])}, PGD-50 {pct(pgd50)} on the same {n} images; "
                   f"FGSM is {signed(fgsm - pgd50)} from PGD-50, {gap}. From PGD-20 to PGD-50: {signed(pgd50 - y[i20])}, "
                   f"{more}.")
    return out


@part(NB06, "steps")
def _06_steps_part(m: dict) -> list[str]:
    return _06_steps(m)


def _06_masked(m: dict) -> list[str]:
    tab = table(m, "masked_models")
    flags = m["masked_flags"]
    n = n_of(tab, "Clean")
    pgd = next(c for c in tab["columns"] if tab["columns_meta"][c]["attack"].get("kind") == "pgd")
    out = []
    for name, r in tab["rows"].items():
        worst = r.get("All attacks")
        n_w = n_of(tab, "All attacks", n)
        text = f"{name}: {pgd} {pct(r[pgd])}"
        if worst is not None:
            text += (f", worst case over every attack {pct(worst)} ({n_w} images): "
                     + verdict(r[pgd], n_of(tab, pgd, n), worst, n_w, f"{pgd} overstates its robustness by "
                               f"{pts(r[pgd] - worst)}", "—", f"{pgd} agrees with the worst case"))
        raised = sorted(set(flags.get(name, [])))
        out.append(text + "; flags raised: " + (", ".join(raised) if raised else "none") + ".")
    masked = [k for k in tab["rows"] if k != next(iter(tab["rows"]))]
    caught = all(flags.get(k) for k in masked)
    out.append("Every masked model raised at least one flag." if caught else
               "Not every masked model raised a flag here: read the table, not only the flags.")
    return out


@part(NB06, "masked")
def _06_masked_part(m: dict) -> list[str]:
    return _06_masked(m)


def _06_weak(m: dict) -> str:
    tab = table(m, "weak_attack")
    (name, r), = tab["rows"].items()
    meta = tab["columns_meta"]
    n = n_of(tab, "Clean")
    fgsm = next(c for c in tab["columns"] if meta[c]["attack"].get("kind") == "fgsm")
    kl = next(c for c in tab["columns"] if meta[c]["attack"].get("loss") == "kl")
    ce = next(c for c in tab["columns"] if meta[c]["attack"].get("kind") == "pgd" and meta[c]["attack"].get("loss") == "ce")
    flagged = [f for f in m.get("values", {}).get("weak_flags", []) if kl in f]
    return (f"{name}, first {n} images: {fgsm} {pct(r[fgsm])}, {ce} {pct(r[ce])} (the PGD_TRADES column), {kl} "
            f"{pct(r[kl])}. {kl} is " + verdict(r[kl], n, r[fgsm], n, "above one FGSM step beyond the 95% intervals: a "
                                                 "multi-step attack weaker than FGSM, the attack failing, not the model "
                                                 "resisting", "below FGSM", "within the noise of FGSM")
            + (f"; the check fired ({', '.join(flagged)})." if flagged else "; no check fired on it."))


@part(NB06, "weak_attack")
def _06_weak_part(m: dict) -> list[str]:
    return [_06_weak(m)]


def _06_best_last(m: dict) -> str:
    b = m["best_vs_last"]
    t = b["test"]  # last (a) against best (b)
    pick = ("the monitor's pick was the worse one here: report the last checkpoint, or a monitor large enough to rank "
            "epochs" if t["a"] > t["b"] and t["p_value"] < 0.05 else
            "the monitor's pick was the better one here" if t["b"] > t["a"] and t["p_value"] < 0.05 else
            "the test images do not separate them beyond chance")
    same = (f" Notebook 03's table gives the last checkpoint {pct(b['table_last'])} under the same attack on the same "
            "images, with other random starts." if b.get("table_last") is not None else "")
    return (f"The monitor ({b['n_monitor']} held-out images, PGD-{b['monitor_steps']}) picked epoch {b['best_epoch']} of "
            f"{b['epochs']}. On {t['n']} test images, under {t['column']} from a uniform random start, the last checkpoint scores "
            f"{pct(t['a'])} and the best {pct(t['b'])} ({signed(t['a'] - t['b'])} for the last; McNemar "
            f"{p_text(t['p_value'])}): {pick}." + same)


@part(NB06, "best_vs_last")
def _06_best_last_part(m: dict) -> list[str]:
    return [_06_best_last(m)]


def _06_checks(m: dict) -> list[str]:
    cc = m["course_checks"]
    read = {nb: c for nb, c in cc.items() if c["evaluations"]}
    none = [nb for nb, c in cc.items() if not c["evaluations"]]
    out = ["Sanity checks recorded by the course's notebooks in this profile: " + (
        "; ".join(f"notebook {nb[:2]}: {c['evaluations']} evaluations, {c['flagged']} with a raised flag"
                  for nb, c in read.items()) if read else "none") + "."]
    if none:
        out.append(f"Nothing to read for notebook{'s' if len(none) > 1 else ''} {', '.join(nb[:2] for nb in none)}: "
                   "its metrics.json is missing or holds no recorded checks (it ran before the checks were recorded "
                   "there); re-run it to see its verdicts here.")
    return out


@part(NB06, "course_checks")
def _06_checks_part(m: dict) -> list[str]:
    return _06_checks(m)


@register(NB06)
def evaluating_robustness(m: dict) -> list[str]:
    out = []
    if "accuracy_vs_steps" in m.get("curves", {}):
        out += _06_steps(m)
    if "masked_models" in m.get("tables", {}):
        out.append("Masked models: " + " ".join(_06_masked(m)))
    if "weak_attack" in m.get("tables", {}):
        out.append(_06_weak(m))
    if "best_vs_last" in m:
        out.append("Best or last, notebook 03's SAT run. " + _06_best_last(m))
    if "course_checks" in m:
        out += _06_checks(m)
    return out
