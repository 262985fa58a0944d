"""A real knowledge library (the packaged MiniLM embedder, embedded Chroma) for the server's tests,
and a served team whose support specialist searches the documents of the caller's tenant."""

from __future__ import annotations

import json

import pytest

from llmos.agents import Agent, Team
from llmos.knowledge.library import KnowledgeLibrary
from llmos.llm import ToolCall
from tests.scripted import ScriptedModel

RETURNS = """# Returns

## Damaged items
A lamp that arrives damaged is replaced free of charge within 30 days. Send a photo of the damage.

## Refunds
Refunds reach the original payment card within 5 business days.
"""

WARRANTY = """# Warranty

## Batteries
Solar batteries carry a warranty of 7 years from the date of purchase.
"""


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The real default embedder, loaded once per test session."""
    from llmos.config import get_settings
    from llmos.knowledge import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    with pytest.MonkeyPatch.context() as patch:  # its query encoder is exported here, not in the user's home
        patch.setenv("LLMOS_HOME", str(tmp_path_factory.mktemp("embedder-home")))
        get_settings.cache_clear()
        embedder.embed_query("warm up")
    get_settings.cache_clear()
    return embedder


@pytest.fixture
def library(tmp_path, embedder) -> KnowledgeLibrary:
    return KnowledgeLibrary(tmp_path / "knowledge", embedder=embedder)


def search_then_cite(query: str, answer: str):
    """A model's script for one support turn: route to support, search, answer citing passage [1]."""
    return [json.dumps({"route": "support"}), ToolCall.make("search_policies", {"query": query}), answer]


def knowledge_team(library: KnowledgeLibrary, script: list, piece_delay: float = 0.0) -> tuple[Team, ScriptedModel]:
    """A team whose support specialist answers from the caller's tenant's uploaded documents."""
    model = ScriptedModel(script, piece_delay=piece_delay)
    support = Agent(
        "support", description="Policies and FAQ, with citations.", tools=[library.as_tool()], model=model
    )
    return Team([support], model=model, name="shop"), model
