"""Rules for the tests themselves, checked over the AST of tests/core and tests/qt.

* Every test checks something: an ``assert``, ``pytest.raises``/``warns``, a qtbot wait on a
  condition or signal (``waitUntil``, ``waitSignal``, ...), a call to a helper named
  ``check_*``/``assert_*``, or a call to a helper of its own module that does one of these.
  A test that only runs code passes whatever the code computes.
* No fixed waits in test code: ``time.sleep`` and ``qtbot.wait(ms)`` make a test slow on a quiet
  machine and flaky on a loaded one; wait for the condition instead (``qtbot.waitUntil``,
  ``waitSignal``, ``threading.Event.wait``). Code that stands in for slow work (a model whose
  forward sleeps like a GPU kernel) is not a wait: it is listed in ``SLOW_WORK`` with its reason;
  a sleep in the body of a ``while`` loop is the interval of a poll for a condition (a process
  that must exit), not a fixed wait.
* No wall-clock asserts: a test does not compare a measured duration (``time.perf_counter()``,
  ``time.time()``, ``time.monotonic()``) with a limit; speed belongs to tests/benchmarks.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
FILES = sorted(p for sub in ("core", "qt") for p in (TESTS / sub).glob("*.py"))
WAITS = {"waitUntil", "waitSignal", "waitSignals", "waitCallback", "assertNotEmitted", "waitExposed", "waitActive"}
RAISES = {"raises", "warns", "deprecated_call", "fail"}
CLOCKS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns"}
# (file, enclosing function or class): why a sleep there is the work under test, not a wait
SLOW_WORK = {
    ("test_main_window.py", "_Slow"): "a model layer that takes `delay` per batch with the GIL released, like a GPU kernel",
}


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))  # once per file for the three rules


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _dotted(call: ast.Call) -> str:
    parts, f = [], call.func
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def _checks_directly(fn) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = _name(node)
            if name in RAISES or name in WAITS or name.lstrip("_").startswith(("check", "assert")):
                return True
    return False


def unchecked_tests(path: Path) -> list[str]:
    tree = _parse(path)
    funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    known: dict[str, bool] = {}

    def checks(fn, seen) -> bool:
        if fn.name in known:
            return known[fn.name]
        found = _checks_directly(fn)
        if not found:
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    helper = funcs.get(_name(node))
                    if helper is not None and helper.name not in seen:
                        seen.add(helper.name)
                        if checks(helper, seen):
                            found = True
                            break
        known[fn.name] = found
        return found

    return [f"{path.name}:{fn.lineno} {fn.name}" for fn in funcs.values() if fn.name.startswith("test") and not checks(fn, {fn.name})]


def fixed_waits(path: Path) -> list[str]:
    """``time.sleep(...)``, ``sleep(...)`` and ``<qtbot>.wait(<number>)`` calls outside SLOW_WORK."""
    tree = _parse(path)
    found = []

    def visit(node, owner, polling):
        for child in ast.iter_child_nodes(node):
            here = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and owner is None else owner
            if isinstance(child, ast.Call) and (path.name, here) not in SLOW_WORK:
                dotted = _dotted(child)
                if (dotted in ("time.sleep", "sleep") and not polling) or (dotted.endswith("qtbot.wait") and child.args):
                    found.append(f"{path.name}:{child.lineno} {dotted}(...)")
            visit(child, here, polling or isinstance(child, ast.While))

    visit(tree, None, False)
    return found


def wall_clock_asserts(path: Path) -> list[str]:
    """Functions that read a clock and assert a comparison: the shape of ``assert elapsed < 2``."""
    tree = _parse(path)
    found = []
    if not any(isinstance(n, ast.Name) and n.id == "time" for n in ast.walk(tree)):
        return found  # the module never names the time module
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        clock = any(isinstance(n, ast.Call) and _dotted(n).startswith("time.") and _name(n) in CLOCKS for n in ast.walk(fn))
        compares = any(isinstance(n, ast.Assert) and any(isinstance(c, ast.Compare) for c in ast.walk(n.test)) for n in ast.walk(fn))
        if clock and compares:
            found.append(f"{path.name}:{fn.lineno} {fn.name}")
    return found


@pytest.mark.slow  # parses every test file; quick: test_the_rules_catch_what_they_name
def test_every_test_checks_something():
    missing = [m for p in FILES if p.name.startswith("test_") for m in unchecked_tests(p)]
    assert not missing, "tests without an assertion:\n" + "\n".join(missing)


def test_no_fixed_waits_in_tests():
    found = [m for p in FILES for m in fixed_waits(p)]
    assert not found, "fixed waits (use qtbot.waitUntil / waitSignal or an Event):\n" + "\n".join(found)


def test_no_wall_clock_asserts_in_tests():
    found = [m for p in FILES for m in wall_clock_asserts(p)]
    assert not found, "wall-clock asserts (speed belongs to tests/benchmarks):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "rule", "expected"),
    [
        ("def test_a():\n    f()\n", unchecked_tests, 1),
        ("def test_a():\n    assert f()\n", unchecked_tests, 0),
        ("def _h():\n    assert 1\ndef test_a():\n    _h()\n", unchecked_tests, 0),
        ("def test_a(qtbot):\n    qtbot.waitUntil(f)\n", unchecked_tests, 0),
        ("def test_a():\n    check_all()\n", unchecked_tests, 0),
        ("def test_a(qtbot):\n    qtbot.wait(50)\n    assert 1\n", fixed_waits, 1),
        ("import time\ndef test_a():\n    time.sleep(0.1)\n    assert 1\n", fixed_waits, 1),
        ("def test_a(qtbot):\n    qtbot.waitUntil(f)\n", fixed_waits, 0),
        ("import time\ndef test_a():\n    while not done():\n        time.sleep(0.1)\n    assert 1\n", fixed_waits, 0),
        ("import time\ndef test_a():\n    for _ in range(3):\n        time.sleep(0.1)\n    assert 1\n", fixed_waits, 1),
        ("import time\ndef test_a():\n    t = time.perf_counter()\n    f()\n    assert time.perf_counter() - t < 1\n", wall_clock_asserts, 1),
        ("def test_a():\n    assert f() < 1\n", wall_clock_asserts, 0),
    ],
)
def test_the_rules_catch_what_they_name(tmp_path, source, rule, expected):
    path = tmp_path / "test_x.py"
    path.write_text(source)
    assert len(rule(path)) == expected


def test_the_quick_gui_tests_exist():
    """tests/qt/conftest.py names the GUI tests of the quick loop; a renamed test must not drop out silently."""
    conftest = _parse(TESTS / "qt" / "conftest.py")
    quick = next(n.value for n in conftest.body if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "QUICK" for t in n.targets))
    missing = []
    for key, names in zip(quick.keys, quick.values):
        module = _parse(TESTS / "qt" / key.value)
        defined = {n.name for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        missing += [f"{key.value}::{e.value}" for e in names.elts if e.value not in defined]
    assert not missing, missing
