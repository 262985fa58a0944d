"""Fjord Bank: a second company built only from an assistant file (fjord/fjord.toml) and a tools module."""

from __future__ import annotations

from pathlib import Path

import pytest

FJORD = Path(__file__).parent / "fjord" / "fjord.toml"


@pytest.fixture(scope="session")
def embedder():
    from llmos.knowledge import SentenceTransformerEmbedder
    from llmos.knowledge.settings import KnowledgeSettings

    return SentenceTransformerEmbedder(KnowledgeSettings().embedding_model)


@pytest.fixture
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("assistant-home")
