"""The ε slider of notebook 01 in a real browser.

Starts JupyterLab on a copy of ``notebooks/01_fgsm_mnist.ipynb`` in a temporary folder (JupyterLab
autosaves, so the repository's notebooks are never served), opens it in headless Chromium driven
by Playwright, runs all cells (Run > Run All Cells, smoke profile), checks that none failed, moves
the ε slider with the keyboard (End, ArrowLeft) and the mouse (a drag to ε = 0), and checks that the
accuracy readout and the picture follow.

Uses Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``); Playwright never downloads
a browser here. Skipped only when Chromium or the ``playwright`` package is missing.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = expect = None

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "01_fgsm_mnist.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]

# Generous: the machine running the tests may be shared. A quiet machine needs about a minute in all.
SERVER_TIMEOUT_S = 60
RUN_ALL_TIMEOUT_S = 150
UI_TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)"),
    pytest.mark.skipif(sync_playwright is None,
                       reason="the playwright package is not installed (pip install playwright, or the dev extra)"),
]

# The readout reads "ε = 0.100: FGSM accuracy 27.5% on 100 test images (clean ...)".
READOUT = re.compile(r"ε = (\d+\.\d+): FGSM accuracy (\d+(?:\.\d+)?)%")
# IPython's tracebacks; JupyterLab renders error outputs with the stderr MIME type, so warnings
# (also stderr) are told apart by this header.
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
TRACEBACK = "Traceback (most recent call last)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list:
    """The server's descendants (its kernels run in sessions of their own, outside its group)."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing, or the server already gone
        return []


def _stop(proc: subprocess.Popen) -> None:
    """Stop JupyterLab and its kernels: SIGTERM (the server shuts its kernels down), then SIGKILL."""
    kids = _children(proc.pid)
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            pass
    for kid in kids:  # kernels the server failed to shut down
        try:
            if kid.is_running():
                kid.kill()
        except Exception:
            pass


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a temporary copy of notebook 01; yields (base URL, log path)."""
    root = tmp_path / "notebooks"
    root.mkdir()
    # A copy without stored outputs, so that everything the test sees comes from this run.
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    (root / NOTEBOOK.name).write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")

    # Isolated Jupyter dirs: no user settings, workspaces or news pop-ups; nothing written to ~.
    config = tmp_path / "jupyter-config"
    config.mkdir()
    (config / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly",
    }}))
    settings = tmp_path / "lab-settings"
    for plugin, values in {
        # All cells stay attached to the DOM, so every output can be found and checked.
        "notebook-extension/tracker": {"windowingMode": "none"},
        # No "Would you like to get notified about official Jupyter news?" toast.
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))

    env = dict(os.environ,
               ADVLIB_PROFILE="smoke", ADVLIB_OFFLINE="1", ADVLIB_PROGRESS="text",
               ADVLIB_RUNS=str(tmp_path / "runs"),
               JUPYTER_CONFIG_DIR=str(config),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
               JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
               IPYTHONDIR=str(tmp_path / "ipython"),
               MPLCONFIGDIR=str(tmp_path / "matplotlib"),
               PYTHONUNBUFFERED="1")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
             f"--port={port}", "--ServerApp.token=", "--ServerApp.password=",
             "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within {SERVER_TIMEOUT_S} s:\n{_tail(log_path)}")
            time.sleep(0.2)
        yield base, log_path
    finally:
        _stop(proc)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@pytest.fixture
def page(tmp_path):
    """A page of a fresh headless Chromium (its own profile folder)."""
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            context.close()


def _readout(page) -> tuple[str, float, float]:
    text = page.locator(".advlib-readout").inner_text()
    m = READOUT.search(text)
    assert m, f"unexpected readout: {text!r}"
    return text, float(m.group(1)), float(m.group(2))


def test_epsilon_slider_in_jupyterlab(lab, page, tmp_path):
    base, log_path = lab
    t0 = time.monotonic()
    try:
        _drive(page, base)
    except BaseException:
        shot = tmp_path / "failure.png"
        try:
            errors = page.locator(ERROR_OUTPUT, has_text=TRACEBACK)
            if errors.count():
                errors.first.scroll_into_view_if_needed(timeout=5_000)
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the failure: {shot}")
        except Exception as e:  # the browser may be gone
            print(f"\nno screenshot ({e})")
        print(f"JupyterLab log ({log_path}), last lines:\n{_tail(log_path)}")
        raise
    finally:
        print(f"\nbrowser test: {time.monotonic() - t0:.1f} s after the server answered")


def _drive(page, base: str) -> None:
    page.goto(f"{base}/lab/tree/{NOTEBOOK.name}")
    # The kernel status in the status bar: "No Kernel | Initializing", then "Python 3 (...) | Idle".
    page.locator(".jp-StatusBar-TextItem").filter(has_text=re.compile(r"^(?!No Kernel).* \| Idle$")).wait_for(
        timeout=60_000)

    # Run > Run All Cells
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    readout = page.locator(".advlib-readout")
    errors = page.locator(ERROR_OUTPUT, has_text=TRACEBACK)
    # The slider, or the first error (Run All stops there), whichever comes first.
    readout.or_(errors).first.wait_for(timeout=RUN_ALL_TIMEOUT_S * 1000)
    left_ms = max(1_000, (deadline - time.monotonic()) * 1000)
    # Then the end of the run: no cell queued or running ("[*]:"), every code cell numbered.
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim());
            return prompts.length > 0 && !prompts.some(p => p.includes('*'));
        }""", timeout=left_ms)
    assert errors.count() == 0, "a cell failed:\n" + "\n\n".join(errors.all_text_contents())
    prompts = [p.strip() for p in page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_text_contents()]
    assert prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"not every cell ran: {prompts}"

    slider = page.locator(".advlib-eps-slider")
    handle = slider.locator(".noUi-handle")
    value = slider.locator(".widget-readout")
    grid = page.locator("img.advlib-grid")
    expect(value).to_have_text("0.10")
    expect(readout).to_contain_text("ε = 0.100")
    text0, eps0, acc0 = _readout(page)
    assert eps0 == pytest.approx(0.1)
    src0 = grid.get_attribute("src")
    assert src0 and src0.startswith(("blob:", "data:")), f"no picture: src={src0!r}"
    handle.scroll_into_view_if_needed()
    png0 = grid.screenshot()

    # Keyboard on the noUiSlider handle: End goes to the maximum, ε = 0.3.
    handle.focus()
    handle.press("End")
    expect(value).to_have_text("0.30")
    expect(readout).to_contain_text("ε = 0.300")
    text1, eps1, acc1 = _readout(page)
    assert eps1 == pytest.approx(0.3)
    assert acc1 != acc0, f"accuracy did not change with ε: {text0!r} -> {text1!r}"
    expect(grid).not_to_have_attribute("src", src0)
    src1 = grid.get_attribute("src")
    assert src1 and src1.startswith(("blob:", "data:")), f"no picture: src={src1!r}"
    assert grid.screenshot() != png0, "the picture looks the same at ε = 0.3 as at ε = 0.1"

    # Arrow keys step by 0.01: five steps left give ε = 0.25.
    for _ in range(5):
        handle.press("ArrowLeft")
    expect(value).to_have_text("0.25")
    expect(readout).to_contain_text("ε = 0.250")
    expect(grid).not_to_have_attribute("src", src1)
    text2 = readout.inner_text()

    # The mouse: drag the handle past the left end of the track, to ε = 0: accuracy = clean accuracy.
    box, track = handle.bounding_box(), slider.locator(".noUi-base").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] - 20, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    expect(value).to_have_text("0.00")
    expect(readout).to_contain_text("ε = 0.000")
    text3, _, acc3 = _readout(page)
    clean = re.search(r"clean (\d+(?:\.\d+)?)%", text3)
    assert clean and acc3 == float(clean.group(1)), f"at ε = 0 the accuracy should be the clean one: {text3!r}"
    print(f"\nreadout: {text0!r}\n      -> {text1!r}\n      -> {text2!r}\n      -> {text3!r}")
