"""A BM25 keyword index (bm25s), saved beside the vector store and rebuilt from it.

bm25s has no incremental updates, so the index is rebuilt from the chunks in Chroma
after each sync that changed something. Chroma is the truth; this index is derived,
and records which version of the store it was built from, so a stale one is noticed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

_STATE = "llmos_state.json"


def _stemmer():
    import Stemmer  # PyStemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    """Keyword search over one tenant's chunks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.version: int | None = None
        self.ids: list[str] = []
        self._position: dict[str, int] = {}
        self._retriever = None
        self._stem = _stemmer()
        if (folder / _STATE).is_file():
            self._load()

    def _tokenize(self, texts: list[str]):
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=True, show_progress=False)

    def rebuild(self, ids: list[str], texts: list[str], version: int) -> None:
        """Index these chunks and save; the old index is replaced only once the new one is complete."""
        import bm25s

        retriever = None
        if ids:
            retriever = bm25s.BM25()
            retriever.index(self._tokenize(texts), show_progress=False)
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if retriever is not None:
            retriever.save(str(tmp), show_progress=False)
        (tmp / "ids.json").write_text(json.dumps(ids))
        (tmp / _STATE).write_text(json.dumps({"version": version, "count": len(ids)}))
        old = self.folder.with_name(self.folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(tmp, self.folder)
        shutil.rmtree(old, ignore_errors=True)
        self._set(retriever, ids, version)

    def _load(self) -> None:
        import bm25s

        state = json.loads((self.folder / _STATE).read_text())
        ids = json.loads((self.folder / "ids.json").read_text())
        retriever = bm25s.BM25.load(str(self.folder), show_progress=False) if ids else None
        self._set(retriever, ids, state["version"])

    def _set(self, retriever, ids: list[str], version: int) -> None:
        self._retriever = retriever
        self.ids = ids
        self._position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.version = version

    def search(self, query: str, n: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Best `n` (chunk id, BM25 score) pairs with a positive score, optionally only among `allowed` ids."""
        if self._retriever is None or n <= 0:
            return []
        tokens = self._tokenize([query])
        if not tokens.ids or not tokens.ids[0]:
            return []  # only stopwords, or nothing the tokenizer keeps
        # Query token ids are in the query's own vocabulary: map them to the index's, dropping unknown words.
        inverse = {i: word for word, i in tokens.vocab.items()}
        known = [inverse[i] for i in tokens.ids[0] if inverse[i] in self._retriever.vocab_dict]
        if not known:
            return []
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self.ids), dtype=np.float32)
            mask[[self._position[i] for i in allowed if i in self._position]] = 1.0
        docs, scores = self._retriever.retrieve(
            [known], k=min(n, len(self.ids)), show_progress=False, n_threads=1, weight_mask=mask
        )
        return [(self.ids[d], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
