"""Split sections into chunks bounded in tokens, with overlap, keeping each section's location.

Loaders already cut documents along their structure (pages, headings, rows); here a
section that is too long is split at paragraph, then line, then word boundaries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from llmos.knowledge.types import Chunk, Section


class Chunker:
    """Turns a file's sections into `Chunk`s of at most `max_tokens` tokens (as `count_tokens` counts them)."""

    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int = 200, overlap: int = 30) -> None:
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=max_tokens,
            chunk_overlap=min(overlap, max_tokens // 2),
            length_function=count_tokens,
            separators=["\n\n", "\n", ". ", " ", ""],
            keep_separator="end",
        )

    def split(self, sections: list[Section], source: str, file_hash: str, tags: list[str] | None = None) -> list[Chunk]:
        # Ids derive from the file's path and content: the same file gives the same ids on every run,
        # so writing a file twice (a resumed run) overwrites instead of duplicating.
        prefix = hashlib.sha1(f"{source}\0{file_hash}".encode()).hexdigest()[:16]
        chunks: list[Chunk] = []
        for section in sections:
            text = section.text.strip()
            pieces = [text] if self.count_tokens(text) <= self.max_tokens else self._splitter.split_text(text)
            heading = section.location.heading
            for n, piece in enumerate(p.strip() for p in pieces):
                if not piece:
                    continue
                if n and heading:
                    piece = f"{heading}\n{piece}"  # later pieces lose the heading line: give it back as context
                chunks.append(
                    Chunk(id=f"{prefix}-{len(chunks):05d}", text=piece, source=source, location=section.location, tags=tags or [])
                )
        return chunks
