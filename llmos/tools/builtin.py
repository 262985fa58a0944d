"""Built-in tools every agent may use: a safe calculator and a clock."""

from __future__ import annotations

import ast
import math
import operator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from llmos.tools.base import tool

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1000
MAX_INT_BITS = 1024  # about 1e308, the float range: larger results are refused, not computed

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _round(x: float, ndigits: int = 0) -> float:
    if not isinstance(ndigits, int) or abs(ndigits) > 15:
        raise ValueError("round(x, n) needs a whole number n between -15 and 15")
    return round(x, ndigits)


_FUNCTIONS = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}

_HELP = (
    "Use numbers, + - * / // % **, parentheses, the constants "
    + ", ".join(_CONSTANTS)
    + " and the functions "
    + ", ".join(_FUNCTIONS)
    + "."
)


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression without eval: parse it, then walk only the allowed nodes."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"The expression is {len(expression)} characters long; the limit is {MAX_EXPRESSION_CHARS}.")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"{expression!r} is not a valid arithmetic expression. {_HELP}") from None
    try:
        result = _eval(tree.body)
    except ZeroDivisionError:
        raise ValueError(f"Division by zero in {expression!r}.") from None
    except OverflowError:
        raise ValueError(f"The result of {expression!r} is too large.") from None
    except RecursionError:
        raise ValueError(f"{expression!r} is nested too deeply.") from None
    if isinstance(result, float) and result.is_integer():
        return int(result)
    return result


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        # bool is an int subclass, and strings/complex numbers are constants too: refuse them.
        if type(node.value) not in (int, float):
            raise ValueError(f"{node.value!r} is not a number. {_HELP}")
        return _checked(node.value)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        if isinstance(node.op, ast.BitXor):
            raise ValueError("'^' is not a power here: write 2**10 for two to the tenth.")
        if type(node.op) not in _BINARY:
            raise ValueError(f"The operator in {ast.unparse(node)!r} is not allowed. {_HELP}")
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id not in _CONSTANTS:
            raise ValueError(f"Unknown name {node.id!r}. {_HELP}")
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        if name not in _FUNCTIONS or node.keywords:
            raise ValueError(f"{name!r} is not an allowed function call. {_HELP}")
        args = [_eval(arg) for arg in node.args]  # a *starred argument is a Starred node: refused there
        try:
            return _checked(_FUNCTIONS[name](*args))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{ast.unparse(node)} cannot be computed: {exc}.") from None
    raise ValueError(f"{ast.unparse(node)!r} is not allowed. {_HELP}")


def _power(base: int | float, exponent: int | float) -> int | float:
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"The exponent {exponent} is too large; the limit is {MAX_EXPONENT}.")
    # Estimate an int power's size before computing it, so 10**1000 is refused instead of built.
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
            raise OverflowError
    result = base**exponent
    if isinstance(result, complex):
        raise ValueError(f"({base})**({exponent}) is not a real number.")
    return result


def _checked(value: Any) -> int | float:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise OverflowError
    if isinstance(value, float) and not math.isfinite(value):
        raise OverflowError
    return value


@tool(timeout=5.0)
def calculator(expression: str) -> int | float:
    """Evaluate an arithmetic expression, e.g. "17*23+4" or "sqrt(2)*pi".

    Args:
        expression: Numbers, + - * / // % ** and parentheses; functions sqrt, abs, round, min, max,
            floor, ceil, log, log10, exp, sin, cos, tan; constants pi, e, tau.
    """
    return evaluate(expression)


class Now(BaseModel):
    timezone: str
    datetime: str
    weekday: str


@tool(timeout=5.0)
def clock(timezone: str = "UTC") -> Now:
    """Get the current date and time.

    Args:
        timezone: An IANA time zone name, such as "UTC", "Europe/Paris" or "America/New_York".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown time zone {timezone!r}: use an IANA name such as 'UTC', 'Europe/Paris' or 'America/New_York'."
        ) from None
    now = datetime.now(zone)
    return Now(timezone=timezone, datetime=now.isoformat(timespec="seconds"), weekday=now.strftime("%A"))


BUILTIN_TOOLS = [calculator, clock]
