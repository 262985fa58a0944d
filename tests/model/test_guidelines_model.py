"""Guidelines on the real local model: a guideline whose condition matches the customer's message changes the
answer; one that does not match leaves the request as it was.

Bounded: one model call per run, at most 80 tokens.
"""

from __future__ import annotations

import pytest

from llmos.agents import Agent, Budget
from llmos.agents.guidelines import Guideline, GuidelineMatcher

pytestmark = pytest.mark.model

INSTRUCTIONS = "You are the assistant of Fjord Bank. Answer the customer in two short sentences."
TRAVEL = Guideline(when="I am going abroad on holiday or a trip to another country",
                   then="tell them to turn on travel mode in the Fjord app before they leave")
MESSAGE = "I am flying to Spain on holiday next week. Anything I should know about my card?"


def agent(model, *, guidelines: bool) -> Agent:
    bank = Agent("bank", instructions=INSTRUCTIONS, model=model, budget=Budget(max_steps=1), max_tokens_per_call=80)
    if guidelines:
        from llmos.knowledge import SentenceTransformerEmbedder
        from llmos.knowledge.settings import KnowledgeSettings

        bank.turn_notes.append(GuidelineMatcher([TRAVEL], SentenceTransformerEmbedder(KnowledgeSettings().embedding_model)))
    return bank


async def test_a_matching_guideline_changes_the_answer_and_one_that_does_not_match_is_absent(recorded_model):
    model, requests = recorded_model, recorded_model.requests
    without = await agent(model, guidelines=False).run(MESSAGE)
    guided = await agent(model, guidelines=True).run(MESSAGE)
    # Travel mode is Fjord Bank's own word: the model says it only when the matched guideline tells it to.
    assert "travel mode" not in without.output.lower(), without.output
    assert "travel mode" in guided.output.lower(), guided.output
    # The system prompt is the same either way; the guideline came right after the customer's message.
    assert requests[1].messages[0] == requests[0].messages[0]
    assert [m.role for m in requests[1].messages] == ["system", "user", "system"]
    assert "travel mode" in requests[1].messages[2].content

    unrelated = await agent(model, guidelines=True).run("What does a cash withdrawal cost?")
    assert unrelated.output and [m.role for m in requests[2].messages] == ["system", "user"]  # nothing matched
    assert requests[2].messages[0] == requests[0].messages[0]
