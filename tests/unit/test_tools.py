"""Typed tools: schema from hints and docstrings, validation, errors, timeouts, serialisation, LangChain."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from llmos.errors import ToolDefinitionError
from llmos.tools import Tool, ToolResult, as_tool, from_langchain, tool


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str


@tool
def ship(
    order_id: int,
    address: Address,
    speed: Literal["standard", "express"] = "standard",
    note: Annotated[str, Field(description="From the hint")] = "",
    gift: bool = False,
) -> str:
    """Ship an order to an address.

    Use this once the order is paid.

    Args:
        order_id: The order number.
        address: Where to send it.
        speed: How fast to ship.
        note: From the docstring (the hint's description wins).
    """
    return f"{order_id} to {address.city} ({speed})"


def test_schema_from_hints_and_docstring() -> None:
    spec = ship.spec
    assert spec.name == "ship"
    assert spec.description == "Ship an order to an address.\n\nUse this once the order is paid."
    params = spec.parameters
    assert list(params)[:3] == ["type", "properties", "required"]
    assert params["type"] == "object"
    assert params["required"] == ["order_id", "address"]
    props = params["properties"]
    assert props["order_id"] == {"description": "The order number.", "type": "integer"}
    assert props["speed"]["enum"] == ["standard", "express"]
    assert props["speed"]["default"] == "standard"
    assert props["speed"]["description"] == "How fast to ship."
    assert props["note"]["description"] == "From the hint"
    assert props["gift"] == {"default": False, "type": "boolean"}
    assert props["address"]["description"] == "Where to send it."
    nested = params["$defs"]["Address"]
    assert nested["required"] == ["street", "city"]
    assert "title" not in json.dumps(params)


def test_numpy_and_rest_docstrings() -> None:
    @tool
    def numpy_style(x: int) -> int:
        """Double a number.

        Parameters
        ----------
        x : int
            The number.
        """
        return 2 * x

    @tool
    def rest_style(x: int) -> int:
        """Triple a number.

        :param x: The number to triple.
        """
        return 3 * x

    assert numpy_style.spec.description == "Double a number."
    assert numpy_style.spec.parameters["properties"]["x"]["description"] == "The number."
    assert rest_style.spec.parameters["properties"]["x"]["description"] == "The number to triple."


def test_a_property_named_title_is_kept() -> None:
    @tool
    def rename(title: str) -> str:
        """Rename a document."""
        return title

    assert rename.spec.parameters["properties"] == {"title": {"type": "string"}}


def test_decorator_with_options() -> None:
    @tool(name="lookup", description="Look a thing up.", timeout=1.5, max_retries=4)
    async def find(query: str) -> str:
        return query

    assert isinstance(find, Tool)
    assert (find.name, find.spec.description, find.timeout_s, find.max_retries) == (
        "lookup",
        "Look a thing up.",
        1.5,
        4,
    )


def test_spec_is_byte_identical() -> None:
    first = json.dumps(ship.spec.model_dump())
    assert all(json.dumps(ship.spec.model_dump()) == first for _ in range(3))
    assert ship.spec is ship.spec  # cached, not rebuilt per request

    def make() -> Tool:
        @tool
        def f(a: int, b: Literal["x", "y"] = "x") -> int:
            """F."""
            return a

        return f

    assert json.dumps(make().spec.model_dump()) == json.dumps(make().spec.model_dump())


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda x: x, "no type hint"),
        (lambda *args: 0, "*args"),
        (lambda **kw: 0, "**kwargs"),
    ],
)
def test_untypable_functions_are_refused(fn, message) -> None:
    fn.__name__ = "bad"
    with pytest.raises(ToolDefinitionError, match=message.replace("*", r"\*")):
        tool(fn)


def test_bad_name_is_refused() -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match="not usable"):
        tool(f, name="has spaces")


async def test_sync_and_async_tools_run() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @tool
    def add(a: int, b: int = 1) -> int:
        """Add."""
        seen.append(threading.get_ident())
        return a + b

    @tool
    async def mul(a: float, b: float) -> float:
        """Multiply."""
        return a * b

    result = await add.run('{"a": 2, "b": 3}')
    assert result == ToolResult(content="5", value=5)
    assert (await add.run('{"a": 2}')).value == 3  # default used
    assert seen and seen[0] != loop_thread  # sync functions run off the event loop
    assert (await mul.run('{"a": 1.5, "b": 4}')).content == "6.0"
    assert await add(a=4) == 5
    with pytest.raises(ValidationError):
        await add(a="four")


async def test_nested_pydantic_argument_is_validated_into_the_model() -> None:
    result = await ship.run(
        json.dumps({"order_id": 7, "address": {"street": "1 Main St", "city": "Lyon"}, "speed": "express"})
    )
    assert result.content == "7 to Lyon (express)"
    assert not result.is_error


async def test_malformed_json_is_an_error_result() -> None:
    result = await ship.run('{"order_id": 7,')
    assert result.is_error
    assert "Invalid JSON" in result.content
    assert "order_id (integer, required)" in result.content
    assert "speed (one of 'standard', 'express', default 'standard')" in result.content


async def test_wrong_types_are_listed() -> None:
    result = await ship.run('{"order_id": "seven", "speed": "teleport", "colour": "red"}')
    assert result.is_error
    text = result.content
    assert "order_id: Input should be a valid integer" in text and "'seven'" in text
    assert "address: Field required" in text
    assert "speed:" in text and "'teleport'" in text
    assert "colour: Extra inputs are not permitted" in text
    assert "Call the tool again" in text


async def test_a_schema_required_list_echoed_into_the_arguments_is_dropped() -> None:
    result = await ship.run('{"order_id": 7, "address": {"street": "1 Main St", "city": "Lyon"}, "required": ["order_id", "address"]}')
    assert not result.is_error, result.content
    # Only schema words are forgiven: a misspelt argument is still reported.
    result = await ship.run('{"order_id": 7, "address": {"street": "1 Main St", "city": "Lyon"}, "required": ["order_id"], "sped": "express"}')
    assert result.is_error and "sped: Extra inputs are not permitted" in result.content


async def test_empty_arguments_mean_no_arguments() -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert (await ping.run("")).content == "pong"
    assert ping.spec.parameters == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


async def test_exception_in_tool_is_an_error_result() -> None:
    @tool
    def explode(x: int) -> int:
        """Fail."""
        raise KeyError(f"no item {x}")

    result = await explode.run('{"x": 3}')
    assert result.is_error
    assert result.content == "Tool 'explode' failed: KeyError: 'no item 3'"
    assert "Traceback" not in result.content
    with pytest.raises(KeyError):  # direct Python calls raise
        await explode(x=3)


async def test_hanging_tool_times_out() -> None:
    @tool(timeout=0.1)
    async def hang() -> str:
        """Never answers."""
        await asyncio.sleep(60)
        return "late"

    @tool(timeout=0.1)
    def hang_sync() -> str:
        """Blocks a thread for a while."""
        time.sleep(0.5)
        return "late"

    for slow in (hang, hang_sync):
        started = time.perf_counter()
        result = await slow.run("{}")
        assert time.perf_counter() - started < 0.4
        assert result.is_error
        assert "timed out after 0.1s" in result.content


async def test_timeout_error_raised_by_the_tool_is_not_our_timeout() -> None:
    @tool(timeout=5)
    async def upstream() -> str:
        """Calls a slow service."""
        raise TimeoutError("upstream took too long")

    result = await upstream.run("{}")
    assert result.content == "Tool 'upstream' failed: TimeoutError: upstream took too long"


async def test_unserialisable_return_is_an_error_result() -> None:
    class Opaque:
        pass

    @tool
    def leak() -> object:
        """Returns something odd."""
        return Opaque()

    result = await leak.run("{}")
    assert result.is_error
    assert "Opaque" in result.content
    assert "pydantic model, a dataclass or plain values" in result.content


async def test_models_dataclasses_and_dates_are_serialised() -> None:
    @dataclass
    class Point:
        x: int
        y: int

    class Order(BaseModel):
        id: int
        placed: date
        where: Point

    @tool
    def get_order() -> Order:
        """Get the order."""
        return Order(id=1, placed=date(2024, 5, 17), where=Point(1, 2))

    @tool
    def points() -> list[Point]:
        """List points."""
        return [Point(3, 4)]

    result = await get_order.run("{}")
    assert json.loads(result.content) == {"id": 1, "placed": "2024-05-17", "where": {"x": 1, "y": 2}}
    assert isinstance(result.value, Order)
    assert "value" not in result.model_dump()
    assert json.loads((await points.run("{}")).content) == [{"x": 3, "y": 4}]


async def test_as_tool() -> None:
    assert as_tool(ship) is ship

    def square(n: int) -> int:
        """Square a number."""
        return n * n

    made = as_tool(square)
    assert (await made.run('{"n": 9}')).content == "81"
    with pytest.raises(ToolDefinitionError):
        as_tool(42)


async def test_langchain_tool_runs_through_the_adapter() -> None:
    from langchain_core.tools import tool as lc_tool

    @lc_tool
    def word_count(text: str, minimum: int = 0) -> int:
        """Count the words in a text."""
        return max(len(text.split()), minimum)

    adapted = from_langchain(word_count)
    assert adapted.name == "word_count"
    assert adapted.spec.description == "Count the words in a text."
    assert adapted.spec.parameters["required"] == ["text"]
    assert "title" not in json.dumps(adapted.spec.parameters)
    assert (await adapted.run('{"text": "one two three"}')).content == "3"
    bad = await adapted.run('{"minimum": 2}')
    assert bad.is_error and "text: Field required" in bad.content
    assert as_tool(word_count).name == "word_count"


async def test_langchain_structured_tool_and_its_errors() -> None:
    from langchain_core.tools import StructuredTool, ToolException

    class Args(BaseModel):
        city: str = Field(description="The city")

    async def forecast(city: str) -> dict:
        if city == "Atlantis":
            raise ToolException("no such city")
        return {"city": city, "sky": "clear"}

    structured = StructuredTool.from_function(
        coroutine=forecast, name="forecast", description="Weather forecast.", args_schema=Args
    )
    adapted = from_langchain(structured, timeout=2)
    assert adapted.spec.parameters["properties"]["city"] == {"description": "The city", "type": "string"}
    ok = await adapted.run('{"city": "Oslo"}')
    assert json.loads(ok.content) == {"city": "Oslo", "sky": "clear"}
    failed = await adapted.run('{"city": "Atlantis"}')
    assert failed.is_error and "ToolException: no such city" in failed.content


async def test_langchain_tool_with_a_json_schema() -> None:
    from langchain_core.tools import StructuredTool

    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "description": "A number"}},
        "required": ["n"],
    }

    def double(n: int) -> int:
        return 2 * n

    structured = StructuredTool.from_function(func=double, name="double", description="Double.", args_schema=schema)
    adapted = from_langchain(structured)
    assert adapted.spec.parameters["properties"] == {"n": {"type": "integer", "description": "A number"}}
    assert (await adapted.run('{"n": 21}')).content == "42"
    bad = await adapted.run('{"n": "x"}')
    assert bad.is_error and "n: 'x' is not of type 'integer'" in bad.content


async def test_string_hints_naming_local_classes_and_bound_methods() -> None:
    class Item(BaseModel):  # local class named by a string hint (this file uses `from __future__ import annotations`)
        sku: str

    @tool
    def stock(item: Item) -> Item:
        """Check stock."""
        return item

    class Shop:
        def __init__(self) -> None:
            self.prices = {"tea": 3}

        def price(self, product: str) -> int:
            """Price of a product."""
            return self.prices[product]

    assert json.loads((await stock.run('{"item": {"sku": "A1"}}')).content) == {"sku": "A1"}
    priced = tool(Shop().price)
    assert list(priced.spec.parameters["properties"]) == ["product"]  # no `self`
    assert (await priced.run('{"product": "tea"}')).content == "3"
