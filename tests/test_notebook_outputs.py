"""Committed notebooks read the same on every machine (issue 22, item 5): no absolute path in a source or an
output, each notice once, no resume lines; and the pieces that keep them so: ``paths.shown``,
``utils.notice``, ``course.clean`` (applied by the course runner to every notebook it executes)."""
from __future__ import annotations

import collections
import copy
import io
import json
import re
from pathlib import Path

import pytest

from advlib import course, data, paths, utils
from advlib.course import clean, files, runner

NOTEBOOKS = files.find_notebooks()

# A machine's folders: Unix homes, temporary and mount folders, macOS homes, Windows drives, and this checkout.
ABSOLUTE = re.compile(r"(?<![\w.~$/:-])/(?:work|home|tmp|Users|root|mnt|media|private|var|opt|srv|scratch)/"
                      r"|(?<![\w\\])[A-Z]:\\[\w .-]+\\|" + re.escape(str(paths.REPO_ROOT)))
NOTICE_LINE = re.compile(r"^Notice: ")
WARNING_LINE = re.compile(r"^\S.*:\d+: \w*Warning: ")
ONCE = {  # what a notebook says once at most, by the words of the library's messages, old and new
    "the JPEG-copy notice": re.compile(r"re-encoded as JPEG and is NOT pixel-exact"),
    "a failed download": re.compile(r"download(?:ing)? (?:mnist|cifar10) into .* failed", re.IGNORECASE),
}
RESUME_LINE = re.compile(r"^Resuming\b")
BINARY = re.compile(r"^(?:image|video|audio)/")


def _strings(obj, where: str):
    """(where, text) of every string in a notebook's JSON, base64 images left out."""
    if isinstance(obj, str):
        yield where, obj
    elif isinstance(obj, list):
        if obj and all(isinstance(v, str) for v in obj):  # a multi-line text, as nbformat splits it
            yield where, "".join(obj)
        else:
            for i, v in enumerate(obj):
                yield from _strings(v, f"{where}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if not BINARY.match(str(k)):
                yield from _strings(v, f"{where}.{k}")


def _printed_lines(nb: dict):
    """(cell index, line) of every line the notebook's code printed, in order."""
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                for line in (text if isinstance(text, str) else "".join(text)).splitlines():
                    yield i, line


def absolute_paths(nb: dict) -> list[str]:
    bad = []
    for i, cell in enumerate(nb.get("cells", [])):
        for where, text in _strings({"source": cell.get("source", ""), "outputs": cell.get("outputs", []),
                                     "metadata": cell.get("metadata", {})}, f"cell {i}"):
            for m in ABSOLUTE.finditer(text):
                bad.append(f"{where}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}...")
    bad += [f"notebook metadata: {t!r}" for _, t in _strings(nb.get("metadata", {}), "") if ABSOLUTE.search(t)]
    return bad


def repeated_notices(nb: dict) -> list[str]:
    lines = list(_printed_lines(nb))
    counts = collections.Counter(line for _, line in lines if NOTICE_LINE.match(line) or WARNING_LINE.match(line))
    bad = [f"{n}x: {line[:100]!r}" for line, n in counts.items() if n > 1]
    for what, pattern in ONCE.items():
        cells = [i for i, line in lines if pattern.search(line)]
        if len(cells) > 1:
            bad.append(f"{what} {len(cells)}x (cells {cells})")
    return bad


def resume_lines(nb: dict) -> list[str]:
    return [f"cell {i}: {line[:100]!r}" for i, line in _printed_lines(nb) if RESUME_LINE.match(line)]


# --------------------------------------------------------------------------- the committed notebooks


def test_the_course_has_notebooks():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_absolute_path_in_sources_or_outputs(path):
    bad = absolute_paths(files.read_notebook(path))
    assert not bad, (f"{path.name} names a machine's folders ({len(bad)}x); show paths with advlib.paths.shown, "
                     "or run `python -m advlib.course clean` on it:\n" + "\n".join(bad[:10]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notice_once(path):
    bad = repeated_notices(files.read_notebook(path))
    assert not bad, f"{path.name} repeats notices (advlib.utils.notice says each once):\n" + "\n".join(bad)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_resume_chatter(path):
    bad = resume_lines(files.read_notebook(path))
    assert not bad, f"{path.name} has resume lines in its outputs ({len(bad)}x):\n" + "\n".join(bad[:10])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_are_as_the_cleaner_leaves_them(path):
    text = path.read_text(encoding="utf-8")
    assert files.notebook_text(clean.clean_notebook(json.loads(text))) == text, \
        f"run `python -m advlib.course clean {path.relative_to(paths.REPO_ROOT)}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_committed_notebook_pins_the_profile_it_ran_in(path):
    # papermill's injected cell (profile = "cpu") would make nbval run the notebook in the cpu profile, not smoke
    tags = [c.get("metadata", {}).get("tags") or [] for c in files.read_notebook(path)["cells"]]
    assert sum("parameters" in t for t in tags) == 1, f"{path.name}: one cell tagged 'parameters', please"
    assert not any(clean.INJECTED in t for t in tags), f"run `python -m advlib.course clean {path.name}`"


def test_the_cleaner_removes_papermills_injected_parameters():
    cell = lambda src, tags: {"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [],
                              "execution_count": None}
    nb = {"metadata": {}, "cells": [cell('profile = "smoke"', ["parameters"]), cell('profile = "cpu"', [clean.INJECTED]),
                                    cell("x = 1", [])]}
    out = clean.clean_notebook(copy.deepcopy(nb))
    assert [c["source"] for c in out["cells"]] == ['profile = "smoke"', "x = 1"]


# --------------------------------------------------------------------------- paths.shown


def test_shown_is_relative_to_the_repository(monkeypatch, tmp_path):
    for var in paths.SHOWN_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    root = paths.REPO_ROOT
    assert paths.shown(root / "runs" / "cpu" / "01_fgsm_mnist") == "runs/cpu/01_fgsm_mnist"
    assert paths.shown(str(root / "data" / "MNIST" / "raw")) == "data/MNIST/raw"
    assert paths.shown(root) == "."
    monkeypatch.chdir(root / "notebooks")  # where a kernel runs
    assert paths.shown(Path("..") / "runs" / "x") == "runs/x"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    outside = tmp_path / "elsewhere" / "x.pt"
    assert paths.shown(outside) == str(outside)  # nothing to shorten it by: as given
    assert paths.shown(tmp_path / "home" / "data") == "~/data"


def test_shown_names_the_folders_of_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVLIB_DATA", str(tmp_path / "shared" / "data"))
    monkeypatch.setenv("ADVLIB_RUNS", str(paths.REPO_ROOT / "runs"))  # as the runner sets it: still relative
    assert paths.shown(tmp_path / "shared" / "data" / "cifar10-jpg.tar.gz") == "$ADVLIB_DATA/cifar10-jpg.tar.gz"
    assert paths.shown(tmp_path / "shared" / "data") == "$ADVLIB_DATA"
    assert paths.shown(paths.REPO_ROOT / "runs" / "cpu") == "runs/cpu"


def test_shown_in_text_rewrites_paths_of_another_checkout(monkeypatch):
    for var in paths.SHOWN_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ADVLIB_DATA", "/srv/shared/data")
    text = ("/srv/ck/advlib/data.py:530: UserWarning: Downloading cifar10 into /srv/shared/data failed\n"
            "results go to /srv/ck/runs/cpu/00_setup; the root /srv/ck, not /srv/ckx/a or /srv/ck.bak\n"
            "| mnist | `/srv/shared/data/MNIST/raw` |")
    assert paths.shown_in_text(text, "/srv/ck") == (
        "advlib/data.py:530: UserWarning: Downloading cifar10 into $ADVLIB_DATA failed\n"
        "results go to runs/cpu/00_setup; the root ., not /srv/ckx/a or /srv/ck.bak\n"
        "| mnist | `$ADVLIB_DATA/MNIST/raw` |")


# --------------------------------------------------------------------------- notices


def test_a_notice_is_printed_once_per_key(capsys):  # conftest: no notice given yet
    assert utils.notice("the data is a copy") is True
    assert utils.notice("the data is a copy") is False
    assert utils.notice("a download failed (timeout)", key="download") is True
    assert utils.notice("a download failed (another error)", key="download") is False
    assert capsys.readouterr().out == "Notice: the data is a copy\nNotice: a download failed (timeout)\n"


def test_resumed_work_is_named_only_when_verbose(capsys):
    utils.say_resumed("Resuming runs/a at epoch 3", verbose=True)
    utils.say_resumed("Resuming runs/b at epoch 2", verbose=True)
    assert capsys.readouterr().out == "Resuming runs/a at epoch 3\nResuming runs/b at epoch 2\n"
    for run in ("a", "b", "c"):
        utils.say_resumed(f"Resuming runs/{run}", verbose=False)
    assert capsys.readouterr().out == "Notice: " + utils.RESUME_NOTICE + "\n"


def test_the_jpeg_copy_notice_comes_once_per_kernel(monkeypatch, capsys, recwarn):
    copy_ = data.load_sample("cifar10", train=False)
    monkeypatch.setattr(data, "_cifar_full", lambda roots, train: None)
    monkeypatch.setattr(data, "_download", lambda name, roots, train: None)
    monkeypatch.setattr(data, "_cifar_jpeg", lambda roots, train: copy_)
    for _ in range(3):
        data.load("cifar10", "test")
    assert capsys.readouterr().out == "Notice: " + data.JPEG_NOTICE + "\n"
    assert not [str(w.message) for w in recwarn.list if "cifar10" in str(w.message)]


def test_a_failed_download_is_one_notice_not_a_warning(isolated_data, monkeypatch, capsys, recwarn):
    torchvision = pytest.importorskip("torchvision")

    class Offline:
        base_folder = "cifar-10-batches-py"

        def __init__(self, *args, **kwargs):
            raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.delenv("ADVLIB_OFFLINE")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    for split in ("train", "test", "test"):
        assert data.load("cifar10", split).origin == "sample"
    out = capsys.readouterr().out.splitlines()
    assert len([ln for ln in out if "downloading cifar10 into" in ln and "failed" in ln]) == 1, out
    assert len([ln for ln in out if "using the shipped cifar10 sample (" in ln]) == 2, out  # one per split
    assert all(ln.startswith("Notice: ") for ln in out), out
    assert not [str(w.message) for w in recwarn.list if "cifar10" in str(w.message)]


# --------------------------------------------------------------------------- course.clean


def _stream(text, name="stdout"):
    return {"name": name, "output_type": "stream", "text": text.splitlines(keepends=True)}


def dirty_notebook(root: str) -> dict:
    """A notebook as papermill left it: run metadata, absolute paths, notices twice, resume lines."""
    warning = (f"{root}/advlib/data.py:530: UserWarning: Downloading cifar10 into {root}/data failed: offline\n"
               "  ds = _load_full(name, roots, train, verbose)\n")
    cells = [
        {"cell_type": "code", "execution_count": 1, "id": "a", "source": ["print(run.dir)"],
         "metadata": {"papermill": {"duration": 1.5, "status": "completed"}, "execution": {"iopub.x": "t"}},
         "outputs": [_stream(f"results go to {root}/runs/cpu/00_x\n")]},
        {"cell_type": "code", "execution_count": 2, "id": "b", "source": ["train.fit(cfg)"], "metadata": {},
         "outputs": [_stream("== SAT\n"), _stream(warning, "stderr"),
                     _stream("Notice: CIFAR-10 (JPEG copy): not pixel-exact.\n"),
                     _stream(f"Resuming {root}/runs/cpu/00_x/sat at epoch 6, step 0 (1910/1910 steps done).\n"),
                     _stream("== TRADES\n"), _stream(warning, "stderr"),
                     _stream("Notice: CIFAR-10 (JPEG copy): not pixel-exact.\n"),
                     _stream(f"Resuming the evaluation saved in {root}/runs/cpu/00_x/e.json (done: FGSM).\n"),
                     {"data": {"text/markdown": [f"| where | `{root}/data/MNIST/raw` |"], "image/png": root + "=="},
                      "metadata": {}, "output_type": "display_data"}]},
        {"cell_type": "markdown", "id": "c", "metadata": {}, "source": ["Text written by hand stays as it is."]},
    ]
    return {"cells": cells, "metadata": {"papermill": {"input_path": f"{root}/notebooks/00_x.ipynb"},
                                         "kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


def test_clean_notebook(monkeypatch):
    for var in paths.SHOWN_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    root = "/srv/checkout"
    nb = clean.clean_notebook(dirty_notebook(root), repo_root=root)
    assert nb["metadata"] == {"kernelspec": {"name": "python3"}}
    first, second = nb["cells"][0], nb["cells"][1]
    assert first["metadata"] == {} and first["outputs"] == [_stream("results go to runs/cpu/00_x\n")]
    assert [o["output_type"] for o in second["outputs"]] == ["stream", "stream", "stream", "display_data"]
    assert second["outputs"][0] == _stream("== SAT\n")
    assert second["outputs"][1] == _stream("advlib/data.py:530: UserWarning: Downloading cifar10 into data failed: "
                                           "offline\n  ds = _load_full(name, roots, train, verbose)\n", "stderr")
    assert second["outputs"][2] == _stream("Notice: CIFAR-10 (JPEG copy): not pixel-exact.\n== TRADES\n")
    display = second["outputs"][3]["data"]
    assert display["text/markdown"] == ["| where | `data/MNIST/raw` |"] and display["image/png"] == root + "=="
    assert nb["cells"][2] == dirty_notebook(root)["cells"][2]
    assert root not in json.dumps(nb).replace(f'"{root}=="', "")  # (only the image's base64 data holds it)
    assert not repeated_notices(nb) and not resume_lines(nb)
    assert clean.clean_notebook(copy.deepcopy(nb), repo_root=root) == nb  # idempotent


def test_the_checks_catch_what_the_cleaner_removes():
    nb = dirty_notebook(str(paths.REPO_ROOT))
    assert absolute_paths(nb) and repeated_notices(nb) and resume_lines(nb)
    cleaned = clean.clean_notebook(nb)
    assert not absolute_paths(cleaned) and not repeated_notices(cleaned) and not resume_lines(cleaned)


def test_clean_command(tmp_path, capsys):
    path = tmp_path / "00_x.ipynb"
    path.write_text(json.dumps(dirty_notebook("/srv/checkout")), encoding="utf-8")
    assert course.main(["clean", str(path), "--repo-root", "/srv/checkout"]) == 0
    assert course.main(["clean", str(path), "--repo-root", "/srv/checkout"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{path}: cleaned", f"{path}: already clean"]
    assert "/srv/checkout/" not in path.read_text(encoding="utf-8")  # (the image data stays as it is)


def test_the_course_runner_cleans_what_it_executes(tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")

    def execute(src, dst, **kwargs):  # papermill, without a kernel: the executed copy as it would come back
        Path(dst).write_text(json.dumps(dirty_notebook(str(paths.REPO_ROOT))), encoding="utf-8")

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (nbs / "01_x.ipynb").write_text(json.dumps(dirty_notebook("/elsewhere")), encoding="utf-8")
    monkeypatch.setenv("ADVLIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ADVLIB_PROGRESS", "off")
    monkeypatch.setattr(pm, "execute_notebook", execute)
    res = runner.run_course("smoke", nbs, report=False, stream=io.StringIO())
    assert res["ok"] and res["ran"] == ["01_x"]
    executed = files.read_notebook(tmp_path / "runs" / "smoke" / "01_x.ipynb")
    assert not absolute_paths(executed) and not repeated_notices(executed) and not resume_lines(executed)
    assert "papermill" not in executed["metadata"]


# --------------------------------------------------------------------------- small outputs

def _png(img) -> str:
    import base64

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pixels(data: str):
    import base64

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), dtype=np.int16)


def test_a_plot_is_stored_with_its_own_palette_exactly_and_smaller():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from advlib import viz

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [0, 1, 4], label="a")
    ax.legend()
    png = viz.fig_to_png(fig)
    plt.close(fig)
    data = __import__("base64").b64encode(png).decode("ascii")
    small = clean.small_png(data)
    assert len(small) < len(data)
    assert Image.open(io.BytesIO(__import__("base64").b64decode(small))).mode == "P"
    if Image.open(io.BytesIO(png)).convert("RGB").getcolors(256) is not None:
        assert (_pixels(small) == _pixels(data)).all()  # a figure of few colours: every pixel kept
    assert clean.small_png(small) == small  # cleaning twice changes nothing


def test_a_shaded_image_is_quantised_close_and_odd_data_left_alone():
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:120, 0:160]
    shade = np.stack([x * 255 // 159, y * 255 // 119, (x + y) * 255 // 278], -1).astype(np.int16)
    grain = np.random.default_rng(0).integers(-6, 7, shade.shape)  # thousands of colours, as a photograph has
    data = _png(Image.fromarray(np.clip(shade + grain, 0, 255).astype(np.uint8), "RGB"))
    small = clean.small_png(data)
    assert len(small) < len(data) / 2
    assert np.abs(_pixels(small) - _pixels(data)).mean() < 6  # a 256-colour palette with dithering: close
    smooth = _png(Image.fromarray(shade.astype(np.uint8), "RGB"))  # compresses better as it is: kept
    assert clean.small_png(smooth) == smooth
    transparent = _png(Image.new("RGBA", (8, 8), (255, 0, 0, 0)))
    assert clean.small_png(transparent) == transparent  # transparency is kept as it is
    assert clean.small_png("bm90IGFuIGltYWdl") == "bm90IGFuIGltYWdl"  # not an image ("not an image")
    assert clean.small_png("not base64 !") == "not base64 !"


def test_a_progress_bar_keeps_its_last_state_as_jupyter_shows_it():
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": "", "execution_count": 1, "outputs": [
        {"output_type": "stream", "name": "stderr", "text": "\repoch 1:   0%|  | 0/9"},
        {"output_type": "stream", "name": "stderr", "text": "\repoch 1:  50%|# | 4/9\repoch 1: 100%|##| 9/9\n"},
        {"output_type": "stream", "name": "stderr", "text": "\rbar cleared:  10%\r            \rdone"},
        {"output_type": "stream", "name": "stdout", "text": "loss 0.5\n"}]}], "metadata": {}}
    out = clean.clean_notebook(nb)["cells"][0]["outputs"]
    assert [o["name"] for o in out] == ["stderr", "stdout"]
    assert "".join(out[0]["text"]) == "epoch 1: 100%|##| 9/9\ndone"
    assert "".join(out[1]["text"]) == "loss 0.5\n"
    assert clean.clean_notebook(copy.deepcopy({"cells": [{"cell_type": "code", "metadata": {}, "source": "",
                                                          "outputs": out}], "metadata": {}}))["cells"][0]["outputs"] == out


def test_a_bar_cleared_between_two_prints_leaves_one_print_in_one_pass():
    """Training prints a line per epoch between progress bars that clear themselves (tqdm's leave=False): the bars
    go, and the prints around them become one output in the first pass, so that cleaning twice changes nothing
    (the course runner cleans once; the committed-notebook test cleans again)."""
    outputs = []
    for epoch in (1, 2):
        outputs += [{"output_type": "stream", "name": "stderr", "text": f"\repoch {epoch}/2:  50%|#  | 1/2"},
                    {"output_type": "stream", "name": "stderr", "text": "\r" + " " * 30 + "\r"},
                    {"output_type": "stream", "name": "stdout", "text": f"epoch {epoch}/2: loss 0.5\n"}]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": "", "outputs": outputs}], "metadata": {}}
    once = clean.clean_notebook(nb)
    assert [(o["name"], "".join(o["text"])) for o in once["cells"][0]["outputs"]] == [
        ("stdout", "epoch 1/2: loss 0.5\nepoch 2/2: loss 0.5\n")]
    assert clean.clean_notebook(copy.deepcopy(once)) == once


def test_committed_notebooks_show_no_carriage_returns():
    for path in NOTEBOOKS:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = [i for i, cell in enumerate(nb["cells"]) for out in cell.get("outputs", [])
                 if out.get("output_type") == "stream" and "\r" in "".join(out.get("text", ""))]
        assert not cells, f"{path}: cells {sorted(set(cells))} keep every update of a progress bar"
