"""The OpenAI-compatible API, called by the official `openai` client and LangChain's ChatOpenAI."""

from __future__ import annotations

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from llmos.llm import SystemMessage as LSystem, UserMessage as LUser, AssistantMessage as LAssistant
from tests.server.conftest import ToolCall, create_app, echo_agent, make_key, serve, support_team


@pytest.fixture
def key(keys_url) -> str:
    return make_key(keys_url, "acme", user="C001")


def client(running, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=running.v1, api_key=key, max_retries=0)


def test_plain_completion_runs_the_team_and_reports_usage(settings, key):
    team, model = support_team([ToolCall.make("my_orders"), "Your order O1001 is on its way."])
    with serve(create_app(settings, team)) as running:
        answer = client(running, key).chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "Where is my order?"}]
        )
    assert answer.choices[0].message.content == "Your order O1001 is on its way."
    assert answer.choices[0].finish_reason == "stop" and answer.model == "shop"
    # routing call + two specialist calls, 10 + 5 tokens each (the scripted model's usage)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (30, 15, 45)
    # the tool ran for the key's user: its result reached the model
    assert "O1001" in model.requests[2].messages[-1].content


def test_streamed_completion_sends_chunks_then_done(settings, key):
    team, _ = support_team([ToolCall.make("my_orders"), "Your order O1001 is on its way."])
    with serve(create_app(settings, team)) as running:
        stream = client(running, key).chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "Where is my order?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1, "the answer streams in pieces, not in one block"
    assert "".join(pieces) == "Your order O1001 is on its way."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 45


def test_the_wire_format_ends_with_done(settings, key):
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:
        body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", running.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]" and '"chat.completion.chunk"' in lines[0]


def test_the_client_sends_the_history(settings, key):
    agent, model = echo_agent()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": "Where is "}, {"type": "text", "text": "my order?"}]},
    ]
    with serve(create_app(settings, agent)) as running:
        answer = client(running, key).chat.completions.create(model="echo", messages=messages)
    sent = model.requests[0].messages
    assert sent[1:] == [
        LSystem(content="Be brief."),
        LUser(content="Hello"),
        LAssistant(content="Hi! How can I help?"),
        LUser(content="Where is my order?"),
    ]
    assert isinstance(sent[0], LSystem) and sent[0].content == agent.instructions  # its own instructions first
    assert answer.choices[0].message.content == "I got 5 messages."


def test_models_lists_what_is_served(settings, key):
    agent, _ = echo_agent()
    team, _ = support_team([])
    with serve(create_app(settings, {"echo": agent, "shop": team})) as running:
        models = client(running, key).models.list()
    assert sorted(m.id for m in models.data) == ["echo", "shop"]


def test_langchain_chat_openai_plain_and_streamed(settings, key):
    agent, model = echo_agent()
    with serve(create_app(settings, agent)) as running:
        llm = ChatOpenAI(model="echo", base_url=running.v1, api_key=key, max_retries=0)
        reply = llm.invoke([SystemMessage("Be brief."), HumanMessage("Hi"), AIMessage("Hello"), HumanMessage("Again")])
        streamed = list(llm.stream([HumanMessage("Hi")]))
    assert reply.content == "I got 5 messages."
    assert reply.usage_metadata["input_tokens"] == 10 and reply.usage_metadata["output_tokens"] == 5
    assert len(streamed) > 1 and "".join(c.content for c in streamed) == "I got 2 messages."
    assert len(model.requests) == 2


# --- errors -----------------------------------------------------------------------------------


def test_unknown_model_is_a_404_model_not_found(settings, key):
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:
        with pytest.raises(openai.NotFoundError) as caught:
            client(running, key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'gpt-4o'" in error["message"] and "echo" in error["message"]


@pytest.mark.parametrize(
    "body, param, words",
    [
        (b'{"model": "echo", "messages": [', None, "not valid JSON"),
        (b'["model"]', None, "JSON object"),
        (b'{"model": "echo"}', "messages", "Field required"),
        (b'{"model": "echo", "messages": []}', "messages", "empty"),
        (b'{"model": "echo", "messages": [{"role": "robot", "content": "x"}]}', "messages.0.role", "'robot'"),
        (b'{"model": "echo", "messages": [{"role": "tool", "content": "x"}]}', "messages.0.role", "not supported"),
        (b'{"model": "echo", "messages": [{"role": "assistant", "content": "x"}]}', "messages.0.role", "user's turn"),
        (b'{"model": "echo", "messages": [{"role": "user", "content": "  "}]}', "messages.0.content", "empty"),
        (b'{"model": "echo", "tools": [{"type": "function"}], "messages": [{"role": "user", "content": "x"}]}',
         "tools", "own tools"),
        (b'{"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
         "messages.0.content.0", "only text"),
    ],
)
def test_bad_requests_are_400s_that_say_what_is_wrong(settings, key, body, param, words):
    agent, model = echo_agent()
    with serve(create_app(settings, agent)) as running:
        r = httpx.post(
            running.v1 + "/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and words in error["message"]
    assert model.requests == []  # nothing reached the model


def test_an_oversize_body_is_a_413(keys_url, key):
    from llmos.server import ServerSettings

    agent, model = echo_agent()
    settings = ServerSettings(keys_url=keys_url, max_body_bytes=2048, rate_limit_per_minute=0)
    big = {"model": "echo", "messages": [{"role": "user", "content": "x" * 5000}]}
    with serve(create_app(settings, agent)) as running:
        with pytest.raises(openai.APIStatusError) as caught:
            client(running, key).chat.completions.create(**big)
        # without a Content-Length (chunked), the limit holds while reading
        r = httpx.post(
            running.v1 + "/chat/completions",
            content=iter([b'{"model": "echo", "messages": [{"role": "user", "content": "', b"x" * 4000, b'"}]}']),
            headers={"Authorization": f"Bearer {key}"},
        )
    assert caught.value.status_code == 413 and "2048 bytes" in caught.value.body["message"]
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert model.requests == []


def test_a_failed_run_is_an_openai_error_plain_and_streamed(settings, key):
    from llmos.agents import Agent
    from tests.scripted import ScriptedModel

    agent = Agent("echo", model=ScriptedModel([]))  # no steps: the model call fails
    with serve(create_app(settings, agent)) as running:
        with pytest.raises(openai.InternalServerError) as plain:
            client(running, key).chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.APIError) as streamed:
            list(client(running, key).chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "hi"}], stream=True
            ))
    assert plain.value.body["type"] == "server_error" and "could not answer" in plain.value.body["message"]
    assert "could not answer" in str(streamed.value)


def test_unknown_routes_answer_in_the_same_shape(settings, key):
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:
        r = httpx.get(running.v1 + "/nothing")
    assert r.status_code == 404 and "/v1/chat/completions" in r.json()["error"]["message"]
