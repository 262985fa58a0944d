"""The values that cross the knowledge base's boundary: sections, chunks, hits, sync summaries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Location(BaseModel):
    """Where a piece of text sits in its document; every field is optional."""

    page: int | None = None
    """1-based PDF page."""
    heading: str | None = None
    """Heading path, e.g. 'Install > Linux' (Markdown, HTML, DOCX)."""
    row: int | None = None
    """1-based data row of a CSV file, or item/line of a JSON/JSONL file."""

    def __str__(self) -> str:
        parts = []
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.heading:
            parts.append(self.heading)
        if self.row is not None:
            parts.append(f"row {self.row}")
        return ", ".join(parts)

    def to_metadata(self) -> dict[str, Any]:
        # Chroma metadata cannot hold None: leave unset fields out.
        return self.model_dump(exclude_none=True)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Location:
        return cls(page=metadata.get("page"), heading=metadata.get("heading"), row=metadata.get("row"))


class Section(BaseModel):
    """A structural unit a loader found (a page, a heading's body, a row), before chunking."""

    text: str
    location: Location = Field(default_factory=Location)


class Chunk(BaseModel):
    """A bounded piece of a document, ready to embed and store."""

    id: str
    text: str
    source: str
    location: Location = Field(default_factory=Location)
    tags: list[str] = Field(default_factory=list)


class Hit(BaseModel):
    """One search result: enough to quote it and to cite it."""

    id: str
    """Chunk id (stable across syncs while the file is unchanged)."""
    text: str
    source: str
    """The file the chunk came from."""
    location: Location = Field(default_factory=Location)
    score: float
    """Higher is better; the scale depends on the search mode."""
    tags: list[str] = Field(default_factory=list)

    def citation(self) -> str:
        """'guide.md, Install > Linux': what an answer cites."""
        where = str(self.location)
        return f"{self.source}, {where}" if where else self.source


class Skipped(BaseModel):
    """A path that was not ingested, and why."""

    path: str
    reason: str


class SyncSummary(BaseModel):
    """What one `ingest` changed in the knowledge base."""

    tenant: str
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skipped] = Field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    repaired: list[str] = Field(default_factory=list)
    """Files left half-written by an interrupted run, cleaned up by this one."""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.repaired)


class Stats(BaseModel):
    """Size of one tenant's knowledge base."""

    tenant: str
    files: int
    chunks: int
    embedding_model: str
    path: str
