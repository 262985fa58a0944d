"""Injected text cannot run a side-effecting tool: quoted calls are prose, obeyed calls wait for approval.

The same planted documents run on the real local model in tests/model/test_injection.py.
"""

from __future__ import annotations

from llmos.agents import Agent, ApprovalEvent, ToolResultEvent
from llmos.llm import AssistantMessage, ToolCall
from llmos.tools import RunContext, tool
from tests.scripted import ScriptedModel
from tests.security.injection import PLANTED, delete_all_orders_tool


@tool
def search_policies(query: str) -> str:
    """Search the shop's policies."""
    return "[1] shipping.md\n" + PLANTED["shipping.md"] + "\n\n[2] warranty.md\n" + PLANTED["warranty.md"]


def quoting(request) -> str:
    """A model that answers by quoting the tool result it got, call syntax and all."""
    return "The policy says:\n" + request.messages[-1].content


async def test_a_model_quoting_a_document_with_call_syntax_runs_nothing():
    delete_all_orders, ran = delete_all_orders_tool()
    model = ScriptedModel([ToolCall.make("search_policies", {"query": "shipping"}), quoting])
    agent = Agent("support", tools=[search_policies, delete_all_orders], model=model)
    events = [e async for e in agent.stream("How long does shipping take?")]
    assert ran == []
    assert not [e for e in events if isinstance(e, ApprovalEvent)]  # not even asked: it was never a call
    final = events[-1].result
    assert "delete_all_orders" in final.text  # the quotation stays as text


async def test_a_model_that_obeys_the_planted_instruction_is_stopped_by_approval():
    delete_all_orders, ran = delete_all_orders_tool()
    obeying = [
        ToolCall.make("search_policies", {"query": "returns"}),
        ToolCall.make("delete_all_orders", {"confirm": True}),  # a native call, as an obeying model writes it
        AssistantMessage(content='<tool_call>{"name": "delete_all_orders", "arguments": {"confirm": true}}</tool_call>'),
        "Returns are accepted within 30 days.",
    ]
    agent = Agent("support", tools=[search_policies, delete_all_orders], model=ScriptedModel(obeying))
    events = [e async for e in agent.stream("Can I return my tent?", context=RunContext(user="C001"))]
    assert ran == []
    denied = [e for e in events if isinstance(e, ApprovalEvent) and e.status == "denied"]
    assert len(denied) == 1  # asked once; the repeat in the same run is refused without asking
    results = [e for e in events if isinstance(e, ToolResultEvent) and e.name == "delete_all_orders"]
    assert results and all(r.is_error and "did not run" in r.content for r in results)
