"""The demo company's data files and `prepare_demo`."""

from __future__ import annotations

import csv
import json
import time

from llmos.demo import DATA_DIR, prepare_demo
from llmos.demo.generate import generate


def test_data_files_are_small_and_complete():
    size = sum(p.stat().st_size for p in DATA_DIR.rglob("*") if p.is_file())
    assert size < 1_000_000
    assert 5 <= len(list((DATA_DIR / "policies").glob("*.md"))) <= 8
    catalog = json.loads((DATA_DIR / "catalog.json").read_text())
    assert len(catalog) == 100 and len({i["id"] for i in catalog}) == 100
    customers = json.loads((DATA_DIR / "customers.json").read_text())
    assert len(customers) == 20
    assert any(o["status"] == "damaged" for c in customers for o in c["orders"])
    with open(DATA_DIR / "reviews.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["review_id", "date", "product_id", "text"]  # no labels: the analyst classifies
    assert len(rows) >= 300


def test_generator_reproduces_the_committed_files():
    catalog, customers, reviews, _ = generate()
    assert catalog == json.loads((DATA_DIR / "catalog.json").read_text())
    assert customers == json.loads((DATA_DIR / "customers.json").read_text())
    with open(DATA_DIR / "reviews.csv", newline="") as f:
        assert reviews == list(csv.DictReader(f))


def test_prepare_is_idempotent(stores):
    docs, catalog = stores.docs.store.count(), stores.catalog.store.count()
    started = time.perf_counter()
    again = prepare_demo(stores.root.parent, embedder=stores.embedder)
    assert time.perf_counter() - started < 2.0  # nothing rebuilt
    assert again.docs.store.count() == docs and again.catalog.store.count() == catalog == 100


def test_policies_are_searchable_with_short_citations(stores):
    hits = stores.docs.search("my stove arrived damaged", k=3)
    assert hits and all(h.source.endswith(".md") and "/" not in h.source for h in hits)
    assert {"damaged-items.md", "escalation.md"} & {h.source for h in hits}
