"""The layers of advlib, as docs/architecture.md lists them, checked on the import graph grimp builds.

grimp reads the source (it imports nothing), so an import inside a function counts as much as one at the
top of a module: a function-level import is no way around a layer. A module may import modules of its own
layer and of the layers below it; no import circle is allowed, not even within a layer.

The check itself runs in a subprocess on a given copy of the package (``python tests/test_layers.py
PARENT_DIR`` prints what it finds as JSON), so that the test can also run it on a copy with a forbidden
import added and see it fail.
"""
from __future__ import annotations

import ast
import io
import itertools
import json
import pkgutil
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

# Lowest first; each layer may import only itself and the layers before it (docs/architecture.md, "Layers").
LAYERS = (
    ("paths", "utils", "tables", "stats", "reference", "attack_registry"),
    ("results", "checks", "record"),
    ("findings", "course"),
    ("data", "models", "masking"),
    ("attacks", "autoattack"),
    ("evaluate", "corruptions", "landscape", "viz", "widgets"),
    ("config", "checkpoints", "averaging", "zoo", "teacher"),
    ("losses",),
    ("train",),
    ("recipes", "experiments", "exercises", "__main__"),
)
PACKAGE = "advlib"
ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
README = ARCHITECTURE.parent.parent / "README.md"


# --------------------------------------------------------------------------- the check (run in a subprocess)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (or a node importing itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def check(parent: str) -> dict:
    """What breaks the layers in the copy of the package under ``parent``: ``{"found_at", "unplaced",
    "missing", "illegal", "cycles"}`` (every list empty when the layers hold)."""
    import importlib.util

    import grimp

    sys.path.insert(0, parent)
    spec = importlib.util.find_spec(PACKAGE)
    found_at = str(Path(spec.origin).resolve().parent)
    graph = grimp.build_graph(PACKAGE, cache_dir=None)  # every import, at module level or in a function
    names = [n for layer in LAYERS for n in layer]
    children = {m[len(PACKAGE) + 1:] for m in graph.find_children(PACKAGE)}
    unplaced = sorted(children - set(names))
    missing = sorted(set(names) - children)

    illegal = []
    rank = {n: i for i, layer in enumerate(LAYERS) for n in layer}
    layers = [grimp.Layer(*layer, independent=False) for layer in reversed(LAYERS)]  # grimp: highest first
    for dep in sorted(graph.find_illegal_dependencies_for_layers(layers=layers, containers={PACKAGE}),
                      key=lambda d: (d.importer, d.imported)):
        low, high = (m[len(PACKAGE) + 1:] for m in (dep.importer, dep.imported))
        routes = sorted(" -> ".join([",".join(sorted(r.heads)), *r.middle, ",".join(sorted(r.tails))])
                        for r in dep.routes)
        illegal.append(f"{low} (layer {rank[low] + 1}) imports {high} (layer {rank[high] + 1}): {'; '.join(routes)}")

    modules = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    top = {}  # the package's children as single nodes (a subpackage with everything in it)
    for m, deps in modules.items():
        src = m.split(".")[1] if m != PACKAGE else None
        for d in deps:
            dst = d.split(".")[1] if d != PACKAGE else None
            if src and dst and src != dst:
                top.setdefault(src, set()).add(dst)
    cycles = [" <-> ".join(c) for c in _cycles({m: set(d) for m, d in modules.items()})]
    cycles += [" <-> ".join(c) + " (as packages)" for c in _cycles(top)]
    return {"found_at": found_at, "unplaced": unplaced, "missing": missing, "illegal": illegal, "cycles": cycles}


def run_check(package_dir: Path) -> dict:
    """:func:`check` in a fresh interpreter that finds the package at ``package_dir`` (and no other copy)."""
    r = subprocess.run([sys.executable, __file__, str(package_dir.parent)], capture_output=True, text=True,
                       cwd=package_dir.parent, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["found_at"] == str(package_dir.resolve()), f"grimp read another copy: {out['found_at']}"
    return out


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def package_dir() -> Path:
    pytest.importorskip("grimp")
    import advlib

    return Path(advlib.__file__).resolve().parent


def test_the_layers_hold_and_no_import_circle(package_dir):
    out = run_check(package_dir)
    assert not out["unplaced"], f"modules in no layer (add them to LAYERS and docs/architecture.md): {out['unplaced']}"
    assert not out["missing"], f"layers name modules that do not exist: {out['missing']}"
    assert not out["illegal"], "a lower layer imports a higher one:\n" + "\n".join(out["illegal"])
    assert not out["cycles"], "import circles:\n" + "\n".join(out["cycles"])


def _copy_with(package_dir: Path, tmp_path: Path, module: str, added: str) -> Path:
    copy = tmp_path / PACKAGE
    shutil.copytree(package_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / f"{module}.py"
    path.write_text(path.read_text() + "\n\n" + added + "\n")
    return copy


@pytest.mark.parametrize("module, added, expected", [
    # at module level: attacks (layer 5) must know nothing of training
    ("attacks", "from . import train  # noqa: E402,F401", "attacks (layer 5) imports train (layer 9)"),
    # inside a function: no way around the layers
    ("tables", "def _later():\n    from . import evaluate  # noqa: F401  (a forbidden import, for the test)",
     "tables (layer 1) imports evaluate (layer 6)"),
    # the circle of issue 21, config -> losses -> config
    ("config", "def _later():\n    from . import losses  # noqa: F401  (a forbidden import, for the test)",
     "config (layer 7) imports losses (layer 8)"),
])
def test_the_check_fails_when_a_lower_layer_imports_a_higher_one(package_dir, tmp_path, module, added, expected):
    out = run_check(_copy_with(package_dir, tmp_path, module, added))
    assert any(line.startswith(expected) for line in out["illegal"]), out


def test_the_check_fails_on_an_import_circle_within_a_layer(package_dir, tmp_path):
    # zoo imports checkpoints; checkpoints importing zoo (the same layer) closes a circle
    out = run_check(_copy_with(package_dir, tmp_path, "checkpoints",
                               "def _later():\n    from . import zoo  # noqa: F401  (a circle, for the test)"))
    assert not out["illegal"]
    assert "advlib.checkpoints <-> advlib.zoo" in out["cycles"], out


def test_the_documented_layers_are_the_checked_ones():
    text = ARCHITECTURE.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^\d+\. (.*)$", section, flags=re.M)
    documented = [tuple(re.findall(r"`([\w.]+)`", item.split(":", 1)[0])) for item in items]
    assert documented == [tuple(layer) for layer in LAYERS]


def test_the_readme_describes_every_module_once():
    """The README's table of modules (``| module | holds |``) has a row for each module of the package, and one only."""
    lines = README.read_text().split("## The library", 1)[1].splitlines()
    start = lines.index("| module | holds |")
    rows = list(itertools.takewhile(lambda ln: ln.startswith("|"), lines[start + 2:]))
    named = [n for row in rows for n in re.findall(r"`([\w.]+)`", row.split(" | ", 1)[0])]
    modules = sorted(m.name for m in pkgutil.iter_modules([str(ARCHITECTURE.parent.parent / PACKAGE)]))
    assert sorted(named) == modules, (f"missing: {sorted(set(modules) - set(named))}, not modules: "
                                      f"{sorted(set(named) - set(modules))}, twice: "
                                      f"{sorted({n for n in named if named.count(n) > 1})}")


def _function_level_imports(path: Path):
    """(line, text, commented) of each import inside a function, ``commented``: a comment on its line, or on
    the line before it or before the group of imports it ends."""
    src = path.read_text()
    lines = src.splitlines()
    comments = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(src).readline)
                if tok.type == tokenize.COMMENT}
    out = []

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                n = child.lineno - 1
                while n >= 1 and re.match(r"\s*(import|from)\s", lines[n - 1]) and n not in comments:
                    n -= 1
                out.append((child.lineno, lines[child.lineno - 1].strip(), child.lineno in comments or n in comments))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(ast.parse(src), False)
    return out


def test_a_function_level_import_says_why(package_dir):
    bare = [f"{p.relative_to(package_dir.parent)}:{line}: {text}" for p in sorted(package_dir.rglob("*.py"))
            for line, text, commented in _function_level_imports(p) if not commented]
    assert not bare, ("imports inside functions without a comment saying why (move them to the top of the "
                      "module, or say why they wait):\n" + "\n".join(bare))


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1])))
