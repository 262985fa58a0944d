"""A team with a scripted planner and specialists: routing, planning, re-planning, budgets, events, citations."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from llmos.agents import (
    Agent,
    Budget,
    ErrorEvent,
    FinalEvent,
    PlanEvent,
    SubtaskFinishedEvent,
    SubtaskStartedEvent,
    Team,
    TeamResult,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from llmos.errors import AgentError, BudgetExceededError, OutputValidationError, PlanError
from llmos.llm import AssistantMessage, ChatRequest, ToolCall, UserMessage
from llmos.tools import tool
from tests.scripted import ScriptedModel
from tests.unit.test_runtime import Broken


def route(name: str) -> str:
    return json.dumps({"route": name})


def plan(*subtasks: tuple[str, str, list[str]]) -> str:
    return json.dumps(
        {
            "subtasks": [
                {"id": i, "specialist": s, "instruction": f"Do {i}.", "depends_on": d, "returns": ""}
                for i, s, d in subtasks
            ]
        }
    )


def specialist(name: str, script: list, *, delay: float = 0.0, tools=()) -> Agent:
    return Agent(name, description=f"The {name} specialist.", model=ScriptedModel(script, delay=delay), tools=tools)


@tool
def search_policies(query: str) -> str:
    """Search the company's policies."""
    return "[1] policies/returns.md, Damaged items\nSend a photo within 14 days.\n\nCite the passages you use by their numbers, e.g. [1]."


@tool
def search_catalog(query: str) -> str:
    """Search the catalog."""
    return "[1] catalog/lamps.md, Aurora lamp\nA warm desk lamp.\n\n[2] catalog/vases.md\nA vase."


async def collect(team: Team, goal: str, **kwargs) -> list:
    return [event async for event in team.stream(goal, **kwargs)]


async def test_one_intent_takes_the_short_road_without_a_planning_call():
    planner = ScriptedModel([route("support")])
    support = specialist("support", ["Your order ships tomorrow."])
    team = Team([support, specialist("recommendation", [])], model=planner)
    history = [UserMessage(content="I am Ada."), AssistantMessage(content="Hello Ada.")]
    events = await collect(team, "Where is my order?", history=history)

    assert len(planner.requests) == 1  # the routing call, nothing else
    assert planner.requests[0].output_schema.json_schema["properties"]["route"]["enum"] == [
        "support",
        "recommendation",
        "plan",
        "direct",
    ]
    result = events[-1].result
    assert isinstance(result, TeamResult) and result.route == "support" and result.model_calls == 2
    assert result.text == "Your order ships tomorrow." and result.plan.subtasks[0].instruction == "Where is my order?"
    # The specialist gets the conversation too: its task is the user's own message.
    assert [m.role for m in support.model.requests[0].messages] == ["system", "user", "assistant", "user"]
    assert isinstance(events[0], PlanEvent) and events[0].route == "support"


async def test_small_talk_is_answered_by_the_planner_directly():
    planner = ScriptedModel([route("direct"), "Hello! How can I help?"])
    support = specialist("support", [])
    events = await collect(Team([support], model=planner), "hi there")
    assert len(planner.requests) == 2 and support.model.requests == []
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "Hello! How can I help?"
    assert all(e.agent == "planner" for e in events if isinstance(e, TextDeltaEvent))
    assert events[-1].result.text == "Hello! How can I help?" and events[-1].result.route == "direct"
    assert not any(isinstance(e, PlanEvent) for e in events)


async def test_several_intents_are_planned_run_in_parallel_and_synthesized():
    planner = ScriptedModel([route("plan"), plan(("s1", "a", []), ("s2", "b", [])), "Both are done."])
    team = Team([specialist("a", ["A done."], delay=0.3), specialist("b", ["B done."], delay=0.3)], model=planner)
    started = time.perf_counter()
    result = await team.run("Do A and B.")
    assert time.perf_counter() - started < 0.5
    assert result.text == "Both are done." and result.model_calls == 5 and result.route == "plan"
    synthesis = planner.requests[2].messages[-1].content
    assert "[s1] a: Do s1.\nA done." in synthesis and "[s2] b: Do s2.\nB done." in synthesis


async def test_the_stream_has_the_plan_each_subtask_tagged_tool_events_and_the_final():
    planner = ScriptedModel([route("plan"), plan(("s1", "support", []), ("s2", "recommendation", [])), "Done [1] [2]."])
    support = specialist("support", [ToolCall.make("search_policies", {"query": "damaged"}), "Photo [1]."], tools=[search_policies])
    recommend = specialist("recommendation", [ToolCall.make("search_catalog", {"query": "lamp"}), "Aurora [1]."], tools=[search_catalog])
    events = await collect(Team([support, recommend], model=planner), "Broken order; and a lamp?")

    assert isinstance(events[0], PlanEvent) and [s.id for s in events[0].plan.subtasks] == ["s1", "s2"]
    assert isinstance(events[-1], FinalEvent) and events[-1].subtask is None
    assert sum(isinstance(e, FinalEvent) for e in events) == 1 and not any(isinstance(e, ErrorEvent) for e in events)
    for sid, name, tool_name in (("s1", "support", "search_policies"), ("s2", "recommendation", "search_catalog")):
        mine = [e for e in events if e.subtask == sid]
        assert isinstance(mine[0], SubtaskStartedEvent) and isinstance(mine[-1], SubtaskFinishedEvent) and mine[-1].ok
        assert [e.call.name for e in mine if isinstance(e, ToolCallEvent)] == [tool_name]
        assert [e.name for e in mine if isinstance(e, ToolResultEvent)] == [tool_name]
        assert all(e.agent == name for e in mine)
    # The synthesis streamed after every subtask finished.
    last_finish = max(i for i, e in enumerate(events) if isinstance(e, SubtaskFinishedEvent))
    planner_text = [i for i, e in enumerate(events) if isinstance(e, TextDeltaEvent) and e.subtask is None]
    assert planner_text and min(planner_text) > last_finish
    # The whole stream serialises, the team result's fields included.
    final = json.loads(events[-1].model_dump_json())
    assert final["result"]["route"] == "plan" and len(final["result"]["subtasks"]) == 2


async def test_sources_of_subtasks_are_renumbered_and_collected_into_the_result():
    def synthesize(request: ChatRequest) -> str:
        text = request.messages[-1].content
        # Both specialists cited their own [1]: the planner sees them as [1] and [2].
        assert "Photo within 14 days [1]." in text and "Aurora is warm [2]." in text
        return "Send a photo [1]; try the Aurora lamp [2] [9]."

    planner = ScriptedModel([route("plan"), plan(("s1", "support", []), ("s2", "recommendation", [])), synthesize])
    support = specialist(
        "support", [ToolCall.make("search_policies", {"query": "damaged"}), "Photo within 14 days [1]."], tools=[search_policies]
    )
    recommend = specialist(
        "recommendation", [ToolCall.make("search_catalog", {"query": "lamp"}), "Aurora is warm [1]."], tools=[search_catalog]
    )
    result = await Team([support, recommend], model=planner).run("Broken order; and a lamp?")

    assert [(s.number, s.citation, s.subtasks) for s in result.sources] == [
        (1, "policies/returns.md, Damaged items", ["s1"]),
        (2, "catalog/lamps.md, Aurora lamp", ["s2"]),
    ]
    assert result.text == (
        "Send a photo [1]; try the Aurora lamp [2].\n\n"  # the invented [9] is dropped
        "Sources:\n[1] policies/returns.md, Damaged items\n[2] catalog/lamps.md, Aurora lamp"
    )


async def test_the_short_road_answer_keeps_its_sources_without_a_synthesis_call():
    planner = ScriptedModel([route("support")])
    support = specialist(
        "support",
        [ToolCall.make("search_policies", {"query": "damaged"}), "Send a photo [1].\n\nSources:\n[1] returns.md"],
        tools=[search_policies],
    )
    result = await Team([support], model=planner).run("My lamp arrived broken.")
    # The list the model wrote is replaced by the one built from the tool results.
    assert result.text == "Send a photo [1].\n\nSources:\n[1] policies/returns.md, Damaged items"
    assert len(planner.requests) == 1


async def test_a_failed_subtask_skips_dependents_and_the_answer_says_what_was_not_done():
    planner = ScriptedModel([route("plan"), plan(("s1", "bad", []), ("s2", "good", ["s1"]), ("s3", "good", [])), "Partly done."])
    good = specialist("good", ["s3 done"])
    team = Team([Agent("bad", model=Broken(OutputValidationError("bad JSON"))), good], model=planner, max_replans=0)
    result = await team.run("goal")

    assert [(r.id, r.status) for r in result.subtasks] == [("s1", "failed"), ("s2", "skipped"), ("s3", "ok")]
    assert [r.id for r in result.failures] == ["s1", "s2"] and result.replans == 0
    assert "FAILED: OutputValidationError: bad JSON" in planner.requests[2].messages[-1].content
    assert "SKIPPED: it needs s1" in planner.requests[2].messages[-1].content
    assert result.text.startswith("Partly done.\n\nCould not be done:\n- Do s1. (OutputValidationError: bad JSON)\n- Do s2.")
    assert len(good.model.requests) == 1


async def test_a_failure_is_replanned_once_when_enabled():
    planner = ScriptedModel(
        [
            route("plan"),
            plan(("s1", "bad", []), ("s2", "good", ["s1"]), ("s3", "good", [])),
            plan(("r1", "good", ["s3"])),  # the re-plan: redo the lost work another way
            "All done.",
        ]
    )
    good = specialist("good", ["s3 done", "r1 done"])
    events = await collect(Team([Agent("bad", model=Broken(OutputValidationError("x"))), good], model=planner), "goal")
    result = events[-1].result

    replan_request = planner.requests[2].messages[-1].content
    assert "could not be done" in replan_request and "[s1] bad: Do s1.\nFAILED" in replan_request
    assert [e.route for e in events if isinstance(e, PlanEvent)] == ["plan", "replan"]
    assert result.replans == 1 and result.failures == []  # the re-plan finished the work left
    assert [r.id for r in result.subtasks] == ["s1", "s2", "s3", "r1"]
    assert good.model.requests[1].messages[-1].content == (
        "The user's message, for context:\ngoal\n\nYour part (do only this): Do r1.\n\nResult of s3 (good):\ns3 done"
    )
    assert result.text == "All done."
    assert "FAILED" not in planner.requests[3].messages[-1].content  # made good: not for the answer to regret


async def test_replanning_is_bounded():
    bad = Agent("bad", model=Broken(OutputValidationError("x")))
    planner = ScriptedModel([route("plan"), plan(("s1", "bad", [])), plan(("r1", "bad", [])), plan(("r2", "bad", []))])
    result = await Team([bad], model=planner, max_replans=1).run("goal")
    assert result.replans == 1 and len(planner.requests) == 3  # route, plan, one re-plan
    assert [r.id for r in result.failures] == ["s1", "r1"]
    # Nothing succeeded: no call to write an answer from nothing; the answer says so.
    assert result.text == "Sorry, I could not do this.\n\nCould not be done:\n- Do s1. (OutputValidationError: x)\n- Do r1. (OutputValidationError: x)"


async def test_an_unrepairable_plan_is_a_plan_error():
    planner = ScriptedModel([route("plan")] + [plan(("s1", "a", ["s1"]))] * 3)
    team = Team([specialist("a", [])], model=planner, max_repairs=2)
    with pytest.raises(PlanError, match="cycle"):
        await team.run("goal")
    events = await collect(Team([specialist("a", [])], model=ScriptedModel(list(planner.script))), "goal")
    assert isinstance(events[-1], ErrorEvent) and events[-1].error == "PlanError"


async def test_model_calls_over_the_teams_budget():
    planner = ScriptedModel([route("plan"), plan(("s1", "a", []), ("s2", "b", [])), "never"])
    a = specialist("a", [ToolCall.make("x", {}), "a"])
    b = specialist("b", [ToolCall.make("x", {}), "b"])
    team = Team([a, b], model=planner, budget=Budget(max_steps=4))
    with pytest.raises(BudgetExceededError, match="4 model calls"):
        await team.run("goal")
    assert len(planner.requests) + len(a.model.requests) + len(b.model.requests) == 4

    planner2 = ScriptedModel(list(planner.script))
    a2, b2 = specialist("a", list(a.model.script)), specialist("b", list(b.model.script))
    events = await collect(Team([a2, b2], model=planner2, budget=Budget(max_steps=4)), "goal")
    assert isinstance(events[-1], ErrorEvent) and events[-1].error == "BudgetExceededError"


async def test_tokens_over_the_teams_budget():
    # Each scripted call uses 15 tokens: the routing call fits in 20, the planning call does not.
    planner = ScriptedModel([route("plan"), plan(("s1", "a", []))])
    team = Team([specialist("a", ["never"])], model=planner, budget=Budget(max_tokens=20))
    with pytest.raises(BudgetExceededError, match="30 tokens"):
        await team.run("goal")
    assert len(planner.requests) == 2 and team.specialists[0].model.requests == []


async def test_wall_time_over_the_teams_budget():
    team = Team([specialist("slow", ["late"], delay=5.0)], model=ScriptedModel([route("slow")]), budget=Budget(max_seconds=0.2))
    started = time.perf_counter()
    with pytest.raises(BudgetExceededError, match="wall-time"):
        await team.run("goal")
    assert time.perf_counter() - started < 1.0


async def test_cancelling_a_team_run_cancels_its_running_subtasks():
    cancelled: list[str] = []

    @tool
    async def work(name: str) -> str:
        """Work for a long time."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return "never"

    planner = ScriptedModel([route("plan"), plan(("s1", "a", []), ("s2", "b", []))])
    a = specialist("a", [ToolCall.make("work", {"name": "a"})], tools=[work])
    b = specialist("b", [ToolCall.make("work", {"name": "b"})], tools=[work])
    task = asyncio.create_task(Team([a, b], model=planner).run("goal"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == ["a", "b"]


async def test_stopping_the_stream_early_stops_the_run():
    cancelled: list[str] = []

    @tool
    async def work(name: str) -> str:
        """Work for a long time."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return "never"

    team = Team([specialist("a", [ToolCall.make("work", {"name": "a"})], tools=[work])], model=ScriptedModel([route("a")]))
    stream = team.stream("goal")
    async for event in stream:
        if isinstance(event, ToolCallEvent):
            break
    await stream.aclose()
    assert cancelled == ["a"]


def test_run_sync_and_team_checks():
    team = Team([specialist("a", ["hi"])], model=ScriptedModel([route("a")]))
    assert team.run_sync("hello").text == "hi"
    with pytest.raises(AgentError, match="at least one"):
        Team([])
    with pytest.raises(AgentError, match="'a'"):
        Team([specialist("a", []), specialist("a", [])])
    with pytest.raises(AgentError, match="routing word"):
        Team([specialist("plan", [])])


async def test_without_routing_the_team_always_plans():
    planner = ScriptedModel([plan(("s1", "a", []))])
    result = await Team([specialist("a", ["done"])], model=planner, route=False).run("goal")
    assert result.route == "plan" and result.text == "done" and len(planner.requests) == 1


class Prefilled(ScriptedModel):
    """A scripted model that also records what it was asked to prefill."""

    def __init__(self, script: list) -> None:
        super().__init__(script)
        self.prefilled: list[ChatRequest] = []

    async def prefill(self, request: ChatRequest) -> None:
        self.prefilled.append(request)


async def test_warming_a_team_prefills_the_fixed_start_of_every_agents_requests():
    planner = Prefilled([route("plan"), plan(("s1", "a", []), ("s2", "b", [])), "Both are done."])
    a = Agent("a", description="The a specialist.", instructions="You are A.", tools=[search_policies])
    b = Agent("b", description="The b specialist.", instructions="You are B.", model=Prefilled(["B done."]))
    team = Team([a, b], model=planner)
    planner.script.insert(2, "A done.")  # a has no model of its own: the team's answers for it
    await team.warm()
    assert b.model.prefilled and not b.model.requests  # b's own model warms b; nothing is asked yet
    assert not planner.requests

    await team.run("Do A and B.")
    sent = [*planner.requests, *b.model.requests]
    for warm in [*planner.prefilled, *b.model.prefilled]:
        # Each warmed start is the start of a request the run really sent: same system message, tools, schema.
        assert any(
            r.messages[0] == warm.messages[0] and r.tools == warm.tools and r.output_schema == warm.output_schema
            for r in sent
        ), warm
    assert len(planner.prefilled) == 2  # the plan request, and specialist a on the team's model
