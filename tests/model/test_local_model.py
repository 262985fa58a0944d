"""The real in-process model (Qwen2.5-Coder-0.5B) on the transformers engine: constrained output, streaming,
concurrency, errors. (The llama.cpp engine, the default, has the same checks in test_llamacpp_model.py, and runs
every other model test.)

Answers are kept short (small max_tokens) so the file runs in a few minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest
from pydantic import BaseModel

from llmos.errors import PromptError
from llmos.llm import ChatRequest, ChatResponse, OutputSchema, SystemMessage, TextDelta, ToolSpec, UserMessage

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def local_model():
    """The transformers engine, whatever LLMOS_LOCAL_ENGINE says: the engine of fine-tuning and adapters."""
    from llmos.llm.local import LocalModel, prepare

    prepare("qwen2.5-coder-0.5b", progress=False)
    model = LocalModel.from_catalog("qwen2.5-coder-0.5b")
    asyncio.run(model.load())
    yield model
    asyncio.run(model.aclose())


class City(BaseModel):
    name: str
    country: str
    population_millions: float
    is_capital: bool


WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
    },
)
ORDERS = ToolSpec(
    name="search_orders",
    description="Find a customer's recent orders by their email address.",
    parameters={
        "type": "object",
        "properties": {"email": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50}},
        "required": ["email"],
    },
)
TICKET = ToolSpec(
    name="create_ticket",
    description="Open a support ticket for a problem a customer reports.",
    parameters={
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "priority": {"type": "string", "enum": ["low", "medium", "high"]},
        },
        "required": ["title", "priority"],
    },
)
TOOLS = [WEATHER, ORDERS, TICKET]

# (prompt, the tool it is about): even cases use tool_choice="required", odd ones name the tool.
CALL_PROMPTS = [
    ("What's the weather like in Paris right now?", "get_weather"),
    ("Show me the last 3 orders of anna@example.com.", "search_orders"),
    ("My laptop won't boot after the update, please open a ticket. It's urgent.", "create_ticket"),
    ("Is it raining in Tokyo? Use fahrenheit.", "get_weather"),
    ("Find orders for bob.smith@shop.io", "search_orders"),
    ("The checkout page shows an error 500, file a low priority ticket.", "create_ticket"),
    ("How hot is it in Cairo today, in celsius?", "get_weather"),
    ("List the orders of customer li.wei@example.cn, at most 10.", "search_orders"),
    ("I was charged twice for my subscription!", "create_ticket"),
    ("Weather in São Paulo?", "get_weather"),
    ("What did maria@example.org order recently?", "search_orders"),
    ("The mobile app crashes when I open settings.", "create_ticket"),
    ("Do I need an umbrella in London today?", "get_weather"),
    ("Look up orders for jean-luc@example.fr, limit 5.", "search_orders"),
    ("Password reset emails never arrive, medium priority please.", "create_ticket"),
    ("北京今天天气怎么样？", "get_weather"),
    ("Check the orders of ops@acme.com", "search_orders"),
    ("My package arrived damaged, I want a ticket opened.", "create_ticket"),
    ("Temperature in New York in fahrenheit?", "get_weather"),
    ("Orders placed by zoe@example.net?", "search_orders"),
]


async def test_structured_output_is_a_valid_object(local_model):
    request = ChatRequest(
        messages=[UserMessage(content="Describe Tokyo as data.")],
        output_schema=OutputSchema.of(City),
        max_tokens=60,
    )
    response = await local_model.chat(request)
    assert isinstance(response.output, City)
    assert response.output.name and response.output.country
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


async def test_forced_tool_calls_always_match_the_tool_schema(local_model):
    by_name = {t.name: t for t in TOOLS}
    valid = []
    for i, (prompt, tool) in enumerate(CALL_PROMPTS):
        choice = "required" if i % 2 == 0 else tool
        request = ChatRequest(messages=[UserMessage(content=prompt)], tools=TOOLS, tool_choice=choice, max_tokens=48)
        response = await local_model.chat(request)
        assert response.finish_reason == "tool_calls" and not response.text
        (call,) = response.tool_calls
        assert call.id and call.name in by_name
        if choice != "required":
            assert call.name == choice
        jsonschema.validate(json.loads(call.arguments), by_name[call.name].parameters)
        valid.append((prompt, call.name, call.arguments))
    assert len(valid) == 20, valid


async def test_a_forced_call_to_a_tool_with_only_optional_parameters_fills_them_in(local_model):
    recommend = ToolSpec(
        name="recommend_products",
        description="Recommend products for a customer (by id) or for a request (what they want).",
        parameters={
            "type": "object",
            "properties": {
                "customer_id": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "request": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
        },
    )
    request = ChatRequest(
        messages=[UserMessage(content="I am customer C001. Recommend a warm sleeping bag for me.")],
        tools=[recommend],
        tool_choice="recommend_products",
        max_tokens=64,
    )
    arguments = json.loads((await local_model.chat(request)).tool_calls[0].arguments)
    assert set(arguments) == {"customer_id", "request"}  # not `{}`, the shortest way out of the grammar
    assert arguments["customer_id"] == "C001" or "sleeping bag" in (arguments["request"] or "")


async def test_free_text_streams_deltas_that_add_up_to_the_answer(local_model):
    request = ChatRequest(messages=[UserMessage(content="Name three colours of the rainbow.")], max_tokens=24)
    deltas, response = [], None
    async for event in local_model.stream(request):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            response = event
    assert isinstance(response, ChatResponse)
    assert len(deltas) > 1 and "".join(deltas) == response.text
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.latency_s > 0 and response.model == "qwen2.5-coder-0.5b"


async def test_max_tokens_gives_finish_reason_length(local_model):
    request = ChatRequest(messages=[UserMessage(content="Write a long story about a dragon.")], max_tokens=5)
    response = await local_model.chat(request)
    assert response.finish_reason == "length" and response.usage.completion_tokens == 5


async def test_concurrent_requests_get_their_own_answers(local_model):
    system = SystemMessage(content="Answer with one word only.")

    def ask(question: str) -> ChatRequest:
        return ChatRequest(messages=[system, UserMessage(content=question)], max_tokens=8)

    france, japan = await asyncio.gather(
        local_model.chat(ask("What is the capital of France?")),
        local_model.chat(ask("What is the capital of Japan?")),
    )
    assert "Paris" in france.text and "Tokyo" not in france.text
    assert "Tokyo" in japan.text and "Paris" not in japan.text


async def test_cancelling_a_request_frees_the_model(local_model):
    long = ChatRequest(messages=[UserMessage(content="Count from 1 to 500, one number per line.")], max_tokens=400)

    async def consume():
        async for _ in local_model.stream(long):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    short = ChatRequest(messages=[UserMessage(content="Say hi.")], max_tokens=4)
    response = await asyncio.wait_for(local_model.chat(short), timeout=30)
    assert response.usage.completion_tokens <= 4


async def test_enormous_prompt_is_a_prompt_error(local_model):
    request = ChatRequest(messages=[UserMessage(content="tell me more " * 20_000)], max_tokens=4)
    with pytest.raises(PromptError, match="tokens"):
        await local_model.chat(request)
    # The model still works afterwards.
    ok = await local_model.chat(ChatRequest(messages=[UserMessage(content="Say yes.")], max_tokens=3))
    assert ok.usage.completion_tokens > 0


async def test_max_tokens_must_be_positive(local_model):
    with pytest.raises(PromptError, match="max_tokens"):
        await local_model.chat(ChatRequest(messages=[UserMessage(content="hi")], max_tokens=0))
