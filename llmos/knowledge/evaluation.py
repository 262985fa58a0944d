"""Retrieval quality on a BEIR-layout data set: nDCG@10, recall@k (10 and 100 by default), MRR@10 per method.

The corpus goes into a throwaway knowledge base (one chunk per document, title + text),
and every method runs through `KnowledgeBase.search`, so the numbers describe what users
get. Corpus embeddings are cached under LLMOS_HOME, keyed by model and corpus hash:
embedding 5,000 passages takes over a minute on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from llmos.errors import ConfigError
from llmos.knowledge.embeddings import Embedder
from llmos.knowledge.retrieval import DEPTH, rrf
from llmos.knowledge.types import Chunk

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
RECALL_AT = (10, 100)


def metric_names(recall_at: tuple[int, ...] = RECALL_AT) -> tuple[str, ...]:
    """The metrics reported, in order: nDCG@10, recall at each k, MRR@10."""
    return ("ndcg@10", *(f"recall@{k}" for k in recall_at), "mrr@10")


def check_recall_at(recall_at: tuple[int, ...]) -> tuple[int, ...]:
    """The cut-offs, sorted and unique; each between 1 and the retrieval depth."""
    bad = [k for k in recall_at if not 1 <= k <= DEPTH]
    if not recall_at or bad:
        raise ConfigError(f"recall@k needs k between 1 and {DEPTH} (the retrieval depth); got {list(recall_at) or 'none'}.")
    return tuple(sorted(set(recall_at)))


class BeirData(BaseModel):
    name: str
    corpus: dict[str, str]
    """doc id -> text (title and text joined, as BEIR does for dense models)."""
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus_hash: str


class EvalReport(BaseModel):
    dataset: str
    queries: int
    """Queries with at least one relevant document: the ones scored."""
    corpus: int
    embedding_model: str
    methods: dict[str, dict[str, float]]


def load_beir(folder: str | Path) -> BeirData:
    folder = Path(folder)
    paths = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"Not a BEIR data folder, missing: {', '.join(missing)}.")
    raw = paths[0].read_bytes()
    corpus = {}
    for line in raw.decode().split("\n"):  # not splitlines(): JSON strings may hold U+2028
        if line.strip():
            doc = json.loads(line)
            title = (doc.get("title") or "").strip()
            corpus[str(doc["_id"])] = f"{title} {doc['text']}" if title else doc["text"]
    queries = {}
    for line in paths[1].read_text().split("\n"):
        if line.strip():
            query = json.loads(line)
            queries[str(query["_id"])] = query["text"]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for n, line in enumerate(paths[2].read_text().splitlines()):
        parts = line.split("\t")
        if n == 0 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(parts) >= 3:
            qrels[parts[0]][parts[1]] = int(parts[-1])
    return BeirData(
        name=folder.name, corpus=corpus, queries=queries, qrels=dict(qrels),
        corpus_hash=hashlib.sha256(raw).hexdigest()[:16],
    )


# --- metrics (the definitions BEIR uses through pytrec_eval: linear gain) ----------------------


def ndcg_at_k(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], rels: dict[str, int], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at_k(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def score_run(
    run: dict[str, list[str]], qrels: dict[str, dict[str, int]], recall_at: tuple[int, ...] = RECALL_AT
) -> dict[str, float]:
    """Mean of each metric over the queries that have a relevant document."""
    judged = [q for q, rels in qrels.items() if any(r > 0 for r in rels.values())]
    if not judged:
        raise ConfigError("No query has a relevant document in the qrels: nothing to score.")
    per_metric = {
        "ndcg@10": lambda r, q: ndcg_at_k(r, q, 10),
        **{f"recall@{k}": (lambda r, q, k=k: recall_at_k(r, q, k)) for k in recall_at},
        "mrr@10": lambda r, q: mrr_at_k(r, q, 10),
    }
    return {name: float(np.mean([fn(run.get(q, []), qrels[q]) for q in judged])) for name, fn in per_metric.items()}


# --- running the methods ------------------------------------------------------------------------


def corpus_vectors(data: BeirData, embedder: Embedder, cache_dir: Path | None) -> np.ndarray:
    """Embeddings of the corpus in its order, from the cache when this model has seen this corpus."""
    cache = cache_dir / f"{embedder.name}-{data.name}-{data.corpus_hash}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        vectors = np.load(cache)
        if vectors.shape[0] == len(data.corpus):
            return vectors
    vectors = embedder.embed_documents(list(data.corpus.values()))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(cache)
    return vectors


def evaluate_retrieval(
    folder: str | Path,
    embedder: Embedder | None = None,
    *,
    reranker=None,
    cache_dir: Path | None = None,
    with_rrf: bool = True,
    recall_at: tuple[int, ...] = RECALL_AT,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Score bm25, dense, hybrid (and plain RRF, and rerank when a reranker is given) on one data set.

    progress(done, total) is called after each query."""
    from llmos.knowledge.base import KnowledgeBase
    from llmos.knowledge.embeddings import SentenceTransformerEmbedder

    recall_at = check_recall_at(recall_at)
    data = load_beir(folder)
    embedder = embedder or SentenceTransformerEmbedder()
    vectors = corpus_vectors(data, embedder, cache_dir)
    judged = {q: data.queries[q] for q in data.qrels if q in data.queries}

    runs: dict[str, dict[str, list[str]]] = defaultdict(dict)
    with tempfile.TemporaryDirectory(prefix="llmos-eval-") as tmp:
        kb = KnowledgeBase(tmp, tenant="eval", embedder=embedder, reranker=reranker)
        kb.add_chunks([Chunk(id=i, text=t, source=i) for i, t in data.corpus.items()], vectors)
        kb.keyword_index()
        for done, (qid, query) in enumerate(judged.items(), 1):
            for mode in ("bm25", "dense", "hybrid"):
                runs[mode][qid] = [h.id for h in kb.search(query, DEPTH, mode=mode)]
            if with_rrf:  # the common default of other frameworks, for comparison
                dense = kb.store.query(embedder.embed_query(query), DEPTH)
                sparse = kb.keyword_index().search(query, DEPTH)
                runs["rrf"][qid] = [i for i, _ in rrf(dense, sparse)[:DEPTH]]
            if reranker is not None:
                runs["rerank"][qid] = [h.id for h in kb.search(query, DEPTH, rerank=True)]
            if progress is not None:
                progress(done, len(judged))
        del kb
    return EvalReport(
        dataset=data.name,
        queries=sum(1 for q in data.qrels if any(r > 0 for r in data.qrels[q].values())),
        corpus=len(data.corpus),
        embedding_model=embedder.name,
        methods={method: score_run(run, data.qrels, recall_at) for method, run in runs.items()},
    )
