"""python -m advlib.course run / report on tiny throwaway notebooks: order, resume, failure, report."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from advlib import course, evaluate, record, reference
from advlib.course import formatting, runner

from .conftest import REPO

SHEET = REPO.parent / "shared" / "reference" / "rslad-table.md"

RECORD_CELL = '''\
import os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from advlib.record import Run

run = Run({name!r}, profile)
run.set_data({data!r})
run.set(settings={{"epochs": 1}}, eps={eps!r})
run.results_table("accuracy", {results!r}, rows_meta={rows_meta!r}, note="tiny table")
run.value(clean_accuracy={clean!r}, units="fraction")
run.value(injected=profile, env_profile=os.environ.get("ADVLIB_PROFILE"),
          env_progress=os.environ.get("ADVLIB_PROGRESS"))
fig, ax = plt.subplots(figsize=(1.5, 1.5))
ax.plot([0, 1], [0, 1])
run.figure("line", fig)
plt.close(fig)
run.train_time("fast_cnn", 1.25)
'''


def fake_results(data: dict, eps: float, rows: dict[str, dict[str, float]]) -> dict[str, dict]:
    """``{row: evaluate.evaluate(...) result}`` for ``rows`` = ``{row: {"Clean": acc, attack spec: acc}}``."""
    out = {}
    for name, accs in rows.items():
        specs = [evaluate.parse_attack(s, eps) for s in accs if s != "Clean"]
        out[name] = {"data": data["label"], "dataset": data["dataset"], "data_origin": data["origin"], "n": 100,
                     "eps": eps, "clean": accs["Clean"], "robust": {s.name: accs[s.spec] for s in specs},
                     "n_attack": {s.name: 100 for s in specs}, "attacks": {s.name: s.settings() for s in specs}}
    return out


def record_cell(name: str, data: dict, eps: float, clean: float, rows: dict, rows_meta: dict) -> str:
    return RECORD_CELL.format(name=name, data=data, eps=eps, clean=clean, results=fake_results(data, eps, rows),
                              rows_meta=rows_meta)


def make_notebook(path: Path, title: str, code: str, extra: tuple[str, ...] = ()) -> Path:
    params = nbformat.v4.new_code_cell('profile = "cpu"')
    params.metadata["tags"] = ["parameters"]
    cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nA throwaway notebook."), params,
             nbformat.v4.new_code_cell(code)] + [nbformat.v4.new_code_cell(c) for c in extra]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def course_notebooks(d: Path, fail: bool = True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    make_notebook(d / "01_alpha.ipynb", "Alpha: TRADES on MNIST", record_cell(
        "01_alpha", {"dataset": "mnist", "label": "MNIST (shipped sample)", "origin": "sample"}, 0.3, 0.9876,
        rows={"fast_cnn TRADES": {"Clean": 0.9876, "pgd-40": 0.5432}, "undefended": {"Clean": 0.99, "pgd-40": 0.0}},
        rows_meta={"fast_cnn TRADES": {"model": "fast_cnn", "method": "trades"},
                   "undefended": {"model": "fast_cnn", "method": "standard"}}))
    make_notebook(d / "02_beta.ipynb", "Beta: distillation on CIFAR-10", record_cell(
        "02_beta", {"dataset": "cifar10", "label": "CIFAR-10 (JPEG copy)", "origin": "jpeg-copy"}, 8 / 255, 0.8123,
        rows={"ResNet-18 RSLAD": {"Clean": 0.8123, "fgsm": 0.5511, "pgd-20": 0.4987, "aa": 0.4512}},
        rows_meta={"ResNet-18 RSLAD": {"model": "resnet18", "method": "rslad"}}))
    boom = 'raise ValueError("deliberate failure in gamma")' if fail else "y = x + 1"
    make_notebook(d / "03_gamma.ipynb", "Gamma", record_cell(
        "03_gamma", {"dataset": "mnist", "label": "MNIST", "origin": "full"}, 0.3, 0.5, rows={"a": {"Clean": 0.5}},
        rows_meta={}), extra=("x = 1", boom, "z = 2"))
    return d


def env(runs: Path, **kw) -> dict:
    e = dict(os.environ, ADVLIB_RUNS=str(runs), ADVLIB_PROGRESS="off")
    e.pop("ADVLIB_PROFILE", None)
    e.update(kw)
    return e


def test_run_in_order_fail_report_resume(tmp_path, monkeypatch, capsys):
    nbs, runs = course_notebooks(tmp_path / "nbs"), tmp_path / "runs"
    # 1) The whole course from the command line (progress "auto": the kernels must then get "text").
    r = subprocess.run([sys.executable, "-m", "advlib.course", "run", "--profile", "smoke", "--notebooks", str(nbs)],
                       cwd=tmp_path, env=env(runs, ADVLIB_PROGRESS="auto"), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    pos = [r.stdout.find(f"[{i}/3] {n}: running") for i, n in ((1, "01_alpha"), (2, "02_beta"), (3, "03_gamma"))]
    assert -1 not in pos and pos == sorted(pos), r.stdout
    # The failure names the notebook, the cell (5th of 6 in the source notebook), its source and the error.
    assert "03_gamma.ipynb stopped at cell 5 of 6 (code cell 4" in r.stderr, r.stderr
    assert 'raise ValueError("deliberate failure in gamma")' in r.stderr
    assert "ValueError: deliberate failure in gamma" in r.stderr
    assert "resumes at 03_gamma" in r.stderr and "--notebooks" in r.stderr

    prof = runs / "smoke"
    status = json.loads((prof / "course.json").read_text())["notebooks"]
    assert [status[n]["status"] for n in ("01_alpha", "02_beta", "03_gamma")] == ["ok", "ok", "failed"]
    assert "cell 5" in status["03_gamma"]["error"] and "ValueError" in status["03_gamma"]["error"]
    assert status["01_alpha"]["error"] is None and status["01_alpha"]["seconds"] > 0
    assert status["01_alpha"]["source_sha256"] == runner.source_sha256(nbs / "01_alpha.ipynb")
    for n in ("01_alpha", "02_beta", "03_gamma"):
        assert (prof / f"{n}.ipynb").exists(), n
    m = json.loads((prof / "01_alpha" / "metrics.json").read_text())
    # the profile was injected as a parameter and set in the kernel's environment
    assert m["profile"] == "smoke" and m["values"]["injected"] == "smoke"
    assert m["values"]["env_profile"] == "smoke" and m["values"]["env_progress"] == "text"
    assert (prof / "01_alpha" / "line.png").exists()

    # 2) The report of the partial run.
    md = (prof / "report.md").read_text()
    ht = (prof / "report.html").read_text()
    assert "## Alpha: TRADES on MNIST" in md and "## Beta: distillation on CIFAR-10" in md
    assert "| fast_cnn TRADES | 98.76 | 54.32 |" in md  # accuracies in %, two decimals
    assert "**MNIST (shipped sample)**" in md and "**CIFAR-10 (JPEG copy)**" in md
    assert f"wall time: **{formatting.fmt_seconds(status['01_alpha']['seconds'])}**" in md
    assert "Warning:** Some notebooks ran on the shipped sample" in md
    assert "![line](01_alpha/line.png)" in md
    assert "Training time" in md and "| fast_cnn | 1.25 |" in md
    assert "This notebook failed" in md
    # published figures beside ours: MNIST TRADES anchor, RSLAD ResNet-18 rows
    pub = md[md.index("## Published figures"):]
    assert "| ours: fast_cnn TRADES | MNIST (shipped sample), profile smoke | 0.3 | 98.76 | 54.32 (PGD-40) | – |" in pub
    assert "| TRADES repo README: MNIST SmallCNN, β = 1, 100 epochs | MNIST (published) | 0.3 | 99.48 |" in pub
    assert "| ours: ResNet-18 RSLAD | CIFAR-10 (JPEG copy), profile smoke | 8/255 | 81.23 | 55.11 | 49.87 |" in pub
    assert "| RSLAD Table 2, best checkpoint | CIFAR-10 (published) | 8/255 | 83.38 | 60.01 | 54.24 |" in pub
    assert "undefended" not in pub  # no published counterpart named
    assert ht.count("data:image/png;base64,") == 3 and "<td>98.76</td>" in ht and "<h2>Alpha: TRADES on MNIST</h2>" in ht

    # 3) Fixed: the next run resumes at the failed notebook (in-process, through main()).
    course_notebooks(nbs, fail=False)
    monkeypatch.setenv("ADVLIB_RUNS", str(runs))
    monkeypatch.setenv("ADVLIB_PROGRESS", "off")
    mtime = (prof / "01_alpha.ipynb").stat().st_mtime_ns
    capsys.readouterr()
    assert course.main(["run", "--profile", "smoke", "--notebooks", str(nbs)]) == 0
    out = capsys.readouterr().out
    assert "[1/3] 01_alpha: skipped" in out and "[2/3] 02_beta: skipped" in out
    assert "Resuming at 03_gamma" in out and "[3/3] 03_gamma: ok" in out
    status2 = json.loads((prof / "course.json").read_text())["notebooks"]
    assert status2["01_alpha"] == status["01_alpha"] and status2["03_gamma"]["status"] == "ok"
    assert status2["03_gamma"]["error"] is None
    assert (prof / "01_alpha.ipynb").stat().st_mtime_ns == mtime
    assert "This notebook failed" not in (prof / "report.md").read_text()

    # 4) Everything done: nothing runs. --only runs just the named one; an edited notebook reruns.
    res = course.run_course("smoke", nbs, report=False)
    assert res["ok"] and res["ran"] == [] and res["skipped"] == ["01_alpha", "02_beta", "03_gamma"]
    res = course.run_course("smoke", nbs, only=["02"], report=False)
    assert res["ran"] == ["02_beta"] and res["skipped"] == []
    nb = nbformat.read(str(nbs / "01_alpha.ipynb"), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('edited')"))
    nbformat.write(nb, str(nbs / "01_alpha.ipynb"))
    res = course.run_course("smoke", nbs, report=False)
    assert res["ran"] == ["01_alpha"] and res["skipped"] == ["02_beta", "03_gamma"]


def test_plan_resume_rules():
    names = ["01_a", "02_b", "03_c", "04_d"]
    hashes = {n: "h" + n for n in names}
    status = {"notebooks": {"01_a": {"status": "ok", "source_sha256": "h01_a"},
                            "02_b": {"status": "ok", "source_sha256": "old"},
                            "03_c": {"status": "failed", "source_sha256": "h03_c"}}}
    p = runner.plan(names, hashes, status)
    assert {n: v.split(":")[0] for n, v in p.items()} == {"01_a": "skip", "02_b": "run", "03_c": "run",
                                                          "04_d": "run"}
    assert "source changed" in p["02_b"] and "failed" in p["03_c"] and "not run yet" in p["04_d"]
    assert all(v.startswith("run") for v in runner.plan(names, hashes, status, restart=True).values())
    p = runner.plan(names, hashes, status, only=["01", "04_d.ipynb"])
    assert [n for n, v in p.items() if v.startswith("run")] == ["01_a", "04_d"]
    assert p["02_b"] == "leave"
    assert runner.plan(names, hashes, status, outputs_exist={"01_a": False})["01_a"].startswith("run")
    with pytest.raises(ValueError, match="matches none"):
        runner.select(names, ["05"])
    with pytest.raises(ValueError, match="matches several"):
        runner.select(names, ["0"])


def test_cli_errors(tmp_path):
    (tmp_path / "nbs").mkdir()
    r = subprocess.run([sys.executable, "-m", "advlib.course", "run", "--profile", "smoke", "--notebooks",
                        str(tmp_path / "nbs")], env=env(tmp_path / "runs"), capture_output=True, text=True)
    assert r.returncode == 2 and "No notebooks" in r.stderr
    r = subprocess.run([sys.executable, "-m", "advlib.course", "run", "--profile", "bogus"],
                       env=env(tmp_path / "runs"), capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_report_formatting_without_a_course_run(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLIB_RUNS", str(tmp_path / "runs"))
    run = record.Run("07_extra", "cpu")
    mnist = {"dataset": "mnist", "label": "MNIST", "origin": "full"}
    run.set_data(mnist)
    run.set(settings={"lr": 0.001})
    run.table("sweep", {"PGD-trained": {"eps": 0.3, "Clean": 1.0, "train loss": 0.25, "n": 1000, "PGD-20": 0.9},
                        "odd": {"Clean": 97.5, "PGD-20": None}},
              units={"eps": "eps", "Clean": "fraction", "train loss": "number", "n": "number", "PGD-20": "fraction"},
              rows_meta={"PGD-trained": {"model": "fast_cnn", "method": "pgd"}},
              columns_meta={"Clean": {"attack": record.CLEAN},
                            "PGD-20": {"attack": evaluate.parse_attack("pgd-20", 0.1).settings()}}, data=mnist)
    run.value(clean_accuracy=0.5, units="fraction")
    run.value(eps=0.1, units="eps")
    run.value(lr=0.01, steps=40, units="number")
    run.value(name="x")
    run.curve("acc_vs_eps", [0, 2 / 255, 0.1, 0.2], {"FGSM": [0.99, 0.5, 0.0123, 0.0]})
    md_path, html_path = course.write_report("cpu")
    md = md_path.read_text()
    assert md_path == tmp_path / "runs" / "cpu" / "report.md" and html_path.exists()
    assert "| PGD-trained | 0.3 | 100.00 | 0.25 | 1000 | 90.00 |" in md  # eps, loss and ints as they are
    assert "| odd | – | 97.5 | – | – | – |" in md  # values outside [0, 1] as they are
    assert "| clean_accuracy | 50.00 % |" in md and "| lr | 0.01 |" in md and "| steps | 40 |" in md
    assert "| eps | 0.1 |" in md
    assert "| eps → | 0 | 2/255 | 0.1 | 0.2 |" in md and "| FGSM | 99.00 | 50.00 | 1.23 | 0.00 |" in md
    assert "status: not in course run" in md and "Warning:** Some notebooks" not in md
    # a PGD-trained MNIST row is set beside both MNIST anchors, with a note
    assert "| ours: PGD-trained | MNIST, profile cpu | 0.1 | 100.00 | 90.00 (PGD-20) | – |" in md
    assert md.count("no PGD-trained MNIST model is on the reference sheet") == 2
    assert "<table>" in html_path.read_text() and "<style>" in html_path.read_text()


def _sheet_rows(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables of the reference sheet by the heading above them."""
    out, heading = {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and not line.startswith("|---"):
            out.setdefault(heading, []).append([c.strip() for c in line.strip("|").split("|")])
    return out


@pytest.mark.skipif(not SHEET.exists(), reason="reference sheet not beside the checkout")
def test_reference_matches_the_sheet():
    text = SHEET.read_text()
    tables = _sheet_rows(text)
    for heading, data in (("Best checkpoint", reference.RSLAD_BEST), ("Last checkpoint", reference.RSLAD_LAST)):
        rows = tables[heading][1:]
        assert len(rows) == len(data) == 12
        for r in rows:
            assert data[(r[0], r[1])] == tuple(float(v) for v in r[2:]), r
    anchors = tables["Other anchors"][1:]
    assert len(anchors) == len(reference.ANCHORS)
    for r, a in zip(anchors, reference.ANCHORS):
        assert (r[0], r[1]) == (a.source, a.setting)
        assert float(r[2]) == a.clean and float(r[4]) == a.aa
        assert float(r[3].split()[0]) == a.robust
    m = re.search(r"ResNet-18 RSLAD ([\d./ —]+?) and MobileNetV2 RSLAD ([\d./ —]+?) \(", text)
    for key, grp in ((("ResNet-18", "RSLAD"), m.group(1)), (("MobileNetV2", "RSLAD"), m.group(2))):
        vals = [None if v.strip() == "—" else float(v) for v in grp.split("/")]
        assert reference.RSLAD_REPRODUCTION[key] == tuple(vals)


def test_reference_matching():
    assert reference.match("mnist", "fast_cnn", "trades")[0]["values"]["Clean"] == 99.48
    assert reference.match("mnist", "fast_cnn", "fgsm_rs")[0]["values"]["AA"] == 82.93
    assert len(reference.match("mnist", "fast_cnn_wide", "pgd")) == 2
    assert reference.match("mnist", "fast_cnn", "standard") == []
    got = reference.match("cifar10", "mobilenet_v2", "rslad")
    assert [g["title"] for g in got] == ["RSLAD Table 2, best checkpoint", "RSLAD Table 2, last checkpoint",
                                         "independent reproduction, last checkpoint"]
    assert got[0]["values"]["AA"] == 50.17
    assert reference.match("cifar10", None, "rslad") == []  # no model: no match
    assert reference.match("cifar10", "wrn34_10", "trades")[0]["values"]["Clean"] == 84.92


def test_an_unpublished_cifar_model_is_set_beside_resnet18_and_said_so():
    got = reference.match("cifar10", "airbench_m", "pgd")
    assert [g["values"]["Clean"] for g in got] == [83.38, 84.44]  # SAT, best and last
    assert all("ResNet-18; ours is airbench_m" in g["title"] for g in got)
    assert [g["values"]["Clean"] for g in reference.match("cifar10", "airbench_s", "trades", "last")] == [82.20]
    best = reference.match("cifar10", "resnet18", "rslad", "best")
    assert [g["title"] for g in best] == ["RSLAD Table 2, best checkpoint"]
