"""Fjord Bank end to end on the real local model: built only from its file, it routes (or plans), cites its own
policy documents, calls its own tool for the signed-in customer, and hands a case to a person by its own rule."""

from __future__ import annotations

import pytest

from llmos.assistants import load_assistant
from tests.assistants.conftest import FJORD

pytestmark = pytest.mark.model


async def test_the_bank_answers_from_its_documents_and_its_own_tool(local_model, tmp_path):
    assistant = load_assistant(FJORD, local_model, home=tmp_path)
    context = assistant.context(user="u-100", approver=lambda request: False)  # nothing is frozen in this test
    result = await assistant.team.run("I lost my card on the train. Is my card still active, and how do I freeze it?",
                                      context=context)
    assert result.route in ("cards", "plan")
    cards = [r for r in result.subtasks if r.specialist == "cards"]
    assert cards and cards[0].ok, result.subtasks
    messages = [m for r in cards for m in r.run.messages]
    called = {call.name for m in messages for call in getattr(m, "tool_calls", None) or []}
    # Its own tools, imported by path from its file. Checking the card first or going straight to freezing it are
    # both right for a lost card; whichever ran acted for the signed-in customer and no one else.
    assert called & {"card_status", "freeze_card"}, called
    results = " ".join(m.content for m in messages if getattr(m, "role", "") == "tool")
    assert "card-7302" not in results  # another customer's card never reaches this run
    if "card_status" in called:
        assert "card-4411" in results, results
    policies = FJORD.parent / "policies"
    cited = [s for s in result.sources if s.citation.startswith(str(policies))]
    assert cited, result.sources  # its own documents, in the numbered sources under the answer


async def test_the_bank_escalates_by_its_own_rule(local_model, tmp_path):
    assistant = load_assistant(FJORD, local_model, home=tmp_path)
    context = assistant.context(user="u-200", approver=lambda request: False)  # u-200's card shows gambling payments
    result = await assistant.team.run("Please check the recent payments on my card, I do not recognise some of them.",
                                      context=context)
    cards = [r for r in result.subtasks if r.specialist == "cards"]
    assert cards and cards[0].ok, result.subtasks
    messages = [m for r in cards for m in r.run.messages]
    steps = [m for m in messages if getattr(m, "role", "") == "assistant" and m.tool_calls]
    trace = [[(c.name, c.arguments) for c in m.tool_calls] for m in steps]
    # The rule "possible card fraud" is checked by code on the first card_status result that ran (a call with wrong
    # arguments is retried first). The case reaches a person: handed over by the model before the rule fired, or
    # else forced by the rule in the same step or the one after it.
    flagged = [i for i, m in enumerate(messages) if getattr(m, "role", "") == "tool" and m.name == "card_status"
               and '"escalation_required":true' in m.content.replace(" ", "")]
    assert flagged, trace  # the customer asked about their card's payments
    handoffs = [i for i, m in enumerate(messages) if getattr(m, "role", "") == "tool" and m.name == "escalate_to_human"
                and not m.is_error and '"handoff":true' in m.content.replace(" ", "")]
    assert handoffs, trace
    if handoffs[0] > flagged[0]:
        step = max(i for i, m in enumerate(steps) if messages.index(m) < flagged[0])
        assert "escalate_to_human" in [c.name for m in steps[step:step + 2] for c in m.tool_calls], trace

