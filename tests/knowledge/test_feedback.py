"""The parts of the default hybrid: BM25 term scores and keyword feedback, dense feedback without a second query."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmos.knowledge import KnowledgeBase
from llmos.knowledge.bm25 import BM25Index
from llmos.knowledge.types import Chunk

TEXTS = {
    "cat": "The cat sat on the mat and purred at the kitten.",
    "dog": "A dog barked at the postman near the garden gate.",
    "vet": "Kittens and puppies need vaccines from the veterinarian.",
    "car": "The car engine needs oil, brakes and new tyres.",
    "bike": "A bicycle needs a chain, brakes and tyres with air.",
}


@pytest.fixture
def index(tmp_path) -> BM25Index:
    bm25 = BM25Index(tmp_path / "bm25")
    bm25.rebuild(list(TEXTS), list(TEXTS.values()), version=1)
    return bm25


def test_term_scores_rank_as_bm25_search(index):
    for query in ("cat kitten", "brakes tyres", "the dog and the cat", "veterinarian"):
        ours, theirs = index.top(index.scores(index.query_weights(query)), 5), index.search(query, 5)
        assert [i for i, _ in ours] == [i for i, _ in theirs] and theirs
        assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], rel=1e-5)
    assert index.query_weights("the and of") == {} and index.top(index.scores({}), 5) == []
    only_bike = index.scores(index.query_weights("brakes"), allowed={"bike"})
    assert [i for i, _ in index.top(only_bike, 5)] == ["bike"]


def test_feedback_terms_are_telling_words_of_the_feedback_chunks(index):
    terms = index.feedback_terms(["car", "bike"], 4)
    words = {i: w for w, i in index._retriever.vocab_dict.items()}
    assert len(terms) == 4 and sum(terms.values()) == pytest.approx(1.0)
    assert {words[t] for t in terms} <= set(index._tokenize(["car engine oil brakes tyres bicycle chain air"]).vocab)
    # Words both chunks share weigh more than words of one chunk.
    shared = min(terms[index._retriever.vocab_dict[w]] for w in ("brake", "tyre") if index._retriever.vocab_dict[w] in terms)
    assert shared == max(terms.values())
    assert index.feedback_terms(["nope"], 4) == {} and index.feedback_terms(["car"], 0) == {}


def test_keyword_feedback_finds_chunks_without_the_query_words(index):
    query = index.query_weights("bicycle")
    base = index.scores(query)
    assert [i for i, _ in index.top(base, 5)] == ["bike"]
    expanded = index.expanded_scores(query, base, ["bike"], terms=5, weight=0.5)
    ranked = [i for i, _ in index.top(expanded, 5)]
    assert ranked[0] == "bike" and "car" in ranked  # shares "brakes" and "tyres" with the feedback chunk
    # Half the weight stays with the query's own words: the expanded score of a chunk is the mix of both.
    extra = index.scores({t: 0.5 * w for t, w in index.feedback_terms(["bike"], 5).items()})
    assert expanded == pytest.approx(0.5 * base + extra)
    assert expanded[index._position["bike"]] > expanded[index._position["car"]] > 0 == base[index._position["car"]]
    assert np.array_equal(index.expanded_scores({}, base, ["bike"]), base)


def test_term_counts_are_saved_and_an_index_without_them_is_stale(tmp_path, index):
    again = BM25Index(index.folder)
    assert again.version == 1 and again.feedback_terms(["car"], 3) == index.feedback_terms(["car"], 3)
    (index.folder / "llmos_terms.npz").unlink()  # as written by an older llmos
    assert BM25Index(index.folder).version is None


def test_stale_keyword_index_is_rebuilt_by_the_knowledge_base(tmp_path, hash_embedder):
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.add_chunks([Chunk(id=k, text=t, source=k) for k, t in TEXTS.items()])
    folder = kb.keyword_index().folder
    (folder / "llmos_terms.npz").unlink()
    fresh = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    assert fresh.search("kitten", 1)[0].id == "cat"
    assert (folder / "llmos_terms.npz").is_file()
    assert json.loads((folder / "llmos_state.json").read_text())["count"] == len(TEXTS)


def test_dense_feedback_rescores_like_a_second_search(tmp_path, hash_embedder, monkeypatch):
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, hash_embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    kb.add_chunks([Chunk(id=f"c{i:03d}", text=f"chunk {i}", source="s") for i in range(300)], vectors)
    queries = []
    monkeypatch.setattr(kb.store, "collection", _CountingCollection(kb.store.collection, queries))
    query = hash_embedder.embed_query("chunk 7")
    moved, dense = kb.retriever._dense_with_feedback(query, 20, None)
    assert len(queries) == 1  # one Chroma query, not two
    expected = query + vectors[np.argsort(-(vectors @ query))[:5]].mean(axis=0)
    assert moved == pytest.approx(expected / np.linalg.norm(expected), abs=1e-5)
    exact = np.argsort(-(vectors @ moved))[:20]
    assert [i for i, _ in dense] == [f"c{i:03d}" for i in exact]
    assert [s for _, s in dense] == pytest.approx((vectors @ moved)[exact], abs=1e-5)


def test_empty_store_and_filters_in_hybrid(tmp_path, hash_embedder):
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    assert kb.search("anything", 5) == [] and kb.search("anything", 5, mode="dense") == []
    kb.add_chunks([Chunk(id=k, text=t, source=k) for k, t in TEXTS.items()])
    hits = kb.search("brakes and tyres", 5, sources=["car"])
    assert [h.id for h in hits] == ["car"]


class _CountingCollection:
    def __init__(self, collection, calls: list) -> None:
        self._collection, self._calls = collection, calls

    def query(self, **kwargs):
        self._calls.append(kwargs)
        return self._collection.query(**kwargs)

    def __getattr__(self, name):
        return getattr(self._collection, name)


def test_query_embedding_is_the_document_embedding_and_keeps_torch_threads(minilm):
    import torch

    before = torch.get_num_threads()
    text = "how do I reset my password?"
    assert minilm.embed_query(text) == pytest.approx(minilm.embed_documents([text])[0], abs=1e-5)
    assert torch.get_num_threads() == before
