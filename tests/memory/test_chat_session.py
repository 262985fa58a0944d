"""`llmos chat --session` across restarts: two processes against a scripted OpenAI-compatible server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.openai_stub import OpenAIStub, Refusal

ROOT = Path(__file__).resolve().parents[2]

ASSISTANT = """\
name = "Acme help"
tenant = "acme"

[[specialists]]
name = "helper"
kind = "custom"
description = "Answers the customer's questions."
instructions = "You answer in one sentence."
"""


def said(content: str) -> str:
    """The customer's words in a user message (the team's direct reply puts an instruction before them)."""
    return content.rsplit(": ", 1)[-1]


def last_user(body: dict[str, Any]) -> str:
    return said([m["content"] for m in body["messages"] if m["role"] == "user"][-1])


def answer(body: dict[str, Any]) -> str | dict[str, Any]:
    """The team's routing call goes 'direct'; facts to learn: none; otherwise a reply that names the message."""
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    properties = schema.get("properties", {})
    if "route" in properties:
        return {"route": "direct"}
    if "changes" in properties:
        return {"changes": []}
    return f"You said: {last_user(body)}"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    (tmp_path / "acme.toml").write_text(ASSISTANT)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LLMOS_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "LLMOS_HOME": str(tmp_path / "home"),
        "LLMOS_MEMORY_URL": f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}",
        "LLMOS_MODEL": "stub",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }


def llmos(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The `llmos` command in a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", "from llmos.cli import main; main()", *args],
        input=stdin, env=env, cwd=env["LLMOS_HOME"].rsplit("/", 1)[0], capture_output=True, text=True, timeout=300,
    )


def chat(env: dict[str, str], tmp_path: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return llmos(env, "chat", "--assistant", str(tmp_path / "acme.toml"), "--session", "s1", "--user", "U", stdin=stdin)


def replies(stub: OpenAIStub, since: int = 0) -> list[list[tuple[str, str]]]:
    """The (role, content) of each request that asked for a reply (not routing, not facts), after `since`."""
    return [
        [(m["role"], said(m["content"]) if m["role"] == "user" else m["content"])
         for m in body["messages"] if m["role"] in ("user", "assistant")]
        for body in stub.requests[since:]
        if "response_format" not in body
    ]


def test_a_chat_session_resumes_after_a_restart_with_its_history_from_the_store(env, tmp_path):
    with OpenAIStub(answer) as stub:
        env["LLMOS_BASE_URL"] = stub.url
        first = chat(env, tmp_path, "My lamp flickers.\n\n")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Started session s1 (0 turns so far)" in first.stdout
        assert "You said: My lamp flickers." in first.stdout
        seen = len(stub.requests)

        second = chat(env, tmp_path, "What did I say?\n\n")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Resuming session s1 (1 turn so far)" in second.stdout
        assert "no answer" not in second.stdout  # the first turn was answered: nothing to offer
        # Every request of the second process carries the first turn, read from the store.
        routing = [body for body in stub.requests[seen:] if "Route" in str(body.get("response_format"))]
        assert len(routing) == 1
        assert [(m["role"], m["content"]) for m in routing[0]["messages"][1:3]] == [
            ("user", "My lamp flickers."), ("assistant", "You said: My lamp flickers."),
        ]
        assert replies(stub, seen) == [[
            ("user", "My lamp flickers."), ("assistant", "You said: My lamp flickers."), ("user", "What did I say?"),
        ]]

    shown = llmos(env, "sessions", "show", "s1", "--tenant", "acme")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert "2 turns" in out
    order = [out.index(text) for text in (
        "Turn 1", "My lamp flickers.", "You said: My lamp flickers.", "Turn 2", "What did I say?", "You said: What did I say?",
    )]
    assert order == sorted(order)
    assert "(answered)" in out and "(failed)" not in out and "(unanswered)" not in out


def test_a_chat_that_resumes_a_session_whose_last_message_failed_offers_to_answer_it(env, tmp_path):
    down = {"on": True}

    def flaky(body: dict[str, Any]) -> str | dict[str, Any] | Refusal:
        if down["on"] and "response_format" not in body:
            return Refusal(400, "the model is being replaced")  # not retried by the client: the turn fails
        return answer(body)

    with OpenAIStub(flaky) as stub:
        env["LLMOS_BASE_URL"] = stub.url
        first = chat(env, tmp_path, "Is my order late?\n\n")
        assert "That turn failed" in first.stdout, first.stdout + first.stderr

        down["on"] = False
        shown = llmos(env, "sessions", "show", "s1", "--tenant", "acme").stdout
        assert "Turn 1 (failed)" in shown and "`llmos chat --session s1` offers to answer it" in shown

        declined = chat(env, tmp_path, "n\n\n")
        assert "Your last message, turn 1, has no answer" in declined.stdout
        assert "the model is being replaced" in declined.stdout and "Left unanswered" in declined.stdout
        seen = len(stub.requests)

        second = chat(env, tmp_path, "y\nThanks.\n\n")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "You said: Is my order late?" in second.stdout and "You said: Thanks." in second.stdout
        assert replies(stub, seen) == [
            [("user", "Is my order late?")],
            [("user", "Is my order late?"), ("assistant", "You said: Is my order late?"), ("user", "Thanks.")],
        ]

    shown = llmos(env, "sessions", "show", "s1", "--tenant", "acme").stdout
    assert "2 turns" in shown and "(failed)" not in shown and "no answer" not in shown
    assert shown.count("You said: Is my order late?") == 1  # the retried answer, stored once
    assert shown.index("Is my order late?") < shown.index("Turn 2") < shown.index("You said: Thanks.")
