"""Expressions read with Python's own parser and a whitelist, never ``eval``: the one safe
expression parser of pruneviz.

Two readers use it: a lesson's claim (:mod:`pruneviz.core.lesson_claim`: comparisons over named
figures) and the check of the symbolic-shape expressions a ``.pt2`` archive carries
(:mod:`pruneviz.core.model_io.pt2_program`: sympy's ``srepr``, which loading would ``eval``). Each gives a
*rule*: a function that looks at one node and returns the child nodes still to check, or None
to refuse it. :func:`refused` walks the tree with it, without recursion (a deep expression
cannot overflow the stack), and returns the first node the rule refuses.

Example::

    tree = parse("a > 0.5", max_chars=100)
    rule = lambda n: [n.left, *n.comparators] if isinstance(n, ast.Compare) else [] if isinstance(n, (ast.Name, ast.Constant)) else None
    refused(tree, rule)  # None: every node allowed
"""

from __future__ import annotations

import ast
from typing import Callable, Iterable

__all__ = ["ExpressionError", "parse", "refused", "bracket_depth", "Rule"]

#: one node -> the child nodes still to check, or None when the node is not allowed
Rule = Callable[[ast.AST], "Iterable[ast.AST] | None"]


class ExpressionError(ValueError):
    """The text is not an expression Python can read (too long, malformed, too deeply nested)."""


def bracket_depth(text: str) -> int:
    """How deeply round brackets nest in ``text`` (the parser drops them, so count them here)."""
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def parse(text: str, max_chars: int) -> ast.expr:
    """The body of ``text`` parsed as one Python expression (``mode="eval"``); nothing is run."""
    if not isinstance(text, str):
        raise ExpressionError(f"not text but {type(text).__name__}")
    if len(text) > max_chars:
        raise ExpressionError(f"{len(text):,} characters long; at most {max_chars:,}")
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        where = f" at character {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"{exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def refused(tree: ast.AST, rule: Rule) -> ast.AST | None:
    """The first node of ``tree`` that ``rule`` refuses, or None when all are allowed."""
    todo = [tree]
    while todo:
        node = todo.pop()
        children = rule(node)
        if children is None:
            return node
        todo.extend(children)
    return None
