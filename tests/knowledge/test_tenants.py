"""A search for one tenant can never return another tenant's chunk."""

from __future__ import annotations

import pytest

from llmos.errors import ConfigError
from llmos.knowledge import KnowledgeBase, open_tenants


def test_tenants_are_isolated(tmp_path, hash_embedder):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "policy.md").write_text("# Refunds\n\nAcme refunds within 14 days.")
    (tmp_path / "b" / "policy.md").write_text("# Refunds\n\nGlobex refunds within 30 days. Refunds refunds refunds.")
    kbs = open_tenants(tmp_path / "kb", ["acme", "globex"], embedder=hash_embedder)
    kbs["acme"].ingest(tmp_path / "a")
    kbs["globex"].ingest(tmp_path / "b")
    b_source = str((tmp_path / "b" / "policy.md").resolve())

    for mode in ("hybrid", "dense", "bm25"):
        hits = kbs["acme"].search("globex refunds 30 days", k=10, mode=mode)
        assert hits and all("Acme" in h.text and "/a/" in h.source for h in hits), mode
        # Asking for the other tenant's file by name finds nothing rather than leaking it.
        assert kbs["acme"].search("refunds", k=10, mode=mode, sources=[b_source]) == []

    # Separate collections and keyword indexes, and the same holds after reopening the folder.
    reopened = KnowledgeBase(tmp_path / "kb", tenant="acme", embedder=hash_embedder)
    assert reopened.store.collection.name != kbs["globex"].store.collection.name
    assert reopened.stats().chunks == 1 and kbs["globex"].stats().chunks == 1
    assert all("/a/" in h.source for h in reopened.search("Globex", k=10))
    # Removing a tenant's folder removes nothing of the other's.
    (tmp_path / "b" / "policy.md").unlink()
    kbs["globex"].ingest(tmp_path / "b")
    assert kbs["globex"].stats().chunks == 0 and reopened.stats().chunks == 1


@pytest.mark.parametrize("bad", ["", "a b", "../x", "x" * 61, "-x", "acme\n", "acme\r\n"])
def test_bad_tenant_names(tmp_path, hash_embedder, bad):
    with pytest.raises(ConfigError):
        KnowledgeBase(tmp_path / "kb", tenant=bad, embedder=hash_embedder)
