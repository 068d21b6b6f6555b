"""The claim of a lesson: a comparison over named figures, read by the one safe expression parser
(:mod:`pruneviz.core.safe_expr`: Python's parser and this grammar as a whitelist, no ``eval``).

::

    claim   := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | NUMBER | NAME | "(" or ")" | "abs" "(" or ")"

Example::

    parse_claim("accuracy_random_70 < accuracy_magnitude_70").evaluate(figures)  # True / False
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from . import safe_expr
from .errors import PrunevizError

__all__ = ["LessonError", "Claim", "parse_claim", "DEFAULT_SHARE", "Verdict", "decide", "mean_std"]

#: the share of seeds on which a claim must hold, besides holding on the mean figures (a
#: lesson's ``share``): 0.6 is 2 of 3 seeds, 3 of 5
DEFAULT_SHARE = 0.6


class LessonError(PrunevizError):
    """A lesson file that cannot be used: one line naming the file and the line."""


# -------------------------------------------------------------------------------------- claims
_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
_ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b if b else math.inf if a > 0 else -math.inf if a < 0 else math.nan}
_WORDS = {"and", "or", "not", "abs"}
#: bounds on a claim: its length, and how deeply brackets, ``not`` and ``-`` may nest (the
#: parser and the evaluator recurse; the shipped claims use 170 characters and depth 1)
MAX_CHARS = 2000
MAX_DEPTH = 32
MAX_TOKENS = 256  #: a chain ``a + b + …`` is evaluated recursively too: its length is bounded by this


@dataclass(frozen=True)
class Claim:
    """A parsed claim: ``evaluate(figures)`` gives True/False; ``names`` are the figures it reads."""

    text: str
    tree: tuple
    names: frozenset

    def evaluate(self, figures: dict[str, float]) -> bool:
        missing = sorted(n for n in self.names if n not in figures)
        if missing:
            raise LessonError(f"the claim needs {', '.join(missing)}, which this run did not record")
        return bool(_eval(self.tree, figures))


def mean_std(per_seed: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """The mean and the sample standard deviation (n − 1; 0 for one seed) of each figure over
    the seeds; a figure missing from a seed, or not finite on one, is not finite in both."""
    if not per_seed:
        return {}, {}
    names = sorted(set().union(*per_seed))
    mean, std = {}, {}
    for name in names:
        vals = [float(f.get(name, math.nan)) for f in per_seed]
        if not all(math.isfinite(v) for v in vals):
            mean[name] = std[name] = math.nan
            continue
        m = math.fsum(vals) / len(vals)
        mean[name] = m
        std[name] = math.sqrt(math.fsum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return mean, std


@dataclass(frozen=True)
class Verdict:
    """A claim decided over seeds: ``holds`` only when it holds on the mean figures *and* on at
    least ``share`` of the seeds (``held_on`` of ``len(per_seed)``)."""

    holds: bool
    holds_on_mean: bool
    held: tuple  #: per seed, in order: whether the claim holds on that seed's figures
    share: float
    mean: dict
    std: dict

    @property
    def held_on(self) -> int:
        return sum(self.held)

    @property
    def needed(self) -> int:
        """The least number of seeds the claim must hold on."""
        return math.ceil(self.share * len(self.held) - 1e-9)


def decide(claim: "Claim", per_seed: list[dict[str, float]], share: float = DEFAULT_SHARE) -> Verdict:
    """Decide ``claim`` over the figures of several seeds (one dict per seed); see :class:`Verdict`.

    Example: ``decide(parse_claim("a > b"), [{"a": 1, "b": 0}, {"a": 0, "b": 1}], 0.6).holds`` is
    False (the mean ties, and it holds on 1 of 2 seeds)."""
    if not per_seed:
        raise LessonError("a claim is decided over at least one seed")
    if not 0.0 <= share <= 1.0:
        raise LessonError(f"share must be from 0 to 1, got {share!r}")
    mean, std = mean_std(per_seed)
    held = tuple(bool(claim.evaluate(f)) for f in per_seed)
    on_mean = bool(claim.evaluate(mean))
    verdict = Verdict(False, on_mean, held, float(share), mean, std)
    return Verdict(on_mean and verdict.held_on >= verdict.needed, on_mean, held, float(share), mean, std)


def _eval(node: tuple, env: dict) -> Any:
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "name":
        return float(env[node[1]])
    if kind == "neg":
        return -_eval(node[1], env)
    if kind == "abs":
        return abs(_eval(node[1], env))
    if kind == "not":
        return not _eval(node[1], env)
    if kind == "and":
        return all(_eval(n, env) for n in node[1])
    if kind == "or":
        return any(_eval(n, env) for n in node[1])
    if kind == "cmp":
        return _CMP[node[1]](_eval(node[2], env), _eval(node[3], env))
    return _ARITH[node[1]](_eval(node[2], env), _eval(node[3], env))


_CMP_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_ARITH_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _claim_rule(node: ast.AST):
    """The claim grammar as a whitelist over Python's parse (see :mod:`pruneviz.core.safe_expr`)."""
    if isinstance(node, ast.BoolOp):
        return node.values
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        return [node.operand]
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP_OPS:
        return [node.left, node.comparators[0]]
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_OPS:
        return [node.left, node.right]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs" and len(node.args) == 1 and not node.keywords:
        return node.args
    if isinstance(node, ast.Constant):
        return [] if isinstance(node.value, (int, float)) and not isinstance(node.value, bool) else None
    if isinstance(node, ast.Name):
        return [] if node.id not in _WORDS else None
    return None


def _tree(node: ast.AST, names: set) -> tuple:
    """The evaluator's tuple form of an allowed node (depth is bounded by then)."""
    if isinstance(node, ast.BoolOp):
        return ("and" if isinstance(node.op, ast.And) else "or", [_tree(v, names) for v in node.values])
    if isinstance(node, ast.UnaryOp):
        return ("not" if isinstance(node.op, ast.Not) else "neg", _tree(node.operand, names))
    if isinstance(node, ast.Compare):
        return ("cmp", _CMP_OPS[type(node.ops[0])], _tree(node.left, names), _tree(node.comparators[0], names))
    if isinstance(node, ast.BinOp):
        return ("arith", _ARITH_OPS[type(node.op)], _tree(node.left, names), _tree(node.right, names))
    if isinstance(node, ast.Call):
        return ("abs", _tree(node.args[0], names))
    if isinstance(node, ast.Constant):
        return ("num", float(node.value))
    names.add(node.id)
    return ("name", node.id)


def _depth(node: ast.AST) -> int:
    """How deeply ``not``, ``-`` and ``abs`` nest (brackets are counted on the text)."""
    deepest, todo = 0, [(node, 0)]
    while todo:
        n, d = todo.pop()
        if isinstance(n, (ast.UnaryOp, ast.Call)):
            d += 1
        deepest = max(deepest, d)
        todo.extend((c, d) for c in ast.iter_child_nodes(n) if isinstance(c, ast.expr))
    return deepest


def parse_claim(text: str) -> Claim:
    """Parse a claim expression (grammar in the module docstring) with the one safe expression
    parser (:mod:`pruneviz.core.safe_expr`: Python's parser and a whitelist, never ``eval``);
    raises :class:`LessonError`."""
    text = " ".join(str(text).split())
    if len(text) > MAX_CHARS:
        raise LessonError(f"the claim is {len(text):,} characters long; at most {MAX_CHARS:,}")
    if not text:
        raise LessonError("the claim is empty")
    if safe_expr.bracket_depth(text) > MAX_DEPTH:
        raise LessonError(f"the claim nests brackets, 'not' or '-' more than {MAX_DEPTH} deep")
    try:
        tree = safe_expr.parse(text, MAX_CHARS)
    except safe_expr.ExpressionError as exc:
        raise LessonError(f"cannot read the claim {text!r}: {exc}") from None
    parts = [n for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call))]
    if len(parts) + sum(len(n.values) - 1 for n in ast.walk(tree) if isinstance(n, ast.BoolOp)) > MAX_TOKENS:
        raise LessonError(f"the claim has more than {MAX_TOKENS} names, numbers and operators")
    if _depth(tree) > MAX_DEPTH:
        raise LessonError(f"the claim nests brackets, 'not' or '-' more than {MAX_DEPTH} deep")
    bad = safe_expr.refused(tree, _claim_rule)
    if bad is not None:
        shown = ast.get_source_segment(text, bad) or type(bad).__name__
        raise LessonError(f"unexpected {shown!r} in {text!r}: a claim compares figure names and numbers with < <= > >= == != (one at a time), + - * /, abs(), and, or, not")
    if not isinstance(tree, (ast.Compare, ast.BoolOp)) and not (isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.Not)):
        raise LessonError(f"a claim must compare figures (e.g. a > b), got {text!r}")
    names: set[str] = set()
    return Claim(text, _tree(tree, names), frozenset(names))
