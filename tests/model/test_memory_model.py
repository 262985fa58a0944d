"""Memory on the real local model: facts a user states in one session are recalled in their later
sessions, and never in another user's or another tenant's.

Bounded: every agent run has at most 2 model calls and 200 tokens a call; the facts are
extracted by the same model (structured output) and recalled with the default embedder.
"""

from __future__ import annotations

import pytest

from llmos.agents import Agent, Budget
from llmos.memory import Memory, SQLSessionStore, prompts
from llmos.tools import RunContext

pytestmark = pytest.mark.model

STATEMENT = "Please remember this for later: I own a Bosch Serie 6 dishwasher, and I prefer answers in German."
QUESTION = "Which dishwasher do I own?"


def recalled_block(requests) -> str:
    """The recalled-facts message of the last answering request ('' when none was sent)."""
    for request in reversed(requests):
        blocks = [m.content for m in request.messages if m.role == "system" and m.content.startswith(prompts.RECALL_HEADER)]
        if request.output_schema is None:
            return blocks[-1] if blocks else ""
    return ""


async def test_facts_of_one_session_are_recalled_for_the_same_user_only(recorded_model, tmp_path):
    model, requests = recorded_model, recorded_model.requests
    store = SQLSessionStore(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}")
    memory = Memory(store, model=model)
    agent = Agent(
        "support",
        instructions="You are a helpful support assistant. Answer in one or two sentences.",
        model=model,
        memory=memory,
        budget=Budget(max_steps=2),
        max_tokens_per_call=200,
    )
    maya = RunContext(user="C001", tenant="acme")
    try:
        await agent.run(STATEMENT, session="monday", context=maya)
        learnt = await memory.facts.list("C001", tenant="acme")
        assert any("bosch" in f.text.lower() or "dishwasher" in f.text.lower() for f in learnt), learnt

        result = await agent.run(QUESTION, session="tuesday", context=maya)
        assert "bosch" in recalled_block(requests).lower()
        assert "bosch" in result.text.lower()

        # Another user of the same tenant, and the same user id in another tenant: nothing recalled.
        for other in (RunContext(user="C002", tenant="acme"), RunContext(user="C001", tenant="beta")):
            requests.clear()
            await agent.run(QUESTION, session=f"s-{other.user}-{other.tenant}", context=other)
            assert all("bosch" not in (m.content or "").lower() for r in requests for m in r.messages)
    finally:
        await store.close()
