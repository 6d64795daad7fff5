"""The experiments of the CIFAR-10 notebooks (03–06), so that their cells declare what to run and show the figures.

A notebook names its runs by recipe (:mod:`advlib.recipes`) and titles them (``{"SAT": "cifar_s_sat", ...}``);
this module does the rest, the same way in every notebook:

* **Where runs live.** One convention: the run of recipe ``cifar_s_sat`` of notebook ``04_trades_mart_cifar10``
  in profile ``cpu`` is ``runs/cpu/04_trades_mart_cifar10/s_sat/`` (:func:`run_key`, :func:`run_dir`).
  :func:`configs` builds a notebook's configs into its folder; :func:`course_model`, :func:`course_checkpoint`
  and :func:`course_metrics` find what *another* notebook trained or measured, and say what to run when it is
  missing.
* **Training a list of recipes**: :func:`train_all` (a finished run is reused, an interrupted one resumes) and
  its :func:`timing_table`.
* **Best and last checkpoints in the paper's columns**: :func:`evaluate_checkpoints` evaluates each run's
  ``best.pt`` and ``last.pt`` (once when the best epoch was the last) with :func:`paper_columns`
  (:func:`advlib.evaluate.rslad_columns` with a profile's AutoAttack settings); :func:`paper_table` records them
  in ``metrics.json`` and writes the Markdown; :func:`beside_paper` sets the RSLAD paper's rows beside ours.
  Paired tests between rows of the same images: :func:`advlib.results.paired`.
* **Channels-last where a model is loaded**: :func:`load` gives a run's model in the memory format its config
  trained in (:func:`advlib.checkpoints.load_model`), :func:`channels_last` one from elsewhere.

The order of the work is the notebooks' own: building a model draws from PyTorch's random numbers, and so do
the attacks' random starts, so these functions load and evaluate in the order a notebook's loop would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attacks, checkpoints, data, evaluate, losses, paths, record, recipes, reference, tables, train, utils
from .config import TrainConfig
from .results import counts, gap_table, intervals, percent_table

CHECKPOINTS = ("best", "last")  # the two checkpoints every run keeps, in the order tables show them
PREFIXES = ("cifar_d_", "cifar_")  # the course's recipe prefixes, left out of a run's folder name
SUFFIXES = ("_gpu",)  # the papers' settings, left out too: cifar_sat_gpu runs where cifar_sat does


# --------------------------------------------------------------------------- where runs live


def run_key(recipe: str) -> str:
    """The folder of a recipe's run inside its notebook's folder: the recipe's name without the course's prefix
    (``cifar_d_``, ``cifar_``) and the papers' suffix (``_gpu``): ``cifar_sat`` -> ``sat``, ``cifar_d_rslad`` ->
    ``rslad``, ``cifar_trades_gpu`` -> ``trades``; a name without them (a key) is its own folder."""
    key = next((recipe[len(p):] for p in PREFIXES if recipe.startswith(p)), recipe)
    key = next((key[:-len(s)] for s in SUFFIXES if key.endswith(s)), key)
    if not key or "/" in key or key in (".", ".."):
        raise ValueError(f"{recipe!r} names no run folder")
    return key


def run_dir(notebook: str, recipe: str, profile: str) -> Path:
    """Where ``notebook`` trains ``recipe`` in ``profile``: ``runs/<profile>/<notebook>/<run_key(recipe)>``
    (under ``ADVLIB_RUNS`` when set, as :func:`advlib.record.runs_root`)."""
    return notebook_dir(notebook, profile) / run_key(recipe)


def notebook_dir(notebook: str, profile: str) -> Path:
    """The folder of ``notebook``'s runs in ``profile``: ``runs/<profile>/<notebook>`` (under ``ADVLIB_RUNS`` when
    set, as :func:`advlib.record.runs_root`)."""
    return record.runs_root() / record.check_profile(profile) / notebook


def titled(names: Sequence[str]) -> dict[str, str]:
    """``{title: recipe}`` for recipe names, each titled as its recipe is (``recipes.get(name).title``)."""
    out = {recipes.get(n).title: n for n in names}
    if len(out) != len(names):
        raise ValueError(f"the recipes {list(names)} share a title; name their runs yourself")
    return out


def configs(runs: Mapping[Any, str], folder: os.PathLike, epochs_scale: float = 1.0, *,
            teacher: Optional[str] = None, **overrides: Any) -> dict[Any, TrainConfig]:
    """``{title: TrainConfig}`` of ``runs`` (``{title: recipe}``), each writing to ``folder/<run_key(recipe)>``
    (``folder``: the notebook's run folder, ``run.dir``), with ``epochs_scale`` and ``overrides`` as
    :func:`advlib.recipes.config` takes them. ``teacher`` (a checkpoint) goes to the runs whose method distils."""
    out = {}
    for title, name in runs.items():
        kw = dict(overrides)
        if teacher is not None and losses.get_method(recipes.get(name).settings["method"]).teacher:
            kw["teacher"] = teacher
        out[title] = recipes.config(name, epochs_scale=epochs_scale, out_dir=str(Path(folder) / run_key(name)), **kw)
    return out


def course_checkpoint(notebook: str, recipe: str, profile: str, checkpoint: str = "last") -> Path:
    """The checkpoint ``best.pt`` or ``last.pt`` of the run of ``recipe`` that ``notebook`` trained in ``profile``;
    FileNotFoundError, saying what to run, when that notebook has not trained it."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}; got {checkpoint!r}")
    path = run_dir(notebook, recipe, profile) / f"{checkpoint}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{paths.shown(path)} is missing: {_run_first(notebook, profile)}")
    return path


def course_model(notebook: str, recipe: str, profile: str, checkpoint: str = "last",
                 channels_last: Optional[bool] = None) -> nn.Module:
    """The model another notebook of the course trained in this profile (:func:`course_checkpoint`), loaded as
    :func:`load` loads it."""
    return load(course_checkpoint(notebook, recipe, profile, checkpoint), channels_last=channels_last)


def course_metrics(notebook: str, profile: str, recipe: Optional[str] = None, missing_ok: bool = False) -> dict:
    """The ``metrics.json`` of ``notebook`` in ``profile`` (with ``recipe``: of that run's training); ``{}`` for a
    missing file when ``missing_ok``, else FileNotFoundError saying what to run."""
    path = (run_dir(notebook, recipe, profile) if recipe else notebook_dir(notebook, profile)) / "metrics.json"
    if path.exists():
        return utils.read_json(path)
    if missing_ok:
        return {}
    raise FileNotFoundError(f"{paths.shown(path)} is missing: {_run_first(notebook, profile)}")


def _run_first(notebook: str, profile: str) -> str:
    return (f"run notebook {notebook} in the {profile!r} profile first "
            f"(python -m advlib.course run --profile {profile} --only {notebook}).")


# --------------------------------------------------------------------------- models


def load(source: Union[TrainConfig, os.PathLike, str], checkpoint: str = "last",
         channels_last: Optional[bool] = None) -> nn.Module:
    """The model of a run, float32 in eval mode: ``source`` a :class:`~advlib.config.TrainConfig` (its
    ``out_dir``), a run's folder or a checkpoint file; ``checkpoint`` ``"best"`` or ``"last"`` for the first two.
    In channels-last memory when the run trained so (``channels_last=None``) or when told."""
    path = Path(source.out_dir) if isinstance(source, TrainConfig) else Path(source)
    if path.suffix != ".pt":
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}; got {checkpoint!r}")
        path = path / f"{checkpoint}.pt"
    return checkpoints.load_model(path, channels_last=channels_last)


def channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """``model`` (one not loaded by :func:`load`: a teacher, a checkpoint from other code) in channels-last
    memory when ``enabled``: faster float32 convolutions on CPUs for the evaluation."""
    return model.to(memory_format=torch.channels_last) if enabled else model


def cifar_test(run: record.Run, source: str) -> data.Dataset:
    """The CIFAR-10 test images of ``source`` (``data.load``), recorded as the run's data and named."""
    test = data.load("cifar10", "test", source=source)
    run.set_data(test)
    print(f"test images: {test.label}, {len(test)} images")
    return test


RUN_SETTINGS = ("model", "method", "epochs", "schedule", "lr", "steps", "loss_scale")


def run_settings(configs: Mapping[str, TrainConfig], keys: Sequence[str] = RUN_SETTINGS) -> dict[str, dict]:
    """``{title: {setting: value}}`` of a notebook's runs, to record in its metrics (``run.set(runs=...)``), so that
    its findings can say what each run was; ``train_images``: the images a run trains on after its held-out split
    (None for the whole training set); ``folder``: the name of its run folder."""
    out = {}
    for title, c in configs.items():
        n = c.train_samples
        out[str(title)] = {**{k: getattr(c, k) for k in keys},
                           "train_images": None if n is None else n - train.holdout_size(c, n),
                           "folder": Path(c.out_dir).name if c.out_dir else None}
    return out


# --------------------------------------------------------------------------- training


def train_all(run: record.Run, configs: Mapping[str, TrainConfig], resume: Union[bool, str] = "if_same",
              reuse_from: Sequence[os.PathLike] = ()) -> dict:
    """Train each run of ``{title: TrainConfig}`` in order (``resume="if_same"``: a finished run is reused, an
    interrupted one resumes, one with other settings starts over), recording its training time in ``run``.
    ``reuse_from``: other notebooks' folders (:func:`notebook_dir`) where a finished run with the same settings
    and data is copied from instead of trained again (:func:`advlib.train.adopt_finished`).
    Returns ``{title: train.fit(...) metrics}``."""
    fits = {}
    for name, cfg in configs.items():
        print(f"== {name}")
        fits[name] = train.fit(cfg, resume=resume, reuse_from=reuse_from)
        run.train_time(str(name), fits[name]["train_seconds"])
    return fits


def peak_and_last(history: Sequence[dict], cfg: TrainConfig) -> dict:
    """A run's held-out PGD accuracy at its best epoch (the first of the highest, as ``best.pt``) and at its last,
    with the monitor's size and steps: ``{"best_epoch", "epochs", "best_pgd", "last_pgd", "n", "steps"}``."""
    pgd = [h["holdout_pgd"] for h in history]
    best = max(range(len(pgd)), key=lambda i: (pgd[i], -i))
    return {"best_epoch": best + 1, "epochs": len(pgd), "best_pgd": pgd[best], "last_pgd": pgd[-1],
            "n": cfg.eval_samples, "steps": cfg.eval_steps}


TIMING_COLUMNS = ("model", "epochs", "training (min)", "best epoch", "held-out clean", "held-out PGD")


def timing_table(configs: Mapping[str, TrainConfig], fits: Mapping[str, dict],
                 columns: Sequence[str] = ("training (min)", "best epoch", "held-out clean", "held-out PGD"),
                 stub: str = "run") -> str:
    """A Markdown table of what each run of :func:`train_all` cost and reached on its held-out monitor, a row per
    run, ``columns`` out of :data:`TIMING_COLUMNS`. The monitor's PGD column is headed with its steps
    (``held-out PGD-10``), or each cell says them when the runs' monitors differ; '–' for a run without ε."""
    unknown = [c for c in columns if c not in TIMING_COLUMNS]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; choose out of {TIMING_COLUMNS}")
    steps = {c.eval_steps for c in configs.values()}
    pgd_header = f"held-out PGD-{next(iter(steps))}" if len(steps) == 1 else "held-out PGD"

    def cell(c: TrainConfig, f: dict, col: str) -> str:
        if col == "model":
            return c.model
        if col == "epochs":
            return f"{c.epochs:g}"
        if col == "training (min)":
            return f"{f['train_seconds'] / 60:.1f}"
        if col == "best epoch":
            return f"{f['best_epoch']} of {f['epochs_done']}"
        if col == "held-out clean":
            return f"{100 * f['final']['holdout_clean']:.1f}"
        pgd = f["final"].get("holdout_pgd")
        if not c.eps > 0 or pgd is None:
            return "–"
        return f"{100 * pgd:.1f}" + ("" if len(steps) == 1 else f" (PGD-{c.eval_steps})")

    rows = {n: {(pgd_header if col == "held-out PGD" else col): cell(c, fits[n], col) for col in columns}
            for n, c in configs.items()}
    return tables.markdown_table(rows, stub=stub, align="l" + "".join("l" if c == "model" else "r" for c in columns))


# --------------------------------------------------------------------------- the paper's columns


def paper_columns(model: nn.Module, dataset: Any, *, n: Optional[int] = None, n_aa: int = 0, aa_proxy: bool = False,
                  n_aa_check: int = 0, eps: float = recipes.CIFAR_EPS, **kw) -> dict:
    """:func:`advlib.evaluate.rslad_columns` with a profile's settings as the notebooks write them: AutoAttack on
    the first ``n_aa`` images (at most ``n``; 0: no AutoAttack), ``aa_proxy`` and ``n_aa_check`` (0: the default)
    as it takes them; ``kw`` (``state_path``, ``progress``...) to the evaluation."""
    n_first = min(n_aa, n) if (n_aa and n) else n_aa
    return evaluate.rslad_columns(model, dataset, eps=eps, n=n, n_aa=n_first or None, with_aa=n_aa > 0,
                                  aa_proxy=aa_proxy, n_aa_check=n_aa_check or None, **kw)


@dataclass
class Checkpoints:
    """What :func:`evaluate_checkpoints` measured: ``results`` (``{row: result}``, in table order), ``rows_meta``
    (each row's model, method and checkpoint, for :meth:`advlib.record.Run.results_table`), ``rows`` (each run's
    rows, ``{title: [row, ...]}``), ``same`` (the runs whose best epoch was the last: best.pt and last.pt hold the
    same weights) and ``models`` (``{row: model}``, when kept)."""
    results: dict[str, dict]
    rows_meta: dict[str, dict]
    rows: dict[str, list[str]]
    same: list[str]
    models: dict[str, nn.Module] = field(default_factory=dict)


def row_name(title: str, checkpoint: str) -> str:
    """The row of a run's checkpoint in a table: ``"SAT (best)"``."""
    return f"{title} ({checkpoint})"


def evaluate_checkpoints(configs: Mapping[str, TrainConfig], fits: Mapping[str, dict], dataset: Any,
                         which: Union[Sequence[str], Mapping[str, Union[str, Sequence[str]]]] = CHECKPOINTS,
                         by: str = "run", meta: Optional[Mapping[str, Mapping]] = None, keep_models: bool = False,
                         **settings: Any) -> Checkpoints:
    """Each run's checkpoints in the paper's columns (:func:`paper_columns` with ``settings``), resumable (the state
    beside each checkpoint: ``evaluation_best.json``, ``evaluation_last.json``).

    ``which``: the checkpoints of every run, evaluated in that order (``("last", "best")``: the last first), or
    ``{title: checkpoints}`` for some runs; a run given one checkpoint as a string is one row named by its title,
    otherwise each checkpoint is a row ``"<title> (<checkpoint>)"`` (:func:`row_name`). When a run's best epoch was
    its last (``fits``), its second checkpoint is not evaluated again: its row is the first one's result. Rows are
    ordered by run (``by="run"``: each run's best, then its last) or by checkpoint (``by="checkpoint"``: every
    run's best, then every run's last). ``meta``: ``{title: {key: value}}`` added to a run's rows' metadata (a
    method the table names otherwise). Each model is loaded channels-last when its run trained so (:func:`load`);
    ``keep_models`` keeps them in ``models``."""
    if by not in ("run", "checkpoint"):
        raise ValueError(f"by must be 'run' or 'checkpoint'; got {by!r}")
    plan = {t: ((c,) if isinstance(c, str) else tuple(c)) for t, c in
            (which.items() if isinstance(which, Mapping) else ((t, tuple(which)) for t in configs))}
    unknown = [t for t in plan if t not in configs]
    if unknown:
        raise ValueError(f"no run titled {unknown}; the runs: {list(configs)}")
    for title, cks in plan.items():
        if not cks or any(c not in CHECKPOINTS for c in cks) or len(set(cks)) != len(cks):
            raise ValueError(f"{title}: the checkpoints must be some of {CHECKPOINTS}, each once; got {cks}")
    single = {t for t, c in (which.items() if isinstance(which, Mapping) else ()) if isinstance(c, str)}
    name = {(t, ck): (t if t in single else row_name(t, ck)) for t, cks in plan.items() for ck in cks}
    same = [t for t in plan if fits[t]["best_epoch"] == fits[t]["epochs_done"]]
    results, rows_meta, models = {}, {}, {}
    for title, cks in plan.items():
        cfg = configs[title]
        for i, ck in enumerate(cks):
            row = name[title, ck]
            rows_meta[row] = {"model": cfg.model, "method": cfg.method,
                              **({} if title in single else {"checkpoint": ck}), **(meta or {}).get(title, {})}
            if i and title in same:  # the same weights as the checkpoint evaluated first
                results[row], models[row] = results[name[title, cks[0]]], models.get(name[title, cks[0]])
                continue
            print(f"== {row}")
            model = load(cfg, ck)
            state = Path(cfg.out_dir) / f"evaluation_{ck}.json"
            other = Path(cfg.out_dir) / f"evaluation_{next(c for c in CHECKPOINTS if c != ck)}.json"
            if title in same and not state.exists() and other.exists():
                state = other  # the same weights: the other checkpoint's evaluation (valid if its fingerprint agrees)
            results[row] = paper_columns(model, dataset, state_path=state, **settings)
            models[row] = model if keep_models else None
    keys = ([(t, ck) for t in plan for ck in CHECKPOINTS if ck in plan[t]] if by == "run" else
            [(t, ck) for ck in CHECKPOINTS for t in plan if ck in plan[t]])
    order = [name[k] for k in keys]
    return Checkpoints({r: results[r] for r in order}, {r: rows_meta[r] for r in order},
                       {t: [name[t, ck] for ck in CHECKPOINTS if ck in plan[t]] for t in plan}, same,
                       {r: models[r] for r in order} if keep_models else {})


def eps_text(eps: float) -> str:
    """A budget as the papers write it: ``8/255`` for 8/255, else the number (``0.3``)."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 and k >= 0.5 else f"{eps:g}"


def caption(results: Mapping[str, dict], aa_note: bool = True) -> str:
    """What a table of :func:`paper_columns` results was measured on: the data, ε, the number of images and
    (``aa_note``) how many of them the standard AutoAttack saw."""
    first = next(iter(results.values()))
    text = f"{first['data']}, ε = {eps_text(first['eps'])}, {first['n']} test images"
    if aa_note:
        n_aa = first["n_attack"].get("AA")
        text += f" (standard AutoAttack on the first {n_aa})" if n_aa else " (no AutoAttack in this profile)"
    return text


def paper_table(run: record.Run, ev: Checkpoints, name: str = "rslad_columns", note: Optional[str] = None) -> tuple[dict, str]:
    """Record ``ev``'s results as the table ``name`` of ``run`` (:meth:`advlib.record.Run.results_table`, with
    ``note``, by default :func:`caption`) and write them in Markdown: the caption, the runs whose two rows are the
    same weights, the accuracies with their 95% intervals, and AutoAttack's measured gap when there is one.
    Returns ``(rows, markdown)``."""
    note = caption(ev.results) if note is None else note
    rows = run.results_table(name, ev.results, rows_meta=ev.rows_meta, note=note)
    same = [t for t in ev.same if len(ev.rows[t]) > 1]
    gap = gap_table(ev.results)
    text = (f"**{note}**; accuracy in %, 95% interval in brackets"
            + (f". For {', '.join(same)} the best epoch was the last: both rows are the same weights." if same else "")
            + "\n\n" + percent_table(rows, intervals=intervals(ev.results), counts=counts(ev.results))
            + (f"\n\n**APGD-CE+T against the standard AutoAttack**, on the same images:\n\n{gap}" if gap else ""))
    return rows, text


def beside_paper(rows: Mapping[str, dict], configs: Mapping[str, TrainConfig], by: str = "run",
                 model: str = "ResNet-18") -> tuple[dict[str, dict], list[str]]:
    """Our best and last rows of each run (``rows`` of :func:`paper_table`), each followed by the RSLAD paper's row
    for the same method and checkpoint (``reference.RSLAD_BEST`` / ``RSLAD_LAST``, ``model``) as fractions,
    ordered by run or by checkpoint (``by``). Returns ``(rows, the runs the paper's table has no row for)``."""
    if by not in ("run", "checkpoint"):
        raise ValueError(f"by must be 'run' or 'checkpoint'; got {by!r}")
    published = {"best": reference.RSLAD_BEST, "last": reference.RSLAD_LAST}
    pairs = ([(n, ck) for n in configs for ck in CHECKPOINTS] if by == "run" else
             [(n, ck) for ck in CHECKPOINTS for n in configs])
    side, found = {}, set()
    for n, ck in pairs:
        side[f"{row_name(n, ck)}, ours"] = rows[row_name(n, ck)]
        v = published[ck].get((model, reference.published_method(configs[n].method)))
        if v:
            side[f"{row_name(n, ck)}, paper {model}"] = {c: x / 100 for c, x in zip(reference.RSLAD_COLUMNS, v)}
            found.add(n)
    return side, [n for n in configs if n not in found]


# --------------------------------------------------------------------------- distillation (notebook 05)


SEED_BENCHMARK = paths.REPO_ROOT / "benchmarks" / "results" / "distill_ablation.json"


def seed_benchmark(path: Optional[os.PathLike] = None) -> Optional[dict]:
    """Notebook 05's comparisons on several seeds of a smaller budget, as ``benchmarks/distill_ablation.py``
    committed them (:data:`SEED_BENCHMARK`; read, not recomputed: the benchmark takes about an hour on a 2-core
    laptop). ``None`` when the file is missing (an installed copy without the repository's benchmarks)."""
    path = Path(path) if path else SEED_BENCHMARK
    return utils.read_json(path) if path.exists() else None


def seed_table(bench: Mapping[str, Any]) -> str:
    """The benchmark's rows in Markdown: mean ± standard deviation over seeds per column, each column's images."""
    rows = bench["rows"]
    cols = list(dict.fromkeys(c for r in rows.values() for c in r["mean"]))
    n_of = {c: next(r["n"][c] for r in rows.values() if c in r["n"]) for c in cols}
    head = {c: c if n_of[c] == bench["n_test"] else f"{c} (first {n_of[c]})" for c in cols}
    body = {r["label"]: {head[c]: (f"{100 * r['mean'][c]:.1f} ± {100 * r['sd'][c]:.1f}" if c in r["mean"] and
                                   r["sd"][c] is not None else f"{100 * r['mean'][c]:.1f}" if c in r["mean"] else "—")
                         for c in cols} for r in rows.values()}
    return (f"**{len(bench['seeds'])} seeds ({', '.join(map(str, bench['seeds']))}), {bench['train_samples']:,} training "
            f"images, {bench['epochs']} epochs: `{bench['benchmark']}`, committed results** (not this notebook's runs); "
            f"accuracy in %, mean ± standard deviation over seeds, {bench['n_test']:,} test images unless the column "
            "says\n\n" + tables.markdown_table(body, stub="student", align="l" + "r" * len(cols)))


def teacher_checkpoint(spec: Mapping[str, Any], profile: str, path: Optional[str] = None, *, source: str = "auto",
                       seed: int = 0) -> tuple[str, str]:
    """``(checkpoint, where it comes from)`` of notebook 05's teacher: ``path`` when given (a checkpoint, or
    ``"robustbench:<name>"``); else the file ``spec["shipped"]`` of the repository when the profile ships one and
    it is there; else the last checkpoint of recipe ``spec["recipe"]`` (``epochs_scale=spec["scale"]``,
    ``spec["override"]``) trained, or reused, where notebook ``spec["notebook"]`` trains it (:func:`run_dir`)."""
    if path is not None:
        return str(path), f"given by path: {paths.shown(path)}"
    shipped = spec.get("shipped")
    if shipped and (paths.REPO_ROOT / shipped).exists():
        return (str(paths.REPO_ROOT / shipped),
                f"shipped with the course ({shipped}: recipe {spec['recipe']}, record beside it)")
    cfg = recipes.config(spec["recipe"], epochs_scale=spec["scale"], source=source, seed=seed,
                         out_dir=str(run_dir(spec["notebook"], spec["recipe"], profile)), **spec.get("override", {}))
    print(f"teacher: recipe {spec['recipe']!r} of notebook {spec['notebook']} (reused if that run exists)")
    train.fit(cfg, resume="if_same")
    return str(Path(cfg.out_dir) / "last.pt"), f"notebook {spec['notebook']}, recipe {spec['recipe']}, last checkpoint"


def cached_soft_labels(folder: os.PathLike) -> tuple[int, int]:
    """``(entries, files)`` of the teacher's soft-label cache in ``folder`` (:mod:`advlib.teacher`): how many
    (image, flip) pairs are cached, in how many files."""
    files = sorted(Path(folder).glob("*.pt"))
    return sum(len(torch.load(f, weights_only=True)["keys"]) for f in files), len(files)


def soft_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = recipes.CIFAR_EPS, steps: int = 10,
                seed: Optional[int] = None, chunk: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's probabilities on ``x`` and on its own PGD-``steps`` examples x' (Madry's step, ``chunk`` images
    at a time), the random starts drawn after ``torch.manual_seed(seed)`` when a seed is given."""
    if seed is not None:
        torch.manual_seed(seed)
    alpha = attacks.madry_alpha(eps, steps)
    x_adv = torch.cat([attacks.pgd(model, x[i:i + chunk], y[i:i + chunk], eps, alpha, steps)
                       for i in range(0, len(x), chunk)])
    with torch.no_grad():
        return F.softmax(model(x), 1), F.softmax(model(x_adv), 1)


SOFT_LABEL_UNITS = {"true class on x": "fraction", "true class on x'": "fraction", "top probability on x": "fraction",
                    "KL(p(x) ‖ p(x'))": "number", "prediction changed": "fraction"}  # KL in nats


def soft_label_stats(p: torch.Tensor, q: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """How much soft labels move inside the ε-ball, means over the images: the true class's probability on x
    (``p``) and on x' (``q``), the top probability on x, KL(p ‖ q) in nats and how often the prediction changes
    (units: :data:`SOFT_LABEL_UNITS`)."""
    kl = (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1)
    return {"true class on x": p.gather(1, y[:, None]).mean().item(),
            "true class on x'": q.gather(1, y[:, None]).mean().item(),
            "top probability on x": p.max(1).values.mean().item(), "KL(p(x) ‖ p(x'))": kl.mean().item(),
            "prediction changed": (p.argmax(1) != q.argmax(1)).float().mean().item()}


SPLIT_FIELDS = ("dataset", "source", "train_samples", "holdout", "seed")  # what fixes a run's held-out images


def monitor_accuracy(model: nn.Module, cfg: TrainConfig, trained_with: Union[os.PathLike, str, None] = None) -> dict:
    """``model`` through the per-epoch monitor of the run ``cfg``: its held-out images and attacks
    (:func:`advlib.train.quick_eval`), so that a model trained elsewhere (a teacher) can stand beside the
    run's curves. Returns ``{"holdout_clean", "holdout_fgsm", "holdout_pgd", "n", "held_out"}``; ``held_out``
    says whether those images were held out of ``model``'s own training too (``trained_with``: its checkpoint,
    whose config is compared on :data:`SPLIT_FIELDS`; None when not given). The attacks' random starts do not
    move torch's global random numbers."""
    train_data = data.load(cfg.dataset, "train", source=cfg.source, verbose=False)
    if cfg.train_samples is not None:
        train_data = train_data.subset(cfg.train_samples)
    device = next(model.parameters()).device
    x, y = train.split_holdout(cfg, train_data)[1].tensors(cfg.eval_samples, device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        out = train.quick_eval(model, x, y, cfg.eps, train.monitor_alpha(cfg), cfg.eval_steps)
    held_out = None
    if trained_with is not None:
        own = checkpoints.load_checkpoint(trained_with, map_location="cpu").get("config", {})
        theirs = cfg.to_dict()
        held_out = all(own.get(k, getattr(TrainConfig, k)) == theirs[k] for k in SPLIT_FIELDS) if own else None
    return {**out, "n": len(y), "held_out": held_out}
