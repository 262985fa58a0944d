"""Fjord Bank's assistant from its file, with the scripted model: what the file wires together works."""

from __future__ import annotations

import json
import sys

from llmos.assistants import load_assistant
from llmos.llm import ToolCall
from tests.assistants.conftest import FJORD
from tests.scripted import ScriptedModel

ROUTE = json.dumps({"route": "cards"})


def system_prompt(request) -> str:
    return request.messages[0].content


def turn_notes(request) -> str:
    """The system message right after the customer's message ('' when the turn has none)."""
    roles = [m.role for m in request.messages]
    user = roles.index("user")
    after = request.messages[user + 1] if user + 1 < len(roles) else None
    return after.content if after is not None and after.role == "system" else ""


async def test_the_file_builds_the_banks_team(home, embedder):
    assistant = load_assistant(FJORD, ScriptedModel([]), home=home, embedder=embedder)
    cards, advisor = assistant.team.specialists
    assert [cards.name, advisor.name] == ["cards", "advisor"] and assistant.team.route
    assert list(cards.tools) == ["search_policies", "card_status", "freeze_card", "create_ticket", "update_ticket", "escalate_to_human"]
    assert cards.tools["freeze_card"].requires_approval and cards.tool_choice == "search_policies"
    assert "Fjord Bank" in cards.instructions and "card_status, freeze_card" in cards.instructions
    assert "card_id" in cards.tools["create_ticket"].spec.parameters["properties"]  # the bank's word for a reference
    assert assistant.context(user="u-100").tenant == "fjord-bank-card-support"


async def test_route_search_cite_and_call_the_banks_own_tool(home, embedder):
    model = ScriptedModel([
        ROUTE,  # the routing call: the one specialist
        ToolCall.make("search_policies", {"query": "how to freeze a lost card"}),
        ToolCall.make("card_status", {}),
        "Your card card-4411 is active; you can freeze it in the app [1].",
    ])
    assistant = load_assistant(FJORD, model, home=home, embedder=embedder)
    result = await assistant.team.run("I lost my card, what should I do?", context=assistant.context(user="u-100"))
    assert result.route == "cards"
    search = model.requests[2].messages[-1].content  # the tool result the model read
    assert "card-freeze.md" in search and "freeze" in search.lower()
    status = json.loads(model.requests[3].messages[-1].content)
    assert status["card_id"] == "card-4411" and status["escalation_required"] is False  # the signed-in customer's card
    assert any(s.citation.startswith(str(FJORD.parent / "policies" / "card-freeze.md")) for s in result.sources)


async def test_the_banks_rule_escalates_a_card_with_gambling_payments(home, embedder):
    model = ScriptedModel([
        ROUTE,
        ToolCall.make("search_policies", {"query": "unknown payment"}),
        ToolCall.make("card_status", {}),
        ToolCall.make("escalate_to_human", {"reason": "possible card fraud", "summary": "Casino payment Ola did not make.",
                                            "card_id": "card-7302"}),
        "A person from Fjord Bank will contact you about the casino payment.",
    ])
    assistant = load_assistant(FJORD, model, home=home, embedder=embedder)
    result = await assistant.team.run("There is a payment I don't recognise", context=assistant.context(user="u-200"))
    status = json.loads(model.requests[3].messages[-1].content)
    assert status["escalation_required"] is True and "LuckySpin" not in status["next_step"]
    assert status["next_step"].startswith("Possible fraud on the card (online gambling)")
    ticket = json.loads(model.requests[4].messages[-1].content)
    assert ticket["handoff"] and ticket["reference"] == "card-7302" and ticket["user"] == "u-200"
    assert result.route == "cards"


async def test_freezing_needs_the_customers_approval(home, embedder):
    asked = []
    model = ScriptedModel([ROUTE, ToolCall.make("search_policies", {"query": "freeze"}),
                           ToolCall.make("freeze_card", {"reason": "lost on the train"}), "Your card is frozen."])
    assistant = load_assistant(FJORD, model, home=home, embedder=embedder)
    context = assistant.context(user="u-100", approver=lambda request: asked.append(request.call.name) or True)
    await assistant.team.run("Freeze my card, I lost it on the train", context=context)
    fjord_tools = sys.modules["fjord_tools"]  # the module the file named, imported from next to it
    assert asked == ["freeze_card"]
    assert fjord_tools.CARDS["u-100"].state == "frozen"
    fjord_tools.CARDS["u-100"].state = "active"


async def test_asking_for_a_person_and_a_matching_guideline_reach_only_their_turn(home, embedder):
    model = ScriptedModel([ROUTE, ToolCall.make("search_policies", {"query": "x"}), "ok",
                           ROUTE, ToolCall.make("search_policies", {"query": "x"}), "ok",
                           ROUTE, ToolCall.make("search_policies", {"query": "x"}), "ok"])
    assistant = load_assistant(FJORD, model, home=home, embedder=embedder)
    plain = assistant.team.specialists[0].instructions
    for goal in ("Can I speak to a real person please?", "I'm going on holiday to Spain next week", "What does a cash withdrawal cost?"):
        await assistant.team.run(goal, context=assistant.context(user="u-100"))
    # The system prompt is the usual one, byte for byte, on every turn; what matched comes right after the message.
    assert all(system_prompt(model.requests[n]) == plain for n in (1, 4, 7))
    person, travel, fees = (turn_notes(model.requests[n]) for n in (1, 4, 7))
    assert "asked for a person: call escalate_to_human" in person and "travel mode" not in person
    assert "turn on travel mode" in travel and "escalate_to_human with reason" not in travel
    assert fees == ""  # nothing matched: no notes at all
