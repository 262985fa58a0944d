"""Support tools against the real demo stores, called directly (no model)."""

from __future__ import annotations

import json

import pytest

from llmos.agents.specialists.tickets import TicketRow
from llmos.demo.support import SUPPORT_INSTRUCTIONS, ShopDesk, support_agent
from llmos.errors import AccessDeniedError, NotFoundError
from llmos.tools import RunContext


async def call(tool, context: RunContext | None = None, **arguments):
    """The tool as the agent loop runs it: the model's JSON arguments, the caller's context."""
    return await tool.run(json.dumps(arguments), context)


def as_customer(customer: str | None) -> RunContext:
    return RunContext(user=customer)


C001, C002 = as_customer("C001"), as_customer("C002")


async def test_my_account_is_the_signed_in_customers(tools, stores):
    account = await tools["my_account"](C001)
    assert account.name == "Maya Lindqvist" and "O1090" in {o.id for o in account.orders}
    assert ShopDesk(stores).find_customer("Maya.Lindqvist@example.com") == account  # staff lookup, not a tool


async def test_the_model_cannot_name_the_customer(tools):
    # Arguments naming a customer are not arguments of these tools: the call is refused, nothing leaks.
    for name, arguments in [
        ("my_account", {"customer": "C002"}),
        ("my_account", {"customer": "peter.hansen@example.com"}),
        ("lookup_order", {"customer_id": "C002", "order_id": "O1090"}),
        ("create_ticket", {"customer_id": "C002", "subject": "x", "description": "y"}),
    ]:
        result = await call(tools[name], C001, **arguments)
        assert result.is_error and result.bad_arguments, (name, result.content)
        assert '"tier"' not in result.content and '"items"' not in result.content  # no profile, no order


async def test_without_a_signed_in_customer_nothing_personal_is_opened(tools):
    for name, arguments in [
        ("my_account", {}),
        ("lookup_order", {"order_id": "O1090"}),
        ("update_ticket", {"ticket_id": 1, "status": "resolved"}),
    ]:
        result = await call(tools[name], as_customer(None), **arguments)
        assert result.is_error and "No customer is signed in" in result.content
    with pytest.raises(AccessDeniedError):
        await tools["lookup_order"](order_id="O1090")


async def test_order_of_another_customer_is_refused_without_leaking_it(tools):
    result = await call(tools["lookup_order"], C002, order_id="O1090")
    assert result.is_error and "not one of this customer's orders" in result.content
    assert "Stove" not in result.content and "Maya" not in result.content and "C001" not in result.content
    with pytest.raises(AccessDeniedError):
        await tools["create_ticket"](C002, subject="x", description="y", order_id="O1090")


async def test_damaged_safety_item_requires_escalation(tools):
    order = await tools["lookup_order"](as_customer("c001"), order_id="o1090")  # case does not matter
    assert order.status == "damaged" and order.escalation_required
    assert "escalate_to_human" in order.next_step
    delivered = await tools["lookup_order"](C001, order_id="O1001")
    assert not delivered.escalation_required


async def test_an_order_number_without_its_letter_still_finds_the_order(tools):
    assert (await tools["lookup_order"](C001, order_id="1090")).id == "O1090"


async def test_unknown_order_and_unknown_customer(tools):
    result = await call(tools["lookup_order"], C001, order_id="O9999")
    assert result.is_error and "No order" in result.content
    with pytest.raises(NotFoundError):
        await tools["lookup_order"](as_customer("C999"), order_id="O1090")


async def test_create_and_update_ticket(tools, stores):
    c005 = as_customer("C005")
    ticket = await tools["create_ticket"](
        c005, subject="Torn tent fly", description="Pole snapped", order_id="O1091", priority="high"
    )
    assert ticket.id > 0 and ticket.status == "open" and not ticket.handoff and ticket.user == "C005"
    updated = await tools["update_ticket"](c005, ticket_id=ticket.id, status="pending", note="Replacement offered.")
    assert updated.status == "pending" and "Replacement offered." in updated.notes
    with stores.tickets.session() as db:
        assert db.get(TicketRow, ticket.id).status == "pending"  # stored, not just returned
    missing = await call(tools["update_ticket"], c005, ticket_id=99999, status="resolved")
    assert missing.is_error and "No ticket" in missing.content


async def test_another_customers_ticket_cannot_be_changed(tools, stores):
    ticket = await tools["create_ticket"](as_customer("C005"), subject="Broken zip", description="Zip tore")
    result = await call(tools["update_ticket"], C001, ticket_id=ticket.id, status="resolved", note="closed by C001")
    assert result.is_error and "No ticket" in result.content and "Broken zip" not in result.content
    with stores.tickets.session() as db:
        row = db.get(TicketRow, ticket.id)
        assert row.status == "open" and "closed by C001" not in (row.notes or "")


async def test_escalation_creates_a_handoff_ticket_with_summary(tools, stores):
    summary = "Maya (C001): stove in O1090 arrived with a bent valve; wants a replacement. Told her not to use it."
    ticket = await tools["escalate_to_human"](C001, reason="damaged safety item", summary=summary, order_id="O1090")
    assert ticket.handoff and ticket.status == "escalated" and ticket.summary == summary
    with stores.tickets.session() as db:
        row = db.get(TicketRow, ticket.id)
        assert row.handoff and row.summary == summary and row.reference == "O1090" and row.user == "C001"


async def test_escalating_an_existing_ticket(tools):
    c003 = as_customer("C003")
    ticket = await tools["create_ticket"](c003, subject="Late parcel", description="No tracking update")
    escalated = await tools["escalate_to_human"](
        c003, reason="customer asked for a human", summary="Priya wants a call about a late parcel.",
        ticket_id=ticket.id,
    )
    assert escalated.id == ticket.id and escalated.handoff
    # Another customer's ticket id is not theirs to escalate: the case still reaches a person, on a new ticket.
    other = await tools["escalate_to_human"](as_customer("C004"), reason="r", summary="s", ticket_id=ticket.id)
    assert other.id != ticket.id and other.user == "C004" and other.handoff and f"No ticket {ticket.id}" in other.notes
    assert "Late parcel" not in other.model_dump_json()


async def test_a_handoff_with_a_reference_that_is_not_the_customers_still_reaches_a_person(tools, stores):
    ticket = await tools["escalate_to_human"](C001, reason="damaged item", summary="Bent valve.", order_id="O1091")
    assert ticket.handoff and ticket.reference is None and "Reference 'O1091' left out" in ticket.notes


async def test_policy_search_returns_cited_passages(tools):
    text = (await call(tools["search_policies"], query="how long do I have to return an item?")).content
    assert text.startswith("[1] ") and "returns.md" in text and "30 days" in text


def test_agent_factory(stores):
    agent = support_agent(stores, model="unused")
    assert agent.instructions == SUPPORT_INSTRUCTIONS
    assert list(agent.tools) == [
        "search_policies", "my_account", "lookup_order", "create_ticket", "update_ticket", "escalate_to_human",
    ]
    # Same specs, byte for byte, on every build: the request prefix stays cacheable.
    again = support_agent(stores, model="unused")
    assert [s.model_dump_json() for s in agent._specs] == [s.model_dump_json() for s in again._specs]


async def test_support_agent_runs_a_tool_loop(stores):
    from llmos.llm import ToolCall
    from tests.scripted import ScriptedModel

    model = ScriptedModel([
        ToolCall.make("lookup_order", {"order_id": "O1090"}),
        # The damaged stove requires a human by the demo's rule: this call is forced on the model.
        ToolCall.make("escalate_to_human", {"reason": "damaged safety item", "summary": "Stove in O1090 arrived damaged."}),
        "Your stove is damaged; a human agent will contact you.",
    ])
    result = await support_agent(stores, model=model).run("My stove in O1090 is broken.", context=C001)
    order, handoff = result.messages[-4], result.messages[-2]
    assert "escalation_required" in order.content and not order.is_error
    assert model.requests[1].tool_choice == "escalate_to_human"
    assert '"handoff":true' in handoff.content.replace(" ", "") and not handoff.is_error
