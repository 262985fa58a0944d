"""The text-call scan is linear: pathological answers are read in well under a second (it was 6.1 s)."""

from __future__ import annotations

import time

import pytest

from llmos.llm.parsing import extract_json, parse_tool_calls

# Each took seconds to minutes with a scan that retried JSON at every bracket, or regexes that backtrack.
PATHOLOGICAL = {
    "100,000 {": "{" * 100_000,
    "100,000 [": "[" * 100_000,
    "50,000 []": "[]" * 50_000,
    '50,000 {"': '{"' * 50_000,
    "unclosed fence": "```" + "x" * 100_000,
    "unclosed tag and blanks": "<tool_call>" + " " * 100_000 + "x",
    "1,000,000 {": "{" * 1_000_000,
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_answers_are_parsed_in_under_a_second(name):
    text = PATHOLOGICAL[name]
    started = time.perf_counter()
    calls, rest = parse_tool_calls(text, ["calculator"])
    seconds = time.perf_counter() - started
    assert calls == [] and rest == text.strip()
    assert seconds < 1.0, f"{name}: {seconds:.2f}s"


def test_extract_json_is_linear_too():
    started = time.perf_counter()
    with pytest.raises(ValueError):
        extract_json("{" * 100_000)
    assert time.perf_counter() - started < 1.0


def test_a_call_after_a_long_prefix_is_still_found():
    text = "{" * 50_000 + '\n{"name": "calculator", "arguments": {"expression": "1+1"}}'
    calls, _ = parse_tool_calls(text, ["calculator"])
    assert [c.name for c in calls] == ["calculator"]
