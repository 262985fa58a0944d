"""A BM25 keyword index (bm25s), saved beside the vector store and rebuilt from it.

bm25s has no incremental updates, so the index is rebuilt from the chunks in Chroma
after each sync that changed something. Chroma is the truth; this index is derived,
and records which version of the store it was built from, so a stale one is noticed.

Beside bm25s's own files the index keeps each chunk's term counts (a sparse matrix,
`llmos_terms.npz`): keyword feedback (`search_expanded`) reads the terms of the chunks a
first search found without fetching and re-tokenising their texts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

_STATE = "llmos_state.json"
_TERMS = "llmos_terms.npz"  # per-chunk term counts, CSR: indptr, indices (term ids), counts


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
        self._terms: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._idf: np.ndarray | None = None
        self._stem = _stemmer()
        if (folder / _STATE).is_file():
            self._load()

    def _tokenize(self, texts: list[str]):
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=True, show_progress=False)

    def rebuild(self, ids: list[str], texts: list[str], version: int) -> None:
        """Index these chunks and save; the old index is replaced only once the new one is complete."""
        import bm25s

        retriever, terms = None, None
        tokens = self._tokenize(texts) if ids else None
        if tokens is not None and tokens.vocab:  # chunks of only punctuation or stopwords have no words to index
            retriever = bm25s.BM25()
            retriever.index(tokens, show_progress=False)
            terms = _term_counts(tokens.ids)
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if retriever is not None:
            retriever.save(str(tmp), show_progress=False)
            np.savez(tmp / _TERMS, indptr=terms[0], indices=terms[1], counts=terms[2])
        (tmp / "ids.json").write_text(json.dumps(ids))
        (tmp / _STATE).write_text(json.dumps({"version": version, "count": len(ids), "indexed": retriever is not None}))
        old = self.folder.with_name(self.folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(tmp, self.folder)
        shutil.rmtree(old, ignore_errors=True)
        self._set(retriever, ids, version, terms)

    def _load(self) -> None:
        import bm25s

        state = json.loads((self.folder / _STATE).read_text())
        ids = json.loads((self.folder / "ids.json").read_text())
        indexed = bool(ids) and state.get("indexed", True)
        retriever = bm25s.BM25.load(str(self.folder), show_progress=False) if indexed else None
        terms, version = None, state["version"]
        if indexed:
            if (self.folder / _TERMS).is_file():
                with np.load(self.folder / _TERMS) as saved:
                    terms = (saved["indptr"], saved["indices"], saved["counts"])
            else:
                version = None  # written by an older llmos: stale, so the knowledge base rebuilds it
        self._set(retriever, ids, version, terms)

    def _set(self, retriever, ids: list[str], version: int | None, terms=None) -> None:
        self._retriever = retriever
        self.ids = ids
        self._position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.version = version
        self._terms = terms
        self._idf = None
        if retriever is not None:
            df = np.diff(retriever.scores["indptr"]).astype(np.float64)  # chunks holding each term
            self._idf = np.log(len(ids) / np.maximum(df, 1.0))

    def _query_terms(self, query: str) -> list[int]:
        """The query's words as term ids of this index (stopwords and unknown words dropped)."""
        if self._retriever is None:
            return []
        tokens = self._tokenize([query])
        if not tokens.ids or not tokens.ids[0]:
            return []  # only stopwords, or nothing the tokenizer keeps
        # Query token ids are in the query's own vocabulary: map them to the index's.
        inverse = {i: word for word, i in tokens.vocab.items()}
        vocab = self._retriever.vocab_dict
        return [vocab[inverse[i]] for i in tokens.ids[0] if inverse[i] in vocab]

    def _mask(self, allowed: set[str] | None) -> np.ndarray | None:
        if allowed is None:
            return None
        mask = np.zeros(len(self.ids), dtype=np.float32)
        mask[[self._position[i] for i in allowed if i in self._position]] = 1.0
        return mask

    def search(self, query: str, n: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Best `n` (chunk id, BM25 score) pairs with a positive score, optionally only among `allowed` ids."""
        if self._retriever is None or n <= 0:
            return []
        known = self._query_terms(query)
        if not known:
            return []
        docs, scores = self._retriever.retrieve(
            [known], k=min(n, len(self.ids)), show_progress=False, n_threads=1, weight_mask=self._mask(allowed)
        )
        return [(self.ids[d], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    def feedback_terms(self, chunk_ids: list[str], terms: int) -> dict[int, float]:
        """The `terms` most telling words of these chunks, weights summing to 1 (Rocchio on words).

        A word's weight is its mean share of a chunk's words (tf / length) times its idf,
        log(N / df): frequent in what was found, rare in the collection.
        """
        rows = [self._position[i] for i in chunk_ids if i in self._position]
        if self._terms is None or self._idf is None or not rows or terms <= 0:
            return {}
        indptr, indices, counts = self._terms
        weights = np.zeros(len(self._idf))
        for row in rows:
            start, end = indptr[row], indptr[row + 1]
            if end > start:
                tf = counts[start:end]
                weights[indices[start:end]] += tf / tf.sum()
        weights *= self._idf / len(rows)
        top = np.argpartition(-weights, min(terms, len(weights) - 1))[:terms]
        top = top[weights[top] > 0]
        total = weights[top].sum()
        return {int(t): float(weights[t] / total) for t in top} if total > 0 else {}

    def query_weights(self, query: str) -> dict[int, float]:
        """The query as {term id: times it occurs}, known words only: the input of `scores`."""
        weights: dict[int, float] = {}
        for t in self._query_terms(query):
            weights[t] = weights.get(t, 0.0) + 1.0
        return weights

    def scores(self, weights: dict[int, float], allowed: set[str] | None = None) -> np.ndarray:
        """Every chunk's score for weighted terms: the sum of weight x BM25 score of each term.

        With each query word weighted by its count this is the BM25 score `search` ranks by.
        """
        scores = np.zeros(len(self.ids), dtype=np.float32)
        if self._retriever is None:
            return scores
        matrix = self._retriever.scores  # term-major: each term's postings are (chunk, BM25 term score)
        data, indices, indptr = matrix["data"], matrix["indices"], matrix["indptr"]
        for t, w in weights.items():
            start, end = indptr[t], indptr[t + 1]
            scores[indices[start:end]] += np.float32(w) * data[start:end]  # a chunk occurs once in a term's postings
        mask = self._mask(allowed)
        if mask is not None:
            scores *= mask
        return scores

    def top(self, scores: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The best `n` (chunk id, score) pairs of a `scores` array, positive scores only."""
        n = min(n, len(scores))
        if n <= 0:
            return []
        if n < len(scores):
            # Partitioning the values and keeping those above the n-th is cheaper than argpartition.
            threshold = max(np.partition(scores, len(scores) - n)[len(scores) - n], np.float32(1e-30))
            top = np.flatnonzero(scores >= threshold)
        else:
            top = np.flatnonzero(scores > 0)
        top = top[np.argsort(-scores[top], kind="stable")][:n]
        return [(self.ids[d], float(scores[d])) for d in top]

    def expanded_scores(
        self, query: dict[int, float], base: np.ndarray, feedback: list[str], *, terms: int = 10, weight: float = 0.5,
        allowed: set[str] | None = None,
    ) -> np.ndarray:
        """Scores for the query plus words of `feedback` chunks (pseudo-relevance feedback, RM3-style).

        `query` and `base` are `query_weights(q)` and `scores(query_weights(q))`. The query's
        own words share `1 - weight` of the expanded query, the `terms` feedback words share
        `weight`; a chunk scores the weighted sum of its BM25 term scores.
        """
        extra = self.feedback_terms(feedback, terms)
        if not extra or not query:
            return base
        expanded = self.scores({t: weight * w for t, w in extra.items()}, allowed)
        expanded += base * np.float32((1 - weight) / sum(query.values()))
        return expanded


def _term_counts(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-chunk term counts as CSR arrays (indptr, term ids, counts) from tokenised chunks."""
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    if lengths.sum() == 0:
        return np.zeros(len(token_ids) + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
    flat = np.fromiter((i for t in token_ids for i in t), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(token_ids), dtype=np.int64), lengths)
    width = int(flat.max()) + 1
    keys, counts = np.unique(rows * width + flat, return_counts=True)  # sorted by chunk, then term
    indptr = np.zeros(len(token_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // width, minlength=len(token_ids)), out=indptr[1:])
    return indptr, (keys % width).astype(np.int32), counts.astype(np.float32)
