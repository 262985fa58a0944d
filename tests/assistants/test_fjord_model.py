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

