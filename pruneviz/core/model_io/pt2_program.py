"""The program JSON of a ``.pt2`` archive, checked before ``torch.export.load`` reads it.

Loading turns parts of that JSON into code: symbolic-shape expressions are parsed with
``sympy.sympify`` (which is ``eval``), so each must be a plain ``srepr`` of allowed sympy classes
(read with :mod:`pruneviz.core.safe_expr`); graph node targets are resolved by name, so each must
be a registered operator that passes the TorchScript allowlist (:mod:`.ts_ops`) or one of the
harmless plain targets the exporter's verifier allows; and names that PyTorch's FX code generator
splices into the Python source of ``forward`` must be plain names. :func:`check_program_json`
walks a program or payload-config document and raises :class:`Unsafe` or :class:`Unknown`;
:mod:`.pt2` turns those into its one-line refusals.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import operator
import re

import torch

from pruneviz.core import safe_expr

from .common import one_line, quiet_torch, reason
from .ts_ops import OUTSIDE, operator_refusal

__all__ = ["Unsafe", "Unknown", "check_program_json"]

_SAFE_NAME = re.compile(r"[\w.\-]*\Z")
# Free text PyTorch only stores as metadata (never turns into code under module(check_guards=False)).
_PT2_FREE_TEXT_KEYS = {"metadata", "as_string", "as_strings", "torch_version", "guards_code"}
_SYMPY_CALLS = {
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs",
    "floor", "ceiling", "sqrt", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality", "Unequality",
    "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "And", "Or", "Not", "Xor",
    "Piecewise", "ExprCondPair", "BooleanTrue", "BooleanFalse", "Infinity", "NegativeInfinity",
    "NaN", "Zero", "One", "NegativeOne", "Half", "IntInfinity", "NegativeIntInfinity",
    # torch.utils._sympy.functions, as listed by the deserializer
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "Identity",
}  # fmt: skip
_SYMPY_NAMES = {"oo", "zoo", "nan", "true", "false", "True", "False", "pi", "E", "int_oo"}
_SYMPY_STR = re.compile(r"[\w.+\-]*\Z")


class Unsafe(Exception):
    """Raised inside the .pt2 checks: the archive would run code from itself."""


class Unknown(Exception):
    """Raised inside the .pt2 checks: the program calls an operator this PyTorch lacks."""


def _sym_rule(node: ast.AST):
    """The whitelist of a sympy ``srepr`` (see :mod:`pruneviz.core.safe_expr`): the children
    to check, or None."""
    if isinstance(node, ast.Constant):
        value = node.value
        ok = value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and bool(_SYMPY_STR.match(value)))
        return [] if ok else None
    if isinstance(node, ast.Name):
        return [] if node.id in _SYMPY_NAMES else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return [node.operand]
    if isinstance(node, ast.Tuple):
        return node.elts
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SYMPY_CALLS:
        if all(k.arg is not None and not k.arg.startswith("_") for k in node.keywords):
            return [*node.args, *(k.value for k in node.keywords)]
    return None


def _check_sym_expr(text: object) -> None:
    """Allow only an ``srepr`` of allowed sympy classes: sympify() evals the string."""
    if not isinstance(text, str) or len(text) > 20_000:
        raise Unsafe("a symbolic-shape expression that is not a plain sympy expression")
    try:
        tree = safe_expr.parse(text, max_chars=20_000)
    except safe_expr.ExpressionError as exc:
        raise Unsafe(f"a malformed symbolic-shape expression ({exc})") from exc
    if safe_expr.refused(tree, _sym_rule) is not None:
        raise Unsafe(f"a symbolic-shape expression that would run code ({one_line(text, 60)!r})")


@functools.lru_cache(maxsize=1)
def _allowed_plain_targets() -> tuple:
    """Non-operator call targets export graphs may hold (the verifier's list, all harmless)."""
    allowed: list = [
        operator.getitem, operator.add, operator.mul, operator.sub, operator.truediv,
        operator.floordiv, operator.mod, operator.pow, operator.neg, operator.pos, operator.abs,
        operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
        operator.and_, operator.or_, operator.not_, operator.lshift, operator.rshift,
        math.ceil, math.floor, math.trunc, round,
        torch.sym_int, torch.sym_float, torch.sym_ite, torch.sym_max, torch.sym_min,
        torch.sym_not, torch.sym_sqrt, torch._C._set_grad_enabled,
        torch.autograd.grad_mode.set_grad_enabled,
    ]  # fmt: skip
    for name in ("sym_sum",):
        if hasattr(torch, name):
            allowed.append(getattr(torch, name))
    try:
        from torch._export.serde.serialize import _SYM_OPS

        allowed.extend(_SYM_OPS)
    except Exception:
        pass
    try:
        from torch.amp.autocast_mode import _enter_autocast, _exit_autocast

        allowed.extend([_enter_autocast, _exit_autocast])
    except Exception:
        pass
    return tuple(allowed)


def _resolve_target(name: str) -> object:
    """What ``torch._export.serde`` would resolve a serialized call target to (getattr only)."""
    if name.startswith("_operator"):
        base: object = operator
    elif name.startswith("torch"):
        base = torch
    elif name.startswith("math"):
        base = math
    else:
        return name
    for part in name.split(".")[1:]:
        try:
            base = getattr(base, part)
        except Exception:
            return name
    return base


def _check_target(name: object) -> None:
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise Unsafe(f"an operator name that is not a plain name ({one_line(str(name), 60)!r})")
    with quiet_torch():
        target = _resolve_target(name)
    if isinstance(target, torch._ops.OpOverload):
        why = operator_refusal(target.name().split(".")[0], target._schema)
        if why is not None:  # the same allowlist as TorchScript's
            raise Unsafe(f"a call to {why}, {OUTSIDE}")
        return
    if isinstance(target, torch._ops.HigherOrderOperator):
        return
    if not isinstance(target, str) and any(target is t for t in _allowed_plain_targets()):
        return
    if isinstance(target, str):
        raise Unknown(f"uses the operator {one_line(name, 80)}, which this PyTorch does not have (a custom op?)")
    raise Unsafe(f"a call to {name}, which is not a PyTorch operator")


def _check_treespec(text: object) -> None:
    if not isinstance(text, str):
        raise Unsafe("a malformed input/output spec")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Unsafe(f"a malformed input/output spec ({reason(exc)})") from exc
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_plain(key)
                if key == "context" and isinstance(item, str):
                    try:
                        stack.append(json.loads(item))
                    except (ValueError, RecursionError) as exc:
                        raise Unsafe(f"a malformed input/output spec ({reason(exc)})") from exc
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_plain(value)


def _check_plain(value: object) -> None:
    if isinstance(value, str) and not _SAFE_NAME.match(value):
        raise Unsafe(f"the name {one_line(value, 60)!r}, which is not a plain name")


def check_program_json(doc: object) -> None:
    """Walk a program or payload-config JSON; raise :class:`Unsafe` on anything that could become
    code, :class:`Unknown` on an operator this PyTorch lacks."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("target"), str) and "inputs" in value:  # a graph node
                _check_target(value["target"])
                for argument in value.get("inputs") or []:
                    arg_name = argument.get("name") if isinstance(argument, dict) else None
                    # keyword names become `name=` in generated code; positional ones are ""
                    if arg_name is not None and not (isinstance(arg_name, str) and (arg_name == "" or arg_name.isidentifier())):
                        raise Unsafe(f"the argument name {one_line(str(arg_name), 60)!r}")
            for key, item in value.items():
                _check_plain(key)
                if key in _PT2_FREE_TEXT_KEYS:
                    continue
                if key == "expr_str":
                    _check_sym_expr(item)
                elif key in ("in_spec", "out_spec"):
                    if item is not None:
                        _check_treespec(item)
                elif key == "forward_arg_names":
                    for arg_name in item or []:
                        if not (isinstance(arg_name, str) and arg_name.isidentifier()):
                            raise Unsafe(f"the argument name {one_line(str(arg_name), 60)!r}")
                elif key == "as_operator":
                    _check_target(item)
                elif key == "target" and isinstance(item, str):
                    continue  # checked above when in a node
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_plain(value)
