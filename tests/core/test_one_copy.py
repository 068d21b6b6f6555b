"""One copy of each utility: Spearman, JSON with NaN as null, atomic writes of files and images.

The oracle for "one copy" is the source itself (parsed, not imported): a second definition or a
writer that bypasses the shared helper is named in the failure."""

from __future__ import annotations

import ast
import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pruneviz.core import analysis, correlation, jsonout, lesson_actions

ROOT = Path(__file__).resolve().parents[2] / "pruneviz"


@functools.lru_cache(maxsize=1)
def _parsed() -> tuple:
    return tuple((path.relative_to(ROOT.parent).as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(path))) for path in sorted(ROOT.rglob("*.py")))


def _trees():
    """(file, parsed module) of every module of pruneviz, parsed once per test run."""
    return iter(_parsed())


@pytest.mark.slow  # parses every module; quick: test_lessons.py::test_spearman_matches_the_definition
def test_one_spearman_with_one_answer_for_constant_input():
    assert analysis.spearman is correlation.spearman and lesson_actions.spearman is correlation.spearman
    for const in ([2.0, 2.0, 2.0], np.full(3, 2.0), torch.full((3,), 2.0)):
        assert correlation.spearman(const, [1, 2, 3]) is None
        assert correlation.spearman([1, 2, 3], const) is None
    assert correlation.spearman([1, 2, 3], torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    defs = [f"{name}:{node.name}" for name, tree in _trees() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in ("spearman", "ranks")]
    assert defs == ["pruneviz/core/correlation.py:ranks", "pruneviz/core/correlation.py:spearman"]


def test_json_out_is_strict_with_nan_as_null():
    obj = {"a": math.nan, "b": (1.5, math.inf), "c": [np.float32("nan"), np.float64(-np.inf), np.float32(2.0)], "d": "nan"}
    text = jsonout.dumps(obj)
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": [None, None, 2.0], "d": "nan"}
    assert "NaN" not in text and "Infinity" not in text


@pytest.mark.slow  # parses every module; quick: test_json_out_is_strict_with_nan_as_null
def test_one_json_sanitiser_and_one_atomic_writer():
    """NaN-to-null lives in core/jsonout.py, temporary-file-and-rename in core/files.py, image
    writing in qt/render.py; nothing else writes JSON with allow_nan, renames temporary files or
    saves a grabbed widget itself."""
    bad = []
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in ("finite", "jsonable", "finite_array") and name != "pruneviz/core/display.py" and name != "pruneviz/core/jsonout.py":
                bad.append(f"{name}:{node.lineno} defines {node.name}")
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if any(k.arg == "allow_nan" for k in node.keywords) and name != "pruneviz/core/jsonout.py":
                bad.append(f"{name}:{node.lineno} json with allow_nan (use core.jsonout)")
            if isinstance(f, ast.Attribute) and f.attr in ("mkstemp", "replace") and isinstance(f.value, ast.Name) and f.value.id in ("tempfile", "os"):
                # deltas: the undo offload's own scratch files; autosave: moving a journal aside (a rename, not a write)
                if name not in ("pruneviz/core/files.py", "pruneviz/core/deltas.py", "pruneviz/core/autosave.py"):
                    bad.append(f"{name}:{node.lineno} {f.value.id}.{f.attr} (use core.files.atomic_path)")
            if isinstance(f, ast.Attribute) and f.attr == "save" and isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Attribute) and f.value.func.attr == "grab":
                bad.append(f"{name}:{node.lineno} grab().save (use qt.render.save_image)")
    assert bad == []


def test_one_safe_expression_parser():
    """Lesson claims and .pt2 symbolic shapes are both read by core/safe_expr.py (Python's parser
    and a whitelist); nothing else in pruneviz parses expressions."""
    import ast as _ast

    from pruneviz.core import safe_expr
    from pruneviz.core.lesson_claim import parse_claim

    parsers = [f"{name}:{node.lineno}" for name, tree in _trees() for node in ast.walk(tree)
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "parse"
               and isinstance(node.func.value, ast.Name) and node.func.value.id == "ast"]
    assert [p.split(":")[0] for p in parsers] == ["pruneviz/core/safe_expr.py"]
    numbers_only = lambda n: [] if isinstance(n, _ast.Constant) else [n.left, n.right] if isinstance(n, _ast.BinOp) else None  # noqa: E731
    assert safe_expr.refused(safe_expr.parse("1 + 2 * 3", 100), numbers_only) is None
    bad = safe_expr.refused(safe_expr.parse("1 + __import__('os')", 100), numbers_only)
    assert isinstance(bad, _ast.Call)
    assert safe_expr.bracket_depth("((a) + (b))") == 2
    with pytest.raises(safe_expr.ExpressionError, match="characters long"):
        safe_expr.parse("1" * 101, 100)
    with pytest.raises(safe_expr.ExpressionError):
        safe_expr.parse("a > b; import os", 100)
    claim = parse_claim("abs(a - b) < 0.1 and not c >= 2")
    assert claim.names == {"a", "b", "c"} and claim.evaluate({"a": 1.0, "b": 1.05, "c": 1.0})
    for text in ("a < b < c", "a ** 2 > 1", "a.b > 1", "True > a", "(lambda: 1)() > 0"):
        with pytest.raises(Exception, match="unexpected"):
            parse_claim(text)
