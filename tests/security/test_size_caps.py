"""Tool arguments from a model and tool results sent back to it are bounded (llmos.limits)."""

from __future__ import annotations

import json

from llmos.agents import Agent, Budget, ToolResultEvent
from llmos.limits import MAX_ARGUMENTS_CHARS, MAX_RESULT_CHARS
from llmos.llm import ToolCall, ToolMessage
from llmos.tools import tool
from tests.scripted import ScriptedModel

calls: list[str] = []


@tool
def dump(size: int) -> str:
    """Return `size` characters."""
    return "x" * size


@tool
def save(text: str) -> str:
    """Store a text."""
    calls.append(text)
    return "saved"


async def test_a_10_mb_result_is_cut_with_a_note_before_the_model_sees_it():
    model = ScriptedModel([ToolCall.make("dump", {"size": 10_000_000}), "done"])
    events = [e async for e in Agent("a", tools=[dump], model=model).stream("dump")]
    shown = next(e for e in events if isinstance(e, ToolResultEvent)).content
    sent = next(m for m in model.requests[1].messages if isinstance(m, ToolMessage)).content
    assert sent == shown and len(sent) < MAX_RESULT_CHARS + 300
    assert sent.startswith("x" * MAX_RESULT_CHARS) and "10,000,000 characters" in sent


async def test_the_result_limit_is_set_per_agent_and_short_results_are_untouched():
    model = ScriptedModel([[ToolCall.make("dump", {"size": 500}), ToolCall.make("dump", {"size": 50})], "done"])
    await Agent("a", tools=[dump], model=model, budget=Budget(max_result_chars=100)).run("dump")
    sent = [m.content for m in model.requests[1].messages if isinstance(m, ToolMessage)]
    assert sent[0].startswith("x" * 100 + "\n[The result was cut: it has 500 characters")
    assert sent[1] == "x" * 50


async def test_arguments_over_the_limit_are_refused_and_the_tool_does_not_run():
    calls.clear()
    huge = ToolCall(name="save", arguments=json.dumps({"text": "y" * (MAX_ARGUMENTS_CHARS + 1)}))
    model = ScriptedModel([huge, ToolCall.make("save", {"text": "short"}), "ok"])
    events = [e async for e in Agent("a", tools=[save], model=model).stream("save")]
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert results[0].is_error and "tools take at most 32,000" in results[0].content
    assert calls == ["short"]  # only the call within the limit ran


async def test_a_runaway_plan_gets_a_short_repair_message():
    from llmos.agents.planner import Planner

    subtask = {"id": "s1", "specialist": "support", "instruction": "x" * 5000, "depends_on": [], "returns": ""}
    plan = json.dumps({"subtasks": [subtask] * 1000})
    valid = json.dumps({"subtasks": [{**subtask, "instruction": "Check order O1."}]})
    model = ScriptedModel([plan, valid])
    result = await Planner({"support": "Orders."}, model).plan("goal")
    repair = model.requests[1].messages[-1].content
    assert result.subtasks[0].instruction == "Check order O1."
    assert "subtasks/0/instruction" in repair and len(repair) < 3000  # the answer was 5 MB
