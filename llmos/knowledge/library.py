"""`KnowledgeLibrary`: every tenant's own uploaded documents, in one folder (or one Chroma server).

    library = KnowledgeLibrary("/srv/llmos/knowledge")
    doc = library.add("acme", "returns.md", data)       # stored, indexed; a bad file raises LoaderError
    library.documents("acme")                            # what acme uploaded; other tenants see none of it
    search = library.as_tool()                           # for a served team's support specialist

Each tenant's files are kept under `files/<key>/` and indexed into that tenant's own collection,
where `<key>` is derived from the tenant name (any name a key may carry becomes a valid Chroma
collection name, and two names never share one). The search tool reads the tenant from the run
context, which the server fills from the API key: a model cannot name another tenant.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmos.errors import ConfigError, LoaderError
from llmos.knowledge.base import KnowledgeBase
from llmos.knowledge.embeddings import Embedder, SentenceTransformerEmbedder
from llmos.knowledge.settings import KnowledgeSettings
from llmos.knowledge.store import connect
from llmos.knowledge.sync import DONE
from llmos.knowledge.tool import DATA_NOTE, format_hits
from llmos.knowledge.types import Hit, Location, SyncSummary
from llmos.tools.base import Tool
from llmos.tools.context import RunContext

_SAFE_NAME = re.compile(r"[^\w.\- ()+,@]")  # what a stored file name keeps; anything else becomes '_'

_TOOL_DESCRIPTION = (
    "Search the company's documents (policies, FAQ, manuals). Returns numbered passages with their source; "
    "cite the numbers you use, like [1]."
)


class Document(BaseModel):
    """One uploaded file of a tenant."""

    id: str
    name: str
    bytes: int
    chunks: int
    state: Literal["indexed", "pending", "not indexed"]
    """indexed: searchable; pending: being (re)indexed, or left half-done by a crash (a sync repairs it);
    not indexed: stored but could not be read (see the upload's error)."""
    uploaded_at: datetime


class Passage(BaseModel):
    """A stored piece of a document, where it sits, and how it is cited."""

    text: str
    location: Location
    citation: str


class Status(BaseModel):
    """How far a tenant's knowledge base is in sync with its uploaded files."""

    tenant: str
    documents: int
    indexed: int
    pending: list[str] = Field(default_factory=list)
    not_indexed: list[str] = Field(default_factory=list)
    chunks: int
    embedding_model: str


class SearchHit(BaseModel):
    model_config = ConfigDict(frozen=True)

    document_id: str
    document: str
    text: str
    location: Location
    citation: str
    score: float


class KnowledgeLibrary:
    """The knowledge bases of all tenants of a server: one folder, one embedder, one Chroma connection."""

    def __init__(
        self,
        path: str | Path,
        *,
        embedder: Embedder | None = None,
        url: str | None = None,
        settings: KnowledgeSettings | None = None,
    ) -> None:
        self.path = Path(path).expanduser().resolve()  # chunks record resolved paths (see sync.find_files)
        self.settings = settings or KnowledgeSettings()
        self.embedder = embedder or SentenceTransformerEmbedder(self.settings.embedding_model)
        self.url = url or self.settings.chroma_url
        self._client: Any = None
        self._bases: dict[str, KnowledgeBase] = {}
        self._opening = threading.Lock()
        self._writing: dict[str, asyncio.Lock] = {}

    # --- one tenant's base -----------------------------------------------------------------

    def base(self, tenant: str) -> KnowledgeBase:
        """The tenant's knowledge base (opened once, then shared)."""
        key = tenant_key(tenant)
        with self._opening:
            if key not in self._bases:
                if self._client is None:
                    self._client = connect(self.path / "chroma", self.url)
                self._bases[key] = KnowledgeBase(
                    self.path, tenant=key, embedder=self.embedder, url=self.url, settings=self.settings,
                    _client=self._client,
                )
            return self._bases[key]

    def folder(self, tenant: str) -> Path:
        return self.path / "files" / tenant_key(tenant)

    def lock(self, tenant: str) -> asyncio.Lock:
        """Held while a tenant's files change: one sync at a time per tenant in this process."""
        return self._writing.setdefault(tenant_key(tenant), asyncio.Lock())

    # --- documents -------------------------------------------------------------------------

    def add(self, tenant: str, name: str, data: bytes) -> Document:
        """Store a file and index it; a file that cannot be read is removed again and raises LoaderError."""
        name = clean_name(name)
        folder = self.folder(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        previous = target.read_bytes() if target.exists() else None
        staging = folder / f".{name}.uploading"  # hidden: a sync of the folder never reads a half-written file
        staging.write_bytes(data)
        os.replace(staging, target)
        summary = self.base(tenant).ingest(target)
        if problem := _skipped(summary, target):
            # Put back what was there before: a bad upload never replaces a good document.
            if previous is None:
                target.unlink()
            else:
                target.write_bytes(previous)
            raise LoaderError(f"{name}: {problem}")
        return self.document(tenant, document_id(tenant, name))

    def documents(self, tenant: str) -> list[Document]:
        folder = self.folder(tenant)
        if not folder.is_dir():
            return []
        indexed = self.base(tenant).manifest.files(self.base(tenant).tenant)
        out = []
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            _, chunks, state = indexed.get(str(path), ("", 0, None))
            info = path.stat()
            out.append(
                Document(
                    id=document_id(tenant, path.name),
                    name=path.name,
                    bytes=info.st_size,
                    chunks=chunks,
                    state="indexed" if state == DONE else "pending" if state else "not indexed",
                    uploaded_at=datetime.fromtimestamp(info.st_mtime, UTC),
                )
            )
        return out

    def document(self, tenant: str, doc_id: str) -> Document:
        """The tenant's document with this id; KeyError when the tenant has none (another tenant's ids included)."""
        for doc in self.documents(tenant):
            if doc.id == doc_id:
                return doc
        raise KeyError(doc_id)

    def delete(self, tenant: str, doc_id: str) -> SyncSummary:
        """Remove a document and its chunks (KeyError when the tenant has no such document)."""
        doc = self.document(tenant, doc_id)
        (self.folder(tenant) / doc.name).unlink()
        return self.sync(tenant)

    def sync(self, tenant: str) -> SyncSummary:
        """Bring the index in line with the tenant's files: repairs what a crash left pending, drops deleted files."""
        folder = self.folder(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        return self.base(tenant).ingest(folder)

    def status(self, tenant: str) -> Status:
        docs = self.documents(tenant)
        base = self.base(tenant)
        return Status(
            tenant=tenant,
            documents=len(docs),
            indexed=sum(d.state == "indexed" for d in docs),
            pending=[d.name for d in docs if d.state == "pending"],
            not_indexed=[d.name for d in docs if d.state == "not indexed"],
            chunks=base.store.count(),
            embedding_model=self.embedder.name,
        )

    def passages(self, tenant: str, doc_id: str) -> tuple[Document, list[Passage]]:
        """A document's stored chunks, in the order of the file."""
        doc = self.document(tenant, doc_id)
        source = str(self.folder(tenant) / doc.name)
        got = self.base(tenant).store.collection.get(where={"source": source}, include=["documents", "metadatas"])
        passages = []
        # Chunk ids end in the chunk's position in the file ("<prefix>-00042"): sorting them restores the order.
        for _, text, meta in sorted(zip(got["ids"], got["documents"] or [], got["metadatas"] or [])):
            location = Location.from_metadata(meta)
            passages.append(Passage(text=text, location=location, citation=_citation(doc.name, location)))
        return doc, passages

    def search(self, tenant: str, query: str, k: int = 5) -> list[SearchHit]:
        hits = self.base(tenant).search(query, k)
        return [self._named(tenant, h) for h in hits]

    # --- for agents ------------------------------------------------------------------------

    def as_tool(self, *, name: str = "search_policies", k: int = 3, description: str | None = None) -> Tool:
        """A search tool over the documents of the run's tenant (RunContext.tenant, set from the API key)."""
        library = self
        default_k = k

        class SearchArgs(BaseModel):
            model_config = ConfigDict(extra="forbid")
            query: str = Field(description="What to look for, in a few words or a question.")
            k: int = Field(default_k, ge=1, le=20, description="How many passages to return.")

        async def call(args: SearchArgs, ctx: RunContext) -> str:
            if ctx.tenant is None:
                raise PermissionError("no tenant: this run has no company documents to search")
            hits = await asyncio.to_thread(library.search, ctx.tenant, args.query, args.k)
            if not hits:
                return format_hits([])
            blocks = [f"[{n}] {hit.citation}\n{hit.text}" for n, hit in enumerate(hits, 1)]
            return "\n\n".join(blocks) + DATA_NOTE

        return Tool(
            name=name, description=description or _TOOL_DESCRIPTION, args_model=SearchArgs, call=call,
            takes_context=True, timeout_s=60.0,
        )

    def _named(self, tenant: str, hit: Hit) -> SearchHit:
        # Chunks record the file's path on the server; callers and models see the document's name only.
        name = Path(hit.source).name
        return SearchHit(
            document_id=document_id(tenant, name), document=name, text=hit.text, location=hit.location,
            citation=_citation(name, hit.location), score=hit.score,
        )


_shared: dict[Path, KnowledgeLibrary] = {}
_sharing = threading.Lock()


def shared_library(path: str | Path, *, embedder: Embedder | None = None) -> KnowledgeLibrary:
    """The one library of this process at `path` (made on first call, with `embedder` if given)."""
    key = Path(path).expanduser().resolve()
    with _sharing:
        if key not in _shared:
            _shared[key] = KnowledgeLibrary(key, embedder=embedder)
        return _shared[key]


def tenant_key(tenant: str) -> str:
    """A collection and folder name for any tenant name: readable start, hashed tail (no two tenants share one)."""
    if not tenant:
        raise ConfigError("A knowledge base needs a tenant name.")
    readable = re.sub(r"[^A-Za-z0-9_-]", "-", tenant)[:24]
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    return f"t-{readable}-{digest}"


def document_id(tenant: str, name: str) -> str:
    """Stable per tenant and file name; the same name in another tenant has another id."""
    return "doc_" + hashlib.sha256(f"{tenant}\0{name}".encode()).hexdigest()[:20]


def clean_name(name: str) -> str:
    """The stored file name: the last path component, without characters a path or a shell would misread."""
    base = Path(name.replace("\\", "/")).name.strip()
    cleaned = _SAFE_NAME.sub("_", base).lstrip(".")
    if not cleaned:
        raise LoaderError(f"{name!r} is not a usable file name: send a name like guide.md.")
    return cleaned[:200]


def _citation(name: str, location: Location) -> str:
    where = str(location)
    return f"{name}, {where}" if where else name


def _skipped(summary: SyncSummary, target: Path) -> str | None:
    for skipped in summary.skipped:
        if Path(skipped.path) == target:
            return skipped.reason
    return None
