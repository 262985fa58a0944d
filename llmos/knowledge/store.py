"""Chroma: one collection per tenant, embedded (`PersistentClient`) or a server (`HttpClient`).

A collection per tenant, not a tenant field in the metadata: a search can only reach
the collection it is given, and an unfiltered query is about 30x cheaper than a
filtered one at 100k vectors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from llmos.errors import ConfigError, EmbeddingError, KnowledgeError
from llmos.knowledge.types import Chunk, Hit, Location

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,59}")  # fullmatch: `$` would let a final newline through
_TAG = "tag:"  # each tag is a boolean metadata key, so that Chroma can filter on it exactly


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise ConfigError(f"Tenant name {tenant!r} is not usable: use 1-60 letters, digits, '_' or '-', starting with a letter or digit.")
    return tenant


def connect(path: Path | None = None, url: str | None = None):
    """A Chroma client: a server when `url` is given, else an embedded database in `path`."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)  # no network at run time except to configured servers
    try:
        if url:
            parts = urlparse(url if "://" in url else f"http://{url}")
            return chromadb.HttpClient(
                host=parts.hostname or "localhost",
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                settings=settings,
            )
        assert path is not None
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as exc:
        where = url or path
        raise KnowledgeError(f"Cannot open the Chroma store at {where}: {exc}") from exc


class ChunkStore:
    """One tenant's chunks and their vectors in a Chroma collection."""

    def __init__(self, client, tenant: str, model_name: str) -> None:
        self.tenant = check_tenant(tenant)
        self._client = client
        self.collection = client.get_or_create_collection(
            f"llmos_{tenant}",
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": model_name},
            embedding_function=None,  # vectors always come from llmos; Chroma's default would try to download a model
        )
        stored = (self.collection.metadata or {}).get("embedding_model")
        if stored and stored != model_name:
            raise EmbeddingError(
                f"Tenant '{tenant}' was embedded with {stored}, not {model_name}: vectors of two models do not mix. "
                "Use the same embedding model, or another knowledge base folder."
            )
        self._batch = max(1, min(5000, client.get_max_batch_size()))

    def count(self) -> int:
        return self.collection.count()

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Upsert: a chunk written twice (a resumed run) replaces itself."""
        for start in range(0, len(chunks), self._batch):
            part = chunks[start : start + self._batch]
            self.collection.upsert(
                ids=[c.id for c in part],
                embeddings=vectors[start : start + self._batch],
                documents=[c.text for c in part],
                metadatas=[_metadata(c) for c in part],
            )

    def ids_of(self, source: str) -> list[str]:
        return self.collection.get(where={"source": source}, include=[])["ids"]

    def delete_source(self, source: str) -> int:
        """Delete every chunk of a file, including those a crashed run may have half-written."""
        ids = self.ids_of(source)
        for start in range(0, len(ids), self._batch):
            self.collection.delete(ids=ids[start : start + self._batch])
        return len(ids)

    def sources(self) -> set[str]:
        return {m["source"] for _, _, m in self.iter_all(include_documents=False)}

    def iter_all(self, include_documents: bool = True, page: int = 5000) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(id, text, metadata) of every chunk, in pages."""
        include = ["documents", "metadatas"] if include_documents else ["metadatas"]
        offset = 0
        while True:
            got = self.collection.get(include=include, limit=page, offset=offset)
            if not got["ids"]:
                return
            docs = got["documents"] or [""] * len(got["ids"])
            yield from zip(got["ids"], docs, got["metadatas"])
            offset += len(got["ids"])

    def query(self, vector: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """Nearest chunks as (id, cosine similarity), best first."""
        # No count() first: it costs more than the query (~5 ms at 100k chunks), and Chroma returns
        # fewer results, not an error, when asked for more than it holds.
        if n <= 0:
            return []
        got = self.collection.query(query_embeddings=[vector], n_results=n, where=where, include=["distances"])
        return [(i, 1.0 - d) for i, d in zip(got["ids"][0], got["distances"][0])]

    def candidates(self, vector: np.ndarray, n: int, where: dict[str, Any] | None = None) -> tuple[list[str], np.ndarray]:
        """Ids and stored vectors of the `n` nearest chunks, best first (to re-score them without another query)."""
        if n <= 0:
            return [], np.zeros((0, len(vector)), dtype=np.float32)
        got = self.collection.query(query_embeddings=[vector], n_results=n, where=where, include=["embeddings"])
        ids = got["ids"][0]
        if not ids:
            return [], np.zeros((0, len(vector)), dtype=np.float32)
        return ids, np.asarray(got["embeddings"][0], dtype=np.float32)

    def hits(self, scored: list[tuple[str, float]]) -> list[Hit]:
        """Turn (id, score) pairs into hits with their text and metadata, in the same order."""
        if not scored:
            return []
        got = self.collection.get(ids=[i for i, _ in scored], include=["documents", "metadatas"])
        found = {i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
        out = []
        for chunk_id, score in scored:
            if chunk_id in found:
                text, meta = found[chunk_id]
                out.append(_hit(chunk_id, text, meta, score))
        return out

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        got = self.collection.get(ids=ids, include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"])}


def where_filter(sources: list[str] | None = None, tags: list[str] | None = None) -> dict[str, Any] | None:
    """A Chroma `where` for 'from one of these sources' and 'carrying all these tags'."""
    clauses: list[dict[str, Any]] = []
    if sources:
        clauses.append({"source": {"$in": list(sources)}})
    clauses += [{_TAG + t: True} for t in tags or []]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _metadata(chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": chunk.source, **chunk.location.to_metadata()}
    meta.update({_TAG + t: True for t in chunk.tags})
    return meta


def _hit(chunk_id: str, text: str, meta: dict[str, Any], score: float) -> Hit:
    tags = [k[len(_TAG) :] for k in meta if k.startswith(_TAG)]
    return Hit(id=chunk_id, text=text, source=meta["source"], location=Location.from_metadata(meta), score=score, tags=tags)
