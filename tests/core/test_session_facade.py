"""session.py is a facade: a short module of short verbs over parts, each part a module of its own
under the house's ~400 lines (parsed, never imported)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "pruneviz" / "core"
PARTS = ["session.py", "session_coupling.py", "session_edit.py", "session_eval.py", "session_scores.py", "session_select.py", "session_verbs.py",
         "editable.py", "weight_edit.py", "workers.py", "training.py", "training_run.py", "compensate.py", "attention_heads.py", "attention_find.py"]  # fmt: skip


def test_the_session_and_its_parts_stay_under_400_lines():
    sizes = {name: len((CORE / name).read_text(encoding="utf-8").splitlines()) for name in PARTS}
    assert {n: k for n, k in sizes.items() if k > 400} == {}


def _verbs(tree: ast.Module) -> dict[str, int]:
    """Statements in the body of each method of ``Session`` (its docstring not counted)."""
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Session")
    out = {}
    for f in cls.body:
        if isinstance(f, ast.FunctionDef):
            body = f.body[1:] if f.body and isinstance(f.body[0], ast.Expr) and isinstance(f.body[0].value, ast.Constant) else f.body
            out[f.name] = len(body)
    return out


def test_every_session_verb_is_a_line_or_two_over_a_part():
    verbs = _verbs(ast.parse((CORE / "session.py").read_text(encoding="utf-8")))
    assert len(verbs) > 40
    assert {n: k for n, k in verbs.items() if k > 4 and n not in ("__init__", "open")} == {}


def test_the_verb_counter_counts_statements(tmp_path):
    src = 'class Session:\n    def a(self):\n        """doc"""\n        return 1\n    def b(self):\n        x = 1\n        y = 2\n        return x + y\n'
    assert _verbs(ast.parse(src)) == {"a": 1, "b": 3}
