"""Knowledge: ingest documents into Chroma, search them (dense, BM25, hybrid), cite what was found.

    from llmos.knowledge import KnowledgeBase

    kb = KnowledgeBase("kb")            # or KnowledgeBase(tenant="acme", url="http://chroma:8000")
    kb.ingest("docs/")                  # add new, re-embed changed, remove deleted files
    hits = kb.search("how do I get a refund?", k=5)
    tool = kb.as_tool()                 # for agents: passages numbered [1], [2]... with sources

Needs the `knowledge` extra: `pip install 'llmos[knowledge]'`.
"""

from llmos.knowledge.base import KnowledgeBase, open_tenants
from llmos.knowledge.embeddings import Embedder, SentenceTransformerEmbedder
from llmos.knowledge.settings import KnowledgeSettings
from llmos.knowledge.types import Chunk, Hit, Location, Section, Skipped, Stats, SyncSummary

__all__ = [
    "Chunk",
    "Embedder",
    "Hit",
    "KnowledgeBase",
    "KnowledgeSettings",
    "Location",
    "Section",
    "SentenceTransformerEmbedder",
    "Skipped",
    "Stats",
    "SyncSummary",
    "open_tenants",
]
