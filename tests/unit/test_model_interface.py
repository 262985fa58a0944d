"""The shared model interface: request checks, output schemas, what every backend gets for free."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from llmos.errors import OutputValidationError, PromptError
from llmos.llm import ChatRequest, OutputSchema, TextDelta, ToolSpec, UserMessage
from tests.scripted import ScriptedModel

SPEC = ToolSpec(name="calculator", description="math", parameters={"type": "object", "properties": {}})


def test_empty_messages_are_refused():
    with pytest.raises(PromptError, match="no messages"):
        ChatRequest(messages=[])


def test_named_tool_choice_must_be_a_given_tool():
    with pytest.raises(PromptError, match="'search'"):
        ChatRequest(messages=[UserMessage(content="x")], tools=[SPEC], tool_choice="search")
    with pytest.raises(PromptError, match="at least one tool"):
        ChatRequest(messages=[UserMessage(content="x")], tool_choice="required")


class Point(BaseModel):
    x: int
    y: int


def test_output_schema_from_pydantic_model_validates_into_it():
    schema = OutputSchema.of(Point)
    assert schema.json_schema["required"] == ["x", "y"]
    assert schema.validate_text('```json\n{"x": 1, "y": 2}\n```') == Point(x=1, y=2)
    with pytest.raises(OutputValidationError, match="y"):
        schema.validate_text('{"x": 1}')
    with pytest.raises(OutputValidationError, match="not JSON"):
        schema.validate_text("sure!")


def test_output_schema_from_json_schema_dict():
    schema = OutputSchema.of({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    assert schema.validate_text('{"n": 3}') == {"n": 3}
    with pytest.raises(OutputValidationError):
        schema.validate_text('{"n": "three"}')


async def test_stream_yields_deltas_then_one_timed_response():
    model = ScriptedModel(["one two three"])
    events = [e async for e in model.stream(ChatRequest(messages=[UserMessage(content="count")]))]
    deltas, response = events[:-1], events[-1]
    assert all(isinstance(d, TextDelta) for d in deltas) and len(deltas) == 3
    assert "".join(d.text for d in deltas) == response.text == "one two three"
    assert response.latency_s > 0 and response.usage.total_tokens == 15


async def test_structured_output_is_validated_by_the_interface():
    model = ScriptedModel(['{"x": 5, "y": 6}'])
    request = ChatRequest(messages=[UserMessage(content="a point")], output_schema=OutputSchema.of(Point))
    assert (await model.chat(request)).output == Point(x=5, y=6)
