"""The generic specialists' parts, with no demo: escalation rules as data, the ticket store, reworded tools,
and the demo's prompts staying byte-identical now that it is a configuration of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from llmos.agents.specialists import Condition, EscalationPolicy, EscalationRule, TicketDesk, TicketStore
from llmos.agents.specialists.support import support_agent
from llmos.errors import AccessDeniedError, NotFoundError
from llmos.llm import ToolCall
from llmos.tools import RunContext, tool
from llmos.tools.wording import reworded
from tests.scripted import ScriptedModel


class Card(BaseModel):
    id: str
    status: str
    limit: float
    merchants: list[dict]


RULES = EscalationPolicy(rules=[
    EscalationRule(name="fraud suspected", tool="card_status",
                   when=[Condition(field="merchants.category", contains_any=["gambling", "crypto"])]),
    EscalationRule(name="high limit card blocked", tool="card_status",
                   when=[Condition(field="status", equals="Blocked"), Condition(field="limit", above=5000)],
                   next_step="Blocked card with limit over 5000: escalate_to_human."),
    EscalationRule(name="customer asks for a person", customer_says_any=["human", "a person", "manager"]),
])


def test_rules_check_tool_results_in_order():
    risky = Card(id="c1", status="active", limit=100, merchants=[{"name": "LuckySpin", "category": "Online gambling"}])
    verdict = RULES.check("card_status", risky)
    assert verdict.escalation_required and verdict.rule == "fraud suspected"
    assert verdict.next_step == "Fraud suspected: escalate_to_human is required by policy."
    blocked = Card(id="c2", status="blocked", limit=8000, merchants=[])  # equals ignores case
    assert RULES.check("card_status", blocked).next_step == "Blocked card with limit over 5000: escalate_to_human."
    calm = Card(id="c3", status="blocked", limit=500, merchants=[{"name": "Cafe", "category": "food"}])
    assert not RULES.check("card_status", calm).escalation_required
    assert RULES.check("other_tool", risky) is None  # no rule concerns it


def test_rules_on_the_customers_words():
    assert [r.name for r in RULES.on_message("Can I talk to a HUMAN please?")] == ["customer asks for a person"]
    assert RULES.on_message("My card was declined at the shop") == []


@pytest.mark.parametrize("bad", [
    {"name": "x"},  # no condition
    {"name": "x", "when": [{"field": "a", "above": 1, "below": 2}]},  # two tests in one condition
    {"name": "x", "when": [{"field": "a", "more_than": 1}]},  # unknown key
])
def test_malformed_rules_are_refused(bad):
    with pytest.raises(ValidationError):
        EscalationRule.model_validate(bad)


async def test_guarded_tool_results_carry_the_verdict():
    @tool
    def card_status(ctx: RunContext) -> Card:
        """The signed-in customer's card."""
        return Card(id="c1", status="active", limit=100, merchants=[{"name": "Coinbase", "category": "crypto exchange"}])

    result = await RULES.guard(card_status).run("{}", RunContext(user="u1"))
    data = json.loads(result.content)
    assert data["escalation_required"] is True and "Fraud suspected" in data["next_step"] and data["id"] == "c1"
    assert RULES.guard(card_status).spec == card_status.spec  # the model sees the same tool


async def test_a_rule_that_requires_escalation_forces_the_next_call_whatever_the_model_would_say(tmp_path):
    @tool
    def card_status(ctx: RunContext) -> Card:
        """The signed-in customer's card."""
        return Card(id="c1", status="active", limit=100, merchants=[{"name": "LuckySpin", "category": "online gambling"}])

    store = TicketStore(tmp_path / "t.sqlite")

    def escalate(request):  # what the model writes when the call is forced on it: only the arguments
        assert request.tool_choice == "escalate_to_human", request.tool_choice
        return ToolCall(id="2", name="escalate_to_human",
                        arguments=json.dumps({"reason": "possible fraud", "summary": "Gambling payments on the card."}))

    # The model also makes a bad call in the same step: the handoff still comes before any retry of it.
    first = [ToolCall(id="1", name="card_status", arguments="{}"), ToolCall(id="9", name="update_ticket", arguments='{"x": 1}')]
    model = ScriptedModel([first, escalate, "A colleague will call you today."])
    agent = support_agent(knowledge=None, tools=[card_status], tickets=TicketDesk(store), escalation=RULES, model=model)
    result = await agent.run("Is my card fine?", context=RunContext(user="u1", tenant="bank"))
    assert [c.name for m in result.messages for c in getattr(m, "tool_calls", None) or []] == [
        "card_status", "update_ticket", "escalate_to_human"]
    assert store.open_count("bank", "u1") == 1
    # Once escalated, the next step is the model's again.
    assert model.requests[2].tool_choice == "auto"


async def test_a_calm_result_leaves_the_next_step_to_the_model():
    @tool
    def card_status(ctx: RunContext) -> Card:
        """The signed-in customer's card."""
        return Card(id="c3", status="active", limit=100, merchants=[{"name": "Cafe", "category": "food"}])

    model = ScriptedModel([ToolCall(id="1", name="card_status", arguments="{}"), "Your card is active."])
    agent = support_agent(knowledge=None, tools=[card_status], tickets=[], escalation=RULES, model=model)
    result = await agent.run("Is my card fine?", context=RunContext(user="u1"))
    assert result.output == "Your card is active." and model.requests[1].tool_choice == "auto"


async def test_a_customer_asking_for_a_person_changes_the_notes_of_that_turn_only():
    agent = support_agent(knowledge=None, escalation=RULES, company="Fjord Bank")
    asks = await agent.notes_for("I want to speak to a manager", [])
    plain = await agent.notes_for("What is my card limit?", [])
    assert plain == "" and "Fjord Bank" in agent.instructions
    assert "escalate_to_human" in asks


async def test_tickets_are_scoped_to_tenant_and_customer(tmp_path):
    store = TicketStore(tmp_path / "t.sqlite")
    tools = {t.name: t for t in TicketDesk(store).tools()}
    alice_a = RunContext(user="alice", tenant="bank-a")
    ticket = await tools["create_ticket"](alice_a, subject="Card lost", description="Lost at the station", reference="card-9")
    assert (ticket.user, ticket.reference, ticket.status) == ("alice", "card-9", "open")
    for other in (RunContext(user="bob", tenant="bank-a"), RunContext(user="alice", tenant="bank-b")):
        result = await tools["update_ticket"].run(json.dumps({"ticket_id": ticket.id, "status": "resolved"}), other)
        assert result.is_error and "No ticket" in result.content and "Card lost" not in result.content
    escalated = await tools["escalate_to_human"](alice_a, reason="customer asked for a person", summary="Alice lost her card.",
                                                  ticket_id=ticket.id)
    assert escalated.handoff and escalated.status == "escalated" and escalated.id == ticket.id
    assert store.open_count("bank-a", "alice") == 1 and store.open_count("bank-b", "alice") == 0
    assert TicketStore(tmp_path / "t.sqlite").get("bank-a", "alice", ticket.id).summary == "Alice lost her card."  # stored
    with pytest.raises(AccessDeniedError):
        await tools["create_ticket"](RunContext(), subject="x", description="y")


async def test_a_company_checks_what_a_ticket_is_about(tmp_path):
    def own_card(ctx: RunContext, reference: str) -> str:
        if reference.strip() != "card-9":
            raise NotFoundError(f"No card {reference} for this customer.")
        return "CARD-9"

    tools = {t.name: t for t in TicketDesk(TicketStore(tmp_path / "t.sqlite"), check_reference=own_card).tools()}
    ok = await tools["create_ticket"](RunContext(user="u"), subject="s", description="d", reference="card-9")
    assert ok.reference == "CARD-9"
    refused = await tools["create_ticket"].run(json.dumps({"subject": "s", "description": "d", "reference": "card-1"}),
                                               RunContext(user="u"))
    assert refused.is_error and "No card card-1" in refused.content


async def test_reworded_tool_renames_an_argument_and_still_calls_the_original(tmp_path):
    create = TicketDesk(TicketStore(tmp_path / "t.sqlite")).tools()[0]
    card = reworded(create, rename={"reference": "card_id"}, arguments={"card_id": "The card concerned."})
    props = card.spec.parameters["properties"]
    assert list(props) == ["subject", "description", "card_id", "priority"] and props["card_id"]["description"] == "The card concerned."
    result = await card.run(json.dumps({"subject": "s", "description": "d", "card_id": "c-7"}), RunContext(user="u"))
    assert json.loads(result.content)["reference"] == "c-7"
    wrong = await card.run(json.dumps({"subject": "s", "description": "d", "reference": "c-7"}), RunContext(user="u"))
    assert wrong.is_error and wrong.bad_arguments  # the old name is gone


def test_the_demo_prompts_are_byte_identical_to_the_snapshot(stores):
    """The demo's instructions, tool specs and settings, as they were before the specialists became generic:
    the demo's model test runs a 0.5B model, which is sensitive to every word."""
    from llmos.demo.team import demo_team
    from tests.scripted import ScriptedModel

    want = json.loads((Path(__file__).parent / "data" / "demo_prompts.json").read_text())
    team = demo_team(stores, ScriptedModel([]))
    assert (team.planner_instructions, team.planner_example) == (want["planner_instructions"], want["planner_example"])
    for agent in team.specialists:
        expected = want["agents"][agent.name]
        assert agent.instructions == expected["instructions"] and agent.description == expected["description"]
        assert [s.model_dump_json() for s in agent._specs] == expected["specs"], agent.name
        budget = agent.budget.model_dump(include=set(expected["budget"]))  # fields added later have their defaults
        assert (agent.tool_choice, budget, agent.max_tokens_per_call) == (
            expected["tool_choice"], expected["budget"], expected["max_tokens_per_call"])
