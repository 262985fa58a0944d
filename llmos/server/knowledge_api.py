"""Knowledge over HTTP: each tenant uploads, lists, deletes and searches its own documents.

    POST   /v1/knowledge/documents                 multipart `files` (one or more): store and index
    GET    /v1/knowledge/documents                 the tenant's documents
    GET    /v1/knowledge/documents/{id}            one document
    DELETE /v1/knowledge/documents/{id}            remove it and its passages
    GET    /v1/knowledge/documents/{id}/passages   its stored passages, in order
    GET    /v1/knowledge/passages?citation=...     the passages an answer's source ("guide.md, Refunds") points to
    GET    /v1/knowledge/status                    indexed, pending and unreadable documents; chunks
    POST   /v1/knowledge/sync                      repair the index (after a crash, or files changed by hand)
    POST   /v1/knowledge/search                    {"query": ..., "k": 5}

The tenant is the API key's: another tenant's document ids answer 404. Reading needs any key of
the tenant; changing the documents needs an operator key (a customer must not rewrite what the
assistant tells every other customer). A server without keys (loopback only) allows both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmos.errors import KnowledgeError, LoaderError
from llmos.knowledge.embeddings import Embedder
from llmos.knowledge.library import Document, KnowledgeLibrary, Passage, SearchHit, Status, clean_name, shared_library
from llmos.knowledge.types import SyncSummary
from llmos.server.auth import Authenticator, Identity, require_role
from llmos.server.body import read_body
from llmos.server.errors import APIError
from llmos.server.settings import ServerSettings

MAX_FILES = 20  # files in one upload request
_MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the files of one request
T = TypeVar("T")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=20)


class Failed(BaseModel):
    name: str
    reason: str


class UploadResult(BaseModel):
    documents: list[Document]
    failed: list[Failed] = Field(default_factory=list)


class DocumentList(BaseModel):
    object: str = "list"
    data: list[Document]


class Passages(BaseModel):
    document: Document
    passages: list[Passage]


class SearchResult(BaseModel):
    object: str = "list"
    data: list[SearchHit]


class SyncResult(BaseModel):
    """What a sync changed, by document name (the server's paths are not the client's business)."""

    added: list[str]
    updated: list[str]
    removed: list[str]
    repaired: list[str]
    skipped: list[Failed]
    chunks_added: int
    chunks_removed: int

    @classmethod
    def of(cls, summary: SyncSummary) -> SyncResult:
        def names(paths: list[str]) -> list[str]:
            return [Path(p).name for p in paths]

        return cls(
            added=names(summary.added), updated=names(summary.updated), removed=names(summary.removed),
            repaired=names(summary.repaired), skipped=[Failed(name=Path(s.path).name, reason=s.reason) for s in summary.skipped],
            chunks_added=summary.chunks_added, chunks_removed=summary.chunks_removed,
        )


def served_library(settings: ServerSettings | None = None, *, embedder: Embedder | None = None) -> KnowledgeLibrary:
    """The tenants' uploads at the server's knowledge location (LLMOS_SERVER_KNOWLEDGE_PATH, default
    LLMOS_HOME/server/knowledge): one library per process, shared by these routes and the served
    team's search tool (an assistant file's `uploads = true` source), so the embedder loads once."""
    from llmos.config import get_settings

    settings = settings or ServerSettings()
    path = settings.knowledge_path or Path(get_settings().home).expanduser() / "server" / "knowledge"
    return shared_library(path, embedder=embedder)


def knowledge_router(settings: ServerSettings, auth: Authenticator, knowledge: KnowledgeLibrary | None) -> APIRouter:
    """The /v1/knowledge routes over `knowledge`, or over `served_library(settings)`, opened on first use
    (it loads the embedding model: a server nobody uploads to never does)."""
    router = APIRouter(prefix="/v1/knowledge")
    opened = [knowledge]

    def library() -> KnowledgeLibrary:
        if opened[0] is None:
            try:
                opened[0] = served_library(settings)
            except KnowledgeError as exc:  # e.g. no embedding model folder
                raise APIError(503, f"The knowledge base cannot be opened: {exc}", code="knowledge_unavailable") from None
        return opened[0]

    allowed = {t.lower() if t.startswith(".") else f".{t.lower()}" for t in settings.upload_types}

    async def reader(request: Request) -> Identity:
        return await auth(request)

    async def writer(request: Request) -> Identity:
        identity = await auth(request)
        if auth.keys_required:
            require_role(identity, "operator")
        return identity

    @router.post("/documents", status_code=201, response_model=UploadResult)
    async def upload(request: Request) -> UploadResult:
        identity = await writer(request)
        files = await _files(request, settings.upload_max_bytes)
        for name, data in files:
            _check_file(name, data, allowed, settings.upload_max_bytes)
        lib = library()
        stored, failed = [], []
        async with lib.lock(identity.tenant):
            for name, data in files:  # one at a time: a file that fails leaves the others stored
                try:
                    stored.append(await _work(lib.add, identity.tenant, name, data))
                except LoaderError as exc:
                    failed.append(Failed(name=name, reason=str(exc)))
        if not stored:
            reasons = "; ".join(f.reason for f in failed)
            raise APIError(400, f"No document was stored: {reasons}", code="unreadable_document", param="files")
        return UploadResult(documents=stored, failed=failed)

    @router.get("/documents", response_model=DocumentList)
    async def list_documents(request: Request) -> DocumentList:
        identity = await reader(request)
        return DocumentList(data=await _work(library().documents, identity.tenant))

    @router.get("/documents/{doc_id}", response_model=Document)
    async def get_document(doc_id: str, request: Request) -> Document:
        identity = await reader(request)
        return await _work(library().document, identity.tenant, doc_id)

    @router.delete("/documents/{doc_id}")
    async def delete_document(doc_id: str, request: Request) -> dict[str, Any]:
        identity = await writer(request)
        lib = library()
        async with lib.lock(identity.tenant):
            await _work(lib.delete, identity.tenant, doc_id)
        return {"id": doc_id, "object": "document", "deleted": True}

    @router.get("/documents/{doc_id}/passages", response_model=Passages)
    async def document_passages(doc_id: str, request: Request) -> Passages:
        identity = await reader(request)
        doc, passages = await _work(library().passages, identity.tenant, doc_id)
        return Passages(document=doc, passages=passages)

    @router.get("/passages", response_model=Passages)
    async def cited_passages(citation: str, request: Request) -> Passages:
        """The passages behind one entry of an answer's sources, e.g. `returns.md, Refunds > Damaged items`."""
        identity = await reader(request)
        lib = library()
        docs = await _work(lib.documents, identity.tenant)
        # A name may itself hold ", " ("terms, 2024.md" next to "terms"): the longest name that fits wins.
        named = [d for d in docs if citation == d.name or citation.startswith(d.name + ", ")]
        if not named:
            raise APIError(404, f"No document of this tenant is cited as {citation!r}.", code="not_found", param="citation")
        doc = max(named, key=lambda d: len(d.name))
        _, passages = await _work(lib.passages, identity.tenant, doc.id)
        return Passages(document=doc, passages=[p for p in passages if p.citation == citation] or passages)

    @router.get("/status", response_model=Status)
    async def status(request: Request) -> Status:
        identity = await reader(request)
        return await _work(library().status, identity.tenant)

    @router.post("/sync", response_model=SyncResult)
    async def sync(request: Request) -> SyncResult:
        identity = await writer(request)
        lib = library()
        async with lib.lock(identity.tenant):
            return SyncResult.of(await _work(lib.sync, identity.tenant))

    @router.post("/search", response_model=SearchResult)
    async def search(request: Request) -> SearchResult:
        identity = await reader(request)
        body = _search_request(await read_body(request, settings.max_body_bytes))
        return SearchResult(data=await _work(library().search, identity.tenant, body.query, body.k))

    return router


async def _work(fn: Callable[..., T], *args: Any) -> T:
    """Knowledge work (files, embedding, Chroma) off the event loop, its failures as API errors.
    A LoaderError is one document's problem: the caller reports it."""
    try:
        return await asyncio.to_thread(fn, *args)
    except KeyError as exc:
        raise APIError(
            404, f"No document {exc.args[0]!r} in this tenant's knowledge base. GET /v1/knowledge/documents lists them.",
            code="not_found",
        ) from None
    except LoaderError:
        raise
    except KnowledgeError as exc:  # the store cannot be opened or written, the embedding model cannot load
        raise APIError(503, f"The knowledge base cannot be used now: {exc}", code="knowledge_unavailable") from None


async def _files(request: Request, max_file_bytes: int) -> list[tuple[str, bytes]]:
    """(name, bytes) of each file of a multipart upload: 415 when the body is not multipart, 400 when it is malformed."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise APIError(
            415, "Send the files as multipart/form-data, in a field named `files` (curl: -F files=@guide.md).",
            code="unsupported_media_type",
        )
    limit = max_file_bytes * MAX_FILES + _MULTIPART_OVERHEAD
    body = await read_body(request, limit, "LLMOS_SERVER_UPLOAD_MAX_BYTES, times the files an upload may hold")
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=MAX_FILES, max_fields=MAX_FILES)
    except StarletteHTTPException as exc:  # Starlette's own 400 for a broken multipart body
        raise APIError(400, f"The upload is not valid multipart/form-data: {exc.detail}", code="invalid_multipart") from None
    uploads = [v for key, v in form.multi_items() if key in ("files", "file") and isinstance(v, UploadFile)]
    if not uploads:
        raise APIError(400, "The upload has no file: send one or more in a field named `files`.", code="no_files", param="files")
    files = []
    for upload in uploads:
        files.append((upload.filename or "", await upload.read()))
        await upload.close()
    return files


def _check_file(name: str, data: bytes, allowed: set[str], max_bytes: int) -> None:
    """Refuse the whole request before anything is stored: 415 for a type, 413 for a size, 400 for a name."""
    try:
        clean = clean_name(name)
    except LoaderError as exc:
        raise APIError(400, str(exc), code="invalid_file_name", param="files") from None
    suffix = Path(clean).suffix.lower()
    if suffix not in allowed:
        kind = f"{suffix} files are" if suffix else "a file without an extension is"
        raise APIError(
            415, f"{clean}: {kind} not accepted. Upload one of: {', '.join(sorted(allowed))}.",
            code="unsupported_file_type", param="files",
        )
    if len(data) > max_bytes:
        raise APIError(
            413, f"{clean} is {len(data):,} bytes, over the {max_bytes:,} a file may have (LLMOS_SERVER_UPLOAD_MAX_BYTES).",
            code="file_too_large", param="files",
        )
    if not data:
        raise APIError(400, f"{clean} is empty.", code="empty_file", param="files")


def _search_request(body: bytes) -> SearchRequest:
    try:
        return SearchRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        where = f"{param}: " if param else ""
        raise APIError(400, f"Invalid search request: {where}{first['msg']}.", param=param) from None
