"""The llama.cpp engine on the real Qwen2.5-Coder-0.5B GGUF: prompts identical to the transformers
engine's, streaming, constrained calls and outputs, cancellation, usage, batching and prefix reuse.

Fast (the engine decodes about 30 tokens/s on 2 cores): under a minute for the file.
"""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest
from pydantic import BaseModel

from llmos.errors import PromptError
from llmos.llm import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    OutputSchema,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from llmos.llm.local import LlamaCppModel, model_dir, prepare

pytestmark = pytest.mark.model

NAME = "qwen2.5-coder-0.5b"

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
TOOLS = [WEATHER, ORDERS]

# A system prompt of several hundred tokens, as agents send with every call.
HANDBOOK = "You are the support assistant of Fjord Outfitters.\n" + "\n".join(
    f"Rule {i}: answers about order {1000 + i} go to the {['billing', 'shipping', 'returns'][i % 3]} team."
    for i in range(30)
)


class City(BaseModel):
    name: str
    country: str
    population_millions: float
    is_capital: bool


@pytest.fixture(scope="module")
def llama_model():
    model = LlamaCppModel.from_catalog(NAME)
    asyncio.run(model.load())
    yield model
    asyncio.run(model.aclose())


def test_prompts_are_the_transformers_engines_token_for_token(llama_model):
    from transformers import AutoTokenizer

    prepare(NAME, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir(NAME), local_files_only=True)
    from llmos.llm.local import chat_format

    def hf(messages, tools):
        kwargs = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)

    call = ToolCall.make("get_weather", {"city": "Zürich", "unit": "celsius"})
    requests = [
        ChatRequest(messages=[UserMessage(content="Hei! Hvordan går det? 你好")]),
        ChatRequest(messages=[SystemMessage(content=HANDBOOK), UserMessage(content="Weather?")], tools=TOOLS, tool_choice="required"),
        ChatRequest(
            messages=[
                UserMessage(content="Weather in Zürich?"),
                AssistantMessage(tool_calls=[call]),
                ToolMessage(tool_call_id=call.id, name="get_weather", content='{"sky": "clear", "temp": 3}'),
            ],
            tools=TOOLS,
        ),
        ChatRequest(messages=[UserMessage(content="Tokyo as data")], output_schema=OutputSchema.of(City)),
    ]
    engine = llama_model.engine
    for request in requests:
        ours = chat_format.render(request, engine.apply_template)
        theirs = chat_format.render(request, hf)
        assert ours == theirs
        assert engine.tokenize(ours, special=True) == tokenizer(theirs, add_special_tokens=False)["input_ids"]


async def test_free_text_streams_deltas_that_add_up_to_the_answer(llama_model):
    request = ChatRequest(messages=[UserMessage(content="Name three colours of the rainbow.")], max_tokens=24)
    deltas, response = [], None
    async for event in llama_model.stream(request):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            response = event
    assert isinstance(response, ChatResponse)
    assert len(deltas) > 1 and "".join(deltas) == response.text
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.model == NAME


async def test_forced_and_named_tool_calls_match_the_tool_schema(llama_model):
    by_name = {t.name: t for t in TOOLS}
    prompts = [
        ("What's the weather like in Paris right now?", "get_weather"),
        ("Show me the last 3 orders of anna@example.com.", "search_orders"),
        ("北京今天天气怎么样？", "get_weather"),
        ("Find orders for bob.smith@shop.io", "search_orders"),
        ("Do I need an umbrella in London today?", "get_weather"),
        ("What did maria@example.org order recently?", "search_orders"),
    ]
    requests = [
        ChatRequest(messages=[UserMessage(content=p)], tools=TOOLS, tool_choice="required" if i % 2 else tool, max_tokens=48)
        for i, (p, tool) in enumerate(prompts)
    ]
    responses = await asyncio.gather(*(llama_model.chat(r) for r in requests))
    for request, response in zip(requests, responses):
        assert response.finish_reason == "tool_calls" and not response.text
        (call,) = response.tool_calls
        if request.tool_choice != "required":
            assert call.name == request.tool_choice
        jsonschema.validate(json.loads(call.arguments), by_name[call.name].parameters)


async def test_structured_output_is_a_valid_object(llama_model):
    request = ChatRequest(
        messages=[UserMessage(content="Describe Tokyo as data.")], output_schema=OutputSchema.of(City), max_tokens=60
    )
    response = await llama_model.chat(request)
    assert isinstance(response.output, City) and response.output.name and response.output.country
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


async def test_max_tokens_gives_finish_reason_length(llama_model):
    request = ChatRequest(messages=[UserMessage(content="Write a long story about a dragon.")], max_tokens=5)
    response = await llama_model.chat(request)
    assert response.finish_reason == "length" and response.usage.completion_tokens == 5


async def test_concurrent_requests_are_decoded_together_and_get_their_own_answers(llama_model):
    system = SystemMessage(content="Answer with one word only.")
    questions = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Norway": "Oslo"}

    def ask(country: str) -> ChatRequest:
        return ChatRequest(messages=[system, UserMessage(content=f"What is the capital of {country}?")], max_tokens=8)

    answers = await asyncio.gather(*(llama_model.chat(ask(c)) for c in questions))
    for (country, capital), answer in zip(questions.items(), answers):
        assert capital in answer.text, (country, answer.text)
        assert not any(other in answer.text for other in questions.values() if other != capital)


async def test_cancelling_a_request_frees_its_slot(llama_model):
    long = ChatRequest(messages=[UserMessage(content="Count from 1 to 500, one number per line.")], max_tokens=400)
    started = asyncio.Event()

    async def consume():
        async for _ in llama_model.stream(long):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    short = ChatRequest(messages=[UserMessage(content="Say hi.")], max_tokens=4)
    response = await asyncio.wait_for(llama_model.chat(short), timeout=60)
    assert response.usage.completion_tokens <= 4
    assert not llama_model.engine.busy  # the cancelled answer no longer holds a slot


async def test_a_shared_prefix_is_computed_once(llama_model):
    def ask(question: str) -> ChatRequest:
        return ChatRequest(
            messages=[SystemMessage(content=HANDBOOK), UserMessage(content=question)], tools=TOOLS, max_tokens=4
        )

    first = await llama_model.chat(ask("Who handles order 1007?"))
    before = llama_model.stats
    second = await llama_model.chat(ask("Who handles order 1042?"))
    after = llama_model.stats
    computed = after["prompt_tokens_computed"] - before["prompt_tokens_computed"]
    cached = after["prompt_tokens_cached"] - before["prompt_tokens_cached"]
    assert first.usage.prompt_tokens > 400
    assert computed + cached == second.usage.prompt_tokens
    assert computed < 0.1 * second.usage.prompt_tokens  # only the new question, not the handbook


async def test_agents_that_alternate_keep_their_own_prefixes(llama_model):
    other = "You are the billing clerk of Fjord Outfitters.\n" + "\n".join(
        f"Invoice {i}: due on day {i % 28 + 1}, paid by card {i * 7 % 10}." for i in range(30)
    )

    def ask(system: str, question: str) -> ChatRequest:
        return ChatRequest(messages=[SystemMessage(content=system), UserMessage(content=question)], max_tokens=2)

    await llama_model.chat(ask(HANDBOOK, "Who handles order 1001?"))
    await llama_model.chat(ask(other, "When is invoice 3 due?"))
    before = llama_model.stats
    again = await llama_model.chat(ask(HANDBOOK, "Who handles order 1002?"))
    computed = llama_model.stats["prompt_tokens_computed"] - before["prompt_tokens_computed"]
    assert computed < 0.1 * again.usage.prompt_tokens


async def test_a_prefilled_prefix_is_not_computed_again_by_the_first_request(llama_model):
    system = HANDBOOK.replace("Fjord Outfitters", "Alder & Ridge")  # a prefix no earlier test left in a slot
    before = llama_model.stats
    await llama_model.prefill(ChatRequest(messages=[SystemMessage(content=system)], tools=TOOLS))
    prefilled = llama_model.stats["prompt_tokens_computed"] - before["prompt_tokens_computed"]
    assert prefilled > 400
    before = llama_model.stats
    answer = await llama_model.chat(
        ChatRequest(messages=[SystemMessage(content=system), UserMessage(content="Who handles order 1010?")],
                    tools=TOOLS, max_tokens=4)
    )  # fmt: skip
    computed = llama_model.stats["prompt_tokens_computed"] - before["prompt_tokens_computed"]
    assert computed < 0.1 * answer.usage.prompt_tokens  # only the question


async def test_a_step_that_may_not_call_tools_reuses_the_cache_of_the_steps_before(llama_model):
    call = ToolCall.make("search_orders", {"email": "ana@example.com"})
    history = [
        SystemMessage(content=HANDBOOK),
        UserMessage(content="What did ana@example.com order?"),
        AssistantMessage(tool_calls=[call]),
        ToolMessage(tool_call_id=call.id, name="search_orders", content='[{"order": 1004, "item": "tent"}]'),
    ]
    await llama_model.chat(ChatRequest(messages=history, tools=TOOLS, max_tokens=2))
    before = llama_model.stats
    answer = await llama_model.chat(ChatRequest(messages=history, tools=TOOLS, tool_choice="none", max_tokens=24))
    computed = llama_model.stats["prompt_tokens_computed"] - before["prompt_tokens_computed"]
    assert computed < 0.1 * answer.usage.prompt_tokens
    assert answer.text and not answer.tool_calls and "<tool_call>" not in answer.text


async def test_enormous_prompt_is_a_prompt_error_and_the_model_still_works(llama_model):
    request = ChatRequest(messages=[UserMessage(content="tell me more " * 20_000)], max_tokens=4)
    with pytest.raises(PromptError, match="tokens"):
        await llama_model.chat(request)
    ok = await llama_model.chat(ChatRequest(messages=[UserMessage(content="Say yes.")], max_tokens=3))
    assert ok.usage.completion_tokens > 0
