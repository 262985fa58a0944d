"""A LangChain retriever over a `KnowledgeBase` (imported only when asked for: needs langchain-core)."""

from __future__ import annotations

import asyncio
from typing import Any

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("The LangChain retriever needs langchain-core: `pip install 'llmos[langchain]'`.") from exc

from pydantic import ConfigDict, Field


class KnowledgeRetriever(BaseRetriever):
    """Returns `Document`s whose metadata carry source, location, chunk id and score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kb: Any
    k: int = 5
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.kb.search(query, self.k, **self.search_kwargs)
        return [
            Document(
                page_content=hit.text,
                metadata={
                    "source": hit.source,
                    "location": str(hit.location),
                    **hit.location.to_metadata(),
                    "chunk_id": hit.id,
                    "score": hit.score,
                },
            )
            for hit in hits
        ]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return await asyncio.to_thread(self._get_relevant_documents, query, run_manager=run_manager.get_sync())
