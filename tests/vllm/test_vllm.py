"""llmos against a real vLLM server: tool calls, structured output, streaming, an agent, failures."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Literal

import pytest
from pydantic import BaseModel

from llmos.agents.assistant import assistant
from llmos.errors import ModelConnectionError, ModelNotFoundError
from llmos.llm import ChatRequest, OutputSchema, SystemMessage, TextDelta, UserMessage
from llmos.llm.openai import OpenAIModel
from llmos.tools import tool

pytestmark = pytest.mark.vllm


@tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict:
    """Current weather in a city.

    Args:
        city: The city name.
        unit: Celsius or Fahrenheit.
    """
    return {"city": city, "temperature": 21, "unit": unit}


@tool
def convert_currency(amount: float, source: str, target: str) -> float:
    """Convert an amount of money between currencies.

    Args:
        amount: How much money.
        source: ISO code of the currency to convert from, e.g. USD.
        target: ISO code of the currency to convert to, e.g. EUR.
    """
    return amount * 0.9


TOOLS = [get_weather.spec, convert_currency.spec]


def ask(text: str, max_tokens: int = 128, **kwargs) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content=text)], max_tokens=max_tokens, **kwargs)


@pytest.mark.parametrize("choice", ["required", "get_weather"])
async def test_forced_and_named_tool_calls_validate(vllm_model, choice):
    response = await vllm_model.chat(ask("What's the weather like in Lyon?", tools=TOOLS, tool_choice=choice))
    [call] = response.tool_calls
    assert call.name == "get_weather"
    args = get_weather.args_model.model_validate_json(call.arguments)
    assert "lyon" in args.city.lower()
    assert response.usage.prompt_tokens > 0 and response.latency_s > 0


class Person(BaseModel):
    name: str
    age: int
    city: str


async def test_structured_output_is_a_valid_object(vllm_model):
    request = ask("Extract the person: Maria Rossi, 34, lives in Turin.", output_schema=OutputSchema.of(Person))
    person = (await vllm_model.chat(request)).output
    assert isinstance(person, Person) and person.age == 34 and "Maria" in person.name


async def test_streaming_text_then_response(vllm_model):
    events = [e async for e in vllm_model.stream(ask("Name three colours, comma separated."))]
    deltas = [e.text for e in events[:-1] if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == events[-1].text
    assert events[-1].usage.completion_tokens > 0


async def test_streaming_with_tools_yields_a_whole_call(vllm_model):
    request = ask("Convert 100 USD to EUR.", tools=TOOLS, tool_choice="auto")
    events = [e async for e in vllm_model.stream(request)]
    response = events[-1]
    [call] = response.tool_calls
    assert call.name == "convert_currency"
    args = convert_currency.args_model.model_validate_json(call.arguments)
    assert args.amount == 100 and args.source.upper() == "USD"
    # The call written as text is not shown as prose while it streams.
    assert "convert_currency" not in "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_agent_end_to_end_with_the_calculator(vllm_model):
    result = await assistant(vllm_model).run("What is 17*23+4?")
    calls = [c for m in result.messages if m.role == "assistant" for c in m.tool_calls]
    assert any(c.name == "calculator" for c in calls)
    assert "395" in result.output


async def test_prefix_is_reused_by_the_server(vllm_model, vllm_url):
    """Two turns of one agent share a byte-identical prefix, so vLLM serves it from its prefix cache."""
    import httpx

    def cached_tokens() -> float:
        text = httpx.get(vllm_url.removesuffix("/v1") + "/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("vllm:prefix_cache_hits_total") or line.startswith("vllm:prefix_cache_hits{")
        )

    before = cached_tokens()
    system = SystemMessage(content="You are a weather assistant. " * 40)
    for city in ("Oslo", "Rome"):
        await vllm_model.chat(
            ChatRequest(messages=[system, UserMessage(content=f"Weather in {city}?")], tools=TOOLS, tool_choice="required", max_tokens=64)
        )
    assert cached_tokens() - before >= 200


async def test_server_down_is_a_clear_error():
    model = OpenAIModel("qwen2.5-coder-0.5b", "http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(ModelConnectionError, match=r"127\.0\.0\.1:9"):
        await model.chat(ask("hello"))
    await model.aclose()


async def test_wrong_model_name_lists_what_the_server_has(vllm_url):
    model = OpenAIModel("no-such-model", vllm_url)
    with pytest.raises(ModelNotFoundError, match="qwen2.5-coder-0.5b"):
        await model.chat(ask("hello"))
    await model.aclose()


async def test_cancelling_a_request_frees_the_server(vllm_model):
    request = ask("Write a very long story about a lighthouse keeper.", max_tokens=2000)
    task = asyncio.create_task(vllm_model.chat(request))
    await asyncio.sleep(2.0)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 1.0
    # The server dropped the cancelled generation: a short request is answered promptly.
    started = time.perf_counter()
    response = await vllm_model.chat(ask("Say OK.", max_tokens=5))
    assert response.text and time.perf_counter() - started < 15
