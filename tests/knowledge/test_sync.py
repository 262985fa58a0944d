"""Sync: new files are added, changed ones re-embedded, deleted ones removed; a crash is repaired."""

from __future__ import annotations

import pytest

from llmos.knowledge import KnowledgeBase
from llmos.knowledge.store import ChunkStore


def _docs(root, files: dict[str, str]) -> None:
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)


def _ids_by_source(kb: KnowledgeBase) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for chunk_id, _, meta in kb.store.iter_all(include_documents=False):
        out.setdefault(meta["source"].rsplit("/", 1)[-1], []).append(chunk_id)
    return out


def test_add_change_delete(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    _docs(docs, {"a.md": "# A\n\nApples are red.", "b.txt": "Bananas are yellow.", "c.csv": "fruit,colour\nkiwi,green\n"})
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)

    first = kb.ingest(docs)
    assert sorted(p.rsplit("/", 1)[-1] for p in first.added) == ["a.md", "b.txt", "c.csv"]
    assert first.chunks_added == 3 and kb.store.count() == 3
    assert kb.search("bananas", 1, mode="bm25")[0].source.endswith("b.txt")

    again = kb.ingest(docs)
    assert again.unchanged == 3 and not again.changed and kb.store.count() == 3

    (docs / "b.txt").write_text("Blueberries are blue.")
    (docs / "c.csv").unlink()
    _docs(docs, {"d.md": "Dates are sweet."})
    third = kb.ingest(docs)
    assert [p.rsplit("/", 1)[-1] for p in third.updated] == ["b.txt"]
    assert [p.rsplit("/", 1)[-1] for p in third.removed] == ["c.csv"]
    assert [p.rsplit("/", 1)[-1] for p in third.added] == ["d.md"]
    assert third.unchanged == 1 and third.chunks_removed == 2
    assert sorted(_ids_by_source(kb)) == ["a.md", "b.txt", "d.md"]
    # The keyword index follows the store: the old text is gone, the new one is found.
    assert kb.search("bananas", 3, mode="bm25") == []
    assert kb.search("blueberries", 1, mode="bm25")[0].source.endswith("b.txt")
    assert kb.stats().files == 3


def test_syncing_one_file_leaves_the_others(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    _docs(docs, {"a.md": "Apples.", "b.md": "Bananas."})
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.ingest(docs)
    (docs / "a.md").write_text("Apricots.")
    summary = kb.ingest(docs / "a.md")
    assert len(summary.updated) == 1 and not summary.removed
    assert sorted(_ids_by_source(kb)) == ["a.md", "b.md"]


def test_resume_after_crash_has_no_duplicates(tmp_path, hash_embedder, monkeypatch):
    docs = tmp_path / "docs"
    # Large enough that each file is written in its own batch (batch_size below).
    _docs(docs, {f"f{i}.md": "\n\n".join(f"File {i} paragraph {p} " + "word " * 40 for p in range(6)) for i in range(4)})
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.settings.batch_size = 1
    kb.settings.chunk_tokens = 50

    real_add = ChunkStore.add
    calls = {"n": 0}

    def dying_add(self, chunks, vectors):
        calls["n"] += 1
        if calls["n"] == 3:
            # Half of the third file's chunks reach Chroma, then the process "dies".
            real_add(self, chunks[: len(chunks) // 2], vectors[: len(chunks) // 2])
            raise KeyboardInterrupt
        return real_add(self, chunks, vectors)

    monkeypatch.setattr(ChunkStore, "add", dying_add)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest(docs)
    monkeypatch.setattr(ChunkStore, "add", real_add)

    # A fresh process: new KnowledgeBase object on the same folder.
    kb2 = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb2.settings.batch_size = 1
    kb2.settings.chunk_tokens = 50
    summary = kb2.ingest(docs)
    assert [p.rsplit("/", 1)[-1] for p in summary.repaired] == ["f2.md"]
    assert summary.unchanged == 2  # f0 and f1 were complete before the crash
    assert sorted(p.rsplit("/", 1)[-1] for p in summary.added) == ["f2.md", "f3.md"]

    by_source = _ids_by_source(kb2)
    expected = KnowledgeBase(tmp_path / "fresh", embedder=hash_embedder)
    expected.settings.chunk_tokens = 50
    expected.ingest(docs)
    assert {s: len(ids) for s, ids in by_source.items()} == {s: len(ids) for s, ids in _ids_by_source(expected).items()}
    all_ids = [i for ids in by_source.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == kb2.store.count()
    # And the keyword index agrees with the store.
    assert sorted(kb2.keyword_index().ids) == sorted(all_ids)
    assert kb2.ingest(docs).changed is False


def _many_files(docs, n: int = 6) -> None:
    _docs(docs, {f"f{i}.md": "\n\n".join(f"File {i} paragraph {p} " + "word " * 40 for p in range(6)) for i in range(n)})


def test_a_failing_embedder_stops_the_run_after_whole_batches(tmp_path, hash_embedder, monkeypatch):
    docs = tmp_path / "docs"
    _many_files(docs)
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.settings.batch_size = 1
    kb.settings.chunk_tokens = 50
    real = hash_embedder.embed_documents
    calls = {"n": 0}

    def failing(texts):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("model crashed")
        return real(texts)

    monkeypatch.setattr(hash_embedder, "embed_documents", failing)
    with pytest.raises(RuntimeError, match="model crashed"):
        kb.ingest(docs)
    # The two batches embedded before the failure are written completely (the writer finishes its batch).
    states = kb.manifest.files(kb.tenant)
    assert sorted(s.rsplit("/", 1)[-1] for s, (_, _, st) in states.items() if st == "done") == ["f0.md", "f1.md"]
    assert not [s for s, (_, _, st) in states.items() if st != "done"]
    monkeypatch.setattr(hash_embedder, "embed_documents", real)
    summary = kb.ingest(docs)
    assert summary.unchanged == 2 and len(summary.added) == 4 and not summary.repaired


def test_a_failing_reader_stops_the_run(tmp_path, hash_embedder, monkeypatch):
    from llmos.knowledge import sync

    docs = tmp_path / "docs"
    _many_files(docs)
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.settings.batch_size = 1
    real = sync.Syncer._prepare

    def prepare(self, path, *args):
        if path.name == "f3.md":
            raise MemoryError("reader died")
        return real(self, path, *args)

    monkeypatch.setattr(sync.Syncer, "_prepare", prepare)
    with pytest.raises(MemoryError, match="reader died"):
        kb.ingest(docs)
    done = sorted(s.rsplit("/", 1)[-1] for s, (_, _, st) in kb.manifest.files(kb.tenant).items() if st == "done")
    assert done == ["f0.md", "f1.md", "f2.md"]
    monkeypatch.setattr(sync.Syncer, "_prepare", real)
    assert len(kb.ingest(docs).added) == 3


def test_ingest_batches_share_one_upsert(tmp_path, hash_embedder, monkeypatch):
    docs = tmp_path / "docs"
    _many_files(docs)
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    real_add = ChunkStore.add
    sizes = []
    monkeypatch.setattr(ChunkStore, "add", lambda self, chunks, vectors: (sizes.append(len(chunks)), real_add(self, chunks, vectors)))
    summary = kb.ingest(docs)
    assert len(sizes) == 1 and sizes[0] == summary.chunks_added == kb.store.count()


def test_tokens_are_counted_while_the_model_encodes(minilm):
    # Ingestion chunks (counting tokens) in a reader thread while the model encodes the previous batch.
    import threading

    texts = [" ".join(["word"] * n) for n in range(1, 60, 7)]
    stop, counts = threading.Event(), []

    def count() -> None:
        while not stop.is_set():
            counts.append([minilm.count_tokens(t) for t in texts])

    reader = threading.Thread(target=count)
    reader.start()
    try:
        for _ in range(40):  # small batches of uneven lengths: padded, so a garbled setting shows
            assert minilm.embed_documents(texts).shape == (len(texts), minilm.dim)
    finally:
        stop.set()
        reader.join()
    assert counts and all(c == list(range(1, 60, 7)) for c in counts)


def test_every_embedding_call_but_the_last_fills_a_whole_batch(tmp_path, hash_embedder, monkeypatch):
    docs = tmp_path / "docs"
    _many_files(docs, 30)
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.settings.batch_size = 40
    kb.settings.chunk_tokens = 50
    sizes = []
    real = hash_embedder.embed_documents
    monkeypatch.setattr(hash_embedder, "embed_documents", lambda texts: (sizes.append(len(texts)), real(texts))[1])
    summary = kb.ingest(docs)
    per_file = summary.chunks_added // 30
    assert sum(sizes) == summary.chunks_added and len(sizes) >= 3
    # Whole files join a batch until it holds batch_size chunks: bigger calls pad less.
    assert all(40 <= size < 40 + per_file for size in sizes[:-1])
