"""Conformance suite of the session store: every test runs on SQLite and on PostgreSQL (see conftest)."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from llmos.errors import (
    SessionBusyError,
    SessionExistsError,
    TurnStateError,
    UnknownSessionError,
    UnknownTenantError,
    UnknownUserError,
)
from llmos.llm.messages import AssistantMessage, ToolCall, ToolMessage, UserMessage
from llmos.llm.model import Usage
from llmos.memory import Entry, SQLSessionStore, TurnRecord


def answer(text: str = "It is on its way.") -> list:
    call = ToolCall.make("order_status", {"order_id": 7})
    return [
        AssistantMessage(tool_calls=[call]),
        ToolMessage(tool_call_id=call.id, name="order_status", content="shipped"),
        Entry(message=AssistantMessage(content=text), citations=[{"number": 1, "citation": "orders.csv"}], tokens=6),
    ]


# --- sessions -----------------------------------------------------------------------------


async def test_sessions_are_created_listed_updated_and_deleted(store):
    a = await store.create_session("a", tenant="acme", user="u1", title="Order", metadata={"channel": "web"})
    assert (a.id, a.tenant, a.user, a.title, a.mode, a.metadata) == ("a", "acme", "u1", "Order", "assistant", {"channel": "web"})
    await store.create_session("b", tenant="acme", user="u2")
    await store.create_session("a", tenant="other")  # ids are unique per tenant, not globally
    with pytest.raises(SessionExistsError, match="already has a session 'a'"):
        await store.create_session("a", tenant="acme")

    changed = await store.update_session("a", tenant="acme", title="Refund", mode="human", metadata={"x": 1})
    assert (changed.title, changed.mode, changed.metadata) == ("Refund", "human", {"x": 1})
    assert changed.updated_at >= a.updated_at

    assert [s.id for s in await store.list_sessions(tenant="acme")] == ["a", "b"]  # latest update first
    assert [s.id for s in await store.list_sessions(tenant="acme", user="u2")] == ["b"]
    assert (await store.get_session("a", tenant="other")).user is None

    await store.delete_session("a", tenant="acme")
    with pytest.raises(UnknownSessionError):
        await store.get_session("a", tenant="acme")
    assert (await store.get_session("a", tenant="other")).tenant == "other"


async def test_open_session_creates_once_and_then_returns_it(store):
    first = await store.open_session("chat-1", user="u1")
    turn = await store.begin_turn("chat-1", "hi")
    await turn.finish([AssistantMessage(content="hello")])
    again = await store.open_session("chat-1", user="u1")
    assert again.created_at == first.created_at and again.turns == 1


async def test_unknown_session_user_and_tenant_get_clear_errors(store):
    await store.create_session("s", tenant="acme", user="u1")
    with pytest.raises(UnknownSessionError, match="no session 'nope' in tenant 'acme'"):
        await store.get_session("nope", tenant="acme")
    with pytest.raises(UnknownSessionError, match="no session 'nope'"):
        await store.begin_turn("nope", "hi", tenant="acme")
    with pytest.raises(UnknownSessionError, match="no session 's' in tenant 'default'"):
        await store.messages("s")  # the session exists, but in another tenant
    with pytest.raises(UnknownTenantError, match="no tenant 'ghost'"):
        await store.list_sessions(tenant="ghost")
    with pytest.raises(UnknownUserError, match="no user 'u9' in tenant 'acme'"):
        await store.list_sessions(tenant="acme", user="u9")
    with pytest.raises(UnknownUserError):
        await store.delete_user("u9", tenant="acme")
    with pytest.raises(UnknownSessionError, match="no turn 12345"):
        await store.get_turn(12345)


async def test_deleting_a_user_removes_their_sessions_only(store):
    await store.create_session("s1", tenant="acme", user="u1")
    await store.create_session("s2", tenant="acme", user="u1")
    await store.create_session("s3", tenant="acme", user="u2")
    await store.create_session("s4", tenant="beta", user="u1")  # same user id, other tenant
    turn = await store.begin_turn("s1", "hi", tenant="acme")
    await turn.finish(answer())
    assert await store.delete_user("u1", tenant="acme") == 2
    assert [s.id for s in await store.list_sessions(tenant="acme")] == ["s3"]
    assert [s.id for s in await store.list_sessions(tenant="beta", user="u1")] == ["s4"]
    with pytest.raises(UnknownUserError):
        await store.list_sessions(tenant="acme", user="u1")


# --- turns ----------------------------------------------------------------------------------


async def test_a_turn_round_trips_messages_citations_tokens_and_its_record(store):
    await store.create_session("s", tenant="acme")
    turn = await store.begin_turn("s", Entry(message=UserMessage(content="Where is order 7?"), tokens=7), tenant="acme")
    assert turn.number == 1 and turn.user_message.seq == 1 and turn.turn.status == "unanswered"
    call = ToolCall.make("order_status", {"order_id": 7})
    record = TurnRecord(
        outcome="orders",
        plan={"subtasks": [{"id": "s1", "specialist": "orders", "instruction": "Find order 7"}]},
        subtasks=[{"id": "s1", "status": "ok", "text": "shipped"}],
        tool_calls=[call],
        usage=Usage(prompt_tokens=120, completion_tokens=30),
        model_calls=2,
        latency_s=1.25,
    )
    done = await store.finish_turn(turn, answer(), record)

    assert done.status == "answered" and done.finished_at is not None
    assert done.record == record
    assert [m.seq for m in done.messages] == [2, 3, 4]
    assert done.user_message.tokens == 7
    assert done.messages[2].citations == [{"number": 1, "citation": "orders.csv"}] and done.messages[2].tokens == 6
    assert done.messages[0].message.tool_calls[0].arguments == '{"order_id": 7}'
    assert await store.get_turn(turn.id) == done
    history = await store.history("s", tenant="acme")
    assert history[0] == UserMessage(content="Where is order 7?")
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[2].content == "shipped" and history[3].content == "It is on its way."


async def test_a_failed_turn_keeps_its_message_unanswered_and_can_be_retried(store):
    await store.create_session("s")
    first = await store.begin_turn("s", "one")
    await first.finish([AssistantMessage(content="1")])
    with pytest.raises(RuntimeError):
        async with store.turn("s", "two") as turn:
            raise RuntimeError("model crashed")
    failed = await store.get_turn(turn.id)
    assert failed.status == "failed" and "model crashed" in failed.error and failed.record is None
    # The message is kept (acknowledged) but not sent to a model as history until answered.
    assert [m.message.content for m in await store.messages("s")] == ["one", "1", "two"]
    assert [m.content for m in await store.history("s")] == ["one", "1"]

    later = await store.begin_turn("s", "three")  # the session goes on meanwhile
    await later.finish([AssistantMessage(content="3")])
    retry = await store.resume_turn(turn.id)
    assert retry.number == 2 and retry.user_message.message.content == "two"
    await retry.finish([AssistantMessage(content="2")])
    # Messages come turn by turn, so the late answer sits after its question.
    assert [m.message.content for m in await store.messages("s")] == ["one", "1", "two", "2", "three", "3"]
    with pytest.raises(TurnStateError, match="already answered"):
        await store.resume_turn(turn.id)
    with pytest.raises(TurnStateError, match="already finished"):
        await retry.finish([AssistantMessage(content="again")])
    assert [t.status for t in await store.turns("s")] == ["answered", "answered", "answered"]


async def test_history_before_a_running_turn_leaves_it_out(store):
    await store.create_session("s")
    await (await store.begin_turn("s", "one")).finish([AssistantMessage(content="1")])
    running = await store.begin_turn("s", "two")
    assert [m.content for m in await store.history("s", before=running)] == ["one", "1"]
    await running.fail("stopped")


async def test_a_second_message_is_refused_or_waits_while_a_turn_runs(db_url):
    # Two stores: two connection pools, as two processes would have.
    first = SQLSessionStore(db_url)
    refusing = SQLSessionStore(db_url, on_busy="refuse")
    waiting = SQLSessionStore(db_url, on_busy="wait", lock_timeout_s=1.0)
    try:
        await first.create_session("s")
        running = await first.begin_turn("s", "one")

        started = time.monotonic()
        with pytest.raises(SessionBusyError, match="Session 's' of tenant 'default' is answering another message"):
            await refusing.begin_turn("s", "two")
        assert time.monotonic() - started < 1.0  # refused at once, without waiting
        started = time.monotonic()
        with pytest.raises(SessionBusyError, match="after waiting 1 s"):
            await waiting.begin_turn("s", "two")
        assert time.monotonic() - started >= 1.0

        waiting.locks.timeout_s = 10
        second = asyncio.create_task(waiting.begin_turn("s", "two"))
        await asyncio.sleep(0.2)
        assert not second.done()  # it waits for the first turn
        await running.finish([AssistantMessage(content="1")])
        turn = await asyncio.wait_for(second, 10)
        assert turn.number == 2
        await turn.finish([AssistantMessage(content="2")])
        assert [m.message.content for m in await first.messages("s")] == ["one", "1", "two", "2"]
    finally:
        for s in (first, refusing, waiting):
            await s.close()


async def test_messages_written_by_a_person_join_the_latest_turn_with_their_author(store):
    await store.create_session("s", tenant="acme", user="C001")
    with pytest.raises(TurnStateError, match="has no turn yet"):
        await store.add_messages("s", [AssistantMessage(content="hello?")], tenant="acme")
    turn = await store.begin_turn("s", "I want a person.", tenant="acme")
    await turn.finish([AssistantMessage(content="A colleague will answer.")])
    running = await store.begin_turn("s", "Hello?", tenant="acme")
    refusing = SQLSessionStore(store.url.render_as_string(hide_password=False), on_busy="refuse")
    try:
        with pytest.raises(SessionBusyError):  # not while a run holds the session
            await refusing.add_messages("s", [AssistantMessage(content="too early")], tenant="acme")
    finally:
        await refusing.close()
    await running.finish([])
    (stored,) = await store.add_messages(
        "s", [Entry(message=AssistantMessage(content="Hi, I'm Ana."), author="operator:ana")], tenant="acme"
    )
    assert (stored.seq, stored.turn, stored.author) == (4, 2, "operator:ana")
    again = await store.messages("s", tenant="acme")
    assert [(m.message.content, m.author) for m in again] == [
        ("I want a person.", None), ("A colleague will answer.", None), ("Hello?", None), ("Hi, I'm Ana.", "operator:ana"),
    ]
    assert [m.content for m in await store.history("s", tenant="acme")][-2:] == ["Hello?", "Hi, I'm Ana."]
    with pytest.raises(UnknownSessionError):
        await store.add_messages("s", [AssistantMessage(content="x")], tenant="other")


async def test_a_turn_that_lost_its_lock_cannot_commit_its_answer(store):
    await store.create_session("s")
    turn = await store.begin_turn("s", "one")
    async with store.engine.begin() as connection:
        if store.postgres:  # the connection that holds the advisory lock dies
            await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": turn.lock.backend_pid})
            # The backend gets a signal and exits a moment later: wait until it is gone, as a real loss would be
            # (pg_stat_clear_snapshot: within one transaction the view would otherwise never change).
            alive = sa.text("SELECT pg_stat_clear_snapshot(), count(*) FROM pg_stat_activity WHERE pid = :pid")
            for _ in range(400):
                if not (await connection.execute(alive, {"pid": turn.lock.backend_pid})).one()[1]:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the terminated PostgreSQL backend did not exit")
        else:  # the lease expired and another process took the session over
            await connection.execute(sa.text("UPDATE session_locks SET owner = 'someone-else'"))
    with pytest.raises(TurnStateError, match="stays unanswered"):
        await turn.finish([AssistantMessage(content="1")])
    stored = await store.get_turn(turn.id)
    assert stored.status == "unanswered" and stored.messages == []


async def test_fifty_turns_at_once_across_ten_sessions_never_interleave(db_url):
    stores = [SQLSessionStore(db_url, lock_timeout_s=60) for _ in range(2)]
    active: dict[str, int] = {}
    overlaps = []
    try:
        for i in range(10):
            await stores[0].create_session(f"s{i}")

        async def one_turn(n: int) -> None:
            session = f"s{n % 10}"
            turn = await stores[n % 2].begin_turn(session, f"question {n}")
            active[session] = active.get(session, 0) + 1
            if active[session] > 1:
                overlaps.append(session)
            await asyncio.sleep(0.001 * (n % 7))
            active[session] -= 1
            await turn.finish([AssistantMessage(content=f"thinking {n}"), AssistantMessage(content=f"answer {n}")])

        await asyncio.gather(*(one_turn(n) for n in range(50)))
        assert overlaps == []
        for i in range(10):
            turns = await stores[1].turns(f"s{i}")
            assert [t.number for t in turns] == [1, 2, 3, 4, 5]
            assert all(t.status == "answered" for t in turns)
            seqs = [m.seq for t in turns for m in [t.user_message, *t.messages]]
            assert seqs == list(range(1, 16))  # each turn's three messages are contiguous, turn after turn
            for t in turns:
                n = t.user_message.message.content.split()[-1]
                assert [m.message.content for m in t.messages] == [f"thinking {n}", f"answer {n}"]
    finally:
        for s in stores:
            await s.close()
