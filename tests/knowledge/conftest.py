"""Shared fixtures: a fast fake embedder for sync tests, the real packaged MiniLM for retrieval tests."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest


class HashEmbedder:
    """Bag of hashed words: deterministic, instant, and texts sharing words are close."""

    name = "hash-embedder-v1"
    dim = 64

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.embed_query(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector + 1.0 / np.sqrt(self.dim)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    """The real default embedder (loads in a few seconds, once per test session)."""
    from llmos.config import get_settings
    from llmos.knowledge import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    with pytest.MonkeyPatch.context() as patch:  # the query encoder is exported here, not in the user's home
        patch.setenv("LLMOS_HOME", str(tmp_path_factory.mktemp("minilm-home")))
        get_settings.cache_clear()
        embedder.embed_query("warm up")
    get_settings.cache_clear()
    return embedder


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # Nothing a test does may touch the user's LLMOS_HOME.
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    from llmos.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def minimal_pdf(pages: list[str]) -> bytes:
    """A small valid PDF with one line of Helvetica text per page, written by hand (no PDF writer needed)."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
