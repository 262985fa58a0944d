"""The text-call scan is linear: pathological answers are read in seconds, not minutes.

Text calls are looked for in the first 100,000 characters (llmos.limits), where the old
quadratic scan took 6-9 s and the linear one takes under 0.1 s on an idle 2-core machine.
The bound of 3 s leaves a busy machine 30 times the idle time and still fails the old scan.
"""

from __future__ import annotations

import time

import pytest

from llmos.llm.parsing import extract_json, parse_tool_calls

# Each took seconds to minutes with a scan that retried JSON at every bracket, or regexes that backtrack.
PATHOLOGICAL = {
    "1,000,000 {": "{" * 1_000_000,
    "1,000,000 [": "[" * 1_000_000,
    "500,000 []": "[]" * 500_000,
    '500,000 {"': '{"' * 500_000,
    "unclosed fence": "```" + "x" * 1_000_000,
    "unclosed tag and blanks": "<tool_call>" + " " * 1_000_000 + "x",
}
BOUND_S = 3.0


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_answers_are_parsed_in_linear_time(name):
    text = PATHOLOGICAL[name]
    started = time.perf_counter()
    calls, rest = parse_tool_calls(text, ["calculator"])
    seconds = time.perf_counter() - started
    assert calls == [] and rest == text.strip()
    assert seconds < BOUND_S, f"{name}: {seconds:.2f}s"


def test_extract_json_is_linear_too():
    started = time.perf_counter()
    with pytest.raises(ValueError):
        extract_json("{" * 1_000_000)
    assert time.perf_counter() - started < BOUND_S


def test_a_call_after_a_long_prefix_is_still_found():
    text = "{" * 50_000 + '\n{"name": "calculator", "arguments": {"expression": "1+1"}}'
    calls, _ = parse_tool_calls(text, ["calculator"])
    assert [c.name for c in calls] == ["calculator"]
