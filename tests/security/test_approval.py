"""The approval gate: a side-effecting tool runs only after the caller says yes."""

from __future__ import annotations

import asyncio

from llmos.agents import Agent, ApprovalEvent, Team, ToolResultEvent
from llmos.llm import ToolCall
from llmos.tools import ApprovalRequest, RunContext, tool
from tests.scripted import ScriptedModel


def refund_tool():
    calls: list[float] = []

    @tool(requires_approval=True)
    def refund(order_id: str, amount: float) -> str:
        """Refund an amount on an order."""
        calls.append(amount)
        return f"refunded {amount} on {order_id}"

    return refund, calls


def agent_with(model, refund):
    return Agent("support", tools=[refund], model=model)


async def events_of(agent, context=None):
    return [e async for e in agent.stream("Refund 20 on O1.", context=context)]


async def test_without_an_approver_the_call_is_denied_and_does_not_run():
    refund, calls = refund_tool()
    model = ScriptedModel([ToolCall.make("refund", {"order_id": "O1", "amount": 20}), "It needs approval."])
    events = await events_of(agent_with(model, refund))
    approvals = [e for e in events if isinstance(e, ApprovalEvent)]
    assert [a.status for a in approvals] == ["requested", "denied"]
    assert "no one to approve" in approvals[1].reason
    assert calls == []
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert result.is_error and "did not run" in result.content


async def test_an_approved_call_runs_once_and_the_approver_sees_who_and_what():
    refund, calls = refund_tool()
    seen: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> bool:
        seen.append(request)
        return True

    model = ScriptedModel([ToolCall.make("refund", {"order_id": "O1", "amount": 20}), "Refunded."])
    context = RunContext(user="C001", session="s1", approver=approver)
    events = await events_of(agent_with(model, refund), context)
    assert calls == [20.0]
    assert [e.status for e in events if isinstance(e, ApprovalEvent)] == ["requested", "approved"]
    assert seen[0].call.name == "refund" and seen[0].user == "C001" and seen[0].session == "s1"
    assert "Refund an amount" in seen[0].description


async def test_a_no_a_timeout_or_a_failing_approver_all_deny():
    def no(_: ApprovalRequest) -> bool:
        return False

    async def silent(_: ApprovalRequest) -> bool:
        await asyncio.sleep(60)
        return True

    def broken(_: ApprovalRequest) -> bool:
        raise RuntimeError("approval service down")

    def not_a_bool(_: ApprovalRequest) -> str:
        return "yes"  # only True approves

    for approver, reason in [
        (no, "it was denied"),
        (silent, "no answer came within 0.2 s"),
        (broken, "approval service down"),
        (not_a_bool, "it was denied"),
    ]:
        refund, calls = refund_tool()
        model = ScriptedModel([ToolCall.make("refund", {"order_id": "O1", "amount": 20}), "Not done."])
        context = RunContext(approver=approver, approval_timeout_s=0.2)
        events = await events_of(agent_with(model, refund), context)
        denied = [e for e in events if isinstance(e, ApprovalEvent) and e.status == "denied"]
        assert calls == [] and len(denied) == 1 and reason in denied[0].reason, approver.__name__


async def test_a_denied_call_repeated_in_the_run_is_not_asked_again():
    refund, calls = refund_tool()
    asked: list[str] = []

    def no(request: ApprovalRequest) -> bool:
        asked.append(request.call.arguments)
        return False

    call = ToolCall.make("refund", {"order_id": "O1", "amount": 20})
    model = ScriptedModel([call, ToolCall.make("refund", {"amount": 20, "order_id": "O1"}), "Not done."])
    await events_of(agent_with(model, refund), RunContext(approver=no))
    assert len(asked) == 1 and calls == []


async def test_tools_without_the_flag_run_without_asking():
    @tool
    def lookup(order_id: str) -> str:
        """Look up an order."""
        return "shipped"

    def never(_: ApprovalRequest) -> bool:
        raise AssertionError("asked for a read-only tool")

    model = ScriptedModel([ToolCall.make("lookup", {"order_id": "O1"}), "Shipped."])
    result = await Agent("a", tools=[lookup], model=model).run("Where is O1?", context=RunContext(approver=never))
    assert result.text == "Shipped."


async def test_approval_requests_of_a_team_come_tagged_with_their_subtask():
    refund, calls = refund_tool()
    support = Agent("support", description="Refunds.", tools=[refund])
    model = ScriptedModel(
        ['{"route": "support"}', ToolCall.make("refund", {"order_id": "O1", "amount": 20}), "Refunded."]
    )
    team = Team([support], model=model)
    events = [e async for e in team.stream("Refund 20 on O1.", context=RunContext(approver=lambda r: True))]
    approvals = [e for e in events if isinstance(e, ApprovalEvent)]
    assert [a.status for a in approvals] == ["requested", "approved"]
    assert all(a.subtask == "s1" for a in approvals)
    assert calls == [20.0]


async def test_the_terminal_approver_denies_when_nobody_is_at_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    from llmos.render import TerminalApprover

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is not a person answering
    request = ApprovalRequest(agent="a", call=ToolCall.make("refund", {"amount": 1}), description="Refund.")
    assert await TerminalApprover(Console(file=io.StringIO()))(request) is False
