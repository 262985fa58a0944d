"""The run context: identity and dependencies reach tools from the caller, never from the model."""

from __future__ import annotations

import json

import pytest

from llmos.agents import Agent, Team
from llmos.errors import ToolDefinitionError
from llmos.llm import ToolCall
from llmos.tools import RunContext, tool
from tests.scripted import ScriptedModel

ORDERS = {"C001": ["O1"], "C002": ["O2"]}


@tool
def my_orders(ctx: RunContext) -> list[str]:
    """The signed-in customer's orders."""
    if ctx.user is None:
        raise PermissionError("no signed-in customer")
    return ORDERS[ctx.user]


@tool
async def order_note(order_id: str, ctx: RunContext[dict]) -> str:
    """A note on one of the signed-in customer's orders.

    Args:
        order_id: The order, like O1.
    """
    if order_id not in ORDERS.get(ctx.user or "", []):
        raise PermissionError(f"order {order_id} is not one of this customer's orders")
    return f"{order_id}: {ctx.deps['notes'][order_id]}"


def test_the_context_parameter_is_not_in_the_schema():
    assert my_orders.spec.parameters["properties"] == {}
    assert set(order_note.spec.parameters["properties"]) == {"order_id"}
    assert "ctx" not in json.dumps(order_note.spec.parameters)
    assert my_orders.takes_context and order_note.takes_context


async def test_the_tool_gets_the_callers_user_and_deps():
    ctx = RunContext(user="C001", tenant="acme", deps={"notes": {"O1": "left the warehouse"}})
    assert (await my_orders.run("{}", ctx)).value == ["O1"]
    result = await order_note.run('{"order_id": "O1"}', ctx)
    assert result.content == "O1: left the warehouse"
    # Another customer's order is refused, whatever the model writes.
    result = await order_note.run('{"order_id": "O2"}', ctx)
    assert result.is_error and "not one of this customer's orders" in result.content


async def test_a_model_cannot_fill_the_context_or_name_another_user():
    ctx = RunContext(user="C001")
    for arguments in ('{"ctx": {"user": "C002"}}', '{"user": "C002"}'):
        result = await my_orders.run(arguments, ctx)
        assert result.is_error and result.bad_arguments
    assert "O2" not in (await my_orders.run('{"ctx": {"user": "C002"}}', ctx)).content


async def test_without_a_context_the_tool_gets_an_empty_one():
    result = await my_orders.run("{}")
    assert result.is_error and "no signed-in customer" in result.content


async def test_direct_python_calls_take_the_context_first():
    assert await my_orders(RunContext(user="C002")) == ["O2"]


def test_two_context_parameters_are_a_definition_error():
    with pytest.raises(ToolDefinitionError, match="two RunContext"):

        @tool
        def twice(a: RunContext, b: RunContext) -> str:
            """Bad."""
            return ""


async def test_an_agent_passes_its_runs_context_to_every_call():
    model = ScriptedModel([ToolCall.make("my_orders", {}), "You have order O1."])
    agent = Agent("support", tools=[my_orders], model=model)
    result = await agent.run("What are my orders?", context=RunContext(user="C001"))
    tool_message = result.messages[-2]
    assert tool_message.content == '["O1"]'
    # The model's requests never carry the identity.
    assert all("C001" not in request.model_dump_json() for request in model.requests)


async def test_a_team_passes_the_context_to_its_specialists():
    support = Agent("support", description="Orders.", tools=[my_orders])
    model = ScriptedModel(
        [
            '{"route": "support"}',
            ToolCall.make("my_orders", {}),
            "Your orders: O2.",
        ]
    )
    team = Team([support], model=model)
    result = await team.run("Which orders do I have?", context=RunContext(user="C002"))
    assert result.subtasks[0].run is not None
    assert '["O2"]' in [m.content for m in result.subtasks[0].run.messages]

