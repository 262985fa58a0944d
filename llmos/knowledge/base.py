"""`KnowledgeBase`: ingest documents, search them, hand agents a search tool.

    kb = KnowledgeBase("kb", tenant="acme")
    kb.ingest("docs/")                  # sync: add, re-embed changed, remove deleted
    for hit in kb.search("refund policy", k=5):
        print(hit.citation(), hit.score)

One folder holds everything: `chroma/` (vectors and texts, unless a Chroma server URL
is given), `bm25/<tenant>/` (keyword index) and `manifest.sqlite` (what was ingested).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmos.knowledge.bm25 import BM25Index
from llmos.knowledge.chunking import Chunker
from llmos.knowledge.embeddings import Embedder, SentenceTransformerEmbedder
from llmos.knowledge.retrieval import Mode, Reranker, Retriever, cross_encoder
from llmos.knowledge.settings import KnowledgeSettings, default_path
from llmos.knowledge.store import ChunkStore, check_tenant, connect
from llmos.knowledge.sync import Manifest, Syncer
from llmos.knowledge.types import Chunk, Hit, Stats, SyncSummary

if TYPE_CHECKING:
    from llmos.tools.base import Tool


class KnowledgeBase:
    """One tenant's view of a knowledge base folder (or of a Chroma server)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        tenant: str = "default",
        embedder: Embedder | None = None,
        url: str | None = None,
        reranker: str | Reranker | None = None,
        settings: KnowledgeSettings | None = None,
        _client: Any = None,
    ) -> None:
        self.settings = settings or KnowledgeSettings()
        self.path = Path(path).expanduser() if path else default_path()
        self.tenant = check_tenant(tenant)
        self.embedder = embedder or SentenceTransformerEmbedder(self.settings.embedding_model)
        self.url = url or self.settings.chroma_url
        self._client = _client or connect(self.path / "chroma", self.url)
        self.store = ChunkStore(self._client, self.tenant, self.embedder.name)
        self.manifest = Manifest(self.path / "manifest.sqlite")
        self._bm25: BM25Index | None = None
        self.reranker = cross_encoder(reranker) if isinstance(reranker, (str, Path)) else reranker
        self.retriever = Retriever(self.store, self.keyword_index, self.embedder, self.reranker)

    def for_tenant(self, tenant: str) -> KnowledgeBase:
        """The same folder, model and connection, another tenant."""
        return KnowledgeBase(
            self.path, tenant=tenant, embedder=self.embedder, url=self.url, reranker=self.reranker,
            settings=self.settings, _client=self._client,
        )

    # --- writing ---------------------------------------------------------------------------

    def ingest(self, path: str | Path, *, tags: list[str] | None = None, progress: bool = False) -> SyncSummary:
        """Sync a file or folder into this tenant; returns what changed and what was skipped."""
        chunker = Chunker(self.embedder.count_tokens, self.settings.chunk_tokens, self.settings.chunk_overlap)
        syncer = Syncer(
            self.store, self.manifest, chunker, self.embedder.embed_documents,
            max_bytes=int(self.settings.max_file_mb * 1e6), max_chunks=self.settings.max_file_chunks,
            batch_size=self.settings.batch_size,
        )
        summary = syncer.run(Path(path), tags=tags, progress=progress)
        self.keyword_index()  # rebuild now, when the store changed, rather than on the next search
        return summary

    def add_chunks(self, chunks: list[Chunk], vectors: np.ndarray | None = None) -> None:
        """Store ready-made chunks (with their vectors, if already computed); bypasses files and the manifest."""
        if vectors is None:
            vectors = self.embedder.embed_documents([c.text for c in chunks])
        self.manifest.bump(self.tenant)
        self.store.add(chunks, vectors)

    def keyword_index(self) -> BM25Index:
        """The BM25 index, rebuilt from the store if the store changed since it was built."""
        version = self.manifest.version(self.tenant)
        if self._bm25 is None:
            self._bm25 = BM25Index(self.path / "bm25" / self.tenant)
        if self._bm25.version != version:
            ids, texts = [], []
            for chunk_id, text, _ in self.store.iter_all():
                ids.append(chunk_id)
                texts.append(text)
            self._bm25.rebuild(ids, texts, version)
        return self._bm25

    # --- reading ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        sources: list[str] | None = None,
        tags: list[str] | None = None,
        mmr: float | None = None,
        rerank: bool | None = None,
    ) -> list[Hit]:
        """Best `k` chunks for `query`. `mmr` (0..1, lower is more varied) diversifies; `rerank` uses the reranker."""
        return self.retriever.search(query, k, mode=mode, sources=sources, tags=tags, mmr_lambda=mmr, rerank=rerank)

    def stats(self) -> Stats:
        files = [s for s, (_, _, state) in self.manifest.files(self.tenant).items() if state == "done"]
        return Stats(
            tenant=self.tenant, files=len(files), chunks=self.store.count(),
            embedding_model=self.embedder.name, path=self.url or str(self.path),
        )

    # --- adapters --------------------------------------------------------------------------

    def as_tool(self, *, name: str = "search_knowledge", k: int = 5, description: str | None = None) -> Tool:
        """An llmos tool that searches this knowledge base and returns cited passages."""
        from llmos.knowledge.tool import knowledge_tool

        return knowledge_tool(self, name=name, k=k, description=description)

    def as_langchain_retriever(self, k: int = 5, **search_kwargs: Any):
        """A LangChain `BaseRetriever` over this knowledge base (needs langchain-core)."""
        from llmos.knowledge.langchain import KnowledgeRetriever

        return KnowledgeRetriever(kb=self, k=k, search_kwargs=search_kwargs)


def open_tenants(path: str | Path, tenants: list[str], **kwargs: Any) -> dict[str, KnowledgeBase]:
    """Several tenants of one folder, sharing the model and the Chroma connection."""
    first = KnowledgeBase(path, tenant=tenants[0], **kwargs)
    return {first.tenant: first, **{t: first.for_tenant(t) for t in tenants[1:]}}

