"""Retrieval metrics against values computed by hand, and the BEIR loader."""

from __future__ import annotations

import json
import math

import pytest

from llmos.knowledge.evaluation import load_beir, mrr_at_k, ndcg_at_k, recall_at_k, score_run


def test_metrics_by_hand():
    ranked = ["d1", "d2", "d3"]
    rels = {"d2": 2, "d3": 1, "d4": 1, "d5": 0}
    # DCG = 2/log2(3) + 1/log2(4); ideal = 2/log2(2) + 1/log2(3) + 1/log2(4)
    dcg = 2 / math.log2(3) + 0.5
    idcg = 2 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(ranked, rels, 10) == pytest.approx(dcg / idcg) == pytest.approx(0.562727, abs=1e-6)
    assert ndcg_at_k(ranked, rels, 1) == 0.0
    assert recall_at_k(ranked, rels, 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, rels, 2) == pytest.approx(1 / 3)
    assert mrr_at_k(ranked, rels, 10) == 0.5
    assert mrr_at_k(ranked, rels, 1) == 0.0
    assert ndcg_at_k(["d2", "d3", "d4"], rels) == pytest.approx(1.0)

    qrels = {"q1": rels, "q2": {"z": 1}, "q3": {"d1": 0}}  # q3 has no relevant document: not scored
    scores = score_run({"q1": ranked, "q2": ["x", "y"], "q3": ["d1"]}, qrels)
    assert scores["ndcg@10"] == pytest.approx(0.562727 / 2, abs=1e-6)
    assert scores["mrr@10"] == pytest.approx(0.25)
    assert scores["recall@10"] == pytest.approx(1 / 3)
    assert scores["recall@100"] == pytest.approx(1 / 3)


def test_load_beir(tmp_path):
    write_beir(tmp_path / "tiny")
    data = load_beir(tmp_path / "tiny")
    assert data.name == "tiny" and len(data.corpus) == 6 and data.queries["q1"].startswith("how")
    assert data.corpus["d1"].startswith("Refunds ")  # title joined to text
    assert data.qrels["q1"] == {"d1": 2, "d2": 0}


def write_beir(folder):
    (folder / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "Refunds", "Customers get their money back within 14 days."),
        ("d2", "Shipping", "Parcels leave the warehouse in two days."),
        ("d3", "Passwords", "Reset a password from the account page."),
        ("d4", "Offices", "Our offices are in Paris and Tokyo."),
        ("d5", "Pricing", "The team plan costs 49 euros a month."),
        ("d6", "Mobile", "The app runs on iOS and Android phones."),
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    queries = [("q1", "how do I get my money back"), ("q2", "where are the offices"), ("q3", "unjudged")]
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td4\t1\n")
