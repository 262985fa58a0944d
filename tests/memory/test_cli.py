"""`llmos sessions list|show|delete` and `llmos memory list|forget` on a session database."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from llmos.cli import app
from llmos.config import get_settings
from llmos.knowledge.embeddings import SentenceTransformerEmbedder
from llmos.llm.messages import AssistantMessage
from llmos.memory import SQLSessionStore, TurnRecord, UserMemory

runner = CliRunner()


@pytest.fixture
def database(tmp_path, monkeypatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"
    monkeypatch.setenv("LLMOS_MEMORY_URL", url)
    monkeypatch.setenv("COLUMNS", "200")  # whole table rows
    get_settings.cache_clear()

    async def fill() -> None:
        store = SQLSessionStore(url)
        await store.create_session("support-42", tenant="acme", user="C001", title="Broken lid")
        turn = await store.begin_turn("support-42", "My lid cracked.", tenant="acme")
        await turn.finish([AssistantMessage(content="A new lid is on its way.")], TurnRecord(outcome="orders", model_calls=2))
        await store.create_session("other", tenant="acme", user="C002")
        facts = UserMemory(store, embedder=SentenceTransformerEmbedder())
        await facts.add("C001", "The user owns a green teapot.", tenant="acme", kind="possession")
        await facts.add("C001", "The user prefers email.", tenant="acme", kind="preference")
        await store.close()

    asyncio.run(fill())
    yield url
    get_settings.cache_clear()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_sessions_are_listed_shown_and_deleted(database):
    listed = invoke("sessions", "list", "--tenant", "acme")
    assert listed.exit_code == 0 and "support-42" in listed.output and "other" in listed.output
    assert "other" not in invoke("sessions", "list", "--tenant", "acme", "--user", "C001").output

    shown = invoke("sessions", "show", "support-42", "--tenant", "acme")
    assert shown.exit_code == 0
    for text in ("My lid cracked.", "A new lid is on its way.", "outcome orders", "2 model calls"):
        assert text in shown.output

    assert invoke("sessions", "delete", "support-42", "--tenant", "acme").exit_code == 0
    missing = invoke("sessions", "show", "support-42", "--tenant", "acme")
    assert missing.exit_code == 1 and "UnknownSessionError" in missing.output and "no session 'support-42'" in missing.output


def test_memories_are_listed_and_forgotten(database):
    listed = invoke("memory", "list", "--user", "C001", "--tenant", "acme")
    assert "green teapot" in listed.output and "prefers email" in listed.output
    assert "teapot" not in invoke("memory", "list", "--user", "C001").output  # another tenant

    fact_id = next(line.split("│")[1].strip() for line in listed.output.splitlines() if "teapot" in line)
    assert invoke("memory", "forget", "--user", "C001", "--tenant", "acme", "--fact", fact_id).exit_code == 0
    remaining = invoke("memory", "list", "--user", "C001", "--tenant", "acme").output
    assert "teapot" not in remaining and "prefers email" in remaining
    wrong = invoke("memory", "forget", "--user", "C001", "--tenant", "acme", "--fact", fact_id)
    assert wrong.exit_code == 1 and "UnknownFactError" in wrong.output

    gone = invoke("memory", "forget", "--user", "C001", "--tenant", "acme", "--everything")
    assert gone.exit_code == 0 and "1 sessions and 1 facts" in gone.output
    assert "Nothing is remembered" in invoke("memory", "list", "--user", "C001", "--tenant", "acme").output
    assert "other" in invoke("sessions", "list", "--tenant", "acme").output
