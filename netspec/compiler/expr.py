"""A tiny, safe expression language for parameterised blocks.

Block bodies may use `$name` (a parameter) or `${expr}` (an expression over parameters),
and `when: expr` to keep a layer only when a condition holds. Expressions are parsed with
`ast` and interpreted by walking a whitelist of node types: no `eval`, no attribute
access, no `**`, calls only of a few pure number functions (`FUNCTIONS`: torchvision's
`divisible` rounding of widths, ceil, round, min, max, ...), and every number is bounded,
so a spec cannot run code or build huge values.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
from typing import Any

MAX_EXPR_CHARS = 200
MAX_ABS_VALUE = 10**12
MAX_LENGTH = 1000  # of strings and lists an expression builds


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message is meant for the user."""


_BINARY: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def evaluate(text: str, env: dict[str, Any]) -> Any:
    """Evaluate `text` with names from `env`."""
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    return _eval(_parse(text.strip()), env, text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> ast.expr:
    """Parsed once per distinct expression (blocks repeat the same ones many times)."""
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ExprError(f"invalid expression {text!r}: {exc.msg}") from None


def _checked(value: Any, text: str) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_ABS_VALUE:
        raise ExprError(f"value out of range in {text!r}")
    if isinstance(value, (str, list)) and len(value) > MAX_LENGTH:
        raise ExprError(f"value longer than {MAX_LENGTH} in {text!r}")
    return value


def _refuse_long_repetition(left: Any, right: Any, text: str) -> None:
    """`[0] * 10**9` must fail before it is built, not after."""
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list)) and isinstance(count, int) and len(seq) * count > MAX_LENGTH:
            raise ExprError(f"value longer than {MAX_LENGTH} in {text!r}")


def _eval(node: ast.AST, env: dict[str, Any], text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return _checked(node.value, text)
    if isinstance(node, ast.Name):
        if node.id not in env:
            known = ", ".join(sorted(env)) or "none"
            raise ExprError(f"unknown name {node.id!r} in {text!r} (known: {known})")
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, env, text), _eval(node.right, env, text)
        try:
            if isinstance(node.op, ast.Mult):
                _refuse_long_repetition(left, right, text)
            return _checked(_BINARY[type(node.op)](left, right), text)
        except (TypeError, ZeroDivisionError) as exc:
            raise ExprError(f"cannot evaluate {text!r}: {exc}") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        value = _eval(node.operand, env, text)
        if isinstance(node.op, ast.Not):
            return not value
        if not isinstance(value, (int, float)):
            raise ExprError(f"cannot evaluate {text!r}: a sign needs a number, got {value!r}")
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, env, text) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval(node.left, env, text)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator, env, text)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError as exc:
                raise ExprError(f"cannot compare in {text!r}: {exc}") from None
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, env, text) else node.orelse, env, text)
    if isinstance(node, ast.Subscript):
        container, index = _eval(node.value, env, text), _eval(node.slice, env, text)
        try:
            return container[index]
        except (TypeError, IndexError, KeyError):
            raise ExprError(f"cannot index {container!r} with {index!r} in {text!r}") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords:
        args = [_eval(a, env, text) for a in node.args]
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ExprError(f"{node.func.id}() takes numbers, got {', '.join(map(repr, args))} in {text!r}")
        try:
            return _checked(FUNCTIONS[node.func.id](*args), text)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ExprError(f"cannot evaluate {text!r}: {exc}") from None
    if isinstance(node, (ast.List, ast.Tuple)):
        if len(node.elts) > 64:
            raise ExprError(f"list too long in {text!r}")
        return [_eval(e, env, text) for e in node.elts]
    raise ExprError(f"{_describe(node)} not supported in {text!r} ({_SUPPORTED})")


def divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's `_make_divisible`: the nearest multiple of `divisor` (at least `min_value`,
    default `divisor`), one step up when that would lose more than 10%. Width multipliers use it."""
    if divisor < 1 or int(divisor) != divisor:
        raise ValueError("divisible(): the divisor must be a positive integer")
    divisor = int(divisor)
    low = divisor if min_value is None else int(min_value)
    rounded = max(low, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# The only functions an expression may call: pure, of numbers, bounded by `_checked`.
FUNCTIONS: dict[str, Any] = {
    "divisible": divisible,
    "ceil": lambda x: int(math.ceil(x)),
    "floor": lambda x: int(math.floor(x)),
    "round": lambda x: int(round(x)),
    "int": int,
    "min": min,
    "max": max,
}

_SUPPORTED = (
    "expressions take numbers, strings, lists, + - * / // %, comparisons, and/or/not, if-else, indexing"
    f" and the functions {', '.join(FUNCTIONS)}"
)
_OPERATORS = {ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.MatMult: "@"}
_KINDS = {
    ast.Attribute: "attribute access is", ast.Call: "calls are", ast.Lambda: "lambdas are", ast.Dict: "dicts are",
    ast.Slice: "slices are", ast.ListComp: "comprehensions are", ast.GeneratorExp: "comprehensions are",
    ast.SetComp: "comprehensions are", ast.DictComp: "comprehensions are", ast.Set: "sets are",
}


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.BinOp):
        return f"the operator {_OPERATORS.get(type(node.op), type(node.op).__name__)} is"
    if isinstance(node, ast.UnaryOp):
        return "the operator ~ is"
    return _KINDS.get(type(node), f"{type(node).__name__} is")


def substitute(value: Any, env: dict[str, Any]) -> Any:
    """Replace `$name` and `${expr}` strings (also inside lists) by their values."""
    if isinstance(value, str) and value.startswith("$"):
        body = value[2:-1] if value.startswith("${") and value.endswith("}") else value[1:]
        return evaluate(body, env)
    if isinstance(value, list):
        return type(value)(substitute(v, env) for v in value) if type(value) is list else _copy_list(value, env)
    return value


def _copy_list(value: list, env: dict[str, Any]) -> list:
    out = type(value)(substitute(v, env) for v in value)
    for attr in ("loc", "item_locs"):
        if hasattr(value, attr):
            setattr(out, attr, getattr(value, attr))
    return out
