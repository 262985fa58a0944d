"""Deep JSON from a model ends as an error the model can correct, or an LLMOSError, never a RecursionError."""

from __future__ import annotations

import json

import pytest

from llmos.agents import Agent, ToolResultEvent
from llmos.agents.planner import Planner
from llmos.errors import JSONDepthError, LLMOSError
from llmos.limits import MAX_JSON_DEPTH
from llmos.llm import ToolCall
from llmos.llm.parsing import extract_json, json_values, loads, parse_tool_calls
from llmos.tools import tool
from tests.scripted import ScriptedModel

DEEP_LIST = "[" * 1100 + "]" * 1100
DEEP_OBJECT = '{"a": ' * 1100 + "1" + "}" * 1100


@tool
def count(items: list) -> int:
    """Count the items of a list."""
    return len(items)


@pytest.mark.parametrize("text", [DEEP_LIST, DEEP_OBJECT])
def test_loads_refuses_deep_json_with_a_clear_error(text):
    with pytest.raises(JSONDepthError, match=f"1100 levels deep; llmos reads at most {MAX_JSON_DEPTH}") as info:
        loads(text)
    # Callers that handle unparsable JSON (ValueError) and llmos errors both catch it.
    assert isinstance(info.value, ValueError) and isinstance(info.value, LLMOSError)
    with pytest.raises(JSONDepthError):
        extract_json(text)


def test_brackets_inside_strings_do_not_count_as_depth():
    text = json.dumps({"text": "[" * 5000})
    assert loads(text) == {"text": "[" * 5000}


@pytest.mark.parametrize(
    "text",
    [
        DEEP_LIST,
        DEEP_OBJECT,
        '{"name": "count", "arguments": {"items": ' + DEEP_LIST + "}}",
        "<tool_call>" + '{"name": "count", "arguments": ' + DEEP_OBJECT + "}</tool_call>",
        "```json\n" + DEEP_LIST + "\n```",
        '{"a": ' + "[" * 3000 + "}",  # brackets that never close still count
    ],
)
def test_the_text_call_parser_skips_deep_json(text):
    assert parse_tool_calls(text, ["count"])[0] == []
    list(json_values(text))  # no exception


def test_a_call_next_to_deep_json_is_still_found():
    text = DEEP_LIST + '\n{"name": "count", "arguments": {"items": [1, 2]}}'
    calls, _ = parse_tool_calls(text, ["count"])
    assert [json.loads(c.arguments) for c in calls] == [{"items": [1, 2]}]


@pytest.mark.parametrize("arguments", [DEEP_LIST, '{"items": ' + DEEP_LIST + "}", DEEP_OBJECT])
async def test_deep_native_arguments_become_an_error_result_and_the_run_goes_on(arguments):
    deep = ToolCall(name="count", arguments=arguments)
    # Twice in one message: the agent compares calls by their canonical arguments (the old crash).
    model = ScriptedModel([[deep, deep], ToolCall.make("count", {"items": [1, 2, 3]}), "3 items."])
    events = [e async for e in Agent("counter", tools=[count], model=model).stream("count")]
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert results[0].is_error and "Invalid" in results[0].content
    assert results[-1].content == "3" and not results[-1].is_error
    assert events[-1].result.output == "3 items."


async def test_deep_arguments_written_as_text_are_not_run():
    text = '{"name": "count", "arguments": {"items": ' + DEEP_LIST + "}}"
    result = await Agent("counter", tools=[count], model=ScriptedModel([text])).run("count")
    assert result.tool_calls == 0 and result.output == text


async def test_a_deep_plan_is_repaired_and_a_deep_route_falls_back_to_planning():
    plan = {"subtasks": [{"id": "s1", "specialist": "support", "instruction": "do it", "depends_on": [], "returns": ""}]}
    model = ScriptedModel([DEEP_OBJECT, json.dumps(plan)])
    result = await Planner({"support": "Orders."}, model).plan("goal")
    assert result.subtasks[0].specialist == "support"
    assert "1100 levels deep" in model.requests[1].messages[-1].content  # the repair says what was wrong
    assert await Planner({"support": "Orders."}, ScriptedModel([DEEP_LIST])).route("goal") == "plan"
