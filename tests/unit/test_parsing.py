"""Reading tool calls and JSON out of model text."""

from __future__ import annotations

import json

import pytest

from llmos.llm.parsing import CallTextHolder, extract_json, parse_tool_calls

NAMES = ["calculator", "clock"]


def args(call) -> dict:
    return json.loads(call.arguments)


def test_tool_call_tags():
    text = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1+1"}}\n</tool_call>'
    calls, rest = parse_tool_calls(text, NAMES)
    assert [c.name for c in calls] == ["calculator"] and args(calls[0]) == {"expression": "1+1"} and rest == ""


def test_unclosed_tag_at_end_of_text():
    calls, _ = parse_tool_calls('<tool_call>\n{"name": "clock", "arguments": {}}', NAMES)
    assert [c.name for c in calls] == ["clock"]


def test_fenced_json_keeps_surrounding_text():
    text = 'I will compute it.\n```json\n{"name": "calculator", "arguments": {"expression": "2*3"}}\n```\nDone.'
    calls, rest = parse_tool_calls(text, NAMES)
    assert args(calls[0]) == {"expression": "2*3"}
    assert rest == "I will compute it.\n\nDone."


def test_bare_json_and_parameters_key_and_string_arguments():
    calls, _ = parse_tool_calls('{"name": "calculator", "parameters": {"expression": "3"}}', NAMES)
    assert args(calls[0]) == {"expression": "3"}
    calls, _ = parse_tool_calls('{"name": "calculator", "arguments": "{\\"expression\\": \\"4\\"}"}', NAMES)
    assert args(calls[0]) == {"expression": "4"}


def test_several_calls_in_a_list_and_in_tags():
    text = '[{"name": "clock", "arguments": {}}, {"name": "calculator", "arguments": {"expression": "1"}}]'
    assert [c.name for c in parse_tool_calls(text, NAMES)[0]] == ["clock", "calculator"]
    text = '<tool_call>{"name": "clock", "arguments": {}}</tool_call><tool_call>{"name": "clock", "arguments": {"timezone": "UTC"}}</tool_call>'
    calls, _ = parse_tool_calls(text, NAMES)
    assert len(calls) == 2 and calls[0].id != calls[1].id


def test_unknown_names_and_plain_json_are_not_calls():
    text = '{"name": "rm_rf", "arguments": {}} and {"answer": 42}'
    calls, rest = parse_tool_calls(text, NAMES)
    assert calls == [] and rest == text


def test_plain_text_has_no_calls():
    assert parse_tool_calls("The answer is 395.", NAMES) == ([], "The answer is 395.")


@pytest.mark.parametrize(
    "text, value",
    [
        ('{"a": 1}', {"a": 1}),
        ('  [1, 2]  ', [1, 2]),
        ('```json\n{"a": 2}\n```', {"a": 2}),
        ('Here you go: {"a": 3} hope it helps', {"a": 3}),
    ],
)
def test_extract_json(text, value):
    assert extract_json(text) == value


@pytest.mark.parametrize("text", ["", "   ", "no json here", "{broken"])
def test_extract_json_errors(text):
    with pytest.raises(ValueError):
        extract_json(text)


def feed_all(pieces: list[str]) -> tuple[str, str]:
    holder = CallTextHolder()
    shown = "".join(holder.feed(p) for p in pieces)
    return shown, holder.flush()


def test_holder_shows_prose_and_holds_a_call():
    assert feed_all(["The answer ", "is 395."]) == ("The answer is 395.", "")
    assert feed_all(["  {\"name\"", ": \"clock\"}"]) == ("", '  {"name": "clock"}')
    shown, held = feed_all(["Let me compute.\n`", "``json\n{}", "\n```"])
    assert shown == "Let me compute.\n" and held == "```json\n{}\n```"
    shown, held = feed_all(["ok <tool", "_call>{}"])
    assert shown == "ok " and held == "<tool_call>{}"
    # A tail that only looked like the start of a marker is given back at the end.
    assert feed_all(["cost: 5 <", "b"]) == ("cost: 5 <b", "")


def test_an_answer_that_is_only_a_call_to_an_unknown_tool_is_still_a_call():
    text = '```json\n{"name": "Tents", "arguments": {"customer_id": "C001"}}\n```'
    calls, rest = parse_tool_calls(text, NAMES)
    assert [c.name for c in calls] == ["Tents"] and rest == ""
    # Prose that merely contains such an object is prose.
    prose = 'The format is {"name": "x", "arguments": {}} and you write it in your request body when calling.'
    assert parse_tool_calls(prose, NAMES)[0] == []
