"""The claim of a lesson: a comparison over named figures, parsed by a tiny grammar (no ``eval``).

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

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import PrunevizError

__all__ = ["LessonError", "Claim", "parse_claim", "DEFAULT_SHARE", "Verdict", "decide", "mean_std"]

#: the share of seeds on which a claim must hold, besides holding on the mean figures (a
#: lesson's ``share``): 0.6 is 2 of 3 seeds, 3 of 5
DEFAULT_SHARE = 0.6


class LessonError(PrunevizError):
    """A lesson file that cannot be used: one line naming the file and the line."""


# -------------------------------------------------------------------------------------- claims
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|==|!=|[-+*/<>()]))")
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


def parse_claim(text: str) -> Claim:
    """Parse a claim expression (grammar in the module docstring); raises :class:`LessonError`."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    if len(text) > MAX_CHARS:
        raise LessonError(f"the claim is {len(text):,} characters long; at most {MAX_CHARS:,}")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].strip()[:1]
            raise LessonError(f"unexpected {bad!r} at character {pos + 1} of {text!r}")
        pos = m.end()
        if m.group("num"):
            tokens.append(("num", m.group("num")))
        elif m.group("name"):
            tokens.append(("word" if m.group("name") in _WORDS else "name", m.group("name")))
        elif m.group("op"):
            tokens.append(("op", m.group("op")))
        if len(tokens) > MAX_TOKENS:
            raise LessonError(f"the claim has more than {MAX_TOKENS} names, numbers and operators")
    if not tokens:
        raise LessonError("the claim is empty")
    names: set[str] = set()
    i = 0
    depth = 0

    def deeper():
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise LessonError(f"the claim nests brackets, 'not' or '-' more than {MAX_DEPTH} deep")

    def peek():
        return tokens[i] if i < len(tokens) else ("end", "")

    def take(value=None):
        nonlocal i
        tok = peek()
        if value is not None and tok[1] != value:
            raise LessonError(f"expected {value!r} but found {tok[1] or 'the end'!r} in {text!r}")
        i += 1
        return tok

    def p_or():
        parts = [p_and()]
        while peek() == ("word", "or"):
            take()
            parts.append(p_and())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def p_and():
        parts = [p_not()]
        while peek() == ("word", "and"):
            take()
            parts.append(p_not())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def p_not():
        nonlocal depth
        if peek() == ("word", "not"):
            take()
            deeper()
            node = ("not", p_not())
            depth -= 1
            return node
        return p_cmp()

    def p_cmp():
        left = p_sum()
        if peek()[0] == "op" and peek()[1] in _CMP:
            op = take()[1]
            return ("cmp", op, left, p_sum())
        return left

    def p_sum():
        node = p_prod()
        while peek()[0] == "op" and peek()[1] in "+-":
            op = take()[1]
            node = ("arith", op, node, p_prod())
        return node

    def p_prod():
        node = p_unary()
        while peek()[0] == "op" and peek()[1] in "*/":
            op = take()[1]
            node = ("arith", op, node, p_unary())
        return node

    def p_unary():
        nonlocal depth
        deeper()
        node = p_atom()
        depth -= 1
        return node

    def p_atom():
        kind, value = peek()
        if (kind, value) == ("op", "-"):
            take()
            return ("neg", p_unary())
        if kind == "num":
            take()
            return ("num", float(value))
        if kind == "name":
            take()
            names.add(value)
            return ("name", value)
        if (kind, value) == ("word", "abs"):
            take()
            take("(")
            inner = p_or()
            take(")")
            return ("abs", inner)
        if (kind, value) == ("op", "("):
            take()
            inner = p_or()
            take(")")
            return inner
        raise LessonError(f"expected a figure name or a number but found {value or 'the end'!r} in {text!r}")

    tree = p_or()
    if i != len(tokens):
        raise LessonError(f"unexpected {tokens[i][1]!r} in {text!r}")
    if tree[0] not in ("cmp", "and", "or", "not"):
        raise LessonError(f"a claim must compare figures (e.g. a > b), got {text!r}")
    return Claim(text, tree, frozenset(names))
