"""Bad files are reported and skipped; everything else is ingested."""

from __future__ import annotations

import io
import os

import pypdf

from llmos.knowledge import KnowledgeBase

from .conftest import minimal_pdf


def test_bad_inputs_are_skipped_and_reported(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "good.md").write_text("# Good\n\nThis file is fine.")
    (docs / "good.pdf").write_bytes(minimal_pdf(["A fine PDF page"]))
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(minimal_pdf(["secret"]))))
    writer.encrypt(user_password="pw", algorithm="RC4-128")
    writer.write(docs / "locked.pdf")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (docs / "empty.md").write_text("")
    (docs / "huge.txt").write_text("big " * 100_000)  # 400 kB, over the cap set below
    os.symlink(docs / "sub", docs / "sub" / "loop")  # a folder linking to itself
    os.symlink("self", docs / "self")  # a link to itself: ELOOP
    outside = tmp_path / "secret.txt"
    outside.write_text("Not for the knowledge base.")
    os.symlink(outside, docs / "escape.txt")
    (docs / "sub" / "nested.txt").write_text("Nested but fine.")

    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.settings.max_file_mb = 0.1
    summary = kb.ingest(docs)

    reasons = {os.path.basename(s.path): s.reason for s in summary.skipped}
    assert "corrupt" in reasons["corrupt.pdf"]
    assert "encrypted" in reasons["locked.pdf"]
    assert "binary" in reasons["binary.txt"]
    assert "empty" in reasons["empty.md"]
    assert "limit" in reasons["huge.txt"]
    assert "loop" in reasons["loop"] and "loop" in reasons["self"]
    assert "outside the root" in reasons["escape.txt"]
    assert sorted(os.path.basename(p) for p in summary.added) == ["good.md", "good.pdf", "nested.txt"]
    assert all("Not for the knowledge base" not in h.text for h in kb.search("knowledge base", k=10))


def test_a_file_that_turns_bad_keeps_its_last_good_chunks(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("Useful notes.")
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.ingest(docs)
    (docs / "notes.txt").write_bytes(b"\x00\x01\x02 broken")
    summary = kb.ingest(docs)
    assert [os.path.basename(s.path) for s in summary.skipped] == ["notes.txt"]
    assert kb.search("useful notes", k=1)[0].text == "Useful notes."


def test_missing_path_is_a_clear_error(tmp_path, hash_embedder):
    import pytest

    from llmos.errors import LoaderError

    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    with pytest.raises(LoaderError, match="does not exist"):
        kb.ingest(tmp_path / "nope")


def test_a_file_that_breaks_its_parser_is_skipped_and_the_rest_go_in(tmp_path, hash_embedder):
    """Deep JSON (RecursionError) and a CSV field over csv's limit (_csv.Error) once aborted the whole run."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (docs / "wide.csv").write_text("name,notes\nx," + "y" * 200_000 + "\n")
    (docs / "good.md").write_text("# Returns\n\nTents can be returned within 30 days.")
    (docs / "good.txt").write_text("Shipping takes three days.")

    summary = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder).ingest(docs)

    assert sorted(os.path.basename(p) for p in summary.added) == ["good.md", "good.txt"], summary
    reasons = {os.path.basename(s.path): s.reason for s in summary.skipped}
    assert set(reasons) == {"deep.json", "wide.csv"}, reasons


def test_a_knowledge_base_of_only_wordless_files_still_ingests_and_searches(tmp_path, hash_embedder):
    """A file of only '#' gave bm25s an empty vocabulary (ValueError) and stopped the ingestion."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hashes.txt").write_text("#" * 40)
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    assert [os.path.basename(p) for p in kb.ingest(docs).added] == ["hashes.txt"]
    assert kb.search("tents", k=3, mode="bm25") == []
    (docs / "tents.txt").write_text("Tents can be returned within 30 days.")
    kb.ingest(docs)
    reopened = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    assert reopened.search("tents returned", k=1, mode="bm25")[0].source.endswith("tents.txt")
