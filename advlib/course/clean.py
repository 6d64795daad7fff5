"""An executed notebook made fit to commit, like nbstripout but keeping the outputs: the same text on every
machine, each notice once, no noise of the run.

:func:`clean_notebook` rewrites a notebook's outputs (never the sources of its own cells):

* every absolute path below the repository the notebook ran in becomes relative to it, and one below a
  folder named by ``ADVLIB_RUNS``, ``ADVLIB_DATA`` or ``ADVLIB_CACHE`` or the home folder is written
  ``$ADVLIB_DATA/...`` or ``~/...`` (:func:`advlib.paths.shown_in_text`);
* a notice (``Notice: ...``) or a warning (``file:line: SomeWarning: ...`` and its source line) printed
  before in the notebook is dropped: each is said once;
* lines about resumed work (``Resuming ...``) are dropped: whether a run was resumed depends on the
  machine's folders, not on the notebook;
* papermill's cell of injected parameters is removed (the one change to the cells themselves), so that the
  committed notebook runs in whatever profile its reader or nbval asks for;
* consecutive stream outputs are merged (as Jupyter shows them), a line rewritten with carriage returns (a
  progress bar's updates) keeps only what Jupyter shows of it, its last state, and papermill's and nbclient's
  metadata (times, durations, the input and output paths) is removed;
* a PNG figure is stored with a palette of at most 256 colours (:func:`small_png`: exact when the figure has
  no more colours, as most plots do; a figure of smooth shading loses at most what a 256-colour palette
  loses), so that committed notebooks stay small.

``python -m advlib.course run`` applies it to every notebook it executes without error;
``python -m advlib.course clean NOTEBOOK...`` to given ones (``--repo-root`` names the checkout they ran in,
when another). It is deterministic and idempotent: cleaning a clean notebook changes nothing.
"""
from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from ..paths import shown_in_text
from .files import notebook_text, read_notebook

NOTICE = re.compile(r"^Notice: ")
WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")  # Python's warning format: file:line: Category: message
RESUMED = re.compile(r"^Resuming ")  # advlib's resume messages (train.fit, evaluate.evaluate), at any verbosity
INJECTED = "injected-parameters"  # the tag of the cell papermill adds after the "parameters" cell
RUN_METADATA = ("papermill", "execution")  # per cell and per notebook: times, durations, paths of the run
BINARY = re.compile(r"^(image|video|audio)/")  # base64 data: no text to rewrite


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "".join(value)


def _as_before(value: Any, text: str) -> Any:
    """``text`` in the form ``value`` had: a string, or a list of lines as nbformat writes them."""
    return text if isinstance(value, str) else text.splitlines(keepends=True)


def _rewrite(obj: Any, repo_root: Optional[os.PathLike]) -> Any:
    """Every string in ``obj`` (an output, its metadata) with its paths shown, binary data left as it is."""
    if isinstance(obj, str):
        return shown_in_text(obj, repo_root)
    if isinstance(obj, list):
        return [_rewrite(v, repo_root) for v in obj]
    if isinstance(obj, dict):
        return {k: v if BINARY.match(str(k)) else _rewrite(v, repo_root) for k, v in obj.items()}
    return obj


def small_png(data: str) -> str:
    """``data`` (a base64 PNG, as a notebook stores it) re-encoded with a palette of at most 256 colours when that
    is smaller: exact when the figure has at most 256 colours (most plots), quantised with dithering otherwise
    (smooth shading). Data that is not an opaque RGB(A) PNG (already a palette, transparent, not an image)
    comes back as it is, so cleaning twice changes nothing."""
    try:
        im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        im.load()
    except Exception:  # noqa: BLE001 - not an image we can read: leave it to the viewer
        return data
    if im.format != "PNG" or im.mode not in ("RGB", "RGBA"):
        return data
    if im.mode == "RGBA":
        if im.getextrema()[3][0] != 255:  # transparent pixels: keep them
            return data
        im = im.convert("RGB")  # fully opaque, as matplotlib's figures are
    rgb = np.asarray(im, dtype=np.uint32)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colours, index = np.unique(keys, return_inverse=True)
    if len(colours) <= 256:  # exact: the palette is the figure's own colours
        pal = Image.fromarray(index.reshape(keys.shape).astype(np.uint8), mode="P")
        pal.putpalette(np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], 1).astype(np.uint8).tobytes())
    else:
        pal = im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    buf = io.BytesIO()
    pal.save(buf, format="PNG", optimize=True)
    small = base64.b64encode(buf.getvalue()).decode("ascii")
    return small if len(small) < len(data) else data


def _last_state(text: str) -> str:
    """Each line as Jupyter shows it: what follows its last carriage return (a progress bar's final state)."""
    if "\r" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "\r" in line:
            last = line.rsplit("\r", 1)[1]
            lines[i] = last if last.strip() else ""  # a bar cleared with spaces (tqdm's leave=False): nothing shows
    return "\n".join(lines)


def _stream_lines(text: str, seen: set) -> str:
    """The lines of a stream to keep: resume lines dropped; a notice or a warning (with its indented source
    line) dropped when ``seen`` already holds it, added to ``seen`` otherwise."""
    out: list[str] = []
    dropping = False  # inside a dropped warning: its indented continuation lines go with it
    for line in text.splitlines(keepends=True):
        if dropping and line.startswith((" ", "\t")):
            continue
        dropping = False
        if RESUMED.match(line):
            continue
        if NOTICE.match(line) or WARNING.match(line):
            key = line.rstrip("\n")
            if key in seen:
                dropping = True
                continue
            seen.add(key)
        out.append(line)
    return "".join(out)


def _clean_outputs(outputs: list, seen: set, repo_root: Optional[os.PathLike]) -> list:
    kept: list = []
    for output in outputs:
        output = _rewrite(output, repo_root)
        png = (output.get("data") or {}).get("image/png")
        if isinstance(png, str):
            output["data"]["image/png"] = small_png(png)
        if output.get("output_type") == "stream":
            text = _stream_lines(_text(output.get("text", "")), seen)
            if kept and kept[-1].get("output_type") == "stream" and kept[-1].get("name") == output.get("name"):
                prev = kept[-1]
                merged = _last_state(_text(prev["text"]) + text)
                if merged:
                    prev["text"] = _as_before(prev["text"], merged)
                else:  # a bar cleared at its end (tqdm's leave=False): nothing shows, so nothing stays, and the
                    kept.pop()  # streams around it are neighbours again (one pass cleans as much as two)
                continue
            text = _last_state(text)
            if not text:
                continue
            output["text"] = _as_before(output.get("text", ""), text)
        kept.append(output)
    return kept


def clean_notebook(nb: dict, repo_root: Optional[os.PathLike] = None) -> dict:
    """``nb`` (a notebook as JSON) with its outputs cleaned as the module docstring says, in place and
    returned. ``repo_root``: the checkout the notebook ran in (default: this one)."""
    for key in RUN_METADATA:
        nb.get("metadata", {}).pop(key, None)
    # papermill's cell of injected parameters (profile = "cpu", ...) goes: committed, it would make every later run
    # of the notebook (nbval in the smoke profile, a student's own) use the profile it was executed in
    nb["cells"] = [c for c in nb.get("cells", []) if INJECTED not in (c.get("metadata", {}).get("tags") or [])]
    seen: set = set()  # the notices and warnings shown so far in the notebook
    for cell in nb.get("cells", []):
        for key in RUN_METADATA:
            cell.get("metadata", {}).pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = _clean_outputs(cell.get("outputs", []), seen, repo_root)
    return nb


def clean_file(path: os.PathLike, repo_root: Optional[os.PathLike] = None) -> bool:
    """Clean the notebook file ``path`` in place; returns whether anything changed (else it is not written)."""
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    after = notebook_text(clean_notebook(read_notebook(path), repo_root))
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before
