"""The house's import rules, checked on the source (parsed, never imported):

- no import cycle between pruneviz's modules, counting imports inside functions too (a cycle
  hidden in a function is still a cycle: the order modules load in decides whether it works);
- no module reaches into another's ``_private`` names (``from x import _name``, ``obj._name``);
- the import-linter contracts of ``pyproject.toml`` ([tool.importlinter]): the core never imports
  Qt or the command line, the command line imports Qt only through ``qt.app`` (gui) and
  ``qt.render`` (PNGs), the window's controllers do not import each other.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "pruneviz"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _modules(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _imported(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom, known) -> set[str]:
    """The package modules an import statement loads (its longest known prefixes)."""
    names = set()
    if isinstance(node, ast.Import):
        names = {a.name for a in node.names}
    else:
        if node.level:
            base = module.split(".") if is_pkg else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = {prefix} | {f"{prefix}.{a.name}" for a in node.names}
    out = set()
    for name in names:
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            if ".".join(parts[:k]) in known:
                out.add(".".join(parts[:k]))
                break
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source (module level or inside a
    function or method)."""
    mods = _modules(package)
    graph = {}
    for name, (path, is_pkg) in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps |= _imported(name, is_pkg, node, mods)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each as one cycle through it
    (``a -> b -> … -> a``), found iteratively (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return sorted(_one_cycle(graph, set(c)) for c in comps)


def _one_cycle(graph, comp: set[str]) -> list[str]:
    """A path ``start -> … -> start`` inside one strongly connected component (for the message)."""
    start = min(comp)
    seen = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & comp):
            if w == start:
                path = [v]
                while seen[path[-1]] is not None:
                    path.append(seen[path[-1]])
                return path[::-1] + [start]
            if w not in seen:
                seen[w] = v
                queue.append(w)
    return sorted(comp)


#: cycles that remain, each written as ``a -> b -> a`` (none today: keep it that way; a cycle
#: too deep to break at once goes here, with a comment, so that no new one can appear)
KNOWN_CYCLES: set[str] = set()


def test_the_cycle_finder_finds_function_level_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import thing\n")
    (pkg / "c.py").write_text("def g():\n    import pkg.a\n")
    (pkg / "d.py").write_text("from pkg.a import x\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


@pytest.mark.slow  # a static check over every module's imports (seconds); run this file before a commit
def test_no_import_cycles():
    found = {" -> ".join(c) for c in cycles(import_graph())}
    new = sorted(found - KNOWN_CYCLES)
    assert not new, "import cycles (module or function level): " + "; ".join(new)


# ------------------------------------------------------------------------------- private names
#: torch.nn.Module's own registry of children, read where a model is walked (a third-party
#: internal that pruneviz also happens to use as a name)
THIRD_PARTY = {"_modules", "_version"}  # torch's own: Module._modules, Tensor._version

#: Accesses of another module's private name that are allowed: none. The window's controllers
#: take their collaborators in their constructor and call each other's public verbs only.
KNOWN_QT: Counter = Counter()


def private_access(package: Path = PACKAGE) -> Counter:
    """``(file, what)`` -> how often: ``from <pruneviz module> import _name``, and ``obj._name``
    where ``obj`` is not ``self``/``cls``/``super()`` and ``_name`` is defined somewhere in the
    package (so torch's own internals, ``torch._C``, are not counted: they are pinned instead)."""
    trees = {p.relative_to(package.parent).as_posix(): ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(package.rglob("*.py"))}
    root = package.name
    defined = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    for x in ast.walk(target):
                        if isinstance(x, ast.Name) and _private(x.id):
                            defined.add(x.id)
                        elif isinstance(x, ast.Attribute) and _private(x.attr) and isinstance(x.value, ast.Name) and x.value.id in ("self", "cls"):
                            defined.add(x.attr)  # an object's own private state (not torch-pruning's, patched in shrink.py)
    defined -= THIRD_PARTY
    hits: Counter = Counter()
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == root):
                hits.update((name, f"import {a.name}") for a in node.names if _private(a.name))
            elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr in defined:
                v = node.value
                if isinstance(v, ast.Name) and v.id in ("self", "cls"):
                    continue
                if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super":
                    continue
                hits[(name, ast.unparse(node))] += 1
    return hits


def test_the_private_access_finder(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("_hidden = 1\nclass C:\n    def __init__(self):\n        self._state = 0\n    def _step(self):\n        return self._state\n")
    (pkg / "b.py").write_text("import torch\nfrom .a import _hidden, C\nfrom pkg.a import _step\n\ndef f(c):\n    c._step()\n    return c._state + torch._C.x + super()._step()\n")
    assert private_access(pkg) == Counter({("pkg/b.py", "import _hidden"): 1, ("pkg/b.py", "import _step"): 1, ("pkg/b.py", "c._step"): 1, ("pkg/b.py", "c._state"): 1})


@pytest.mark.slow  # a static check over every module's AST (seconds); run this file before a commit
def test_no_private_access_across_modules():
    found = private_access()
    over = sorted(f"{f}: {what} ({n}x, {KNOWN_QT[(f, what)]} allowed)" for (f, what), n in found.items() if n > KNOWN_QT[(f, what)])
    assert not over, "another module's private name used (add a public seam instead): " + "; ".join(over)


# ------------------------------------------------------------------------------ import-linter
def _lint_imports() -> list[str] | None:
    exe = Path(sys.executable).with_name("lint-imports")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("lint-imports")
    return [found] if found else None


@pytest.mark.skipif(importlib.util.find_spec("importlinter") is None or _lint_imports() is None,
                    reason="import-linter is not installed (pip install -e '.[test]' brings it; .ci/run does)")
def test_import_contracts():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([*_lint_imports(), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


# ------------------------------------------------------------------------------ the window's parts
def test_the_window_finds_menus_and_actions_by_verb_not_by_label():
    """Menus and actions are asked of the action registry by key; none is found by the text the
    user reads (labels change: "Undo prune neurons 3, 7 of fc1"), and the window's attributes are
    not generated onto it (no ``setattr(MainWindow, ...)`` delegations, no ``attach_*`` functions)."""
    qt = PACKAGE / "qt"
    label = re.compile(r"\.(text|title)\(\)(\.replace\([^)]*\))?\s*==|findChild\(\s*Q(Menu|ToolBar|Action)")
    found = []
    for path in sorted(qt.glob("*.py")):
        src = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {m.group(0)}" for m in label.finditer(src)]
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("attach_"):
                found.append(f"{path.name}: def {node.name}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" and node.args and ast.unparse(node.args[0]) == "MainWindow":
                found.append(f"{path.name}: {ast.unparse(node)}")
    assert not found, "; ".join(found)
