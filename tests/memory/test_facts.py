"""Long-term memory per user: facts added, updated, deleted without duplicates, recalled per tenant and user.

The embedder is the real default one (all-MiniLM-L6-v2 from its package); the model is scripted.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from llmos.agents import Agent
from llmos.errors import UnknownFactError, UnknownUserError
from llmos.knowledge.embeddings import SentenceTransformerEmbedder
from llmos.memory import Memory, SQLSessionStore, UserMemory, prompts
from llmos.memory.facts import as_the_user_says_it
from llmos.memory.schema import user_facts as facts_t
from llmos.tools import RunContext
from tests.scripted import ScriptedModel


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder()


@pytest.fixture
def facts(store, embedder) -> UserMemory:
    return UserMemory(store, embedder=embedder)


def changes(*items: dict) -> str:
    return json.dumps({"changes": list(items)})


async def test_facts_are_added_updated_and_deleted_as_the_model_says(facts):
    model = ScriptedModel([
        changes({"action": "add", "kind": "language", "text": "The user reads German."},
                {"action": "add", "kind": "possession", "text": "The user owns a Kindle Paperwhite."}),
        changes({"action": "update", "fact": 1, "kind": "language", "text": "The user reads French."}),
        changes({"action": "delete", "fact": 1, "text": "The user owns a Kindle Paperwhite."}, {"action": "update", "fact": 9, "text": "ignored: no fact 9"}),
    ])
    await facts.learn("C001", "I only read German, and I have a Kindle Paperwhite.", model, tenant="acme")
    assert sorted(f.text for f in await facts.list("C001", tenant="acme")) == [
        "The user owns a Kindle Paperwhite.", "The user reads German."]

    await facts.learn("C001", "Actually I moved: please write in French.", model, tenant="acme")
    # The known fact it corrects was listed to the model, closest first, with its number.
    asked = model.requests[1].messages[1].content
    assert "1. [language] The user reads German." in asked
    assert sorted(f.text for f in await facts.list("C001", tenant="acme")) == [
        "The user owns a Kindle Paperwhite.", "The user reads French."]

    before = {f.text for f in await facts.list("C001", tenant="acme")}
    applied = await facts.learn("C001", "I sold my Kindle.", model, tenant="acme")
    assert [c.action for c in applied] == ["delete"]
    after = {f.text for f in await facts.list("C001", tenant="acme")}
    assert len(after) == 1 and after < before
    assert model.requests[2].output_schema is not None  # structured output


async def test_a_fact_already_known_is_not_added_twice(facts):
    first = await facts.add("C001", "The user prefers email over phone calls.", tenant="acme", kind="preference")
    same = await facts.add("C001", "the user prefers email over phone calls", tenant="acme")
    close = await facts.add("C001", "The user prefers e-mail over phone calls.", tenant="acme")
    assert same.id == first.id == close.id
    other = await facts.add("C001", "The user owns a blue bicycle.", tenant="acme")
    assert [f.id for f in await facts.list("C001", tenant="acme")] == [first.id, other.id]


async def test_recall_ranks_by_meaning_and_never_crosses_users_or_tenants(facts):
    await facts.add("C001", "The user is allergic to peanuts.", tenant="acme")
    await facts.add("C001", "The user owns a red Honda Civic.", tenant="acme")
    await facts.add("C001", "The user speaks Portuguese.", tenant="acme")
    await facts.add("C002", "The user drives a Tesla Model 3.", tenant="acme")
    await facts.add("C001", "The user drives a Volvo truck.", tenant="beta")

    best = await facts.recall("C001", "What car do I have?", tenant="acme", k=1)
    assert [f.text for f in best] == ["The user owns a red Honda Civic."]
    everything = {f.text for f in await facts.recall("C001", "What car do I drive?", tenant="acme", k=10)}
    assert "The user drives a Tesla Model 3." not in everything and "The user drives a Volvo truck." not in everything
    assert await facts.recall("C003", "What car do I drive?", tenant="acme") == []
    assert [f.text for f in await facts.recall("C001", "my car", tenant="beta")] == ["The user drives a Volvo truck."]


async def test_facts_can_be_corrected_and_forgotten_and_go_with_their_user(facts, store):
    fact = await facts.add("C001", "The user lives in Oslo.", tenant="acme")
    fixed = await facts.correct(fact.id, "The user lives in Bergen.", user="C001", tenant="acme")
    assert fixed.text == "The user lives in Bergen." and fixed.updated_at >= fact.updated_at
    assert [f.text for f in await facts.recall("C001", "Which city do I live in?", tenant="acme")] == [fixed.text]
    with pytest.raises(UnknownFactError, match=f"has no fact {fact.id}"):
        await facts.forget(fact.id, user="C002", tenant="acme")  # another user's fact is not theirs to delete
    await facts.forget(fact.id, user="C001", tenant="acme")
    assert await facts.list("C001", tenant="acme") == []

    await store.create_session("s", tenant="acme", user="C001")
    await facts.add("C001", "The user has two cats.", tenant="acme")
    await facts.add("C002", "The user has a dog.", tenant="acme")
    assert await store.delete_user("C001", tenant="acme") == 1
    assert await facts.list("C001", tenant="acme") == []
    assert [f.text for f in await facts.list("C002", tenant="acme")] == ["The user has a dog."]
    with pytest.raises(UnknownUserError):
        await store.list_sessions(tenant="acme", user="C001")


async def test_a_later_session_of_the_user_recalls_what_an_earlier_one_taught(tmp_path, embedder):
    store = SQLSessionStore(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}")
    mem = Memory(store, facts=UserMemory(store, embedder=embedder))
    learnt = changes({"action": "add", "kind": "possession", "text": "The user owns a Bosch dishwasher."})
    model = ScriptedModel(["Sorry to hear that.", learnt, "Here is the Bosch manual.", changes(), "Hello!", changes()])
    agent = Agent("support", model=model, memory=mem)
    me = RunContext(user="C001", tenant="acme")
    await agent.run("My Bosch dishwasher leaks.", session="monday", context=me)
    await agent.run("Where is the manual of my dishwasher?", session="tuesday", context=me)
    block = model.requests[2].messages[-2]
    assert block.role == "system" and block.content == prompts.RECALL_HEADER + "- The user owns a Bosch dishwasher."
    assert (await store.turns("tuesday", tenant="acme"))[0].messages[-1].message.content == "Here is the Bosch manual."

    await agent.run("Where is the manual of my dishwasher?", session="x", context=RunContext(user="C002", tenant="acme"))
    assert all("Bosch" not in (m.content or "") for m in model.requests[4].messages)
    await store.close()


def test_a_failed_extraction_does_not_fail_the_answered_turn(tmp_path, embedder):
    async def main():
        store = SQLSessionStore(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}")
        mem = Memory(store, facts=UserMemory(store, embedder=embedder))
        agent = Agent("support", model=ScriptedModel(["Fine.", "not json at all"]), memory=mem)
        result = await agent.run("I like tea.", session="s", context=RunContext(user="C001"))
        (turn,) = await store.turns("s")
        await store.close()
        return result, turn

    import asyncio

    result, turn = asyncio.run(main())
    assert result.text == "Fine." and turn.status == "answered"


@pytest.mark.parametrize(
    ("fact", "said"),
    [
        ("The user owns a Nikon Z6 camera.", "I own a Nikon Z6 camera."),
        ("The user's phone is an iPhone 13 mini.", "My phone is an iPhone 13 mini."),
        ("The user is allergic to peanuts.", "I am allergic to peanuts."),
        ("The user has two children.", "I have two children."),
        ("Prefers email. The user lives in Bergen.", "Prefers email. I live in Bergen."),
        ("Send the user's invoice to the user by post.", "Send my invoice to me by post."),
    ],
)
def test_a_fact_is_embedded_as_the_user_would_say_it(fact, said):
    assert as_the_user_says_it(fact) == said


async def test_vectors_of_an_older_form_are_made_again_when_read(facts, store):
    fact = await facts.add("C001", "The user owns a Nikon Z6 camera.")
    async with store.transaction() as connection:  # a row written by an llmos that embedded facts as they are stored
        await connection.execute(sa.update(facts_t).values(embedder="an-older-form", embedding=b"\0" * 4 * 384))
    (recalled,) = await facts.recall("C001", "Which lens fits my camera?", k=1)
    assert recalled.id == fact.id and recalled.score > 0.3
