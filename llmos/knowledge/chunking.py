"""Split sections into chunks bounded in tokens and characters, with overlap, keeping each section's location.

Loaders already cut documents along their structure (pages, headings, rows); here a
section that is too long is split at paragraph, then line, sentence and word boundaries,
and a run of text with none of them (a 5 MB line of base64) is cut where it must.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from llmos.knowledge.types import Chunk, Section

_ESTIMATED = 16  # pieces up to this many characters are measured by length, not by the tokenizer
_CHARS_PER_TOKEN = 4  # English text with a WordPiece or BPE vocabulary, about


class Chunker:
    """Turns a file's sections into `Chunk`s of at most `max_tokens` tokens (as `count_tokens` counts them).

    A chunk also holds at most `max_chars` characters: a tokenizer counts a 5 MB word as one
    unknown token, and such a chunk would be stored whole.
    """

    def __init__(
        self, count_tokens: Callable[[str], int], max_tokens: int = 200, overlap: int = 30, max_chars: int | None = None
    ) -> None:
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.max_chars = max_chars or max_tokens * 3 * _CHARS_PER_TOKEN
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=max_tokens,
            chunk_overlap=min(overlap, max_tokens // 2),
            length_function=self._length,
            # No "" (split into characters): the splitter measures every piece it makes, and a tokenizer call
            # per character made a 100 kB line of base64 take 30 s. Text left without a boundary goes to _cut.
            separators=["\n\n", "\n", ". ", " "],
            keep_separator="end",
        )

    def _length(self, piece: str) -> int:
        # The splitter measures each word of a sentence too long for one chunk: a tokenizer call for each of a
        # million words would take minutes. Short pieces are estimated; every chunk is counted exactly in _cut.
        if len(piece) <= _ESTIMATED:
            return max(1, round(len(piece) / _CHARS_PER_TOKEN))
        if len(piece) > self.max_chars:  # too long for a chunk whatever its tokens: not worth tokenizing 5 MB
            return self.max_tokens + len(piece)
        return self.count_tokens(piece)

    def _fits(self, text: str) -> bool:
        return len(text) <= self.max_chars and self.count_tokens(text) <= self.max_tokens

    def _pieces(self, text: str) -> list[str]:
        if self._fits(text):
            return [text]
        return [piece for split in self._splitter.split_text(text) for piece in self._cut(split)]

    def _cut(self, text: str) -> list[str]:
        """`text` itself if it fits, else consecutive windows of it that do (a few tokenizer calls per window)."""
        pieces = []
        window = self.max_chars  # the next window starts a little larger than the last one that fitted
        start = 0
        while start < len(text):
            size = min(len(text) - start, window)
            while size > 1 and (tokens := self.count_tokens(text[start : start + size])) > self.max_tokens:
                size = max(1, min(size - 1, int(size * self.max_tokens / tokens * 0.95)))
            pieces.append(text[start : start + size])
            start += size
            window = min(self.max_chars, size + size // 10 + 1)
        return pieces

    def split(self, sections: list[Section], source: str, file_hash: str, tags: list[str] | None = None) -> list[Chunk]:
        # Ids derive from the file's path and content: the same file gives the same ids on every run,
        # so writing a file twice (a resumed run) overwrites instead of duplicating.
        prefix = hashlib.sha1(f"{source}\0{file_hash}".encode()).hexdigest()[:16]
        chunks: list[Chunk] = []
        seen: set[str] = set()
        for section in sections:
            heading = section.location.heading
            for n, piece in enumerate(p.strip() for p in self._pieces(section.text.strip())):
                if not piece:
                    continue
                if n and heading:
                    piece = f"{heading}\n{piece}"  # later pieces lose the heading line: give it back as context
                if piece in seen:
                    # A repeated chunk adds nothing to find, and thousands of identical vectors trap the HNSW
                    # search among them: 15,000 copies of one line hid every other file from dense search.
                    continue
                seen.add(piece)
                chunks.append(
                    Chunk(id=f"{prefix}-{len(chunks):05d}", text=piece, source=source, location=section.location, tags=tags or [])
                )
        return chunks
