"""Fjord Bank end to end on the real local model: built only from its file, it routes (or plans), cites its own
policy documents and calls its own tool for the signed-in customer."""

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
    steps = [[c.name for c in m.tool_calls] for m in messages if getattr(m, "tool_calls", None)]
    checked = [i for i, names in enumerate(steps) if "card_status" in names]
    assert checked, steps  # the customer asked about their card's payments
    # The rule "possible card fraud" matched the gambling payment in code: the step after the check (or the
    # check's own step, when the model called both at once) hands the case to a person.
    first = checked[0]
    assert "escalate_to_human" in [*steps[first], *(steps[first + 1] if first + 1 < len(steps) else [])], steps
    handoff = [m for m in messages if getattr(m, "role", "") == "tool" and m.name == "escalate_to_human"]
    assert any(not m.is_error and '"handoff":true' in m.content.replace(" ", "") for m in handoff), handoff
