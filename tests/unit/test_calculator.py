"""The built-in tools: a calculator that never evals, and a clock."""

from __future__ import annotations

import json
import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from llmos.tools import BUILTIN_TOOLS, calculator, clock
from llmos.tools.builtin import MAX_EXPRESSION_CHARS, evaluate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17*23+4", 395),
        ("2+3*4", 14),
        ("(2+3)*4", 20),
        ("-2**2", -4),  # ** binds tighter than unary minus, as in Python
        ("2**10", 1024),
        ("2**-1", 0.5),
        ("7/2", 3.5),
        ("7//2", 3),
        ("7%3", 1),
        ("1.5*2", 3),  # integral results come back as int
        ("sqrt(16)+abs(-2)", 6),
        ("round(2.567, 2)", 2.57),
        ("max(1, 5, 3) - min(4, 2)", 3),
    ],
)
def test_arithmetic(expression: str, expected: float) -> None:
    result = evaluate(expression)
    assert result == expected
    assert type(result) is type(expected)


def test_floats_and_constants() -> None:
    assert evaluate("0.1+0.2") == pytest.approx(0.3)
    assert evaluate("2*pi") == pytest.approx(math.tau)
    assert evaluate("e") == pytest.approx(math.e)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("2**100000", "exponent 100000 is too large"),
        ("10**400", "too large"),
        ("9" * 400, "too large"),
        ("1e308*10", "too large"),
        ("__import__('os')", "'__import__' is not an allowed function"),
        ("(1).real", "is not allowed"),
        ("().__class__", "is not allowed"),
        ("x + 1", "Unknown name 'x'"),
        ("'a'*3", "is not a number"),
        ("True + 1", "is not a number"),
        ("2^3", "write 2\\*\\*10"),
        ("sqrt(-1)", "cannot be computed"),
        ("(-8)**(1/3)", "not a real number"),
        ("1 +", "not a valid arithmetic expression"),
        ("[1, 2]", "is not allowed"),
        ("lambda: 1", "is not allowed"),
    ],
)
def test_rejected(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(expression)


def test_division_by_zero() -> None:
    with pytest.raises(ValueError, match=r"Division by zero in '1/0'"):
        evaluate("1/0")
    with pytest.raises(ValueError, match="Division by zero"):
        evaluate("5 % (2-2)")


def test_long_expression_is_rejected() -> None:
    with pytest.raises(ValueError, match="characters long"):
        evaluate("1+" * MAX_EXPRESSION_CHARS + "1")


async def test_calculator_tool() -> None:
    assert (await calculator.run('{"expression": "17*23+4"}')).content == "395"
    failed = await calculator.run('{"expression": "1/0"}')
    assert failed.is_error and "Division by zero" in failed.content
    spec = calculator.spec
    assert spec.parameters["required"] == ["expression"]
    assert "sqrt" in spec.parameters["properties"]["expression"]["description"]


async def test_clock_with_a_zone() -> None:
    result = await clock.run('{"timezone": "Asia/Tokyo"}')
    assert not result.is_error
    data = json.loads(result.content)
    now = datetime.fromisoformat(data["datetime"])
    assert now.utcoffset() == datetime.now(ZoneInfo("Asia/Tokyo")).utcoffset()
    assert data["weekday"] == now.strftime("%A")
    assert data["timezone"] == "Asia/Tokyo"
    assert abs(now.timestamp() - datetime.now().timestamp()) < 5
    default = json.loads((await clock.run("{}")).content)
    assert default["timezone"] == "UTC" and default["datetime"].endswith("+00:00")


async def test_clock_with_a_bad_zone() -> None:
    for zone in ("Mars/Olympus", "../etc/passwd"):
        result = await clock.run(json.dumps({"timezone": zone}))
        assert result.is_error
        assert f"Unknown time zone {zone!r}" in result.content
        assert "Europe/Paris" in result.content


def test_builtin_tools() -> None:
    assert [t.name for t in BUILTIN_TOOLS] == ["calculator", "clock"]
