"""Runs with a session: agents and teams load history from the store and store their turns (scripted model)."""

from __future__ import annotations

import json

import pytest

from llmos.agents import Agent, ErrorEvent, FinalEvent, Team
from llmos.errors import ConfigError, SessionOwnerError, TurnAnsweredError, UnknownSessionError, UnknownTurnError
from llmos.llm import ChatRequest, ToolCall
from llmos.memory import ContextPolicy, Memory, SQLSessionStore, Summary
from llmos.memory import prompts
from llmos.tools import RunContext, tool
from tests.scripted import ScriptedModel

ACME_C1 = RunContext(user="C001", tenant="acme")


@tool
def order_status(order_id: int) -> str:
    """The delivery status of an order."""
    return f"order {order_id}: shipped"


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"


def memory(url: str, **kwargs) -> Memory:
    return Memory(SQLSessionStore(url), remember=False, **kwargs)


async def test_an_agent_turn_is_stored_with_its_record_and_resumed_after_a_restart(url):
    call = ToolCall.make("order_status", {"order_id": 7})
    model = ScriptedModel([call, "Order 7 is shipped.", "You asked about order 7."])
    first = memory(url)
    agent = Agent("support", tools=[order_status], model=model, memory=first)
    result = await agent.run("Where is order 7?", session="s1", context=ACME_C1)
    assert result.text == "Order 7 is shipped."
    await first.close()

    # A new process: another store on the same file.
    again = memory(url)
    agent.memory = again
    await agent.run("What did I ask?", session="s1", context=ACME_C1)
    second_request = model.requests[2].messages
    assert [m.role for m in second_request] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert second_request[1].content == "Where is order 7?" and second_request[-1].content == "What did I ask?"

    info = await again.store.get_session("s1", tenant="acme")
    assert (info.user, info.turns) == ("C001", 2)
    turn = (await again.store.turns("s1", tenant="acme"))[0]
    assert turn.status == "answered"
    assert [c.name for c in turn.record.tool_calls] == ["order_status"]
    assert turn.record.model_calls == 2 and turn.record.usage.total_tokens == 30
    assert turn.record.outcome == "answer" and turn.record.latency_s > 0
    assert [m.message.role for m in turn.messages] == ["assistant", "tool", "assistant"]
    assert all(m.tokens for m in turn.messages)
    await again.close()


async def test_a_failed_run_marks_the_turn_failed_and_keeps_the_message(url):
    def boom(request: ChatRequest):
        raise RuntimeError("model server lost")

    mem = memory(url)
    agent = Agent("support", model=ScriptedModel([boom]), memory=mem)
    with pytest.raises(RuntimeError, match="model server lost"):
        await agent.run("Hello?", session="s1", context=ACME_C1)
    events = [e async for e in Agent("support", model=ScriptedModel([boom]), memory=mem).stream(
        "Anyone?", session="s1", context=ACME_C1
    )]
    assert isinstance(events[-1], ErrorEvent)
    turns = await mem.store.turns("s1", tenant="acme")
    assert [(t.status, t.user_message.message.content) for t in turns] == [("failed", "Hello?"), ("failed", "Anyone?")]
    assert "model server lost" in turns[0].error and "model server lost" in turns[1].error
    await mem.close()


async def test_a_failed_turn_is_retried_with_the_history_before_it_and_answered_once(url):
    def boom(request: ChatRequest):
        raise RuntimeError("model server lost")

    model = ScriptedModel(["Hello, Maya.", boom, "Order 7 is shipped."])
    first = memory(url)
    agent = Agent("support", model=model, memory=first)
    await agent.run("Hi, I am Maya.", session="s1", context=ACME_C1)
    with pytest.raises(RuntimeError, match="model server lost"):
        await agent.run("Where is order 7?", session="s1", context=ACME_C1)
    await first.close()

    # After a restart: another store on the same file answers the failed turn.
    again = memory(url)
    agent.memory = again
    result = await agent.retry("s1", context=ACME_C1)
    assert result.text == "Order 7 is shipped."
    retried = model.requests[2].messages
    assert [(m.role, m.content) for m in retried[1:]] == [
        ("user", "Hi, I am Maya."), ("assistant", "Hello, Maya."), ("user", "Where is order 7?"),
    ]
    turns = await again.store.turns("s1", tenant="acme")
    assert [(t.number, t.status, t.error) for t in turns] == [(1, "answered", None), (2, "answered", None)]
    assert [m.message.content for m in turns[1].messages] == ["Order 7 is shipped."]
    assert [m.message.content for m in await again.store.messages("s1", tenant="acme")] == [
        "Hi, I am Maya.", "Hello, Maya.", "Where is order 7?", "Order 7 is shipped.",
    ]
    assert (await again.store.get_session("s1", tenant="acme")).turns == 2  # no new turn
    # Answered now: retrying it again is refused, and nothing runs.
    with pytest.raises(TurnAnsweredError, match="Turn 2 of session 's1' is already answered"):
        await agent.retry("s1", turn=2, context=ACME_C1)
    assert len(model.requests) == 3
    await again.close()


async def test_retry_refuses_unknown_turns_and_other_users_and_tenants(url):
    def boom(request: ChatRequest):
        raise RuntimeError("down")

    mem = memory(url)
    agent = Agent("support", model=ScriptedModel([boom, "Hello."]), memory=mem)
    with pytest.raises(RuntimeError):
        await agent.run("Hi", session="s1", context=ACME_C1)
    with pytest.raises(UnknownTurnError, match="has no turn 5: it has turns 1 to 1"):
        await agent.retry("s1", turn=5, context=ACME_C1)
    with pytest.raises(SessionOwnerError, match="belongs to user 'C001', not to user 'C002'"):
        await agent.retry("s1", context=RunContext(user="C002", tenant="acme"))
    with pytest.raises(UnknownSessionError):
        await agent.retry("s1", context=RunContext(user="C001", tenant="beta"))
    assert len(agent.model.requests) == 1
    (turn,) = await mem.store.turns("s1", tenant="acme")
    assert turn.status == "failed"  # untouched by the refused retries
    assert (await agent.retry("s1", turn=1, context=ACME_C1)).text == "Hello."
    await mem.close()


async def test_a_team_retries_through_a_stream_of_events(url):
    mem = memory(url)
    planner = ScriptedModel([json.dumps({"route": "direct"}), "Hello from the team."])
    team = Team([Agent("writer", description="Texts.", model=ScriptedModel([]))], model=planner, memory=mem)
    turn = await mem.store.begin_turn(
        (await mem.store.open_session("t1", tenant="acme", user="C001")).id, "Hi", tenant="acme"
    )
    await turn.lock.release()  # the process that began it crashed: the turn stays unanswered
    begun = await mem.begin_retry(team, session="t1", context=ACME_C1)
    events = [e async for e in begun.events()]
    assert isinstance(events[-1], FinalEvent) and events[-1].result.text == "Hello from the team."
    (stored,) = await mem.store.turns("t1", tenant="acme")
    assert stored.status == "answered" and [m.message.content for m in stored.messages] == ["Hello from the team."]
    await mem.close()


async def test_a_stream_stores_the_answer_before_its_final_event(url):
    mem = memory(url)
    agent = Agent("support", model=ScriptedModel(["Hi there."]), memory=mem)
    async for event in agent.stream("Hi", session="s1", context=ACME_C1):
        if isinstance(event, FinalEvent):
            (turn,) = await mem.store.turns("s1", tenant="acme")
            assert turn.status == "answered" and turn.messages[-1].message.content == "Hi there."
    await mem.close()


async def test_user_and_tenant_come_from_the_context_and_a_session_stays_with_its_user(url):
    mem = memory(url)
    agent = Agent("support", model=ScriptedModel(["Hello.", "unused"]), memory=mem)
    await agent.run("Hi", session="s1", context=ACME_C1)
    with pytest.raises(SessionOwnerError, match="belongs to user 'C001', not to user 'C002'"):
        await agent.run("Show me their orders", session="s1", context=RunContext(user="C002", tenant="acme"))
    # The same name in another tenant is another session.
    assert (await mem.store.open_session("s1", tenant="beta")).turns == 0
    assert len(agent.model.requests) == 1
    await mem.close()


async def test_without_a_session_nothing_is_stored_and_a_session_needs_a_memory(url):
    agent = Agent("support", model=ScriptedModel(["Hello."]))
    assert (await agent.run("Hi")).text == "Hello."
    with pytest.raises(ConfigError, match="has no memory"):
        await agent.run("Hi", session="s1")
    mem = memory(url)
    agent.memory = mem
    with pytest.raises(ConfigError, match="both history= and session="):
        await agent.run("Hi", session="s1", history=agent.model.requests[0].messages[1:])
    await mem.close()


async def test_a_team_turn_records_its_plan_and_subtasks(url):
    plan = {"subtasks": [
        {"id": "a", "specialist": "orders", "instruction": "Do a.", "depends_on": [], "returns": ""},
        {"id": "b", "specialist": "writer", "instruction": "Do b.", "depends_on": [], "returns": ""},
    ]}
    planner = ScriptedModel([json.dumps({"route": "plan"}), json.dumps(plan), "Both done.", "Noted."])
    orders = Agent("orders", description="Orders.", tools=[order_status],
                   model=ScriptedModel([ToolCall.make("order_status", {"order_id": 3}), "Order 3 shipped."]))
    writer = Agent("writer", description="Texts.", model=ScriptedModel(["A lamp for readers."]))
    mem = memory(url)
    team = Team([orders, writer], model=planner, memory=mem)
    result = await team.run("Where is order 3, and a tagline?", session="t1", context=ACME_C1)
    assert result.text.startswith("Both done.")
    (turn,) = await mem.store.turns("t1", tenant="acme")
    assert turn.record.outcome == "plan"
    assert [s["id"] for s in turn.record.plan["subtasks"]] == ["a", "b"]
    assert [s["status"] for s in turn.record.subtasks] == ["ok", "ok"]
    assert [c.name for c in turn.record.tool_calls] == ["order_status"]
    assert [m.message.content for m in turn.messages] == [result.text]
    await mem.close()


# --- context that fits ----------------------------------------------------------------------


def answer_for(request: ChatRequest) -> str:
    """A deterministic model: summaries for the summarizer, a fixed-length answer otherwise."""
    if request.messages[0].content.startswith(prompts.SUMMARY_SYSTEM[:40]):
        ask = request.messages[1].content
        folded = ask.count("User: ")
        return f"[{folded} more turns folded] " + "summary words " * 20
    return "An answer of some length. " * 8


async def test_long_history_is_folded_in_chunks_into_an_incremental_summary(url):
    policy = ContextPolicy(max_history_tokens=1200, keep_share=0.5, summary_tokens=150)
    model = ScriptedModel([answer_for] * 200)
    mem = memory(url, policy=policy)
    agent = Agent("support", model=model, memory=mem)
    for i in range(40):
        await agent.run(f"Question number {i}: " + "some detail " * 10, session="long", context=ACME_C1)

    summaries = [r for r in model.requests if r.messages[0].content.startswith(prompts.SUMMARY_SYSTEM[:40])]
    turns = [r for r in model.requests if r not in summaries]
    assert len(turns) == 40 and 2 <= len(summaries) <= 10  # folded in chunks, not turn by turn

    # Every request's history fits the budget.
    for r in turns:
        history = r.messages[1:-1]
        assert sum(len(m.content or "") for m in history) / 4 <= policy.max_history_tokens

    # Between folds, a turn's request starts with the previous request's history, byte for byte.
    def prefix(r):
        return [m.model_dump_json() for m in r.messages[:-1]]

    stable = sum(prefix(b)[: len(prefix(a))] == prefix(a) for a, b in zip(turns, turns[1:]))
    assert stable == len(turns) - 1 - len(summaries)

    # Incremental: each summary request carries the previous summary and only the turns being folded.
    for earlier, later in zip(summaries, summaries[1:]):
        assert "Question number 0:" not in later.messages[1].content
        assert "[" in later.messages[1].content.split("Turns that follow it:")[0]
    assert prompts.NO_SUMMARY_YET in summaries[0].messages[1].content
    stored = await mem.store.summary("long", tenant="acme")
    assert stored.text.startswith("[") and stored.through_turn < 40
    assert turns[-1].messages[1].content == prompts.SUMMARY_HEADER + stored.text
    await mem.close()


async def test_the_summary_is_stored_per_session_on_both_databases(store):
    await store.create_session("s", tenant="acme")
    assert await store.summary("s", tenant="acme") is None
    turn = await store.begin_turn("s", "hi", tenant="acme")
    await store.save_summary(turn, Summary(text="They asked about order 7.", through_turn=1, tokens=7))
    await store.save_summary(turn, Summary(text="Order 7, then a refund.", through_turn=1, tokens=6))
    await turn.fail("test")
    summary = await store.summary("s", tenant="acme")
    assert (summary.text, summary.through_turn, summary.tokens) == ("Order 7, then a refund.", 1, 6)
    await store.delete_session("s", tenant="acme")
    await store.create_session("s", tenant="acme")
    assert await store.summary("s", tenant="acme") is None
