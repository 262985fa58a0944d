"""OpenAIModel against httpx.MockTransport: wire format, streaming, retries, errors, cancellation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import BaseModel

import llmos.llm.openai as openai_backend
from llmos.agents import Agent
from llmos.config import get_settings
from llmos.errors import ModelConnectionError, ModelError, ModelNotFoundError
from llmos.llm import ChatRequest, OutputSchema, TextDelta, ToolSpec, UserMessage, get_model
from llmos.llm.openai import OpenAIModel
from llmos.tools import tool

URL = "http://vllm.test/v1"
WEATHER = ToolSpec(
    name="weather",
    description="Weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
)


# --- helpers ------------------------------------------------------------------------------


def sse(*chunks: dict, usage: dict | None = None) -> bytes:
    """A chat-completions stream as vLLM writes it: data lines, a usage chunk, [DONE]."""
    lines = [f"data: {json.dumps({'object': 'chat.completion.chunk', 'choices': [c]})}\n\n" for c in chunks]
    usage = usage or {"prompt_tokens": 12, "completion_tokens": 4}
    lines.append(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n")
    lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def text_stream(*pieces: str, finish: str = "stop") -> bytes:
    chunks = [{"index": 0, "delta": {"content": p}, "finish_reason": None} for p in pieces]
    chunks.append({"index": 0, "delta": {}, "finish_reason": finish})
    return sse(*chunks)


def tool_call_stream(call_id: str, name: str, arguments: str) -> bytes:
    """One whole tool call in one chunk, then finish_reason tool_calls."""
    fragment = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return sse(
        {"index": 0, "delta": {"tool_calls": [fragment]}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
    )


def ok(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


class Server:
    """A MockTransport handler that answers with scripted responses and records every request."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "qwen2.5-coder-0.5b"}, {"id": "qwen2.5-coder-1.5b"}]})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    @property
    def chat_bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith("/chat/completions")]


def model_for(server: Server, **kwargs) -> OpenAIModel:
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return OpenAIModel("qwen2.5-coder-0.5b", URL, client=client, **kwargs)


def ask(text: str = "hi", **kwargs) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content=text)], **kwargs)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """Retries sleep through this list instead of the clock."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(openai_backend, "_sleep", fake_sleep)
    return slept


# --- streaming ----------------------------------------------------------------------------


async def test_streamed_text_deltas_join_to_the_answer_with_usage_and_latency():
    server = Server(ok(text_stream("Hel", "lo, ", "world.")))
    events = [e async for e in model_for(server).stream(ask())]

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["Hel", "lo, ", "world."]
    response = events[-1]
    assert response.text == "Hello, world." and response.finish_reason == "stop"
    assert response.usage.prompt_tokens == 12 and response.usage.completion_tokens == 4
    assert response.latency_s > 0 and response.model == "qwen2.5-coder-0.5b"
    body = server.chat_bodies[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert server.requests[0].url == f"{URL}/chat/completions"


async def test_length_finish_reason_is_mapped():
    server = Server(ok(text_stream("cut", finish="length")))
    assert (await model_for(server).chat(ask())).finish_reason == "length"


async def test_streamed_tool_call_fragments_become_whole_calls():
    def call(index, **fields):
        return {"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}, "finish_reason": None}

    body = sse(
        call(0, id="call_a", type="function", function={"name": "weather", "arguments": ""}),
        call(0, function={"arguments": '{"city": "Par'}),
        call(1, id="call_b", type="function", function={"name": "weather"}),
        call(0, function={"arguments": 'is", "days": 2}'}),
        call(1, function={"arguments": '{"city": "Oslo"}'}),
        {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
    )
    server = Server(ok(body))
    events = [e async for e in model_for(server).stream(ask(tools=[WEATHER]))]

    assert not [e for e in events if isinstance(e, TextDelta)]
    response = events[-1]
    assert [(c.id, c.name) for c in response.tool_calls] == [("call_a", "weather"), ("call_b", "weather")]
    assert [json.loads(c.arguments) for c in response.tool_calls] == [{"city": "Paris", "days": 2}, {"city": "Oslo"}]
    assert response.finish_reason == "tool_calls" and response.text == ""


async def test_call_written_as_json_text_is_parsed_by_the_shared_fallback():
    # What vLLM does with tool_choice=auto for Qwen2.5-Coder: the call comes back as content.
    server = Server(ok(text_stream('{"name": "weather", ', '"arguments": {"city": "Rome"}}')))
    response = await model_for(server).chat(ask(tools=[WEATHER]))
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [("weather", {"city": "Rome"})]
    assert response.finish_reason == "tool_calls"


# --- wire format --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ("weather", {"type": "function", "function": {"name": "weather"}}),
    ],
)
async def test_tool_choice_and_tools_on_the_wire(choice, wire):
    server = Server(ok(tool_call_stream("c1", "weather", "{}")))
    await model_for(server).chat(ask(tools=[WEATHER], tool_choice=choice, temperature=0.3, max_tokens=50))
    body = server.chat_bodies[0]
    assert body["tool_choice"] == wire
    function = {"name": "weather", "description": "Weather in a city.", "parameters": WEATHER.parameters}
    assert body["tools"] == [{"type": "function", "function": function}]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 50


async def test_forced_tool_call_yields_no_text_deltas():
    server = Server(ok(text_stream('{"name": "weather", "arguments": {"city": "Rome"}}')))
    events = [e async for e in model_for(server).stream(ask(tools=[WEATHER], tool_choice="required"))]
    assert len(events) == 1 and events[0].tool_calls[0].name == "weather"


class Point(BaseModel):
    x: int
    y: int


async def test_output_schema_goes_as_response_format_and_comes_back_validated():
    server = Server(ok(text_stream('{"x": 1, ', '"y": 2}')))
    events = [e async for e in model_for(server).stream(ask(output_schema=OutputSchema.of(Point)))]
    assert len(events) == 1 and events[0].output == Point(x=1, y=2)
    assert server.chat_bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Point", "schema": Point.model_json_schema(), "strict": True},
    }


async def test_messages_and_tool_results_on_the_wire():
    @tool
    def weather(city: str) -> str:
        """Weather in a city."""
        return f"sunny in {city}"

    server = Server(ok(tool_call_stream("call_1", "weather", '{"city": "Rome"}')), ok(text_stream("Sunny.")))
    result = await Agent("w", instructions="Be brief.", tools=[weather], model=model_for(server)).run("Rome?")
    assert result.output == "Sunny."
    messages = server.chat_bodies[1]["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1] == {"role": "user", "content": "Rome?"}
    assert messages[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}
        ],
    }
    assert messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny in Rome"}


async def test_request_prefix_is_byte_identical_across_turns():
    @tool
    def lookup(zeta: str, alpha: int = 1) -> str:
        """Look something up."""
        return "found"

    server = Server(
        ok(tool_call_stream("call_1", "lookup", '{"zeta": "q"}')),
        ok(text_stream("Found it.")),
        ok(text_stream("Again.")),
    )
    agent = Agent("a", instructions="Système: be brief.", tools=[lookup], model=model_for(server))
    first = await agent.run("find q")
    await agent.run("and again?", history=first.messages[1:])

    bodies = [r.content for r in server.requests]
    marker = b'{"role":"user"'
    prefixes = [b[: b.index(marker)] for b in bodies]
    assert len(bodies) == 3 and prefixes[0] == prefixes[1] == prefixes[2]
    # The stable prefix holds the tools (properties in declaration order) and the system prompt.
    assert prefixes[0].startswith(b'{"model":"qwen2.5-coder-0.5b","tools":[')
    assert prefixes[0].index(b'"zeta"') < prefixes[0].index(b'"alpha"')
    assert "Système: be brief.".encode() in prefixes[0]


# --- retries and errors -------------------------------------------------------------------


async def test_503_then_200_succeeds_after_a_retry(no_waiting):
    server = Server(httpx.Response(503, json={"error": {"message": "busy"}}), ok(text_stream("ok")))
    assert (await model_for(server).chat(ask())).text == "ok"
    assert len(server.requests) == 2 and len(no_waiting) == 1 and 0 <= no_waiting[0] <= openai_backend.RETRY_BASE_S


async def test_429_honours_retry_after_capped(no_waiting):
    server = Server(
        httpx.Response(429, headers={"retry-after": "2"}),
        httpx.Response(429, headers={"retry-after": "3600"}),
        ok(text_stream("ok")),
    )
    assert (await model_for(server).chat(ask())).text == "ok"
    assert no_waiting == [2.0, openai_backend.RETRY_AFTER_CAP_S]


async def test_retries_give_up_after_max_retries():
    server = Server(*[httpx.Response(500, text="boom")] * 3)
    with pytest.raises(ModelError, match="500 after 3 attempts: boom"):
        await model_for(server, max_retries=2).chat(ask())
    assert len(server.requests) == 3


async def test_400_is_not_retried_and_carries_the_servers_message():
    error = {"error": {"message": "temperature must be >= 0", "type": "BadRequestError"}}
    server = Server(httpx.Response(400, json=error))
    with pytest.raises(ModelError, match="temperature must be >= 0"):
        await model_for(server).chat(ask())
    assert len(server.requests) == 1


async def test_401_says_to_set_the_api_key():
    server = Server(httpx.Response(401, json={"error": "Unauthorized"}))
    with pytest.raises(ModelError, match="LLMOS_API_KEY"):
        await model_for(server).chat(ask())
    assert len(server.requests) == 1


async def test_api_key_is_sent_as_bearer_token():
    server = Server(ok(text_stream("ok")))
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    await OpenAIModel("m", URL, "sk-test", client=client).chat(ask())
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"


async def test_connection_errors_are_retried_then_name_the_url(no_waiting):
    server = Server(*[httpx.ConnectError("Connection refused")] * 4)
    expected = r"could not reach http://vllm.test/v1/chat/completions: is the server running.*llmos serve-model"
    with pytest.raises(ModelConnectionError, match=expected):
        await model_for(server).chat(ask())
    assert len(server.requests) == 4 and len(no_waiting) == 3


async def test_connection_error_then_success():
    server = Server(httpx.RemoteProtocolError("reset"), ok(text_stream("ok")))
    assert (await model_for(server).chat(ask())).text == "ok"
    assert len(server.requests) == 2


async def test_wrong_model_name_lists_the_servers_models():
    message = "The model `qwen2.5-coder-0.5b` does not exist."
    server = Server(httpx.Response(404, json={"error": {"message": message, "type": "NotFoundError", "code": 404}}))
    with pytest.raises(ModelNotFoundError, match="qwen2.5-coder-0.5b, qwen2.5-coder-1.5b"):
        await model_for(server).chat(ask())
    assert [r.url.path for r in server.requests] == ["/v1/chat/completions", "/v1/models"]


async def test_404_without_a_model_message_points_at_the_base_url():
    server = Server(httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(ModelError, match="ends in /v1") as caught:
        await model_for(server).chat(ask())
    assert not isinstance(caught.value, ModelNotFoundError)


async def test_error_chunk_in_the_stream_is_a_model_error():
    body = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: {"error":{"message":"engine died"}}\n\n'
    with pytest.raises(ModelError, match="engine died"):
        await model_for(Server(ok(body))).chat(ask())


# --- cancellation and lifetime ------------------------------------------------------------


class HangingStream(httpx.AsyncByteStream):
    """Sends one chunk, then never another: a server still thinking."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"thinking"}}]}\n\n'
        await asyncio.sleep(3600)

    async def aclose(self) -> None:
        self.closed = True


async def test_cancelling_the_task_closes_the_stream():
    stream = HangingStream()
    server = Server(httpx.Response(200, stream=stream))
    task = asyncio.create_task(model_for(server).chat(ask()))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)
    assert time.perf_counter() - started < 1 and stream.closed


async def test_aclose_closes_only_a_client_it_made():
    own = OpenAIModel("m", URL)
    await own.aclose()
    await own.aclose()
    assert own.client.is_closed
    shared = httpx.AsyncClient(transport=httpx.MockTransport(Server()))
    await OpenAIModel("m", URL, client=shared).aclose()
    assert not shared.is_closed
    await shared.aclose()


# --- registry -----------------------------------------------------------------------------


@pytest.fixture
def settings_env(monkeypatch):
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_registry_returns_openai_model_when_base_url_is_set(settings_env):
    settings_env.setenv("LLMOS_BASE_URL", "http://127.0.0.1:8011/v1/")
    settings_env.setenv("LLMOS_API_KEY", "sk-x")
    settings_env.setenv("LLMOS_MAX_RETRIES", "5")
    model = get_model()
    assert isinstance(model, OpenAIModel)
    assert model.name == "qwen2.5-coder-0.5b" and model.base_url == "http://127.0.0.1:8011/v1"
    assert model.max_retries == 5 and model._headers["Authorization"] == "Bearer sk-x"
    assert isinstance(get_model("openai:other"), OpenAIModel) and get_model("openai:other").name == "other"


def test_registry_url_form_and_errors(settings_env):
    settings_env.delenv("LLMOS_BASE_URL", raising=False)
    model = get_model("http://gpu:8000/v1#Qwen/Qwen2.5-7B-Instruct")
    assert isinstance(model, OpenAIModel)
    assert (model.base_url, model.name) == ("http://gpu:8000/v1", "Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(ModelNotFoundError, match="LLMOS_BASE_URL"):
        get_model("no-such-model")
    with pytest.raises(Exception, match="LLMOS_BASE_URL is not set"):
        get_model("openai:m")


@pytest.mark.parametrize(
    "response",
    [httpx.ConnectError("Connection refused"), httpx.Response(500, json={"error": "boom"}), httpx.Response(401)],
)
async def test_errors_never_show_the_password_in_the_url(no_waiting, response):
    server = Server(*[response] * 4)
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    model = OpenAIModel("m", "http://bob:s3cret@vllm.test/v1", client=client)
    with pytest.raises(ModelError) as caught:
        await model.chat(ask())
    assert "s3cret" not in str(caught.value) and "bob" not in str(caught.value)
    assert "http://***@vllm.test/v1/chat/completions" in str(caught.value)
